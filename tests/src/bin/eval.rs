//! `make eval`: the labeled corpus through the real Envoy with the filter and the default
//! policy (demo API upstream, free loopback ports), then the same corpus in-process, and the
//! requests on which the two disagree.
//!
//!   cargo run -p vigil-e2e --bin eval -- [CORPUS] [OUT_DIR]

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
    let inproc = replay(&[corpus, "--out".into(), inproc_out.clone()]);
    // Exact agreement: the same decision and the same blocking rule for every request.
    let (a, b) = (
        through["decisions"].as_array().cloned().unwrap_or_default(),
        inproc["decisions"].as_array().cloned().unwrap_or_default(),
    );
    let differ: Vec<String> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("  through Envoy {x}, in-process {y}"))
        .collect();
    println!(
        "\n{} of {} requests decided differently in-process and through Envoy",
        differ.len(),
        a.len()
    );
    for line in differ {
        println!("{line}");
    }
    println!("\nresults: {envoy_out}, {inproc_out}");
}
