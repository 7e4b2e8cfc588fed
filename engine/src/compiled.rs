//! Turning a [`PolicyDocument`] into the structures the request path uses: done once, at
//! configure time, and the only place a policy can be refused.

use crate::behaviour::CompiledBehaviour;
use crate::detect;
use crate::jwt::TokenShape;
use crate::memo::Memo;
use crate::model::{Category, Mode, RuleAction, Severity};
use crate::policy::{PolicyDocument, PolicyError};
use crate::routes::RoutePattern;
use crate::signatures::{packs, MatcherSource, SignatureSet, SignatureSource};
use crate::targets::{Scope, TargetKind};

/// A rule as the request path sees it, after pack settings and overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub id: String,
    pub category: Category,
    pub severity: Severity,
    pub action: RuleAction,
    pub description: String,
}

/// Checks that are not signatures but behave like rules (ids, overrides, exceptions).
pub mod check_ids {
    pub const JWT_ALG_NONE: &str = "jwt-alg-none";
    pub const JWT_MALFORMED: &str = "jwt-malformed";
    pub const JWT_EXPIRED: &str = "jwt-expired";
    pub const AUTH_MISSING: &str = "auth-missing";
    pub const HEADER_OVERSIZED: &str = "header-oversized";
}

struct BuiltinCheck {
    id: &'static str,
    category: Category,
    severity: Severity,
    action: RuleAction,
    description: &'static str,
}

const CHECKS: [BuiltinCheck; 5] = [
    BuiltinCheck {
        id: check_ids::JWT_ALG_NONE,
        category: Category::Protocol,
        severity: Severity::Critical,
        action: RuleAction::Block,
        description: "JWT with alg none (unsigned)",
    },
    BuiltinCheck {
        id: check_ids::JWT_MALFORMED,
        category: Category::Protocol,
        severity: Severity::High,
        action: RuleAction::Block,
        description: "bearer token shaped like a JWT that does not decode",
    },
    // Expiry is recorded, not blocked: jwt_authn or the API rejects it, and clocks drift.
    BuiltinCheck {
        id: check_ids::JWT_EXPIRED,
        category: Category::Protocol,
        severity: Severity::Low,
        action: RuleAction::Monitor,
        description: "JWT past its exp",
    },
    BuiltinCheck {
        id: check_ids::AUTH_MISSING,
        category: Category::Auth,
        severity: Severity::Critical,
        action: RuleAction::Block,
        description: "no credentials on a route that requires them",
    },
    BuiltinCheck {
        id: check_ids::HEADER_OVERSIZED,
        category: Category::Protocol,
        severity: Severity::High,
        action: RuleAction::Block,
        description: "header value longer than the policy limit",
    },
];

/// Index of each check in the rule table (they come first, in [`CHECKS`] order).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    JwtAlgNone = 0,
    JwtMalformed = 1,
    JwtExpired = 2,
    AuthMissing = 3,
    HeaderOversized = 4,
}

pub(crate) struct CompiledRoute {
    pub pattern: RoutePattern,
    pub methods: Vec<String>,
    pub require_auth: bool,
}

pub(crate) enum ExceptionRule {
    Any,
    Category(Category),
    Id(String),
}

pub(crate) struct CompiledException {
    pub rule: ExceptionRule,
    pub route: RoutePattern,
    pub param: Option<String>,
}

pub struct CompiledPolicy {
    pub(crate) document: PolicyDocument,
    pub(crate) rules: Vec<RuleInfo>,
    /// `enabled[i]` tells whether rule `i` can fire (disabled rules keep their slot).
    pub(crate) enabled: Vec<bool>,
    pub(crate) signatures: SignatureSet,
    /// Index of the first of [`detect::protocol::RULES`] in `rules`.
    pub(crate) protocol_base: usize,
    pub(crate) routes: Vec<CompiledRoute>,
    pub(crate) exceptions: Vec<CompiledException>,
    pub(crate) api_key_headers: Vec<String>,
    pub(crate) session_cookies: Vec<String>,
    pub(crate) behaviour: CompiledBehaviour,
    /// Signature matches (rule, matched text) of header values and parameter/key names.
    pub(crate) scan_memo: Memo<Vec<(usize, Vec<u8>)>>,
    /// Decoded bearer tokens.
    pub(crate) token_memo: Memo<TokenShape>,
}

/// Slots of the per-policy memos (see [`crate::memo`]): enough for the headers and names of
/// many distinct clients, a few hundred KiB at most.
const SCAN_MEMO_SLOTS: usize = 512;
const TOKEN_MEMO_SLOTS: usize = 128;

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("version", &self.document.version)
            .field("mode", &self.document.mode)
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// The largest body limit a policy may set: the filter buffers this much per request.
pub const MAX_BODY_LIMIT: u32 = 8 << 20;

impl CompiledPolicy {
    /// The built-in default policy: every pack, enforce mode.
    pub fn builtin() -> Result<CompiledPolicy, PolicyError> {
        CompiledPolicy::compile(PolicyDocument::default())
    }

    /// Parses and compiles JSON text; empty text is the built-in default policy.
    pub fn from_json(text: &str) -> Result<CompiledPolicy, PolicyError> {
        CompiledPolicy::compile(PolicyDocument::from_json(text)?)
    }

    pub fn compile(document: PolicyDocument) -> Result<CompiledPolicy, PolicyError> {
        validate_settings(&document)?;
        let pack_settings = pack_settings(&document)?;

        let mut rules = Vec::new();
        let mut enabled = Vec::new();
        // Every built-in rule takes a slot, with the policy's pack and rule overrides applied;
        // returns the slot and whether the rule is on.
        let mut add_builtin = |rules: &mut Vec<RuleInfo>,
                               id: &str,
                               category: Category,
                               severity: Severity,
                               action: RuleAction,
                               description: &str| {
            let info = RuleInfo {
                id: id.into(),
                category,
                severity,
                action,
                description: description.into(),
            };
            let (info, on) = apply_overrides(&document, &pack_settings, info);
            rules.push(info);
            enabled.push(on);
            (rules.len() - 1, on)
        };
        for c in &CHECKS {
            add_builtin(
                &mut rules,
                c.id,
                c.category,
                c.severity,
                c.action,
                c.description,
            );
        }
        let mut sources = Vec::new();
        for def in packs::BUILTIN {
            let (rule, on) = add_builtin(
                &mut rules,
                def.id,
                def.category,
                def.severity,
                RuleAction::Block,
                def.description,
            );
            if on {
                sources.push(SignatureSource {
                    rule,
                    scope: def.scope,
                    target_name: None,
                    literals: def.literals.iter().map(|l| (*l).to_owned()).collect(),
                    matcher: MatcherSource::Regex(def.pattern),
                    case_insensitive: true,
                });
            }
        }
        for def in detect::BUILTIN {
            let (rule, on) = add_builtin(
                &mut rules,
                def.id,
                def.category,
                def.severity,
                RuleAction::Block,
                def.description,
            );
            for gate in def.gates.iter().filter(|_| on) {
                sources.push(SignatureSource {
                    rule,
                    scope: def.scope,
                    target_name: None,
                    literals: gate.literals.iter().map(|l| (*l).to_owned()).collect(),
                    matcher: MatcherSource::Native(gate.detect),
                    case_insensitive: true,
                });
            }
        }
        let protocol_base = rules.len();
        for def in detect::protocol::RULES {
            add_builtin(
                &mut rules,
                def.id,
                def.category,
                def.severity,
                RuleAction::Block,
                def.description,
            );
        }
        for name in document.rules.keys() {
            if !rules.iter().any(|r| &r.id == name) {
                return Err(PolicyError::invalid(
                    Some(name),
                    format!("rules.{name}"),
                    "no built-in rule has this id",
                ));
            }
        }

        let custom_patterns = custom_patterns(&document, &rules)?;
        for (i, (rule, pattern)) in document
            .custom_rules
            .iter()
            .zip(&custom_patterns)
            .enumerate()
        {
            let field = format!("custom_rules[{i}]");
            let on = pack_settings[rule.category.index()].0;
            let action = pack_settings[rule.category.index()]
                .1
                .unwrap_or(rule.action);
            for target in &rule.targets {
                let (scope, target_name) = parse_custom_target(target).map_err(|m| {
                    PolicyError::invalid(Some(&rule.id), format!("{field}.targets"), m)
                })?;
                if on {
                    sources.push(SignatureSource {
                        rule: rules.len(),
                        scope,
                        target_name,
                        literals: pattern.literals.clone(),
                        matcher: MatcherSource::Regex(&pattern.regex),
                        case_insensitive: !rule.case_sensitive,
                    });
                }
            }
            // Custom rules have no built-in defaults for `rules.<id>` to override.
            rules.push(RuleInfo {
                id: rule.id.clone(),
                category: rule.category,
                severity: rule.severity,
                action,
                description: rule.description.clone().unwrap_or_default(),
            });
            enabled.push(on);
        }
        let signatures = SignatureSet::compile(sources).map_err(|(rule_index, err)| {
            let id = rules.get(rule_index).map(|r| r.id.clone());
            let field = document
                .custom_rules
                .iter()
                .position(|c| Some(&c.id) == id.as_ref())
                .map(|i| format!("custom_rules[{i}].pattern"))
                .unwrap_or_else(|| "pattern".into());
            PolicyError::invalid(id.as_deref(), field, err.0)
        })?;

        let routes = compile_routes(&document)?;
        let route_names: Vec<String> = document.routes.iter().map(|r| r.path.clone()).collect();
        let behaviour = CompiledBehaviour::compile(&document.behaviour, &route_names)?;
        let exceptions = compile_exceptions(&document, &rules)?;
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
        Ok(CompiledPolicy {
            api_key_headers: lower(&document.auth.api_key_headers),
            session_cookies: lower(&document.auth.session_cookies),
            document,
            rules,
            enabled,
            signatures,
            protocol_base,
            routes,
            exceptions,
            behaviour,
            scan_memo: Memo::new(SCAN_MEMO_SLOTS),
            token_memo: Memo::new(TOKEN_MEMO_SLOTS),
        })
    }

    pub fn behaviour(&self) -> &CompiledBehaviour {
        &self.behaviour
    }

    /// Headers that carry API keys (lower case).
    pub fn api_key_headers(&self) -> &[String] {
        &self.api_key_headers
    }

    /// Builds what matching builds lazily (the one-pass set), so that the first request
    /// after a policy switch does not pay for it. Tools that only validate skip this.
    pub fn prepare(&self) {
        self.signatures.prepare();
    }

    pub fn document(&self) -> &PolicyDocument {
        &self.document
    }

    pub fn mode(&self) -> Mode {
        self.document.mode
    }

    pub fn version(&self) -> &str {
        self.document.version.as_deref().unwrap_or("builtin")
    }

    pub fn body_limit(&self) -> usize {
        self.document.limits.body_bytes as usize
    }

    /// Every rule known to this policy (enabled or not), for listings and documentation.
    pub fn rules(&self) -> impl Iterator<Item = (&RuleInfo, bool)> {
        self.rules.iter().zip(self.enabled.iter().copied())
    }

    pub(crate) fn check(&self, check: Check) -> Option<usize> {
        let i = check as usize;
        self.enabled[i].then_some(i)
    }
}

fn validate_settings(doc: &PolicyDocument) -> Result<(), PolicyError> {
    if doc.anomaly_threshold == 0 {
        return Err(PolicyError::invalid(
            None,
            "anomaly_threshold",
            "must be at least 1",
        ));
    }
    if doc.limits.body_bytes == 0 || doc.limits.body_bytes > MAX_BODY_LIMIT {
        return Err(PolicyError::invalid(
            None,
            "limits.body_bytes",
            format!("must be between 1 and {MAX_BODY_LIMIT}"),
        ));
    }
    if doc.limits.header_value_bytes < 64 {
        return Err(PolicyError::invalid(
            None,
            "limits.header_value_bytes",
            "must be at least 64",
        ));
    }
    Ok(())
}

/// `(enabled, action override)` per category.
fn pack_settings(doc: &PolicyDocument) -> Result<Vec<(bool, Option<RuleAction>)>, PolicyError> {
    let mut out = vec![(true, None); Category::ALL.len()];
    for (name, settings) in &doc.packs {
        let cat = Category::parse(name).ok_or_else(|| {
            let known: Vec<_> = Category::ALL.iter().map(|c| c.as_str()).collect();
            PolicyError::invalid(
                None,
                format!("packs.{name}"),
                format!("unknown pack; known: {}", known.join(", ")),
            )
        })?;
        out[cat.index()] = (settings.enabled, settings.action);
    }
    Ok(out)
}

fn apply_overrides(
    doc: &PolicyDocument,
    packs: &[(bool, Option<RuleAction>)],
    mut info: RuleInfo,
) -> (RuleInfo, bool) {
    let (mut on, pack_action) = packs[info.category.index()];
    if let Some(action) = pack_action {
        info.action = action;
    }
    if let Some(o) = doc.rules.get(&info.id) {
        on = o.enabled.unwrap_or(on);
        info.action = o.action.unwrap_or(info.action);
        info.severity = o.severity.unwrap_or(info.severity);
    }
    (info, on)
}

struct CustomPattern {
    regex: String,
    literals: Vec<String>,
}

fn custom_patterns(
    doc: &PolicyDocument,
    builtin: &[RuleInfo],
) -> Result<Vec<CustomPattern>, PolicyError> {
    let mut out: Vec<CustomPattern> = Vec::with_capacity(doc.custom_rules.len());
    for (i, rule) in doc.custom_rules.iter().enumerate() {
        let field = |f: &str| format!("custom_rules[{i}].{f}");
        let id = Some(rule.id.as_str());
        if rule.id.is_empty()
            || rule.id.len() > 64
            || !rule
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(PolicyError::invalid(
                id,
                field("id"),
                "must be 1-64 characters of a-z, 0-9, '-', '_', '.'",
            ));
        }
        if builtin.iter().any(|r| r.id == rule.id) {
            return Err(PolicyError::invalid(
                id,
                field("id"),
                "clashes with a built-in rule id",
            ));
        }
        if doc.custom_rules[..i].iter().any(|r| r.id == rule.id) {
            return Err(PolicyError::invalid(id, field("id"), "duplicate rule id"));
        }
        if rule.targets.is_empty() {
            return Err(PolicyError::invalid(
                id,
                field("targets"),
                "at least one target is required",
            ));
        }
        let set = [
            rule.pattern.is_some(),
            rule.contains.is_some(),
            rule.equals.is_some(),
            rule.one_of.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(PolicyError::invalid(
                id,
                field("pattern"),
                "exactly one of `pattern`, `contains`, `equals`, `one_of` is required",
            ));
        }
        let empty = |f: &str| PolicyError::invalid(id, field(f), "must not be empty");
        let pattern = if let Some(p) = &rule.pattern {
            if p.is_empty() {
                return Err(empty("pattern"));
            }
            CustomPattern {
                regex: p.clone(),
                literals: Vec::new(),
            }
        } else if let Some(c) = &rule.contains {
            if c.is_empty() {
                return Err(empty("contains"));
            }
            let literals = if rule.case_sensitive {
                Vec::new()
            } else {
                vec![c.clone()]
            };
            CustomPattern {
                regex: regex::escape(c),
                literals,
            }
        } else if let Some(e) = &rule.equals {
            CustomPattern {
                regex: format!("^{}$", regex::escape(e)),
                literals: Vec::new(),
            }
        } else {
            let list = rule.one_of.as_deref().unwrap_or_default();
            if list.is_empty() {
                return Err(empty("one_of"));
            }
            let alternatives: Vec<String> = list.iter().map(|s| regex::escape(s)).collect();
            CustomPattern {
                regex: format!("^(?:{})$", alternatives.join("|")),
                literals: Vec::new(),
            }
        };
        out.push(pattern);
    }
    Ok(out)
}

fn parse_custom_target(target: &str) -> Result<(Scope, Option<Vec<u8>>), String> {
    use TargetKind::*;
    let named = |prefix: &str| {
        target
            .strip_prefix(prefix)
            .filter(|n| !n.is_empty())
            .map(|n| n.to_ascii_lowercase().into_bytes())
    };
    let scope = match target {
        "path" => Scope::of(&[Path]),
        "query" => Scope::of(&[QueryValue]),
        "query_names" => Scope::of(&[QueryName]),
        "headers" => Scope::of(&[Header, UserAgent]),
        "user_agent" => Scope::of(&[UserAgent]),
        "cookies" => Scope::of(&[Cookie]),
        "body" => Scope::of(&[BodyValue, BodyRaw, BodyXml]),
        "body_keys" => Scope::of(&[BodyKey]),
        "any" => Scope::ALL,
        _ => {
            if let Some(name) = named("header:") {
                let scope = if name == b"user-agent" {
                    Scope::of(&[UserAgent])
                } else {
                    Scope::of(&[Header])
                };
                return Ok((scope, Some(name)));
            }
            if let Some(name) = named("cookie:") {
                return Ok((Scope::of(&[Cookie]), Some(name)));
            }
            if let Some(name) = named("param:") {
                return Ok((Scope::of(&[QueryValue, BodyValue]), Some(name)));
            }
            return Err(format!(
                "unknown target `{target}`; use path, query, query_names, headers, header:NAME, user_agent, cookies, cookie:NAME, body, body_keys, param:NAME or any"
            ));
        }
    };
    Ok((scope, None))
}

fn compile_routes(doc: &PolicyDocument) -> Result<Vec<CompiledRoute>, PolicyError> {
    doc.routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let pattern = RoutePattern::parse(&r.path)
                .map_err(|m| PolicyError::invalid(None, format!("routes[{i}].path"), m))?;
            let mut methods = Vec::with_capacity(r.methods.len());
            for m in &r.methods {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(PolicyError::invalid(
                        None,
                        format!("routes[{i}].methods"),
                        format!("`{m}` is not an HTTP method"),
                    ));
                }
                methods.push(m.to_ascii_uppercase());
            }
            Ok(CompiledRoute {
                pattern,
                methods,
                require_auth: r.require_auth,
            })
        })
        .collect()
}

fn compile_exceptions(
    doc: &PolicyDocument,
    rules: &[RuleInfo],
) -> Result<Vec<CompiledException>, PolicyError> {
    doc.exceptions
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let rule = if e.rule == "*" {
                ExceptionRule::Any
            } else if let Some(cat) = Category::parse(&e.rule) {
                ExceptionRule::Category(cat)
            } else if rules.iter().any(|r| r.id == e.rule) {
                ExceptionRule::Id(e.rule.clone())
            } else {
                return Err(PolicyError::invalid(
                    Some(&e.rule),
                    format!("exceptions[{i}].rule"),
                    "no rule or category has this name",
                ));
            };
            let route = RoutePattern::parse(&e.route).map_err(|m| {
                PolicyError::invalid(Some(&e.rule), format!("exceptions[{i}].route"), m)
            })?;
            Ok(CompiledException {
                rule,
                route,
                param: e.param.as_ref().map(|p| p.to_ascii_lowercase()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_compiles() {
        let p = CompiledPolicy::builtin().unwrap();
        assert_eq!(p.mode(), Mode::Enforce);
        assert!(p.rules().count() > 40);
    }

    fn err(json: &str) -> String {
        CompiledPolicy::from_json(json).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_rule_and_field() {
        let e = err(
            r#"{"custom_rules": [{"id": "bad-re", "targets": ["query"], "pattern": "(unclosed"}]}"#,
        );
        assert!(
            e.contains("rule `bad-re`") && e.contains("custom_rules[0].pattern"),
            "{e}"
        );
        let e =
            err(r#"{"custom_rules": [{"id": "t", "targets": ["querystring"], "contains": "x"}]}"#);
        assert!(
            e.contains("rule `t`") && e.contains("custom_rules[0].targets"),
            "{e}"
        );
        let e = err(
            r#"{"custom_rules": [{"id": "two", "targets": ["path"], "contains": "x", "equals": "y"}]}"#,
        );
        assert!(e.contains("rule `two`") && e.contains("exactly one"), "{e}");
        let e = err(
            r#"{"custom_rules": [{"id": "sqli-union-select", "targets": ["path"], "contains": "x"}]}"#,
        );
        assert!(e.contains("clashes"), "{e}");
        let e = err(r#"{"rules": {"no-such-rule": {"enabled": false}}}"#);
        assert!(
            e.contains("rule `no-such-rule`") && e.contains("rules.no-such-rule"),
            "{e}"
        );
        let e = err(r#"{"exceptions": [{"rule": "nope", "route": "/x"}]}"#);
        assert!(e.contains("exceptions[0].rule"), "{e}");
        let e = err(r#"{"exceptions": [{"rule": "sqli", "route": "x"}]}"#);
        assert!(e.contains("exceptions[0].route"), "{e}");
        let e = err(r#"{"packs": {"sqlx": {"enabled": false}}}"#);
        assert!(e.contains("packs.sqlx"), "{e}");
        let e = err(r#"{"anomaly_threshold": 0}"#);
        assert!(e.contains("anomaly_threshold"), "{e}");
        let e = err(r#"{"routes": [{"path": "/a/**/b"}]}"#);
        assert!(e.contains("routes[0].path"), "{e}");
        let e = err(r#"{"mode": "enforce""#);
        assert!(e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn overrides_and_packs() {
        let p = CompiledPolicy::from_json(
            r#"{"packs": {"scanner": {"enabled": false}, "xss": {"action": "monitor"}},
                "rules": {"sqli-union-select": {"action": "monitor", "severity": "high"}}}"#,
        )
        .unwrap();
        let find = |id: &str| p.rules().find(|(r, _)| r.id == id).unwrap();
        assert!(!find("scanner-user-agent").1);
        assert_eq!(find("xss-script-tag").0.action, RuleAction::Monitor);
        let (union, on) = find("sqli-union-select");
        assert!(on);
        assert_eq!(
            (union.action, union.severity),
            (RuleAction::Monitor, Severity::High)
        );
    }
}
