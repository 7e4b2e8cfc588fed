//! `vigil blocks list|add|remove`: the dynamic blocks every edge enforces (added by analysts,
//! the fleet correlator or an edge's own block detection).

use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand};
use vigil_proto::v1::{
    AddBlockRequest, BlockEntry, DynamicBlock, ListBlocksRequest, RemoveBlockRequest,
};

use super::client::{status_error, Client};
use super::{block_on, cell, ServerArgs};
use crate::timefmt;

#[derive(Subcommand, Debug)]
pub enum BlocksCommand {
    /// The blocks in force.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Block (or, with --limit, rate-limit) an address, range, principal or token everywhere.
    Add {
        #[command(flatten)]
        target: Target,
        /// How long: 90s, 10m, 2h, 1d (default: until removed).
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        /// Answer 429 instead of 403.
        #[arg(long)]
        limit: bool,
        #[arg(long)]
        json: bool,
    },
    /// Lift a block.
    Remove {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

/// Exactly one of the four.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["ip", "cidr", "principal", "token"])))]
pub struct Target {
    #[arg(long, value_name = "ADDRESS")]
    ip: Option<String>,
    #[arg(long, value_name = "CIDR")]
    cidr: Option<String>,
    /// `sub:alice`, `key:...`, `ip:...`.
    #[arg(long)]
    principal: Option<String>,
    /// A token fingerprint.
    #[arg(long, value_name = "FINGERPRINT")]
    token: Option<String>,
}

impl Target {
    fn kind_value(&self) -> (&'static str, String) {
        let pairs = [
            ("ip", &self.ip),
            ("cidr", &self.cidr),
            ("principal", &self.principal),
            ("token", &self.token),
        ];
        pairs
            .into_iter()
            .find_map(|(k, v)| v.clone().map(|v| (k, v)))
            // clap's group makes one of them required.
            .unwrap_or(("ip", String::new()))
    }
}

pub fn run(command: BlocksCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    block_on(run_async(command, server))?
}

async fn run_async(command: BlocksCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        BlocksCommand::List { json } => {
            let client = Client::connect(server).await?;
            let blocks = client
                .admin()
                .list_blocks(ListBlocksRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .blocks;
            print_blocks(&blocks, json);
        }
        BlocksCommand::Add {
            target,
            ttl,
            reason,
            limit,
            json,
        } => {
            let ttl_secs = match &ttl {
                Some(t) => {
                    let ms = timefmt::parse_duration_ms(t)
                        .filter(|ms| *ms > 0)
                        .with_context(|| format!("--ttl `{t}` is not a duration like 10m or 2h"))?;
                    // Round up: a TTL under a second still blocks for one.
                    (ms + 999) / 1_000
                }
                None => 0,
            };
            let (kind, value) = target.kind_value();
            let client = Client::connect(server).await?;
            let entry = client
                .admin()
                .add_block(AddBlockRequest {
                    block: Some(DynamicBlock {
                        kind: kind.into(),
                        value,
                        expires_unix_ms: 0,
                        reason: reason.unwrap_or_default(),
                        limit_only: limit,
                    }),
                    ttl_secs,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if json {
                println!("{}", entry_json(&entry));
            } else if let Some(b) = &entry.block {
                println!(
                    "{} {} {} ({}); every edge enforces it now",
                    if b.limit_only { "limiting" } else { "blocking" },
                    b.kind,
                    b.value,
                    until(b.expires_unix_ms)
                );
            }
        }
        BlocksCommand::Remove { target, json } => {
            let (kind, value) = target.kind_value();
            let client = Client::connect(server).await?;
            let left = client
                .admin()
                .remove_block(RemoveBlockRequest {
                    kind: kind.into(),
                    value: value.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner()
                .blocks;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"removed": {"kind": kind, "value": value}, "remaining": left.len()})
                );
            } else {
                println!("removed the block on {kind} {value}; {} left", left.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn until(expires_unix_ms: i64) -> String {
    if expires_unix_ms == 0 {
        "until removed".into()
    } else {
        let left = (expires_unix_ms - timefmt::now_unix_ms()).max(0) / 1_000;
        format!(
            "until {} UTC, in {}m{:02}s",
            timefmt::format_utc(expires_unix_ms, false),
            left / 60,
            left % 60
        )
    }
}

fn entry_json(e: &BlockEntry) -> serde_json::Value {
    let b = e.block.clone().unwrap_or_default();
    serde_json::json!({
        "kind": b.kind,
        "value": b.value,
        "expires_unix_ms": b.expires_unix_ms,
        "reason": b.reason,
        "limit_only": b.limit_only,
        "created_by": e.created_by,
        "created_unix_ms": e.created_unix_ms,
    })
}

fn print_blocks(blocks: &[BlockEntry], json: bool) {
    if json {
        for e in blocks {
            println!("{}", entry_json(e));
        }
        return;
    }
    if blocks.is_empty() {
        println!("no blocks");
        return;
    }
    println!(
        "{:<9} {:<5} {:<40} {:<20} {:<24} {:<20} expires",
        "kind", "do", "value", "reason", "by", "created (UTC)"
    );
    for e in blocks {
        let Some(b) = &e.block else { continue };
        println!(
            "{} {:<5} {} {} {} {:<20} {}",
            cell(&b.kind, 9),
            if b.limit_only { "limit" } else { "block" },
            cell(&b.value, 40),
            cell(&b.reason, 20),
            cell(&e.created_by, 24),
            timefmt::format_utc(e.created_unix_ms, false),
            until(b.expires_unix_ms)
        );
    }
}
