//! Behaviour detectors, driven natively with a fake clock: each scenario as an attacker would
//! run it, and the benign traffic next to it that must stay untouched.

use vigil_engine::behaviour::{
    BehaviourAction, BehaviourState, BlockEntry, BlockSet, Detector, IntelSet, ObservationKind,
    OffenderKind, Tracked,
};
use vigil_engine::{CompiledPolicy, Request};

fn policy(behaviour: &str) -> CompiledPolicy {
    CompiledPolicy::from_json(&format!(r#"{{"behaviour": {behaviour}}}"#)).unwrap()
}

struct Call<'a> {
    method: &'a str,
    target: &'a str,
    headers: Vec<(&'a str, &'a [u8])>,
    body: Option<&'a [u8]>,
}

fn get(target: &str) -> Call<'_> {
    Call {
        method: "GET",
        target,
        headers: vec![],
        body: None,
    }
}

fn track(p: &CompiledPolicy, call: &Call<'_>, peer: &str) -> Tracked {
    let request = Request {
        method: call.method,
        target: call.target.as_bytes(),
        headers: &call.headers,
        body: call.body,
        body_truncated: false,
    };
    p.behaviour()
        .track(&request, p.api_key_headers(), Some(peer), None)
}

fn login_body(user: &str) -> Vec<u8> {
    format!(r#"{{"username": "{user}", "password": "hunter2"}}"#).into_bytes()
}

/// One login attempt answered with `status`; returns the detections it caused.
fn login(
    p: &CompiledPolicy,
    state: &mut BehaviourState,
    peer: &str,
    user: &str,
    status: u16,
    now_ms: u64,
) -> Vec<vigil_engine::behaviour::Detection> {
    let body = login_body(user);
    let call = Call {
        method: "POST",
        target: "/login",
        headers: vec![("content-type", b"application/json")],
        body: Some(&body),
    };
    let t = track(p, &call, peer);
    assert_eq!(t.login.as_ref().unwrap().username, user.to_lowercase());
    let b = p.behaviour();
    let obs = state.observations(b, &t, status, 20, 0, now_ms);
    obs.iter()
        .flat_map(|o| state.observe(b, o, now_ms))
        .collect()
}

const BRUTE: &str = r#"{"brute_force": {"routes": ["/login"],
    "per_ip": {"window_secs": 60, "threshold": 5, "action": "block", "block_secs": 300},
    "per_username": {"window_secs": 60, "threshold": 8, "action": "limit", "block_secs": 60}},
  "credential_stuffing": {"window_secs": 300, "threshold": 6, "action": "block"}}"#;

#[test]
fn brute_force_blocks_the_address_after_the_threshold_and_the_penalty_ends() {
    let p = policy(BRUTE);
    let b = p.behaviour();
    let mut state = BehaviourState::new(1_000);
    let (blocks, intel) = (BlockSet::default(), IntelSet::default());
    for i in 0..4 {
        assert!(login(&p, &mut state, "203.0.113.9:1000", "alice", 401, i * 1_000).is_empty());
    }
    let found = login(&p, &mut state, "203.0.113.9:1000", "alice", 401, 5_000);
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(
        (d.detector, d.offender.kind),
        (Detector::BruteForce, OffenderKind::Ip)
    );
    assert_eq!(d.offender.value, "203.0.113.9");
    assert_eq!(d.action, BehaviourAction::Block);
    state.penalise(d, 5_000);

    let attacker = track(&p, &get("/v1/orders"), "203.0.113.9:1000");
    let verdict = state.admit(b, &blocks, &intel, &attacker, 6_000).unwrap();
    assert_eq!(verdict.action, BehaviourAction::Block);
    assert_eq!(verdict.detector, Detector::BruteForce);
    assert_eq!(verdict.retry_after_secs, 299);
    // Someone else is not affected; the attacker is free once the penalty ends.
    let other = track(&p, &get("/v1/orders"), "198.51.100.1:1000");
    assert!(state.admit(b, &blocks, &intel, &other, 6_000).is_none());
    assert!(state
        .admit(b, &blocks, &intel, &attacker, 305_001)
        .is_none());
    // Further failures in the same window are not reported again.
    assert!(login(&p, &mut state, "203.0.113.9:1000", "alice", 401, 7_000).is_empty());
}

#[test]
fn successful_logins_and_slow_failures_are_not_brute_force() {
    let p = policy(BRUTE);
    let mut state = BehaviourState::new(1_000);
    for i in 0..50 {
        assert!(login(&p, &mut state, "192.0.2.1:1", "bob", 200, i * 100).is_empty());
    }
    // One failure every 40 s stays under 5 per minute forever.
    for i in 0..50 {
        let found = login(
            &p,
            &mut state,
            "192.0.2.2:1",
            "carol",
            401,
            10_000 + i * 40_000,
        );
        assert!(found.is_empty(), "{i}: {found:?}");
    }
}

#[test]
fn one_account_attacked_from_many_addresses_is_limited() {
    let p = policy(BRUTE);
    let mut state = BehaviourState::new(1_000);
    let mut found = Vec::new();
    for i in 0..8 {
        found.extend(login(
            &p,
            &mut state,
            &format!("10.0.0.{i}:1"),
            "Alice",
            401,
            i * 10,
        ));
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].offender.value, "user:alice");
    assert_eq!(found[0].action, BehaviourAction::Limit);
}

#[test]
fn credential_stuffing_counts_distinct_usernames_per_address() {
    let p = policy(BRUTE);
    let mut state = BehaviourState::new(1_000);
    let mut found = Vec::new();
    // Each username once (a stuffing list); succeeds or fails, the count is of names.
    for i in 0..6u64 {
        let status = if i % 2 == 0 { 401 } else { 200 };
        found.extend(login(
            &p,
            &mut state,
            "198.51.100.4:9",
            &format!("user{i}"),
            status,
            i * 1_000,
        ));
    }
    let stuffing: Vec<_> = found
        .iter()
        .filter(|d| d.detector == Detector::CredentialStuffing)
        .collect();
    assert_eq!(stuffing.len(), 1, "{found:?}");
    assert_eq!(stuffing[0].count, 6);
    // The same user retrying is not stuffing.
    let mut state = BehaviourState::new(1_000);
    for i in 0..30 {
        let found = login(&p, &mut state, "198.51.100.5:9", "dave", 200, i * 1_000);
        assert!(found.is_empty());
    }
}

const BOLA: &str = r#"{"bola": {"routes": [{"path": "/users/{id}", "param": "id"},
                                  {"path": "/accounts/{acct}/statements", "param": "acct", "owner_claim": "sub"}],
    "distinct_ids": {"window_secs": 60, "threshold": 10, "action": "block", "block_secs": 600}}}"#;

fn bearer(sub: &str) -> Vec<u8> {
    use base64_helper::encode;
    format!(
        "Bearer {}.{}.c2ln",
        encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        encode(format!(r#"{{"sub":"{sub}","exp":4102444800}}"#).as_bytes())
    )
    .into_bytes()
}

mod base64_helper {
    pub fn encode(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}

#[test]
fn bola_enumeration_of_user_ids_is_detected_per_principal() {
    let p = policy(BOLA);
    let b = p.behaviour();
    let mut state = BehaviourState::new(1_000);
    let token = bearer("mallory");
    let mut found = Vec::new();
    for id in 100..110 {
        let target = format!("/users/{id}");
        let call = Call {
            method: "GET",
            target: &target,
            headers: vec![("authorization", &token)],
            body: None,
        };
        let t = track(&p, &call, "192.0.2.50:1");
        assert_eq!(t.principal, "sub:mallory");
        assert_eq!(t.object.as_ref().unwrap().id, id.to_string());
        for o in state.observations(b, &t, 200, 100, 0, id) {
            found.extend(state.observe(b, &o, id));
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].detector, Detector::Bola);
    assert_eq!(found[0].offender.value, "sub:mallory");

    // A user reading their own profile a thousand times touches one id.
    let mine = bearer("alice");
    let mut state = BehaviourState::new(1_000);
    for i in 0..1_000 {
        let call = Call {
            method: "GET",
            target: "/users/alice",
            headers: vec![("authorization", &mine)],
            body: None,
        };
        let t = track(&p, &call, "192.0.2.51:1");
        for o in state.observations(b, &t, 200, 100, 0, i) {
            assert!(state.observe(b, &o, i).is_empty());
        }
    }
}

#[test]
fn owner_claim_mismatch_is_refused_at_once() {
    let p = policy(BOLA);
    let b = p.behaviour();
    let mut state = BehaviourState::new(1_000);
    let token = bearer("alice");
    let call = |target: &'static str| Call {
        method: "GET",
        target,
        headers: vec![("authorization", &token)],
        body: None,
    };
    let (blocks, intel) = (BlockSet::default(), IntelSet::default());
    let own = track(&p, &call("/accounts/alice/statements"), "192.0.2.1:1");
    assert!(state.admit(b, &blocks, &intel, &own, 0).is_none());
    let other = track(&p, &call("/accounts/bob/statements"), "192.0.2.1:1");
    let a = state.admit(b, &blocks, &intel, &other, 0).unwrap();
    assert_eq!(
        (a.detector, a.action),
        (Detector::Bola, BehaviourAction::Block)
    );
    // No token at all: no owner, refused too.
    let anonymous = track(&p, &get("/accounts/alice/statements"), "192.0.2.1:1");
    assert!(state.admit(b, &blocks, &intel, &anonymous, 0).is_some());
}

#[test]
fn rate_limit_answers_429_with_retry_after_and_refills() {
    let p = policy(
        r#"{"rate_limits": [{"name": "search", "route": "/v1/search", "key": "ip", "per_second": 2, "burst": 3}]}"#,
    );
    let b = p.behaviour();
    let mut state = BehaviourState::new(1_000);
    let (blocks, intel) = (BlockSet::default(), IntelSet::default());
    let t = track(&p, &get("/v1/search?q=x"), "192.0.2.9:1");
    for _ in 0..3 {
        assert!(state.admit(b, &blocks, &intel, &t, 1_000).is_none());
    }
    let limited = state.admit(b, &blocks, &intel, &t, 1_000).unwrap();
    assert_eq!(limited.action, BehaviourAction::Limit);
    assert_eq!(limited.detector, Detector::RateAbuse);
    assert_eq!(limited.retry_after_secs, 1);
    // Other routes and other clients have their own budget; 500 ms later a token is back.
    assert!(state
        .admit(
            b,
            &blocks,
            &intel,
            &track(&p, &get("/v1/orders"), "192.0.2.9:1"),
            1_000
        )
        .is_none());
    assert!(state
        .admit(
            b,
            &blocks,
            &intel,
            &track(&p, &get("/v1/search"), "192.0.2.10:1"),
            1_000
        )
        .is_none());
    assert!(state.admit(b, &blocks, &intel, &t, 1_500).is_none());
}

#[test]
fn bulk_exfiltration_by_bytes_and_single_huge_responses() {
    let p = policy(
        r#"{"exfiltration": {"bytes": {"window_secs": 300, "threshold": 1000000, "action": "block"},
                             "max_response_bytes": 5000000, "single_response_action": "monitor"}}"#,
    );
    let b = p.behaviour();
    let mut state = BehaviourState::new(1_000);
    let token = bearer("exporter");
    let call = Call {
        method: "GET",
        target: "/v1/export?page=1",
        headers: vec![("authorization", &token)],
        body: None,
    };
    let t = track(&p, &call, "192.0.2.77:1");
    let mut found = Vec::new();
    for i in 0..10 {
        for o in state.observations(b, &t, 200, 120_000, 0, i * 1_000) {
            found.extend(state.observe(b, &o, i * 1_000));
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].detector, Detector::Exfiltration);
    assert!(found[0].count >= 1_000_000);

    // The fleet gets one sum per principal, not one observation per response, and reaches the
    // same verdict from it.
    let sums = state.drain_usage();
    assert_eq!(sums.len(), 1, "{sums:?}");
    assert_eq!(
        (sums[0].bytes, sums[0].status, sums[0].forward),
        (1_200_000, 0, true)
    );
    assert!(state.drain_usage().is_empty());
    let mut fleet = BehaviourState::new(1_000);
    let fleet_found = fleet.observe(b, &sums[0], 10_000);
    assert_eq!(fleet_found.len(), 1, "{fleet_found:?}");
    assert_eq!(fleet_found[0].offender.value, "sub:exporter");
    let huge: Vec<_> = state
        .observations(b, &t, 200, 6_000_000, 0, 20_000)
        .iter()
        .flat_map(|o| state.observe(b, o, 20_000))
        .collect();
    assert!(huge.iter().any(|d| d.count == 6_000_000), "{huge:?}");
}

#[test]
fn scanners_404_bursts_and_probe_paths() {
    let p = policy(
        r#"{"scanner": {"not_found": {"window_secs": 60, "threshold": 20, "action": "block"}}}"#,
    );
    let b = p.behaviour();
    let mut state = BehaviourState::new(1_000);
    let mut found = Vec::new();
    // Four probe paths weigh as much as twenty 404s.
    for (i, path) in ["/.env", "/.git/config", "/wp-login.php", "/actuator/env"]
        .iter()
        .enumerate()
    {
        let t = track(&p, &get(path), "192.0.2.66:1");
        assert!(t.probe, "{path}");
        for o in state.observations(b, &t, 200, 0, 0, i as u64) {
            assert_eq!(o.kind, ObservationKind::NotFound);
            found.extend(state.observe(b, &o, i as u64));
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].detector, Detector::Scanner);
    // Ordinary paths answered 200 are not observed at all.
    let t = track(&p, &get("/v1/orders"), "192.0.2.67:1");
    assert!(state.observations(b, &t, 200, 0, 0, 0).is_empty());
}

#[test]
fn one_token_from_many_addresses() {
    let p = policy(r#"{"token_sharing": {"window_secs": 300, "threshold": 4, "action": "block"}}"#);
    let b = p.behaviour();
    let mut state = BehaviourState::new(1_000);
    let token = bearer("shared");
    let mut found = Vec::new();
    let mut forwarded = 0;
    for round in 0..3 {
        for ip in 1..=4 {
            let call = Call {
                method: "GET",
                target: "/v1/me",
                headers: vec![("authorization", &token)],
                body: None,
            };
            let t = track(&p, &call, &format!("192.0.2.{ip}:1"));
            for o in state.observations(b, &t, 200, 0, 0, round * 10 + ip) {
                forwarded += usize::from(o.forward);
                found.extend(state.observe(b, &o, round * 10 + ip));
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].offender.kind, OffenderKind::Token);
    // Each (token, address) pair goes to the control plane once per half window, not per request.
    assert_eq!(forwarded, 4);
}

#[test]
fn error_spike_per_route() {
    let p = policy(
        r#"{"error_spike": {"window_secs": 60, "min_requests": 20, "ratio": 0.5},
            "bola": {"routes": [{"path": "/users/{id}", "param": "id"}],
                     "distinct_ids": {"window_secs": 60, "threshold": 1000}}}"#,
    );
    let b = p.behaviour();
    let mut state = BehaviourState::new(1_000);
    let mut found = Vec::new();
    for i in 0..40u64 {
        let t = track(&p, &get("/users/1"), "192.0.2.1:1");
        let status = if i < 10 { 200 } else { 500 };
        for o in state.observations(b, &t, status, 10, 0, i) {
            found.extend(state.observe(b, &o, i));
        }
    }
    let spikes: Vec<_> = found
        .iter()
        .filter(|d| d.detector == Detector::ErrorSpike)
        .collect();
    assert_eq!(spikes.len(), 1, "{found:?}");
    assert_eq!(spikes[0].offender.value, "/users/{id}");
    assert_eq!(spikes[0].action, BehaviourAction::Monitor);
}

#[test]
fn pushed_blocks_and_intel_apply_before_anything_else() {
    let p = policy(r#"{"client_ip": {"trusted_hops": 1}}"#);
    let b = p.behaviour();
    let mut state = BehaviourState::new(100);
    let (blocks, _) = BlockSet::build(vec![BlockEntry {
        kind: "ip".into(),
        value: "203.0.113.66".into(),
        expires_unix_ms: 10_000,
        reason: "fleet:brute_force".into(),
        limit_only: false,
    }]);
    let (intel, _) = IntelSet::build(vec![("198.51.100.0/24".into(), "botnet".into())]);
    let from = |xff: &'static [u8]| Call {
        method: "GET",
        target: "/",
        headers: vec![("x-forwarded-for", xff)],
        body: None,
    };
    let blocked = track(&p, &from(b"1.1.1.1, 203.0.113.66"), "10.0.0.1:1");
    let a = state.admit(b, &blocks, &intel, &blocked, 1_000).unwrap();
    assert_eq!(
        (a.detector, a.action, a.retry_after_secs),
        (Detector::Blocklist, BehaviourAction::Block, 9)
    );
    assert!(
        state.admit(b, &blocks, &intel, &blocked, 10_000).is_none(),
        "expired"
    );
    // The client wrote the left entry itself: a spoofed blocked address there changes nothing.
    let spoofed = track(&p, &from(b"203.0.113.66, 192.0.2.1"), "10.0.0.1:1");
    assert!(state.admit(b, &blocks, &intel, &spoofed, 1_000).is_none());
    let listed = track(&p, &from(b"198.51.100.200"), "10.0.0.1:1");
    assert_eq!(
        state
            .admit(b, &blocks, &intel, &listed, 1_000)
            .unwrap()
            .detector,
        Detector::Intel
    );
}

#[test]
fn memory_stays_bounded_when_an_attacker_rotates_addresses() {
    let p = policy(
        r#"{"max_keys": 64, "brute_force": {"routes": ["/login"], "per_ip": {"window_secs": 3600, "threshold": 1000}}}"#,
    );
    let mut state = BehaviourState::new(64);
    for i in 0..20_000u64 {
        let peer = format!("10.{}.{}.{}:1", i >> 16 & 255, i >> 8 & 255, i & 255);
        assert!(login(&p, &mut state, &peer, "x", 401, i).is_empty());
    }
}

#[test]
fn bad_behaviour_settings_name_the_field() {
    for (json, field) in [
        (
            r#"{"brute_force": {"routes": [], "per_ip": {"window_secs": 60, "threshold": 5}}}"#,
            "behaviour.brute_force.routes",
        ),
        (
            r#"{"brute_force": {"routes": ["/login"], "per_ip": {"window_secs": 0, "threshold": 5}}}"#,
            "behaviour.brute_force.per_ip.window_secs",
        ),
        (
            r#"{"bola": {"routes": [{"path": "/users/{id}", "param": "uid"}], "distinct_ids": {"window_secs": 60, "threshold": 5}}}"#,
            "behaviour.bola.routes[0].param",
        ),
        (
            r#"{"rate_limits": [{"name": "api", "per_second": 0, "burst": 1}]}"#,
            "behaviour.rate_limits[0].per_second",
        ),
        (
            r#"{"scanner": {"not_found": {"window_secs": 60, "threshold": 5}, "probe_paths": ["no-slash"]}}"#,
            "behaviour.scanner.probe_paths[0]",
        ),
        (
            r#"{"brute_force": {"routes": ["/login"], "per_ip": {"window_secs": 60, "threshold": 5, "action": "ban"}}}"#,
            "behaviour.brute_force.per_ip.action",
        ),
    ] {
        let err = CompiledPolicy::from_json(&format!(r#"{{"behaviour": {json}}}"#)).unwrap_err();
        assert!(err.to_string().contains(field), "{json}: {err}");
    }
    let err = CompiledPolicy::from_json(
        r#"{"behaviour": {"rate_limits": [{"name": "api", "per_second": 1, "burst": 0}]}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("rule `api`"), "{err}");
}

#[test]
fn principal_from_jwt_then_api_key_then_address() {
    let p = policy(r#"{"token_sharing": {"window_secs": 60, "threshold": 5}}"#);
    let token = bearer("alice");
    let with = |h: Vec<(&'static str, &'static [u8])>| {
        let call = Call {
            method: "GET",
            target: "/",
            headers: h,
            body: None,
        };
        track(&p, &call, "192.0.2.1:5")
    };
    let leaked: &'static [u8] = Box::leak(token.into_boxed_slice());
    assert_eq!(with(vec![("authorization", leaked)]).principal, "sub:alice");
    let keyed = with(vec![("x-api-key", b"sk_live_123")]);
    assert!(keyed.principal.starts_with("key:"), "{}", keyed.principal);
    assert!(
        !keyed.principal.contains("sk_live"),
        "the key itself never leaves"
    );
    assert_eq!(with(vec![]).principal, "ip:192.0.2.1");
}
