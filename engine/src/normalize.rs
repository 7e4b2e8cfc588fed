//! Normalisation: undo the encodings attackers use to slip payloads past signatures.
//!
//! Every step is bounded (decoding repeats at most [`MAX_DECODE_ROUNDS`] times) and works
//! on bytes, so invalid UTF-8 never stops inspection. Case is folded by the matchers
//! (ASCII case-insensitive literals and regexes), which is cheaper than copying.

use std::borrow::Cow;

/// Repeated decoding stops after this many rounds: enough for triple encoding, bounded for cost.
pub const MAX_DECODE_ROUNDS: usize = 4;

/// How a value reached us, which decides whether `+` means a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-www-form-urlencoded` (query strings, form bodies): `+` is a space.
    Form,
    /// Paths, headers, JSON strings: `+` is a plus.
    Plain,
}

/// The normalised view of one value, borrowed when nothing needed decoding (the common case).
pub fn normalize(raw: &[u8], encoding: Encoding) -> Cow<'_, [u8]> {
    let form = encoding == Encoding::Form;
    let mut found = triggers(raw);
    let decodable = PERCENT | BACKSLASH | AMPERSAND | UNUSUAL | if form { PLUS } else { 0 };
    if found & decodable == 0 && !(found & SLASH != 0 && has_comment(raw)) {
        return Cow::Borrowed(raw);
    }
    // Each pass runs only when its trigger byte is present, and its output replaces the value
    // only when it changed something: a pass that changes nothing copies nothing. A change
    // re-reads the triggers, since decoding can produce any byte.
    let mut value = Cow::Borrowed(raw);
    let mut scratch = Vec::new();
    for round in 0..MAX_DECODE_ROUNDS {
        let plus = form && round == 0;
        let mut changed = false;
        let mut pass = |value: &mut Cow<'_, [u8]>,
                        found: &mut u8,
                        run: &dyn Fn(&[u8], &mut Vec<u8>) -> bool| {
            if apply(value, &mut scratch, run) {
                changed = true;
                *found = triggers(value);
            }
        };
        if found & PERCENT != 0 || (plus && found & PLUS != 0) {
            pass(&mut value, &mut found, &|v, out| {
                percent_decode(v, plus, out)
            });
        }
        if found & BACKSLASH != 0 {
            pass(&mut value, &mut found, &decode_backslash_escapes);
        }
        if found & AMPERSAND != 0 {
            pass(&mut value, &mut found, &decode_html_entities);
        }
        if !changed {
            break;
        }
    }
    if found & UNUSUAL != 0 {
        apply(&mut value, &mut scratch, |v, out| {
            canonical_utf8(v, out);
            true
        });
        found = triggers(&value);
    }
    if found & SLASH != 0 && has_comment(&value) {
        apply(&mut value, &mut scratch, |v, out| {
            strip_sql_comments(v, out);
            true
        });
    }
    value
}

// The bytes that start some normalisation step, as bit flags of one table.
const PERCENT: u8 = 1;
const PLUS: u8 = 2;
const BACKSLASH: u8 = 4;
const AMPERSAND: u8 = 8;
/// NUL or any non-ASCII byte.
const UNUSUAL: u8 = 16;
/// May open an SQL comment.
const SLASH: u8 = 32;

static TRIGGER: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'%' as usize] = PERCENT;
    t[b'+' as usize] = PLUS;
    t[b'\\' as usize] = BACKSLASH;
    t[b'&' as usize] = AMPERSAND;
    t[0] = UNUSUAL;
    let mut b = 0x80;
    while b < 256 {
        t[b] = UNUSUAL;
        b += 1;
    }
    t[b'/' as usize] = SLASH;
    t
};

/// Every trigger present in `value`, read in one pass (eight bytes per step).
fn triggers(value: &[u8]) -> u8 {
    let mut chunks = value.chunks_exact(8);
    let mut found = 0;
    for c in &mut chunks {
        found |= crate::bytes::classes_of_eight(&TRIGGER, c);
    }
    for &b in chunks.remainder() {
        found |= TRIGGER[usize::from(b)];
    }
    found
}

fn has_comment(value: &[u8]) -> bool {
    memchr::memmem::find(value, b"/*").is_some()
}

/// Runs one pass from `value` into `scratch`; if it reports a change, its output becomes the
/// value and the previous buffer is kept as the next scratch.
fn apply(
    value: &mut Cow<'_, [u8]>,
    scratch: &mut Vec<u8>,
    pass: impl FnOnce(&[u8], &mut Vec<u8>) -> bool,
) -> bool {
    if !pass(value, scratch) {
        return false;
    }
    if let Cow::Owned(previous) = std::mem::replace(value, Cow::Owned(std::mem::take(scratch))) {
        *scratch = previous;
    }
    true
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &d| {
        Some(acc.checked_mul(16)? + u32::from(hex_val(d)?))
    })
}

fn push_char(out: &mut Vec<u8>, cp: u32) {
    let c = char::from_u32(cp).unwrap_or('\u{FFFD}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Copies `input[from..]` up to the next special byte (`next`, an offset from `from`, as memchr
/// gives it; `None`: to the end) and returns where copying stopped.
fn copy_run(input: &[u8], from: usize, next: Option<usize>, out: &mut Vec<u8>) -> usize {
    let end = next.map_or(input.len(), |off| from + off);
    out.extend_from_slice(&input[from..end]);
    end
}

/// `%XX`, IIS-style `%uXXXX`, and (for form encoding) `+`. Returns whether anything changed.
pub fn percent_decode(input: &[u8], plus_as_space: bool, out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let next = if plus_as_space {
            memchr::memchr2(b'%', b'+', &input[i..])
        } else {
            memchr::memchr(b'%', &input[i..])
        };
        i = copy_run(input, i, next, out);
        let Some(&b) = input.get(i) else { break };
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).copied().and_then(hex_val),
                input.get(i + 2).copied().and_then(hex_val),
            ) {
                out.push(h << 4 | l);
                i += 3;
                changed = true;
                continue;
            }
            if matches!(input.get(i + 1), Some(b'u' | b'U')) {
                if let Some(cp) = input.get(i + 2..i + 6).and_then(hex_number) {
                    push_char(out, cp);
                    i += 6;
                    changed = true;
                    continue;
                }
            }
        } else if b == b'+' && plus_as_space {
            out.push(b' ');
            i += 1;
            changed = true;
            continue;
        }
        out.push(b);
        i += 1;
    }
    changed
}

/// JavaScript/JSON-style `\uXXXX` and `\xXX` escapes.
pub fn decode_backslash_escapes(input: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        i = copy_run(input, i, memchr::memchr(b'\\', &input[i..]), out);
        if i == input.len() {
            break;
        }
        if input[i] == b'\\' {
            match input.get(i + 1) {
                Some(b'u' | b'U') => {
                    if let Some(cp) = input.get(i + 2..i + 6).and_then(hex_number) {
                        push_char(out, cp);
                        i += 6;
                        changed = true;
                        continue;
                    }
                }
                Some(b'x' | b'X') => {
                    if let Some(v) = input.get(i + 2..i + 4).and_then(hex_number) {
                        // \xXX names a byte; keep it a byte so overlong UTF-8 can be caught later.
                        out.push(v as u8);
                        i += 4;
                        changed = true;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(input[i]);
        i += 1;
    }
    changed
}

const NAMED_ENTITIES: &[(&[u8], u8)] = &[
    (b"lt", b'<'),
    (b"gt", b'>'),
    (b"quot", b'"'),
    (b"apos", b'\''),
    (b"amp", b'&'),
    (b"sol", b'/'),
    (b"bsol", b'\\'),
    (b"colon", b':'),
    (b"semi", b';'),
    (b"lpar", b'('),
    (b"rpar", b')'),
    (b"lsqb", b'['),
    (b"rsqb", b']'),
    (b"lbrace", b'{'),
    (b"rbrace", b'}'),
    (b"tab", b'\t'),
    (b"newline", b'\n'),
    (b"nbsp", b' '),
    (b"equals", b'='),
    (b"excl", b'!'),
    (b"num", b'#'),
    (b"dollar", b'$'),
    (b"percnt", b'%'),
    (b"period", b'.'),
    (b"comma", b','),
    (b"grave", b'`'),
    (b"quest", b'?'),
    (b"vert", b'|'),
    (b"ast", b'*'),
    (b"plus", b'+'),
];

/// HTML character references: `&#60;`, `&#x3c;` (semicolon optional, as browsers accept) and common names.
pub fn decode_html_entities(input: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        i = copy_run(input, i, memchr::memchr(b'&', &input[i..]), out);
        if i == input.len() {
            break;
        }
        if input[i] == b'&' {
            if let Some((decoded_len, consumed)) = html_entity_at(&input[i..], out) {
                debug_assert!(decoded_len > 0);
                i += consumed;
                changed = true;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    changed
}

/// Decodes one entity at the start of `s` (which begins with `&`) into `out`.
fn html_entity_at(s: &[u8], out: &mut Vec<u8>) -> Option<(usize, usize)> {
    if s.get(1) == Some(&b'#') {
        let (hex, start) = match s.get(2) {
            Some(b'x' | b'X') => (true, 3),
            _ => (false, 2),
        };
        // Leading zeros are a classic padding trick (&#0000060); allow many, bound the digits.
        let digits_end = s[start..]
            .iter()
            .take(12)
            .position(|b| {
                if hex {
                    !b.is_ascii_hexdigit()
                } else {
                    !b.is_ascii_digit()
                }
            })
            .map_or((s.len()).min(start + 12), |p| start + p);
        if digits_end == start {
            return None;
        }
        let digits = &s[start..digits_end];
        let cp = if hex {
            hex_number(digits)?
        } else {
            digits.iter().try_fold(0u32, |acc, &d| {
                acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
            })?
        };
        let consumed = if s.get(digits_end) == Some(&b';') {
            digits_end + 1
        } else {
            digits_end
        };
        let before = out.len();
        push_char(out, cp);
        return Some((out.len() - before, consumed));
    }
    let name_end = s[1..]
        .iter()
        .take(10)
        .position(|b| !b.is_ascii_alphabetic())?
        + 1;
    if s.get(name_end) != Some(&b';') {
        return None;
    }
    let name = &s[1..name_end];
    let &(_, ch) = NAMED_ENTITIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    out.push(ch);
    Some((1, name_end + 1))
}

/// Makes text canonical for matching: overlong UTF-8 forms become the ASCII they hide
/// (`%c0%af` is `/`), invalid bytes and NULs are dropped, full-width and look-alike
/// punctuation maps to ASCII, and odd spaces become a plain space.
pub fn canonical_utf8(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == 0 {
            i += 1;
            continue;
        }
        if b < 0x80 {
            // A run of plain ASCII is copied as it is.
            let end = input[i..]
                .iter()
                .position(|&c| c == 0 || c >= 0x80)
                .map_or(input.len(), |p| i + p);
            out.extend_from_slice(&input[i..end]);
            i = end;
            continue;
        }
        let len = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            0xF8..=0xFB => 5,
            0xFC..=0xFD => 6,
            _ => {
                i += 1; // stray continuation or invalid lead byte
                continue;
            }
        };
        let Some(seq) = input.get(i..i + len) else {
            i += 1;
            continue;
        };
        if !seq[1..].iter().all(|&c| c & 0xC0 == 0x80) {
            i += 1;
            continue;
        }
        let lead_bits = u32::from(b) & (0x7F >> len);
        let cp = seq[1..]
            .iter()
            .fold(lead_bits, |acc, &c| (acc << 6) | u32::from(c & 0x3F));
        i += len;
        match cp {
            0 => {}
            0x01..=0x7F => {
                // Overlong ASCII. IIS also took `%c1%af` and friends as '/' by keeping only the
                // low bits of the last byte, so separators found that way win.
                let low = seq[len - 1] & 0x3F;
                out.push(if matches!(low, b'.' | b'/') {
                    low
                } else {
                    cp as u8
                });
            }
            0xA0 | 0x2000..=0x200B | 0x3000 => out.push(b' '),
            // Typographic quotes: some databases fold them to ASCII quotes.
            0x2018 | 0x2019 | 0x201A | 0x201B | 0x2032 => out.push(b'\''),
            0x201C | 0x201D | 0x201E | 0x2033 => out.push(b'"'),
            0xFF01..=0xFF5E => out.push((cp - 0xFEE0) as u8), // full-width forms
            0x2215 | 0x2044 | 0xFE68 => out.push(b'/'),
            0x2216 | 0x29F5 => out.push(b'\\'),
            // Private-use code points carry no text in an API; IIS "best fit" decoding
            // turned some into separators, so treat them as one.
            0xE000..=0xF8FF => out.push(b'/'),
            _ if len <= 4 && char::from_u32(cp).is_some() => out.extend_from_slice(seq),
            _ => {}
        }
    }
}

/// Replaces SQL block comments with a space (`UN/**/ION` tricks aside, `/**/` is used as
/// whitespace); MySQL version comments `/*!50000select*/` keep their content.
pub fn strip_sql_comments(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < input.len() {
        i = copy_run(input, i, find(&input[i..], b"/*"), out);
        if i == input.len() {
            break;
        }
        if input[i] == b'/' && input.get(i + 1) == Some(&b'*') {
            if let Some(end) = find(&input[i + 2..], b"*/") {
                let inner = &input[i + 2..i + 2 + end];
                out.push(b' ');
                if let Some(rest) = inner.strip_prefix(b"!") {
                    let body_start = rest
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .unwrap_or(rest.len());
                    out.extend_from_slice(&rest[body_start..]);
                    out.push(b' ');
                }
                i += 2 + end + 2;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Resolves `.` and `..` segments and collapses duplicate slashes (RFC 3986 5.2.4),
/// on an already-decoded path. Used for route matching and probe-path checks.
pub fn normalize_path(decoded: &[u8]) -> Vec<u8> {
    let mut segments: Vec<&[u8]> = Vec::new();
    let unified: Vec<u8> = decoded
        .iter()
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect();
    let trailing_slash =
        unified.ends_with(b"/") || unified.ends_with(b"/.") || unified.ends_with(b"/..");
    for seg in unified.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for seg in &segments {
        out.push(b'/');
        out.extend_from_slice(seg);
    }
    if out.is_empty() || (trailing_slash && !segments.is_empty()) {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        String::from_utf8_lossy(&normalize(s.as_bytes(), Encoding::Form)).into_owned()
    }

    #[test]
    fn plain_values_are_borrowed() {
        assert!(matches!(
            normalize(b"hello world 42", Encoding::Form),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn percent_and_plus() {
        assert_eq!(norm("a%20b+c"), "a b c");
        assert_eq!(
            String::from_utf8_lossy(&normalize(b"a+b", Encoding::Plain)),
            "a+b",
            "plus is literal outside form encoding"
        );
    }

    #[test]
    fn repeated_encoding_is_undone_but_bounded() {
        assert_eq!(norm("%2527"), "'");
        assert_eq!(norm("%25252527"), "'");
        // Five layers exceed the bound; what remains is still partly encoded, not an error.
        assert_eq!(norm("%252525252527"), "%2527");
    }

    #[test]
    fn plus_decoding_happens_once() {
        // %2B is a literal plus in the data; a second round must not turn it into a space.
        assert_eq!(norm("1%2B1"), "1+1");
    }

    #[test]
    fn iis_unicode_and_backslash_escapes() {
        assert_eq!(norm("%u003cscript%u003e"), "<script>");
        assert_eq!(norm("\\u003cscript\\x3e"), "<script>");
    }

    #[test]
    fn html_entities() {
        assert_eq!(norm("&lt;img&gt;"), "<img>");
        assert_eq!(norm("&#60;&#x3C;&#0000060"), "<<<");
        assert_eq!(norm("java&#115;cript&colon;"), "javascript:");
        assert_eq!(norm("AT&T rocks"), "AT&T rocks");
    }

    #[test]
    fn overlong_and_invalid_utf8() {
        assert_eq!(norm("..%c0%af..%c0%afetc"), "../../etc");
        assert_eq!(norm("%e0%80%af"), "/");
        assert_eq!(norm("%f8%80%80%80%af"), "/");
        assert_eq!(norm("a%ffb%c0"), "ab");
        assert_eq!(norm("caf%C3%A9"), "café", "valid UTF-8 is kept");
    }

    #[test]
    fn fullwidth_and_lookalike_separators() {
        assert_eq!(norm("%uff0e%uff0e%u2216etc"), "..\\etc");
        assert_eq!(norm("%uff1cscript%uff1e"), "<script>");
    }

    #[test]
    fn null_bytes_are_dropped() {
        assert_eq!(norm("etc%00/passwd"), "etc/passwd");
    }

    #[test]
    fn sql_comments() {
        assert_eq!(norm("union/**/select"), "union select");
        assert_eq!(norm("/*!50000union*/select"), " union select");
        assert_eq!(norm("a/*unclosed"), "a/*unclosed");
    }

    #[test]
    fn path_dot_segments_and_slashes() {
        assert_eq!(normalize_path(b"/a//b/./c/../d"), b"/a/b/d");
        assert_eq!(normalize_path(b"/../../etc/passwd"), b"/etc/passwd");
        assert_eq!(normalize_path(b"/users/"), b"/users/");
        assert_eq!(normalize_path(b""), b"/");
        assert_eq!(normalize_path(b"\\a\\..\\b"), b"/b");
    }
}
