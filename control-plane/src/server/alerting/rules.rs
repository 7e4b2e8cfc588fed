//! Alert rules: which events count (a matcher over the event and its findings), what they are
//! counted per (the key), and the thresholds within a window that log, notify and page.

use vigil_proto::v1::{Event, Finding};

use super::{parse_severity, Severity};

/// What events are counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    ClientIp,
    /// The id of each matching finding's rule.
    Rule,
    /// The request path without its query.
    Route,
    Node,
    /// One counter for everything the rule matches.
    All,
}

impl KeyKind {
    pub fn parse(text: &str) -> Option<KeyKind> {
        Some(match text {
            "client_ip" => KeyKind::ClientIp,
            "rule" => KeyKind::Rule,
            "route" => KeyKind::Route,
            "node" => KeyKind::Node,
            "all" => KeyKind::All,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::ClientIp => "client_ip",
            KeyKind::Rule => "rule",
            KeyKind::Route => "route",
            KeyKind::Node => "node",
            KeyKind::All => "all",
        }
    }
}

/// Conditions an event must meet; `None` matches anything. Finding conditions (category,
/// rule, severity) need one finding that meets all of them.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub category: Option<String>,
    pub rule_id: Option<String>,
    pub outcome: Option<String>,
    pub min_severity: Option<Severity>,
    pub node: Option<String>,
    pub path_prefix: Option<String>,
}

impl Matcher {
    fn finding_matches(&self, f: &Finding) -> bool {
        self.category.as_ref().is_none_or(|c| *c == f.category)
            && self.rule_id.as_ref().is_none_or(|r| *r == f.rule_id)
            && self
                .min_severity
                .is_none_or(|min| parse_severity(&f.severity).is_some_and(|s| s >= min))
    }

    fn event_matches(&self, e: &Event) -> bool {
        self.outcome.as_ref().is_none_or(|o| *o == e.outcome)
            && self.node.as_ref().is_none_or(|n| *n == e.node_id)
            && self
                .path_prefix
                .as_ref()
                .is_none_or(|p| route_of(&e.path).starts_with(p.as_str()))
    }

    /// The findings of `e` that match, or `None` if the event does not. An event without
    /// finding conditions matches as a whole (with all its findings).
    pub fn matching<'e>(&self, e: &'e Event) -> Option<Vec<&'e Finding>> {
        if !self.event_matches(e) {
            return None;
        }
        let found: Vec<&Finding> = e
            .findings
            .iter()
            .filter(|f| self.finding_matches(f))
            .collect();
        let needs_finding =
            self.category.is_some() || self.rule_id.is_some() || self.min_severity.is_some();
        if needs_finding && found.is_empty() {
            None
        } else {
            Some(found)
        }
    }
}

fn route_of(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

#[derive(Debug, Clone)]
pub struct AlertRule {
    pub name: String,
    /// Text of the alert; `{key}` and `{count}` are filled in.
    pub summary: String,
    pub matcher: Matcher,
    pub key: KeyKind,
    pub window_ms: i64,
    /// Events within the window that open an alert that is only logged: a first doubt.
    pub log_at: u32,
    /// ... that make it notify (at `severity`): a consistent issue.
    pub notify_at: u32,
    /// ... that make it page (critical): a known breach.
    pub page_at: Option<u32>,
    pub severity: Severity,
    /// Quiet time after which an alert resolves.
    pub resolve_after_ms: i64,
}

/// How far an alert has escalated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Log,
    Notify,
    Page,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Log => "log",
            Level::Notify => "notify",
            Level::Page => "page",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        Some(match text {
            "log" => Level::Log,
            "notify" => Level::Notify,
            "page" => Level::Page,
            _ => return None,
        })
    }
}

impl AlertRule {
    /// The keys `e` counts towards (empty: the rule does not match).
    pub fn keys(&self, e: &Event) -> Vec<String> {
        let Some(findings) = self.matcher.matching(e) else {
            return Vec::new();
        };
        let or_unknown = |s: &str| {
            if s.is_empty() {
                "unknown".to_owned()
            } else {
                s.to_owned()
            }
        };
        match self.key {
            KeyKind::ClientIp => vec![or_unknown(&e.client_ip)],
            KeyKind::Route => vec![or_unknown(route_of(&e.path))],
            KeyKind::Node => vec![or_unknown(&e.node_id)],
            KeyKind::All => vec!["all".to_owned()],
            KeyKind::Rule => {
                let mut ids: Vec<String> = if findings.is_empty() {
                    e.findings.iter().map(|f| f.rule_id.clone()).collect()
                } else {
                    findings.iter().map(|f| f.rule_id.clone()).collect()
                };
                ids.sort();
                ids.dedup();
                ids
            }
        }
    }

    /// The level `count` events within the window reach, if any.
    pub fn level_for(&self, count: usize) -> Option<Level> {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        if self.page_at.is_some_and(|p| count >= p) {
            Some(Level::Page)
        } else if count >= self.notify_at {
            Some(Level::Notify)
        } else if count >= self.log_at {
            Some(Level::Log)
        } else {
            None
        }
    }

    /// The severity an alert of this rule has at `level`.
    pub fn severity_at(&self, level: Level) -> Severity {
        match level {
            Level::Log => Severity::Low,
            Level::Notify => self.severity,
            Level::Page => Severity::Critical,
        }
    }

    /// The most events a window needs to hold to decide any level.
    pub fn window_capacity(&self) -> usize {
        self.page_at.unwrap_or(self.notify_at).max(self.log_at) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ip: &str, path: &str, findings: &[(&str, &str, &str)]) -> Event {
        Event {
            node_id: "edge-1".into(),
            client_ip: ip.into(),
            path: path.into(),
            outcome: "block".into(),
            findings: findings
                .iter()
                .map(|(rule, category, severity)| Finding {
                    rule_id: (*rule).into(),
                    category: (*category).into(),
                    severity: (*severity).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn rule(key: KeyKind, matcher: Matcher) -> AlertRule {
        AlertRule {
            name: "r".into(),
            summary: "r".into(),
            matcher,
            key,
            window_ms: 60_000,
            log_at: 1,
            notify_at: 5,
            page_at: Some(50),
            severity: Severity::High,
            resolve_after_ms: 60_000,
        }
    }

    #[test]
    fn keys_follow_the_matcher() {
        let e = event(
            "10.0.0.1",
            "/search?q=x",
            &[("sqli-a", "sqli", "critical"), ("xss-b", "xss", "medium")],
        );
        let sqli = Matcher {
            category: Some("sqli".into()),
            ..Default::default()
        };
        assert_eq!(rule(KeyKind::ClientIp, sqli.clone()).keys(&e), ["10.0.0.1"]);
        assert_eq!(rule(KeyKind::Rule, sqli).keys(&e), ["sqli-a"]);
        assert_eq!(
            rule(KeyKind::Route, Matcher::default()).keys(&e),
            ["/search"]
        );
        assert_eq!(
            rule(KeyKind::Rule, Matcher::default()).keys(&e),
            ["sqli-a", "xss-b"]
        );
        let severe = Matcher {
            min_severity: Some(Severity::High),
            category: Some("xss".into()),
            ..Default::default()
        };
        assert!(rule(KeyKind::All, severe).keys(&e).is_empty());
        let monitor_only = Matcher {
            outcome: Some("monitor".into()),
            ..Default::default()
        };
        assert!(rule(KeyKind::All, monitor_only).keys(&e).is_empty());
        let prefix = Matcher {
            path_prefix: Some("/search".into()),
            ..Default::default()
        };
        assert_eq!(rule(KeyKind::Node, prefix).keys(&e), ["edge-1"]);
    }

    #[test]
    fn levels_escalate_with_the_count() {
        let r = rule(KeyKind::All, Matcher::default());
        assert_eq!(r.level_for(0), None);
        assert_eq!(r.level_for(1), Some(Level::Log));
        assert_eq!(r.level_for(5), Some(Level::Notify));
        assert_eq!(r.level_for(50), Some(Level::Page));
        assert_eq!(r.severity_at(Level::Log), Severity::Low);
        assert_eq!(r.severity_at(Level::Notify), Severity::High);
        assert_eq!(r.severity_at(Level::Page), Severity::Critical);
        assert_eq!(r.window_capacity(), 50);
    }
}
