//! Behaviour across the fleet with real parts: `vigil serve`, two Envoys with the filter (configs
//! from `vigil envoy-config`), the demo API and the `vigil` CLI. Attacks are spread over both
//! edges; clients are told apart by `x-forwarded-for` (one trusted hop).

use std::time::{Duration, Instant};

use vigil_e2e::control_plane::{ok, VigilServe, ADMIN_TOKEN};
use vigil_e2e::{new_temp_dir, wait_until, DemoApi, Envoy, RawRequest};

struct Fleet {
    serve: VigilServe,
    _api: DemoApi,
    envoys: Vec<Envoy>,
}

const BEHAVIOUR_POLICY: &str = r#"{"version": "behaviour",
  "behaviour": {
    "client_ip": {"trusted_hops": 1},
    "brute_force": {"routes": ["/login"],
      "per_ip": {"window_secs": 60, "threshold": 6, "action": "block", "block_secs": 300}}}}"#;

impl Fleet {
    fn start() -> Fleet {
        let serve = VigilServe::start();
        let api = DemoApi::start();
        let envoys = serve.start_edges(api.port(), &["edge-a", "edge-b"]);
        Fleet {
            serve,
            _api: api,
            envoys,
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        ok(&self.serve.cli(ADMIN_TOKEN, args))
    }

    /// Pushes a policy and waits until both edges enforce it: the policy gets a canary rule
    /// unique to this push, and both edges must block the canary (a node reports a version
    /// applied when its singleton has it; its workers switch on their next tick).
    fn push(&self, json: &str) {
        let marker = format!(
            "push-canary-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let mut doc: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
        let canary =
            serde_json::json!({"id": "push-canary", "targets": ["query"], "contains": marker});
        match doc["custom_rules"].as_array_mut() {
            Some(rules) => rules.push(canary),
            None => doc["custom_rules"] = serde_json::json!([canary]),
        }
        let file = new_temp_dir().join("policy.json");
        std::fs::write(&file, doc.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let out = self.cli(&["policy", "push", file.to_str().unwrap_or_default()]);
        let version = out
            .split_whitespace()
            .skip_while(|w| *w != "version")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        assert!(!version.is_empty(), "push output: {out}");
        self.wait_applied(&version);
        let probe = format!("/health?probe={marker}");
        let enforced =
            || (0..2).all(|e| self.send(e, RawRequest::get(&probe), "192.0.2.250") == 403);
        assert!(
            wait_until(Duration::from_secs(5), enforced),
            "edges enforce version {version}"
        );
    }

    /// Waits until both edges report `version` applied.
    fn wait_applied(&self, version: &str) {
        let applied = || {
            self.serve
                .nodes()
                .iter()
                .filter(|n| n["applied_version"].as_str() == Some(version))
                .count()
                == 2
        };
        assert!(
            wait_until(Duration::from_secs(5), applied),
            "edges apply version {version}"
        );
    }

    fn send(&self, edge: usize, req: RawRequest, from: &str) -> u16 {
        self.envoys[edge]
            .send(&req.header("x-forwarded-for", from))
            .map(|r| r.status)
            .unwrap_or(0)
    }

    /// Milliseconds until `path` from `from` is refused with `status` on both edges.
    fn until_both(&self, from: &str, status: u16, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if (0..2).all(|e| self.send(e, RawRequest::get("/users/1"), from) == status) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

fn login(password: &str) -> RawRequest {
    RawRequest::post("/login").json(&format!(
        r#"{{"username": "alice", "password": "{password}"}}"#
    ))
}

#[test]
fn brute_force_split_across_edges_is_blocked_by_the_fleet_within_2s() {
    let fleet = Fleet::start();
    fleet.push(BEHAVIOUR_POLICY);
    let attacker = "203.0.113.10";
    // Four failures at each edge: under either edge's threshold of 6, over it for the fleet.
    for i in 0..8 {
        assert_eq!(
            fleet.send(i % 2, login(&format!("guess{i}")), attacker),
            401,
            "attempt {i}"
        );
    }
    let last = Instant::now();
    let took = fleet
        .until_both(attacker, 403, Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "the fleet did not block {attacker}; blocks: {}",
                fleet.cli(&["blocks", "list"])
            )
        });
    assert!(
        took <= Duration::from_secs(2),
        "blocked on both edges after {took:?}"
    );
    eprintln!(
        "fleet block on both edges {:?} after the last failure",
        last.elapsed()
    );
    // Neither edge could have decided alone; the block came from the control plane.
    let blocks = fleet.cli(&["blocks", "list", "--json"]);
    assert!(
        blocks.contains(attacker) && blocks.contains("fleet:brute_force"),
        "{blocks}"
    );
    // Everyone else still logs in.
    assert_eq!(fleet.send(0, login("wonderland"), "198.51.100.20"), 200);
    assert_eq!(fleet.send(1, login("wonderland"), "198.51.100.21"), 200);
}

#[test]
fn a_manual_block_reaches_every_edge_and_its_ttl_expires() {
    let fleet = Fleet::start();
    fleet.push(r#"{"version": "ttl", "behaviour": {"client_ip": {"trusted_hops": 1}}}"#);
    let address = "192.0.2.99";
    assert_eq!(fleet.send(0, RawRequest::get("/users/1"), address), 200);
    fleet.cli(&[
        "blocks", "add", "--ip", address, "--ttl", "3s", "--reason", "test",
    ]);
    let took = fleet
        .until_both(address, 403, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("block not enforced"));
    assert!(
        took <= Duration::from_secs(1),
        "block enforced after {took:?}"
    );
    assert_eq!(
        fleet.send(0, RawRequest::get("/users/1"), "192.0.2.100"),
        200
    );
    // Expiry: both edges serve the address again, and the block is gone from the list.
    assert!(
        fleet
            .until_both(address, 200, Duration::from_secs(8))
            .is_some(),
        "block did not expire"
    );
    assert!(wait_until(Duration::from_secs(3), || !fleet
        .cli(&["blocks", "list"])
        .contains(address)));
    let audit = fleet.cli(&["audit"]);
    assert!(audit.contains("block.add"), "{audit}");
}

#[test]
fn an_exception_removes_a_false_positive_everywhere_within_1s() {
    let fleet = Fleet::start();
    fleet.push(r#"{"version": "base"}"#);
    // A support tool that legitimately posts HTML snippets in `text`.
    let snippet = || {
        RawRequest::post("/comments").json(r#"{"text": "Paste this: <script src=\"https://cdn.example.com/widget.js\"></script>"}"#)
    };
    assert_eq!(fleet.send(0, snippet(), "192.0.2.5"), 403);
    assert_eq!(fleet.send(1, snippet(), "192.0.2.5"), 403);
    let start = Instant::now();
    fleet.cli(&[
        "exceptions",
        "add",
        "--rule",
        "xss",
        "--route",
        "/comments",
        "--param",
        "text",
        "--reason",
        "support widget snippets",
    ]);
    let mut took = None;
    while start.elapsed() < Duration::from_secs(5) {
        if (0..2).all(|e| fleet.send(e, snippet(), "192.0.2.5") != 403) {
            took = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = took.unwrap_or_else(|| panic!("exception not applied"));
    assert!(
        took <= Duration::from_secs(1),
        "exception applied after {took:?}"
    );
    // Only that parameter on that route: the same payload elsewhere is still blocked.
    let elsewhere = RawRequest::get(
        "/search?q=%3Cscript%20src%3D%22https%3A%2F%2Fevil.example%2Fx.js%22%3E%3C%2Fscript%3E",
    );
    assert_eq!(fleet.send(0, elsewhere, "192.0.2.5"), 403);
    let audit = fleet.cli(&["audit"]);
    assert!(audit.contains("policy.push"), "{audit}");
}

#[test]
fn intel_list_blocks_its_ranges_on_every_edge() {
    let fleet = Fleet::start();
    fleet.push(r#"{"version": "intel", "behaviour": {"client_ip": {"trusted_hops": 1}}}"#);
    let file = new_temp_dir().join("intel.txt");
    std::fs::write(
        &file,
        "# botnet C2 and scanners\n198.51.100.0/24 botnet\n203.0.113.7, scanner\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    fleet.cli(&["intel", "load", file.to_str().unwrap_or_default()]);
    assert!(fleet
        .until_both("198.51.100.77", 403, Duration::from_secs(3))
        .is_some());
    assert!(fleet
        .until_both("203.0.113.7", 403, Duration::from_secs(3))
        .is_some());
    assert_eq!(
        fleet.send(0, RawRequest::get("/users/1"), "203.0.113.8"),
        200
    );
    // A bad line refuses the whole file and changes nothing.
    std::fs::write(&file, "192.0.2.0/24\n10.0.0.0/99\n").unwrap_or_else(|e| panic!("{e}"));
    let out = fleet.serve.cli(
        ADMIN_TOKEN,
        &["intel", "load", file.to_str().unwrap_or_default()],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fleet.send(0, RawRequest::get("/users/1"), "192.0.2.1"), 200);
}

/// Sends `count` requests made by `make(i)` from `from`, alternating between the two edges;
/// returns the statuses.
fn alternate(
    fleet: &Fleet,
    count: usize,
    from: &str,
    make: impl Fn(usize) -> RawRequest,
) -> Vec<u16> {
    (0..count)
        .map(|i| fleet.send(i % 2, make(i), from))
        .collect()
}

/// Waits until `from` is refused by both edges; panics with the block list otherwise.
fn assert_blocked_everywhere(fleet: &Fleet, from: &str, rule: &str) {
    let took = fleet
        .until_both(from, 403, Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "{from} not blocked on both edges; blocks: {}",
                fleet.cli(&["blocks", "list"])
            )
        });
    assert!(
        took <= Duration::from_secs(2),
        "{from} blocked after {took:?}"
    );
    let blocks = fleet.cli(&["blocks", "list", "--json"]);
    assert!(blocks.contains(rule), "{blocks}");
}

#[test]
fn credential_stuffing_split_across_edges() {
    let fleet = Fleet::start();
    fleet.push(
        r#"{"behaviour": {"client_ip": {"trusted_hops": 1},
            "brute_force": {"routes": ["/login"], "per_ip": {"window_secs": 60, "threshold": 1000}},
            "credential_stuffing": {"window_secs": 300, "threshold": 8, "action": "block"}}}"#,
    );
    let stuffer = "192.0.2.44";
    let statuses = alternate(&fleet, 8, stuffer, |i| {
        RawRequest::post("/login").json(&format!(
            r#"{{"username": "user{i}@example.com", "password": "Summer2024!"}}"#
        ))
    });
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_blocked_everywhere(&fleet, stuffer, "fleet:credential_stuffing");
}

#[test]
fn bola_enumeration_split_across_edges() {
    let fleet = Fleet::start();
    fleet.push(
        r#"{"behaviour": {"client_ip": {"trusted_hops": 1},
            "bola": {"routes": [{"path": "/users/{id}", "param": "id"}],
                     "distinct_ids": {"window_secs": 60, "threshold": 10, "action": "block"}}}}"#,
    );
    // Six distinct ids per edge, twelve for the fleet: the principal is the address here.
    let statuses = alternate(&fleet, 12, "203.0.113.80", |i| {
        RawRequest::get(format!("/users/{}", i + 1))
    });
    assert!(
        statuses.iter().all(|s| *s != 403),
        "no edge alone decides: {statuses:?}"
    );
    assert_blocked_everywhere(&fleet, "203.0.113.80", "fleet:bola");
    assert_eq!(
        fleet.send(0, RawRequest::get("/users/1"), "192.0.2.80"),
        200
    );
}

#[test]
fn bulk_export_exfiltration_split_across_edges() {
    let fleet = Fleet::start();
    fleet.push(
        r#"{"behaviour": {"client_ip": {"trusted_hops": 1},
            "exfiltration": {"bytes": {"window_secs": 300, "threshold": 2000000, "action": "block"}}}}"#,
    );
    // About 0.55 MB per export: two per edge stay under 2 MB, four for the fleet do not.
    let statuses = alternate(&fleet, 4, "203.0.113.90", |_| {
        RawRequest::get("/export?limit=5000")
    });
    assert_eq!(statuses, vec![200; 4]);
    assert_blocked_everywhere(&fleet, "203.0.113.90", "fleet:exfiltration");
}

#[test]
fn rate_abuse_is_limited_at_each_edge_with_429() {
    let fleet = Fleet::start();
    fleet.push(
        r#"{"behaviour": {"client_ip": {"trusted_hops": 1},
            "rate_limits": [{"name": "search", "route": "/search", "key": "ip", "per_second": 0.5, "burst": 4}]}}"#,
    );
    for edge in 0..2 {
        let statuses: Vec<u16> = (0..6)
            .map(|_| fleet.send(edge, RawRequest::get("/search?q=cup"), "203.0.113.70"))
            .collect();
        assert_eq!(&statuses[..4], &[200; 4], "edge {edge}: {statuses:?}");
        assert_eq!(&statuses[4..], &[429, 429], "edge {edge}: {statuses:?}");
    }
    let r = fleet.envoys[0]
        .send(&RawRequest::get("/search?q=cup").header("x-forwarded-for", "203.0.113.70"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        fleet.send(0, RawRequest::get("/search?q=cup"), "192.0.2.71"),
        200
    );
}
