//! The real control plane for end-to-end tests: `vigil serve` on free ports with its own
//! config, database and tokens in a temp dir, and the real `vigil` CLI against it.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{new_temp_dir, target_dir, wait_until, wasm_path, Envoy, EnvoyConfig};

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
pub const VIEWER_TOKEN: &str = "viewer-token-for-tests-0123456789";
pub const NODE_TOKEN: &str = "node-token-for-tests-0123456789";

/// The `vigil` binary: `VIGIL_BIN`, else `target/debug/vigil`.
pub fn vigil_bin() -> PathBuf {
    let path = std::env::var_os("VIGIL_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug").join("vigil"));
    assert!(
        path.is_file(),
        "vigil binary not found at {}: run `make test` or `cargo build -p vigil`",
        path.display()
    );
    path
}

/// A running `vigil serve`. Dropping it kills it; [`VigilServe::kill9`] and
/// [`VigilServe::restart`] simulate a crash and recovery on the same database.
pub struct VigilServe {
    child: Option<Child>,
    /// Serving gRPC over TLS with `server.crt`/`server.key` in `dir`.
    tls: bool,
    /// Appended to the generated `vigil.toml` (e.g. an `[alerting]` table).
    extra_config: String,
    dir: PathBuf,
    grpc: SocketAddr,
    metrics: SocketAddr,
}

impl VigilServe {
    /// Starts on free ports in a fresh temp dir.
    pub fn start() -> VigilServe {
        VigilServe::start_in(new_temp_dir(), false, String::new())
    }

    /// Starts with `extra` TOML appended to the configuration (tables such as `[alerting]`).
    pub fn start_with_config(extra: &str) -> VigilServe {
        VigilServe::start_in(new_temp_dir(), false, extra.to_owned())
    }

    /// Starts with TLS: `write_cert(dir)` must put `server.crt` (also used as the CA) and
    /// `server.key` in the directory, for the name `localhost`.
    pub fn start_tls(write_cert: impl FnOnce(&Path)) -> VigilServe {
        let dir = new_temp_dir();
        write_cert(&dir);
        VigilServe::start_in(dir, true, String::new())
    }

    fn start_in(dir: PathBuf, tls: bool, extra_config: String) -> VigilServe {
        fs::write(dir.join("node.token"), NODE_TOKEN)
            .unwrap_or_else(|e| panic!("write token: {e}"));
        let mut serve = VigilServe {
            child: None,
            tls,
            extra_config,
            dir,
            grpc: crate::localhost(0),
            metrics: crate::localhost(0),
        };
        serve.spawn(crate::free_port(), crate::free_port());
        serve
    }

    fn spawn(&mut self, grpc_port: u16, metrics_port: u16) {
        let config = format!(
            "listen = \"127.0.0.1:{grpc_port}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\ndatabase = \"vigil.db\"\n\
             [auth]\nadmin_tokens = [\"{ADMIN_TOKEN}\"]\nviewer_tokens = [\"{VIEWER_TOKEN}\"]\nnode_tokens = [\"{NODE_TOKEN}\"]\n{}",
            if self.tls { "[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n" } else { "" }
        ) + &self.extra_config;
        let config_path = self.dir.join("vigil.toml");
        fs::write(&config_path, config).unwrap_or_else(|e| panic!("write config: {e}"));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("serve.log"))
            .unwrap_or_else(|e| panic!("open serve log: {e}"));
        let mut child = Command::new(vigil_bin())
            .args(["serve", "--config"])
            .arg(&config_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start vigil serve: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Drain to the end, even after nobody listens, so the server never sees a closed pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut ready = false;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("vigil serve listening on") => {
                    ready = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert!(
            ready,
            "vigil serve did not become ready; log:\n{}",
            self.log()
        );
        self.grpc = crate::localhost(grpc_port);
        self.metrics = crate::localhost(metrics_port);
        self.child = Some(child);
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    /// The value of an unlabelled metric on `/metrics` (None if unreachable or absent).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let body = crate::http::send(self.metrics, &crate::RawRequest::get("/metrics"))
            .ok()?
            .body_str();
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn node_token_file(&self) -> PathBuf {
        self.dir.join("node.token")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same ports, config and database.
    pub fn restart(&mut self) {
        self.kill9();
        let (g, m) = (self.grpc.port(), self.metrics.port());
        self.spawn(g, m);
    }

    /// Runs the CLI against this server with `token`.
    pub fn cli(&self, token: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(vigil_bin());
        if self.tls {
            cmd.arg("--server")
                .arg(format!("https://localhost:{}", self.grpc.port()))
                .arg("--ca")
                .arg(self.dir.join("server.crt"));
        } else {
            cmd.arg("--server").arg(format!("http://{}", self.grpc));
        }
        cmd.arg("--token")
            .arg(token)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run vigil: {e}"))
    }

    /// `vigil nodes --json`: one value per node (none if the call fails).
    pub fn nodes(&self) -> Vec<serde_json::Value> {
        let out = self.cli(VIEWER_TOKEN, &["nodes", "--json"]);
        if !out.status.success() {
            return Vec::new();
        }
        json_lines(&String::from_utf8_lossy(&out.stdout))
    }

    /// Nodes whose Watch stream is open.
    pub fn connected_nodes(&self) -> usize {
        self.nodes()
            .iter()
            .filter(|n| n["connected"].as_bool() == Some(true))
            .count()
    }

    /// One Envoy per node id in front of `upstream_port`, configured by `vigil envoy-config`;
    /// returns once every one of them is connected.
    pub fn start_edges(&self, upstream_port: u16, node_ids: &[&str]) -> Vec<Envoy> {
        let envoys: Vec<Envoy> = node_ids
            .iter()
            .map(|node| {
                Envoy::start(self.envoy_config(node, upstream_port, &[]))
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        assert!(
            wait_until(Duration::from_secs(10), || self.connected_nodes()
                == node_ids.len()),
            "every edge should connect; nodes: {:?}",
            self.nodes()
        );
        envoys
    }

    /// An Envoy config from `vigil envoy-config` pointing at this server.
    pub fn envoy_config(&self, node_id: &str, upstream_port: u16, extra: &[&str]) -> EnvoyConfig {
        let cp = self.grpc;
        let token_file = self.node_token_file();
        let node = node_id.to_owned();
        let mut extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        if self.tls {
            extra.push("--tls-ca".into());
            extra.push(self.dir.join("server.crt").to_string_lossy().into_owned());
        }
        let wasm = wasm_path();
        EnvoyConfig::rendered(move |listen, admin| {
            let out = Command::new(vigil_bin())
                .arg("envoy-config")
                .args(["--listen", &format!("127.0.0.1:{listen}")])
                .args(["--admin", &format!("127.0.0.1:{admin}")])
                .args(["--upstream", &format!("127.0.0.1:{upstream_port}")])
                .args(["--control-plane", &cp.to_string()])
                .arg("--token-file")
                .arg(&token_file)
                .args(["--node-id", &node])
                .arg("--wasm")
                .arg(&wasm)
                .args(&extra)
                .output()
                .unwrap_or_else(|e| panic!("cannot run vigil envoy-config: {e}"));
            assert!(
                out.status.success(),
                "vigil envoy-config failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    }
}

impl Drop for VigilServe {
    fn drop(&mut self) {
        self.kill9();
        if std::env::var_os("VIGIL_E2E_KEEP").is_none() && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else if std::thread::panicking() {
            eprintln!(
                "vigil serve dir kept: {}\n--- serve log tail ---\n{}",
                self.dir.display(),
                tail(&self.log(), 40)
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One JSON value per non-empty line (`--json` output); lines that do not parse are skipped.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Stdout of a CLI run, asserting success.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "vigil failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
