//! The benchmark's benign GET and 2 KiB JSON POST, inspected N times: a cost measure that does
//! not depend on machine load when counted with callgrind. Per-request instructions are the
//! difference between two runs, e.g.
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/inspect_cost post 1
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/inspect_cost post 501
//! `POLICY='{...}'` compiles that policy instead of the built-in one (e.g. a rule disabled).
use std::hint::black_box;
use vigil_engine::{CompiledPolicy, Request};
const JWT: &str = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MTYzZTY2OS1jYzM0IiwiZXhwIjoxOTAwMDAwMDAwLCJzY29wZSI6InJlYWQ6YWxsIn0.QCoNw864tdbGHmHwp8C0VRiGHCZoyitJB-f9GjgoLY8";
fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let policy = match std::env::var("POLICY") {
        Ok(p) => CompiledPolicy::from_json(&p).unwrap(),
        Err(_) => CompiledPolicy::builtin().unwrap(),
    };
    let mut items = Vec::new();
    let mut i = 0;
    while items.iter().map(|s: &String| s.len() + 2).sum::<usize>() < 1900 {
        items.push(format!(r#"{{"sku": "SKU-{i:04}", "qty": {}, "price": 12.5, "note": "Leave at the door, ring twice. O'Brien's order #{i}"}}"#, i % 5 + 1));
        i += 1;
    }
    let body = format!(
        r#"{{"customer": "cus_YfxMbhkuJedX0F", "currency": "usd", "items": [{}]}}"#,
        items.join(", ")
    );
    let mut h: Vec<(&str, &[u8])> = vec![
        (":method", b"GET"), (":authority", b"api.example.com"),
        ("user-agent", b"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"),
        ("accept", b"application/json"), ("accept-encoding", b"gzip, deflate, br"), ("authorization", JWT.as_bytes()),
        ("x-request-id", b"1fbc5971-47a6-475f-b86a-4ff7fc94a95d"),
    ];
    let get = Request {
        method: "GET",
        target:
            b"/v1/customers/cus_lYsv1zHM9TBCn8/charges?limit=10&starting_after=ch_cRUMQlk6h54ILV",
        headers: &h.clone(),
        body: None,
        body_truncated: false,
    };
    h.push(("content-type", b"application/json"));
    let post = Request {
        method: "POST",
        target: b"/v1/orders",
        headers: &h,
        body: Some(body.as_bytes()),
        body_truncated: false,
    };
    let req = if which == "post" { post } else { get };
    for _ in 0..n {
        black_box(policy.inspect(black_box(&req), &|| 1_800_000_000));
    }
}
