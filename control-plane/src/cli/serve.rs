//! `vigil serve`: runs the control plane (see `crate::server`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::server::{self, LogFormat};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML); paths in it are relative to its directory.
    #[arg(long, default_value = "vigil.toml")]
    pub config: PathBuf,
    /// Log format (level from RUST_LOG, default info); logs go to stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    server::run(&args.config, args.log_format)?;
    Ok(ExitCode::SUCCESS)
}
