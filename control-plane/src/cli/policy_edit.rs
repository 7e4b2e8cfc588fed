//! Edits of the control plane's current policy made from the command line (`policy set`,
//! `exceptions add|remove`): fetch the current document, change it, check it with the engine
//! (here its shape, on the server the full compile; nothing is stored on error), push it as a
//! new version based on the one read.
//!
//! The push names its base version, so an edit never silently overwrites a push made in
//! between; on such a conflict the edit is re-applied once to the newer document.

use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::Value;
use tonic::Code;
use vigil_engine::PolicyDocument;
use vigil_proto::v1::{GetPolicyRequest, PushPolicyRequest};

use super::client::{status_error, Client};
use super::ServerArgs;
use crate::server::service::UNCHANGED_HEADER;

/// What an edit did.
#[derive(Debug, Clone)]
pub struct Edited {
    pub version: String,
    pub base: String,
    pub unchanged: bool,
    pub comment: String,
}

impl Edited {
    pub fn print(&self, json: bool) -> ExitCode {
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "version": self.version,
                    "base_version": self.base,
                    "unchanged": self.unchanged,
                    "comment": self.comment,
                })
            );
        } else if self.unchanged {
            println!("unchanged: version {} already is that policy", self.version);
        } else {
            println!(
                "pushed version {} ({}); undo with `vigil policy rollback`",
                self.version, self.comment
            );
        }
        ExitCode::SUCCESS
    }
}

/// The current document and its version ("" when nothing was pushed yet: the default policy).
async fn current(client: &Client) -> anyhow::Result<(String, Value)> {
    let response = client
        .admin()
        .get_policy(GetPolicyRequest {
            version: String::new(),
        })
        .await;
    match response {
        Ok(r) => {
            let bundle = r
                .into_inner()
                .bundle
                .context("the server answered without a bundle")?;
            let value = serde_json::from_str(&bundle.json)
                .with_context(|| format!("version {} is not JSON", bundle.version))?;
            Ok((bundle.version, value))
        }
        Err(status) if status.code() == Code::NotFound => {
            let json = PolicyDocument::default().to_json();
            Ok((String::new(), serde_json::from_str(&json)?))
        }
        Err(status) => Err(status_error(status)),
    }
}

/// Checks an edited document's shape with the engine (fields, types); the canonical JSON to
/// push. The full compile (patterns, rule ids, thresholds) is the server's: it refuses an
/// invalid policy naming rule and field and stores nothing, and compiling here as well would
/// double the time an edit takes to reach the edges.
pub fn validate(value: Value) -> anyhow::Result<String> {
    Ok(PolicyDocument::from_value(value)?.to_json())
}

/// Applies `edit` to the current policy and pushes the result with `comment`.
pub async fn edit_current<F>(
    server: &ServerArgs,
    comment: &str,
    mut edit: F,
) -> anyhow::Result<Edited>
where
    F: FnMut(&mut Value) -> anyhow::Result<()>,
{
    let client = Client::connect(server).await?;
    for attempt in 0..2 {
        let (base, mut document) = current(&client).await?;
        edit(&mut document)?;
        let json =
            validate(document).context("the edited policy is invalid; nothing was pushed")?;
        let response = client
            .admin()
            .push_policy(PushPolicyRequest {
                json,
                comment: comment.to_owned(),
                base_version: base.clone(),
            })
            .await;
        match response {
            Ok(r) => {
                let unchanged = r.metadata().get(UNCHANGED_HEADER).is_some();
                let bundle = r
                    .into_inner()
                    .bundle
                    .context("the server answered without a bundle")?;
                return Ok(Edited {
                    version: bundle.version,
                    base,
                    unchanged,
                    comment: comment.to_owned(),
                });
            }
            // Someone pushed since we read: redo the edit on their version, once.
            Err(status) if status.code() == Code::FailedPrecondition && attempt == 0 => continue,
            Err(status) => return Err(status_error(status)).context("nothing was pushed"),
        }
    }
    bail!("the policy kept changing while it was edited; nothing was pushed")
}

/// `KEY=VALUE`: the value is JSON when it parses as JSON, else a string.
pub fn parse_assignment(text: &str) -> anyhow::Result<(String, Value)> {
    let (key, raw) = text
        .split_once('=')
        .with_context(|| format!("`{text}` is not KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        bail!("`{key}` is not a dotted path (e.g. behaviour.brute_force.per_ip.threshold)");
    }
    let value = serde_json::from_str(raw.trim()).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((key.to_owned(), value))
}

/// Sets `path` (dots; numbers index arrays) in `doc`, creating missing objects on the way.
pub fn set_path(doc: &mut Value, path: &str, value: Value) -> anyhow::Result<()> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut node = doc;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let here = parts[..=i].join(".");
        if node.is_null() {
            *node = Value::Object(serde_json::Map::new());
        }
        node = match node {
            Value::Object(map) => {
                if last {
                    map.insert((*part).to_owned(), value);
                    return Ok(());
                }
                map.entry((*part).to_owned()).or_insert(Value::Null)
            }
            Value::Array(items) => {
                let index: usize = part
                    .parse()
                    .with_context(|| format!("`{here}`: `{part}` is not an index of a list"))?;
                let len = items.len();
                let slot = items.get_mut(index).with_context(|| {
                    format!("`{here}`: index {index} is past the end of a list of {len}")
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => bail!("`{here}`: cannot set a field inside a {}", kind(node)),
        };
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assignments_parse_json_or_strings() {
        assert_eq!(
            parse_assignment("behaviour.brute_force.per_ip.threshold=20").unwrap(),
            ("behaviour.brute_force.per_ip.threshold".into(), json!(20))
        );
        assert_eq!(
            parse_assignment("mode=monitor").unwrap().1,
            json!("monitor")
        );
        assert_eq!(parse_assignment("a=[1,2]").unwrap().1, json!([1, 2]));
        assert_eq!(parse_assignment("a=x=y").unwrap().1, json!("x=y"));
        assert!(parse_assignment("novalue").is_err());
        assert!(parse_assignment("a..b=1").is_err());
    }

    #[test]
    fn paths_create_objects_and_index_lists() {
        let mut doc = json!({"mode": "enforce", "rules": [{"id": "a"}]});
        set_path(
            &mut doc,
            "behaviour.brute_force.per_ip.threshold",
            json!(20),
        )
        .unwrap();
        assert_eq!(doc["behaviour"]["brute_force"]["per_ip"]["threshold"], 20);
        set_path(&mut doc, "rules.0.id", json!("b")).unwrap();
        assert_eq!(doc["rules"][0]["id"], "b");
        let e = set_path(&mut doc, "rules.3.id", json!(1)).unwrap_err();
        assert!(e.to_string().contains("rules.3"), "{e}");
        let e = set_path(&mut doc, "mode.x", json!(1)).unwrap_err();
        assert!(e.to_string().contains("inside a string"), "{e}");
    }

    #[test]
    fn invalid_edits_name_the_field() {
        let e = validate(json!({"anomaly_threshold": "high"})).unwrap_err();
        assert!(format!("{e:#}").contains("anomaly_threshold"), "{e:#}");
        let e = validate(json!({"exceptions": [{"rule": "sqli"}]})).unwrap_err();
        assert!(format!("{e:#}").contains("exceptions"), "{e:#}");
        assert!(validate(json!({"mode": "monitor"})).is_ok());
    }
}
