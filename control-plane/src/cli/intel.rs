//! `vigil intel load|list`: the reputation list (addresses and CIDRs with labels) every edge
//! matches client addresses against.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use vigil_engine::behaviour::AddressRange;
use vigil_proto::v1::{IntelEntry, ListIntelRequest, LoadIntelRequest};

use super::client::{status_error, Client};
use super::{block_on, ServerArgs};

#[derive(Subcommand, Debug)]
pub enum IntelCommand {
    /// Replace the reputation list with FILE: one address or CIDR per line, optionally followed
    /// by a label (after whitespace or a comma); `#` starts a comment. One bad line refuses the
    /// whole file (nothing is pushed).
    Load {
        file: PathBuf,
        /// Where the list came from, for the audit trail (default: the file name).
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The loaded list.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct IntelLineError {
    pub line: usize,
    pub message: String,
}

/// Parses a reputation list; the first bad line (1-based) is the error.
pub fn parse(text: &str) -> Result<Vec<IntelEntry>, IntelLineError> {
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (cidr, label) = match line.find(|c: char| c == ',' || c.is_whitespace()) {
            Some(at) => (&line[..at], line[at + 1..].trim_start_matches(',').trim()),
            None => (line, ""),
        };
        AddressRange::parse(cidr).map_err(|message| IntelLineError {
            line: i + 1,
            message,
        })?;
        entries.push(IntelEntry {
            cidr: cidr.to_owned(),
            label: label.to_owned(),
        });
    }
    Ok(entries)
}

pub fn run(command: IntelCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        IntelCommand::Load { file, source, json } => block_on(load(server, &file, source, json))?,
        IntelCommand::List { json } => block_on(list(server, json))?,
    }
}

async fn load(
    server: &ServerArgs,
    file: &Path,
    source: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let entries = parse(&text)
        .with_context(|| format!("{} was not loaded (nothing was pushed)", file.display()))?;
    let source = source.unwrap_or_else(|| {
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let client = Client::connect(server).await?;
    let response = client
        .admin()
        .load_intel(LoadIntelRequest { entries, source })
        .await
        .map_err(status_error)?
        .into_inner();
    if json {
        println!(
            "{}",
            serde_json::json!({"loaded": response.loaded, "revision": response.revision})
        );
    } else {
        println!(
            "loaded {} entries (revision {}); every edge matches them now",
            response.loaded, response.revision
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(server: &ServerArgs, json: bool) -> anyhow::Result<ExitCode> {
    let client = Client::connect(server).await?;
    let list = client
        .admin()
        .list_intel(ListIntelRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if json {
        for e in &list.entries {
            println!("{}", serde_json::json!({"cidr": e.cidr, "label": e.label}));
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("revision {}, {} entries", list.revision, list.entries.len());
    for e in &list.entries {
        println!("{:<43} {}", e.cidr, e.label);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_labels() {
        let text = "# bad addresses\n192.0.2.0/24 tor-exit\n\n203.0.113.9,scanner  # seen 2x\n2001:db8::/32\t  cloud vps\n";
        let entries = parse(text).unwrap();
        let pairs: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.cidr.as_str(), e.label.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("192.0.2.0/24", "tor-exit"),
                ("203.0.113.9", "scanner"),
                ("2001:db8::/32", "cloud vps"),
            ]
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = parse("192.0.2.0/24\n# ok\n10.0.0.0/33 x\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.to_string().starts_with("line 3:"), "{err}");
        assert_eq!(parse("not-an-ip\n").unwrap_err().line, 1);
    }
}
