//! A stream's request or response headers, read in one host call and used where Envoy wrote
//! them: the SDK's `get_http_request_headers_bytes` copies every name and value into its own
//! allocation, two per header on every request, and panics on a status it does not expect.

use std::ops::Range;

use proxy_wasm::types::{MapType, Status};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
}

/// A header map in the proxy-wasm serialisation: a little-endian u32 count, then a u32 name
/// length and a u32 value length per header, then each name and value followed by a NUL.
#[derive(Default)]
pub struct HeaderMap {
    bytes: Vec<u8>,
    /// Name and value ranges in `bytes`; names are valid UTF-8.
    entries: Vec<(Range<usize>, Range<usize>)>,
}

impl HeaderMap {
    /// The current stream's request or response headers; empty if the host has none to give.
    pub fn read(map: MapType) -> HeaderMap {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer it obtained from this module's
        // `proxy_on_memory_allocate` (a boxed slice of exactly `size` bytes) and its size; we
        // take ownership of that allocation once, with the same layout.
        let bytes = unsafe {
            match proxy_get_header_map_pairs(map, &mut data, &mut size) {
                Status::Ok if !data.is_null() => Vec::from_raw_parts(data, size, size),
                _ => Vec::new(),
            }
        };
        HeaderMap::parse(bytes)
    }

    /// Indexes a serialised map. A malformed or truncated map yields the headers read so far;
    /// a header whose name is not UTF-8 (Envoy's codecs never pass one) is left out.
    pub fn parse(bytes: Vec<u8>) -> HeaderMap {
        let mut entries = Vec::new();
        let word = |at: usize| -> Option<usize> {
            let b = bytes.get(at..at + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        if let Some(count) = word(0) {
            let mut at = 4usize.saturating_add(count.saturating_mul(8));
            entries.reserve(count.min(bytes.len() / 10));
            for n in 0..count {
                let (Some(name_len), Some(value_len)) = (word(4 + n * 8), word(8 + n * 8)) else {
                    break;
                };
                let name = at..at.saturating_add(name_len);
                let value_start = name.end.saturating_add(1);
                let value = value_start..value_start.saturating_add(value_len);
                if value.end > bytes.len() {
                    break;
                }
                at = value.end + 1;
                if bytes
                    .get(name.clone())
                    .is_some_and(|n| std::str::from_utf8(n).is_ok())
                {
                    entries.push((name, value));
                }
            }
        }
        HeaderMap { bytes, entries }
    }

    /// Every header as (name, value), in Envoy's order.
    pub fn pairs(&self) -> Vec<(&str, &[u8])> {
        self.entries
            .iter()
            .filter_map(|(n, v)| {
                let name = std::str::from_utf8(self.bytes.get(n.clone())?).ok()?;
                Some((name, self.bytes.get(v.clone())?))
            })
            .collect()
    }

    /// The first value of a header (names are lower case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| self.bytes.get(n.clone()) == Some(name.as_bytes()))
            .and_then(|(_, v)| self.bytes.get(v.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialise(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (n, v) in pairs {
            out.extend_from_slice(&(n.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (n, v) in pairs {
            out.extend_from_slice(n);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn reads_names_and_values_in_order() {
        let map = HeaderMap::parse(serialise(&[
            (b":path", b"/a?b=1"),
            (b"x-empty", b""),
            (b"user-agent", b"curl/8 \xff"),
        ]));
        assert_eq!(
            map.pairs(),
            vec![
                (":path", &b"/a?b=1"[..]),
                ("x-empty", b""),
                ("user-agent", b"curl/8 \xff"),
            ]
        );
        assert_eq!(map.get("user-agent"), Some(&b"curl/8 \xff"[..]));
        assert_eq!(map.get("accept"), None);
    }

    #[test]
    fn malformed_maps_never_panic() {
        let good = serialise(&[(b"a", b"1"), (b"b", b"22")]);
        for cut in 0..good.len() {
            let map = HeaderMap::parse(good[..cut].to_vec());
            assert!(map.pairs().len() <= 2);
        }
        assert!(HeaderMap::parse(vec![0xff; 12]).pairs().is_empty());
        assert!(HeaderMap::parse(Vec::new()).pairs().is_empty());
        let bad_name = HeaderMap::parse(serialise(&[(b"\xff", b"x"), (b"ok", b"y")]));
        assert_eq!(bad_name.pairs(), vec![("ok", &b"y"[..])]);
    }
}
