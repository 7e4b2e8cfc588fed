//! Byte-string helpers shaped for wasm as much as for native code: in wasm32-wasip1, slice
//! equality calls libc's `memcmp`, which compares one byte per step, and a table scan that
//! branches on every byte costs a branch per byte.

/// Whether `a` and `b` hold the same bytes, compared sixteen (or eight) at a time.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 16 {
        // Whole sixteen-byte words, then the last sixteen bytes (overlapping the words read).
        let words = a
            .chunks_exact(16)
            .zip(b.chunks_exact(16))
            .all(|(x, y)| word16(x) == word16(y));
        return words && word16(&a[n - 16..]) == word16(&b[n - 16..]);
    }
    if n >= 8 {
        return word8(a) == word8(b) && word8(&a[n - 8..]) == word8(&b[n - 8..]);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// The first sixteen bytes of `s` (the callers pass at least sixteen) as one number.
#[inline(always)]
fn word16(s: &[u8]) -> u128 {
    let mut w = [0; 16];
    w.copy_from_slice(&s[..16]);
    u128::from_le_bytes(w)
}

/// The first eight bytes of `s` (the callers pass at least eight) as one number.
#[inline(always)]
pub(crate) fn word8(s: &[u8]) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&s[..8]);
    u64::from_le_bytes(w)
}

/// The OR of `table`'s entries for the first eight bytes of `chunk` (which has at least eight):
/// whole-value scans take one branch per eight bytes this way.
#[inline(always)]
pub(crate) fn classes_of_eight(table: &[u8; 256], chunk: &[u8]) -> u8 {
    chunk
        .iter()
        .take(8)
        .fold(0, |acc, &b| acc | table[usize::from(b)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_agrees_with_slice_equality_at_every_length_and_position() {
        let base: Vec<u8> = (0..70u8).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            let copy = a.to_vec();
            assert!(equal(a, &copy), "len {n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!equal(a, &b), "len {n}, differs at {at}");
            }
            assert!(!equal(a, &base[..n + 1]), "len {n} against {}", n + 1);
        }
    }
}
