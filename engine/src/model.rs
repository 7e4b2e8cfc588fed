//! The small vocabulary shared by policies, rules and verdicts.

use serde::{Deserialize, Serialize};

/// How bad a finding is; each severity adds its score to the request's anomaly score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// What a rule asks for when it matches: count towards a block, or only record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Block,
    Monitor,
}

impl RuleAction {
    pub const ALL: [RuleAction; 2] = [Self::Block, Self::Monitor];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Monitor => "monitor",
        }
    }
}

/// Policy-wide mode: `monitor` records everything and never blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Monitor,
}

/// Attack classes. The names are stable: they appear in stats, events and policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Sqli,
    Nosqli,
    Xss,
    Cmdi,
    PathTraversal,
    Ssrf,
    Jndi,
    Ssti,
    Xxe,
    CodeInjection,
    Ldapi,
    Scanner,
    Protocol,
    Auth,
    Custom,
}

impl Category {
    pub const ALL: [Category; 15] = [
        Self::Sqli,
        Self::Nosqli,
        Self::Xss,
        Self::Cmdi,
        Self::PathTraversal,
        Self::Ssrf,
        Self::Jndi,
        Self::Ssti,
        Self::Xxe,
        Self::CodeInjection,
        Self::Ldapi,
        Self::Scanner,
        Self::Protocol,
        Self::Auth,
        Self::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqli => "sqli",
            Self::Nosqli => "nosqli",
            Self::Xss => "xss",
            Self::Cmdi => "cmdi",
            Self::PathTraversal => "path_traversal",
            Self::Ssrf => "ssrf",
            Self::Jndi => "jndi",
            Self::Ssti => "ssti",
            Self::Xxe => "xxe",
            Self::CodeInjection => "code_injection",
            Self::Ldapi => "ldapi",
            Self::Scanner => "scanner",
            Self::Protocol => "protocol",
            Self::Auth => "auth",
            Self::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Dense index for per-category tables (stats, pack settings).
    pub fn index(self) -> usize {
        self as usize
    }
}
