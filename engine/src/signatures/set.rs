//! One pass for many regexes: a lazy DFA built from every signature's pattern tells, in a single
//! scan of a value, which patterns match anywhere in it. Most values match none, and then no
//! other work is needed; a value with several candidate signatures is read once instead of once
//! per regex, and only the regexes that do match run again to find where.
//!
//! It is exact: a pattern is reported iff its own regex finds a match. When the DFA cannot
//! answer (its cache thrashes on odd input, or a Unicode word boundary meets non-ASCII text),
//! the caller runs the regexes one by one as if this set did not exist.

use std::sync::Mutex;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind};

/// The DFA's transition cache grows as states are visited, up to this bound per VM.
const CACHE_CAPACITY: usize = 2 << 20;
/// Bound on the combined NFA; a policy whose patterns exceed it runs without the set.
const NFA_SIZE_LIMIT: usize = 16 << 20;

/// A pattern as its signature's regex is compiled: text and case sensitivity (never Unicode).
pub struct SetPattern<'a> {
    pub pattern: &'a str,
    pub case_insensitive: bool,
}

pub struct MatchSet {
    dfa: DFA,
    /// Reused across values and requests: a lazy DFA is fast once its cache holds the states
    /// that traffic visits.
    /// With a bit per pattern, set for those that matched: cheap to clear, test and walk,
    /// unlike a `PatternSet`, whose iteration visits every pattern.
    scratch: Mutex<(Cache, Vec<u64>)>,
}

impl MatchSet {
    /// Builds the set, or None when the patterns cannot form one (then every value takes the
    /// one-regex-at-a-time path). Pattern ids are indexes into `patterns`.
    pub fn build(patterns: &[SetPattern<'_>]) -> Option<MatchSet> {
        MatchSet::build_with_cache(patterns, CACHE_CAPACITY, Some(3))
    }

    /// `give_up_after`: clears after which a search that found few bytes per state gives up.
    fn build_with_cache(
        patterns: &[SetPattern<'_>],
        cache_capacity: usize,
        give_up_after: Option<usize>,
    ) -> Option<MatchSet> {
        let hirs = patterns
            .iter()
            .map(|p| {
                let config = syntax::Config::new()
                    .case_insensitive(p.case_insensitive)
                    .unicode(false)
                    .utf8(false);
                syntax::parse_with(p.pattern, &config).ok()
            })
            .collect::<Option<Vec<_>>>()?;
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(false)
                    .shrink(false)
                    .which_captures(WhichCaptures::None)
                    .nfa_size_limit(Some(NFA_SIZE_LIMIT)),
            )
            .build_many_from_hir(&hirs)
            .ok()?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true)
                    .cache_capacity(cache_capacity)
                    .skip_cache_capacity_check(true)
                    .minimum_cache_clear_count(give_up_after)
                    .minimum_bytes_per_state(Some(10)),
            )
            .build_from_nfa(nfa)
            .ok()?;
        let words = vec![0; dfa.pattern_len().div_ceil(64)];
        let scratch = Mutex::new((dfa.create_cache(), words));
        Some(MatchSet { dfa, scratch })
    }

    /// Calls `decide` with the patterns that match somewhere in `value` (bit `p % 64` of word
    /// `p / 64` for pattern `p`) and returns true, or returns false without calling it when the
    /// DFA could not answer.
    pub fn matching(&self, value: &[u8], decide: impl FnOnce(&[u64])) -> bool {
        // Never contended inside a proxy-wasm VM (one thread); elsewhere, a busy set just
        // means the slower exact path.
        let Ok(mut scratch) = self.scratch.try_lock() else {
            return false;
        };
        let (cache, found) = &mut *scratch;
        found.fill(0);
        if self.walk(cache, value, found).is_none() {
            return false;
        }
        decide(found);
        true
    }

    /// Reads `value` once through the DFA and adds the patterns of every match state it passes.
    /// This is what an overlapping search reports, without returning to a caller at each match:
    /// the library's overlapping search costs several times this loop per byte. None when the
    /// DFA gives up (its cache thrashes) or meets a quit byte.
    fn walk(&self, cache: &mut Cache, value: &[u8], found: &mut [u64]) -> Option<()> {
        let dfa = &self.dfa;
        // Text revisits the same match state (a gate's `&` or newline, again and again): its
        // patterns are read once in a row. A cleared cache reuses ids, hence the clear count.
        let mut reported = None;
        let mut report = |cache: &Cache, sid: LazyStateID| {
            let key = Some((sid, cache.clear_count()));
            if reported == key {
                return;
            }
            reported = key;
            for i in 0..dfa.match_len(cache, sid) {
                let p = dfa.match_pattern(cache, sid, i).as_usize();
                if let Some(word) = found.get_mut(p / 64) {
                    *word |= 1 << (p % 64);
                }
            }
        };
        let input = Input::new(value);
        cache.search_start(0);
        let mut sid = dfa.start_state_forward(cache, &input).ok()?;
        let mut at = 0;
        while at < value.len() {
            // Ordinary states index the transition table directly, four bytes per turn while
            // none is tagged (a match state, or a transition not computed yet); a tagged one
            // takes the checked path below.
            let mut prev = sid;
            if !prev.is_tagged() {
                while let Some(chunk) = value.get(at..at + 4) {
                    // SAFETY: `prev` is untagged and came from the latest call for this cache
                    // (start, `next_state` or this one), as `next_state_untagged_unchecked`
                    // requires; the cache is only cleared inside `next_state`, which hands
                    // back a fresh id.
                    let s1 = unsafe { dfa.next_state_untagged_unchecked(cache, prev, chunk[0]) };
                    if s1.is_tagged() {
                        break;
                    }
                    let s2 = unsafe { dfa.next_state_untagged_unchecked(cache, s1, chunk[1]) };
                    if s2.is_tagged() {
                        prev = s1;
                        at += 1;
                        break;
                    }
                    let s3 = unsafe { dfa.next_state_untagged_unchecked(cache, s2, chunk[2]) };
                    if s3.is_tagged() {
                        prev = s2;
                        at += 2;
                        break;
                    }
                    let s4 = unsafe { dfa.next_state_untagged_unchecked(cache, s3, chunk[3]) };
                    if s4.is_tagged() {
                        prev = s3;
                        at += 3;
                        break;
                    }
                    prev = s4;
                    at += 4;
                }
            }
            let Some(&byte) = value.get(at) else {
                sid = prev;
                break;
            };
            if !prev.is_tagged() {
                // SAFETY: as above.
                sid = unsafe { dfa.next_state_untagged_unchecked(cache, prev, byte) };
                if !sid.is_tagged() {
                    at += 1;
                    continue;
                }
            }
            if prev.is_tagged() || sid.is_unknown() {
                // Progress feeds the DFA's give-up heuristic when it has to clear its cache.
                cache.search_update(at);
                sid = dfa.next_state(cache, prev, byte).ok()?;
            }
            if sid.is_match() {
                report(cache, sid);
            } else if sid.is_dead() {
                break;
            } else if sid.is_quit() {
                cache.search_finish(at);
                return None;
            }
            at += 1;
        }
        if !sid.is_dead() {
            sid = dfa.next_eoi_state(cache, sid).ok()?;
            if sid.is_match() {
                report(cache, sid);
            }
        }
        cache.search_finish(value.len());
        Some(())
    }

    pub fn memory_usage(&self) -> usize {
        let cache = self.scratch.lock().map(|s| s.0.memory_usage()).unwrap_or(0);
        self.dfa.memory_usage() + cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::bytes::RegexBuilder;

    const PATTERNS: &[(&str, bool)] = &[
        (r"\bselect\b.{0,40}\bfrom\b", true),
        (r"['\x22]\s*or\s+\d+\s*=\s*\d+", true),
        (r"^/admin", true),
        (r"passwd$", true),
        (r"Secret", false),
        (r"<script[\s>]", true),
        (r"a{2,5}b", true),
    ];

    fn one_by_one(value: &[u8]) -> Vec<usize> {
        PATTERNS
            .iter()
            .enumerate()
            .filter(|(_, (p, ci))| {
                RegexBuilder::new(p)
                    .case_insensitive(*ci)
                    .unicode(false)
                    .build()
                    .unwrap()
                    .is_match(value)
            })
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn reports_exactly_the_patterns_whose_regex_matches() {
        let set = MatchSet::build(
            &PATTERNS
                .iter()
                .map(|&(pattern, case_insensitive)| SetPattern {
                    pattern,
                    case_insensitive,
                })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for value in [
            &b"SELECT name FROM users"[..],
            b"x' OR 1=1 and <SCRIPT>alert(1)</script>",
            b"/admin/etc/passwd",
            b"/x/admin and passwd.txt",
            b"secret SECRET Secret",
            b"aab aaaaaab ab",
            b"nothing to see",
            b"",
            b"\xff\xfe select \x00 from",
        ] {
            let mut got = Vec::new();
            assert!(set.matching(value, |found| got = (0..PATTERNS.len())
                .filter(|p| found[p / 64] & (1 << (p % 64)) != 0)
                .collect()));
            assert_eq!(
                got,
                one_by_one(value),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn a_cache_that_clears_mid_value_never_changes_the_answer() {
        let patterns: Vec<SetPattern<'_>> = PATTERNS
            .iter()
            .map(|&(pattern, case_insensitive)| SetPattern {
                pattern,
                case_insensitive,
            })
            .collect();
        // Room for a handful of states, and never giving up: walks clear it and reuse ids.
        let set = MatchSet::build_with_cache(&patterns, 4096, None).unwrap();
        let mut answered = 0;
        for round in 0..50 {
            let value = format!(
                "{} x' OR {round}={round} aab {} SELECT a FROM b <script>",
                "lorem ipsum ".repeat(round * 40),
                "aaaab secret ".repeat(round % 7)
            );
            let mut got = Vec::new();
            if set.matching(value.as_bytes(), |found| {
                got = (0..PATTERNS.len())
                    .filter(|p| found[p / 64] & (1 << (p % 64)) != 0)
                    .collect()
            }) {
                answered += 1;
                assert_eq!(got, one_by_one(value.as_bytes()), "{value:?}");
            }
        }
        let clears = set.scratch.lock().map(|s| s.0.clear_count()).unwrap_or(0);
        assert!(
            clears > 0 && answered == 50,
            "{clears} clears, {answered} answered"
        );
    }

    #[test]
    fn a_pattern_the_set_cannot_hold_means_no_set() {
        assert!(MatchSet::build(&[SetPattern {
            pattern: "(unclosed",
            case_insensitive: true
        }])
        .is_none());
    }
}
