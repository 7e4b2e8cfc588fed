//! Behaviour detection at one edge: the real Envoy with the vigil filter in front of the demo
//! API, a policy with behaviour detectors, and attack traffic that looks harmless one request
//! at a time. Client addresses come from `x-forwarded-for` (one trusted hop), as behind a
//! load balancer.

use std::time::Duration;

use serde_json::Value;
use vigil_e2e::{wait_until, DemoApi, Envoy, EnvoyConfig, RawRequest, Response};

struct Edge {
    envoy: Envoy,
    _api: DemoApi,
}

impl Edge {
    fn with_behaviour(behaviour: &str) -> Edge {
        let policy =
            format!(r#"{{"behaviour": {{"client_ip": {{"trusted_hops": 1}}, {behaviour}}}}}"#);
        let api = DemoApi::start();
        let envoy = Envoy::start(EnvoyConfig::gateway(api.port()).policy_json(&policy))
            .unwrap_or_else(|e| panic!("{e}"));
        Edge { envoy, _api: api }
    }

    fn send(&self, req: RawRequest, from: &str) -> Response {
        let req = req.header("x-forwarded-for", from);
        self.envoy
            .send(&req)
            .unwrap_or_else(|e| panic!("{req:?} failed: {e}"))
    }

    fn counter(&self, name: &str) -> u64 {
        self.envoy
            .stat(&format!("wasmcustom.vigil.{name}"))
            .unwrap_or(0)
    }
}

fn login(user: &str, password: &str) -> RawRequest {
    RawRequest::post("/login").json(&format!(
        r#"{{"username": "{user}", "password": "{password}"}}"#
    ))
}

fn rule(r: &Response) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["rule"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn brute_force_from_one_address_is_blocked_and_others_still_log_in() {
    let edge = Edge::with_behaviour(
        r#""brute_force": {"routes": ["/login"],
             "per_ip": {"window_secs": 60, "threshold": 5, "action": "block", "block_secs": 120}}"#,
    );
    for _ in 0..5 {
        assert_eq!(
            edge.send(login("alice", "guess"), "203.0.113.10").status,
            401
        );
    }
    // The fifth failure completed the detection: the address is now refused everywhere.
    let r = edge.send(RawRequest::get("/users/1"), "203.0.113.10");
    assert_eq!(r.status, 403);
    assert_eq!(rule(&r), "behaviour.brute_force");
    let r = edge.send(login("alice", "wonderland"), "203.0.113.10");
    assert_eq!(r.status, 403, "even the right password, from the attacker");
    assert_eq!(
        edge.send(login("alice", "wonderland"), "198.51.100.20")
            .status,
        200
    );
    assert!(wait_until(Duration::from_secs(5), || {
        edge.counter("behaviour.brute_force.block") >= 3
    }));
}

#[test]
fn credential_stuffing_many_usernames_from_one_address() {
    let edge = Edge::with_behaviour(
        r#""brute_force": {"routes": ["/login"],
             "per_ip": {"window_secs": 60, "threshold": 1000}},
           "credential_stuffing": {"window_secs": 300, "threshold": 8, "action": "block"}"#,
    );
    for i in 0..8 {
        let r = edge.send(
            login(&format!("user{i}@example.com"), "Summer2024!"),
            "192.0.2.44",
        );
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = edge.send(login("alice", "wonderland"), "192.0.2.44");
    assert_eq!(
        (r.status, rule(&r).as_str()),
        (403, "behaviour.credential_stuffing")
    );
    // A person mistyping their own password is not stuffing.
    for _ in 0..10 {
        edge.send(login("alice", "wonderlnd"), "192.0.2.45");
    }
    assert_eq!(
        edge.send(login("alice", "wonderland"), "192.0.2.45").status,
        200
    );
}

#[test]
fn bola_enumeration_of_user_ids_is_blocked() {
    let edge = Edge::with_behaviour(
        r#""bola": {"routes": [{"path": "/users/{id}", "param": "id"}],
             "distinct_ids": {"window_secs": 60, "threshold": 10, "action": "block", "block_secs": 300}}"#,
    );
    // Reading one's own record again and again is fine.
    for _ in 0..30 {
        assert_eq!(
            edge.send(RawRequest::get("/users/1"), "192.0.2.80").status,
            200
        );
    }
    let mut statuses = Vec::new();
    for id in 1..=12 {
        statuses.push(
            edge.send(RawRequest::get(format!("/users/{id}")), "203.0.113.80")
                .status,
        );
    }
    // The tenth distinct id completes the detection; the ones after are refused.
    assert!(statuses[..10].iter().all(|s| *s != 403), "{statuses:?}");
    assert_eq!(&statuses[10..], &[403, 403], "{statuses:?}");
    assert_eq!(
        edge.send(RawRequest::get("/users/1"), "192.0.2.80").status,
        200
    );
}

#[test]
fn bulk_export_exfiltration_is_blocked() {
    let edge = Edge::with_behaviour(
        r#""exfiltration": {"bytes": {"window_secs": 300, "threshold": 2000000, "action": "block"}}"#,
    );
    // Each export of 5,000 records is about 0.5 MB; the fourth crosses 2 MB.
    for i in 0..4 {
        let r = edge.send(RawRequest::get("/export?limit=5000"), "203.0.113.90");
        assert_eq!(r.status, 200, "export {i}");
    }
    let r = edge.send(RawRequest::get("/export?limit=10"), "203.0.113.90");
    assert_eq!(
        (r.status, rule(&r).as_str()),
        (403, "behaviour.exfiltration")
    );
    assert_eq!(
        edge.send(RawRequest::get("/export?limit=10"), "192.0.2.91")
            .status,
        200
    );
}

#[test]
fn rate_abuse_gets_429_with_retry_after() {
    let edge = Edge::with_behaviour(
        r#""rate_limits": [{"name": "search", "route": "/search", "key": "ip", "per_second": 0.5, "burst": 5}]"#,
    );
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            edge.send(RawRequest::get("/search?q=cup"), "203.0.113.70")
                .status,
        );
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let r = edge.send(RawRequest::get("/search?q=cup"), "203.0.113.70");
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap_or("0").parse().unwrap_or(0);
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    assert_eq!(rule(&r), "behaviour.rate_abuse");
    // Other routes and other clients are unaffected.
    assert_eq!(
        edge.send(RawRequest::get("/users/1"), "203.0.113.70")
            .status,
        200
    );
    assert_eq!(
        edge.send(RawRequest::get("/search?q=cup"), "192.0.2.71")
            .status,
        200
    );
    assert!(wait_until(Duration::from_secs(5), || {
        edge.counter("requests.limited") >= 4
    }));
}
