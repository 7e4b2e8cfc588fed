//! Delivery: one loop per receiver takes its oldest undelivered notification from the outbox,
//! sends it, and deletes it once the receiver answered 2xx. A failure keeps it (and everything
//! after it for that receiver, so a resolution never overtakes its firing) and retries with
//! exponential backoff until `outbox_max_age`. A ticker drives the engine's clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::config::Receiver;
use super::receivers::render;
use super::store::{self, Pending};
use super::Alerting;
use crate::timefmt::now_unix_ms;

/// Longest sleep of an idle loop; wake-ups make it respond sooner.
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// Starts the ticker and the delivery loops; they end when `shutdown` turns true.
pub fn spawn(alerting: Arc<Alerting>, shutdown: watch::Receiver<bool>) {
    // The receivers' HTTPS uses rustls with ring (as tonic does); installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alerting: cannot build the HTTP client; notifications stay in the outbox");
            return;
        }
    };
    tokio::spawn(ticker(Arc::clone(&alerting), shutdown.clone()));
    for receiver in alerting.config.receivers.clone() {
        tokio::spawn(deliver(
            Arc::clone(&alerting),
            receiver,
            client.clone(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(report_orphans(alerting));
}

async fn ticker(alerting: Arc<Alerting>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(alerting.config.tick_ms.max(1) as u64);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if let Err(e) = alerting.tick(now_unix_ms()).await {
            tracing::error!(error = %e, "alerting: tick failed");
        }
    }
}

/// Notifications queued for receivers that are no longer configured are never sent: say so.
async fn report_orphans(alerting: Arc<Alerting>) {
    let Ok(names) = alerting
        .store()
        .run(|s| store::receivers_in_outbox(s.conn()))
        .await
    else {
        return;
    };
    for name in names {
        if !alerting.config.receivers.iter().any(|r| r.name == name) {
            tracing::error!(receiver = %name, "alerting: the outbox holds notifications for a receiver that is not configured");
        }
    }
}

fn backoff_ms(alerting: &Alerting, attempts: u32) -> i64 {
    let c = &alerting.config;
    let factor = 1i64.checked_shl(attempts.min(30)).unwrap_or(i64::MAX);
    c.retry_initial_ms
        .saturating_mul(factor)
        .min(c.retry_max_ms)
}

async fn deliver(
    alerting: Arc<Alerting>,
    receiver: Receiver,
    client: reqwest::Client,
    mut shutdown: watch::Receiver<bool>,
) {
    let wake = alerting.wake();
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Registered before looking, so a wake-up in between is not missed.
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let name = receiver.name.clone();
        let next = alerting
            .store()
            .run(move |s| store::next_pending(s.conn(), &name))
            .await;
        let now = now_unix_ms();
        let wait = match next {
            Err(e) => {
                tracing::error!(error = %e, receiver = %receiver.name, "alerting: cannot read the outbox");
                IDLE_WAIT
            }
            Ok(None) => IDLE_WAIT,
            Ok(Some(p)) if now - p.created_ms > alerting.config.outbox_max_age_ms => {
                tracing::error!(
                    receiver = %receiver.name,
                    delivery = p.id,
                    attempts = p.attempts,
                    "alerting: notification undelivered for longer than outbox_max_age; given up"
                );
                finish(&alerting, &receiver, &p, "expired").await;
                continue;
            }
            Ok(Some(p)) if p.next_attempt_ms > now => {
                Duration::from_millis((p.next_attempt_ms - now) as u64).min(IDLE_WAIT)
            }
            Ok(Some(p)) => {
                match send(&client, &receiver, &p, now).await {
                    Ok(()) => {
                        tracing::info!(receiver = %receiver.name, delivery = p.id, attempts = p.attempts + 1, "alerting: notification delivered");
                        finish(&alerting, &receiver, &p, "sent").await;
                    }
                    Err(error) => {
                        let next = now + backoff_ms(&alerting, p.attempts);
                        tracing::warn!(receiver = %receiver.name, delivery = p.id, attempts = p.attempts + 1, %error, "alerting: delivery failed; will retry");
                        alerting
                            .metrics()
                            .count_notification(&receiver.name, "retried");
                        let id = p.id;
                        if let Err(e) = alerting
                            .store()
                            .run(move |s| store::retry_later(s.conn(), id, next, &error))
                            .await
                        {
                            tracing::error!(error = %e, "alerting: cannot record a failed delivery");
                        }
                    }
                }
                continue;
            }
        };
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Removes a delivered (or given up) notification and counts it.
async fn finish(alerting: &Alerting, receiver: &Receiver, p: &Pending, result: &'static str) {
    alerting
        .metrics()
        .count_notification(&receiver.name, result);
    let id = p.id;
    match alerting
        .store()
        .run(move |s| {
            store::delivered(s.conn(), id)?;
            store::pending_count(s.conn())
        })
        .await
    {
        Ok(pending) => alerting
            .metrics()
            .alert_outbox_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX)),
        Err(e) => tracing::error!(error = %e, "alerting: cannot update the outbox"),
    }
}

async fn send(
    client: &reqwest::Client,
    receiver: &Receiver,
    p: &Pending,
    now_ms: i64,
) -> Result<(), String> {
    let Some(notification) = &p.notification else {
        // Unreadable rows cannot become readable by retrying; drop them as delivered.
        tracing::error!(delivery = p.id, "alerting: unreadable outbox row dropped");
        return Ok(());
    };
    let request = render(receiver, notification, p.id, now_ms);
    let mut builder = client
        .post(&request.url)
        .timeout(Duration::from_millis(receiver.timeout_ms.max(1) as u64))
        .body(request.body);
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{} answered HTTP {status}", request.url))
    }
}
