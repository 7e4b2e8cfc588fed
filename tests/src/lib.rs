//! End-to-end test harness for vigil.
//!
//! * [`DemoApi`] runs the `vigil-demo-api` binary on a free port;
//! * [`Envoy`] runs Envoy with the vigil filter from the shipped `envoy/gateway.yaml`
//!   (ports, upstream, `.wasm` path and policy substituted by [`EnvoyConfig`]);
//! * [`http`] is a raw HTTP/1.1 client that sends exactly the bytes a test wants.
//!
//! Nothing here sleeps for a fixed time: waiting is always polling against a deadline
//! ([`wait_until`]). Binaries are located by [`envoy_bin`], [`wasm_path`] and
//! [`demo_api_bin`] (overridable with `ENVOY_BIN`, `VIGIL_WASM`, `DEMO_API_BIN`); `make test`
//! builds and installs all of them.
//!
//! Set `VIGIL_E2E_KEEP=1` to keep the temporary directories (rendered config, Envoy log);
//! they are also kept, and the log tail printed, when a test panics.

pub mod control_plane;
pub mod http;
pub mod monitoring;
pub mod webhook;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use http::{RawRequest, Response};

/// How long [`Envoy::start`] waits for `/ready`.
pub const ENVOY_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`DemoApi::start`] waits for the `listening on` line.
pub const DEMO_API_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Polling interval of [`wait_until`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The repository root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (at run time, else at build time), else
/// `<repo>/target`.
pub fn target_dir() -> PathBuf {
    let configured = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_TARGET_DIR").map(PathBuf::from));
    match configured {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => repo_root().join(dir),
        None => repo_root().join("target"),
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The Envoy binary: `ENVOY_BIN`, else `<repo>/.tools/envoy/envoy/_bin/envoy` (installed by
/// the Makefile). Panics if it does not exist.
pub fn envoy_bin() -> PathBuf {
    let path =
        env_path("ENVOY_BIN").unwrap_or_else(|| repo_root().join(".tools/envoy/envoy/_bin/envoy"));
    assert!(
        path.is_file(),
        "Envoy not found at {}: run `make test` (it installs Envoy into .tools/envoy) or set ENVOY_BIN",
        path.display()
    );
    path
}

fn default_wasm_path() -> PathBuf {
    env_path("VIGIL_WASM").unwrap_or_else(|| target_dir().join("vigil_filter.wasm"))
}

/// The filter module: `VIGIL_WASM`, else
/// `<repo>/target/vigil_filter.wasm` (what `make wasm` ships). Panics if it does not exist.
pub fn wasm_path() -> PathBuf {
    let path = default_wasm_path();
    assert!(
        path.is_file(),
        "vigil filter module not found at {}: run `make test` or `make wasm` (or set VIGIL_WASM)",
        path.display()
    );
    path
}

/// The demo API binary: `DEMO_API_BIN`, else `target/debug/vigil-demo-api`, else
/// `target/release/vigil-demo-api`. Panics if none exists.
pub fn demo_api_bin() -> PathBuf {
    if let Some(path) = env_path("DEMO_API_BIN") {
        assert!(
            path.is_file(),
            "DEMO_API_BIN={} does not exist",
            path.display()
        );
        return path;
    }
    let name = format!("vigil-demo-api{}", std::env::consts::EXE_SUFFIX);
    let candidates = [
        target_dir().join("debug").join(&name),
        target_dir().join("release").join(&name),
    ];
    match candidates.iter().find(|p| p.is_file()) {
        Some(path) => path.clone(),
        None => panic!(
            "demo API binary not found ({}): run `make test`, or build it with \
             `cargo build -p vigil-demo-api` (or set DEMO_API_BIN)",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Ports handed out by [`free_port`] in this process, never handed out twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A currently free TCP port on 127.0.0.1 (bound to port 0, read, released). Within one
/// process a port is never returned twice, so concurrent tests do not pick the same one.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"))
            .port();
        let mut seen = lock(&HANDED_OUT);
        if seen.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("could not find a free port not handed out before");
}

pub(crate) fn localhost(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Polls `cond` every [`POLL_INTERVAL`] until it returns true (→ `true`) or `timeout` has
/// passed (→ `false`; `cond` is always evaluated once more at the deadline).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A new empty directory `<tmp>/vigil-e2e-<pid>-<counter>`. The caller owns it.
pub fn new_temp_dir() -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("vigil-e2e-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

pub(crate) fn keep_temp_dirs() -> bool {
    std::env::var_os("VIGIL_E2E_KEEP").is_some_and(|v| !v.is_empty() && v != "0")
}

pub(crate) fn kill_and_wait(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

// ---------------------------------------------------------------------------------------
// Demo API
// ---------------------------------------------------------------------------------------

/// A running `vigil-demo-api` on 127.0.0.1 (killed on drop).
pub struct DemoApi {
    child: Mutex<Child>,
    addr: SocketAddr,
}

impl DemoApi {
    /// Starts the demo API on a free port; panics if it does not come up.
    pub fn start() -> DemoApi {
        let bin = demo_api_bin();
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let Some(stdout) = child.stdout.take() else {
            kill_and_wait(&mut child);
            panic!("demo API stdout not captured");
        };
        // Read the first line on a helper thread so that the wait has a deadline.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(result);
        });
        let line = match rx.recv_timeout(DEMO_API_START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                let status = kill_and_wait(&mut child);
                panic!("reading demo API stdout failed: {e} (exit status {status:?})");
            }
            Err(_) => {
                kill_and_wait(&mut child);
                panic!("demo API printed nothing within {DEMO_API_START_TIMEOUT:?}");
            }
        };
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let status = kill_and_wait(&mut child);
            panic!("unexpected demo API output {line:?} (exit status {status:?})");
        };
        DemoApi {
            child: Mutex::new(child),
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sends `req` directly to the demo API.
    pub fn send(&self, req: &RawRequest) -> io::Result<Response> {
        http::send(self.addr, req)
    }

    pub fn is_alive(&self) -> bool {
        matches!(lock(&self.child).try_wait(), Ok(None))
    }
}

impl Drop for DemoApi {
    fn drop(&mut self) {
        kill_and_wait(&mut lock(&self.child));
    }
}

impl fmt::Debug for DemoApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoApi").field("addr", &self.addr).finish()
    }
}

// ---------------------------------------------------------------------------------------
// Envoy
// ---------------------------------------------------------------------------------------

/// Placeholders in `envoy/gateway.yaml`, each of which must occur exactly once.
const ADMIN_PORT_PLACEHOLDER: &str = "port_value: 9901";
const LISTEN_PORT_PLACEHOLDER: &str = "port_value: 10000";
const UPSTREAM_PORT_PLACEHOLDER: &str = "port_value: 8080";
const WASM_PLACEHOLDER: &str = "filename: target/vigil_filter.wasm";
const POLICY_PLACEHOLDER: &str = "value: \"\"";

/// Renders a whole Envoy config for the given (listen, admin) ports.
pub type RenderFn = std::sync::Arc<dyn Fn(u16, u16) -> String + Send + Sync>;

/// What to run Envoy with: the shipped gateway config with substituted values, or a config
/// rendered by a function (e.g. `vigil envoy-config`).
#[derive(Clone)]
pub struct EnvoyConfig {
    custom: Option<RenderFn>,
    template: PathBuf,
    upstream_port: u16,
    policy_json: Option<String>,
    wasm: Option<PathBuf>,
    log_level: String,
    component_log_level: Option<String>,
    concurrency: u16,
}

impl EnvoyConfig {
    /// `envoy/gateway.yaml` routing to `127.0.0.1:<upstream_port>`, with the built-in policy.
    pub fn gateway(upstream_port: u16) -> EnvoyConfig {
        EnvoyConfig {
            custom: None,
            template: repo_root().join("envoy/gateway.yaml"),
            upstream_port,
            policy_json: None,
            wasm: None,
            log_level: "info".to_string(),
            component_log_level: None,
            concurrency: 1,
        }
    }

    /// A config produced by `render(listen_port, admin_port)`; the template is not used.
    pub fn rendered(render: impl Fn(u16, u16) -> String + Send + Sync + 'static) -> EnvoyConfig {
        let mut cfg = EnvoyConfig::gateway(0);
        cfg.custom = Some(std::sync::Arc::new(render));
        cfg
    }

    /// The plugin configuration: a policy document as JSON (the empty string means the
    /// built-in default policy).
    pub fn policy_json(mut self, json: &str) -> EnvoyConfig {
        self.policy_json = Some(json.to_string());
        self
    }

    /// Another `.wasm` module than [`wasm_path`].
    pub fn wasm(mut self, path: impl Into<PathBuf>) -> EnvoyConfig {
        self.wasm = Some(path.into());
        self
    }

    /// Envoy's `--concurrency` (default 1: one worker, so counters are exact).
    pub fn concurrency(mut self, workers: u16) -> EnvoyConfig {
        self.concurrency = workers;
        self
    }

    /// Envoy's `--log-level` (default `info`).
    pub fn log_level(mut self, level: &str) -> EnvoyConfig {
        self.log_level = level.to_string();
        self
    }

    /// Envoy's `--component-log-level`, e.g. `wasm:debug`.
    pub fn component_log_level(mut self, spec: &str) -> EnvoyConfig {
        self.component_log_level = Some(spec.to_string());
        self
    }

    /// The YAML Envoy will run with. Panics if a placeholder is not found exactly once in
    /// the template (i.e. `envoy/gateway.yaml` changed and this harness must follow).
    pub fn render(&self, listen_port: u16, admin_port: u16) -> String {
        let wasm = self.wasm.clone().unwrap_or_else(default_wasm_path);
        self.render_with(listen_port, admin_port, &wasm)
    }

    fn render_with(&self, listen_port: u16, admin_port: u16, wasm: &Path) -> String {
        if let Some(render) = &self.custom {
            return render(listen_port, admin_port);
        }
        let template = fs::read_to_string(&self.template)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.template.display()));
        let name = self.template.display().to_string();
        let mut yaml = template;
        yaml = replace_once(
            &yaml,
            &name,
            ADMIN_PORT_PLACEHOLDER,
            &format!("port_value: {admin_port}"),
        );
        yaml = replace_once(
            &yaml,
            &name,
            LISTEN_PORT_PLACEHOLDER,
            &format!("port_value: {listen_port}"),
        );
        yaml = replace_once(
            &yaml,
            &name,
            UPSTREAM_PORT_PLACEHOLDER,
            &format!("port_value: {}", self.upstream_port),
        );
        // JSON string literals are valid YAML double-quoted scalars.
        let wasm_literal = json_string(&wasm.to_string_lossy());
        yaml = replace_once(
            &yaml,
            &name,
            WASM_PLACEHOLDER,
            &format!("filename: {wasm_literal}"),
        );
        let policy = self.policy_json.as_deref().unwrap_or("");
        yaml = replace_once(
            &yaml,
            &name,
            POLICY_PLACEHOLDER,
            &format!("value: {}", json_string(policy)),
        );
        yaml
    }
}

impl fmt::Debug for EnvoyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvoyConfig")
            .field("custom", &self.custom.is_some())
            .field("template", &self.template)
            .field("upstream_port", &self.upstream_port)
            .field("policy_json", &self.policy_json)
            .finish()
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Replaces the single whole-word occurrence of `needle` in `text`; panics unless there is
/// exactly one.
fn replace_once(text: &str, template_name: &str, needle: &str, replacement: &str) -> String {
    let bytes = text.as_bytes();
    let hits: Vec<usize> = text
        .match_indices(needle)
        .map(|(i, _)| i)
        .filter(|&i| {
            let before = i.checked_sub(1).and_then(|j| bytes.get(j)).copied();
            let after = bytes.get(i + needle.len()).copied();
            !before.is_some_and(is_word_byte) && !after.is_some_and(is_word_byte)
        })
        .collect();
    assert!(
        hits.len() == 1,
        "{template_name}: expected `{needle}` exactly once, found it {} times; the template \
         changed, update the placeholders in tests/src/lib.rs",
        hits.len()
    );
    let i = hits[0];
    format!("{}{}{}", &text[..i], replacement, &text[i + needle.len()..])
}

/// Envoy did not become ready.
pub struct StartError {
    /// Envoy's output (stdout and stderr).
    pub log: String,
    /// How it exited; `None` if it was still running at the deadline (and was killed).
    pub status: Option<ExitStatus>,
}

impl StartError {
    fn tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self.log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl fmt::Debug for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "Envoy exited during startup ({status})")?,
            None => write!(f, "Envoy not ready within {ENVOY_START_TIMEOUT:?}")?,
        }
        write!(f, "; last log lines:\n{}", self.tail(60))
    }
}

impl std::error::Error for StartError {}

/// A running Envoy (killed on drop).
pub struct Envoy {
    child: Mutex<Child>,
    listen: SocketAddr,
    admin: SocketAddr,
    dir: PathBuf,
    log_path: PathBuf,
}

impl Envoy {
    /// Starts Envoy with `cfg` on free ports and waits (up to [`ENVOY_START_TIMEOUT`]) until
    /// its admin `/ready` answers 200. If Envoy exits first, or never gets ready, the error
    /// carries its log. Panics if Envoy or the `.wasm` is missing.
    pub fn start(cfg: EnvoyConfig) -> Result<Envoy, StartError> {
        let bin = envoy_bin();
        let wasm = match &cfg.wasm {
            Some(path) => path.clone(),
            None => wasm_path(),
        };
        // Free ports can be taken by someone else before Envoy binds them: retry then.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Envoy::try_start(&cfg, &bin, &wasm) {
                Err(e)
                    if attempt < 3
                        && e.status.is_some()
                        && e.log.contains("ddress already in use") => {}
                other => return other,
            }
        }
    }

    fn try_start(cfg: &EnvoyConfig, bin: &Path, wasm: &Path) -> Result<Envoy, StartError> {
        let admin_port = free_port();
        let listen_port = free_port();
        let yaml = cfg.render_with(listen_port, admin_port, wasm);
        let dir = new_temp_dir();
        let config_path = dir.join("envoy.yaml");
        let log_path = dir.join("envoy.log");
        fs::write(&config_path, yaml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone log file handle: {e}"));

        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&config_path)
            .args(["--concurrency", &cfg.concurrency.to_string()])
            // Unique per instance (the admin port is held by this Envoy), so several can
            // run at once; hot restart is not needed either way.
            .args(["--base-id", &admin_port.to_string()])
            .arg("--disable-hot-restart")
            .args(["--log-level", &cfg.log_level]);
        if let Some(spec) = &cfg.component_log_level {
            cmd.args(["--component-log-level", spec]);
        }
        let child = cmd
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));

        let envoy = Envoy {
            child: Mutex::new(child),
            listen: localhost(listen_port),
            admin: localhost(admin_port),
            dir,
            log_path,
        };
        let ready_req = RawRequest::get("/ready");
        let mut exited = None;
        let ready = wait_until(ENVOY_START_TIMEOUT, || {
            if let Ok(Some(status)) = lock(&envoy.child).try_wait() {
                exited = Some(status);
                return true;
            }
            matches!(
                http::send_with_timeout(envoy.admin, &ready_req, Duration::from_secs(2)),
                Ok(resp) if resp.status == 200
            )
        });
        if ready && exited.is_none() {
            return Ok(envoy);
        }
        // Stop it (if needed) before reading the log, so the log is complete.
        kill_and_wait(&mut lock(&envoy.child));
        let err = StartError {
            log: envoy.log(),
            status: exited,
        };
        drop(envoy);
        Err(err)
    }

    /// Where clients connect (the listener of the gateway).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The temporary directory with `envoy.yaml` and `envoy.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Envoy's output so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Polls the log until it contains `needle`; false at the timeout.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle))
    }

    /// Sends `req` through the gateway listener.
    pub fn send(&self, req: &RawRequest) -> io::Result<Response> {
        http::send(self.listen, req)
    }

    /// `GET <path>` on the admin interface.
    pub fn admin(&self, path: &str) -> io::Result<Response> {
        http::send(self.admin, &RawRequest::get(path))
    }

    fn admin_ok(&self, path: &str) -> Response {
        match self.admin(path) {
            Ok(resp) if resp.status == 200 => resp,
            Ok(resp) => panic!("admin GET {path}: {resp:?}"),
            Err(e) => panic!("admin GET {path}: {e}"),
        }
    }

    /// `GET /stats/prometheus` (panics on failure).
    pub fn stats_prometheus(&self) -> String {
        self.admin_ok("/stats/prometheus").body_str()
    }

    /// All counters and gauges by name (from `GET /stats?format=json`; panics on failure).
    pub fn stats(&self) -> BTreeMap<String, u64> {
        let resp = self.admin_ok("/stats?format=json");
        match resp.try_json() {
            Ok(json) => parse_json_stats(&json),
            Err(_) => parse_text_stats(&self.admin_ok("/stats").body_str()),
        }
    }

    /// The value of counter or gauge `name` (full name, e.g.
    /// `http.gateway.downstream_rq_completed`), if it exists.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats().remove(name)
    }

    pub fn is_alive(&self) -> bool {
        matches!(lock(&self.child).try_wait(), Ok(None))
    }
}

/// `{"stats":[{"name":..,"value":..}, .., {"histograms":..}]}` → name → value.
fn parse_json_stats(json: &serde_json::Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for stat in json["stats"].as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (stat["name"].as_str(), stat["value"].as_u64()) {
            out.insert(name.to_string(), value);
        }
    }
    out
}

/// `name: value` lines → name → value (histogram lines are skipped).
fn parse_text_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(": ")?;
            Some((name.trim().to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

impl Drop for Envoy {
    fn drop(&mut self) {
        kill_and_wait(&mut lock(&self.child));
        if std::thread::panicking() || keep_temp_dirs() {
            if std::thread::panicking() {
                let log = self.log();
                let lines: Vec<&str> = log.lines().collect();
                eprintln!(
                    "--- last Envoy log lines ({}) ---\n{}\n---",
                    self.log_path.display(),
                    lines[lines.len().saturating_sub(40)..].join("\n")
                );
            }
            eprintln!("kept Envoy files in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl fmt::Debug for Envoy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envoy")
            .field("listen", &self.listen)
            .field("admin", &self.admin)
            .field("dir", &self.dir)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_once_is_strict() {
        let text = "a: 1\nport_value: 80\nport_value: 8080\nport_value: 80800\n";
        assert_eq!(
            replace_once(text, "t", "port_value: 8080", "port_value: 1"),
            "a: 1\nport_value: 80\nport_value: 1\nport_value: 80800\n"
        );
        let r = std::panic::catch_unwind(|| replace_once(text, "t", "port_value: 9", "x"));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| replace_once("x: 1 x: 1", "t", "x: 1", "y"));
        assert!(r.is_err());
        // `value: ""` is not matched inside `port_value: ""`.
        assert_eq!(
            replace_once("port_value: \"\"\nvalue: \"\"", "t", "value: \"\"", "v"),
            "port_value: \"\"\nv"
        );
    }

    #[test]
    fn stats_parsers() {
        let json: serde_json::Value = serde_json::from_str(
            r#"{"stats":[{"name":"a.b","value":3},{"name":"c","value":0},{"histograms":{}}]}"#,
        )
        .unwrap();
        let m = parse_json_stats(&json);
        assert_eq!(m.get("a.b"), Some(&3));
        assert_eq!(m.len(), 2);
        let m = parse_text_stats("a.b: 3\nh: P0(nan,1) P25(nan,2)\nc: 0\n");
        assert_eq!(m.get("a.b"), Some(&3));
        assert_eq!(m.get("c"), Some(&0));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn wait_until_times_out_and_succeeds() {
        let start = Instant::now();
        assert!(!wait_until(Duration::from_millis(60), || false));
        assert!(start.elapsed() >= Duration::from_millis(60));
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            n += 1;
            n == 3
        }));
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports: HashSet<u16> = (0..20).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 20);
    }
}
