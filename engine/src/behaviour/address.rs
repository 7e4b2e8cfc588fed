//! Client addresses: who the client is behind trusted proxies, and address ranges (CIDRs)
//! looked up in O(log n) for reputation lists and range blocks.

use std::net::IpAddr;

/// Every address as one number: IPv4 as its IPv4-mapped IPv6 form, so one table holds both.
pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The client address: the peer when no proxy is trusted, else the `trusted_hops`-th entry
/// from the right of `x-forwarded-for` (each trusted proxy appended the address it saw).
/// Entries further left were written by the client and prove nothing.
pub fn client_ip(xff: Option<&[u8]>, peer: Option<&str>, trusted_hops: u8) -> Option<IpAddr> {
    if trusted_hops > 0 {
        if let Some(list) = xff.and_then(|v| std::str::from_utf8(v).ok()) {
            let entries: Vec<&str> = list.split(',').map(str::trim).collect();
            let hops = usize::from(trusted_hops);
            if entries.len() >= hops {
                if let Some(ip) = parse_ip(entries[entries.len() - hops]) {
                    return Some(ip);
                }
            }
        }
    }
    peer.and_then(parse_ip)
}

/// `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, port) = text.rsplit_once(':')?;
    if port.bytes().all(|b| b.is_ascii_digit()) {
        return host.parse().ok();
    }
    None
}

/// An inclusive address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    pub first: u128,
    pub last: u128,
}

impl AddressRange {
    /// `10.0.0.0/8`, `2001:db8::/32` or a single address.
    pub fn parse(text: &str) -> Result<AddressRange, String> {
        let (addr, len) = match text.trim().split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text.trim(), None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an address or CIDR"))?;
        let max = match ip {
            IpAddr::V4(_) => 32u32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match len {
            None => max,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("`{text}`: prefix length must be 0..={max}"))?,
        };
        let host_bits = max - prefix;
        let mask: u128 = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let key = ip_key(ip);
        Ok(AddressRange {
            first: key & !mask,
            last: key | mask,
        })
    }
}

/// Disjoint sorted ranges, each with a value; lookup by binary search.
#[derive(Debug, Clone)]
pub struct RangeSet<T> {
    ranges: Vec<(AddressRange, T)>,
}

impl<T> Default for RangeSet<T> {
    fn default() -> Self {
        RangeSet { ranges: Vec::new() }
    }
}

impl<T: Clone> RangeSet<T> {
    /// Overlapping ranges are merged; the merged range keeps the first one's value.
    pub fn build(mut items: Vec<(AddressRange, T)>) -> Self {
        items.sort_by_key(|(r, _)| (r.first, std::cmp::Reverse(r.last)));
        let mut ranges: Vec<(AddressRange, T)> = Vec::with_capacity(items.len());
        for (range, value) in items {
            match ranges.last_mut() {
                Some((last, _)) if range.first <= last.last.saturating_add(1) => {
                    last.last = last.last.max(range.last);
                }
                _ => ranges.push((range, value)),
            }
        }
        RangeSet { ranges }
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<&T> {
        let key = ip_key(ip);
        let after = self.ranges.partition_point(|(r, _)| r.first <= key);
        let (range, value) = self.ranges.get(after.checked_sub(1)?)?;
        (key <= range.last).then_some(value)
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn client_ip_trusts_only_the_configured_hops() {
        let xff = Some(&b"6.6.6.6, 203.0.113.9, 10.0.0.2"[..]);
        assert_eq!(
            client_ip(xff, Some("10.0.0.3:4000"), 0),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(
            client_ip(xff, Some("10.0.0.3:4000"), 1),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_ip(xff, Some("10.0.0.3:4000"), 2),
            Some(ip("203.0.113.9"))
        );
        // Fewer entries than trusted hops, or junk: fall back to the peer.
        assert_eq!(
            client_ip(xff, Some("10.0.0.3:4000"), 5),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(
            client_ip(Some(b"nonsense"), Some("[::1]:80"), 1),
            Some(ip("::1"))
        );
    }

    #[test]
    fn ranges_merge_and_look_up() {
        let set = RangeSet::build(vec![
            (AddressRange::parse("10.0.0.0/8").unwrap(), "ten"),
            (AddressRange::parse("10.1.2.0/24").unwrap(), "nested"),
            (AddressRange::parse("192.0.2.7").unwrap(), "one"),
            (AddressRange::parse("2001:db8::/32").unwrap(), "v6"),
            (AddressRange::parse("0.0.0.0/0").unwrap(), "all-v4"),
        ]);
        assert_eq!(set.lookup(ip("10.1.2.3")), Some(&"all-v4"));
        let set = RangeSet::build(vec![
            (AddressRange::parse("10.0.0.0/8").unwrap(), "ten"),
            (AddressRange::parse("10.1.2.0/24").unwrap(), "nested"),
            (AddressRange::parse("192.0.2.7").unwrap(), "one"),
            (AddressRange::parse("2001:db8::/32").unwrap(), "v6"),
        ]);
        assert_eq!(set.lookup(ip("10.1.2.3")), Some(&"ten"));
        assert_eq!(set.lookup(ip("10.255.0.1")), Some(&"ten"));
        assert_eq!(set.lookup(ip("11.0.0.0")), None);
        assert_eq!(set.lookup(ip("192.0.2.7")), Some(&"one"));
        assert_eq!(set.lookup(ip("192.0.2.8")), None);
        assert_eq!(set.lookup(ip("2001:db8:ffff::1")), Some(&"v6"));
        assert_eq!(set.lookup(ip("::ffff:10.0.0.1")), Some(&"ten"));
        assert!(AddressRange::parse("10.0.0.0/33").is_err());
        assert!(AddressRange::parse("nope").is_err());
        assert_eq!(AddressRange::parse("::/0").unwrap().last, u128::MAX);
    }
}
