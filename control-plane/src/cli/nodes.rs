//! `vigil nodes`: every edge the control plane has heard from.

use std::process::ExitCode;

use clap::Args;
use vigil_proto::v1::ListNodesRequest;

use super::client::{status_error, Client};
use super::{block_on, cell, ServerArgs};
use crate::timefmt;

#[derive(Args, Debug)]
pub struct NodesArgs {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &NodesArgs, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    block_on(list(args.json, server))?
}

async fn list(json: bool, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let client = Client::connect(server).await?;
    let nodes = client
        .admin()
        .list_nodes(ListNodesRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .nodes;
    let now = timefmt::now_unix_ms();
    if json {
        for n in &nodes {
            let value = serde_json::json!({
                "node_id": n.node_id,
                "connected": n.connected,
                "applied_version": n.applied_version,
                "boot_id": n.boot_id,
                "last_seen_unix_ms": n.last_seen_unix_ms,
                "events_received": n.events_received,
                "events_dropped": n.events_dropped,
                "last_error": n.last_error,
            });
            println!("{value}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if nodes.is_empty() {
        println!("no node has connected yet");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<9} {:<8} {:<10} {:>10} {:>8} last error",
        "node", "connected", "applied", "last seen", "received", "dropped"
    );
    for n in &nodes {
        println!(
            "{} {:<9} {:<8} {:<10} {:>10} {:>8} {}",
            cell(&n.node_id, 24),
            if n.connected { "yes" } else { "no" },
            if n.applied_version.is_empty() {
                "-"
            } else {
                &n.applied_version
            },
            timefmt::relative(n.last_seen_unix_ms, now),
            n.events_received,
            n.events_dropped,
            n.last_error
        );
    }
    Ok(ExitCode::SUCCESS)
}
