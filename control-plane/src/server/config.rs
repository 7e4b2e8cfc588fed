//! `vigil.toml`: what `vigil serve` listens on, where it keeps its data, who may call it.
//!
//! ```toml
//! listen = "127.0.0.1:18000"          # gRPC; non-loopback needs allow_remote = true
//! metrics_listen = "127.0.0.1:18001"  # GET /metrics, GET /healthz
//! database = "vigil.db"               # relative to this file's directory
//! allow_remote = false
//! [auth]
//! admin_tokens = ["..."]              # push, rollback, read
//! viewer_tokens = ["..."]             # read
//! node_tokens = ["..."]               # edges: RuleService, EventService
//! admin_token_files = ["admin.token"] # one token per file (trimmed); same for viewer_, node_
//! [tls]                               # optional
//! cert = "server.crt"
//! key = "server.key"
//! [alerting]                          # optional: see alerting::config
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::auth::{Role, Tokens};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_metrics_listen")]
    metrics_listen: String,
    #[serde(default = "default_database")]
    database: PathBuf,
    #[serde(default)]
    allow_remote: bool,
    #[serde(default)]
    auth: RawAuth,
    tls: Option<RawTls>,
    alerting: Option<super::alerting::config::RawAlerting>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    admin_tokens: Vec<String>,
    #[serde(default)]
    admin_token_files: Vec<PathBuf>,
    #[serde(default)]
    viewer_tokens: Vec<String>,
    #[serde(default)]
    viewer_token_files: Vec<PathBuf>,
    #[serde(default)]
    node_tokens: Vec<String>,
    #[serde(default)]
    node_token_files: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

fn default_listen() -> String {
    "127.0.0.1:18000".into()
}
fn default_metrics_listen() -> String {
    "127.0.0.1:18001".into()
}
fn default_database() -> PathBuf {
    "vigil.db".into()
}

/// A loaded configuration: addresses parsed, paths absolute (relative to the file), tokens read.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub database: PathBuf,
    pub allow_remote: bool,
    pub tokens: Tokens,
    pub tls: Option<TlsFiles>,
    pub alerting: super::alerting::config::AlertingConfig,
    /// Accepted but worth a log line (e.g. short tokens).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Tokens shorter than this are accepted with a warning.
pub const SHORT_TOKEN: usize = 16;

pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &path.display().to_string(), base)
}

/// Parses a configuration; relative paths in it are resolved against `base`.
pub fn parse(text: &str, name: &str, base: &Path) -> Result<ServeConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: name.to_owned(),
        message: e.to_string(),
    })?;
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        path: name.to_owned(),
        key: key.to_owned(),
        message,
    };
    let address = |key: &str, value: &str| -> Result<SocketAddr, ConfigError> {
        let addr: SocketAddr = value.parse().map_err(|_| {
            invalid(
                key,
                format!("`{value}` is not an IP address and port (e.g. 127.0.0.1:18000)"),
            )
        })?;
        if !raw.allow_remote && !addr.ip().is_loopback() {
            return Err(invalid(
                key,
                format!("{addr} is not a loopback address; set `allow_remote = true` to serve other machines"),
            ));
        }
        Ok(addr)
    };
    let listen = address("listen", &raw.listen)?;
    let metrics_listen = address("metrics_listen", &raw.metrics_listen)?;

    let resolve = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };

    let mut tokens = Tokens::default();
    let mut warnings = Vec::new();
    let lists = [
        (
            "auth.admin_tokens",
            "auth.admin_token_files",
            Role::Admin,
            &raw.auth.admin_tokens,
            &raw.auth.admin_token_files,
        ),
        (
            "auth.viewer_tokens",
            "auth.viewer_token_files",
            Role::Viewer,
            &raw.auth.viewer_tokens,
            &raw.auth.viewer_token_files,
        ),
        (
            "auth.node_tokens",
            "auth.node_token_files",
            Role::Node,
            &raw.auth.node_tokens,
            &raw.auth.node_token_files,
        ),
    ];
    for (key, files_key, role, inline, files) in lists {
        // (where it was configured, the token, its name in the audit trail)
        let mut all: Vec<(String, String, String)> = inline
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    key.to_owned(),
                    t.trim().to_owned(),
                    format!("{}#{}", role.as_str(), i + 1),
                )
            })
            .collect();
        for file in files {
            let file = resolve(file);
            let token = std::fs::read_to_string(&file)
                .map_err(|e| invalid(files_key, format!("cannot read {}: {e}", file.display())))?;
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| role.as_str().to_owned());
            all.push((
                format!("{files_key} ({})", file.display()),
                token.trim().to_owned(),
                name,
            ));
        }
        for (origin, token, name) in all {
            if token.is_empty() {
                return Err(invalid(&origin, "a token is empty".into()));
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(
                    &origin,
                    "a token contains whitespace or control characters".into(),
                ));
            }
            if let Some(other) = tokens.role_of(&token) {
                return Err(invalid(
                    &origin,
                    format!("a token is also configured as a {} token", other.as_str()),
                ));
            }
            if token.chars().count() < SHORT_TOKEN {
                warnings.push(format!(
                    "{origin}: a token is shorter than {SHORT_TOKEN} characters; use long random tokens"
                ));
            }
            tokens.add(&token, role, &name);
        }
    }
    if tokens.is_empty() {
        return Err(invalid(
            "auth",
            "no tokens configured: every call would be refused (set admin_tokens, viewer_tokens or node_tokens)".into(),
        ));
    }

    let alerting = super::alerting::config::parse(raw.alerting.unwrap_or_default(), base)
        .map_err(|e| invalid(&e.key, e.message))?;

    Ok(ServeConfig {
        alerting,
        listen,
        metrics_listen,
        database: resolve(&raw.database),
        allow_remote: raw.allow_remote,
        tokens,
        tls: raw.tls.map(|t| TlsFiles {
            cert: resolve(&t.cert),
            key: resolve(&t.key),
        }),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("node.token"), "  node-secret-0123456789\n").unwrap();
        let cfg_path = dir.path().join("vigil.toml");
        std::fs::write(
            &cfg_path,
            r#"
listen = "127.0.0.1:0"
database = "data/vigil.db"
[auth]
admin_tokens = ["admin-secret-0123456789"]
node_token_files = ["node.token"]
[tls]
cert = "tls/server.crt"
key = "/etc/vigil/server.key"
"#,
        )
        .unwrap();
        let cfg = load(&cfg_path).unwrap();
        assert_eq!(cfg.listen.port(), 0);
        assert_eq!(cfg.metrics_listen.port(), 18001);
        assert_eq!(cfg.database, dir.path().join("data/vigil.db"));
        let tls = cfg.tls.unwrap();
        assert_eq!(tls.cert, dir.path().join("tls/server.crt"));
        assert_eq!(tls.key, PathBuf::from("/etc/vigil/server.key"));
        assert_eq!(
            cfg.tokens.role_of("node-secret-0123456789"),
            Some(Role::Node)
        );
        assert_eq!(
            cfg.tokens.role_of("admin-secret-0123456789"),
            Some(Role::Admin)
        );
        assert_eq!(cfg.tokens.role_of("node-secret"), None);
    }

    #[test]
    fn refuses_remote_without_opt_in() {
        let base = Path::new("/tmp");
        let text = "listen = \"0.0.0.0:18000\"\n[auth]\nadmin_tokens = [\"t\"]\n";
        let err = parse(text, "vigil.toml", base).unwrap_err().to_string();
        assert!(
            err.contains("listen") && err.contains("allow_remote"),
            "{err}"
        );
        let text = format!("allow_remote = true\n{text}");
        assert!(parse(&text, "vigil.toml", base).is_ok());
    }

    #[test]
    fn refuses_bad_configs() {
        let base = Path::new("/tmp");
        let cases = [
            ("lisen = \"x\"\n", "lisen"),
            ("[auth]\nadmin_tokens = []\n", "no tokens"),
            (
                "[auth]\nadmin_tokens = [\"a\"]\nnode_tokens = [\"a\"]\n",
                "also configured",
            ),
            ("[auth]\nadmin_tokens = [\"  \"]\n", "empty"),
            (
                "[auth]\nnode_token_files = [\"/nonexistent/x\"]\n",
                "cannot read",
            ),
            (
                "listen = \"localhost\"\n[auth]\nadmin_tokens = [\"a\"]\n",
                "not an IP",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text, "vigil.toml", base).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
