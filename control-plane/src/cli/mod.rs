//! The client side of the `vigil` binary: one module per command group.

pub mod alerts;
pub mod audit;
pub mod blocks;
pub mod client;
pub mod events;
pub mod exceptions;
pub mod intel;
pub mod nodes;
pub mod policy;
pub mod policy_edit;
pub mod policy_test;
pub mod rules;
pub mod serve;

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// How to reach `vigil serve` (every command that talks to it).
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Control plane URL (`https://` for TLS).
    #[arg(
        long,
        global = true,
        env = "VIGIL_SERVER",
        default_value = "http://127.0.0.1:18000",
        value_name = "URL"
    )]
    pub server: String,
    /// Bearer token for the control plane.
    #[arg(long, global = true, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the token from a file (wins over --token and VIGIL_TOKEN).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed an https server's certificate.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// Runs one command's async work on a small runtime of its own.
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Pads or cuts `text` to `width` characters, for table columns.
pub fn cell(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        format!("{text:<width$}")
    } else {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
