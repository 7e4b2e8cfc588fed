//! Prometheus metrics of the control plane, served as text at `GET /metrics` by a tiny
//! HTTP/1.1 responder (one request per connection), plus `GET /healthz`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub events_stored: Counter,
    pub events_duplicate: Counter,
    pub event_batches: Counter,
    pub policy_pushes: Counter,
    pub policy_rejected: Counter,
    pub policy_version: Gauge,
    pub nodes_connected: Gauge,
    pub auth_failures: Counter,
    pub watch_streams: Gauge,
    /// Policy version each connected node applied (0: its static policy).
    node_versions: Mutex<BTreeMap<String, i64>>,
    /// Findings in stored events by (rule, category, severity); see [`MAX_RULE_SERIES`].
    findings: Mutex<BTreeMap<(String, String, String), u64>>,
    /// Control-plane alerts firing, indexed like [`SEVERITIES`].
    pub alerts_firing: [Gauge; 4],
    /// Notifications waiting in the outbox.
    pub alert_outbox_pending: Gauge,
    /// Notification attempts by (receiver, result).
    notifications: Mutex<BTreeMap<(String, &'static str), u64>>,
}

/// Severity label values of `vigil_cp_alerts_firing`, most severe first.
pub const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// Distinct (rule, category, severity) series of `vigil_cp_findings_total`; more are counted
/// under `rule="other"`, so an edge cannot grow the exposition without bound.
pub const MAX_RULE_SERIES: usize = 1000;

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Records the policy version a connected node runs ("" or not a number: 0).
    pub fn set_node_version(&self, node: &str, applied_version: &str) {
        let version = applied_version.trim().parse().unwrap_or(0);
        locked(&self.node_versions).insert(node.to_owned(), version);
    }

    pub fn forget_node(&self, node: &str) {
        locked(&self.node_versions).remove(node);
    }

    /// Counts the findings of newly stored events.
    pub fn count_findings<'a>(
        &self,
        findings: impl IntoIterator<Item = &'a vigil_proto::v1::Finding>,
    ) {
        let mut map = locked(&self.findings);
        for f in findings {
            let mut key = (f.rule_id.clone(), f.category.clone(), f.severity.clone());
            if !map.contains_key(&key) && map.len() >= MAX_RULE_SERIES {
                key = ("other".into(), String::new(), String::new());
            }
            *map.entry(key).or_insert(0) += 1;
        }
    }

    /// Counts one notification attempt: `result` is `sent`, `retried` or `expired`.
    pub fn count_notification(&self, receiver: &str, result: &'static str) {
        *locked(&self.notifications)
            .entry((receiver.to_owned(), result))
            .or_insert(0) += 1;
    }

    /// Makes the receiver's series exist (at 0) before its first notification.
    pub fn declare_receiver(&self, receiver: &str) {
        let mut map = locked(&self.notifications);
        for result in ["sent", "retried", "expired"] {
            map.entry((receiver.to_owned(), result)).or_insert(0);
        }
    }

    /// The Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: i128| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        let counters = [
            (
                "vigil_cp_events_stored_total",
                "Events stored (new).",
                &self.events_stored,
            ),
            (
                "vigil_cp_events_duplicate_total",
                "Events received again (resends) and not stored twice.",
                &self.events_duplicate,
            ),
            (
                "vigil_cp_event_batches_total",
                "Event batches acknowledged.",
                &self.event_batches,
            ),
            (
                "vigil_cp_policy_pushes_total",
                "Policy versions created by pushes and rollbacks.",
                &self.policy_pushes,
            ),
            (
                "vigil_cp_policy_rejected_total",
                "Policies refused because they did not validate.",
                &self.policy_rejected,
            ),
            (
                "vigil_cp_auth_failures_total",
                "Calls refused for missing, unknown or insufficient tokens.",
                &self.auth_failures,
            ),
        ];
        for (name, help, c) in counters {
            metric(name, "counter", help, i128::from(c.get()));
        }
        let gauges = [
            (
                "vigil_cp_policy_version",
                "Current policy version (0: none).",
                &self.policy_version,
            ),
            (
                "vigil_cp_nodes_connected",
                "Nodes with an open Watch stream.",
                &self.nodes_connected,
            ),
            (
                "vigil_cp_watch_streams",
                "Open Watch streams.",
                &self.watch_streams,
            ),
        ];
        for (name, help, g) in gauges {
            metric(name, "gauge", help, i128::from(g.get()));
        }
        metric(
            "vigil_cp_alert_outbox_pending",
            "gauge",
            "Alert notifications waiting for delivery.",
            i128::from(self.alert_outbox_pending.get()),
        );
        self.render_labelled(&mut out);
        out
    }

    fn render_labelled(&self, out: &mut String) {
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, i128)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
        family(
            "vigil_cp_node_policy_version",
            "gauge",
            "Policy version each connected node applied (0: its static policy).",
            locked(&self.node_versions)
                .iter()
                .map(|(node, v)| (format!("node=\"{}\"", label(node)), i128::from(*v)))
                .collect(),
        );
        family(
            "vigil_cp_findings_total",
            "counter",
            "Findings in stored events, by rule.",
            locked(&self.findings)
                .iter()
                .map(|((rule, category, severity), n)| {
                    (
                        format!(
                            "rule=\"{}\",category=\"{}\",severity=\"{}\"",
                            label(rule),
                            label(category),
                            label(severity)
                        ),
                        i128::from(*n),
                    )
                })
                .collect(),
        );
        family(
            "vigil_cp_alerts_firing",
            "gauge",
            "Control-plane alerts firing, by severity.",
            SEVERITIES
                .iter()
                .zip(&self.alerts_firing)
                .map(|(s, g)| (format!("severity=\"{s}\""), i128::from(g.get())))
                .collect(),
        );
        family(
            "vigil_cp_alert_notifications_total",
            "counter",
            "Alert notification attempts by receiver and result (sent, retried, expired).",
            locked(&self.notifications)
                .iter()
                .map(|((receiver, result), n)| {
                    (
                        format!("receiver=\"{}\",result=\"{result}\"", label(receiver)),
                        i128::from(*n),
                    )
                })
                .collect(),
        );
    }
}

const MAX_REQUEST_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let stop = async move {
        // An error means the sender is gone: stop as well.
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let metrics = Arc::clone(&metrics);
                    tokio::spawn(async move {
                        if let Err(e) = respond(stream, &metrics).await {
                            tracing::debug!(error = %e, "metrics connection failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = &mut stop => return,
        }
    }
}

async fn respond(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_REQUEST_HEAD {
                return Ok(false);
            }
        }
    })
    .await
    .unwrap_or(Ok(false))?;

    let (status, content_type, body) = if !complete {
        ("400 Bad Request", "text/plain", "bad request\n".to_owned())
    } else {
        let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or_default();
        let target = parts.next().unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default();
        match (method, path) {
            ("GET", "/metrics") => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render(),
            ),
            ("GET", "/healthz") => ("200 OK", "text/plain", "ok".to_owned()),
            ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
            _ => (
                "405 Method Not Allowed",
                "text/plain",
                "method not allowed\n".to_owned(),
            ),
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric() {
        let m = Metrics::default();
        m.events_stored.add(3);
        m.policy_version.set(7);
        let text = m.render();
        for name in [
            "vigil_cp_events_stored_total 3",
            "vigil_cp_events_duplicate_total 0",
            "vigil_cp_event_batches_total 0",
            "vigil_cp_policy_pushes_total 0",
            "vigil_cp_policy_rejected_total 0",
            "vigil_cp_policy_version 7",
            "vigil_cp_nodes_connected 0",
            "vigil_cp_auth_failures_total 0",
            "vigil_cp_watch_streams 0",
            "# TYPE vigil_cp_policy_version gauge",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }

    #[test]
    fn renders_labelled_families_escaped_and_bounded() {
        let m = Metrics::default();
        m.set_node_version("edge-a", "7");
        m.set_node_version("edge-\"b", "");
        let finding = |rule: &str| vigil_proto::v1::Finding {
            rule_id: rule.into(),
            category: "sqli".into(),
            severity: "critical".into(),
            ..Default::default()
        };
        m.count_findings(&[finding("sqli-union-select"), finding("sqli-union-select")]);
        for i in 0..MAX_RULE_SERIES + 5 {
            m.count_findings(&[finding(&format!("custom-{i}"))]);
        }
        m.alerts_firing[1].set(2);
        m.declare_receiver("team");
        m.count_notification("team", "sent");
        let text = m.render();
        for line in [
            "vigil_cp_node_policy_version{node=\"edge-a\"} 7",
            "vigil_cp_node_policy_version{node=\"edge-\\\"b\"} 0",
            "vigil_cp_findings_total{rule=\"sqli-union-select\",category=\"sqli\",severity=\"critical\"} 2",
            "vigil_cp_findings_total{rule=\"other\",category=\"\",severity=\"\"} 6",
            "vigil_cp_alerts_firing{severity=\"high\"} 2",
            "vigil_cp_alerts_firing{severity=\"low\"} 0",
            "vigil_cp_alert_notifications_total{receiver=\"team\",result=\"sent\"} 1",
            "vigil_cp_alert_notifications_total{receiver=\"team\",result=\"expired\"} 0",
            "vigil_cp_alert_outbox_pending 0",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert_eq!(
            text.matches("vigil_cp_findings_total{").count(),
            MAX_RULE_SERIES + 1
        );
        m.forget_node("edge-a");
        assert!(!m.render().contains("edge-a"));
    }
}
