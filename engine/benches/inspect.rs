//! Engine cost per request (native): a benign GET, a 2 KiB benign JSON POST, attacks, and
//! policy compilation. `cargo bench -p vigil-engine` (also run by `make bench`).

use criterion::{criterion_group, criterion_main, Criterion};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes, to report what a compiled policy costs each worker VM.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn report_policy_memory() {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let policy = CompiledPolicy::builtin().expect("built-in policy");
    let compiled = LIVE_BYTES.load(Ordering::Relaxed) - before;
    // Regex engines grow lazy caches while matching: measure after some traffic too.
    let headers: Vec<(&str, &[u8])> = vec![
        ("user-agent", b"Mozilla/5.0"),
        ("content-type", b"application/json"),
    ];
    for target in [
        &b"/search?q=1%27%20OR%20%271%27%3D%271"[..],
        b"/a?x=%3Cscript%3E",
        b"/users/1?q=O%27Brien",
    ] {
        let req = Request {
            method: "POST",
            target,
            headers: &headers,
            body: Some(br#"{"a": "b'c"}"#),
            body_truncated: false,
        };
        black_box(policy.inspect(&req, &|| 0));
    }
    let warmed = LIVE_BYTES.load(Ordering::Relaxed) - before;
    println!(
        "memory of the compiled built-in policy: {} KiB after compile, {} KiB after matching",
        compiled / 1024,
        warmed / 1024
    );
    drop(policy);
}
use vigil_engine::{CompiledPolicy, Request};

const JWT: &str = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MTYzZTY2OS1jYzM0IiwiZXhwIjoxOTAwMDAwMDAwLCJzY29wZSI6InJlYWQ6YWxsIn0.QCoNw864tdbGHmHwp8C0VRiGHCZoyitJB-f9GjgoLY8";

fn headers(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, Vec<u8>)> {
    let mut h: Vec<(&'static str, Vec<u8>)> = vec![
        (":method", b"GET".to_vec()),
        (":authority", b"api.example.com".to_vec()),
        ("user-agent", b"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15".to_vec()),
        ("accept", b"application/json".to_vec()),
        ("accept-encoding", b"gzip, deflate, br".to_vec()),
        ("authorization", JWT.as_bytes().to_vec()),
        ("x-request-id", b"1fbc5971-47a6-475f-b86a-4ff7fc94a95d".to_vec()),
    ];
    h.extend(extra.iter().map(|(n, v)| (*n, v.as_bytes().to_vec())));
    h
}

fn json_body_2k() -> String {
    let mut items = Vec::new();
    let mut i = 0;
    while serde_json_len(&items) < 1900 {
        items.push(format!(
            r#"{{"sku": "SKU-{i:04}", "qty": {}, "price": 12.5, "note": "Leave at the door, ring twice. O'Brien's order #{i}"}}"#,
            i % 5 + 1
        ));
        i += 1;
    }
    format!(
        r#"{{"customer": "cus_YfxMbhkuJedX0F", "currency": "usd", "items": [{}]}}"#,
        items.join(", ")
    )
}

fn serde_json_len(items: &[String]) -> usize {
    items.iter().map(|s| s.len() + 2).sum()
}

fn bench(c: &mut Criterion) {
    report_policy_memory();
    let policy = CompiledPolicy::builtin().expect("built-in policy");
    let now = || 1_800_000_000u64;

    let get_headers = headers(&[]);
    let get_h: Vec<(&str, &[u8])> = get_headers
        .iter()
        .map(|(n, v)| (*n, v.as_slice()))
        .collect();
    c.bench_function("inspect benign GET", |b| {
        b.iter(|| {
            let req = Request {
                method: "GET",
                target: b"/v1/customers/cus_lYsv1zHM9TBCn8/charges?limit=10&starting_after=ch_cRUMQlk6h54ILV",
                headers: &get_h,
                body: None,
                body_truncated: false,
            };
            black_box(policy.inspect(black_box(&req), &now));
        })
    });

    let body = json_body_2k();
    assert!(
        (1900..2300).contains(&body.len()),
        "body is {} bytes",
        body.len()
    );
    let post_headers = headers(&[("content-type", "application/json")]);
    let post_h: Vec<(&str, &[u8])> = post_headers
        .iter()
        .map(|(n, v)| (*n, v.as_slice()))
        .collect();
    c.bench_function("inspect benign 2 KiB JSON POST", |b| {
        b.iter(|| {
            let req = Request {
                method: "POST",
                target: b"/v1/orders",
                headers: &post_h,
                body: Some(body.as_bytes()),
                body_truncated: false,
            };
            black_box(policy.inspect(black_box(&req), &now));
        })
    });

    let attacks: [&[u8]; 4] = [
        b"/search?q=1%27%20UNION%20SELECT%20username,password%20FROM%20users--",
        b"/search?q=%3Cimg%20src%3Dx%20onerror%3Dalert(document.cookie)%3E",
        b"/files?name=..%252f..%252f..%252fetc%252fpasswd",
        b"/fetch?url=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2F",
    ];
    c.bench_function("inspect attack GET (4 kinds, per request)", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % attacks.len();
            let req = Request {
                method: "GET",
                target: attacks[i],
                headers: &get_h,
                body: None,
                body_truncated: false,
            };
            black_box(policy.inspect(black_box(&req), &now));
        })
    });

    c.bench_function("compile built-in policy", |b| {
        b.iter(|| black_box(CompiledPolicy::builtin()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
