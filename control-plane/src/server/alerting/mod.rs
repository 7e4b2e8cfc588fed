//! Control-plane alerting: rules over the events edges report (`rules`), the incident state
//! machine (`engine`, pure and clocked by its caller), what receivers are sent (`receivers`),
//! the durable alert tables and outbox (`store`), and the delivery loops (`dispatcher`).
//!
//! Flow: `EventService.Report` stores a batch, then hands the new events to
//! [`Alerting::observe`]; a ticker calls [`Alerting::tick`]. Both persist the engine's changes
//! (alerts and queued notifications) in one SQLite transaction and wake the dispatcher, which
//! delivers each receiver's notifications in order, retrying with backoff.

pub mod config;
pub mod dispatcher;
pub mod engine;
pub mod receivers;
pub mod rules;
pub mod store;

use std::sync::Arc;

use tokio::sync::{Mutex, Notify};
use vigil_proto::v1::Event;

pub use vigil_engine::Severity;

use self::config::AlertingConfig;
use self::engine::{Alert, Changes, Engine, Route, Silence, Transition};
use self::receivers::Notification;
use super::metrics::{Metrics, SEVERITIES};
use super::store::{StoreError, StoreHandle};

pub fn parse_severity(text: &str) -> Option<Severity> {
    Severity::ALL.into_iter().find(|s| s.as_str() == text)
}

pub struct Alerting {
    pub config: AlertingConfig,
    engine: Mutex<Engine>,
    store: StoreHandle,
    metrics: Arc<Metrics>,
    /// Wakes the delivery loops when notifications were queued.
    wake: Arc<Notify>,
}

impl Alerting {
    /// Restores firing alerts and silences from the store.
    pub async fn open(
        config: AlertingConfig,
        store: StoreHandle,
        metrics: Arc<Metrics>,
        now_ms: i64,
    ) -> Result<Arc<Alerting>, StoreError> {
        let routes = config
            .receivers
            .iter()
            .map(|r| Route {
                name: r.name.clone(),
                min_severity: r.min_severity,
                refresh_ms: r.refresh_ms,
            })
            .collect();
        let mut engine = Engine::new(config.rules.clone(), routes, config.max_tracked_keys);
        let (firing, silences, next_id, pending) = store
            .run(move |s| {
                let conn = s.conn();
                Ok((
                    store::list(conn, false, u32::MAX)?,
                    store::active_silences(conn, now_ms)?,
                    store::next_alert_id(conn)?,
                    store::pending_count(conn)?,
                ))
            })
            .await?;
        if !firing.is_empty() {
            tracing::info!(firing = firing.len(), "alerting: continuing firing alerts");
        }
        engine.restore(firing, silences, next_id);
        for r in &config.receivers {
            metrics.declare_receiver(&r.name);
        }
        metrics
            .alert_outbox_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        let alerting = Arc::new(Alerting {
            config,
            engine: Mutex::new(engine),
            store,
            metrics,
            wake: Arc::new(Notify::new()),
        });
        alerting.update_firing_gauges().await;
        Ok(alerting)
    }

    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Counts newly stored events. Called after their batch committed.
    pub async fn observe(&self, events: &[Event], now_ms: i64) -> Result<(), StoreError> {
        if self.config.rules.is_empty() || events.is_empty() {
            return Ok(());
        }
        let mut engine = self.engine.lock().await;
        let changes = engine.observe(events, now_ms);
        // Saved while the engine is locked, so the outbox order is the engine's order.
        self.save(&engine, changes, now_ms).await
    }

    /// Resolves quiet alerts, refreshes, ends silences.
    pub async fn tick(&self, now_ms: i64) -> Result<(), StoreError> {
        let mut engine = self.engine.lock().await;
        let changes = engine.tick(now_ms);
        self.save(&engine, changes, now_ms).await
    }

    async fn save(&self, engine: &Engine, changes: Changes, now_ms: i64) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        for (alert, transition) in &changes.alerts {
            log_transition(alert, *transition);
        }
        let alerts: Vec<Alert> = changes.alerts.into_iter().map(|(a, _)| a).collect();
        let notifications: Vec<(String, Notification)> = changes
            .deliveries
            .into_iter()
            .map(|d| {
                (
                    d.receiver,
                    Notification {
                        status: d.status.as_str().to_owned(),
                        previous_severity: d.previous_severity.map(|s| s.as_str().to_owned()),
                        alert: store::snapshot(&d.alert),
                    },
                )
            })
            .collect();
        let queued = !notifications.is_empty();
        let max_rows = self.config.outbox_max_rows;
        let report = self
            .store
            .run(move |s| store::save(s.conn(), &alerts, &notifications, now_ms, max_rows))
            .await?;
        for receiver in &report.dropped {
            tracing::error!(receiver = %receiver, "alerting: outbox full, oldest notification given up");
            self.metrics.count_notification(receiver, "expired");
        }
        self.metrics
            .alert_outbox_pending
            .set(i64::try_from(report.pending).unwrap_or(i64::MAX));
        self.set_firing_gauges(engine);
        if queued {
            self.wake.notify_waiters();
        }
        Ok(())
    }

    async fn update_firing_gauges(&self) {
        let engine = self.engine.lock().await;
        self.set_firing_gauges(&engine);
    }

    fn set_firing_gauges(&self, engine: &Engine) {
        for (gauge, name) in self.metrics.alerts_firing.iter().zip(SEVERITIES) {
            let n = engine
                .firing()
                .filter(|a| a.severity.as_str() == name)
                .count();
            gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Stored alerts (firing first) and whether each is silenced now.
    pub async fn list(
        &self,
        include_resolved: bool,
        limit: u32,
        now_ms: i64,
    ) -> Result<Vec<(Alert, bool)>, StoreError> {
        let alerts = self
            .store
            .run(move |s| store::list(s.conn(), include_resolved, limit))
            .await?;
        let engine = self.engine.lock().await;
        Ok(alerts
            .into_iter()
            .map(|a| {
                let silenced = a.is_firing() && engine.is_silenced(&a, now_ms);
                (a, silenced)
            })
            .collect())
    }

    /// Acknowledges a firing alert by id or fingerprint; `None` if there is none.
    pub async fn ack(
        &self,
        target: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<Alert>, StoreError> {
        let mut engine = self.engine.lock().await;
        let Some(alert) = engine.ack(target, by, now_ms) else {
            return Ok(None);
        };
        let mut changes = Changes::default();
        changes
            .alerts
            .push((alert.clone(), Some(Transition::Acked)));
        self.save(&engine, changes, now_ms).await?;
        Ok(Some(alert))
    }

    /// Adds a silence; returns it with its id.
    pub async fn silence(&self, mut silence: Silence, now_ms: i64) -> Result<Silence, StoreError> {
        let mut engine = self.engine.lock().await;
        let stored = silence.clone();
        silence.id = self
            .store
            .run(move |s| store::insert_silence(s.conn(), &stored, now_ms))
            .await?;
        tracing::info!(
            id = silence.id,
            rule = silence.rule.as_deref().unwrap_or("*"),
            key = silence.key.as_deref().unwrap_or("*"),
            until = %crate::timefmt::format_utc(silence.until_ms, false),
            by = %silence.created_by,
            "alerting: silence added"
        );
        engine.add_silence(silence.clone());
        Ok(silence)
    }
}

fn log_transition(alert: &Alert, transition: Option<Transition>) {
    let Some(t) = transition else {
        return;
    };
    let what = match t {
        Transition::Opened => "opened",
        Transition::Escalated => "escalated",
        Transition::Resolved => "resolved",
        Transition::Acked => "acknowledged",
    };
    // A first doubt (level log) is only this line; higher levels also notify.
    tracing::warn!(
        id = alert.id,
        rule = %alert.rule,
        key = %alert.key,
        level = alert.level.as_str(),
        severity = alert.severity.as_str(),
        count = alert.count,
        "alert {what}: {}",
        alert.summary
    );
}
