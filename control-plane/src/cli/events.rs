//! `vigil events tail|query`: stored detections, live or by filter.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use vigil_proto::v1::{Event, EventQuery, TailRequest};

use super::client::{status_error, Client};
use super::{block_on, cell, ServerArgs};
use crate::timefmt;

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Print events as the control plane stores them, until interrupted.
    Tail {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Also print observations (logins, objects, response sizes the edges report).
        #[arg(long)]
        observations: bool,
    },
    /// Stored events, newest first.
    Query {
        /// Only events since: a duration back from now (10m, 2h, 1d), RFC 3339 or unix ms.
        #[arg(long)]
        since: Option<String>,
        /// Only events with a finding in this category (sqli, xss, ...).
        #[arg(long)]
        category: Option<String>,
        /// Only events with a finding of this rule id.
        #[arg(long)]
        rule: Option<String>,
        /// Only events from this client IP.
        #[arg(long)]
        ip: Option<String>,
        /// Only events from this node.
        #[arg(long)]
        node: Option<String>,
        /// At most this many events (server default 100, maximum 10000).
        #[arg(long)]
        limit: Option<u32>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Also list observations (logins, objects, response sizes the edges report).
        #[arg(long)]
        observations: bool,
    },
}

pub fn run(command: EventsCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        EventsCommand::Tail { json, observations } => block_on(tail(server, json, observations))?,
        EventsCommand::Query {
            since,
            category,
            rule,
            ip,
            node,
            limit,
            json,
            observations,
        } => {
            let since_unix_ms = match since {
                Some(s) => timefmt::parse_since(&s, timefmt::now_unix_ms()).context("--since")?,
                None => 0,
            };
            let query = EventQuery {
                since_unix_ms,
                category: category.unwrap_or_default(),
                rule_id: rule.unwrap_or_default(),
                client_ip: ip.unwrap_or_default(),
                limit: limit.unwrap_or(0),
                node_id: node.unwrap_or_default(),
                observations,
            };
            block_on(query_events(server, query, json))?
        }
    }
}

async fn query_events(
    server: &ServerArgs,
    query: EventQuery,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = Client::connect(server).await?;
    let events = client
        .admin()
        .query_events(query)
        .await
        .map_err(status_error)?
        .into_inner()
        .events;
    if !json {
        if events.is_empty() {
            eprintln!("no events");
            return Ok(ExitCode::SUCCESS);
        }
        println!("{}", header());
    }
    for e in &events {
        println!(
            "{}",
            if json {
                event_json(e).to_string()
            } else {
                row(e)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn tail(server: &ServerArgs, json: bool, observations: bool) -> anyhow::Result<ExitCode> {
    let client = Client::connect(server).await?;
    let mut stream = client
        .admin()
        .tail_events(TailRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if !json {
        println!("{}", header());
    }
    loop {
        tokio::select! {
            message = stream.message() => match message.map_err(status_error)? {
                Some(e) if e.outcome == "observe" && !observations => {}
                Some(e) => println!("{}", if json { event_json(&e).to_string() } else { row(&e) }),
                None => {
                    eprintln!("the server closed the stream");
                    return Ok(ExitCode::SUCCESS);
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

pub fn event_json(e: &Event) -> serde_json::Value {
    serde_json::json!({
        "node_id": e.node_id,
        "boot_id": e.boot_id,
        "sequence": e.sequence,
        "unix_ms": e.unix_ms,
        "time": timefmt::format_utc(e.unix_ms, true),
        "request_id": e.request_id,
        "outcome": e.outcome,
        "score": e.score,
        "method": e.method,
        "path": e.path,
        "client_ip": e.client_ip,
        "principal": e.principal,
        "policy_version": e.policy_version,
        "observation": e.observation.as_ref().map(|o| serde_json::json!({
            "kind": o.kind,
            "ip": o.ip,
            "principal": o.principal,
            "route": o.route,
            "subject": o.subject,
            "status": o.status,
            "bytes": o.bytes,
            "records": o.records,
        })),
        "findings": e.findings.iter().map(|f| serde_json::json!({
            "rule_id": f.rule_id,
            "category": f.category,
            "severity": f.severity,
            "action": f.action,
            "target": f.target,
            "fragment": f.fragment,
        })).collect::<Vec<_>>(),
    })
}

fn header() -> String {
    format!(
        "{:<24} {:<16} {:<7} {:>5} {:<15} {:<7} {:<32} rules",
        "time (UTC)", "node", "outcome", "score", "client", "method", "path"
    )
}

fn row(e: &Event) -> String {
    let rules: Vec<String> = e
        .findings
        .iter()
        .map(|f| format!("{}({})", f.rule_id, f.category))
        .collect();
    format!(
        "{:<24} {} {:<7} {:>5} {} {:<7} {} {}",
        timefmt::format_utc(e.unix_ms, true),
        cell(&e.node_id, 16),
        e.outcome,
        e.score,
        cell(&e.client_ip, 15),
        e.method,
        cell(&e.path, 32),
        rules.join(",")
    )
}
