//! `vigil`: the control plane (`vigil serve`) and the command line that drives it.
//!
//! Each command group lives in its own module under `cli/`; adding a command is one variant
//! here and one arm in `run`.

mod cli;
mod diff;
mod envoy_config;
mod policy_file;
mod replay;
mod server;
mod timefmt;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "vigil: API threat detection for Envoy"
)]
struct Cli {
    #[command(flatten)]
    server: cli::ServerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: policy distribution, event store, admin API.
    Serve(cli::serve::ServeArgs),
    /// Work with policy documents and the control plane's policy history.
    Policy {
        #[command(subcommand)]
        command: cli::policy::PolicyCommand,
    },
    /// Query or follow the events edges reported.
    Events {
        #[command(subcommand)]
        command: cli::events::EventsCommand,
    },
    /// Dynamic blocks every edge enforces (IP, CIDR, principal, token; with a TTL).
    Blocks {
        #[command(subcommand)]
        command: cli::blocks::BlocksCommand,
    },
    /// The reputation list (addresses and CIDRs) every edge matches clients against.
    Intel {
        #[command(subcommand)]
        command: cli::intel::IntelCommand,
    },
    /// False positives: exceptions in the current policy (each change is a new version).
    Exceptions {
        #[command(subcommand)]
        command: cli::exceptions::ExceptionsCommand,
    },
    /// The audit trail: who changed policy, blocks and intel, and when.
    Audit(cli::audit::AuditArgs),
    /// The control plane's alerts: list, acknowledge, silence.
    Alerts {
        #[command(subcommand)]
        command: cli::alerts::AlertsCommand,
    },
    /// List the edges (Envoy nodes) the control plane knows.
    Nodes(cli::nodes::NodesArgs),
    /// Print a ready Envoy bootstrap: listener with the filter, the singleton that talks to the
    /// control plane, the control-plane cluster, the upstream and admin. The node token comes
    /// from the global `--token-file`.
    EnvoyConfig(envoy_config::EnvoyConfigArgs),
    /// Evaluate a labeled corpus in-process (the filter's engine) or through a running Envoy.
    Replay(replay::ReplayArgs),
    /// List every rule of a policy (the built-in default when no file is given).
    Rules {
        /// Policy file (YAML or JSON).
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => cli::serve::run(&args),
        Command::Policy { command } => cli::policy::run(command, &cli.server),
        Command::Events { command } => cli::events::run(command, &cli.server),
        Command::Nodes(args) => cli::nodes::run(&args, &cli.server),
        Command::Blocks { command } => cli::blocks::run(command, &cli.server),
        Command::Intel { command } => cli::intel::run(command, &cli.server),
        Command::Exceptions { command } => cli::exceptions::run(command, &cli.server),
        Command::Audit(args) => cli::audit::run(&args, &cli.server),
        Command::Alerts { command } => cli::alerts::run(command, &cli.server),
        Command::Rules { file } => cli::rules::run(file.as_deref()),
        Command::EnvoyConfig(mut args) => {
            args.token_file = cli.server.token_file.clone();
            print!("{}", envoy_config::render(&args)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => {
            let report = replay::run(&args)?;
            replay::print(&report, args.top);
            if let Some(out) = &args.out {
                let json = serde_json::to_string_pretty(&report)?;
                std::fs::write(out, json)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Catches clashing flags (e.g. a subcommand redefining a global `--token-file`).
    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
