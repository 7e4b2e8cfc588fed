//! `vigil alerts list|ack|silence`: the control plane's alerts.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use vigil_proto::v1::{AckAlertRequest, Alert, ListAlertsRequest, SilenceAlertsRequest};

use super::client::{status_error, Client};
use super::{block_on, cell, ServerArgs};
use crate::timefmt;

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Firing alerts (with --all, resolved ones too), and undelivered notifications.
    List {
        /// Include resolved alerts.
        #[arg(long)]
        all: bool,
        /// At most this many alerts (server default 100).
        #[arg(long)]
        limit: Option<u32>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge a firing alert (by id or fingerprint): it stops escalating.
    Ack {
        /// The alert's id or fingerprint.
        alert: String,
    },
    /// Hold back notifications of matching alerts for a while (they are still tracked).
    Silence {
        /// Only alerts of this rule (default: any).
        #[arg(long)]
        rule: Option<String>,
        /// Only alerts for this key, e.g. a client IP (default: any).
        #[arg(long)]
        key: Option<String>,
        /// How long: 30m, 2h, 1d.
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
}

pub fn run(command: AlertsCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = Client::connect(server).await?;
        let mut admin = client.admin();
        match command {
            AlertsCommand::List { all, limit, json } => {
                let response = admin
                    .list_alerts(ListAlertsRequest {
                        include_resolved: all,
                        limit: limit.unwrap_or(0),
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                if json {
                    for a in &response.alerts {
                        println!("{}", alert_json(a));
                    }
                } else {
                    print_table(&response.alerts);
                    if response.outbox_pending > 0 {
                        println!(
                            "{} notification(s) waiting for delivery",
                            response.outbox_pending
                        );
                    }
                }
            }
            AlertsCommand::Ack { alert } => {
                let a = admin
                    .ack_alert(AckAlertRequest { alert })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                println!("acknowledged alert {} ({}: {})", a.id, a.rule, a.summary);
            }
            AlertsCommand::Silence {
                rule,
                key,
                duration,
                comment,
            } => {
                let duration_ms = timefmt::parse_duration_ms(&duration)
                    .filter(|d| *d > 0)
                    .with_context(|| {
                        format!("--for: `{duration}` is not a duration (30m, 2h, 1d)")
                    })?;
                let s = admin
                    .silence_alerts(SilenceAlertsRequest {
                        rule: rule.unwrap_or_default(),
                        key: key.unwrap_or_default(),
                        duration_ms,
                        comment,
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                println!(
                    "silence {} until {}: rule {}, key {}",
                    s.id,
                    timefmt::format_utc(s.until_unix_ms, false),
                    if s.rule.is_empty() { "*" } else { &s.rule },
                    if s.key.is_empty() { "*" } else { &s.key }
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}

fn alert_json(a: &Alert) -> serde_json::Value {
    serde_json::json!({
        "id": a.id,
        "fingerprint": a.fingerprint,
        "rule": a.rule,
        "key_kind": a.key_kind,
        "key": a.key,
        "severity": a.severity,
        "level": a.level,
        "status": a.status,
        "count": a.count,
        "first_seen_unix_ms": a.first_seen_unix_ms,
        "last_seen_unix_ms": a.last_seen_unix_ms,
        "resolved_unix_ms": a.resolved_unix_ms,
        "acked_by": a.acked_by,
        "silenced": a.silenced,
        "summary": a.summary,
        "notified": a.notified,
    })
}

fn print_table(alerts: &[Alert]) {
    if alerts.is_empty() {
        println!("no alerts");
        return;
    }
    let now = timefmt::now_unix_ms();
    println!(
        "{:>5} {:<8} {:<8} {:<6} {:<20} {:<18} {:>8} {:<10} summary",
        "id", "status", "severity", "level", "rule", "key", "count", "last seen"
    );
    for a in alerts {
        let mut status = a.status.clone();
        if a.silenced {
            status = "silenced".into();
        } else if !a.acked_by.is_empty() && a.status == "firing" {
            status = "acked".into();
        }
        println!(
            "{:>5} {:<8} {:<8} {:<6} {} {} {:>8} {:<10} {}",
            a.id,
            status,
            a.severity,
            a.level,
            cell(&a.rule, 20),
            cell(&a.key, 18),
            a.count,
            timefmt::relative(a.last_seen_unix_ms, now),
            a.summary
        );
    }
}
