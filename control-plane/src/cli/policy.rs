//! `vigil policy ...`: local checks (validate, json, test) and the control plane's policy
//! history (push, list, show, diff, rollback).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use vigil_engine::CompiledPolicy;
use vigil_proto::v1::{
    GetPolicyRequest, ListPoliciesRequest, PolicyBundle, PushPolicyRequest, PushPolicyResponse,
    RollbackRequest,
};

use super::client::{status_error, Client};
use super::policy_edit;
use super::policy_test::TestArgs;
use super::{block_on, cell, ServerArgs};
use crate::server::service::UNCHANGED_HEADER;
use crate::{diff, policy_file, timefmt};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Check a policy (YAML or JSON) with the same engine the filter runs.
    Validate { file: PathBuf },
    /// Print a policy as the compact JSON the filter takes as its plugin configuration.
    Json { file: PathBuf },
    /// Validate a policy locally, then make it the control plane's current policy.
    Push {
        file: PathBuf,
        /// Recorded with the version (default: the file name).
        #[arg(long)]
        comment: Option<String>,
    },
    /// List the control plane's policy versions (`*` marks the current one).
    List,
    /// Print a stored version as pretty JSON (default: the current version).
    Show {
        version: Option<u64>,
        /// Print YAML instead of JSON.
        #[arg(long)]
        yaml: bool,
    },
    /// Line diff between two stored versions (B defaults to the current version).
    Diff { a: u64, b: Option<u64> },
    /// Make an earlier version current again (recorded as a new version).
    Rollback {
        /// Version to restore (default: the version before the current one).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Change fields of the current policy and push the result as a new version.
    ///
    /// KEY is a dotted path into the policy JSON (numbers index lists), VALUE is JSON when it
    /// parses as JSON, else a string: `vigil policy set behaviour.brute_force.per_ip.threshold=20`.
    /// The result is validated first (nothing is pushed on error); `policy rollback` undoes it.
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
        /// Recorded with the version (default: the assignments).
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Inspect one request offline with a policy file.
    ///
    /// Exit status: 0 when the request is allowed or only monitored, 2 when it would be
    /// blocked, 1 on errors.
    Test(TestArgs),
}

pub fn run(command: PolicyCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Validate { file } => {
            let policy = compile_file(&file)?;
            let enabled = policy.rules().filter(|(_, on)| *on).count();
            println!(
                "{}: valid (version {}, mode {:?}, {} rules enabled)",
                file.display(),
                policy.version(),
                policy.mode(),
                enabled
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Json { file } => {
            println!("{}", compile_file(&file)?.document().to_json());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test(args) => super::policy_test::run(&args),
        PolicyCommand::Push { file, comment } => block_on(push(server, file, comment))?,
        PolicyCommand::List => block_on(list(server))?,
        PolicyCommand::Show { version, yaml } => block_on(show(server, version, yaml))?,
        PolicyCommand::Diff { a, b } => block_on(diff_versions(server, a, b))?,
        PolicyCommand::Rollback { to } => block_on(rollback(server, to))?,
        PolicyCommand::Set {
            assignments,
            comment,
            json,
        } => block_on(set(server, assignments, comment, json))?,
    }
}

/// Loads and compiles a policy file; errors name the file, rule and field.
pub fn compile_file(file: &std::path::Path) -> anyhow::Result<CompiledPolicy> {
    let doc = policy_file::load(file)?;
    CompiledPolicy::compile(doc)
        .with_context(|| format!("{} is not a valid policy", file.display()))
}

/// The bundle a push or rollback made current, and whether it was already current (the server
/// says so in metadata rather than creating a version).
fn resulting_bundle(
    response: tonic::Response<PushPolicyResponse>,
) -> anyhow::Result<(PolicyBundle, bool)> {
    let unchanged = response.metadata().get(UNCHANGED_HEADER).is_some();
    let bundle = response
        .into_inner()
        .bundle
        .context("the server answered without a bundle")?;
    Ok((bundle, unchanged))
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

async fn push(
    server: &ServerArgs,
    file: PathBuf,
    comment: Option<String>,
) -> anyhow::Result<ExitCode> {
    // Nothing is sent unless the engine accepts the policy here first.
    let json = compile_file(&file)?.document().to_json();
    let comment = comment.unwrap_or_else(|| {
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let client = Client::connect(server).await?;
    let response = client
        .admin()
        .push_policy(PushPolicyRequest {
            json,
            comment,
            base_version: String::new(),
        })
        .await
        .map_err(status_error)
        .with_context(|| format!("{} was not pushed", file.display()))?;
    let (bundle, unchanged) = resulting_bundle(response)?;
    if unchanged {
        println!(
            "unchanged: version {} is already this policy (sha256 {})",
            bundle.version, bundle.sha256
        );
    } else {
        println!(
            "pushed version {} (sha256 {})",
            bundle.version, bundle.sha256
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let client = Client::connect(server).await?;
    let versions = client
        .admin()
        .list_policies(ListPoliciesRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .versions;
    if versions.is_empty() {
        println!("no policy has been pushed yet");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8} {:<3} {:<20} {:<12} {:<7} comment",
        "version", "cur", "created (UTC)", "sha256", "author"
    );
    for v in &versions {
        let Some(b) = &v.bundle else { continue };
        println!(
            "{:<8} {:<3} {:<20} {:<12} {:<7} {}",
            b.version,
            if v.current { "*" } else { "" },
            timefmt::format_utc(b.created_unix_ms, false),
            short(&b.sha256),
            cell(&v.author, 7).trim_end(),
            v.comment
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn fetch_pretty(
    client: &Client,
    version: Option<u64>,
) -> anyhow::Result<(String, serde_json::Value)> {
    let response = client
        .admin()
        .get_policy(GetPolicyRequest {
            version: version.map(|v| v.to_string()).unwrap_or_default(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let bundle = response
        .bundle
        .context("the server answered without a bundle")?;
    let value: serde_json::Value = serde_json::from_str(&bundle.json)
        .with_context(|| format!("version {} is not JSON", bundle.version))?;
    let label = if response.current {
        format!("version {} (current)", bundle.version)
    } else {
        format!("version {}", bundle.version)
    };
    Ok((label, value))
}

async fn show(server: &ServerArgs, version: Option<u64>, yaml: bool) -> anyhow::Result<ExitCode> {
    let client = Client::connect(server).await?;
    let (_, value) = fetch_pretty(&client, version).await?;
    if yaml {
        print!(
            "{}",
            serde_yaml_ng::to_string(&value).context("cannot write YAML")?
        );
    } else {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn diff_versions(server: &ServerArgs, a: u64, b: Option<u64>) -> anyhow::Result<ExitCode> {
    let client = Client::connect(server).await?;
    let (a_label, a_value) = fetch_pretty(&client, Some(a)).await?;
    let (b_label, b_value) = fetch_pretty(&client, b).await?;
    let text = diff::unified(
        &a_label,
        &b_label,
        &serde_json::to_string_pretty(&a_value)?,
        &serde_json::to_string_pretty(&b_value)?,
        3,
    );
    if text.is_empty() {
        println!("{a_label} and {b_label} are the same policy");
    } else {
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn rollback(server: &ServerArgs, to: Option<u64>) -> anyhow::Result<ExitCode> {
    let client = Client::connect(server).await?;
    let response = client
        .admin()
        .rollback(RollbackRequest {
            to_version: to.map(|v| v.to_string()).unwrap_or_default(),
        })
        .await
        .map_err(status_error)?;
    let (bundle, unchanged) = resulting_bundle(response)?;
    if unchanged {
        println!(
            "unchanged: current version {} already has that policy (sha256 {})",
            bundle.version, bundle.sha256
        );
        return Ok(ExitCode::SUCCESS);
    }
    let restored = match to {
        Some(v) => format!("the policy of version {v}"),
        None => "the previous policy".into(),
    };
    println!(
        "rolled back to {restored}: now version {} (sha256 {})",
        bundle.version, bundle.sha256
    );
    Ok(ExitCode::SUCCESS)
}

async fn set(
    server: &ServerArgs,
    assignments: Vec<String>,
    comment: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let parsed = assignments
        .iter()
        .map(|a| policy_edit::parse_assignment(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let comment = comment.unwrap_or_else(|| format!("policy set {}", assignments.join(" ")));
    let edited = policy_edit::edit_current(server, &comment, |doc| {
        for (key, value) in &parsed {
            policy_edit::set_path(doc, key, value.clone())?;
        }
        Ok(())
    })
    .await?;
    Ok(edited.print(json))
}
