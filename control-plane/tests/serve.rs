//! `vigil serve` end to end: the real binary, driven by the real CLI and by a tonic client
//! playing an edge. Each test runs its own server on ephemeral ports in a temp directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use vigil_proto::v1::admin_service_client::AdminServiceClient;
use vigil_proto::v1::event_service_client::EventServiceClient;
use vigil_proto::v1::rule_service_client::RuleServiceClient;
use vigil_proto::v1::{
    BlockList, Event, EventBatch, Finding, ListNodesRequest, NodeInfo, NodeStatus, Observation,
    PushPolicyRequest, TailRequest, WatchRequest,
};

const ADMIN: &str = "admin-token-for-tests-0001";
const VIEWER: &str = "viewer-token-for-tests-0001";
const NODE: &str = "node-token-for-tests-00001";

const POLICY_A: &str = "mode: monitor\ncustom_rules:\n  - id: block-admin\n    targets: [path]\n    contains: /admin\n";
const POLICY_B: &str = "mode: enforce\ncustom_rules:\n  - id: block-admin\n    targets: [path]\n    contains: /admin\n";
const POLICY_BAD: &str =
    "custom_rules:\n  - id: bad-re\n    targets: [path]\n    pattern: \"(unclosed\"\n";

struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
    metrics_port: u16,
    https: bool,
}

impl Server {
    /// Starts `vigil serve` with a config in `dir` (created if needed) and waits until it
    /// prints its ports.
    fn start(dir: &Path, tls: bool) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("viewer.token"), format!("{VIEWER}\n")).unwrap();
        let mut config = format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndatabase = \"data/vigil.db\"\n\
             [auth]\nadmin_tokens = [\"{ADMIN}\"]\nviewer_token_files = [\"viewer.token\"]\nnode_tokens = [\"{NODE}\"]\n"
        );
        if tls {
            config.push_str("[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n");
        }
        std::fs::write(dir.join("vigil.toml"), config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["serve", "--config"])
            .arg(dir.join("vigil.toml"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let port_of = |line: &str| -> u16 { line.rsplit(':').next().unwrap().parse().unwrap() };
        let mut port = None;
        let mut metrics_port = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while port.is_none() || metrics_port.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "vigil serve did not start:\n{}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                )
            });
            if let Some(rest) = line.strip_prefix("vigil serve listening on ") {
                port = Some(port_of(rest));
            } else if let Some(rest) = line.strip_prefix("metrics on ") {
                metrics_port = Some(port_of(rest));
            }
        }
        Server {
            child,
            dir: dir.to_path_buf(),
            port: port.unwrap(),
            metrics_port: metrics_port.unwrap(),
            https: tls,
        }
    }

    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Runs the CLI against this server.
    fn cli(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.args(args)
            .env("VIGIL_SERVER", self.url())
            .env_remove("VIGIL_TOKEN")
            .current_dir(&self.dir);
        if let Some(t) = token {
            cmd.env("VIGIL_TOKEN", t);
        }
        cmd.output().unwrap()
    }

    fn metrics(&self) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.metrics_port)).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        text
    }

    fn metric(&self, name: &str) -> i64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .parse()
            .unwrap()
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL: no shutdown path runs
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Authed =
    InterceptedService<Channel, Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>>;

fn with_token(channel: Channel, token: &str) -> Authed {
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    InterceptedService::new(
        channel,
        Box::new(move |mut req: Request<()>| {
            req.metadata_mut().insert("authorization", value.clone());
            Ok(req)
        }),
    )
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn node(id: &str) -> NodeInfo {
    NodeInfo {
        node_id: id.into(),
        boot_id: "boot-1".into(),
        applied_version: String::new(),
        filter_version: "test".into(),
    }
}

fn event(seq: u64, ip: &str, rule: &str, category: &str) -> Event {
    Event {
        node_id: "edge-a".into(),
        boot_id: "boot-1".into(),
        sequence: seq,
        unix_ms: 1_700_000_000_000 + seq as i64,
        request_id: format!("req-{seq}"),
        outcome: "block".into(),
        score: 5,
        method: "GET".into(),
        path: "/search".into(),
        client_ip: ip.into(),
        policy_version: "1".into(),
        findings: vec![Finding {
            rule_id: rule.into(),
            category: category.into(),
            severity: "critical".into(),
            action: "block".into(),
            target: "query:q".into(),
            fragment: "union select".into(),
        }],
        ..Default::default()
    }
}

#[test]
fn policy_push_list_diff_rollback_and_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), false);
    let dir = tmp.path();
    std::fs::write(dir.join("a.yaml"), POLICY_A).unwrap();
    std::fs::write(dir.join("b.yaml"), POLICY_B).unwrap();
    std::fs::write(dir.join("bad.yaml"), POLICY_BAD).unwrap();

    // No token, then a viewer token: refused, nothing stored.
    let out = server.cli(None, &["policy", "push", "a.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not authenticated"), "{}", text(&out));
    let out = server.cli(Some(VIEWER), &["policy", "push", "a.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("permission denied"), "{}", text(&out));
    let out = server.cli(Some("not-a-token"), &["policy", "list"]);
    assert!(text(&out).contains("unknown token"), "{}", text(&out));
    assert_eq!(server.metric("vigil_cp_auth_failures_total"), 3);

    let out = server.cli(
        Some(ADMIN),
        &["policy", "push", "a.yaml", "--comment", "first"],
    );
    assert!(
        stdout(&out).starts_with("pushed version 1 (sha256 "),
        "{}",
        text(&out)
    );
    let out = server.cli(Some(ADMIN), &["policy", "push", "a.yaml"]);
    assert!(
        stdout(&out).starts_with("unchanged: version 1"),
        "{}",
        text(&out)
    );

    let list = stdout(&server.cli(Some(VIEWER), &["policy", "list"]));
    assert!(list.contains("first"), "{list}");
    assert_eq!(list.lines().count(), 2, "{list}");

    // Invalid: refused locally with rule and field, nothing sent.
    let out = server.cli(Some(ADMIN), &["policy", "push", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad-re") && err.contains("custom_rules[0].pattern"),
        "{err}"
    );
    assert_eq!(stdout(&server.cli(Some(VIEWER), &["policy", "list"])), list);

    let out = server.cli(
        Some(ADMIN),
        &["policy", "push", "b.yaml", "--comment", "enforce"],
    );
    assert!(
        stdout(&out).starts_with("pushed version 2"),
        "{}",
        text(&out)
    );

    let diff = stdout(&server.cli(Some(VIEWER), &["policy", "diff", "1"]));
    assert!(
        diff.contains("--- version 1\n+++ version 2 (current)\n")
            && diff.contains("-  \"mode\": \"monitor\"")
            && diff.contains("+  \"mode\": \"enforce\""),
        "{diff}"
    );

    let out = server.cli(Some(VIEWER), &["policy", "rollback"]);
    assert!(text(&out).contains("permission denied"), "{}", text(&out));
    let out = server.cli(Some(ADMIN), &["policy", "rollback"]);
    assert!(stdout(&out).contains("now version 3"), "{}", text(&out));
    let list = stdout(&server.cli(Some(VIEWER), &["policy", "list"]));
    let current: Vec<&str> = list.lines().filter(|l| l.contains(" * ")).collect();
    assert!(
        current.len() == 1
            && current[0].starts_with("3 ")
            && current[0].contains("rollback to version 1"),
        "{list}"
    );
    let same = stdout(&server.cli(Some(VIEWER), &["policy", "diff", "1", "3"]));
    assert!(same.contains("same policy"), "{same}");
    let shown = stdout(&server.cli(Some(VIEWER), &["policy", "show"]));
    let value: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(value["mode"], "monitor");
    let out = server.cli(Some(ADMIN), &["policy", "rollback", "--to", "99"]);
    assert!(
        text(&out).contains("version 99 does not exist"),
        "{}",
        text(&out)
    );

    // Server-side validation, for clients that skip the local check.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut admin = AdminServiceClient::new(with_token(server.channel().await, ADMIN));
        let bad = r#"{"custom_rules":[{"id":"bad-re","targets":["path"],"pattern":"(unclosed"}]}"#;
        let status = admin
            .push_policy(PushPolicyRequest {
                json: bad.into(),
                comment: String::new(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("bad-re")
                && status.message().contains("custom_rules[0].pattern"),
            "{status:?}"
        );
    });
    assert_eq!(server.metric("vigil_cp_policy_rejected_total"), 1);
    assert_eq!(server.metric("vigil_cp_policy_version"), 3);
    assert_eq!(
        stdout(&server.cli(Some(VIEWER), &["policy", "list"]))
            .lines()
            .count(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_current_and_new_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), false);
    let channel = server.channel().await;
    let mut admin = AdminServiceClient::new(with_token(channel.clone(), ADMIN));
    let mut rules = RuleServiceClient::new(with_token(channel.clone(), NODE));

    // A node token may not use the admin API; an admin token may watch.
    let mut node_admin = AdminServiceClient::new(with_token(channel.clone(), NODE));
    let denied = node_admin
        .list_nodes(ListNodesRequest {})
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let first = admin
        .push_policy(PushPolicyRequest {
            json: r#"{"mode":"monitor"}"#.into(),
            comment: "one".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .bundle
        .unwrap();

    let mut stream = rules
        .watch(WatchRequest {
            node: Some(node("edge-a")),
        })
        .await
        .unwrap()
        .into_inner();
    let got = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .expect("current bundle at once")
        .unwrap()
        .unwrap()
        .policy
        .unwrap();
    assert_eq!(got, first);
    assert_eq!(got.version, "1");
    let json_sha = {
        use std::fmt::Write as _;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(got.json.as_bytes());
        digest.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    assert_eq!(got.sha256, json_sha);

    let nodes = admin
        .list_nodes(ListNodesRequest {})
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0].connected);
    assert_eq!(server.metric("vigil_cp_nodes_connected"), 1);
    assert_eq!(server.metric("vigil_cp_watch_streams"), 1);

    let started = Instant::now();
    admin
        .push_policy(PushPolicyRequest {
            json: r#"{"mode":"enforce"}"#.into(),
            comment: "two".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .expect("new bundle pushed")
        .unwrap()
        .unwrap()
        .policy
        .unwrap();
    let latency = started.elapsed();
    assert_eq!(next.version, "2");
    assert!(next.json.contains("\"enforce\""));
    assert!(
        latency < Duration::from_secs(1),
        "push to edge took {latency:?}"
    );
    eprintln!("push → watch latency: {latency:?}");

    // The edge reports that it applied it, with drops.
    rules
        .report_status(NodeStatus {
            node: Some(node("edge-a")),
            version: "2".into(),
            applied: true,
            error: String::new(),
            events_dropped: 3,
        })
        .await
        .unwrap();
    let nodes = stdout(&server.cli(Some(VIEWER), &["nodes", "--json"]));
    let state: serde_json::Value = serde_json::from_str(nodes.trim()).unwrap();
    assert_eq!(state["node_id"], "edge-a");
    assert_eq!(state["connected"], true);
    assert_eq!(state["applied_version"], "2");
    assert_eq!(state["events_dropped"], 3);

    // Closing the stream disconnects the node.
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let nodes = admin
            .list_nodes(ListNodesRequest {})
            .await
            .unwrap()
            .into_inner()
            .nodes;
        if !nodes[0].connected {
            break;
        }
        assert!(Instant::now() < deadline, "node still connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.metric("vigil_cp_watch_streams"), 0);

    // SIGTERM with a Watch stream open: the stream ends and the server exits promptly.
    let mut stream = rules
        .watch(WatchRequest {
            node: Some(node("edge-a")),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    let mut server = server;
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("stream ends on shutdown");
    assert!(matches!(ended, Ok(None) | Err(_)), "{ended:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server did not exit on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.child.try_wait().unwrap().unwrap().success());
    assert!(
        server.log().contains("vigil serve stopped"),
        "{}",
        server.log()
    );
}

#[test]
fn events_are_stored_once_and_survive_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), false);
    std::fs::write(tmp.path().join("a.yaml"), POLICY_A).unwrap();
    stdout(&server.cli(Some(ADMIN), &["policy", "push", "a.yaml"]));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let batch = EventBatch {
        events: vec![
            event(1, "10.0.0.1", "sqli-union-select", "sqli"),
            event(2, "10.0.0.2", "xss-script-tag", "xss"),
        ],
        events_dropped: 0,
    };
    rt.block_on(async {
        let channel = server.channel().await;
        let mut tail = AdminServiceClient::new(with_token(channel.clone(), VIEWER))
            .tail_events(TailRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut events = EventServiceClient::new(with_token(channel.clone(), NODE));
        let ack = events.report(batch.clone()).await.unwrap().into_inner();
        assert_eq!((ack.stored, ack.duplicates), (2, 0));
        let ack = events.report(batch.clone()).await.unwrap().into_inner();
        assert_eq!((ack.stored, ack.duplicates), (0, 2));

        // The tail saw each stored event once, in order.
        for seq in [1, 2] {
            let e = tokio::time::timeout(Duration::from_secs(2), tail.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(e.sequence, seq);
        }

        let mut bad = batch.clone();
        bad.events[1].boot_id.clear();
        let status = events.report(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("events[1].boot_id"), "{status:?}");

        let viewer_events = EventServiceClient::new(with_token(channel, VIEWER))
            .report(batch.clone())
            .await
            .unwrap_err();
        assert_eq!(viewer_events.code(), Code::PermissionDenied);
    });
    assert_eq!(server.metric("vigil_cp_events_stored_total"), 2);
    assert_eq!(server.metric("vigil_cp_events_duplicate_total"), 2);

    let query = |server: &Server, args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["events", "query", "--json"];
        all.extend_from_slice(args);
        stdout(&server.cli(Some(VIEWER), &all))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = query(&server, &[]);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["sequence"], 2, "newest first");
    let sqli = query(&server, &["--category", "sqli"]);
    assert_eq!(sqli.len(), 1);
    assert_eq!(sqli[0]["findings"][0]["rule_id"], "sqli-union-select");
    assert_eq!(query(&server, &["--ip", "10.0.0.2"]).len(), 1);
    assert_eq!(
        query(&server, &["--rule", "xss-script-tag", "--node", "edge-a"]).len(),
        1
    );
    assert_eq!(query(&server, &["--node", "edge-b"]).len(), 0);
    assert_eq!(
        query(&server, &["--since", "2023-11-14T22:13:20.002Z"]).len(),
        1
    );
    assert_eq!(query(&server, &["--since", "10m"]).len(), 0);
    assert_eq!(query(&server, &["--limit", "1"]).len(), 1);
    let table = stdout(&server.cli(Some(VIEWER), &["events", "query"]));
    assert!(table.contains("sqli-union-select(sqli)"), "{table}");

    // kill -9 after the acknowledgement: nothing acknowledged is lost.
    let dir = server.dir.clone();
    server.kill();
    let server = Server::start(&dir, false);
    assert_eq!(query(&server, &[]).len(), 2);
    let list = stdout(&server.cli(Some(VIEWER), &["policy", "list"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("1 ") && l.contains(" * ")),
        "{list}"
    );
    rt.block_on(async {
        let mut events = EventServiceClient::new(with_token(server.channel().await, NODE));
        let ack = events.report(batch).await.unwrap().into_inner();
        assert_eq!((ack.stored, ack.duplicates), (0, 2));
    });
    assert!(server.log().contains("vigil serve started"));
}

#[test]
fn tls_with_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(tmp.path().join("server.crt"), cert.cert.pem()).unwrap();
    std::fs::write(
        tmp.path().join("server.key"),
        cert.signing_key.serialize_pem(),
    )
    .unwrap();
    let server = Server::start(tmp.path(), true);

    let out = server.cli(
        None,
        &[
            "policy",
            "list",
            "--ca",
            "server.crt",
            "--token-file",
            "viewer.token",
        ],
    );
    assert!(
        stdout(&out).contains("no policy has been pushed yet"),
        "{}",
        text(&out)
    );
    // Without the CA the certificate is not trusted.
    let out = server.cli(Some(VIEWER), &["policy", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Plain HTTP/2 against a TLS port fails rather than leaking the token.
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["policy", "list", "--server"])
        .arg(format!("http://127.0.0.1:{}", server.port))
        .env("VIGIL_TOKEN", VIEWER)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

// ---------------------------------------------------------------------- fleet response

/// Brute force at fleet scope: 6 failed logins per IP in a minute block the IP for 2 s.
const POLICY_FLEET: &str = "behaviour:\n  brute_force:\n    routes: [/login]\n    per_ip: {window_secs: 60, threshold: 6, action: block, block_secs: 2}\n";

fn failed_login(node_id: &str, seq: u64, ip: &str) -> Event {
    Event {
        node_id: node_id.into(),
        boot_id: "boot-1".into(),
        sequence: seq,
        unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
        request_id: format!("{node_id}-{seq}"),
        outcome: "observe".into(),
        method: "POST".into(),
        path: "/login".into(),
        client_ip: ip.into(),
        principal: format!("ip:{ip}"),
        observation: Some(Observation {
            kind: "login".into(),
            ip: ip.into(),
            principal: format!("ip:{ip}"),
            route: "/login".into(),
            subject: format!("user{seq}"),
            status: 401,
            ..Default::default()
        }),
        ..Default::default()
    }
}

type WatchMessages = tonic::Streaming<vigil_proto::v1::WatchResponse>;

/// The next policy bundle on a Watch stream.
async fn next_policy(
    stream: &mut WatchMessages,
    within: Duration,
) -> vigil_proto::v1::PolicyBundle {
    tokio::time::timeout(within, async {
        loop {
            let message = stream.message().await.unwrap().expect("stream open");
            if let Some(policy) = message.policy {
                return policy;
            }
        }
    })
    .await
    .expect("a policy in time")
}

/// The next BlockList on a Watch stream (skipping messages that carry only other things).
async fn next_blocks(stream: &mut WatchMessages, within: Duration) -> BlockList {
    tokio::time::timeout(within, async {
        loop {
            let message = stream.message().await.unwrap().expect("stream open");
            if let Some(blocks) = message.blocks {
                return blocks;
            }
        }
    })
    .await
    .expect("a block list in time")
}

async fn watch(channel: &Channel, node_id: &str) -> WatchMessages {
    RuleServiceClient::new(with_token(channel.clone(), NODE))
        .watch(WatchRequest {
            node: Some(node(node_id)),
        })
        .await
        .unwrap()
        .into_inner()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_correlator_blocks_a_split_brute_force_on_every_edge() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), false);
    std::fs::write(tmp.path().join("fleet.yaml"), POLICY_FLEET).unwrap();
    stdout(&server.cli(Some(ADMIN), &["policy", "push", "fleet.yaml"]));
    let channel = server.channel().await;

    // Both edges connect; the first message carries policy, blocks and intel.
    let mut edges = Vec::new();
    for id in ["edge-a", "edge-b"] {
        let mut stream = watch(&channel, id).await;
        let first = tokio::time::timeout(Duration::from_secs(2), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first.policy.unwrap().version, "1");
        assert!(first.blocks.unwrap().blocks.is_empty());
        assert!(first.intel.unwrap().entries.is_empty());
        edges.push(stream);
    }

    // Three failures through each edge: neither passes the threshold of 6 alone.
    let attacker = "203.0.113.50";
    let mut reporter = EventServiceClient::new(with_token(channel.clone(), NODE));
    let batch_a = EventBatch {
        events: (1..=3)
            .map(|s| failed_login("edge-a", s, attacker))
            .collect(),
        events_dropped: 0,
    };
    let batch_b = EventBatch {
        events: (1..=2)
            .map(|s| failed_login("edge-b", s, attacker))
            .collect(),
        events_dropped: 0,
    };
    reporter.report(batch_a.clone()).await.unwrap();
    reporter.report(batch_b.clone()).await.unwrap();
    // Resends are duplicates and must not count as more failures.
    let ack = reporter.report(batch_a).await.unwrap().into_inner();
    assert_eq!((ack.stored, ack.duplicates), (0, 3));
    let ack = reporter.report(batch_b).await.unwrap().into_inner();
    assert_eq!((ack.stored, ack.duplicates), (0, 2));
    let query = |args: &[&str]| {
        let mut all = vec!["events", "query", "--json"];
        all.extend_from_slice(args);
        json_lines(&server.cli(Some(VIEWER), &all))
    };
    assert!(query(&["--rule", "behaviour.brute_force"]).is_empty());

    // The sixth failure, on edge-b, completes the fleet count.
    let started = Instant::now();
    reporter
        .report(EventBatch {
            events: vec![failed_login("edge-b", 3, attacker)],
            events_dropped: 0,
        })
        .await
        .unwrap();
    for stream in &mut edges {
        let list = next_blocks(stream, Duration::from_secs(1)).await;
        assert_eq!(list.blocks.len(), 1, "{list:?}");
        let block = &list.blocks[0];
        assert_eq!(
            (
                block.kind.as_str(),
                block.value.as_str(),
                block.reason.as_str()
            ),
            ("ip", attacker, "fleet:brute_force")
        );
        assert!(!block.limit_only);
        assert!(block.expires_unix_ms > 0);
    }
    let latency = started.elapsed();
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    eprintln!("observation → block on both edges: {latency:?}");

    // The detection is an event; observations stay out of queries unless asked for.
    let detections = query(&["--rule", "behaviour.brute_force"]);
    assert_eq!(detections.len(), 1, "{detections:?}");
    assert_eq!(detections[0]["outcome"], "detect");
    assert_eq!(detections[0]["client_ip"], attacker);
    assert_eq!(detections[0]["policy_version"], "1");
    assert_eq!(detections[0]["findings"][0]["severity"], "critical");
    assert_eq!(detections[0]["findings"][0]["category"], "behaviour");
    assert_eq!(query(&[]).len(), 1);
    let with_observations = query(&["--observations"]);
    assert_eq!(with_observations.len(), 7);
    assert!(with_observations
        .iter()
        .any(|e| e["observation"]["subject"] == "user3" && e["principal"] == "ip:203.0.113.50"));
    // The correlator's events do not make it a node.
    let nodes = json_lines(&server.cli(Some(VIEWER), &["nodes", "--json"]));
    assert_eq!(nodes.len(), 2, "{nodes:?}");

    let listed = json_lines(&server.cli(Some(VIEWER), &["blocks", "list", "--json"]));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["created_by"], "correlator");

    // The TTL (2 s) runs out: the block is swept and every edge gets the empty list.
    for stream in &mut edges {
        let list = next_blocks(stream, Duration::from_secs(4)).await;
        assert!(list.blocks.is_empty(), "{list:?}");
    }
    let audit = json_lines(&server.cli(Some(VIEWER), &["audit", "--json"]));
    let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, vec!["block.expire", "block.add", "policy.push"]);
    assert_eq!(audit[1]["actor"], "correlator");
    assert_eq!(audit[2]["actor"], "admin#1");
    assert!(json_lines(&server.cli(Some(VIEWER), &["blocks", "list", "--json"])).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_intel_from_the_cli_reach_edges() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), false);
    let channel = server.channel().await;
    let mut edge = watch(&channel, "edge-a").await;
    let first = edge.message().await.unwrap().unwrap();
    assert!(first.policy.is_none(), "no policy pushed yet");
    let revision0 = first.blocks.unwrap().revision;

    let cli = |token: &str, args: &[&str]| server.cli(Some(token), args);
    let out = cli(VIEWER, &["blocks", "add", "--ip", "198.51.100.7"]);
    assert!(text(&out).contains("permission denied"), "{}", text(&out));
    let out = cli(ADMIN, &["blocks", "add", "--ip", "198.51.100.300"]);
    assert!(text(&out).contains("not an IP address"), "{}", text(&out));

    let started = Instant::now();
    let added = json_lines(&cli(
        ADMIN,
        &[
            "blocks",
            "add",
            "--principal",
            "sub:mallory",
            "--ttl",
            "10m",
            "--reason",
            "stolen account",
            "--limit",
            "--json",
        ],
    ));
    let list = next_blocks(&mut edge, Duration::from_secs(1)).await;
    eprintln!("blocks add → edge: {:?}", started.elapsed());
    assert!(list.revision > revision0);
    assert_eq!(list.blocks.len(), 1);
    assert_eq!(list.blocks[0].value, "sub:mallory");
    assert!(list.blocks[0].limit_only);
    assert_eq!(added[0]["reason"], "stolen account");
    let ttl_ms = added[0]["expires_unix_ms"].as_i64().unwrap()
        - added[0]["created_unix_ms"].as_i64().unwrap();
    assert_eq!(ttl_ms, 600_000);

    stdout(&cli(ADMIN, &["blocks", "add", "--cidr", "192.0.2.0/24"]));
    assert_eq!(
        next_blocks(&mut edge, Duration::from_secs(1))
            .await
            .blocks
            .len(),
        2
    );
    let table = stdout(&cli(VIEWER, &["blocks", "list"]));
    assert!(
        table.contains("sub:mallory") && table.contains("192.0.2.0/24"),
        "{table}"
    );
    stdout(&cli(
        ADMIN,
        &["blocks", "remove", "--principal", "sub:mallory"],
    ));
    let list = next_blocks(&mut edge, Duration::from_secs(1)).await;
    assert_eq!(list.blocks.len(), 1);
    assert_eq!(list.blocks[0].kind, "cidr");
    let out = cli(ADMIN, &["blocks", "remove", "--principal", "sub:mallory"]);
    assert!(text(&out).contains("not found"), "{}", text(&out));

    // A bad line refuses the whole file, naming it; nothing is loaded or pushed.
    std::fs::write(
        tmp.path().join("bad.txt"),
        "# list\n192.0.2.0/24 tor\n203.0.113.0/40 scanners\n",
    )
    .unwrap();
    let out = cli(ADMIN, &["intel", "load", "bad.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("line 3"), "{}", text(&out));
    assert!(stdout(&cli(VIEWER, &["intel", "list"])).contains("revision 0, 0 entries"));

    std::fs::write(
        tmp.path().join("good.txt"),
        "# list\n192.0.2.0/24 tor-exit\n203.0.113.9, scanner\n2001:db8::/32\n",
    )
    .unwrap();
    let loaded = json_lines(&cli(ADMIN, &["intel", "load", "good.txt", "--json"]));
    assert_eq!(loaded[0]["loaded"], 3);
    let intel = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            if let Some(intel) = edge.message().await.unwrap().unwrap().intel {
                return intel;
            }
        }
    })
    .await
    .expect("intel pushed");
    assert_eq!(intel.entries.len(), 3);
    assert_eq!(intel.entries[1].label, "scanner");
    let listed = json_lines(&cli(VIEWER, &["intel", "list", "--json"]));
    assert_eq!(listed[0]["label"], "tor-exit");

    // A new edge gets the current blocks and intel in its first message.
    let mut late = watch(&channel, "edge-b").await;
    let first = late.message().await.unwrap().unwrap();
    assert_eq!(first.blocks.unwrap().blocks.len(), 1);
    assert_eq!(first.intel.unwrap().entries.len(), 3);

    let audit = json_lines(&cli(VIEWER, &["audit", "--json"]));
    let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        vec!["intel.load", "block.remove", "block.add", "block.add"]
    );
    assert!(audit.iter().all(|e| e["actor"] == "admin#1"), "{audit:?}");
    assert_eq!(audit[0]["detail"], "3 entries from good.txt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_and_policy_set_are_audited_reversible_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), false);
    std::fs::write(tmp.path().join("fleet.yaml"), POLICY_FLEET).unwrap();
    let cli = |token: &str, args: &[&str]| server.cli(Some(token), args);
    stdout(&cli(ADMIN, &["policy", "push", "fleet.yaml"]));
    let channel = server.channel().await;
    let mut edge = watch(&channel, "edge-a").await;
    assert_eq!(
        edge.message()
            .await
            .unwrap()
            .unwrap()
            .policy
            .unwrap()
            .version,
        "1"
    );

    let out = cli(
        ADMIN,
        &[
            "exceptions",
            "add",
            "--rule",
            "sqli",
            "--route",
            "/search",
            "--param",
            "q",
            "--reason",
            "search box",
        ],
    );
    assert!(stdout(&out).contains("pushed version 2"), "{}", text(&out));
    let bundle = next_policy(&mut edge, Duration::from_secs(1)).await;
    assert_eq!(bundle.version, "2");
    assert!(bundle.json.contains("search box"), "{}", bundle.json);
    let listed = json_lines(&cli(VIEWER, &["exceptions", "list", "--json"]));
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0]["rule"].as_str(), listed[0]["param"].as_str()),
        (Some("sqli"), Some("q"))
    );

    // Invalid edits name the rule or field; nothing is pushed.
    let out = cli(
        ADMIN,
        &[
            "exceptions",
            "add",
            "--rule",
            "no-such-rule",
            "--route",
            "/x",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("exceptions[1].rule"), "{}", text(&out));
    let out = cli(
        ADMIN,
        &["policy", "set", "behaviour.brute_force.per_ip.threshold=0"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("behaviour.brute_force.per_ip.threshold"),
        "{}",
        text(&out)
    );
    let out = cli(ADMIN, &["exceptions", "remove", "5"]);
    assert!(text(&out).contains("no exception 5"), "{}", text(&out));
    let out = cli(VIEWER, &["policy", "set", "mode=monitor"]);
    assert!(text(&out).contains("permission denied"), "{}", text(&out));

    let out = cli(
        ADMIN,
        &[
            "policy",
            "set",
            "behaviour.brute_force.per_ip.threshold=20",
            "mode=monitor",
            "--json",
        ],
    );
    let set = json_lines(&out);
    assert_eq!(set[0]["version"], "3");
    assert_eq!(set[0]["base_version"], "2");
    let bundle = next_policy(&mut edge, Duration::from_secs(1)).await;
    let doc: serde_json::Value = serde_json::from_str(&bundle.json).unwrap();
    assert_eq!(doc["behaviour"]["brute_force"]["per_ip"]["threshold"], 20);
    assert_eq!(doc["mode"], "monitor");

    stdout(&cli(ADMIN, &["exceptions", "remove", "0"]));
    assert_eq!(
        next_policy(&mut edge, Duration::from_secs(1)).await.version,
        "4"
    );
    assert!(json_lines(&cli(VIEWER, &["exceptions", "list", "--json"])).is_empty());
    stdout(&cli(ADMIN, &["policy", "rollback"]));
    let restored = next_policy(&mut edge, Duration::from_secs(1)).await;
    assert_eq!(restored.version, "5");
    assert!(restored.json.contains("search box"));

    // A push based on an old version is refused.
    let mut admin = AdminServiceClient::new(with_token(channel.clone(), ADMIN));
    let stale = admin
        .push_policy(PushPolicyRequest {
            json: "{}".into(),
            comment: "stale".into(),
            base_version: "2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);

    let audit = json_lines(&cli(VIEWER, &["audit", "--json"]));
    let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "policy.rollback",
            "policy.push",
            "policy.push",
            "policy.push",
            "policy.push"
        ]
    );
    assert!(
        audit[2]["detail"]
            .as_str()
            .unwrap()
            .contains("policy set behaviour.brute_force.per_ip.threshold=20"),
        "{audit:?}"
    );
    assert!(
        audit[3]["detail"]
            .as_str()
            .unwrap()
            .contains("exception: sqli on /search"),
        "{audit:?}"
    );
    let versions = stdout(&cli(VIEWER, &["policy", "list"]));
    assert_eq!(versions.lines().count(), 6, "{versions}");
}
