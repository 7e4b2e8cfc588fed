//! JWT shape checks on `Authorization: Bearer`. Signatures are verified by Envoy's
//! `jwt_authn`; here we catch tokens no verifier should ever see: `alg: none`, garbage, expired.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtProblem {
    AlgNone,
    Malformed,
    Expired,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<serde_json::Value>,
}

/// What a bearer token says before the clock is consulted: decoding is the costly part, and a
/// client sends the same token on every request, so callers may keep this per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenShape {
    /// Opaque, or a JWT without `exp`, or a JWE.
    Fine,
    Problem(JwtProblem),
    /// A JWT with this `exp` (seconds since the epoch).
    Expires(u64),
}

impl TokenShape {
    /// The problem at time `now_unix_secs` (called only for a token that expires).
    pub fn problem(
        self,
        now_unix_secs: impl FnOnce() -> u64,
        leeway_secs: u64,
    ) -> Option<JwtProblem> {
        match self {
            TokenShape::Fine => None,
            TokenShape::Problem(p) => Some(p),
            TokenShape::Expires(exp) => {
                (exp.saturating_add(leeway_secs) < now_unix_secs()).then_some(JwtProblem::Expired)
            }
        }
    }
}

/// Checks a bearer token. Tokens that are not JWT-shaped (no dots) are opaque and fine.
pub fn check_bearer(
    token: &[u8],
    now_unix_secs: impl FnOnce() -> u64,
    leeway_secs: u64,
) -> Option<JwtProblem> {
    token_shape(token).problem(now_unix_secs, leeway_secs)
}

/// Decodes what [`check_bearer`] needs from a token.
pub fn token_shape(token: &[u8]) -> TokenShape {
    use TokenShape::{Expires, Fine, Problem};
    let parts: Vec<&[u8]> = token.split(|&b| b == b'.').collect();
    if parts.len() == 1 {
        return Fine;
    }
    if parts.len() != 3 && parts.len() != 5 {
        return Problem(JwtProblem::Malformed);
    }
    let Some(header_json) = base64url_decode(parts[0]) else {
        return Problem(JwtProblem::Malformed);
    };
    let Ok(header) = serde_json::from_slice::<Header>(&header_json) else {
        return Problem(JwtProblem::Malformed);
    };
    match header.alg.as_deref() {
        None => return Problem(JwtProblem::Malformed),
        Some(alg) if alg.eq_ignore_ascii_case("none") => return Problem(JwtProblem::AlgNone),
        _ => {}
    }
    if parts.len() == 5 {
        return Fine; // JWE: the payload is encrypted
    }
    if parts[2].is_empty() {
        return Problem(JwtProblem::Malformed); // a signed algorithm with the signature stripped
    }
    let Some(payload) = base64url_decode(parts[1]) else {
        return Problem(JwtProblem::Malformed);
    };
    let Ok(claims) = serde_json::from_slice::<Claims>(&payload) else {
        return Problem(JwtProblem::Malformed);
    };
    match claims.exp {
        None => Fine,
        Some(v) => match v.as_f64() {
            Some(e) if e.is_finite() && e >= 0.0 => Expires(e as u64),
            _ => Problem(JwtProblem::Malformed),
        },
    }
}

/// Decodes base64url (and tolerates standard base64 and padding).
pub fn base64url_decode(input: &[u8]) -> Option<Vec<u8>> {
    let input = input
        .strip_suffix(b"==")
        .or_else(|| input.strip_suffix(b"="))
        .unwrap_or(input);
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits >= 6 {
        return None; // a single dangling character cannot encode a byte
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    fn token(header: &str, payload: &str, sig: &str) -> Vec<u8> {
        format!("{}.{}.{}", b64(header), b64(payload), sig).into_bytes()
    }

    #[test]
    fn decode_roundtrip() {
        assert_eq!(
            base64url_decode(b64("hello world!?").as_bytes()).unwrap(),
            b"hello world!?"
        );
        assert!(base64url_decode(b"a").is_none());
        assert!(base64url_decode(b"ab$c").is_none());
    }

    #[test]
    fn problems() {
        let now = || 1_000_000;
        assert_eq!(check_bearer(b"opaque-token-123", now, 60), None);
        assert_eq!(
            check_bearer(&token(r#"{"alg":"none"}"#, r#"{"sub":"a"}"#, ""), now, 60),
            Some(JwtProblem::AlgNone)
        );
        assert_eq!(
            check_bearer(&token(r#"{"alg":"NoNe"}"#, r#"{"sub":"a"}"#, "x"), now, 60),
            Some(JwtProblem::AlgNone)
        );
        assert_eq!(
            check_bearer(
                &token(r#"{"alg":"HS256"}"#, r#"{"exp":999000}"#, "sig"),
                now,
                60
            ),
            Some(JwtProblem::Expired)
        );
        assert_eq!(
            check_bearer(
                &token(r#"{"alg":"HS256"}"#, r#"{"exp":999990}"#, "sig"),
                now,
                60
            ),
            None,
            "within leeway"
        );
        assert_eq!(
            check_bearer(
                &token(r#"{"alg":"HS256"}"#, r#"{"exp":2000000}"#, "sig"),
                now,
                60
            ),
            None
        );
        assert_eq!(
            check_bearer(b"abc.def", now, 60),
            Some(JwtProblem::Malformed)
        );
        assert_eq!(
            check_bearer(&token("not json", "{}", "s"), now, 60),
            Some(JwtProblem::Malformed)
        );
        assert_eq!(
            check_bearer(&token(r#"{"alg":"HS256"}"#, r#"{"sub":"a"}"#, ""), now, 60),
            Some(JwtProblem::Malformed)
        );
    }

    #[test]
    fn clock_is_only_read_when_needed() {
        let panicking_clock = || -> u64 { panic!("clock read for a token without exp") };
        assert_eq!(
            check_bearer(
                &token(r#"{"alg":"RS256"}"#, r#"{"sub":"a"}"#, "s"),
                panicking_clock,
                0
            ),
            None
        );
    }
}
