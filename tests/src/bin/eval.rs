//! `make eval`: the labeled corpus through the real Envoy with the filter and the default
//! policy (demo API upstream, free loopback ports), then the same corpus in-process, and the
//! requests on which the two disagree.
//!
//!   cargo run -p vigil-e2e --bin eval -- [CORPUS] [OUT_DIR]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use vigil_e2e::control_plane::vigil_bin;
use vigil_e2e::{DemoApi, Envoy, EnvoyConfig};

fn replay(args: &[String]) -> serde_json::Value {
    let out_file = args
        .windows(2)
        .find(|w| w[0] == "--out")
        .map(|w| PathBuf::from(&w[1]))
        .unwrap_or_else(|| panic!("--out is required"));
    let status = Command::new(vigil_bin())
        .arg("replay")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("vigil replay: {e}"));
    assert!(status.success(), "vigil replay failed");
    let text = std::fs::read_to_string(&out_file)
        .unwrap_or_else(|e| panic!("{}: {e}", out_file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", out_file.display()))
}

/// id -> blocked: attacks are blocked and benign requests pass, except those the report
/// lists as missed attacks or blocked benign requests.
fn decisions(
    labels: &BTreeMap<String, bool>,
    report: &serde_json::Value,
) -> BTreeMap<String, bool> {
    let mut out = labels.clone();
    for (list, blocked) in [("missed_attacks", false), ("blocked_benign", true)] {
        for o in report[list].as_array().into_iter().flatten() {
            if let Some(id) = o["id"].as_str() {
                out.insert(id.to_owned(), blocked);
            }
        }
    }
    out
}

/// id -> is an attack, from the corpus.
fn labels(corpus: &str) -> BTreeMap<String, bool> {
    let text = std::fs::read_to_string(corpus).unwrap_or_else(|e| panic!("{corpus}: {e}"));
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| Some((r["id"].as_str()?.to_owned(), r["label"] == "attack")))
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let corpus = args
        .next()
        .unwrap_or_else(|| "../shared/corpus/dev.jsonl".into());
    let out_dir = PathBuf::from(args.next().unwrap_or_else(|| "target/eval".into()));
    std::fs::create_dir_all(&out_dir).unwrap_or_else(|e| panic!("{}: {e}", out_dir.display()));
    let api = DemoApi::start();
    let envoy = Envoy::start(EnvoyConfig::gateway(api.port())).unwrap_or_else(|e| panic!("{e}"));
    let envoy_out = out_dir.join("envoy.json").to_string_lossy().into_owned();
    println!(
        "== through Envoy ({}) with the default policy ==",
        envoy.listen_addr()
    );
    let through = replay(&[
        corpus.clone(),
        "--target".into(),
        format!("http://{}", envoy.listen_addr()),
        "--out".into(),
        envoy_out.clone(),
    ]);
    let inproc_out = out_dir
        .join("in-process.json")
        .to_string_lossy()
        .into_owned();
    println!("\n== in-process, built-in policy ==");
    let labels = labels(&corpus);
    let inproc = replay(&[corpus, "--out".into(), inproc_out.clone()]);
    let (a, b) = (decisions(&labels, &through), decisions(&labels, &inproc));
    let differ: Vec<&String> = a.keys().filter(|id| a.get(*id) != b.get(*id)).collect();
    println!(
        "\n{} requests decided differently in-process and through Envoy",
        differ.len()
    );
    let word = |blocked: Option<&bool>| {
        if blocked == Some(&true) {
            "blocked"
        } else {
            "passed"
        }
    };
    for id in differ {
        println!(
            "  {id}: through Envoy {}, in-process {}",
            word(a.get(id)),
            word(b.get(id))
        );
    }
    println!("\nresults: {envoy_out}, {inproc_out}");
}
