//! `vigil`: the command line (and, from issue 3, the control plane server).

mod policy_file;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vigil_engine::CompiledPolicy;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "vigil: API threat detection for Envoy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with policy documents.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// List every rule of a policy (the built-in default when no file is given).
    Rules {
        /// Policy file (YAML or JSON).
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check a policy (YAML or JSON) with the same engine the filter runs.
    Validate { file: PathBuf },
    /// Print a policy as the compact JSON the filter takes as its plugin configuration.
    Json { file: PathBuf },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Policy {
            command: PolicyCommand::Validate { file },
        } => {
            let doc = policy_file::load(&file)?;
            let policy = CompiledPolicy::compile(doc)
                .with_context(|| format!("{} is not a valid policy", file.display()))?;
            let enabled = policy.rules().filter(|(_, on)| *on).count();
            println!(
                "{}: valid (version {}, mode {:?}, {} rules enabled)",
                file.display(),
                policy.version(),
                policy.mode(),
                enabled
            );
            Ok(())
        }
        Command::Policy {
            command: PolicyCommand::Json { file },
        } => {
            let doc = policy_file::load(&file)?;
            let policy = CompiledPolicy::compile(doc)
                .with_context(|| format!("{} is not a valid policy", file.display()))?;
            println!("{}", policy.document().to_json());
            Ok(())
        }
        Command::Rules { file } => {
            let policy = match file {
                Some(f) => CompiledPolicy::compile(policy_file::load(&f)?)
                    .with_context(|| format!("{} is not a valid policy", f.display()))?,
                None => CompiledPolicy::builtin().context("built-in policy")?,
            };
            println!(
                "{:<28} {:<15} {:<9} {:<8} {:<4} description",
                "id", "category", "severity", "action", "on"
            );
            for (rule, on) in policy.rules() {
                println!(
                    "{:<28} {:<15} {:<9} {:<8} {:<4} {}",
                    rule.id,
                    rule.category.as_str(),
                    rule.severity.as_str(),
                    rule.action.as_str(),
                    if on { "yes" } else { "no" },
                    rule.description
                );
            }
            Ok(())
        }
    }
}
