//! Results for inputs that repeat from request to request, kept per compiled policy: the same
//! clients send the same `User-Agent`, `Accept` and bearer token every time, and APIs use the
//! same parameter and JSON key names. A hit skips normalising and scanning (or decoding a
//! token) and gives exactly what recomputing would: keys are compared in full, never by hash
//! alone, and the cached result is a pure function of the key and the policy.
//!
//! Bounded: a fixed number of slots, each keeping one key and its result; a new key replaces
//! whatever shared its slot. Keys longer than [`MAX_KEY`] bytes are not kept.

use std::sync::Mutex;

/// Inputs longer than this are scanned every time (they are rarely repeated verbatim).
pub const MAX_KEY: usize = 512;

struct Slot<V> {
    hash: u64,
    tag: u8,
    key: Vec<u8>,
    /// Where `key` splits into its two parts (e.g. a header name and its value).
    split: usize,
    value: V,
}

pub struct Memo<V> {
    slots: Mutex<Vec<Option<Slot<V>>>>,
}

impl<V> Memo<V> {
    pub fn new(slots: usize) -> Memo<V> {
        Memo {
            slots: Mutex::new((0..slots.max(1)).map(|_| None).collect()),
        }
    }

    /// Calls `use_hit` with the result stored for (`tag`, `a`, `b`) and returns true, or
    /// returns false. A busy memo (another thread) counts as a miss.
    pub fn get(&self, tag: u8, a: &[u8], b: &[u8], use_hit: impl FnOnce(&V)) -> bool {
        if a.len() + b.len() > MAX_KEY {
            return false;
        }
        let hash = hash(tag, a, b);
        let Ok(slots) = self.slots.try_lock() else {
            return false;
        };
        let len = slots.len();
        match &slots[index(hash, len)] {
            Some(s)
                if s.hash == hash
                    && s.tag == tag
                    && s.split == a.len()
                    && s.key[..s.split] == *a
                    && s.key[s.split..] == *b =>
            {
                use_hit(&s.value);
                true
            }
            _ => false,
        }
    }

    /// Stores the result for (`tag`, `a`, `b`), reusing the slot's buffers.
    pub fn put(&self, tag: u8, a: &[u8], b: &[u8], value: V) {
        if a.len() + b.len() > MAX_KEY {
            return;
        }
        let hash = hash(tag, a, b);
        let Ok(mut slots) = self.slots.try_lock() else {
            return;
        };
        let len = slots.len();
        let slot = &mut slots[index(hash, len)];
        let mut key = slot.take().map(|s| s.key).unwrap_or_default();
        key.clear();
        key.extend_from_slice(a);
        key.extend_from_slice(b);
        *slot = Some(Slot {
            hash,
            tag,
            key,
            split: a.len(),
            value,
        });
    }
}

fn index(hash: u64, len: usize) -> usize {
    (hash >> 32) as usize % len
}

/// A fast multiplicative hash, eight bytes at a time (the keys are compared in full anyway).
fn hash(tag: u8, a: &[u8], b: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = u64::from(tag).wrapping_add(a.len() as u64).wrapping_mul(K);
    for part in [a, b] {
        let mut chunks = part.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
        h = (h.rotate_left(5) ^ 0xff).wrapping_mul(K);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(m: &Memo<u32>, tag: u8, a: &[u8], b: &[u8]) -> Option<u32> {
        let mut out = None;
        m.get(tag, a, b, |v| out = Some(*v));
        out
    }

    #[test]
    fn hits_only_the_exact_key() {
        let m = Memo::new(8);
        m.put(1, b"user-agent", b"curl/8", 7);
        assert_eq!(get(&m, 1, b"user-agent", b"curl/8"), Some(7));
        assert_eq!(get(&m, 2, b"user-agent", b"curl/8"), None, "other tag");
        assert_eq!(get(&m, 1, b"user-agentc", b"url/8"), None, "other split");
        assert_eq!(get(&m, 1, b"user-agent", b"curl/9"), None);
    }

    #[test]
    fn bounded_and_replacing() {
        let m = Memo::new(4);
        for i in 0..100u32 {
            m.put(0, &i.to_le_bytes(), b"", i);
        }
        let kept = (0..100u32)
            .filter(|i| get(&m, 0, &i.to_le_bytes(), b"") == Some(*i))
            .count();
        assert!((1..=4).contains(&kept), "{kept}");
        let long = vec![b'a'; MAX_KEY + 1];
        m.put(0, &long, b"", 1);
        assert_eq!(get(&m, 0, &long, b""), None, "long keys are not kept");
    }
}
