//! Signature matching: one Aho-Corasick pass over a value finds which rules' literals occur,
//! then only those rules' matchers run: a regex, or a native detector (`crate::detect`) that
//! parses the value. Everything is compiled once, at configure time.

pub mod packs;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

use crate::detect::Detect;
use crate::targets::{Scope, TargetKind};

/// Bounds on compiled regex size, so a hostile custom rule cannot exhaust the proxy's memory.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

/// One compiled matcher, tied to a rule by `rule` (an index into the policy's rule table).
pub struct CompiledSignature {
    pub rule: usize,
    pub scope: Scope,
    /// Only values of targets with this (lower-case) name, e.g. one header or parameter.
    pub target_name: Option<Vec<u8>>,
    pub matcher: Matcher,
}

/// How a signature decides, once its literals were seen.
pub enum Matcher {
    Regex(Regex),
    Native(Detect),
}

/// A matcher before compilation.
#[derive(Clone, Copy)]
pub enum MatcherSource<'a> {
    Regex(&'a str),
    Native(Detect),
}

/// A signature waiting to be compiled.
pub struct SignatureSource<'a> {
    pub rule: usize,
    pub scope: Scope,
    pub target_name: Option<Vec<u8>>,
    pub literals: Vec<String>,
    pub matcher: MatcherSource<'a>,
    pub case_insensitive: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

pub struct SignatureSet {
    signatures: Vec<CompiledSignature>,
    prefilter: Option<AhoCorasick>,
    /// For each prefilter literal, the signatures it triggers.
    literal_signatures: Vec<Vec<u16>>,
    /// Signatures without literals: their regex always runs (custom regex rules, rules on
    /// the path or user agent).
    unfiltered: Vec<u16>,
    /// The target kinds any of `unfiltered` applies to.
    unfiltered_scope: Scope,
}

/// A match: which signature, and the matched bytes' range in the value.
#[derive(Debug, Clone, Copy)]
pub struct SignatureMatch {
    pub rule: usize,
    pub start: usize,
    pub end: usize,
}

impl SignatureSet {
    pub fn compile(
        sources: Vec<SignatureSource<'_>>,
    ) -> Result<SignatureSet, (usize, PatternError)> {
        let mut literals: Vec<String> = Vec::new();
        let mut literal_signatures: Vec<Vec<u16>> = Vec::new();
        let mut unfiltered = Vec::new();
        let mut unfiltered_scope = Scope(0);
        let mut signatures = Vec::with_capacity(sources.len());
        for (index, src) in sources.into_iter().enumerate() {
            let matcher = match src.matcher {
                MatcherSource::Regex(pattern) => Matcher::Regex(
                    RegexBuilder::new(pattern)
                        .case_insensitive(src.case_insensitive)
                        .unicode(false)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .dfa_size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| (src.rule, PatternError(e.to_string())))?,
                ),
                MatcherSource::Native(detect) => Matcher::Native(detect),
            };
            let index = u16::try_from(index)
                .map_err(|_| (src.rule, PatternError("too many rules".into())))?;
            if src.literals.is_empty() {
                unfiltered.push(index);
                unfiltered_scope = Scope(unfiltered_scope.0 | src.scope.0);
            }
            for lit in src.literals {
                let lit = lit.to_ascii_lowercase();
                match literals.iter().position(|l| *l == lit) {
                    Some(p) => literal_signatures[p].push(index),
                    None => {
                        literals.push(lit);
                        literal_signatures.push(vec![index]);
                    }
                }
            }
            signatures.push(CompiledSignature {
                rule: src.rule,
                scope: src.scope,
                target_name: src.target_name,
                matcher,
            });
        }
        let prefilter = if literals.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    // A full DFA: one table lookup per byte on the request path; built once.
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&literals)
                    .map_err(|e| (0, PatternError(e.to_string())))?,
            )
        };
        Ok(SignatureSet {
            signatures,
            prefilter,
            literal_signatures,
            unfiltered,
            unfiltered_scope,
        })
    }

    pub fn len(&self) -> usize {
        self.signatures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty()
    }

    /// Runs every applicable signature over one normalised value. `candidates` is scratch
    /// space reused across values to avoid allocating per value.
    pub fn scan(
        &self,
        kind: TargetKind,
        name: &[u8],
        value: &[u8],
        candidates: &mut Vec<u64>,
        mut on_match: impl FnMut(SignatureMatch),
    ) {
        let words = self.signatures.len().div_ceil(64);
        candidates.clear();
        candidates.resize(words, 0);
        let mut any = false;
        if let Some(ac) = &self.prefilter {
            for m in ac.find_overlapping_iter(value) {
                for &sig in &self.literal_signatures[m.pattern().as_usize()] {
                    candidates[usize::from(sig) / 64] |= 1 << (sig % 64);
                    any = true;
                }
            }
        }
        // Only where they apply: a path-only rule must not make every body value pay for the
        // candidate walk below.
        if self.unfiltered_scope.contains(kind) {
            for &sig in &self.unfiltered {
                if self.signatures[usize::from(sig)].scope.contains(kind) {
                    candidates[usize::from(sig) / 64] |= 1 << (sig % 64);
                    any = true;
                }
            }
        }
        if !any {
            return;
        }
        for (w, &bits) in candidates.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let sig = &self.signatures[i];
                if !sig.scope.contains(kind) {
                    continue;
                }
                if let Some(want) = &sig.target_name {
                    if !name.eq_ignore_ascii_case(want) {
                        continue;
                    }
                }
                let found = match &sig.matcher {
                    Matcher::Regex(regex) => regex.find(value).map(|m| (m.start(), m.end())),
                    Matcher::Native(detect) => detect(value),
                };
                if let Some((start, end)) = found {
                    on_match(SignatureMatch {
                        rule: sig.rule,
                        start,
                        end,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_pattern_compiles_and_has_literals() {
        // Rules on one value per request (the path, the user agent) may skip the prefilter
        // (none does: on the user agent the regex scan cost more than the literals' memory).
        let single = Scope::of(&[TargetKind::Path, TargetKind::UserAgent]);
        for def in packs::BUILTIN {
            assert!(
                !def.literals.is_empty() || def.scope.0 & !single.0 == 0,
                "{} has no prefilter literal",
                def.id
            );
            RegexBuilder::new(def.pattern)
                .case_insensitive(true)
                .unicode(false)
                .build()
                .unwrap_or_else(|e| panic!("{}: {e}", def.id));
        }
        let mut ids: Vec<_> = packs::BUILTIN.iter().map(|d| d.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "rule ids are unique");
    }

    #[test]
    fn prefilter_gates_the_regex() {
        let set = SignatureSet::compile(vec![SignatureSource {
            rule: 7,
            scope: Scope::VALUES,
            target_name: None,
            literals: vec!["evil".into()],
            matcher: MatcherSource::Regex(r"evil\d"),
            case_insensitive: true,
        }])
        .unwrap();
        let mut scratch = Vec::new();
        let mut hits = Vec::new();
        set.scan(
            TargetKind::QueryValue,
            b"q",
            b"an EVIL9 value",
            &mut scratch,
            |m| hits.push(m.rule),
        );
        set.scan(
            TargetKind::QueryValue,
            b"q",
            b"evil but no digit",
            &mut scratch,
            |m| hits.push(m.rule),
        );
        assert_eq!(hits, vec![7]);
    }
}
