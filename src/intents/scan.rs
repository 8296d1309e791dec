//! Literal automata, searched with loops of our own over aho-corasick's DFA.
//!
//! An utterance is short (22 bytes on average), and through the `AhoCorasick` API a search of
//! one costs about as much in setup as in scanning: input validation, a call through a trait
//! object, the match-kind and prefilter dispatch, an iterator's state. The loops here are the
//! crate's own search loops with all of that left out: per byte, a class lookup, one transition
//! and one comparison.

use std::ops::ControlFlow;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

/// A set of literal patterns compiled to a DFA.
#[derive(Debug, Clone)]
pub struct Literals {
    dfa: DFA,
}

impl Literals {
    /// Compiles `patterns` (none of them empty) for [`Literals::is_match`] and
    /// [`Literals::overlapping`].
    pub fn new<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Literals, String> {
        Self::build(patterns, MatchKind::Standard, StartKind::Unanchored, false)
    }

    /// Like [`Literals::new`], but ASCII letters match either case: the patterns can be given
    /// in one case only, which makes the automaton smaller.
    pub fn ascii_case_insensitive<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Literals, String> {
        Self::build(patterns, MatchKind::Standard, StartKind::Unanchored, true)
    }

    /// Compiles `patterns` (none of them empty) for [`Literals::longest_at`] only.
    pub fn anchored<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Literals, String> {
        Self::build(
            patterns,
            MatchKind::LeftmostLongest,
            StartKind::Anchored,
            false,
        )
    }

    fn build<P: AsRef<[u8]>>(
        patterns: &[P],
        kind: MatchKind,
        start: StartKind,
        ascii_case_insensitive: bool,
    ) -> Result<Literals, String> {
        if patterns.iter().any(|p| p.as_ref().is_empty()) {
            return Err("an empty literal matches everywhere".to_owned());
        }
        let dfa = DFA::builder()
            .match_kind(kind)
            .start_kind(start)
            .ascii_case_insensitive(ascii_case_insensitive)
            .prefilter(false)
            .build(patterns)
            .map_err(|e| e.to_string())?;
        Ok(Literals { dfa })
    }

    /// The longest pattern that occurs at `hay[at..]` and ends where `ends_well` accepts:
    /// `(end, pattern)`. Needs an automaton built by [`Literals::anchored`].
    pub fn longest_at(
        &self,
        hay: &[u8],
        at: usize,
        ends_well: impl Fn(usize) -> bool,
    ) -> Option<(usize, u32)> {
        let d = &self.dfa;
        let mut sid = d
            .start_state(Anchored::Yes)
            .expect("built with an anchored start state");
        let mut found = None;
        for (i, &b) in hay.iter().enumerate().skip(at) {
            sid = d.next_state(Anchored::Yes, sid, b);
            if d.is_special(sid) {
                if d.is_dead(sid) {
                    break;
                }
                if d.is_match(sid) && ends_well(i + 1) {
                    found = Some((i + 1, d.match_pattern(sid, 0).as_u32()));
                }
            }
        }
        found
    }

    fn start(&self) -> StateID {
        self.dfa
            .start_state(Anchored::No)
            .expect("built with an unanchored start state")
    }

    /// Whether any pattern occurs in `hay`.
    pub fn is_match(&self, hay: &[u8]) -> bool {
        self.match_states(hay, |_, _| ControlFlow::Break(()))
            .is_break()
    }

    /// Calls `f(start, end, pattern)` for every occurrence of every pattern, overlapping ones
    /// included, in order of their ends. (In a standard automaton a match state holds every
    /// pattern that ends there.)
    pub fn overlapping(&self, hay: &[u8], mut f: impl FnMut(usize, usize, u32)) {
        let d = &self.dfa;
        let _ = self.match_states(hay, |sid, end| {
            for i in 0..d.match_len(sid) {
                let pid = d.match_pattern(sid, i);
                f(end - d.pattern_len(pid), end, pid.as_u32());
            }
            ControlFlow::Continue(())
        });
    }

    /// An unanchored scan of `hay` that calls `f(state, end)` at each match state, until `f`
    /// breaks.
    #[inline(always)]
    fn match_states(
        &self,
        hay: &[u8],
        mut f: impl FnMut(StateID, usize) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let d = &self.dfa;
        let mut sid = self.start();
        let mut at = 0;
        while at < hay.len() {
            (sid, at) = self.run(sid, hay, at);
            if d.is_special(sid) && d.is_match(sid) {
                f(sid, at)?;
            }
        }
        ControlFlow::Continue(())
    }

    /// From state `sid` at `hay[at..]`, the transitions up to the first special state (a match,
    /// the start or a dead state) or the end: `(state, position after its byte)`. Kept apart so
    /// that this loop, the whole cost of a scan, holds its state in a register: each byte is a
    /// class lookup and one table load, and the next byte waits only for that load.
    #[inline(always)]
    fn run(&self, mut sid: StateID, hay: &[u8], mut at: usize) -> (StateID, usize) {
        let d = &self.dfa;
        while let Some(&b) = hay.get(at) {
            sid = d.next_state(Anchored::No, sid, b);
            at += 1;
            if d.is_special(sid) {
                break;
            }
        }
        (sid, at)
    }
}

#[cfg(test)]
mod tests {
    use aho_corasick::AhoCorasick;

    use super::*;

    const PATTERNS: &[&str] = &[
        "pay",
        "payment",
        "payments",
        "add payments",
        "ment",
        "stripe",
        "set up",
        "set",
    ];
    const TEXTS: &[&str] = &[
        "",
        "i want to add payments",
        "payments payment pay",
        "set up stripe payments now",
        "nothing here",
        "paypaypay mentment",
        "striped setup",
    ];

    /// Every search agrees with the `AhoCorasick` API over the same patterns.
    #[test]
    fn agrees_with_aho_corasick() {
        let ours = Literals::new(PATTERNS).unwrap();
        let theirs = AhoCorasick::new(PATTERNS).unwrap();
        for text in TEXTS {
            let want: Vec<_> = theirs
                .find_overlapping_iter(text)
                .map(|m| (m.start(), m.end(), m.pattern().as_u32()))
                .collect();
            let mut got = Vec::new();
            ours.overlapping(text.as_bytes(), |s, e, p| got.push((s, e, p)));
            assert_eq!(got, want, "{text:?}");
            assert_eq!(ours.is_match(text.as_bytes()), !want.is_empty());
        }
    }

    #[test]
    fn longest_at_finds_the_longest_pattern_that_ends_well() {
        let lits = Literals::anchored(PATTERNS).unwrap();
        let hay = b"payments payment set upx";
        let any = |_| true;
        assert_eq!(lits.longest_at(hay, 0, any), Some((8, 2)));
        assert_eq!(lits.longest_at(hay, 9, any), Some((16, 1)));
        // "set up" would end inside "upx": the shorter "set" ends at a space.
        let at_space = |e: usize| e == hay.len() || hay[e] == b' ';
        assert_eq!(lits.longest_at(hay, 17, at_space), Some((20, 7)));
        assert_eq!(lits.longest_at(hay, 1, any), None);
    }

    #[test]
    fn case_insensitive_literals_match_either_case() {
        let lits = Literals::ascii_case_insensitive(&["order", "pi_"]).unwrap();
        assert!(lits.is_match(b"my ORDER #12"));
        assert!(lits.is_match(b"Pi_abc"));
        assert!(!lits.is_match(b"ordre pi-"));
        assert!(!Literals::new(&["order"]).unwrap().is_match(b"ORDER"));
    }

    #[test]
    fn refuses_an_empty_pattern() {
        assert!(Literals::new(&["a", ""]).is_err());
        assert!(Literals::anchored(&[""]).is_err());
    }
}
