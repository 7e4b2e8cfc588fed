//! Push → enforce latency across a fleet: `vigil serve`, N Envoys (default 2) with the filter
//! and its singleton, the demo API. Each round pushes a policy that blocks a new canary and
//! times how long until every Envoy answers 403 for it. Prints p50/p99/max.
//!
//!   cargo run --release -p vigil-e2e --bin push-latency -- [ROUNDS] [ENVOYS]

use std::time::{Duration, Instant};

use vigil_e2e::control_plane::{ok, VigilServe, ADMIN_TOKEN, VIEWER_TOKEN};
use vigil_e2e::{new_temp_dir, wait_until, DemoApi, Envoy, RawRequest};

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let fleet_size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let serve = VigilServe::start();
    let api = DemoApi::start();
    let envoys: Vec<Envoy> = (0..fleet_size)
        .map(|i| {
            Envoy::start(serve.envoy_config(&format!("edge-{i}"), api.port(), &[]))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let connected = || {
        let out = serve.cli(VIEWER_TOKEN, &["nodes", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .matches("\"connected\":true")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || connected() == fleet_size),
        "edges did not connect"
    );
    let dir = new_temp_dir();
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let canary = format!("canary-{round}-{}", std::process::id());
        let policy = format!(
            r#"{{"version": "{canary}", "custom_rules": [{{"id": "canary", "targets": ["query"], "contains": "{canary}"}}]}}"#
        );
        let file = dir.join(format!("{round}.json"));
        std::fs::write(&file, policy).unwrap_or_else(|e| panic!("{e}"));
        let path = format!("/search?q={canary}");
        let start = Instant::now();
        ok(&serve.cli(
            ADMIN_TOKEN,
            &["policy", "push", file.to_str().unwrap_or_default()],
        ));
        for envoy in &envoys {
            while envoy
                .send(&RawRequest::get(&path))
                .map(|r| r.status)
                .unwrap_or(0)
                != 403
            {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "round {round}: not enforced after 10 s"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        samples.push(start.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "push -> enforced at all {fleet_size} Envoys, {rounds} pushes (includes the `vigil policy push` process): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
}
