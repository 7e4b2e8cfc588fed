//! How policy settings change verdicts: mode, actions, threshold, exceptions, routes, custom rules.

use vigil_engine::{CompiledPolicy, Outcome, Request, RuleAction};

const SQLI: &str = "/search?q=1%27%20OR%20%271%27%3D%271";

fn verdict(
    policy: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (Outcome, Option<String>, bool, usize) {
    let policy = CompiledPolicy::from_json(policy).unwrap();
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let req = Request {
        method,
        target: target.as_bytes(),
        headers: &headers,
        body: None,
        body_truncated: false,
    };
    let v = policy.inspect(&req, &|| 1_800_000_000);
    (
        v.outcome,
        v.blocking_rule.map(|r| r.id.clone()),
        v.would_block,
        v.findings.len(),
    )
}

#[test]
fn monitor_mode_records_but_passes() {
    let (outcome, rule, would_block, findings) =
        verdict(r#"{"mode": "monitor"}"#, "GET", SQLI, &[]);
    assert_eq!(outcome, Outcome::Monitor);
    assert!(would_block && findings > 0);
    assert_eq!(rule.as_deref(), Some("sqli-quote-boolean"));
}

#[test]
fn monitor_action_on_a_pack() {
    let (outcome, _, would_block, findings) = verdict(
        r#"{"packs": {"sqli": {"action": "monitor"}}}"#,
        "GET",
        SQLI,
        &[],
    );
    assert_eq!((outcome, would_block), (Outcome::Monitor, false));
    assert!(findings > 0);
}

#[test]
fn threshold_decides() {
    // A single critical finding scores 5: blocks at the default threshold, not at 11.
    assert_eq!(verdict("", "GET", SQLI, &[]).0, Outcome::Block);
    assert_eq!(
        verdict(r#"{"anomaly_threshold": 100}"#, "GET", SQLI, &[]).0,
        Outcome::Monitor
    );
}

#[test]
fn exceptions_scope_by_rule_route_and_param() {
    let p = r#"{"exceptions": [{"rule": "sqli", "route": "/search", "param": "q"}]}"#;
    assert_eq!(verdict(p, "GET", SQLI, &[]).0, Outcome::Allow);
    assert_eq!(
        verdict(p, "GET", "/search?other=1%27%20OR%20%271%27%3D%271", &[]).0,
        Outcome::Block,
        "other param"
    );
    assert_eq!(
        verdict(p, "GET", "/orders?q=1%27%20OR%20%271%27%3D%271", &[]).0,
        Outcome::Block,
        "other route"
    );
    let by_id = r#"{"exceptions": [{"rule": "sqli-quote-boolean", "route": "/**"}]}"#;
    assert_ne!(
        verdict(by_id, "GET", SQLI, &[]).1.as_deref(),
        Some("sqli-quote-boolean")
    );
}

#[test]
fn protected_routes_need_credentials() {
    let p = r#"{"routes": [{"path": "/users/{id}", "methods": ["GET"], "require_auth": true}]}"#;
    assert_eq!(
        verdict(p, "GET", "/users/7", &[]).1.as_deref(),
        Some("auth-missing")
    );
    assert_eq!(
        verdict(p, "GET", "/users/7", &[("authorization", "Bearer opaque")]).0,
        Outcome::Allow
    );
    assert_eq!(
        verdict(p, "GET", "/users/7", &[("x-api-key", "k1")]).0,
        Outcome::Allow
    );
    assert_eq!(
        verdict(
            p,
            "GET",
            "/users/7",
            &[("cookie", "theme=dark; session=abc")]
        )
        .0,
        Outcome::Allow
    );
    assert_eq!(
        verdict(p, "GET", "/users/7", &[("cookie", "theme=dark")]).0,
        Outcome::Block
    );
    assert_eq!(
        verdict(p, "DELETE", "/users/7", &[]).0,
        Outcome::Allow,
        "method not listed"
    );
    assert_eq!(
        verdict(p, "GET", "/users/7/../7", &[]).0,
        Outcome::Block,
        "dot segments cannot dodge the route"
    );
}

#[test]
fn custom_rules() {
    let p = r#"{"custom_rules": [
        {"id": "no-debug", "targets": ["query_names"], "one_of": ["debug", "trace"]},
        {"id": "internal-header", "targets": ["header:x-internal"], "contains": "yes", "action": "monitor"},
        {"id": "big-limit", "targets": ["param:limit"], "pattern": "^\\d{5,}$"}
    ]}"#;
    assert_eq!(
        verdict(p, "GET", "/a?debug=1", &[]).1.as_deref(),
        Some("no-debug")
    );
    assert_eq!(
        verdict(p, "GET", "/a?DEBUG=1", &[]).0,
        Outcome::Block,
        "case-insensitive by default"
    );
    assert_eq!(verdict(p, "GET", "/a?debugger=1", &[]).0, Outcome::Allow);
    assert_eq!(
        verdict(p, "GET", "/a", &[("x-internal", "YES")]).0,
        Outcome::Monitor
    );
    assert_eq!(
        verdict(p, "GET", "/export?limit=100000", &[]).1.as_deref(),
        Some("big-limit")
    );
    assert_eq!(
        verdict(p, "GET", "/export?offset=100000", &[]).0,
        Outcome::Allow
    );
}

#[test]
fn jwt_checks() {
    // {"alg":"none"} . {"sub":"alice"} . (empty)
    let none = "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.";
    assert_eq!(
        verdict("", "GET", "/me", &[("authorization", none)])
            .1
            .as_deref(),
        Some("jwt-alg-none")
    );
    // {"alg":"HS256"} . {"sub":"a","exp":1} . sig: expired is recorded, not blocked.
    let expired = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxfQ.c2ln";
    let (outcome, _, _, findings) = verdict("", "GET", "/me", &[("authorization", expired)]);
    assert_eq!((outcome, findings), (Outcome::Monitor, 1));
    let p = CompiledPolicy::builtin().unwrap();
    let exp_rule = p.rules().find(|(r, _)| r.id == "jwt-expired").unwrap().0;
    assert_eq!(exp_rule.action, RuleAction::Monitor);
}

#[test]
fn oversized_header_values_are_findings() {
    let big = "a".repeat(9000);
    let (outcome, _, _, findings) = verdict("", "GET", "/", &[("x-big", &big)]);
    assert_eq!(
        (outcome, findings),
        (Outcome::Monitor, 1),
        "high severity alone stays below the threshold"
    );
    let (outcome, rule, _, _) = verdict(
        r#"{"anomaly_threshold": 4}"#,
        "GET",
        "/",
        &[("x-big", &big)],
    );
    assert_eq!(
        (outcome, rule.as_deref()),
        (Outcome::Block, Some("header-oversized"))
    );
}

#[test]
fn hostile_inputs_never_panic() {
    let policy = CompiledPolicy::builtin().unwrap();
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let bodies: Vec<Vec<u8>> = vec![
        deep.into_bytes(),
        vec![0xff; 70_000],
        b"%%%%%%%u%u12%c0%c1%e0%80%f8%80%80%80".repeat(1000),
        b"&#99999999999999999999;&#x110000;&#;\\u{zz}\\uD800\\x".to_vec(),
        b"--b\r\nContent-Disposition: form-data; name=\"".to_vec(),
        b"<![CDATA[<!--<a b='".to_vec(),
    ];
    let types = [
        "application/json",
        "application/xml",
        "multipart/form-data; boundary=b",
        "application/x-www-form-urlencoded",
        "text/plain",
    ];
    for body in &bodies {
        for ct in types {
            let headers: Vec<(&str, &[u8])> = vec![
                ("content-type", ct.as_bytes()),
                ("cookie", b"=;;=x; a"),
                ("authorization", b"Bearer a.b.c.d"),
            ];
            let req = Request {
                method: "POST",
                target: b"/%ff/..%c0?a=%&=&&b",
                headers: &headers,
                body: Some(body),
                body_truncated: true,
            };
            let v = policy.inspect(&req, &|| 0);
            assert!(v.body_truncated);
        }
    }
}

/// Random requests built from fragments that exercise every decoder: none may panic, and the
/// verdict must be internally consistent.
#[test]
fn random_requests_never_panic() {
    const PIECES: &[&[u8]] = &[
        b"%",
        b"%2",
        b"%25",
        b"%u",
        b"%uff0e",
        b"%c0",
        b"%af",
        b"\\u00",
        b"\\x",
        b"&#",
        b"&#x3c",
        b"&lt",
        b";",
        b"/*",
        b"*/",
        b"/*!",
        b"..",
        b"/",
        b"\\",
        b"'",
        b"\"",
        b"<",
        b">",
        b"{",
        b"}",
        b"[",
        b"]",
        b"$",
        b"${",
        b"{{",
        b"=",
        b"&",
        b"+",
        b"union",
        b"select",
        b"script",
        b"jndi:",
        b"\xff",
        b"\xc0",
        b"\xe0\x80",
        b"\0",
        b" ",
        b"a",
        b"0",
        b"\r\n",
        b"--b",
    ];
    let policy = CompiledPolicy::builtin().unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let types = [
        "application/json",
        "application/xml",
        "multipart/form-data; boundary=b",
        "application/x-www-form-urlencoded",
        "text/plain",
    ];
    for _ in 0..3000 {
        let mut piece = |n: u64| -> Vec<u8> {
            let mut out = Vec::new();
            for _ in 0..(next() % n) {
                out.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            out
        };
        let target = [b"/".to_vec(), piece(12), b"?".to_vec(), piece(12)].concat();
        let header_value = piece(8);
        let body = piece(40);
        let ct = types[(next() % types.len() as u64) as usize];
        let headers: Vec<(&str, &[u8])> = vec![
            ("content-type", ct.as_bytes()),
            ("x-custom", &header_value),
            ("cookie", &header_value),
        ];
        let req = Request {
            method: "POST",
            target: &target,
            headers: &headers,
            body: Some(&body),
            body_truncated: false,
        };
        let v = policy.inspect(&req, &|| 0);
        assert_eq!(v.outcome == Outcome::Block, v.blocking_rule.is_some());
        assert!(v.findings.iter().all(|f| f.fragment.chars().count() <= 65));
    }
}
