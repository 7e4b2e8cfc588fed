//! The control plane loop with real parts: `vigil serve`, two Envoys with the filter and its
//! singleton (configs from `vigil envoy-config`), the demo API, and the `vigil` CLI.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_e2e::control_plane::{json_lines, ok, VigilServe, ADMIN_TOKEN, VIEWER_TOKEN};
use vigil_e2e::{new_temp_dir, wait_until, DemoApi, Envoy, RawRequest};

const CANARY: &str = "/search?q=vigil-canary-7f3a";

struct Fleet {
    serve: VigilServe,
    _api: DemoApi,
    envoys: Vec<Envoy>,
}

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

    fn nodes(&self) -> Vec<serde_json::Value> {
        self.serve.nodes()
    }

    fn applied_versions(&self) -> BTreeMap<String, String> {
        self.nodes()
            .iter()
            .map(|n| {
                (
                    n["node_id"].as_str().unwrap_or("").to_owned(),
                    n["applied_version"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    fn status(&self, envoy: usize, path: &str) -> u16 {
        self.envoys[envoy]
            .send(&RawRequest::get(path))
            .map(|r| r.status)
            .unwrap_or(0)
    }

    fn push(&self, policy_json: &str) -> std::process::Output {
        let file = new_temp_dir().join("policy.json");
        std::fs::write(&file, policy_json).unwrap_or_else(|e| panic!("{e}"));
        self.serve.cli(
            ADMIN_TOKEN,
            &["policy", "push", file.to_str().unwrap_or_default()],
        )
    }

    /// Pushes the canary policy and waits until both edges block the canary request.
    fn enforce_canary(&self) {
        ok(&self.push(CANARY_POLICY));
        let both = || self.status(0, CANARY) == 403 && self.status(1, CANARY) == 403;
        assert!(
            wait_until(Duration::from_secs(5), both),
            "edges enforce the canary policy"
        );
    }

    fn events(&self) -> Vec<serde_json::Value> {
        let out = self.serve.cli(
            VIEWER_TOKEN,
            &["events", "query", "--limit", "10000", "--json"],
        );
        json_lines(&ok(&out))
    }
}

const CANARY_POLICY: &str = r#"{"version": "canary", "custom_rules": [{"id": "canary", "targets": ["query"], "contains": "vigil-canary-7f3a"}]}"#;

/// Milliseconds from `start` until `cond` holds, polling every 5 ms; None after `limit`.
fn time_until(start: Instant, limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn push_is_enforced_by_every_envoy_within_a_second_and_rolls_back() {
    let fleet = Fleet::start();
    // A first version to roll back to: the built-in behaviour, under a name.
    ok(&fleet.push(r#"{"version": "base"}"#));
    assert_eq!(fleet.status(0, CANARY), 200);
    assert_eq!(fleet.status(1, CANARY), 200);

    let start = Instant::now();
    let out = fleet.push(CANARY_POLICY);
    ok(&out);
    let mut latencies = Vec::new();
    for envoy in 0..2 {
        let took = time_until(start, Duration::from_secs(5), || {
            fleet.status(envoy, CANARY) == 403
        })
        .unwrap_or_else(|| panic!("edge {envoy} never enforced the pushed policy"));
        latencies.push(took);
    }
    let worst = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "push -> enforced at both Envoys: {:?} (edge-a {:?}, edge-b {:?})",
        worst, latencies[0], latencies[1]
    );
    assert!(
        worst < Duration::from_secs(1),
        "push took {worst:?} to reach every edge"
    );
    assert!(
        wait_until(Duration::from_secs(5), || fleet
            .applied_versions()
            .values()
            .all(|v| !v.is_empty())),
        "nodes report the applied version: {:?}",
        fleet.applied_versions()
    );
    let pushed = fleet.applied_versions();

    // A bad policy: rejected with the rule and field named; nothing changes at the edge.
    let bad = fleet.push(r#"{"custom_rules": [{"id": "broken-rule", "targets": ["query"], "pattern": "(unclosed"}]}"#);
    assert!(!bad.status.success(), "an invalid policy must be refused");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("broken-rule") && err.contains("custom_rules[0].pattern"),
        "error names rule and field: {err}"
    );
    assert_eq!(fleet.applied_versions(), pushed, "no edge changed version");
    assert_eq!(
        (fleet.status(0, CANARY), fleet.status(1, CANARY)),
        (403, 403)
    );

    // Rollback: back to the built-in behaviour everywhere.
    let start = Instant::now();
    ok(&fleet.serve.cli(ADMIN_TOKEN, &["policy", "rollback"]));
    for envoy in 0..2 {
        let took = time_until(start, Duration::from_secs(5), || {
            fleet.status(envoy, CANARY) == 200
        });
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(1)),
            "edge {envoy} rollback took {took:?}"
        );
    }
    // Attacks are still blocked under the rolled-back policy.
    assert_eq!(fleet.status(0, "/search?q=1%27%20OR%20%271%27%3D%271"), 403);
}

#[test]
fn pushes_need_an_admin_token() {
    let fleet = Fleet::start();
    let file = new_temp_dir().join("p.json");
    std::fs::write(&file, CANARY_POLICY).unwrap_or_else(|e| panic!("{e}"));
    let path = file.to_str().unwrap_or_default();
    let anonymous = fleet.serve.cli("not-a-token", &["policy", "push", path]);
    assert!(!anonymous.status.success());
    let viewer = fleet.serve.cli(VIEWER_TOKEN, &["policy", "push", path]);
    assert!(!viewer.status.success());
    let listed = ok(&fleet.serve.cli(VIEWER_TOKEN, &["policy", "list"]));
    assert!(!listed.contains("canary"), "nothing was stored: {listed}");
    assert_eq!(fleet.status(0, CANARY), 200, "nothing reached the edges");
    assert!(
        fleet.serve.log().to_lowercase().contains("unauthenticated")
            || fleet.serve.log().contains("refused")
    );
}

#[test]
fn events_from_both_envoys_are_stored_once_each() {
    let fleet = Fleet::start();
    let per_edge = 25;
    for envoy in 0..2 {
        for i in 0..per_edge {
            let path = format!("/search?q=1%27%20OR%20%271%27%3D%271&marker=e{envoy}-{i}");
            assert_eq!(fleet.status(envoy, &path), 403);
        }
    }
    let expected = 2 * per_edge;
    let complete = wait_until(Duration::from_secs(10), || {
        fleet
            .events()
            .iter()
            .filter(|e| e["path"].as_str().is_some_and(|p| p.contains("marker=e")))
            .count()
            >= expected
    });
    assert!(
        complete,
        "events did not all arrive: {} of {expected}; nodes: {:?}; edge stats: {:?}",
        fleet
            .events()
            .iter()
            .filter(|e| e["path"].as_str().is_some_and(|p| p.contains("marker=e")))
            .count(),
        fleet.nodes(),
        fleet
            .envoys
            .iter()
            .map(|e| e
                .stats()
                .into_iter()
                .filter(|(k, _)| k.contains("vigil.events") || k.contains("vigil.service"))
                .collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
    let events = fleet.events();
    let mut per_marker: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        if let Some(marker) = e["path"].as_str().and_then(|p| p.split("marker=").nth(1)) {
            *per_marker.entry(marker.to_owned()).or_default() += 1;
        }
    }
    assert_eq!(per_marker.len(), expected);
    assert!(
        per_marker.values().all(|&n| n == 1),
        "duplicates: {per_marker:?}"
    );
    let nodes: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["node_id"].as_str())
        .collect();
    assert!(
        nodes.contains("edge-a") && nodes.contains("edge-b"),
        "{nodes:?}"
    );
    let sqli = events.iter().find(|e| {
        e["path"]
            .as_str()
            .is_some_and(|p| p.contains("marker=e0-0"))
    });
    let first = sqli
        .and_then(|e| e["findings"].as_array())
        .and_then(|f| f.first())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        first["category"], "sqli",
        "event carries its findings: {sqli:?}"
    );
}

#[test]
fn control_plane_crash_loses_no_events_and_never_blocks_traffic() {
    let mut fleet = Fleet::start();
    fleet.enforce_canary();

    // Traffic from a background thread: unique attacks to both edges, all through the outage.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let addrs = [fleet.envoys[0].listen_addr(), fleet.envoys[1].listen_addr()];
    let worker = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut wrong = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let addr = addrs[(i % 2) as usize];
                let path = format!("/search?q=%3Cscript%3Ealert(1)%3C/script%3E&crash=c{i}");
                match vigil_e2e::http::send(addr, &RawRequest::get(&path)) {
                    Ok(r) if r.status == 403 => {
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                    other => wrong.push(format!("{path}: {:?}", other.map(|r| r.status))),
                }
                i += 1;
            }
            wrong
        })
    };
    assert!(wait_until(Duration::from_secs(5), || sent
        .load(Ordering::SeqCst)
        >= 40));
    fleet.serve.kill9();
    let at_kill = sent.load(Ordering::SeqCst);
    // The edges keep enforcing the pushed policy and serving benign traffic while it is down.
    assert!(wait_until(Duration::from_secs(5), || sent
        .load(Ordering::SeqCst)
        >= at_kill + 60));
    assert_eq!(
        (fleet.status(0, CANARY), fleet.status(1, CANARY)),
        (403, 403),
        "pushed policy still enforced"
    );
    assert_eq!(fleet.status(0, "/users/1"), 200);
    fleet.serve.restart();
    assert!(
        wait_until(Duration::from_secs(10), || fleet.serve.connected_nodes()
            == 2),
        "edges reconnect"
    );
    stop.store(true, Ordering::SeqCst);
    let wrong = worker.join().unwrap_or_default();
    assert!(
        wrong.is_empty(),
        "every attack was blocked during the outage: {wrong:?}"
    );
    let total = sent.load(Ordering::SeqCst) as usize;

    let count = || {
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for e in fleet.events() {
            if let Some(m) = e["path"].as_str().and_then(|p| p.split("crash=").nth(1)) {
                *per.entry(m.to_owned()).or_default() += 1;
            }
        }
        per
    };
    assert!(
        wait_until(Duration::from_secs(15), || count().len() >= total),
        "got {} of {total} events",
        count().len()
    );
    let per = count();
    assert_eq!(
        per.len(),
        total,
        "every event within the buffer bound arrived"
    );
    assert!(per.values().all(|&n| n == 1), "each exactly once");
    println!("control plane killed under traffic: {total} events, all stored exactly once");
}

/// A bundle the edge cannot accept (here: a stored document that no longer validates, as after
/// tampering or a downgrade) is refused by every edge, the refusal is reported, and the last
/// good policy stays in force.
#[test]
fn edges_refuse_a_bad_bundle_and_keep_the_last_good_policy() {
    use sha2::{Digest, Sha256};
    let mut fleet = Fleet::start();
    fleet.enforce_canary();
    let good = fleet.applied_versions();

    fleet.serve.kill9();
    let bad_json = r#"{"mode": "enforce", "custom_rules": [{"id": "tampered", "targets": ["query"], "pattern": "(unclosed"}]}"#;
    let sha: String = Sha256::digest(bad_json.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    {
        let db = rusqlite::Connection::open(fleet.serve.dir().join("vigil.db"))
            .unwrap_or_else(|e| panic!("{e}"));
        db.execute(
            "INSERT INTO policies (version, sha256, json, comment, author_role, created_unix_ms) VALUES (99, ?1, ?2, 'tampered', 'admin', 0)",
            rusqlite::params![sha, bad_json],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        db.execute("UPDATE current_policy SET version = 99 WHERE id = 1", [])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    fleet.serve.restart();
    let refused = wait_until(Duration::from_secs(10), || {
        let nodes = fleet.nodes();
        nodes.len() == 2
            && nodes.iter().all(|n| {
                n["connected"].as_bool() == Some(true)
                    && n["last_error"].as_str().is_some_and(|e| {
                        e.contains("tampered") && e.contains("custom_rules[0].pattern")
                    })
            })
    });
    assert!(
        refused,
        "both edges report the refusal naming rule and field: {:?}",
        fleet.nodes()
    );
    assert_eq!(
        fleet.applied_versions(),
        good,
        "edges keep the last good version"
    );
    assert_eq!(
        (fleet.status(0, CANARY), fleet.status(1, CANARY)),
        (403, 403),
        "last good policy still enforced"
    );
    for envoy in &fleet.envoys {
        assert_eq!(
            envoy.stat("wasmcustom.vigil.service.policies_refused"),
            Some(1)
        );
    }
}

/// While the control plane is away the edge keeps only the newest N events, counts what it
/// dropped (a stat, and `vigil nodes` after reconnecting) and delivers the rest exactly once.
#[test]
fn buffer_bound_keeps_the_newest_events_and_counts_drops() {
    let mut serve = VigilServe::start();
    let api = DemoApi::start();
    let envoy = Envoy::start(serve.envoy_config(
        "edge-small",
        api.port(),
        &["--max-buffered-events", "20"],
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let nodes = |serve: &VigilServe| {
        json_lines(&String::from_utf8_lossy(
            &serve.cli(VIEWER_TOKEN, &["nodes", "--json"]).stdout,
        ))
    };
    let connected = |serve: &VigilServe| {
        nodes(serve)
            .iter()
            .any(|n| n["connected"].as_bool() == Some(true))
    };
    assert!(wait_until(Duration::from_secs(10), || connected(&serve)));
    serve.kill9();
    for i in 0..50 {
        let r = envoy
            .send(&RawRequest::get(format!(
                "/search?q=%3Cscript%3E&bound=b{i:02}"
            )))
            .map(|r| r.status)
            .unwrap_or(0);
        assert_eq!(r, 403, "enforcing while the control plane is down");
    }
    assert!(wait_until(Duration::from_secs(5), || envoy
        .stat("wasmcustom.vigil.service.events_dropped")
        == Some(30)));
    serve.restart();
    let stored = || {
        let out = serve.cli(
            VIEWER_TOKEN,
            &["events", "query", "--limit", "1000", "--json"],
        );
        let mut markers: Vec<String> = json_lines(&String::from_utf8_lossy(&out.stdout))
            .iter()
            .filter_map(|e| {
                e["path"]
                    .as_str()
                    .and_then(|p| p.split("bound=").nth(1))
                    .map(str::to_owned)
            })
            .collect();
        markers.sort();
        markers
    };
    assert!(
        wait_until(Duration::from_secs(10), || stored().len() >= 20),
        "got {:?}",
        stored()
    );
    let expected: Vec<String> = (30..50).map(|i| format!("b{i:02}")).collect();
    assert_eq!(stored(), expected, "the newest 20, each once");
    assert!(
        wait_until(Duration::from_secs(5), || nodes(&serve)
            .iter()
            .any(|n| n["events_dropped"].as_u64() == Some(30))),
        "drops reported: {:?}",
        nodes(&serve)
    );
}

/// The whole loop over TLS: Envoy's control-plane cluster verifies `vigil serve`'s certificate
/// (`vigil envoy-config --tls-ca`), and the CLI talks https with `--ca`.
#[test]
fn the_loop_works_over_tls() {
    let serve = VigilServe::start_tls(|dir| {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("server.crt"), cert.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("server.key"), cert.signing_key.serialize_pem())
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let api = DemoApi::start();
    let envoy = Envoy::start(serve.envoy_config("edge-tls", api.port(), &[]))
        .unwrap_or_else(|e| panic!("{e}"));
    let connected = || {
        String::from_utf8_lossy(&serve.cli(VIEWER_TOKEN, &["nodes", "--json"]).stdout)
            .contains("\"connected\":true")
    };
    assert!(
        wait_until(Duration::from_secs(10), connected),
        "edge connects over TLS; serve log:\n{}",
        serve.log()
    );
    let file = new_temp_dir().join("canary.json");
    std::fs::write(&file, CANARY_POLICY).unwrap_or_else(|e| panic!("{e}"));
    ok(&serve.cli(
        ADMIN_TOKEN,
        &["policy", "push", file.to_str().unwrap_or_default()],
    ));
    assert!(wait_until(Duration::from_secs(2), || envoy
        .send(&RawRequest::get(CANARY))
        .map(|r| r.status)
        .unwrap_or(0)
        == 403));
    let events = || {
        json_lines(&String::from_utf8_lossy(
            &serve
                .cli(VIEWER_TOKEN, &["events", "query", "--json"])
                .stdout,
        ))
    };
    assert!(
        wait_until(Duration::from_secs(5), || events()
            .iter()
            .any(|e| e["node_id"] == "edge-tls")),
        "events arrive over TLS"
    );
}
