//! Requests as test cases, and what the engine says about them: shared by the detection test
//! files (each file uses part of it).
#![allow(dead_code)]

use vigil_engine::{Category, CompiledPolicy, Outcome, Request};

/// The clock the cases are inspected at.
pub const NOW: u64 = 1_800_000_000;

pub struct Case<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: Option<&'a str>,
}

pub fn get(target: &str) -> Case<'_> {
    Case {
        method: "GET",
        target,
        headers: vec![],
        body: None,
    }
}

pub fn post<'a>(target: &'a str, content_type: &'a str, body: &'a str) -> Case<'a> {
    Case {
        method: "POST",
        target,
        headers: vec![("content-type", content_type)],
        body: Some(body),
    }
}

pub fn with_header<'a>(mut case: Case<'a>, name: &'a str, value: &'a str) -> Case<'a> {
    case.headers.push((name, value));
    case
}

/// The verdict on one case, flattened for assertions.
pub struct Inspected {
    pub outcome: Outcome,
    pub categories: Vec<Category>,
    /// `rule@target[fragment]` per finding.
    pub fired: Vec<String>,
}

pub fn inspect(policy: &CompiledPolicy, case: &Case<'_>) -> Inspected {
    inspect_at(policy, case, NOW)
}

/// [`inspect`] with the clock at `now` (Unix seconds).
pub fn inspect_at(policy: &CompiledPolicy, case: &Case<'_>, now: u64) -> Inspected {
    let headers: Vec<(&str, &[u8])> = case
        .headers
        .iter()
        .map(|(n, v)| (*n, v.as_bytes()))
        .collect();
    let request = Request {
        method: case.method,
        target: case.target.as_bytes(),
        headers: &headers,
        body: case.body.map(str::as_bytes),
        body_truncated: false,
    };
    let verdict = policy.inspect(&request, &|| now);
    Inspected {
        outcome: verdict.outcome,
        categories: verdict.findings.iter().map(|f| f.rule.category).collect(),
        fired: verdict
            .findings
            .iter()
            .map(|f| format!("{}@{}[{}]", f.rule.id, f.target, f.fragment))
            .collect(),
    }
}

/// Unpadded base64url, for building test tokens.
pub fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
