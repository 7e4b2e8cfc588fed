//! `vigil exceptions add|list|remove`: the analyst's answer to a false positive, as an edit of
//! the current policy (a new, audited, reversible version every edge applies at once).

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};
use vigil_proto::v1::GetPolicyRequest;

use super::client::{status_error, Client};
use super::{block_on, cell, policy_edit, ServerArgs};

#[derive(Subcommand, Debug)]
pub enum ExceptionsCommand {
    /// Stop a rule from matching on a route (optionally only in one parameter).
    Add {
        /// Rule id, category or `behaviour.<detector>` (see `vigil rules`).
        #[arg(long)]
        rule: String,
        /// Route pattern (`/search`, `/users/{id}`, `/api/**`).
        #[arg(long)]
        route: String,
        /// Only this parameter (query, form or JSON field).
        #[arg(long)]
        param: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The current policy's exceptions, numbered for `remove`.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove exception INDEX (as numbered by `list`).
    Remove {
        index: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: ExceptionsCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        ExceptionsCommand::Add {
            rule,
            route,
            param,
            reason,
            json,
        } => {
            let mut exception = json!({ "rule": rule, "route": route });
            if let Some(p) = &param {
                exception["param"] = json!(p);
            }
            if let Some(r) = &reason {
                exception["reason"] = json!(r);
            }
            let comment = match &param {
                Some(p) => format!("exception: {rule} on {route} param {p}"),
                None => format!("exception: {rule} on {route}"),
            };
            let edited = block_on(policy_edit::edit_current(server, &comment, |doc| {
                exceptions_mut(doc)?.push(exception.clone());
                Ok(())
            }))??;
            Ok(edited.print(json))
        }
        ExceptionsCommand::List { json } => block_on(list(server, json))?,
        ExceptionsCommand::Remove { index, json } => {
            let mut removed = None;
            let comment = format!("remove exception {index}");
            let edited = block_on(policy_edit::edit_current(server, &comment, |doc| {
                let list = exceptions_mut(doc)?;
                if index >= list.len() {
                    bail!(
                        "there is no exception {index} (the policy has {}); see `vigil exceptions list`",
                        list.len()
                    );
                }
                removed = Some(list.remove(index));
                Ok(())
            }))??;
            if !json {
                if let Some(e) = &removed {
                    println!("removed {}", describe(e));
                }
            }
            Ok(edited.print(json))
        }
    }
}

fn exceptions_mut(doc: &mut Value) -> anyhow::Result<&mut Vec<Value>> {
    let map = doc
        .as_object_mut()
        .context("the current policy is not a JSON object")?;
    map.entry("exceptions")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .context("the current policy's `exceptions` is not a list")
}

fn field<'a>(e: &'a Value, key: &str) -> &'a str {
    e.get(key).and_then(Value::as_str).unwrap_or("")
}

fn describe(e: &Value) -> String {
    let mut text = format!("{} on {}", field(e, "rule"), field(e, "route"));
    if !field(e, "param").is_empty() {
        text.push_str(&format!(" param {}", field(e, "param")));
    }
    text
}

async fn list(server: &ServerArgs, json: bool) -> anyhow::Result<ExitCode> {
    let client = Client::connect(server).await?;
    let response = client
        .admin()
        .get_policy(GetPolicyRequest {
            version: String::new(),
        })
        .await;
    let exceptions: Vec<Value> = match response {
        Ok(r) => {
            let bundle = r
                .into_inner()
                .bundle
                .context("the server answered without a bundle")?;
            let doc: Value = serde_json::from_str(&bundle.json)?;
            doc.get("exceptions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        Err(status) if status.code() == tonic::Code::NotFound => Vec::new(),
        Err(status) => return Err(status_error(status)),
    };
    if json {
        for (i, e) in exceptions.iter().enumerate() {
            let mut e = e.clone();
            e["index"] = json!(i);
            println!("{e}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if exceptions.is_empty() {
        println!("no exceptions");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<5} {:<28} {:<28} {:<16} reason",
        "index", "rule", "route", "param"
    );
    for (i, e) in exceptions.iter().enumerate() {
        println!(
            "{:<5} {} {} {} {}",
            i,
            cell(field(e, "rule"), 28),
            cell(field(e, "route"), 28),
            cell(field(e, "param"), 16),
            field(e, "reason")
        );
    }
    Ok(ExitCode::SUCCESS)
}
