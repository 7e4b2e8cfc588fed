//! Reading policy files: YAML for authors, JSON accepted too; both become the same document.

use std::path::Path;

use anyhow::Context;
use vigil_engine::PolicyDocument;

pub fn load(path: &Path) -> anyhow::Result<PolicyDocument> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a valid policy", path.display()))
}

/// YAML is a superset of JSON, so one parser serves both; the value is then checked by the engine.
pub fn parse(text: &str) -> anyhow::Result<PolicyDocument> {
    if text.trim().is_empty() {
        return Ok(PolicyDocument::default());
    }
    let value: serde_json::Value =
        serde_yaml_ng::from_str(text).context("not valid YAML or JSON")?;
    Ok(PolicyDocument::from_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_give_the_same_document() {
        let yaml = "mode: monitor\nanomaly_threshold: 7\nexceptions:\n  - rule: sqli\n    route: /search\n    param: q\n";
        let json = r#"{"mode":"monitor","anomaly_threshold":7,"exceptions":[{"rule":"sqli","route":"/search","param":"q"}]}"#;
        assert_eq!(parse(yaml).unwrap(), parse(json).unwrap());
    }

    #[test]
    fn yaml_errors_name_rule_and_field() {
        let yaml = "custom_rules:\n  - id: block-admin\n    targets: [path]\n    contains: /admin\n    action: deny\n";
        let err = format!("{:#}", parse(yaml).unwrap_err());
        assert!(
            err.contains("block-admin") && err.contains("custom_rules[0].action"),
            "{err}"
        );
    }
}
