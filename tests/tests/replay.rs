//! `vigil replay` in-process and through the real Envoy agree request by request (decision and
//! blocking rule), on our own fixture corpus and, where it is present, the shared dev corpus.

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_e2e::control_plane::vigil_bin;
use vigil_e2e::{new_temp_dir, repo_root, DemoApi, Envoy, EnvoyConfig};

fn replay(corpus: &Path, extra: &[String]) -> serde_json::Value {
    let out = new_temp_dir().join("report.json");
    let status = Command::new(vigil_bin())
        .arg("replay")
        .arg(corpus)
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("vigil replay: {e}"));
    assert!(
        status.status.success(),
        "vigil replay failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn check(corpus: &Path, envoy: &Envoy) -> usize {
    let through = replay(
        corpus,
        &["--target".into(), format!("http://{}", envoy.listen_addr())],
    );
    let inproc = replay(corpus, &[]);
    let (a, b) = (
        through["decisions"].as_array().cloned().unwrap_or_default(),
        inproc["decisions"].as_array().cloned().unwrap_or_default(),
    );
    assert!(!a.is_empty(), "no decisions in the report");
    assert_eq!(a.len(), b.len());
    let differ: Vec<String> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("through Envoy {x}, in-process {y}"))
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {} requests differ:\n{}",
        differ.len(),
        a.len(),
        differ.join("\n")
    );
    a.len()
}

#[test]
fn in_process_and_through_envoy_agree_exactly() {
    let api = DemoApi::start();
    let envoy = Envoy::start(EnvoyConfig::gateway(api.port())).unwrap_or_else(|e| panic!("{e}"));
    let fixture = repo_root().join("tests/fixtures/corpus.jsonl");
    let n = check(&fixture, &envoy);
    // The fixture must exercise both outcomes, and the Referer that Envoy drops.
    let inproc = replay(&fixture, &[]);
    assert!(
        inproc["attacks"]["detected"].as_u64().unwrap_or(0) >= 12,
        "{}",
        inproc["attacks"]
    );
    assert_eq!(inproc["benign"]["detected"], 0);
    println!("fixture corpus: {n} requests agree");
    let dev: PathBuf = repo_root().join("../shared/corpus/dev.jsonl");
    if dev.is_file() {
        let n = check(&dev, &envoy);
        println!("dev corpus: {n} requests agree");
    }
}
