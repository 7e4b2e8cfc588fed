//! The real Prometheus and Alertmanager (Debian packages) for end-to-end tests, each on a free
//! loopback port with its own data directory, configured from the shipped files in
//! `envoy/prometheus/` with test addresses and short intervals substituted.
//!
//! Binaries: `PROMETHEUS_BIN` (default `/usr/bin/prometheus`) and `ALERTMANAGER_BIN` (default
//! `/usr/bin/prometheus-alertmanager`); `make tools` installs both.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::http::{self, RawRequest};
use crate::{free_port, keep_temp_dirs, kill_and_wait, localhost, lock, new_temp_dir, wait_until};

/// How long a server gets to answer `/-/ready`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

fn bin(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} not found: run `make tools` (installs the Debian packages prometheus and \
         prometheus-alertmanager) or set {var}",
        path.display()
    );
    path
}

pub fn prometheus_bin() -> PathBuf {
    bin("PROMETHEUS_BIN", "/usr/bin/prometheus")
}

pub fn alertmanager_bin() -> PathBuf {
    bin("ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager")
}

/// `envoy/prometheus/<name>` as text.
pub fn shipped(name: &str) -> String {
    let path = crate::repo_root().join("envoy/prometheus").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Replaces every occurrence of `needle`, which must occur at least once.
fn replace_all(text: &str, needle: &str, with: &str) -> String {
    assert!(
        text.contains(needle),
        "`{needle}` not found: the shipped file changed, update tests/src/monitoring.rs"
    );
    text.replace(needle, with)
}

/// Alert rules with every `for:` set to `0s`, so that an alert fires at the first evaluation
/// where its expression holds. The expressions are unchanged; the `for:` durations are
/// checked by the promtool unit tests.
pub fn without_hold_times(rules: &str) -> String {
    rules
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("for: ") {
                format!("{}for: 0s", &line[..line.len() - trimmed.len()])
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn yaml_list(addrs: &[SocketAddr]) -> String {
    let items: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// A running server process (killed on drop; its directory removed unless kept).
struct Server {
    name: &'static str,
    child: Mutex<Child>,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Server {
    fn start(name: &'static str, dir: PathBuf, mut cmd: Command, addr: SocketAddr) -> Server {
        let log_path = dir.join(format!("{name}.log"));
        let log = File::create(&log_path).unwrap_or_else(|e| panic!("create log: {e}"));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("clone log: {e}"));
        let child = cmd
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let server = Server {
            name,
            child: Mutex::new(child),
            addr,
            dir,
        };
        let mut exited = false;
        let ready = wait_until(START_TIMEOUT, || {
            if let Ok(Some(_)) = lock(&server.child).try_wait() {
                exited = true;
                return true;
            }
            matches!(
                http::send_with_timeout(addr, &RawRequest::get("/-/ready"), Duration::from_secs(2)),
                Ok(r) if r.status == 200
            )
        });
        assert!(
            ready && !exited,
            "{name} did not become ready (exited: {exited}); log:\n{}",
            server.log()
        );
        server
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join(format!("{}.log", self.name))).unwrap_or_default()
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let resp = http::send(self.addr, &RawRequest::get(path))
            .unwrap_or_else(|e| panic!("{} GET {path}: {e}", self.name));
        assert_eq!(resp.status, 200, "{} GET {path}: {resp:?}", self.name);
        resp.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_and_wait(&mut lock(&self.child));
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- last {} log lines ({}) ---\n{}",
                self.name,
                self.dir.display(),
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        } else if !keep_temp_dirs() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where Prometheus scrapes and sends alerts.
#[derive(Debug, Clone, Default)]
pub struct PrometheusTargets {
    /// Envoy admin addresses (`/stats/prometheus`).
    pub envoys: Vec<SocketAddr>,
    /// `vigil serve`'s metrics address.
    pub control_plane: Option<SocketAddr>,
    pub alertmanager: Option<SocketAddr>,
}

/// Prometheus run with the shipped `prometheus.yml` and `rules/*.yml`: test addresses,
/// scrape and evaluation every second, rules without hold times.
pub struct Prometheus {
    server: Server,
}

impl Prometheus {
    pub fn start(targets: &PrometheusTargets) -> Prometheus {
        let dir = new_temp_dir();
        let rules_dir = dir.join("rules");
        fs::create_dir_all(&rules_dir).unwrap_or_else(|e| panic!("{e}"));
        let shipped_rules = crate::repo_root().join("envoy/prometheus/rules");
        for entry in fs::read_dir(&shipped_rules).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            let name = path.file_name().unwrap_or_default();
            fs::write(rules_dir.join(name), without_hold_times(&text))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // An address nothing listens on stands for a job the test does not run.
        let nowhere = localhost(free_port());
        let mut yaml = shipped("prometheus.yml");
        yaml = replace_all(&yaml, "scrape_interval: 15s", "scrape_interval: 1s");
        yaml = replace_all(&yaml, "evaluation_interval: 15s", "evaluation_interval: 1s");
        yaml = replace_all(
            &yaml,
            "targets: [\"127.0.0.1:9901\"]",
            &format!("targets: {}", yaml_list(&targets.envoys)),
        );
        yaml = replace_all(
            &yaml,
            "targets: [\"127.0.0.1:18001\"]",
            &format!(
                "targets: {}",
                yaml_list(&[targets.control_plane.unwrap_or(nowhere)])
            ),
        );
        yaml = replace_all(
            &yaml,
            "targets: [\"127.0.0.1:9093\"]",
            &format!(
                "targets: {}",
                yaml_list(&[targets.alertmanager.unwrap_or(nowhere)])
            ),
        );
        fs::write(dir.join("prometheus.yml"), yaml).unwrap_or_else(|e| panic!("{e}"));
        let addr = localhost(free_port());
        let mut cmd = Command::new(prometheus_bin());
        cmd.arg("--config.file=prometheus.yml")
            .arg("--storage.tsdb.path=data")
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        Prometheus {
            server: Server::start("prometheus", dir, cmd, addr),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// An instant query: `Ok(data)` or `Err(error message)` (e.g. a parse error).
    pub fn query(&self, expr: &str) -> Result<serde_json::Value, String> {
        let req = RawRequest::post("/api/v1/query").form(&format!("query={}", form_encode(expr)));
        let resp = http::send(self.server.addr, &req).map_err(|e| e.to_string())?;
        let json = resp.try_json().map_err(|e| format!("{e}: {resp:?}"))?;
        if json["status"] == "success" {
            Ok(json["data"].clone())
        } else {
            Err(format!(
                "{}: {}",
                json["errorType"].as_str().unwrap_or("error"),
                json["error"].as_str().unwrap_or("")
            ))
        }
    }

    /// The number of series an instant query returns (0 on error).
    pub fn series(&self, expr: &str) -> usize {
        self.query(expr)
            .ok()
            .and_then(|d| d["result"].as_array().map(Vec::len))
            .unwrap_or(0)
    }

    /// `GET /api/v1/alerts`: pending and firing alerts.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.server.get("/api/v1/alerts")["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Whether every scrape target is up.
    pub fn targets_up(&self, job: &str) -> bool {
        let targets = self.server.get("/api/v1/targets");
        let active = targets["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mine: Vec<_> = active
            .iter()
            .filter(|t| t["labels"]["job"] == job)
            .collect();
        !mine.is_empty() && mine.iter().all(|t| t["health"] == "up")
    }

    pub fn dir(&self) -> &Path {
        &self.server.dir
    }
}

/// Alertmanager run with the shipped `alertmanager.yml`: receivers pointed at `webhook_base`
/// (e.g. `http://127.0.0.1:PORT`), groups flushed after a second.
pub struct Alertmanager {
    server: Server,
}

impl Alertmanager {
    pub fn start(webhook_base: &str) -> Alertmanager {
        let dir = new_temp_dir();
        let mut yaml = shipped("alertmanager.yml");
        yaml = replace_all(&yaml, "http://127.0.0.1:9095", webhook_base);
        yaml = replace_all(&yaml, "group_wait: 30s", "group_wait: 1s");
        yaml = replace_all(&yaml, "group_interval: 5m", "group_interval: 1s");
        fs::write(dir.join("alertmanager.yml"), yaml).unwrap_or_else(|e| panic!("{e}"));
        let addr = localhost(free_port());
        let mut cmd = Command::new(alertmanager_bin());
        cmd.arg("--config.file=alertmanager.yml")
            .arg("--storage.path=data")
            .arg(format!("--web.listen-address={addr}"))
            // No gossip cluster: a single instance, and no port 9094.
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn");
        Alertmanager {
            server: Server::start("alertmanager", dir, cmd, addr),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// `GET /api/v2/alerts`: the alerts Alertmanager holds.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.server
            .get("/api/v2/alerts")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// `application/x-www-form-urlencoded` encoding of a value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_times_are_zeroed() {
        let rules = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > 1\n        for: 2m\n        labels: {a: b}\n";
        let out = without_hold_times(rules);
        assert!(out.contains("        for: 0s\n"), "{out}");
        assert!(!out.contains("2m"));
        assert_eq!(form_encode("a b{c=\"d\"}"), "a%20b%7Bc%3D%22d%22%7D");
    }
}
