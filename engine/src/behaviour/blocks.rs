//! Blocks pushed by the control plane and reputation lists, compiled for O(1) / O(log n) lookup.

use std::collections::HashMap;
use std::net::IpAddr;

use super::address::{ip_key, AddressRange, RangeSet};
use super::OffenderKind;

/// One active block, as the control plane sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    /// `ip`, `cidr`, `principal` or `token`.
    pub kind: String,
    pub value: String,
    /// 0: until removed.
    pub expires_unix_ms: u64,
    pub reason: String,
    /// 429 instead of 403.
    pub limit_only: bool,
}

impl BlockEntry {
    pub fn active(&self, now_ms: u64) -> bool {
        self.expires_unix_ms == 0 || now_ms < self.expires_unix_ms
    }
}

/// The current block list, indexed.
#[derive(Debug, Default)]
pub struct BlockSet {
    entries: Vec<BlockEntry>,
    ips: HashMap<u128, usize>,
    ranges: RangeSet<usize>,
    principals: HashMap<String, usize>,
    tokens: HashMap<String, usize>,
}

impl BlockSet {
    /// Entries that do not parse (a bad address) are skipped and returned, so the caller can
    /// log them; the rest still apply.
    pub fn build(entries: Vec<BlockEntry>) -> (BlockSet, Vec<BlockEntry>) {
        let mut set = BlockSet::default();
        let mut rejected = Vec::new();
        let mut ranges = Vec::new();
        for entry in entries {
            let index = set.entries.len();
            let ok = match entry.kind.as_str() {
                "ip" => match super::address::parse_ip(&entry.value) {
                    Some(ip) => {
                        set.ips.insert(ip_key(ip), index);
                        true
                    }
                    None => false,
                },
                "cidr" => match AddressRange::parse(&entry.value) {
                    Ok(r) => {
                        ranges.push((r, index));
                        true
                    }
                    Err(_) => false,
                },
                "principal" => {
                    set.principals.insert(entry.value.clone(), index);
                    true
                }
                "token" => {
                    set.tokens.insert(entry.value.clone(), index);
                    true
                }
                _ => false,
            };
            if ok {
                set.entries.push(entry);
            } else {
                rejected.push(entry);
            }
        }
        set.ranges = RangeSet::build(ranges);
        (set, rejected)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The active block that applies to this client, if any.
    pub fn find(
        &self,
        ip: Option<IpAddr>,
        principal: &str,
        token: Option<&str>,
        now_ms: u64,
    ) -> Option<(&BlockEntry, OffenderKind)> {
        let active = |i: &usize| self.entries.get(*i).filter(|e| e.active(now_ms));
        if let Some(ip) = ip {
            if let Some(e) = self.ips.get(&ip_key(ip)).and_then(active) {
                return Some((e, OffenderKind::Ip));
            }
            if let Some(e) = self.ranges.lookup(ip).and_then(active) {
                return Some((e, OffenderKind::Ip));
            }
        }
        if let Some(e) = self.principals.get(principal).and_then(active) {
            return Some((e, OffenderKind::Principal));
        }
        if let Some(e) = token.and_then(|t| self.tokens.get(t)).and_then(active) {
            return Some((e, OffenderKind::Token));
        }
        None
    }
}

/// A reputation list: address ranges with labels.
#[derive(Debug, Default)]
pub struct IntelSet {
    ranges: RangeSet<String>,
}

impl IntelSet {
    /// `(cidr, label)` pairs; unparsable entries are returned.
    pub fn build(entries: Vec<(String, String)>) -> (IntelSet, Vec<String>) {
        let mut ok = Vec::with_capacity(entries.len());
        let mut rejected = Vec::new();
        for (cidr, label) in entries {
            match AddressRange::parse(&cidr) {
                Ok(r) => ok.push((r, label)),
                Err(_) => rejected.push(cidr),
            }
        }
        (
            IntelSet {
                ranges: RangeSet::build(ok),
            },
            rejected,
        )
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<&str> {
        self.ranges.lookup(ip).map(String::as_str)
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

    fn entry(kind: &str, value: &str, expires: u64) -> BlockEntry {
        BlockEntry {
            kind: kind.into(),
            value: value.into(),
            expires_unix_ms: expires,
            reason: "test".into(),
            limit_only: false,
        }
    }

    #[test]
    fn finds_active_blocks_of_every_kind() {
        let (set, rejected) = BlockSet::build(vec![
            entry("ip", "203.0.113.5", 0),
            entry("cidr", "198.51.100.0/24", 2_000),
            entry("principal", "sub:mallory", 0),
            entry("token", "t:abcd", 0),
            entry("ip", "not-an-ip", 0),
        ]);
        assert_eq!(rejected.len(), 1);
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(
            set.find(ip("203.0.113.5"), "", None, 1).map(|f| f.1),
            Some(OffenderKind::Ip)
        );
        assert!(set.find(ip("198.51.100.77"), "", None, 1_999).is_some());
        assert!(
            set.find(ip("198.51.100.77"), "", None, 2_000).is_none(),
            "expired"
        );
        assert!(set.find(None, "sub:mallory", None, 1).is_some());
        assert!(set.find(None, "sub:alice", Some("t:abcd"), 1).is_some());
        assert!(set
            .find(ip("192.0.2.1"), "sub:alice", Some("t:ffff"), 1)
            .is_none());
    }

    #[test]
    fn intel_lookup() {
        let (intel, rejected) = IntelSet::build(vec![
            ("192.0.2.0/24".into(), "tor-exit".into()),
            ("bad".into(), String::new()),
        ]);
        assert_eq!(rejected, vec!["bad".to_string()]);
        assert_eq!(intel.lookup("192.0.2.9".parse().unwrap()), Some("tor-exit"));
        assert_eq!(intel.lookup("192.0.3.9".parse().unwrap()), None);
    }
}
