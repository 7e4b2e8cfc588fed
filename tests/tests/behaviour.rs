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
        Edge::with_workers(behaviour, 1)
    }

    fn with_workers(behaviour: &str, workers: u16) -> Edge {
        let policy =
            format!(r#"{{"behaviour": {{"client_ip": {{"trusted_hops": 1}}, {behaviour}}}}}"#);
        let api = DemoApi::start();
        let config = EnvoyConfig::gateway(api.port())
            .policy_json(&policy)
            .concurrency(workers);
        let envoy = Envoy::start(config).unwrap_or_else(|e| panic!("{e}"));
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
fn a_penalty_one_worker_decides_holds_on_every_worker_without_a_control_plane() {
    let edge = Edge::with_workers(
        r#""brute_force": {"routes": ["/login"],
             "per_ip": {"window_secs": 60, "threshold": 3, "action": "block", "block_secs": 120}}"#,
        2,
    );
    // Each request is a new connection, so the failures land on either worker; keep failing
    // until one worker has seen three.
    let mut refused = false;
    for _ in 0..40 {
        if edge.send(login("alice", "guess"), "203.0.113.11").status == 403 {
            refused = true;
            break;
        }
    }
    assert!(refused, "no worker ever detected the brute force");
    // Every worker refuses the address after at most one tick (100 ms): twenty fresh
    // connections in a row, spread over both workers, all 403.
    let all_refused = wait_until(Duration::from_secs(2), || {
        (0..20).all(|_| {
            edge.send(RawRequest::get("/users/1"), "203.0.113.11")
                .status
                == 403
        })
    });
    assert!(all_refused, "some worker still serves the attacker");
    assert_eq!(
        edge.send(RawRequest::get("/users/1"), "198.51.100.1")
            .status,
        200
    );
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

/// HMAC-SHA256 (RFC 2104), enough to sign test tokens for Envoy's `jwt_authn`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

const JWT_SECRET: &[u8] = b"vigil-test-secret-0123456789abcdef";

fn signed_token(sub: &str) -> String {
    let header = b64url(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    let payload = b64url(
        format!(r#"{{"iss":"https://issuer.test","sub":"{sub}","exp":4102444800}}"#).as_bytes(),
    );
    let signature = b64url(&hmac_sha256(
        JWT_SECRET,
        format!("{header}.{payload}").as_bytes(),
    ));
    format!("{header}.{payload}.{signature}")
}

#[test]
fn identity_comes_from_jwt_authn_metadata_when_configured() {
    let policy = r#"{"behaviour": {"principal": {"jwt_authn_metadata": "jwt_payload"},
        "bola": {"routes": [{"path": "/users/{id}", "param": "id", "owner_claim": "sub"}],
                 "distinct_ids": {"window_secs": 60, "threshold": 1000}}}}"#;
    let jwks = format!(
        r#"{{"keys":[{{"kty":"oct","alg":"HS256","kid":"k1","k":"{}"}}]}}"#,
        b64url(JWT_SECRET)
    );
    let api = DemoApi::start();
    let gateway = EnvoyConfig::gateway(api.port()).policy_json(policy);
    let config = EnvoyConfig::rendered(move |listen, admin| {
        let yaml = gateway.render(listen, admin);
        let jwt_authn = format!(
            r#"                  - name: envoy.filters.http.jwt_authn
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
                      providers:
                        test:
                          issuer: https://issuer.test
                          local_jwks: {{ inline_string: {} }}
                          payload_in_metadata: jwt_payload
                          forward: true
                      rules:
                        - match: {{ prefix: "/" }}
                          requires: {{ requires_any: {{ requirements: [{{ provider_name: test }}, {{ allow_missing: {{}} }}] }} }}
"#,
            serde_json::Value::String(jwks.clone())
        );
        let anchor = "                  - name: envoy.filters.http.wasm";
        assert!(yaml.contains(anchor), "gateway template changed");
        yaml.replacen(anchor, &format!("{jwt_authn}{anchor}"), 1)
    });
    let envoy = Envoy::start(config).unwrap_or_else(|e| panic!("{e}"));
    let get = |path: &str, token: Option<&str>| {
        let mut req = RawRequest::get(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        envoy.send(&req).map(|r| r.status).unwrap_or(0)
    };
    let alice = signed_token("1");
    // The verified owner reads their own record; anything else is refused by the owner check.
    assert_eq!(get("/users/1", Some(&alice)), 200);
    assert_eq!(get("/users/2", Some(&alice)), 403);
    // No token: jwt_authn lets it through (allow_missing) but no verified owner exists.
    assert_eq!(get("/users/1", None), 403);
    // A forged token claiming sub 2 never reaches vigil: jwt_authn refuses the signature.
    let forged = {
        let parts: Vec<&str> = alice.split('.').collect();
        let payload = b64url(br#"{"iss":"https://issuer.test","sub":"2","exp":4102444800}"#);
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    assert_eq!(get("/users/2", Some(&forged)), 401);
}
