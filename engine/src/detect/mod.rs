//! Detectors that parse a value instead of pattern-matching it: a SQL tokenizer, a shell
//! command-line reader and a markup reader. Each is wired as a built-in rule with a stable id,
//! gated by the same literal prefilter as the regex packs, so a value without any of its
//! literals never reaches the parser.
//!
//! A detector gets one normalised value and returns the byte range that shows the attack.
//! [`protocol`] is the exception: it looks at the method and the header fields as a whole.

pub mod markup;
pub mod protocol;
pub mod shell;
pub mod sql;

use crate::model::{Category, Severity};
use crate::targets::Scope;

/// A native detector: the range of the evidence in `value`, or `None`.
pub type Detect = fn(value: &[u8]) -> Option<(usize, usize)>;

pub struct DetectorDef {
    pub id: &'static str,
    pub category: Category,
    pub severity: Severity,
    pub scope: Scope,
    /// The rule fires when any of these fires.
    pub gates: &'static [Gate],
    pub description: &'static str,
}

/// A detector behind its literal prefilter.
pub struct Gate {
    /// At least one of these (ASCII case-insensitive) must occur for `detect` to run.
    pub literals: &'static [&'static str],
    pub detect: Detect,
}

/// Every value except whole XML documents (markup there is the format, not an attack).
const V: Scope = Scope::VALUES;

pub const BUILTIN: &[DetectorDef] = &[
    DetectorDef {
        id: "sqli-injection-shape",
        category: Category::Sqli,
        severity: Severity::Critical,
        scope: V,
        gates: &[
            Gate {
                literals: sql::AFTER_QUOTE,
                detect: sql::detect_after_quote,
            },
            Gate {
                literals: sql::BARE,
                detect: sql::detect_bare,
            },
        ],
        description: "tokenised SQL: a value that closes a string or number and continues the query",
    },
    DetectorDef {
        id: "cmdi-shell-syntax",
        category: Category::Cmdi,
        severity: Severity::Critical,
        scope: V,
        gates: &[Gate {
            literals: shell::LITERALS,
            detect: shell::detect,
        }],
        description: "parsed shell syntax: a command position holding a known program with shell-shaped arguments",
    },
    DetectorDef {
        id: "xss-markup-context",
        category: Category::Xss,
        severity: Severity::Critical,
        scope: V,
        gates: &[Gate {
            literals: markup::LITERALS,
            detect: markup::detect,
        }],
        description: "parsed markup: a tag or attribute that runs script (handlers, script URIs, CSS escapes, SVG/MathML)",
    },
];

/// ASCII case-insensitive equality of a byte slice with a lower-case word.
pub(crate) fn eq_word(bytes: &[u8], lower: &str) -> bool {
    bytes.eq_ignore_ascii_case(lower.as_bytes())
}

/// Assertions the detectors' unit tests share.
#[cfg(test)]
pub(crate) mod check {
    pub type Detect = fn(&[u8]) -> Option<(usize, usize)>;

    /// Every value is detected.
    pub fn all_hit(detect: Detect, values: &[&str]) {
        let missed: Vec<_> = values
            .iter()
            .filter(|v| detect(v.as_bytes()).is_none())
            .collect();
        assert!(missed.is_empty(), "not detected: {missed:#?}");
    }

    /// No value is detected; failures show what matched.
    pub fn none_hit(detect: Detect, values: &[&str]) {
        let flagged: Vec<_> = values
            .iter()
            .filter_map(|v| detect(v.as_bytes()).map(|(a, b)| (v, &v[a..b])))
            .collect();
        assert!(flagged.is_empty(), "flagged: {flagged:#?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_distinct_from_packs() {
        let mut ids: Vec<_> = BUILTIN
            .iter()
            .map(|d| d.id)
            .chain(crate::signatures::packs::BUILTIN.iter().map(|d| d.id))
            .chain(protocol::RULES.iter().map(|r| r.id))
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(n, ids.len());
        for d in BUILTIN {
            assert!(!d.gates.is_empty(), "{} has no detector", d.id);
            for g in d.gates {
                assert!(!g.literals.is_empty(), "{} has no prefilter literal", d.id);
            }
        }
    }
}
