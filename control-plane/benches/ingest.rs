//! Event ingestion throughput of the real `vigil serve` (SQLite, idempotent inserts, acks):
//! simulated edges send batches of 500 events, as the singleton does, over gRPC on loopback.
//!
//!   cargo bench -p vigil --bench ingest [-- EVENTS_PER_NODE]
//!
//! Prints events/s with one node and with several, and the p50/p99 time to acknowledge a batch.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use vigil_proto::v1::event_service_client::EventServiceClient;
use vigil_proto::v1::{Event, EventBatch, Finding};

const NODE_TOKEN: &str = "bench-node-token-0123456789abcdef";
const BATCH: usize = 500;

fn event(node: &str, boot: &str, sequence: u64) -> Event {
    Event {
        node_id: node.to_owned(),
        boot_id: boot.to_owned(),
        sequence,
        unix_ms: 1_795_000_000_000 + sequence as i64,
        request_id: format!("{boot}-{sequence}"),
        outcome: "block".into(),
        score: 5,
        method: "GET".into(),
        path: format!("/search?q=1%27%20OR%20%271%27%3D%271&n={sequence}"),
        client_ip: format!("10.0.{}.{}", sequence % 250, sequence % 199),
        policy_version: "7".into(),
        findings: vec![Finding {
            rule_id: "sqli-quote-boolean".into(),
            category: "sqli".into(),
            severity: "critical".into(),
            action: "block".into(),
            target: "query:q".into(),
            fragment: "' OR '1'='1".into(),
        }],
        ..Default::default()
    }
}

async fn run_node(addr: String, node: String, events: u64) -> Vec<Duration> {
    let channel = Channel::from_shared(addr)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let token: MetadataValue<_> = format!("Bearer {NODE_TOKEN}").parse().expect("token");
    let mut client =
        EventServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", token.clone());
            Ok(req)
        });
    let boot = format!("{node}-boot");
    let mut latencies = Vec::new();
    let mut seq = 0;
    while seq < events {
        let batch: Vec<Event> = (0..BATCH as u64)
            .map(|i| event(&node, &boot, seq + i + 1))
            .collect();
        seq += BATCH as u64;
        let start = Instant::now();
        let ack = client
            .report(EventBatch {
                events: batch,
                events_dropped: 0,
            })
            .await
            .expect("report")
            .into_inner();
        latencies.push(start.elapsed());
        assert_eq!(ack.stored as usize, BATCH, "every event stored once");
    }
    latencies
}

fn main() {
    let per_node: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50_000);
    let dir = std::env::temp_dir().join(format!("vigil-ingest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("vigil.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndatabase = \"vigil.db\"\n[auth]\nadmin_tokens = [\"bench-admin-token-0123456789abcdef\"]\nnode_tokens = [\"{NODE_TOKEN}\"]\n"
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--config"])
        .arg(dir.join("vigil.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(dir.join("serve.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .expect("start vigil serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = String::new();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(a) = line.strip_prefix("vigil serve listening on ") {
            addr = format!("http://{}", a.trim());
            break;
        }
    }
    // Keep draining stdout so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    assert!(!addr.is_empty(), "vigil serve did not start");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "vigil serve ingest, batches of {BATCH}, {per_node} events per node, SQLite at {}",
        dir.display()
    );
    for nodes in [1usize, 4] {
        let start = Instant::now();
        let mut latencies: Vec<Duration> = runtime.block_on(async {
            let tasks: Vec<_> = (0..nodes)
                .map(|n| {
                    tokio::spawn(run_node(
                        addr.clone(),
                        format!("bench-{nodes}-{n}"),
                        per_node,
                    ))
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.expect("node task"));
            }
            all
        });
        let elapsed = start.elapsed();
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
        let total = per_node * nodes as u64;
        println!(
            "{nodes} node(s): {total} events in {:.2} s = {:.0} events/s; batch ack p50 {:.1} ms, p99 {:.1} ms",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64(),
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
