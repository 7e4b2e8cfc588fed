//! The literal prefilter: which of the signatures' literals occur in a value (ASCII case
//! folded), found in one walk of an Aho-Corasick DFA.
//!
//! The walk reads the automaton's states directly instead of iterating over matches: an
//! overlapping-match iterator returns to its caller for every occurrence, which on ordinary text
//! (quotes, `or`, `#`) cost more than the table walk itself. The patterns reported are exactly
//! the ones an overlapping search reports.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

pub struct LiteralScan {
    dfa: DFA,
    start: StateID,
}

impl LiteralScan {
    /// Builds the automaton; the error says why it could not be built.
    pub fn build(literals: &[String]) -> Result<LiteralScan, String> {
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            // No skipping ahead: start states are then never special, and the walk below
            // only stops at match (or dead) states.
            .prefilter(false)
            .build(literals)
            .map_err(|e| e.to_string())?;
        let start = dfa.start_state(Anchored::No).map_err(|e| e.to_string())?;
        Ok(LiteralScan { dfa, start })
    }

    /// Calls `found` with the index of every literal occurrence in `value` (a literal may be
    /// reported more than once).
    pub fn for_each(&self, value: &[u8], mut found: impl FnMut(usize)) {
        let dfa = &self.dfa;
        let mut report = |sid: StateID| {
            for i in 0..dfa.match_len(sid) {
                found(dfa.match_pattern(sid, i).as_usize());
            }
        };
        let mut sid = self.start;
        if dfa.is_match(sid) {
            report(sid); // an empty literal matches everywhere
        }
        for &byte in value {
            sid = dfa.next_state(Anchored::No, sid, byte);
            if dfa.is_special(sid) {
                if dfa.is_dead(sid) {
                    break;
                }
                if dfa.is_match(sid) {
                    report(sid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::AhoCorasick;

    #[test]
    fn reports_what_an_overlapping_search_reports() {
        let literals: Vec<String> = [
            "or ", "' or", "select", "sel", "<script", "'", "#", "../", "a",
        ]
        .iter()
        .map(|l| (*l).to_owned())
        .collect();
        let scan = LiteralScan::build(&literals).unwrap();
        let reference = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&literals)
            .unwrap();
        for value in [
            &b"x' OR 1=1 -- SELECT <Script>"[..],
            b"Leave at the door, ring twice. O'Brien's order #12",
            b"../../etc/passwd",
            b"",
            b"no literal here",
            b"\xff\x00selselect",
        ] {
            let mut got = Vec::new();
            scan.for_each(value, |p| got.push(p));
            let want: Vec<usize> = reference
                .find_overlapping_iter(value)
                .map(|m| m.pattern().as_usize())
                .collect();
            got.sort_unstable();
            let mut want = want;
            want.sort_unstable();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(value));
        }
    }
}
