//! `vigil audit`: who changed what and when (policy pushes and rollbacks, blocks, intel).

use std::process::ExitCode;

use clap::Args;
use vigil_proto::v1::ListAuditRequest;

use super::client::{status_error, Client};
use super::{block_on, cell, ServerArgs};
use crate::timefmt;

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// At most this many entries, newest first (default 100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &AuditArgs, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    block_on(list(args, server))?
}

async fn list(args: &AuditArgs, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let client = Client::connect(server).await?;
    let entries = client
        .admin()
        .list_audit(ListAuditRequest {
            limit: args.limit.unwrap_or(0),
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .entries;
    if args.json {
        for e in &entries {
            println!(
                "{}",
                serde_json::json!({
                    "unix_ms": e.unix_ms,
                    "time": timefmt::format_utc(e.unix_ms, true),
                    "actor": e.actor,
                    "action": e.action,
                    "detail": e.detail,
                })
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!("no audit entries");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<16} {:<16} detail",
        "time (UTC)", "actor", "action"
    );
    for e in &entries {
        println!(
            "{:<24} {} {} {}",
            timefmt::format_utc(e.unix_ms, true),
            cell(&e.actor, 16),
            cell(&e.action, 16),
            e.detail
        );
    }
    Ok(ExitCode::SUCCESS)
}
