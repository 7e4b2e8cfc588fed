//! `vigil replay`: evaluate a labeled corpus (the format of ../shared/corpus/README.md), either
//! in-process with the engine (the filter's own code) or through a running Envoy, sending each
//! request exactly as written and counting 403s.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};
use vigil_engine::{CompiledPolicy, Outcome, Request};

use crate::policy_file;

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Corpus file: one JSON request per line.
    pub corpus: PathBuf,
    /// Policy (YAML or JSON) for in-process runs; default: the built-in policy.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Send the requests to this Envoy (e.g. http://127.0.0.1:10000) instead of running in-process.
    #[arg(long)]
    pub target: Option<String>,
    /// Allow a --target that is not on loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Requests in flight at once with --target.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// How many blocked benign requests and missed attacks to list.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Write the full result as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Clock for JWT expiry in-process (unix seconds); default: now.
    #[arg(long)]
    pub now: Option<u64>,
}

/// One corpus line.
#[derive(Debug, Clone, Deserialize)]
pub struct CorpusRequest {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub class: String,
    pub method: String,
    pub target: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: Option<String>,
}

/// What happened to one request.
#[derive(Debug, Clone, Serialize)]
pub struct Outcomes {
    pub id: String,
    pub class: String,
    pub label: String,
    pub blocked: bool,
    pub status: Option<u16>,
    pub rule: Option<String>,
    pub findings: Vec<String>,
    pub method: String,
    pub target: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ClassResult {
    pub n: usize,
    pub detected: usize,
    pub rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    pub corpus: String,
    pub policy: String,
    pub attacks: ClassResult,
    pub benign: ClassResult,
    pub per_class: BTreeMap<String, ClassResult>,
    pub blocked_benign: Vec<Outcomes>,
    pub missed_attacks: Vec<Outcomes>,
    /// Every request's decision, in corpus order: (id, blocked, blocking rule).
    pub decisions: Vec<(String, bool, Option<String>)>,
    pub errors: Vec<String>,
}

pub fn load_corpus(path: &PathBuf) -> anyhow::Result<Vec<CorpusRequest>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: read error", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let req: CorpusRequest = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a corpus request", path.display(), i + 1))?;
        out.push(req);
    }
    Ok(out)
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<Report> {
    let corpus = load_corpus(&args.corpus)?;
    let started = Instant::now();
    let (mode, outcomes, policy_name) = match &args.target {
        Some(target) => {
            if args.policy.is_some() {
                bail!("--policy applies to in-process runs; the Envoy at --target runs its own configuration");
            }
            let addr = resolve_target(target, args.allow_remote)?;
            (
                format!("envoy {target}"),
                through_envoy(&corpus, addr, args.concurrency.max(1))?,
                "as configured in Envoy".to_owned(),
            )
        }
        None => {
            let policy = match &args.policy {
                Some(path) => CompiledPolicy::compile(policy_file::load(path)?)
                    .with_context(|| format!("{} is not a valid policy", path.display()))?,
                None => CompiledPolicy::builtin().context("built-in policy")?,
            };
            let now = args.now.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            });
            let name = args
                .policy
                .as_ref()
                .map_or_else(|| "built-in".to_owned(), |p| p.display().to_string());
            (
                "in-process".to_owned(),
                in_process(&corpus, &policy, now),
                name,
            )
        }
    };
    let report = summarise(
        mode,
        args.corpus.display().to_string(),
        policy_name,
        outcomes,
    );
    eprintln!(
        "replayed {} requests in {:.1} s",
        corpus.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(report)
}

/// The headers as the filter sees them behind Envoy: names in lower case, without the framing
/// headers [`raw_request`] does not send (`connection`, `transfer-encoding`), and without a
/// `Referer` that Envoy's connection manager would drop (see [`envoy_keeps_referer`]).
fn lower_headers(req: &CorpusRequest) -> Vec<(String, Vec<u8>)> {
    req.headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .filter(|(n, _)| !UNSENT_HEADERS.contains(&n.as_str()))
        .filter(|(n, v)| n != "referer" || envoy_keeps_referer(v))
        .collect()
}

/// Headers [`raw_request`] leaves out: it frames the body itself and closes the connection.
const UNSENT_HEADERS: &[&str] = &["connection", "transfer-encoding"];

/// Envoy sanitises `Referer` while decoding, before any filter: a value that is neither an
/// absolute URL without fragment or userinfo nor a relative reference made of URI characters
/// (RFC 3986, no `:` in the first segment, no fragment) is removed, and never reaches the
/// filter or the upstream. Modelled here so in-process replay matches what the filter sees.
pub fn envoy_keeps_referer(value: &[u8]) -> bool {
    if let Some(rest) = value
        .strip_prefix(b"http://")
        .or_else(|| value.strip_prefix(b"https://"))
    {
        let authority_end = rest
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        return !authority.is_empty()
            && !authority.contains(&b'@')
            && !value.contains(&b'#')
            && !value
                .iter()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
    }
    let mut seen_slash = false;
    value.iter().all(|&b| match b {
        b':' => seen_slash,
        b'/' => {
            seen_slash = true;
            true
        }
        _ => b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@?%".contains(&b),
    })
}

/// Envoy's HTTP/1 codec accepts the methods of the classic http-parser table and answers 400
/// to any other (observed with Envoy 1.40: `TRACK`, `DEBUG`), before any filter runs.
/// Modelled here so in-process replay matches what the filter sees.
pub fn envoy_accepts_method(method: &str) -> bool {
    const KNOWN: &str = "DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE \
        PROPFIND PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE \
        M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE";
    KNOWN.split_whitespace().any(|m| m == method)
}

pub fn in_process(corpus: &[CorpusRequest], policy: &CompiledPolicy, now: u64) -> Vec<Outcomes> {
    corpus
        .iter()
        .map(|req| {
            if !envoy_accepts_method(&req.method) {
                // Envoy answers 400 before any filter runs: never blocked, never inspected.
                return Outcomes {
                    id: req.id.clone(),
                    class: req.class.clone(),
                    label: req.label.clone(),
                    blocked: false,
                    status: Some(400),
                    rule: None,
                    findings: Vec::new(),
                    method: req.method.clone(),
                    target: req.target.clone(),
                };
            }
            let owned = lower_headers(req);
            let headers: Vec<(&str, &[u8])> = owned
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect();
            let request = Request {
                method: &req.method,
                target: req.target.as_bytes(),
                headers: &headers,
                body: req.body.as_deref().map(str::as_bytes),
                body_truncated: false,
            };
            let verdict = policy.inspect(&request, &|| now);
            Outcomes {
                id: req.id.clone(),
                class: req.class.clone(),
                label: req.label.clone(),
                blocked: verdict.outcome == Outcome::Block,
                status: None,
                rule: verdict.blocking_rule.map(|r| r.id.clone()),
                findings: verdict
                    .findings
                    .iter()
                    .map(|f| format!("{}@{}", f.rule.id, f.target))
                    .collect(),
                method: req.method.clone(),
                target: req.target.clone(),
            }
        })
        .collect()
}

fn resolve_target(target: &str, allow_remote: bool) -> anyhow::Result<SocketAddr> {
    let Some(rest) = target.strip_prefix("http://") else {
        bail!("--target must be an http:// URL (got `{target}`)");
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    if !addr.ip().is_loopback() && !allow_remote {
        bail!("{addr} is not a loopback address; pass --allow-remote to replay attacks against it");
    }
    Ok(addr)
}

/// The request bytes exactly as the corpus wrote them, plus framing: Content-Length when a
/// body is present and none was given, and `Connection: close`.
pub fn raw_request(req: &CorpusRequest) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + req.body.as_ref().map_or(0, String::len));
    out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", req.method, req.target).as_bytes());
    let mut has_host = false;
    let mut has_length = false;
    for (name, value) in &req.headers {
        let lower = name.to_ascii_lowercase();
        if UNSENT_HEADERS.contains(&lower.as_str()) {
            continue;
        }
        has_host |= lower == "host";
        has_length |= lower == "content-length";
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has_host {
        out.extend_from_slice(b"Host: localhost\r\n");
    }
    let body = req.body.as_deref().unwrap_or("");
    if !has_length
        && (req.body.is_some() || matches!(req.method.as_str(), "POST" | "PUT" | "PATCH"))
    {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

/// Sends one request and returns the status and, for a 403, the blocking rule.
fn send(addr: SocketAddr, req: &CorpusRequest) -> anyhow::Result<(u16, Option<String>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(15)))?;
    stream.write_all(&raw_request(req))?;
    let response = read_response(&mut stream)?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..head_end]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad response: {}", head.lines().next().unwrap_or("")))?;
    let rule = if status == 403 {
        let body = &response[(head_end + 4).min(response.len())..];
        let start = body.iter().position(|&b| b == b'{').unwrap_or(0);
        serde_json::from_slice::<serde_json::Value>(&body[start..])
            .ok()
            .and_then(|v| v.get("rule").and_then(|r| r.as_str()).map(str::to_owned))
    } else {
        None
    };
    Ok((status, rule))
}

/// Reads one response and stops as soon as it is complete (Content-Length or chunked framing):
/// after a local reply Envoy keeps the connection open for its delayed-close timeout, so
/// reading to the end would cost a second per blocked request.
fn read_response(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let body_len = buf.len() - head_end - 4;
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(length) = length {
            if body_len >= length {
                return Ok(buf);
            }
        } else if head
            .lines()
            .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"))
            && buf.ends_with(b"0\r\n\r\n")
        {
            return Ok(buf);
        }
    }
}

fn through_envoy(
    corpus: &[CorpusRequest],
    addr: SocketAddr,
    concurrency: usize,
) -> anyhow::Result<Vec<Outcomes>> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcomes>>> = Mutex::new(vec![None; corpus.len()]);
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let step = (corpus.len() / 20).max(1);
    std::thread::scope(|scope| {
        for _ in 0..concurrency.min(corpus.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(req) = corpus.get(i) else { break };
                let (status, rule) = match send(addr, req) {
                    Ok(r) => r,
                    Err(e) => {
                        if let Ok(mut errs) = errors.lock() {
                            errs.push(format!("{}: {e:#}", req.id));
                        }
                        (0, None)
                    }
                };
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(Outcomes {
                        id: req.id.clone(),
                        class: req.class.clone(),
                        label: req.label.clone(),
                        blocked: status == 403,
                        status: Some(status),
                        rule,
                        findings: Vec::new(),
                        method: req.method.clone(),
                        target: req.target.clone(),
                    });
                }
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                if n.is_multiple_of(step) || n == corpus.len() {
                    eprint!("\rreplay: {n}/{} requests", corpus.len());
                }
            });
        }
    });
    eprintln!();
    let errors = errors.into_inner().unwrap_or_default();
    if !errors.is_empty() {
        bail!(
            "{} requests failed to get an answer, e.g. {}",
            errors.len(),
            errors[0]
        );
    }
    Ok(results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect())
}

fn rate(n: usize, d: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        d as f64 / n as f64
    }
}

pub fn summarise(mode: String, corpus: String, policy: String, outcomes: Vec<Outcomes>) -> Report {
    let mut per_class: BTreeMap<String, ClassResult> = BTreeMap::new();
    let (mut attacks, mut benign) = (ClassResult::default(), ClassResult::default());
    let mut blocked_benign = Vec::new();
    let mut missed_attacks = Vec::new();
    let mut decisions = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        decisions.push((o.id.clone(), o.blocked, o.rule.clone()));
        let is_attack = o.label == "attack";
        let bucket = if is_attack { &mut attacks } else { &mut benign };
        bucket.n += 1;
        bucket.detected += usize::from(o.blocked);
        let class = per_class.entry(o.class.clone()).or_default();
        class.n += 1;
        class.detected += usize::from(o.blocked);
        if is_attack && !o.blocked {
            missed_attacks.push(o);
        } else if !is_attack && o.blocked {
            blocked_benign.push(o);
        }
    }
    for c in per_class.values_mut() {
        c.rate = rate(c.n, c.detected);
    }
    attacks.rate = rate(attacks.n, attacks.detected);
    benign.rate = rate(benign.n, benign.detected);
    Report {
        decisions,
        mode,
        corpus,
        policy,
        attacks,
        benign,
        per_class,
        blocked_benign,
        missed_attacks,
        errors: Vec::new(),
    }
}

pub fn print(report: &Report, top: usize) {
    println!(
        "corpus {}  mode {}  policy {}",
        report.corpus, report.mode, report.policy
    );
    println!("{:<18} {:>6} {:>9} {:>8}", "class", "n", "detected", "rate");
    for (class, r) in &report.per_class {
        if class == "benign" {
            continue;
        }
        println!(
            "{class:<18} {:>6} {:>9} {:>7.1}%",
            r.n,
            r.detected,
            100.0 * r.rate
        );
    }
    println!(
        "{:<18} {:>6} {:>9} {:>7.1}%",
        "attacks (all)",
        report.attacks.n,
        report.attacks.detected,
        100.0 * report.attacks.rate
    );
    println!(
        "{:<18} {:>6} {:>9} {:>7.2}%  (false positives)",
        "benign blocked",
        report.benign.n,
        report.benign.detected,
        100.0 * report.benign.rate
    );
    if !report.blocked_benign.is_empty() {
        println!("\nblocked benign requests (first {top}):");
        for o in report.blocked_benign.iter().take(top) {
            println!(
                "  {} {} {}  rule {}",
                o.id,
                o.method,
                cut(&o.target, 90),
                o.rule.as_deref().unwrap_or("?")
            );
        }
    }
    if !report.missed_attacks.is_empty() {
        println!("\nmissed attacks (first {top}):");
        for o in report.missed_attacks.iter().take(top) {
            let hint = if o.findings.is_empty() {
                String::new()
            } else {
                format!("  below threshold: {}", o.findings.join(", "))
            };
            println!(
                "  {} [{}] {} {}{hint}",
                o.id,
                o.class,
                o.method,
                cut(&o.target, 90)
            );
        }
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::envoy_keeps_referer;

    #[test]
    fn methods_envoy_rejects() {
        for ok in ["GET", "PATCH", "TRACE", "PROPFIND", "PURGE"] {
            assert!(super::envoy_accepts_method(ok), "{ok}");
        }
        for rejected in ["TRACK", "DEBUG"] {
            assert!(!super::envoy_accepts_method(rejected), "{rejected}");
        }
    }

    /// Observed with Envoy 1.40: which Referer values reach the filter.
    #[test]
    fn referer_sanitisation_matches_envoy() {
        for kept in [
            "hello",
            "http://x/hello",
            "http://x/hello<",
            "hello'x",
            "hello%zz",
            "/a/b:c?d=e",
            "https://example.com/p?q=1",
        ] {
            assert!(envoy_keeps_referer(kept.as_bytes()), "{kept}");
        }
        for dropped in [
            "hello world",
            "(hello)#",
            "hello{x}",
            "hello#b",
            "hello\"b",
            "hello|b",
            "hello:x",
            "javascript:hello",
            "hello[1]",
            "http://hello/a b",
            "${jndi:ldap://x/a}",
            "http://user@host/",
        ] {
            assert!(!envoy_keeps_referer(dropped.as_bytes()), "{dropped}");
        }
    }
}
