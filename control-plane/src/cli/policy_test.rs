//! `vigil policy test`: one request through the engine, offline, exactly as the filter would
//! inspect it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use vigil_engine::{Outcome, Request, Verdict};

use super::cell;
use super::policy::compile_file;

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Policy file (YAML or JSON).
    pub file: PathBuf,
    /// The request line: `METHOD /path?query` (a full `http://host/path` URL works too).
    #[arg(long, value_name = "'METHOD TARGET'")]
    pub request: String,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the request body from a file.
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Exit status when the request would be blocked.
pub const EXIT_BLOCK: u8 = 2;

struct Built {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
}

fn build(args: &TestArgs) -> anyhow::Result<Built> {
    let line = args.request.trim();
    let (method, target) = line
        .split_once(char::is_whitespace)
        .map(|(m, t)| (m, t.trim()))
        .with_context(|| format!("--request `{line}` is not `METHOD /path`"))?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        bail!("--request `{line}`: `{method}` is not an HTTP method");
    }
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    // `http://host/path?q` → target `/path?q` and a host header, as a proxy would see it.
    let target = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => {
            let split = rest.find(['/', '?']).unwrap_or(rest.len());
            let (host, path) = rest.split_at(split);
            headers.push(("host".into(), host.as_bytes().to_vec()));
            match path {
                "" => "/".to_owned(),
                p if p.starts_with('?') => format!("/{p}"),
                p => p.to_owned(),
            }
        }
        None => target.to_owned(),
    };
    if !target.starts_with('/') && target != "*" {
        bail!("--request `{line}`: the target must start with `/`");
    }
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header `{h}` is not `name: value`"))?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || name.contains(char::is_whitespace) {
            bail!("header `{h}` has no valid name");
        }
        headers.retain(|(n, _)| !(n == "host" && name == "host"));
        headers.push((name, value.trim().as_bytes().to_vec()));
    }
    Ok(Built {
        method: method.to_ascii_uppercase(),
        target,
        headers,
    })
}

pub fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let policy = compile_file(&args.file)?;
    let built = build(args)?;
    let body: Option<Vec<u8>> = match (&args.body, &args.body_file) {
        (Some(b), _) => Some(b.clone().into_bytes()),
        (None, Some(f)) => {
            Some(std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?)
        }
        (None, None) => None,
    };
    let limit = policy.body_limit();
    let body_truncated = body.as_ref().is_some_and(|b| b.len() > limit);
    let headers: Vec<(&str, &[u8])> = built
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let request = Request {
        method: &built.method,
        target: built.target.as_bytes(),
        headers: &headers,
        body: body.as_deref().map(|b| &b[..b.len().min(limit)]),
        body_truncated,
    };
    let now = crate::timefmt::now_unix_ms().max(0) as u64 / 1_000;
    let verdict = policy.inspect(&request, &|| now);

    if args.json {
        println!("{}", verdict_json(&verdict));
    } else {
        print_verdict(&verdict);
    }
    Ok(if verdict.outcome == Outcome::Block {
        ExitCode::from(EXIT_BLOCK)
    } else {
        ExitCode::SUCCESS
    })
}

fn verdict_json(v: &Verdict<'_>) -> serde_json::Value {
    serde_json::json!({
        "outcome": v.outcome.as_str(),
        "score": v.score,
        "blocking_rule": v.blocking_rule.map(|r| r.id.as_str()),
        "would_block": v.would_block,
        "body_truncated": v.body_truncated,
        "findings": v.findings.iter().map(|f| serde_json::json!({
            "rule": f.rule.id,
            "category": f.rule.category.as_str(),
            "severity": f.rule.severity.as_str(),
            "action": f.rule.action.as_str(),
            "target": f.target,
            "fragment": f.fragment,
        })).collect::<Vec<_>>(),
    })
}

fn print_verdict(v: &Verdict<'_>) {
    println!("outcome: {}", v.outcome.as_str());
    println!("score: {}", v.score);
    if let Some(rule) = v.blocking_rule {
        println!("blocking rule: {}", rule.id);
    }
    if v.would_block && v.outcome != Outcome::Block {
        println!("would block in enforce mode (policy is in monitor mode)");
    }
    if v.body_truncated {
        println!("body longer than the inspection limit: only its first part was inspected");
    }
    if v.findings.is_empty() {
        println!("findings: none");
        return;
    }
    println!("findings:");
    println!(
        "  {:<28} {:<15} {:<9} {:<8} {:<24} fragment",
        "rule", "category", "severity", "action", "target"
    );
    for f in &v.findings {
        println!(
            "  {:<28} {:<15} {:<9} {:<8} {} {}",
            f.rule.id,
            f.rule.category.as_str(),
            f.rule.severity.as_str(),
            f.rule.action.as_str(),
            cell(&f.target, 24),
            f.fragment
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(request: &str, headers: &[&str]) -> TestArgs {
        TestArgs {
            file: PathBuf::new(),
            request: request.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            body: None,
            body_file: None,
            json: false,
        }
    }

    #[test]
    fn request_lines() {
        let b = build(&args("get /a?x=1", &["X-Api-Key: k", "Host: h"])).unwrap();
        assert_eq!(b.method, "GET");
        assert_eq!(b.target, "/a?x=1");
        assert_eq!(
            b.headers,
            vec![
                ("x-api-key".to_owned(), b"k".to_vec()),
                ("host".to_owned(), b"h".to_vec())
            ]
        );
        let b = build(&args("POST http://api.local:8080?q=1", &[])).unwrap();
        assert_eq!(b.target, "/?q=1");
        assert_eq!(
            b.headers,
            vec![("host".to_owned(), b"api.local:8080".to_vec())]
        );
        assert!(build(&args("/only-path", &[])).is_err());
        assert!(build(&args("GET path", &[])).is_err());
        assert!(build(&args("GET /", &["no-colon"])).is_err());
    }
}
