//! An iterative JSON walker: yields every key and string value with the key it belongs to.
//! No recursion and no tree, so a 10,000-deep document costs a small stack of names, not
//! the thread's stack.

use std::borrow::Cow;

/// Nesting beyond this is not something a real API sends; the caller inspects the raw body instead.
pub const MAX_JSON_DEPTH: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("malformed JSON at byte {0}")]
    Malformed(usize),
    #[error("JSON nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

/// Calls `visit(is_key, key_name, value)` for every key (`is_key = true`, value = the key)
/// and every string value (named by the nearest enclosing key).
pub fn walk_json(input: &[u8], mut visit: impl FnMut(bool, &[u8], &[u8])) -> Result<(), JsonError> {
    let mut stack: Vec<(Container, Cow<'_, [u8]>)> = Vec::new();
    let mut i = 0;
    let mut expect_key = false;
    while i < input.len() {
        let b = input[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' => i += 1,
            b'{' | b'[' => {
                if stack.len() >= MAX_JSON_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                let name = stack
                    .last()
                    .map(|(_, n)| n.clone())
                    .unwrap_or(Cow::Borrowed(b""));
                let kind = if b == b'{' {
                    Container::Object
                } else {
                    Container::Array
                };
                stack.push((kind, name));
                expect_key = kind == Container::Object;
                i += 1;
            }
            b'}' | b']' => {
                stack.pop().ok_or(JsonError::Malformed(i))?;
                expect_key = matches!(stack.last(), Some((Container::Object, _)));
                i += 1;
            }
            b'"' => {
                let (s, next) = read_string(input, i)?;
                i = next;
                let in_object = matches!(stack.last(), Some((Container::Object, _)));
                if in_object && expect_key {
                    visit(true, &s, &s);
                    if let Some((_, name)) = stack.last_mut() {
                        *name = s;
                    }
                    expect_key = false;
                } else {
                    let name = stack.last().map(|(_, n)| &n[..]).unwrap_or(b"");
                    visit(false, name, &s);
                    expect_key = in_object;
                }
            }
            _ => {
                // A number, true, false or null: skip to the next delimiter.
                let start = i;
                while i < input.len()
                    && !matches!(input[i], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                {
                    i += 1;
                }
                if !is_json_literal(&input[start..i]) {
                    return Err(JsonError::Malformed(start));
                }
                expect_key = matches!(stack.last(), Some((Container::Object, _)));
            }
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(JsonError::Malformed(input.len()))
    }
}

/// `true`, `false`, `null` or a number: the only bare tokens JSON allows.
fn is_json_literal(token: &[u8]) -> bool {
    matches!(token, b"true" | b"false" | b"null")
        || (!token.is_empty()
            && token
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            && token.iter().any(u8::is_ascii_digit))
}

/// Reads the string starting at `input[start] == '"'`, decoding escapes only when present.
/// Runs between quotes and backslashes are found with memchr and copied whole: string bodies
/// are most of a JSON document's bytes.
fn read_string(input: &[u8], start: usize) -> Result<(Cow<'_, [u8]>, usize), JsonError> {
    let body = start + 1;
    let special = |from: usize| {
        input
            .get(from..)
            .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
            .map(|p| from + p)
    };
    let mut i = special(body).ok_or(JsonError::Malformed(start))?;
    if input[i] == b'"' {
        return Ok((Cow::Borrowed(&input[body..i]), i + 1));
    }
    let mut out = Vec::with_capacity(input.len().min(i - body + 64));
    out.extend_from_slice(&input[body..i]);
    loop {
        match input[i] {
            b'"' => return Ok((Cow::Owned(out), i + 1)),
            _ => {
                let esc = *input.get(i + 1).ok_or(JsonError::Malformed(i))?;
                i += 2;
                match esc {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'u' => {
                        let cp = read_hex4(input, i)?;
                        i += 4;
                        let cp = if (0xD800..0xDC00).contains(&cp)
                            && input.get(i) == Some(&b'\\')
                            && input.get(i + 1) == Some(&b'u')
                        {
                            let low = read_hex4(input, i + 2)?;
                            if (0xDC00..0xE000).contains(&low) {
                                i += 6;
                                0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                cp
                            }
                        } else {
                            cp
                        };
                        let c = char::from_u32(cp).unwrap_or('\u{FFFD}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    other => out.push(other),
                }
            }
        }
        let next = special(i).ok_or(JsonError::Malformed(start))?;
        out.extend_from_slice(&input[i..next]);
        i = next;
    }
}

fn read_hex4(input: &[u8], at: usize) -> Result<u32, JsonError> {
    let digits = input.get(at..at + 4).ok_or(JsonError::Malformed(at))?;
    let s = std::str::from_utf8(digits).map_err(|_| JsonError::Malformed(at))?;
    u32::from_str_radix(s, 16).map_err(|_| JsonError::Malformed(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &str) -> Result<Vec<(bool, String, String)>, JsonError> {
        let mut out = Vec::new();
        walk_json(input.as_bytes(), |k, n, v| {
            out.push((
                k,
                String::from_utf8_lossy(n).into(),
                String::from_utf8_lossy(v).into(),
            ))
        })?;
        Ok(out)
    }

    #[test]
    fn keys_and_values_with_names() {
        let got = collect(r#"{"a": "x", "b": {"c": ["y", 1, {"d": "z"}]}, "n": null}"#).unwrap();
        let values: Vec<_> = got
            .iter()
            .filter(|t| !t.0)
            .map(|t| (t.1.as_str(), t.2.as_str()))
            .collect();
        assert_eq!(values, vec![("a", "x"), ("c", "y"), ("d", "z")]);
        let keys: Vec<_> = got.iter().filter(|t| t.0).map(|t| t.2.as_str()).collect();
        assert_eq!(keys, vec!["a", "b", "c", "d", "n"]);
        let after_nested = collect(r#"{"o": {"x": "1"}, "k": "v"}"#).unwrap();
        assert!(
            after_nested.contains(&(true, "k".into(), "k".into())),
            "{after_nested:?}"
        );
    }

    #[test]
    fn escapes_are_decoded() {
        let got = collect(r#"{"k\u0041": "\u003cscript\u003e \"q\" \ud83d\ude00"}"#).unwrap();
        assert_eq!(got[0].2, "kA");
        assert_eq!(got[1].2, "<script> \"q\" 😀");
    }

    #[test]
    fn escapes_next_to_each_other_and_at_the_ends() {
        let got = collect(r#"["\\", "a\\\"b", "\"", "\n\n", "x\\", "\u0041\u0042"]"#).unwrap();
        let values: Vec<_> = got.iter().map(|t| t.2.as_str()).collect();
        assert_eq!(values, vec!["\\", "a\\\"b", "\"", "\n\n", "x\\", "AB"]);
        for broken in [r#"["\"#, r#"["a\"#, r#"["a\""#, r#"["\u00"#, r#"["ab"#] {
            assert!(collect(broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn hostile_depth_is_an_error_not_a_crash() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(collect(&deep), Err(JsonError::TooDeep));
    }

    #[test]
    fn malformed_is_reported() {
        assert!(collect(r#"{"a": "unterminated"#).is_err());
        assert!(collect(r#"{"a": 1]]"#).is_err());
        assert!(
            collect(r#"{"a": { $ne: 1 }}"#).is_err(),
            "bare words are not JSON"
        );
    }
}
