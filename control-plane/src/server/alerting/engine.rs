//! The alert engine: counts matching events per rule and key in sliding windows, opens one
//! alert per (rule, key) incident, escalates it (log → notify → page), counts every further
//! event into it, and resolves it when quiet. It decides which receiver gets which
//! notification, once per incident and severity. Pure: no I/O, and time is always passed in.

use std::collections::{BTreeMap, HashMap, VecDeque};

use sha2::{Digest, Sha256};
use vigil_proto::v1::Event;

use super::rules::{AlertRule, KeyKind, Level};
use super::Severity;

/// Where notifications may go: a receiver's name and what it takes.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub min_severity: Severity,
    /// Re-send a firing alert this often (Alertmanager forgets alerts that are not refreshed).
    pub refresh_ms: Option<i64>,
}

/// The last notification a receiver got for an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub severity: Severity,
    pub at_ms: i64,
}

/// One incident: a rule's threshold crossed for one key, until it has been quiet for the
/// rule's `resolve_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Unique per incident.
    pub id: i64,
    /// Same for every incident of the same rule and key.
    pub fingerprint: String,
    pub rule: String,
    pub key_kind: KeyKind,
    pub key: String,
    pub level: Level,
    pub severity: Severity,
    /// Matching events since the incident began (including those that opened it).
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub resolved_ms: Option<i64>,
    pub acked_by: Option<String>,
    pub acked_ms: Option<i64>,
    pub summary: String,
    /// Receiver name → what it got last.
    pub sent: BTreeMap<String, Sent>,
}

impl Alert {
    pub fn is_firing(&self) -> bool {
        self.resolved_ms.is_none()
    }

    /// Identifies the incident to receivers (PagerDuty's dedup key, the webhook's alert id).
    pub fn incident_key(&self) -> String {
        format!("{}-{}", self.fingerprint, self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub receiver: String,
    pub status: Status,
    pub alert: Alert,
    /// Set when the alert escalated since this receiver's last notification.
    pub previous_severity: Option<Severity>,
}

/// What happened to an alert, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    Escalated,
    Resolved,
    Acked,
}

/// A silence: matching alerts notify nobody until it ends (they are still tracked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: i64,
    /// `None`: any rule.
    pub rule: Option<String>,
    /// `None`: any key.
    pub key: Option<String>,
    pub until_ms: i64,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    pub fn covers(&self, alert: &Alert, now_ms: i64) -> bool {
        now_ms < self.until_ms
            && self.rule.as_ref().is_none_or(|r| *r == alert.rule)
            && self.key.as_ref().is_none_or(|k| *k == alert.key)
    }
}

/// The result of one step: alerts to persist (with what happened to them) and notifications
/// to enqueue, in order.
#[derive(Debug, Default)]
pub struct Changes {
    pub alerts: Vec<(Alert, Option<Transition>)>,
    pub deliveries: Vec<Delivery>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.deliveries.is_empty()
    }
}

pub fn fingerprint(rule: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{rule}\0{key}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub struct Engine {
    rules: Vec<AlertRule>,
    routes: Vec<Route>,
    /// Event times within the window, oldest first, per (rule index, key).
    windows: HashMap<(usize, String), VecDeque<i64>>,
    /// Firing alerts by fingerprint.
    active: HashMap<String, Alert>,
    silences: Vec<Silence>,
    next_id: i64,
    max_tracked_keys: usize,
    /// Keys not tracked because `max_tracked_keys` windows were open.
    pub untracked: u64,
}

impl Engine {
    pub fn new(rules: Vec<AlertRule>, routes: Vec<Route>, max_tracked_keys: usize) -> Engine {
        Engine {
            rules,
            routes,
            windows: HashMap::new(),
            active: HashMap::new(),
            silences: Vec::new(),
            next_id: 1,
            max_tracked_keys,
            untracked: 0,
        }
    }

    /// Continues from stored state: firing alerts (so an incident stays one alert across a
    /// restart), silences, and the next incident id.
    pub fn restore(&mut self, firing: Vec<Alert>, silences: Vec<Silence>, next_id: i64) {
        for alert in firing {
            self.next_id = self.next_id.max(alert.id + 1);
            self.active.insert(alert.fingerprint.clone(), alert);
        }
        self.silences = silences;
        self.next_id = self.next_id.max(next_id);
    }

    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    #[cfg(test)]
    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }

    pub fn is_silenced(&self, alert: &Alert, now_ms: i64) -> bool {
        self.silences.iter().any(|s| s.covers(alert, now_ms))
    }

    /// Counts newly stored events. An event's time is its own, but never later than `now_ms`.
    pub fn observe(&mut self, events: &[Event], now_ms: i64) -> Changes {
        let mut touched: Vec<(String, Option<Transition>)> = Vec::new();
        for e in events {
            let t = if e.unix_ms > 0 {
                e.unix_ms.min(now_ms)
            } else {
                now_ms
            };
            for ri in 0..self.rules.len() {
                for key in self.rules[ri].keys(e) {
                    if let Some(change) = self.count(ri, key, t, now_ms) {
                        touch(&mut touched, change);
                    }
                }
            }
        }
        let mut changes = Changes::default();
        for (fp, transition) in touched {
            self.reconcile(&fp, now_ms, &mut changes);
            if let Some(alert) = self.active.get(&fp) {
                changes.alerts.push((alert.clone(), transition));
            }
        }
        changes
    }

    /// One matching event at `t` for `key` of rule `ri`: returns the fingerprint of the alert
    /// it opened, escalated or counted into.
    fn count(
        &mut self,
        ri: usize,
        key: String,
        t: i64,
        now_ms: i64,
    ) -> Option<(String, Option<Transition>)> {
        let fp = fingerprint(&self.rules[ri].name, &key);
        let slot = (ri, key);
        if !self.windows.contains_key(&slot) && self.windows.len() >= self.max_tracked_keys {
            self.prune_windows(now_ms);
        }
        let rule = &self.rules[ri];
        let in_window =
            if self.windows.contains_key(&slot) || self.windows.len() < self.max_tracked_keys {
                let window = self.windows.entry(slot.clone()).or_default();
                // Events may arrive out of order (a resent batch): keep the times sorted.
                let at = window.partition_point(|&x| x <= t);
                window.insert(at, t);
                while window
                    .front()
                    .is_some_and(|&x| x <= now_ms - rule.window_ms)
                {
                    window.pop_front();
                }
                while window.len() > rule.window_capacity() {
                    window.pop_front();
                }
                Some((window.len(), window.front().copied().unwrap_or(t)))
            } else {
                self.untracked += 1;
                None
            };
        if let Some(alert) = self.active.get_mut(&fp) {
            alert.count += 1;
            alert.last_seen_ms = alert.last_seen_ms.max(t);
            let level = in_window.and_then(|(n, _)| rule.level_for(n));
            if let Some(level) = level.filter(|l| *l > alert.level) {
                alert.level = level;
                alert.severity = alert.severity.max(rule.severity_at(level));
                return Some((fp, Some(Transition::Escalated)));
            }
            return Some((fp, None));
        }
        let (n, first) = in_window?;
        let level = rule.level_for(n)?;
        let id = self.next_id;
        self.next_id += 1;
        let alert = Alert {
            id,
            fingerprint: fp.clone(),
            rule: rule.name.clone(),
            key_kind: rule.key,
            key: slot.1.clone(),
            level,
            severity: rule.severity_at(level),
            count: n as u64,
            first_seen_ms: first,
            last_seen_ms: t,
            resolved_ms: None,
            acked_by: None,
            acked_ms: None,
            summary: rule.summary.replace("{key}", &slot.1),
            sent: BTreeMap::new(),
        };
        self.active.insert(fp.clone(), alert);
        Some((fp, Some(Transition::Opened)))
    }

    fn prune_windows(&mut self, now_ms: i64) {
        let rules = &self.rules;
        self.windows.retain(|(ri, _), w| {
            let window_ms = rules.get(*ri).map(|r| r.window_ms).unwrap_or(0);
            w.back().is_some_and(|&last| last > now_ms - window_ms)
        });
    }

    /// Decides the notifications `fp`'s alert needs now: a first one for each receiver whose
    /// minimum severity it meets, another when it escalated, and refreshes.
    fn reconcile(&mut self, fp: &str, now_ms: i64, changes: &mut Changes) {
        let Some(alert) = self.active.get(fp) else {
            return;
        };
        let quiet = self.is_silenced(alert, now_ms) || alert.acked_by.is_some();
        let mut out = Vec::new();
        for route in &self.routes {
            if alert.severity < route.min_severity {
                continue;
            }
            let last = alert.sent.get(&route.name).copied();
            let previous_severity = match last {
                None if !quiet => None,
                Some(s) if s.severity < alert.severity && !quiet => Some(s.severity),
                // Refreshing keeps the receiver's view current; it is not a new notification.
                Some(s) if route.refresh_ms.is_some_and(|r| now_ms - s.at_ms >= r) => None,
                _ => continue,
            };
            out.push((route.name.clone(), previous_severity));
        }
        let Some(alert) = self.active.get_mut(fp) else {
            return;
        };
        for (receiver, previous_severity) in out {
            alert.sent.insert(
                receiver.clone(),
                Sent {
                    severity: alert.severity,
                    at_ms: now_ms,
                },
            );
            changes.deliveries.push(Delivery {
                receiver,
                status: Status::Firing,
                alert: alert.clone(),
                previous_severity,
            });
        }
    }

    /// Resolves alerts that have been quiet long enough, sends refreshes and notifications
    /// held back by silences that ended, forgets expired windows and silences.
    pub fn tick(&mut self, now_ms: i64) -> Changes {
        let mut changes = Changes::default();
        self.prune_windows(now_ms);
        self.silences.retain(|s| s.until_ms > now_ms);
        let mut fps: Vec<String> = self.active.keys().cloned().collect();
        fps.sort();
        for fp in fps {
            let Some(alert) = self.active.get(&fp) else {
                continue;
            };
            let resolve_after = self
                .rules
                .iter()
                .find(|r| r.name == alert.rule)
                .map(|r| r.resolve_after_ms)
                .unwrap_or(300_000);
            if now_ms - alert.last_seen_ms < resolve_after {
                let before = changes.deliveries.len();
                self.reconcile(&fp, now_ms, &mut changes);
                if changes.deliveries.len() > before {
                    if let Some(a) = self.active.get(&fp) {
                        changes.alerts.push((a.clone(), None));
                    }
                }
                continue;
            }
            let Some(mut alert) = self.active.remove(&fp) else {
                continue;
            };
            alert.resolved_ms = Some(now_ms);
            for receiver in alert.sent.keys() {
                changes.deliveries.push(Delivery {
                    receiver: receiver.clone(),
                    status: Status::Resolved,
                    alert: alert.clone(),
                    previous_severity: None,
                });
            }
            changes.alerts.push((alert, Some(Transition::Resolved)));
        }
        changes
    }

    /// Acknowledges a firing alert (by id or fingerprint): it stops escalating to receivers;
    /// it still resolves (and says so) as usual.
    pub fn ack(&mut self, target: &str, by: &str, now_ms: i64) -> Option<Alert> {
        let id: Option<i64> = target.parse().ok();
        let alert = self
            .active
            .values_mut()
            .find(|a| a.fingerprint == target || Some(a.id) == id)?;
        if alert.acked_by.is_none() {
            alert.acked_by = Some(by.to_owned());
            alert.acked_ms = Some(now_ms);
        }
        Some(alert.clone())
    }

    pub fn add_silence(&mut self, silence: Silence) {
        self.silences.push(silence);
    }
}

fn touch(list: &mut Vec<(String, Option<Transition>)>, (fp, t): (String, Option<Transition>)) {
    match list.iter_mut().find(|(f, _)| *f == fp) {
        // Opened beats Escalated beats a plain count.
        Some((_, existing)) => {
            if existing.is_none() || (t == Some(Transition::Opened)) {
                *existing = t.or(*existing);
            }
        }
        None => list.push((fp, t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::alerting::rules::Matcher;
    use vigil_proto::v1::Finding;

    const SEC: i64 = 1_000;

    fn rule() -> AlertRule {
        AlertRule {
            name: "sqli-ip".into(),
            summary: "SQL injection from {key}".into(),
            matcher: Matcher {
                category: Some("sqli".into()),
                ..Default::default()
            },
            key: KeyKind::ClientIp,
            window_ms: 60 * SEC,
            log_at: 1,
            notify_at: 10,
            page_at: Some(1000),
            severity: Severity::High,
            resolve_after_ms: 120 * SEC,
        }
    }

    fn routes() -> Vec<Route> {
        vec![
            Route {
                name: "team".into(),
                min_severity: Severity::Medium,
                refresh_ms: None,
            },
            Route {
                name: "pager".into(),
                min_severity: Severity::Critical,
                refresh_ms: None,
            },
            Route {
                name: "am".into(),
                min_severity: Severity::Medium,
                refresh_ms: Some(60 * SEC),
            },
        ]
    }

    fn sqli(ip: &str, t: i64) -> Event {
        Event {
            client_ip: ip.into(),
            unix_ms: t,
            outcome: "block".into(),
            findings: vec![Finding {
                rule_id: "sqli-union-select".into(),
                category: "sqli".into(),
                severity: "critical".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn sent_to(changes: &Changes) -> Vec<(String, Status, Severity)> {
        changes
            .deliveries
            .iter()
            .map(|d| (d.receiver.clone(), d.status, d.alert.severity))
            .collect()
    }

    #[test]
    fn a_first_doubt_is_logged_then_notifies_then_pages() {
        let mut engine = Engine::new(vec![rule()], routes(), 1000);
        let t0 = 1_000_000;
        let first = engine.observe(&[sqli("10.0.0.1", t0)], t0);
        assert!(first.deliveries.is_empty(), "a first doubt notifies nobody");
        assert_eq!(first.alerts.len(), 1);
        let (alert, transition) = &first.alerts[0];
        assert_eq!(*transition, Some(Transition::Opened));
        assert_eq!((alert.level, alert.severity), (Level::Log, Severity::Low));
        assert_eq!(alert.summary, "SQL injection from 10.0.0.1");

        let more: Vec<Event> = (1..10).map(|i| sqli("10.0.0.1", t0 + i)).collect();
        let notify = engine.observe(&more, t0 + 10);
        assert_eq!(
            sent_to(&notify),
            [
                ("team".into(), Status::Firing, Severity::High),
                ("am".into(), Status::Firing, Severity::High)
            ]
        );
        assert_eq!(notify.alerts[0].1, Some(Transition::Escalated));
        assert_eq!(notify.alerts[0].0.count, 10);

        let breach: Vec<Event> = (10..1000).map(|i| sqli("10.0.0.1", t0 + i)).collect();
        let page = engine.observe(&breach, t0 + 1000);
        assert_eq!(
            sent_to(&page),
            [
                ("team".into(), Status::Firing, Severity::Critical),
                ("pager".into(), Status::Firing, Severity::Critical),
                ("am".into(), Status::Firing, Severity::Critical)
            ]
        );
        assert_eq!(page.deliveries[0].previous_severity, Some(Severity::High));
        assert_eq!(page.deliveries[1].previous_severity, None);
    }

    #[test]
    fn ten_thousand_requests_are_one_alert_with_a_count_resolved_when_quiet() {
        let mut engine = Engine::new(vec![rule()], routes(), 1000);
        let t0 = 5_000_000;
        let mut deliveries = Vec::new();
        let mut alert_ids = std::collections::BTreeSet::new();
        // 10,000 events over 100 s in batches of 100, ticking between batches.
        for batch in 0..100 {
            let now = t0 + batch * SEC;
            let events: Vec<Event> = (0..100).map(|_| sqli("203.0.113.9", now)).collect();
            let changes = engine.observe(&events, now);
            alert_ids.extend(changes.alerts.iter().map(|(a, _)| a.id));
            deliveries.extend(changes.deliveries);
            deliveries.extend(engine.tick(now).deliveries);
        }
        assert_eq!(alert_ids.len(), 1, "one incident");
        let team: Vec<_> = deliveries.iter().filter(|d| d.receiver == "team").collect();
        // Firing (high at 10 events), then critical at 1,000 within the minute.
        assert_eq!(team.len(), 2, "{team:?}");
        let last_event = t0 + 99 * SEC;
        assert!(engine
            .tick(last_event + 119 * SEC)
            .deliveries
            .iter()
            .all(|d| d.receiver == "am"));
        let resolved = engine.tick(last_event + 120 * SEC);
        let (alert, transition) = &resolved.alerts[0];
        assert_eq!(*transition, Some(Transition::Resolved));
        assert_eq!(alert.count, 10_000);
        assert_eq!(alert.resolved_ms, Some(last_event + 120 * SEC));
        assert_eq!(
            sent_to(&resolved),
            [
                ("am".into(), Status::Resolved, Severity::Critical),
                ("pager".into(), Status::Resolved, Severity::Critical),
                ("team".into(), Status::Resolved, Severity::Critical)
            ]
        );
        assert_eq!(engine.firing().count(), 0);
        // A new attack later is a new incident with the same fingerprint.
        let later = last_event + 1000 * SEC;
        let again = engine.observe(&[sqli("203.0.113.9", later)], later);
        assert_eq!(again.alerts[0].0.fingerprint, alert.fingerprint);
        assert_ne!(again.alerts[0].0.id, alert.id);
    }

    #[test]
    fn keys_are_separate_and_windows_slide() {
        let mut engine = Engine::new(vec![rule()], routes(), 1000);
        let t0 = 1_000_000;
        // 9 events per IP: both stay at the log level.
        let mut events = Vec::new();
        for i in 0..9 {
            events.push(sqli("10.0.0.1", t0 + i));
            events.push(sqli("10.0.0.2", t0 + i));
        }
        let changes = engine.observe(&events, t0 + 9);
        assert!(changes.deliveries.is_empty());
        assert_eq!(engine.firing().count(), 2);
        // The 10th event comes after the window: 1 in the window, no escalation.
        let late = t0 + 61 * SEC;
        assert!(engine
            .observe(&[sqli("10.0.0.1", late)], late)
            .deliveries
            .is_empty());
        // Other categories do not count.
        let mut xss = sqli("10.0.0.3", late);
        xss.findings[0].category = "xss".into();
        assert!(engine.observe(&[xss], late).alerts.is_empty());
    }

    #[test]
    fn silences_and_acks_hold_notifications_back() {
        let mut engine = Engine::new(vec![rule()], routes(), 1000);
        let t0 = 1_000_000;
        engine.add_silence(Silence {
            id: 1,
            rule: Some("sqli-ip".into()),
            key: Some("10.0.0.1".into()),
            until_ms: t0 + 30 * SEC,
            created_by: "admin".into(),
            comment: "pen test".into(),
        });
        let burst: Vec<Event> = (0..10).map(|i| sqli("10.0.0.1", t0 + i)).collect();
        assert!(engine.observe(&burst, t0 + 10).deliveries.is_empty());
        let other: Vec<Event> = (0..10).map(|i| sqli("10.0.0.2", t0 + i)).collect();
        assert_eq!(engine.observe(&other, t0 + 10).deliveries.len(), 2);
        // When the silence ends the still-firing alert notifies.
        let after = engine.tick(t0 + 31 * SEC);
        assert_eq!(
            sent_to(&after),
            [
                ("team".into(), Status::Firing, Severity::High),
                ("am".into(), Status::Firing, Severity::High)
            ]
        );
        assert!(engine.silences().is_empty());

        // Acknowledged: no escalation notices, but resolution still goes out.
        let id = engine
            .firing()
            .find(|a| a.key == "10.0.0.2")
            .map(|a| a.id)
            .unwrap();
        let acked = engine.ack(&id.to_string(), "admin", t0 + 32 * SEC).unwrap();
        assert_eq!(acked.acked_by.as_deref(), Some("admin"));
        let breach: Vec<Event> = (0..1000)
            .map(|i| sqli("10.0.0.2", t0 + 33 * SEC + i))
            .collect();
        let page = engine.observe(&breach, t0 + 34 * SEC);
        assert!(page.deliveries.is_empty(), "{:?}", sent_to(&page));
        assert_eq!(page.alerts[0].0.severity, Severity::Critical);
        let resolved = engine.tick(t0 + 34 * SEC + 120 * SEC);
        assert!(resolved.deliveries.iter().any(|d| d.alert.key == "10.0.0.2"
            && d.status == Status::Resolved
            && d.receiver == "team"));
        assert!(engine.ack("nope", "admin", 0).is_none());
    }

    #[test]
    fn refreshes_and_restores() {
        let mut engine = Engine::new(vec![rule()], routes(), 1000);
        let t0 = 1_000_000;
        let burst: Vec<Event> = (0..10).map(|i| sqli("10.0.0.1", t0 + i)).collect();
        engine.observe(&burst, t0);
        assert!(engine.tick(t0 + 59 * SEC).deliveries.is_empty());
        // The refresh interval passes: only `am` (refresh 60 s) hears again, once.
        assert_eq!(
            sent_to(&engine.tick(t0 + 60 * SEC)),
            [("am".into(), Status::Firing, Severity::High)]
        );
        assert!(engine.tick(t0 + 61 * SEC).deliveries.is_empty());
        engine.observe(&[sqli("10.0.0.1", t0 + 61 * SEC)], t0 + 61 * SEC);

        // After a restart, the stored firing alert keeps counting: no second incident.
        let firing: Vec<Alert> = engine.firing().cloned().collect();
        let mut restarted = Engine::new(vec![rule()], routes(), 1000);
        restarted.restore(firing.clone(), Vec::new(), 1);
        let more = restarted.observe(&[sqli("10.0.0.1", t0 + 62 * SEC)], t0 + 62 * SEC);
        assert!(more.deliveries.is_empty());
        assert_eq!(more.alerts[0].0.id, firing[0].id);
        assert_eq!(more.alerts[0].0.count, 12);
        let next = restarted.observe(&[sqli("10.9.9.9", t0 + 62 * SEC)], t0 + 62 * SEC);
        assert!(next.alerts[0].0.id > firing[0].id);
    }

    #[test]
    fn tracked_keys_are_bounded() {
        let mut engine = Engine::new(vec![rule()], routes(), 3);
        let t0 = 1_000_000;
        let events: Vec<Event> = (0..5).map(|i| sqli(&format!("10.0.0.{i}"), t0)).collect();
        engine.observe(&events, t0);
        assert_eq!(engine.untracked, 2);
        assert_eq!(engine.firing().count(), 3);
        // Once the windows expire, new keys are tracked again.
        let later = t0 + 61 * SEC;
        engine.observe(&[sqli("10.0.0.9", later)], later);
        assert_eq!(engine.untracked, 2);
    }
}
