//! `[alerting]` in `vigil.toml`: alert rules over ingested events, receivers, delivery timing.
//! Parsed here into checked values (durations in ms, secrets read from files).

use std::path::Path;

use serde::Deserialize;

use super::rules::{AlertRule, KeyKind, Matcher};
use super::Severity;

#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct AlertingConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> AlertingConfigError {
    AlertingConfigError {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerting {
    tick: Option<String>,
    retry_initial: Option<String>,
    retry_max: Option<String>,
    outbox_max_age: Option<String>,
    outbox_max_rows: Option<u64>,
    max_tracked_keys: Option<usize>,
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default)]
    receiver: Vec<RawReceiver>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    category: Option<String>,
    rule: Option<String>,
    outcome: Option<String>,
    min_severity: Option<String>,
    node: Option<String>,
    path_prefix: Option<String>,
    #[serde(default = "default_key")]
    key: String,
    window: String,
    log_at: Option<u32>,
    notify_at: u32,
    page_at: Option<u32>,
    severity: Option<String>,
    resolve_after: Option<String>,
    summary: Option<String>,
}

fn default_key() -> String {
    "client_ip".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    name: String,
    kind: String,
    url: Option<String>,
    min_severity: Option<String>,
    secret: Option<String>,
    secret_file: Option<std::path::PathBuf>,
    routing_key: Option<String>,
    routing_key_file: Option<std::path::PathBuf>,
    refresh: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverKind {
    /// Generic JSON, signed with HMAC-SHA256 when a secret is set.
    Webhook,
    /// A Slack-compatible incoming webhook (`{"text": ...}`).
    Slack,
    /// PagerDuty Events API v2.
    PagerDuty,
    /// Alertmanager API v2 (`POST /api/v2/alerts`).
    Alertmanager,
}

#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
    /// For Alertmanager, its base URL (`/api/v2/alerts` is appended).
    pub url: String,
    pub min_severity: Severity,
    /// Webhook: HMAC-SHA256 key. PagerDuty: the routing key.
    pub secret: Option<String>,
    /// Re-post firing alerts this often (Alertmanager forgets alerts that are not refreshed).
    pub refresh_ms: Option<i64>,
    pub timeout_ms: i64,
}

#[derive(Debug, Clone)]
pub struct AlertingConfig {
    pub rules: Vec<AlertRule>,
    pub receivers: Vec<Receiver>,
    pub tick_ms: i64,
    pub retry_initial_ms: i64,
    pub retry_max_ms: i64,
    /// Undelivered notifications older than this are given up (logged and counted).
    pub outbox_max_age_ms: i64,
    /// At most this many undelivered notifications are kept; the oldest are given up.
    pub outbox_max_rows: u64,
    pub max_tracked_keys: usize,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            rules: Vec::new(),
            receivers: Vec::new(),
            tick_ms: 1_000,
            retry_initial_ms: 1_000,
            retry_max_ms: 300_000,
            outbox_max_age_ms: 86_400_000,
            outbox_max_rows: 100_000,
            max_tracked_keys: 100_000,
        }
    }
}

fn duration(key: &str, text: &str) -> Result<i64, AlertingConfigError> {
    match crate::timefmt::parse_duration_ms(text.trim()) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(invalid(
            key,
            format!("`{text}` is not a duration (e.g. 500ms, 30s, 5m, 1h)"),
        )),
    }
}

fn severity(key: &str, text: &str) -> Result<Severity, AlertingConfigError> {
    super::parse_severity(text).ok_or_else(|| {
        invalid(
            key,
            format!("`{text}` is not a severity (critical, high, medium, low)"),
        )
    })
}

fn read_secret(
    key: &str,
    inline: Option<String>,
    file: Option<std::path::PathBuf>,
    base: &Path,
) -> Result<Option<String>, AlertingConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(key, "give the value or a file, not both")),
        (Some(s), None) => Ok(Some(s.trim().to_owned())),
        (None, Some(path)) => {
            let path = if path.is_absolute() {
                path
            } else {
                base.join(path)
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
            Ok(Some(text.trim().to_owned()))
        }
        (None, None) => Ok(None),
    }
    .and_then(|s| match s {
        Some(s) if s.is_empty() => Err(invalid(key, "is empty")),
        other => Ok(other),
    })
}

/// Checks `[alerting]`; secrets files are relative to `base`.
pub fn parse(raw: RawAlerting, base: &Path) -> Result<AlertingConfig, AlertingConfigError> {
    let defaults = AlertingConfig::default();
    let opt = |key: &str, v: &Option<String>, d: i64| match v {
        Some(t) => duration(key, t),
        None => Ok(d),
    };
    let mut cfg = AlertingConfig {
        tick_ms: opt("alerting.tick", &raw.tick, defaults.tick_ms)?,
        retry_initial_ms: opt(
            "alerting.retry_initial",
            &raw.retry_initial,
            defaults.retry_initial_ms,
        )?,
        retry_max_ms: opt("alerting.retry_max", &raw.retry_max, defaults.retry_max_ms)?,
        outbox_max_age_ms: opt(
            "alerting.outbox_max_age",
            &raw.outbox_max_age,
            defaults.outbox_max_age_ms,
        )?,
        outbox_max_rows: raw.outbox_max_rows.unwrap_or(defaults.outbox_max_rows),
        max_tracked_keys: raw.max_tracked_keys.unwrap_or(defaults.max_tracked_keys),
        ..defaults
    };
    if cfg.retry_max_ms < cfg.retry_initial_ms {
        return Err(invalid(
            "alerting.retry_max",
            "is shorter than alerting.retry_initial",
        ));
    }
    for (i, r) in raw.rule.into_iter().enumerate() {
        let key = |field: &str| format!("alerting.rule[{i}].{field}");
        if r.name.trim().is_empty() {
            return Err(invalid(key("name"), "is empty"));
        }
        if cfg.rules.iter().any(|x| x.name == r.name) {
            return Err(invalid(key("name"), format!("`{}` is used twice", r.name)));
        }
        let key_kind = KeyKind::parse(&r.key).ok_or_else(|| {
            invalid(
                key("key"),
                format!(
                    "`{}` is not one of client_ip, rule, route, node, all",
                    r.key
                ),
            )
        })?;
        if let Some(o) = &r.outcome {
            if o != "block" && o != "monitor" {
                return Err(invalid(key("outcome"), "must be `block` or `monitor`"));
            }
        }
        let log_at = r.log_at.unwrap_or(1);
        if log_at == 0 || r.notify_at < log_at || r.page_at.is_some_and(|p| p < r.notify_at) {
            return Err(invalid(
                key("notify_at"),
                "thresholds must satisfy 1 <= log_at <= notify_at <= page_at",
            ));
        }
        let matcher = Matcher {
            category: r.category,
            rule_id: r.rule,
            outcome: r.outcome,
            min_severity: match &r.min_severity {
                Some(s) => Some(severity(&key("min_severity"), s)?),
                None => None,
            },
            node: r.node,
            path_prefix: r.path_prefix,
        };
        cfg.rules.push(AlertRule {
            summary: r.summary.unwrap_or_else(|| r.name.clone()),
            name: r.name,
            matcher,
            key: key_kind,
            window_ms: duration(&key("window"), &r.window)?,
            log_at,
            notify_at: r.notify_at,
            page_at: r.page_at,
            severity: match &r.severity {
                Some(s) => severity(&key("severity"), s)?,
                None => Severity::High,
            },
            resolve_after_ms: match &r.resolve_after {
                Some(t) => duration(&key("resolve_after"), t)?,
                None => 300_000,
            },
        });
    }
    for (i, r) in raw.receiver.into_iter().enumerate() {
        let key = |field: &str| format!("alerting.receiver[{i}].{field}");
        if r.name.trim().is_empty() || r.name.contains(char::is_whitespace) {
            return Err(invalid(key("name"), "must be a word"));
        }
        if cfg.receivers.iter().any(|x| x.name == r.name) {
            return Err(invalid(key("name"), format!("`{}` is used twice", r.name)));
        }
        let kind = match r.kind.as_str() {
            "webhook" => ReceiverKind::Webhook,
            "slack" => ReceiverKind::Slack,
            "pagerduty" => ReceiverKind::PagerDuty,
            "alertmanager" => ReceiverKind::Alertmanager,
            other => {
                return Err(invalid(
                    key("kind"),
                    format!("`{other}` is not one of webhook, slack, pagerduty, alertmanager"),
                ))
            }
        };
        let url = match (kind, r.url) {
            (_, Some(u)) => u,
            (ReceiverKind::PagerDuty, None) => "https://events.pagerduty.com/v2/enqueue".into(),
            (_, None) => return Err(invalid(key("url"), "is required")),
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                key("url"),
                format!("`{url}` is not an http(s) URL"),
            ));
        }
        let secret = match kind {
            ReceiverKind::PagerDuty => {
                let s = read_secret(&key("routing_key"), r.routing_key, r.routing_key_file, base)?;
                if s.is_none() {
                    return Err(invalid(key("routing_key"), "is required for pagerduty"));
                }
                s
            }
            _ => read_secret(&key("secret"), r.secret, r.secret_file, base)?,
        };
        let default_min = match kind {
            ReceiverKind::PagerDuty => Severity::Critical,
            _ => Severity::Medium,
        };
        cfg.receivers.push(Receiver {
            name: r.name,
            kind,
            url,
            min_severity: match &r.min_severity {
                Some(s) => severity(&key("min_severity"), s)?,
                None => default_min,
            },
            secret,
            refresh_ms: match (&r.refresh, kind) {
                (Some(t), _) => Some(duration(&key("refresh"), t)?),
                (None, ReceiverKind::Alertmanager) => Some(60_000),
                (None, _) => None,
            },
            timeout_ms: match &r.timeout {
                Some(t) => duration(&key("timeout"), t)?,
                None => 10_000,
            },
        });
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<AlertingConfig, AlertingConfigError> {
        #[derive(Deserialize)]
        struct Wrap {
            alerting: RawAlerting,
        }
        let w: Wrap = toml::from_str(text).map_err(|e| invalid("toml", e.to_string()))?;
        parse(w.alerting, Path::new("/nonexistent"))
    }

    #[test]
    fn parses_rules_and_receivers() {
        let cfg = load(
            r#"
[alerting]
tick = "200ms"
retry_max = "30s"
[[alerting.rule]]
name = "sqli"
category = "sqli"
window = "1m"
notify_at = 20
page_at = 100
[[alerting.receiver]]
name = "pd"
kind = "pagerduty"
routing_key = "abc"
[[alerting.receiver]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:9093"
"#,
        )
        .unwrap();
        assert_eq!(cfg.tick_ms, 200);
        assert_eq!(cfg.retry_max_ms, 30_000);
        let rule = &cfg.rules[0];
        assert_eq!(
            (rule.log_at, rule.notify_at, rule.page_at),
            (1, 20, Some(100))
        );
        assert_eq!(rule.key, KeyKind::ClientIp);
        assert_eq!(rule.window_ms, 60_000);
        assert_eq!(rule.severity, Severity::High);
        let pd = &cfg.receivers[0];
        assert_eq!(pd.url, "https://events.pagerduty.com/v2/enqueue");
        assert_eq!(pd.min_severity, Severity::Critical);
        assert_eq!(pd.secret.as_deref(), Some("abc"));
        assert_eq!(cfg.receivers[1].refresh_ms, Some(60_000));
    }

    #[test]
    fn refuses_bad_values_naming_the_key() {
        let cases = [
            ("[[alerting.rule]]\nname = \"a\"\nwindow = \"soon\"\nnotify_at = 1\n", "alerting.rule[0].window"),
            ("[[alerting.rule]]\nname = \"a\"\nwindow = \"1m\"\nnotify_at = 5\npage_at = 2\n", "alerting.rule[0].notify_at"),
            ("[[alerting.rule]]\nname = \"a\"\nwindow = \"1m\"\nnotify_at = 5\nkey = \"user\"\n", "alerting.rule[0].key"),
            ("[[alerting.rule]]\nname = \"a\"\nwindow = \"1m\"\nnotify_at = 5\nseverity = \"urgent\"\n", "alerting.rule[0].severity"),
            ("[[alerting.receiver]]\nname = \"x\"\nkind = \"email\"\nurl = \"http://a\"\n", "alerting.receiver[0].kind"),
            ("[[alerting.receiver]]\nname = \"x\"\nkind = \"pagerduty\"\n", "alerting.receiver[0].routing_key"),
            ("[[alerting.receiver]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"ftp://a\"\n", "alerting.receiver[0].url"),
            ("[[alerting.receiver]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://a\"\nsecret_file = \"missing\"\n", "cannot read"),
        ];
        for (body, expected) in cases {
            let err = load(&format!("[alerting]\n{body}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }
}
