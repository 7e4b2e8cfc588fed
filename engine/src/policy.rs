//! The policy document: what rule authors write (YAML, converted to JSON by the CLI) and what
//! travels on the wire (JSON). Parsing never panics; every error names the rule and field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::behaviour::BehaviourSettings;
use crate::model::{Category, Mode, RuleAction, Severity};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Free-form version label, reported in stats and by the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub mode: Mode,
    /// A request whose blocking findings add up to this score is blocked.
    #[serde(default = "defaults::anomaly_threshold")]
    pub anomaly_threshold: u32,
    #[serde(default)]
    pub limits: Limits,
    /// Per category: turn a whole pack off or change its action.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packs: BTreeMap<String, PackSettings>,
    /// Per built-in rule id: turn it off or change its action or severity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, RuleOverride>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_rules: Vec<CustomRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<Exception>,
    #[serde(default)]
    pub auth: AuthSettings,
    /// Behaviour detectors, each off until named here.
    #[serde(default, skip_serializing_if = "BehaviourSettings::is_default")]
    pub behaviour: BehaviourSettings,
}

mod defaults {
    pub fn anomaly_threshold() -> u32 {
        5
    }
    pub fn body_bytes() -> u32 {
        64 * 1024
    }
    pub fn header_value_bytes() -> u32 {
        8 * 1024
    }
    pub fn yes() -> bool {
        true
    }
    pub fn api_key_headers() -> Vec<String> {
        vec!["x-api-key".into()]
    }
    pub fn session_cookies() -> Vec<String> {
        vec!["session".into(), "sessionid".into(), "sid".into()]
    }
    pub fn jwt_leeway_secs() -> u64 {
        60
    }
}

impl Default for PolicyDocument {
    fn default() -> Self {
        PolicyDocument {
            version: None,
            mode: Mode::Enforce,
            anomaly_threshold: defaults::anomaly_threshold(),
            limits: Limits::default(),
            packs: BTreeMap::new(),
            rules: BTreeMap::new(),
            custom_rules: Vec::new(),
            routes: Vec::new(),
            exceptions: Vec::new(),
            auth: AuthSettings::default(),
            behaviour: BehaviourSettings::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Request bodies are inspected up to this many bytes; the rest passes uninspected and is counted.
    #[serde(default = "defaults::body_bytes")]
    pub body_bytes: u32,
    /// A single header value longer than this is a finding.
    #[serde(default = "defaults::header_value_bytes")]
    pub header_value_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: defaults::body_bytes(),
            header_value_bytes: defaults::header_value_bytes(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackSettings {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RuleAction>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RuleAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// A rule written by the policy author. Exactly one of `pattern`, `contains`, `equals`, `one_of`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    pub id: String,
    #[serde(default = "CustomRule::default_category")]
    pub category: Category,
    #[serde(default = "CustomRule::default_severity")]
    pub severity: Severity,
    #[serde(default = "CustomRule::default_action")]
    pub action: RuleAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `path`, `query`, `query_names`, `headers`, `header:NAME`, `user_agent`, `cookies`,
    /// `cookie:NAME`, `body`, `body_keys`, `param:NAME` (query or body field), `any`.
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
    #[serde(default)]
    pub case_sensitive: bool,
}

impl CustomRule {
    fn default_category() -> Category {
        Category::Custom
    }
    fn default_severity() -> Severity {
        Severity::Critical
    }
    fn default_action() -> RuleAction {
        RuleAction::Block
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// `/users/{id}`: `{name}` or `*` match one segment, a trailing `**` matches the rest.
    pub path: String,
    /// Empty means every method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Requests without credentials (bearer token, API key or session cookie) are blocked.
    #[serde(default)]
    pub require_auth: bool,
}

/// A known false positive: `rule` (an id, a category, or `*`) does not apply on `route`,
/// optionally only to one parameter (query or body field, header or cookie name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    pub rule: String,
    pub route: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Headers that carry API keys (count as credentials).
    #[serde(default = "defaults::api_key_headers")]
    pub api_key_headers: Vec<String>,
    /// Cookies that carry a session (count as credentials).
    #[serde(default = "defaults::session_cookies")]
    pub session_cookies: Vec<String>,
    /// Clock skew allowed before a JWT counts as expired.
    #[serde(default = "defaults::jwt_leeway_secs")]
    pub jwt_leeway_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            api_key_headers: defaults::api_key_headers(),
            session_cookies: defaults::session_cookies(),
            jwt_leeway_secs: defaults::jwt_leeway_secs(),
        }
    }
}

/// Why a policy was refused. `rule` and `field` point the author at the exact place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid JSON: {0}")]
    Syntax(String),
    #[error("{}field `{field}`: {message}", rule.as_ref().map(|r| format!("rule `{r}`: ")).unwrap_or_default())]
    Invalid {
        rule: Option<String>,
        field: String,
        message: String,
    },
}

impl PolicyError {
    pub fn invalid(
        rule: Option<&str>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        PolicyError::Invalid {
            rule: rule.map(str::to_owned),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl PolicyDocument {
    /// Parses a policy from JSON text. An empty (or whitespace-only) text is the default policy.
    pub fn from_json(text: &str) -> Result<PolicyDocument, PolicyError> {
        if text.trim().is_empty() {
            return Ok(PolicyDocument::default());
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        Self::from_value(value)
    }

    /// Parses a policy from a JSON value (the CLI converts YAML to this).
    pub fn from_value(value: serde_json::Value) -> Result<PolicyDocument, PolicyError> {
        serde_path_to_error::deserialize::<_, PolicyDocument>(&value).map_err(|err| {
            let path = err.path().to_string();
            let rule = rule_at_path(&value, &path);
            let message = err.into_inner().to_string();
            PolicyError::Invalid {
                rule,
                field: path,
                message,
            }
        })
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data structures cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Finds the rule a serde error path points into, so the message can name it.
fn rule_at_path(value: &serde_json::Value, path: &str) -> Option<String> {
    let indexed = |section: &str, key: &str| -> Option<String> {
        let rest = path.strip_prefix(section)?.strip_prefix('[')?;
        let index: usize = rest.split(']').next()?.parse().ok()?;
        value
            .get(section)?
            .get(index)?
            .get(key)?
            .as_str()
            .map(str::to_owned)
    };
    indexed("custom_rules", "id")
        .or_else(|| indexed("exceptions", "rule"))
        .or_else(|| {
            let rest = path.strip_prefix("rules.")?;
            Some(rest.split('.').next()?.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default() {
        assert_eq!(
            PolicyDocument::from_json("  ").unwrap(),
            PolicyDocument::default()
        );
    }

    #[test]
    fn errors_name_rule_and_field() {
        let err = PolicyDocument::from_json(
            r#"{"custom_rules": [{"id": "ok", "targets": ["path"], "contains": "x"},
                                  {"id": "block-admin", "targets": ["path"], "severity": "hgih"}]}"#,
        )
        .unwrap_err();
        match &err {
            PolicyError::Invalid { rule, field, .. } => {
                assert_eq!(rule.as_deref(), Some("block-admin"));
                assert_eq!(field, "custom_rules[1].severity");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("block-admin"), "{err}");

        let err =
            PolicyDocument::from_json(r#"{"rules": {"sqli-union-select": {"acton": "monitor"}}}"#)
                .unwrap_err();
        assert!(
            err.to_string().contains("rule `sqli-union-select`"),
            "{err}"
        );
        assert!(err.to_string().contains("acton"), "{err}");
    }

    #[test]
    fn unknown_top_level_fields_are_refused() {
        let err = PolicyDocument::from_json(r#"{"mdoe": "monitor"}"#).unwrap_err();
        assert!(err.to_string().contains("mdoe"), "{err}");
    }

    #[test]
    fn round_trips_through_json() {
        let doc =
            PolicyDocument::from_json(r#"{"mode": "monitor", "anomaly_threshold": 7}"#).unwrap();
        assert_eq!(PolicyDocument::from_json(&doc.to_json()).unwrap(), doc);
    }
}
