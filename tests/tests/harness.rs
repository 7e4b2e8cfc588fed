//! Checks the harness itself against the demo API alone (no Envoy: the filter module may
//! not be built yet). Needs `target/debug/vigil-demo-api` (`make test` builds it).

use std::time::Duration;

use vigil_e2e::http::{self, RawRequest};
use vigil_e2e::{wait_until, DemoApi, EnvoyConfig};

#[test]
fn health() {
    let api = DemoApi::start();
    assert!(api.is_alive());
    assert_eq!(api.addr().port(), api.port());
    let resp = api.send(&RawRequest::get("/health")).unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.json(), serde_json::json!({"status": "ok"}));
}

#[test]
fn login_good_and_bad() {
    let api = DemoApi::start();
    let good = RawRequest::post("/login").json(r#"{"username":"alice","password":"wonderland"}"#);
    let resp = api.send(&good).unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    let body = resp.json();
    assert!(
        body["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert_eq!(body["user"]["username"], "alice");

    let form = RawRequest::post("/login").form("username=bob&password=builder");
    assert_eq!(api.send(&form).unwrap().status, 200);

    let bad = RawRequest::post("/login").json(r#"{"username":"alice","password":"guess"}"#);
    let resp = api.send(&bad).unwrap();
    assert_eq!(resp.status, 401, "{resp:?}");
    assert_eq!(
        resp.json(),
        serde_json::json!({"error": "invalid credentials"})
    );
}

#[test]
fn chunked_post() {
    let api = DemoApi::start();
    let req = RawRequest::post("/upload")
        .header("Content-Type", "application/octet-stream")
        .chunked([&b"hello "[..], b"chunked ", b"world"]);
    let resp = api.send(&req).unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json()["bytes"], 19);

    let req = RawRequest::post("/orders").json(r#"{"item":"Lamp","quantity":2}"#);
    let resp = api.send(&req).unwrap();
    assert_eq!(resp.status, 201, "{resp:?}");
    assert_eq!(resp.json()["item"], "Lamp");
}

#[test]
fn request_id_is_echoed() {
    let api = DemoApi::start();
    let req = RawRequest::get("/users/1").header("x-vigil-request-id", "e2e-123");
    let resp = api.send(&req).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-upstream-request-id"), Some("e2e-123"));
    let req = RawRequest::get("/users/1").header("x-request-id", "envoy-456");
    let resp = api.send(&req).unwrap();
    assert_eq!(resp.header("x-upstream-request-id"), Some("envoy-456"));
    let resp = api.send(&RawRequest::get("/nope")).unwrap();
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("x-upstream-request-id"), Some(""));
}

#[test]
fn raw_bytes_and_errors() {
    let api = DemoApi::start();
    // Bytes go out as given: a non-UTF-8 target reaches the server.
    let resp = api
        .send(&RawRequest::get(b"/search?q=\xff".as_slice()))
        .unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    let resp = http::send_bytes(api.addr(), b"NOT HTTP\r\n\r\n").unwrap();
    assert_eq!(resp.status, 400);
    // An oversized header is refused even while the client is still writing.
    let resp = api
        .send(&RawRequest::get("/health").header("x-big", vec![b'a'; 200 * 1024]))
        .unwrap();
    assert_eq!(resp.status, 431);
    let resp = api.send(&RawRequest::get("/export?limit=5000")).unwrap();
    assert_eq!(resp.json().as_array().map(Vec::len), Some(5000));
}

#[test]
fn demo_api_stops_on_drop() {
    let api = DemoApi::start();
    let addr = api.addr();
    drop(api);
    assert!(wait_until(Duration::from_secs(5), || http::send(
        addr,
        &RawRequest::get("/health")
    )
    .is_err()));
}

#[test]
fn envoy_config_renders_from_template() {
    let policy = r#"{"mode": "monitor", "note": "it's \"quoted\"\n"}"#;
    let yaml = EnvoyConfig::gateway(18080)
        .policy_json(policy)
        .wasm("/tmp/x y/vigil filter.wasm")
        .render(15000, 15001);
    assert!(yaml.contains("port_value: 15000"));
    assert!(yaml.contains("port_value: 15001"));
    assert!(yaml.contains("port_value: 18080"));
    assert!(!yaml.contains("port_value: 9901") && !yaml.contains("port_value: 10000"));
    assert!(yaml.contains(r#"filename: "/tmp/x y/vigil filter.wasm""#));
    // The policy is embedded as a JSON string literal (a valid YAML double-quoted scalar).
    let line = yaml
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("value: "))
        .unwrap();
    let embedded: String = serde_json::from_str(&line["value: ".len()..]).unwrap();
    assert_eq!(embedded, policy);
    // Default: the empty string (built-in policy).
    let yaml = EnvoyConfig::gateway(1).render(2, 3);
    assert!(yaml.contains("value: \"\"\n"));
}
