//! Results for inputs that repeat from request to request, kept per compiled policy: the same
//! clients send the same `User-Agent`, `Accept` and bearer token every time, and APIs use the
//! same parameter and JSON key names. A hit skips normalising and scanning (or decoding a
//! token) and gives exactly what recomputing would: keys are compared in full, never by hash
//! alone, and the cached result is a pure function of the key and the policy.
//!
//! Bounded: a fixed number of slots, each keeping one key and its result; a new key replaces
//! whatever shared its slot. Keys longer than [`MAX_KEY`] bytes are not kept.

use std::sync::Mutex;

use crate::bytes;

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
    /// A power of two in length, so a slot is found with a mask, not a division.
    slots: Mutex<Vec<Option<Slot<V>>>>,
}

impl<V> Memo<V> {
    /// A memo of at least `slots` slots (rounded up to a power of two).
    pub fn new(slots: usize) -> Memo<V> {
        Memo {
            slots: Mutex::new(
                (0..slots.max(1).next_power_of_two())
                    .map(|_| None)
                    .collect(),
            ),
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
                    && bytes::equal(&s.key[..s.split], a)
                    && bytes::equal(&s.key[s.split..], b) =>
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
    (hash >> 32) as usize & (len - 1)
}

const K: u64 = 0x517c_c1b7_2722_0a95;

/// A fast multiplicative hash, eight bytes per step (the keys are compared in full anyway).
fn hash(tag: u8, a: &[u8], b: &[u8]) -> u64 {
    let h = u64::from(tag).wrapping_mul(K);
    mix_part(mix_part(h, a), b)
}

fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(K)
}

/// Adds one part and its length. A part's tail is one more word, not a byte per step: its
/// last eight bytes (overlapping those already read), or for a short part, its bytes packed.
fn mix_part(mut h: u64, part: &[u8]) -> u64 {
    let n = part.len();
    let mut words = part.chunks_exact(8);
    for w in &mut words {
        h = mix(h, bytes::word8(w));
    }
    let tail = match words.remainder().len() {
        0 => 0,
        _ if n >= 8 => bytes::word8(&part[n - 8..]),
        4.. => u64::from(word4(part)) << 32 | u64::from(word4(&part[n - 4..])),
        _ => u64::from(part[0]) << 16 | u64::from(part[n / 2]) << 8 | u64::from(part[n - 1]),
    };
    mix(mix(h, tail), n as u64)
}

/// The first four bytes of `s` (the caller passes at least four).
fn word4(s: &[u8]) -> u32 {
    u32::from_le_bytes([s[0], s[1], s[2], s[3]])
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
    fn keys_of_every_length_hit_only_themselves() {
        let m = Memo::new(4096);
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..text.len() {
            m.put(3, &text[..n], b"v", n as u32);
            assert_eq!(get(&m, 3, &text[..n], b"v"), Some(n as u32));
            for at in 0..n {
                let mut other = text[..n].to_vec();
                other[at] = b'#';
                assert_eq!(get(&m, 3, &other, b"v"), None, "len {n}, changed at {at}");
            }
        }
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
