//! Alerting with real parts: Envoy with the filter, `vigil serve`, Prometheus and Alertmanager
//! (Debian packages) on free loopback ports, and a webhook receiver inside the test.
//!
//! * Envoy's stats → Prometheus (shipped scrape config and rules) → Alertmanager (shipped
//!   routing) → the webhook: an attack raises `VigilAttackSurge` at the `team` receiver.
//! * The Grafana dashboard: its structure, and every query parses in that Prometheus and
//!   names only documented metrics, which exist.
//! * The control plane's own alerts from the events Envoy reports: one signed webhook
//!   notification and one Alertmanager alert per incident, resolved once when quiet; through a
//!   receiver outage and a control-plane restart, nothing is lost or sent twice.

use std::collections::BTreeSet;
use std::time::Duration;

use vigil_e2e::control_plane::{ok, VigilServe, ADMIN_TOKEN, VIEWER_TOKEN};
use vigil_e2e::monitoring::{shipped, Alertmanager, Prometheus, PrometheusTargets};
use vigil_e2e::webhook::{Delivery, Webhook};
use vigil_e2e::{wait_until, DemoApi, Envoy, RawRequest};

const ALERT_TIMEOUT: Duration = Duration::from_secs(40);

/// Envoy (from `vigil envoy-config`, so the singleton's metrics exist too), the control plane
/// and the demo API.
struct Edge {
    serve: VigilServe,
    _api: DemoApi,
    envoy: Envoy,
}

impl Edge {
    fn start() -> Edge {
        Edge::with_control_plane(VigilServe::start())
    }

    fn with_control_plane(serve: VigilServe) -> Edge {
        let api = DemoApi::start();
        let envoy = Envoy::start(serve.envoy_config("edge-alerting", api.port(), &[]))
            .unwrap_or_else(|e| panic!("{e}"));
        Edge {
            serve,
            _api: api,
            envoy,
        }
    }

    /// Sends `n` SQL injections; each must be blocked.
    fn attack(&self, n: usize) {
        for i in 0..n {
            let req = RawRequest::get(format!("/search?q=1%27%20OR%20%27{i}%27%3D%27{i}"));
            let resp = self
                .envoy
                .send(&req)
                .unwrap_or_else(|e| panic!("attack {i}: {e}"));
            assert_eq!(resp.status, 403, "attack {i} not blocked: {resp:?}");
        }
    }

    fn prometheus(&self, alertmanager: Option<&Alertmanager>) -> Prometheus {
        let prometheus = Prometheus::start(&PrometheusTargets {
            envoys: vec![self.envoy.admin_addr()],
            control_plane: Some(self.serve.metrics_addr()),
            alertmanager: alertmanager.map(Alertmanager::addr),
        });
        assert!(
            wait_until(ALERT_TIMEOUT, || prometheus.targets_up("envoy")
                && prometheus.targets_up("vigil-control-plane")),
            "Prometheus should scrape Envoy and the control plane"
        );
        prometheus
    }
}

fn alert_names(payload: &serde_json::Value, status: &str) -> Vec<String> {
    payload["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] == status)
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn attack_through_envoy_reaches_the_team_webhook_via_prometheus_and_alertmanager() {
    let edge = Edge::start();
    let webhook = Webhook::start();
    let alertmanager = Alertmanager::start(&webhook.url(""));
    let prometheus = edge.prometheus(Some(&alertmanager));
    // Quiet traffic raises nothing.
    for _ in 0..5 {
        let resp = edge.envoy.send(&RawRequest::get("/users/1"));
        assert_eq!(resp.map(|r| r.status).unwrap_or(0), 200);
    }
    assert!(
        wait_until(ALERT_TIMEOUT, || prometheus
            .series("vigil_requests_allowed > 0")
            == 1),
        "Prometheus should see the benign requests"
    );
    assert!(
        prometheus.alerts().is_empty(),
        "no alert before the attack: {:?}",
        prometheus.alerts()
    );

    // `VigilAttackSurge`: more than 1 block/s averaged over 5 minutes.
    edge.attack(400);
    let surge = || {
        webhook
            .accepted("/alerts/team")
            .iter()
            .any(|d| alert_names(&d.json(), "firing").contains(&"VigilAttackSurge".to_owned()))
    };
    assert!(
        wait_until(ALERT_TIMEOUT, surge),
        "VigilAttackSurge should reach the team receiver; Prometheus alerts: {:?}; \
         Alertmanager: {:?}; webhook: {:?}",
        prometheus.alerts(),
        alertmanager.alerts(),
        webhook.all()
    );
    let delivery = webhook
        .accepted("/alerts/team")
        .into_iter()
        .find(|d| alert_names(&d.json(), "firing").contains(&"VigilAttackSurge".to_owned()))
        .unwrap_or_else(|| panic!("delivery vanished"));
    let payload = delivery.json();
    let alert = &payload["alerts"][0];
    assert_eq!(alert["labels"]["severity"], "high");
    assert_eq!(alert["labels"]["component"], "edge");
    assert_eq!(
        alert["labels"]["instance"],
        edge.envoy.admin_addr().to_string()
    );
    assert_eq!(payload["receiver"], "team");
    // Severity routing: the high alert is not paged; the medium ratio alert goes to `log`.
    assert!(
        wait_until(ALERT_TIMEOUT, || webhook
            .accepted("/alerts/log")
            .iter()
            .any(
                |d| alert_names(&d.json(), "firing").contains(&"VigilBlockedRatioSpike".to_owned())
            )),
        "VigilBlockedRatioSpike should reach the log receiver: {:?}",
        webhook.all()
    );
    assert!(
        webhook.accepted("/alerts/pager").is_empty(),
        "nothing critical happened, nothing paged: {:?}",
        webhook.accepted("/alerts/pager")
    );
}

// ------------------------------------------------------------------ the dashboard

/// Metric names in `envoy/prometheus/README.md`'s metrics table, and those marked `always`.
fn documented_metrics() -> (BTreeSet<String>, BTreeSet<String>) {
    let readme = shipped("README.md");
    let mut all = BTreeSet::new();
    let mut always = BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | metric | type | labels | when | meaning |
        if cells.len() < 6 || !matches!(cells[2], "counter" | "gauge" | "histogram") {
            continue;
        }
        let name = cells[1].trim_matches('`').to_owned();
        if cells[4] == "always" {
            always.insert(name.clone());
        }
        all.insert(name);
    }
    assert!(all.len() > 30, "metrics table not found: {all:?}");
    (all, always)
}

/// Metric names in a PromQL expression: identifiers outside label matchers and grouping
/// clauses that are not functions or keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut text = String::new();
    let mut depth = 0;
    for ch in expr.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ if depth == 0 => text.push(ch),
            _ => {}
        }
    }
    // Drop `by (...)`, `without (...)`, `on (...)`, `group_left (...)` label lists.
    let text = without_label_lists(&text);
    let words = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| !w.is_empty() && !w.starts_with(|c: char| c.is_ascii_digit()));
    const NOT_METRICS: &[&str] = &[
        "sum",
        "rate",
        "increase",
        "topk",
        "max",
        "min",
        "avg",
        "count",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "histogram_quantile",
        "offset",
        "bool",
        "m",
        "s",
        "h",
        "d",
    ];
    words
        .filter(|w| !NOT_METRICS.contains(w))
        .map(|w| {
            let base = w
                .strip_suffix("_bucket")
                .or_else(|| w.strip_suffix("_sum"))
                .or_else(|| w.strip_suffix("_count"));
            base.filter(|b| b.starts_with("envoy_http_"))
                .unwrap_or(w)
                .to_owned()
        })
        .collect()
}

/// `text` without the parenthesised label list after `by`, `without`, `on`, `ignoring`,
/// `group_left` and `group_right`.
fn without_label_lists(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for kw in [
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ] {
            if let Some(after) = rest.strip_prefix(kw) {
                let prev_ok = !out.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
                let trimmed = after.trim_start();
                if prev_ok && trimmed.starts_with('(') {
                    if let Some(end) = trimmed.find(')') {
                        out.push(' ');
                        rest = &trimmed[end + 1..];
                        continue 'outer;
                    }
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// Grafana's variables replaced by values Prometheus accepts.
fn expand_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$instance", ".*")
}

#[test]
fn dashboard_is_valid_and_queries_only_documented_metrics() {
    let text = shipped("grafana/vigil-dashboard.json");
    let dash: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("dashboard is not JSON: {e}"));
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    assert!(dash["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty() && u.len() <= 40));
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dash["id"].is_null(), "an importable dashboard has no id");
    let variables = dash["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let datasource = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .unwrap_or_else(|| panic!("no `datasource` variable"));
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let uid_var = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});

    let panels = dash["panels"].as_array().cloned().unwrap_or_default();
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for v in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"], uid_var, "variable {}", v["name"]);
        let q = v["query"]["query"].as_str().unwrap_or_default();
        // label_values(METRIC, label) is Grafana's, not PromQL: check the metric part.
        let metric = q
            .strip_prefix("label_values(")
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("unexpected variable query {q}"));
        exprs.push((format!("variable {}", v["name"]), metric.trim().to_owned()));
    }
    for p in &panels {
        let title = p["title"].as_str().unwrap_or_default().to_owned();
        assert!(
            ids.insert(p["id"].as_u64().unwrap_or_else(|| panic!("{title}: no id"))),
            "{title}: duplicate id"
        );
        let grid = &p["gridPos"];
        let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
        assert!(
            matches!((x, w, grid["h"].as_u64(), grid["y"].as_u64()), (Some(x), Some(w), Some(h), Some(_)) if x + w <= 24 && h > 0),
            "{title}: bad gridPos {grid}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert!(
            ["timeseries", "stat", "bargauge", "table", "gauge"]
                .contains(&p["type"].as_str().unwrap_or_default()),
            "{title}: panel type {}",
            p["type"]
        );
        assert_eq!(p["datasource"], uid_var, "{title}: datasource");
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "{title}: no targets");
        let mut refs = BTreeSet::new();
        for t in &targets {
            assert_eq!(t["datasource"], uid_var, "{title}: target datasource");
            assert!(refs.insert(t["refId"].as_str().unwrap_or_default().to_owned()));
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.is_empty(), "{title}: empty expr");
            exprs.push((title.clone(), expr.to_owned()));
        }
    }
    assert!(exprs.len() >= 15, "{} queries", exprs.len());

    // The alert rules name only documented metrics too.
    let rules: serde_json::Value = serde_yaml_ng::from_str(&shipped("rules/vigil.rules.yml"))
        .unwrap_or_else(|e| panic!("rules: {e}"));
    for group in rules["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let name = rule["alert"].as_str().unwrap_or_default();
            exprs.push((
                format!("rule {name}"),
                rule["expr"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }

    let (documented, always) = documented_metrics();
    let mut used = BTreeSet::new();
    for (title, expr) in &exprs {
        let names = metric_names(&expand_grafana_variables(expr));
        assert!(!names.is_empty(), "{title}: no metric in `{expr}`");
        for name in names {
            assert!(
                documented.contains(&name),
                "{title}: `{name}` (in `{expr}`) is not in envoy/prometheus/README.md"
            );
            used.insert(name);
        }
    }

    // Every query parses in the real Prometheus, and the documented metrics exist.
    let edge = Edge::start();
    edge.attack(3);
    let prometheus = edge.prometheus(None);
    assert!(
        wait_until(ALERT_TIMEOUT, || prometheus
            .series("vigil_cp_findings_total > 0")
            > 0
            && prometheus.series("vigil_requests_blocked > 0") > 0),
        "the attack should be scraped from Envoy and the control plane"
    );
    for (title, expr) in &exprs {
        if let Err(e) = prometheus.query(&expand_grafana_variables(expr)) {
            panic!("{title}: `{expr}` does not run: {e}");
        }
    }
    let missing: Vec<&String> = always
        .iter()
        .filter(|m| prometheus.series(&format!("count({{__name__=~\"{m}(_bucket)?\"}})")) == 0)
        .collect();
    assert!(
        missing.is_empty(),
        "documented as always present but not scraped: {missing:?}"
    );
    assert!(used.contains("vigil_findings") && used.contains("vigil_behaviour"));
}

// ------------------------------------------------------------------ control-plane alerts

const SECRET: &str = "webhook-secret-for-tests";
const RULE: &str = "sqli-from-one-ip";

/// `[alerting]` for `vigil serve`: SQL injection from one IP notifies at 20 events in a minute
/// and resolves after 3 quiet seconds; a signed webhook and, optionally, Alertmanager.
fn alerting_config(webhook: &Webhook, alertmanager: Option<&Alertmanager>) -> String {
    let mut toml = format!(
        r#"
[alerting]
tick = "100ms"
retry_initial = "200ms"
retry_max = "500ms"

[[alerting.rule]]
name = "{RULE}"
category = "sqli"
key = "client_ip"
window = "1m"
notify_at = 20
severity = "high"
resolve_after = "3s"
summary = "SQL injection from {{key}}"

[[alerting.receiver]]
name = "hook"
kind = "webhook"
url = "{}"
secret = "{SECRET}"
"#,
        webhook.url("/vigil")
    );
    if let Some(am) = alertmanager {
        // Alertmanager, and PagerDuty and Slack pointed at the test's receiver.
        toml.push_str(&format!(
            r#"
[[alerting.receiver]]
name = "am"
kind = "alertmanager"
url = "{}"

[[alerting.receiver]]
name = "pd"
kind = "pagerduty"
url = "{}"
routing_key = "routing-key-for-tests"
min_severity = "high"

[[alerting.receiver]]
name = "chat"
kind = "slack"
url = "{}"
"#,
            am.url(),
            webhook.url("/pagerduty"),
            webhook.url("/slack")
        ));
    }
    toml
}

/// Notifications the control plane's webhook receiver accepted, with `status`.
fn cp_notifications(webhook: &Webhook, status: &str) -> Vec<Delivery> {
    webhook
        .accepted("/vigil")
        .into_iter()
        .filter(|d| d.json()["status"] == status)
        .collect()
}

fn verify_signature(d: &Delivery) {
    use hmac::{Hmac, Mac};
    let ts = d
        .header("x-vigil-timestamp")
        .unwrap_or_else(|| panic!("no timestamp: {d:?}"));
    let sig = d
        .header("x-vigil-signature")
        .unwrap_or_else(|| panic!("no signature: {d:?}"));
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&d.body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sig, format!("sha256={hex}"), "signature of {d:?}");
}

fn alerts_json(serve: &VigilServe) -> Vec<serde_json::Value> {
    ok(&serve.cli(VIEWER_TOKEN, &["alerts", "list", "--all", "--json"]))
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn control_plane_alerts_once_per_incident_to_a_webhook_and_alertmanager() {
    let webhook = Webhook::start();
    let alertmanager = Alertmanager::start(&webhook.url(""));
    let edge = Edge::with_control_plane(VigilServe::start_with_config(&alerting_config(
        &webhook,
        Some(&alertmanager),
    )));

    // A first doubt is only logged: no notification.
    edge.attack(1);
    assert!(
        wait_until(ALERT_TIMEOUT, || alerts_json(&edge.serve).len() == 1),
        "an alert at the log level should exist"
    );
    let first = &alerts_json(&edge.serve)[0];
    assert_eq!(first["level"], "log");
    assert_eq!(first["severity"], "low");
    assert!(webhook.all().is_empty(), "logged only: {:?}", webhook.all());

    // A consistent issue: 300 attacks are one alert, notified once.
    edge.attack(299);
    assert!(
        wait_until(ALERT_TIMEOUT, || cp_notifications(&webhook, "resolved")
            .len()
            == 1),
        "the incident should be notified and resolve after 3 quiet seconds: {:?}\n{:?}",
        webhook.all(),
        alerts_json(&edge.serve)
    );
    let firing = cp_notifications(&webhook, "firing");
    assert_eq!(
        firing.len(),
        1,
        "exactly one firing notification: {firing:?}"
    );
    verify_signature(&firing[0]);
    let body = firing[0].json();
    assert_eq!(body["alert"]["rule"], RULE);
    assert_eq!(body["alert"]["key"], "127.0.0.1");
    assert_eq!(body["alert"]["severity"], "high");
    assert!(body["alert"]["count"].as_u64().is_some_and(|n| n >= 20));
    let resolved = cp_notifications(&webhook, "resolved");
    verify_signature(&resolved[0]);
    let resolved = resolved[0].json();
    assert_eq!(
        resolved["alert"]["count"], 300,
        "every attack counted into the one alert"
    );
    assert_eq!(resolved["alert"]["id"], body["alert"]["id"]);
    let alerts = alerts_json(&edge.serve);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["status"], "resolved");
    assert_eq!(alerts[0]["count"], 300);

    // PagerDuty Events v2: one trigger and one resolve for the incident's dedup key. Each
    // receiver has its own delivery loop: wait for both to finish.
    assert!(
        wait_until(ALERT_TIMEOUT, || webhook.accepted("/pagerduty").len() == 2
            && webhook.accepted("/slack").len() == 2),
        "{:?}",
        webhook.all()
    );
    let pd: Vec<serde_json::Value> = webhook
        .accepted("/pagerduty")
        .iter()
        .map(Delivery::json)
        .collect();
    assert_eq!(pd.len(), 2, "{pd:?}");
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[0]["routing_key"], "routing-key-for-tests");
    assert_eq!(pd[0]["payload"]["severity"], "error");
    assert_eq!(pd[1]["event_action"], "resolve");
    assert_eq!(pd[0]["dedup_key"], pd[1]["dedup_key"]);
    // Slack: two messages.
    let chat: Vec<String> = webhook
        .accepted("/slack")
        .iter()
        .map(|d| d.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(chat.len(), 2, "{chat:?}");
    assert!(chat[0].starts_with(&format!(
        "[FIRING HIGH] {RULE}: SQL injection from 127.0.0.1"
    )));
    assert!(chat[1].starts_with(&format!("[RESOLVED] {RULE}")) && chat[1].contains("300 events"));

    // Through Alertmanager (API v2) and its severity routing: once firing, once resolved.
    let via_am = |status: &str| -> usize {
        webhook
            .accepted("/alerts/team")
            .iter()
            .map(|d| d.json())
            .filter(|p| {
                p["alerts"].as_array().into_iter().flatten().any(|a| {
                    a["labels"]["alertname"] == RULE
                        && a["labels"]["source"] == "vigil-control-plane"
                        && a["status"] == status
                })
            })
            .count()
    };
    assert!(
        wait_until(ALERT_TIMEOUT, || via_am("resolved") == 1),
        "Alertmanager should deliver the resolution: {:?}",
        webhook.accepted("/alerts/team")
    );
    assert_eq!(
        via_am("firing"),
        1,
        "{:?}",
        webhook.accepted("/alerts/team")
    );
}

#[test]
fn receiver_outage_and_control_plane_restart_lose_nothing() {
    let webhook = Webhook::start();
    webhook.set_down(true);
    let mut edge = Edge::with_control_plane(VigilServe::start_with_config(&alerting_config(
        &webhook, None,
    )));
    edge.attack(30);
    assert!(
        wait_until(ALERT_TIMEOUT, || webhook.refused() >= 2),
        "the control plane should keep retrying the receiver"
    );
    assert!(edge
        .serve
        .metric("vigil_cp_alert_outbox_pending")
        .is_some_and(|n| n >= 1.0));
    assert!(ok(&edge.serve.cli(VIEWER_TOKEN, &["alerts", "list"])).contains("waiting for delivery"));

    // Restart while the receiver is still down: the outbox and the firing alert survive.
    edge.serve.restart();
    let refused = webhook.refused();
    assert!(
        wait_until(ALERT_TIMEOUT, || webhook.refused() > refused),
        "retries continue after the restart"
    );
    let id = alerts_json(&edge.serve)[0]["id"].clone();
    assert!(webhook.accepted("/vigil").is_empty());

    // The receiver recovers: the firing notification arrives once, then the resolution.
    webhook.set_down(false);
    assert!(
        wait_until(ALERT_TIMEOUT, || cp_notifications(&webhook, "resolved")
            .len()
            == 1),
        "after recovery: {:?}\nalerts: {:?}",
        webhook.all(),
        alerts_json(&edge.serve)
    );
    let accepted = webhook.accepted("/vigil");
    assert_eq!(
        accepted.len(),
        2,
        "firing then resolved, once each: {accepted:?}"
    );
    assert_eq!(accepted[0].json()["status"], "firing");
    assert_eq!(accepted[1].json()["status"], "resolved");
    assert_eq!(accepted[0].json()["alert"]["id"], id);
    assert_eq!(accepted[1].json()["alert"]["count"], 30);
    // Every attempt of the firing notification carried the same delivery id.
    let delivery = accepted[0].header("x-vigil-delivery").map(str::to_owned);
    assert!(webhook
        .all()
        .iter()
        .filter(|d| !d.accepted && d.json()["status"] == "firing")
        .all(|d| d.header("x-vigil-delivery").map(str::to_owned) == delivery));
    assert!(
        wait_until(ALERT_TIMEOUT, || edge
            .serve
            .metric("vigil_cp_alert_outbox_pending")
            == Some(0.0)),
        "outbox drained"
    );
    assert_eq!(
        alerts_json(&edge.serve).len(),
        1,
        "one incident across the restart"
    );

    // Acknowledge and silence need an admin; a viewer is refused.
    let denied = edge
        .serve
        .cli(VIEWER_TOKEN, &["alerts", "silence", "--for", "1h"]);
    assert!(!denied.status.success());
    let silenced = ok(&edge.serve.cli(
        ADMIN_TOKEN,
        &[
            "alerts",
            "silence",
            "--rule",
            RULE,
            "--for",
            "1h",
            "--comment",
            "pen test",
        ],
    ));
    assert!(silenced.contains("silence 1 until"), "{silenced}");
    edge.attack(25);
    assert!(
        wait_until(ALERT_TIMEOUT, || alerts_json(&edge.serve).iter().any(|a| a
            ["status"]
            == "firing"
            && a["silenced"] == true
            && a["level"] == "notify")),
        "a silenced alert is tracked: {:?}",
        alerts_json(&edge.serve)
    );
    let firing_id = alerts_json(&edge.serve)
        .iter()
        .find(|a| a["status"] == "firing")
        .and_then(|a| a["id"].as_i64())
        .unwrap_or_else(|| panic!("no firing alert"));
    let acked = ok(&edge
        .serve
        .cli(ADMIN_TOKEN, &["alerts", "ack", &firing_id.to_string()]));
    assert!(
        acked.contains(&format!("acknowledged alert {firing_id}")),
        "{acked}"
    );
    assert!(
        wait_until(ALERT_TIMEOUT, || alerts_json(&edge.serve)
            .iter()
            .all(|a| a["status"] == "resolved")),
        "the silenced incident resolves too"
    );
    let second = alerts_json(&edge.serve)
        .into_iter()
        .find(|a| a["id"] == firing_id)
        .unwrap_or_else(|| panic!("alert {firing_id} vanished"));
    assert_eq!(second["acked_by"], "admin");
    assert_eq!(second["count"], 25);
    assert_eq!(
        webhook.accepted("/vigil").len(),
        2,
        "a silenced incident notifies nobody: {:?}",
        webhook.accepted("/vigil")
    );
}
