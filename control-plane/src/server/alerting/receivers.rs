//! What each kind of receiver is sent: the request (URL, headers, JSON body) for one
//! notification, rendered at send time (so Alertmanager's `endsAt` is relative to the send).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::config::{Receiver, ReceiverKind};
use crate::timefmt::format_utc;

/// An alert as stored in an outbox row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AlertSnapshot {
    pub id: i64,
    pub incident: String,
    pub fingerprint: String,
    pub rule: String,
    pub key_kind: String,
    pub key: String,
    pub severity: String,
    pub level: String,
    pub count: u64,
    pub summary: String,
    pub first_seen_unix_ms: i64,
    pub last_seen_unix_ms: i64,
    pub resolved_unix_ms: Option<i64>,
    pub acked_by: Option<String>,
}

/// One notification: what an outbox row holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Notification {
    /// "firing" or "resolved".
    pub status: String,
    pub previous_severity: Option<String>,
    pub alert: AlertSnapshot,
}

pub struct Request {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Header carrying `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "x-vigil-signature";
/// Unix seconds of the send, part of the signed text (receivers reject old ones: replays).
pub const TIMESTAMP_HEADER: &str = "x-vigil-timestamp";
/// The outbox id: the same on every retry of one notification, so receivers can drop repeats.
pub const DELIVERY_HEADER: &str = "x-vigil-delivery";

pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn pagerduty_severity(severity: &str) -> &'static str {
    match severity {
        "critical" => "critical",
        "high" => "error",
        "medium" => "warning",
        _ => "info",
    }
}

fn text(n: &Notification) -> String {
    let a = &n.alert;
    match n.status.as_str() {
        "resolved" => format!(
            "[RESOLVED] {}: {} ({} events, {} to {}; alert {})",
            a.rule,
            a.summary,
            a.count,
            format_utc(a.first_seen_unix_ms, false),
            format_utc(a.resolved_unix_ms.unwrap_or(a.last_seen_unix_ms), false),
            a.id
        ),
        _ => format!(
            "[FIRING {}] {}: {} ({} events since {}; alert {})",
            a.severity.to_uppercase(),
            a.rule,
            a.summary,
            a.count,
            format_utc(a.first_seen_unix_ms, false),
            a.id
        ),
    }
}

/// The request for `n` to `receiver`, as sent at `now_ms`. `delivery` is the outbox id.
pub fn render(receiver: &Receiver, n: &Notification, delivery: i64, now_ms: i64) -> Request {
    let a = &n.alert;
    let firing = n.status != "resolved";
    let (url, body) = match receiver.kind {
        ReceiverKind::Webhook => (
            receiver.url.clone(),
            serde_json::json!({
                "version": "1",
                "delivery": delivery,
                "receiver": receiver.name,
                "status": n.status,
                "previous_severity": n.previous_severity,
                "text": text(n),
                "alert": a,
            }),
        ),
        ReceiverKind::Slack => (receiver.url.clone(), serde_json::json!({ "text": text(n) })),
        ReceiverKind::PagerDuty => {
            let routing_key = receiver.secret.clone().unwrap_or_default();
            let body = if firing {
                serde_json::json!({
                    "routing_key": routing_key,
                    "event_action": "trigger",
                    "dedup_key": a.incident,
                    "payload": {
                        "summary": text(n),
                        "source": "vigil",
                        "severity": pagerduty_severity(&a.severity),
                        "timestamp": format_utc(a.first_seen_unix_ms, true),
                        "component": a.key,
                        "group": a.key_kind,
                        "class": a.rule,
                        "custom_details": { "count": a.count, "level": a.level, "alert": a.id },
                    },
                })
            } else {
                serde_json::json!({
                    "routing_key": routing_key,
                    "event_action": "resolve",
                    "dedup_key": a.incident,
                })
            };
            (receiver.url.clone(), body)
        }
        ReceiverKind::Alertmanager => {
            let labels = |severity: &str| {
                serde_json::json!({
                    "alertname": a.rule,
                    "severity": severity,
                    "key_kind": a.key_kind,
                    "key": a.key,
                    "source": "vigil-control-plane",
                })
            };
            let annotations = serde_json::json!({
                "summary": a.summary,
                "description": text(n),
                "count": a.count.to_string(),
                "incident": a.incident,
            });
            // A firing alert must be refreshed before `endsAt`, or Alertmanager resolves it.
            let ends = if firing {
                now_ms + 3 * receiver.refresh_ms.unwrap_or(60_000)
            } else {
                a.resolved_unix_ms.unwrap_or(now_ms)
            };
            let mut alerts = vec![serde_json::json!({
                "labels": labels(&a.severity),
                "annotations": annotations,
                "startsAt": format_utc(a.first_seen_unix_ms, true),
                "endsAt": format_utc(ends, true),
            })];
            // Escalated: the alert under its old severity label ends now.
            if let Some(previous) = &n.previous_severity {
                alerts.push(serde_json::json!({
                    "labels": labels(previous),
                    "annotations": annotations,
                    "startsAt": format_utc(a.first_seen_unix_ms, true),
                    "endsAt": format_utc(now_ms, true),
                }));
            }
            (
                format!("{}/api/v2/alerts", receiver.url.trim_end_matches('/')),
                serde_json::Value::Array(alerts),
            )
        }
    };
    let body = body.to_string().into_bytes();
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        (DELIVERY_HEADER, delivery.to_string()),
    ];
    if receiver.kind == ReceiverKind::Webhook {
        if let Some(secret) = &receiver.secret {
            let ts = now_ms / 1000;
            headers.push((TIMESTAMP_HEADER, ts.to_string()));
            headers.push((SIGNATURE_HEADER, sign(secret, ts, &body)));
        }
    }
    Request { url, headers, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(status: &str) -> Notification {
        Notification {
            status: status.into(),
            previous_severity: Some("high".into()),
            alert: AlertSnapshot {
                id: 7,
                incident: "abcd-7".into(),
                fingerprint: "abcd".into(),
                rule: "sqli-ip".into(),
                key_kind: "client_ip".into(),
                key: "10.0.0.1".into(),
                severity: "critical".into(),
                level: "page".into(),
                count: 10_000,
                summary: "SQL injection from 10.0.0.1".into(),
                first_seen_unix_ms: 1_700_000_000_000,
                last_seen_unix_ms: 1_700_000_060_000,
                resolved_unix_ms: (status == "resolved").then_some(1_700_000_360_000),
                acked_by: None,
            },
        }
    }

    fn receiver(kind: ReceiverKind, secret: Option<&str>) -> Receiver {
        Receiver {
            name: "r".into(),
            kind,
            url: "http://127.0.0.1:9/hook".into(),
            min_severity: super::super::Severity::Low,
            secret: secret.map(str::to_owned),
            refresh_ms: Some(60_000),
            timeout_ms: 1000,
        }
    }

    fn json(r: &Request) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn webhook_is_signed_over_timestamp_and_body() {
        let now = 1_700_000_100_000;
        let r = render(
            &receiver(ReceiverKind::Webhook, Some("s3cret")),
            &notification("firing"),
            42,
            now,
        );
        let header = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header(DELIVERY_HEADER).as_deref(), Some("42"));
        assert_eq!(header(TIMESTAMP_HEADER).as_deref(), Some("1700000100"));
        let expected = sign("s3cret", 1_700_000_100, &r.body);
        assert_eq!(header(SIGNATURE_HEADER), Some(expected.clone()));
        // Known answer: HMAC-SHA256(key "key", "The quick brown fox jumps over the lazy dog").
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"The quick brown fox jumps over the lazy dog");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let body = json(&r);
        assert_eq!(body["status"], "firing");
        assert_eq!(body["alert"]["count"], 10_000);
        assert_eq!(body["alert"]["incident"], "abcd-7");
        let unsigned = render(
            &receiver(ReceiverKind::Webhook, None),
            &notification("firing"),
            1,
            now,
        );
        assert!(unsigned.headers.iter().all(|(k, _)| *k != SIGNATURE_HEADER));
    }

    #[test]
    fn pagerduty_triggers_and_resolves_one_incident() {
        let rcv = receiver(ReceiverKind::PagerDuty, Some("routing-key"));
        let trigger = json(&render(&rcv, &notification("firing"), 1, 0));
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["routing_key"], "routing-key");
        assert_eq!(trigger["dedup_key"], "abcd-7");
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(trigger["payload"]["source"], "vigil");
        let resolve = json(&render(&rcv, &notification("resolved"), 2, 0));
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(resolve["dedup_key"], "abcd-7");
    }

    #[test]
    fn alertmanager_gets_v2_alerts_with_an_end_time() {
        let now = 1_700_000_100_000;
        let rcv = receiver(ReceiverKind::Alertmanager, None);
        let firing = render(&rcv, &notification("firing"), 1, now);
        assert_eq!(firing.url, "http://127.0.0.1:9/hook/api/v2/alerts");
        let alerts = json(&firing);
        assert_eq!(alerts[0]["labels"]["alertname"], "sqli-ip");
        assert_eq!(alerts[0]["labels"]["severity"], "critical");
        assert_eq!(alerts[0]["endsAt"], format_utc(now + 180_000, true));
        // The escalated-from severity is ended.
        assert_eq!(alerts[1]["labels"]["severity"], "high");
        assert_eq!(alerts[1]["endsAt"], format_utc(now, true));
        let resolved = json(&render(&rcv, &notification("resolved"), 2, now));
        assert_eq!(resolved[0]["endsAt"], format_utc(1_700_000_360_000, true));
    }

    #[test]
    fn slack_gets_text() {
        let r = render(
            &receiver(ReceiverKind::Slack, None),
            &notification("firing"),
            1,
            0,
        );
        let text = json(&r)["text"].as_str().unwrap().to_owned();
        assert!(
            text.starts_with(
                "[FIRING CRITICAL] sqli-ip: SQL injection from 10.0.0.1 (10000 events"
            ),
            "{text}"
        );
    }
}
