//! Percent-decoding and `application/x-www-form-urlencoded` parsing.

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes (and `+` as space when `plus_as_space`). Malformed escapes are
/// kept literally, as browsers and most servers do.
pub fn percent_decode(input: &[u8], plus_as_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => {
                let hi = input.get(i + 1).copied().and_then(hex_val);
                let lo = input.get(i + 2).copied().and_then(hex_val);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Decodes one form/query component to text (invalid UTF-8 is replaced).
pub fn decode_component(input: &[u8]) -> String {
    String::from_utf8_lossy(&percent_decode(input, true)).into_owned()
}

/// Parses `a=1&b=two+words&c` into decoded pairs (a key without `=` has an empty value).
pub fn parse_form(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.iter().position(|&b| b == b'=') {
            Some(eq) => (
                decode_component(&part[..eq]),
                decode_component(&part[eq + 1..]),
            ),
            None => (decode_component(part), String::new()),
        })
        .collect()
}

/// The first value of `key` in a query string or form body.
pub fn form_value(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(percent_decode(b"a%20b+c", true), b"a b c");
        assert_eq!(percent_decode(b"a%20b+c", false), b"a b+c");
        assert_eq!(percent_decode(b"%zz%4", true), b"%zz%4");
        assert_eq!(percent_decode(b"%C3%A9", false), "é".as_bytes());
        assert_eq!(decode_component(b"%FF"), "\u{fffd}");
    }

    #[test]
    fn parses_forms() {
        let pairs = parse_form(b"q=al+ice&x=%3D%26&flag&&y=");
        assert_eq!(
            pairs,
            vec![
                ("q".into(), "al ice".into()),
                ("x".into(), "=&".into()),
                ("flag".into(), String::new()),
                ("y".into(), String::new()),
            ]
        );
        assert_eq!(form_value(&pairs, "x").as_deref(), Some("=&"));
        assert_eq!(form_value(&pairs, "nope"), None);
    }
}
