//! Quick in-process evaluation of the built-in policy on a labeled corpus (development aid;
//! `vigil replay` is the user-facing tool). Usage: cargo run -p vigil-engine --example corpus_eval -- FILE [--show-fp] [--show-miss CLASS] [--rule-stats]
//! `--rule-stats` lists, per rule, the benign and attack requests it fires on and the attacks
//! it alone blocks (what would be lost without it).
use std::collections::BTreeMap;

use vigil_engine::{CompiledPolicy, Outcome, Request};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "../shared/corpus/dev.jsonl".into());
    let show_fp = args.iter().any(|a| a == "--show-fp");
    let show_miss = args
        .iter()
        .position(|a| a == "--show-miss")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let rule_stats = args.iter().any(|a| a == "--rule-stats");
    // `--not-fired RULE CLASS`: requests of CLASS on which RULE did not fire.
    let not_fired = args
        .iter()
        .position(|a| a == "--not-fired")
        .and_then(|i| Some((args.get(i + 1)?.clone(), args.get(i + 2)?.clone())));
    // rule -> (benign fired, attacks fired, attacks only it blocks)
    let mut stats: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    let text = std::fs::read_to_string(&path).expect("read corpus");
    let policy = CompiledPolicy::builtin().expect("builtin policy");
    let mut per_class: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("json");
        let headers_owned: Vec<(String, Vec<u8>)> = r["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_ascii_lowercase(),
                    h[1].as_str().unwrap().as_bytes().to_vec(),
                )
            })
            .collect();
        let headers: Vec<(&str, &[u8])> = headers_owned
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let body = r["body"].as_str().map(|b| b.as_bytes());
        let req = Request {
            method: r["method"].as_str().unwrap(),
            target: r["target"].as_str().unwrap().as_bytes(),
            headers: &headers,
            body,
            body_truncated: false,
        };
        let v = policy.inspect(&req, &|| 1_795_000_000);
        let class = r["class"].as_str().unwrap().to_string();
        let blocked = v.outcome == Outcome::Block;
        if rule_stats {
            let blocking: Vec<_> = v
                .findings
                .iter()
                .filter(|f| f.rule.action == vigil_engine::RuleAction::Block)
                .collect();
            for f in &v.findings {
                let e = stats.entry(f.rule.id.clone()).or_default();
                if class == "benign" {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                    let rest: u32 = blocking
                        .iter()
                        .filter(|g| g.rule.id != f.rule.id)
                        .map(|g| vigil_engine::severity_score(g.rule.severity))
                        .sum();
                    if blocked && rest < 5 {
                        e.2 += 1;
                    }
                }
            }
        }
        let e = per_class.entry(class.clone()).or_default();
        e.0 += 1;
        e.1 += blocked as u32;
        let describe = || {
            let f: Vec<String> = v
                .findings
                .iter()
                .map(|f| format!("{}@{}[{}]", f.rule.id, f.target, f.fragment))
                .collect();
            format!(
                "{} {} {} | {} | {:?}",
                r["id"],
                r["method"],
                r["target"],
                body.map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                    .unwrap_or_default(),
                f
            )
        };
        if let Some((rule, c)) = &not_fired {
            if *c == class && !v.findings.iter().any(|f| f.rule.id == *rule) {
                println!("NOT-FIRED {}", describe());
            }
        }
        if class == "benign" && blocked && show_fp {
            println!("FP {}", describe());
        }
        if class != "benign"
            && !blocked
            && show_miss
                .as_deref()
                .is_some_and(|c| c == class || c == "all")
        {
            let h: Vec<String> = headers_owned
                .iter()
                .filter(|(n, _)| {
                    ![
                        "host",
                        "accept",
                        "content-type",
                        "authorization",
                        "accept-encoding",
                        "x-request-id",
                    ]
                    .contains(&n.as_str())
                })
                .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
                .collect();
            println!("MISS {} {:?}", describe(), h);
        }
    }
    if rule_stats {
        println!(
            "{:32} {:>7} {:>7} {:>5}",
            "rule", "benign", "attacks", "only"
        );
        for (rule, (b, a, o)) in &stats {
            println!("{rule:32} {b:>7} {a:>7} {o:>5}");
        }
    }
    let (mut an, mut ad) = (0, 0);
    for (class, (n, d)) in &per_class {
        println!(
            "{class:16} n={n:5} blocked={d:5} rate={:.1}%",
            100.0 * f64::from(*d) / f64::from(*n)
        );
        if class != "benign" {
            an += n;
            ad += d;
        }
    }
    println!(
        "attacks overall: {ad}/{an} = {:.1}%",
        100.0 * f64::from(ad) / f64::from(an)
    );
}
