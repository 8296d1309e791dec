//! Literal automata: dense DFAs of our own, built from aho-corasick's NFA, searched with loops
//! of our own.
//!
//! An utterance is short (22 bytes on average), and through the `AhoCorasick` API a search of
//! one costs about as much in setup as in scanning: input validation, a call through a trait
//! object, the match-kind and prefilter dispatch, an iterator's state. The loops here are the
//! crate's own search loops with all of that left out: per byte, a class lookup, one transition
//! and one comparison.

use std::collections::HashMap;
use std::ops::ControlFlow;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::nfa::noncontiguous::NFA;
use aho_corasick::{Anchored, MatchKind};

/// A set of literal patterns compiled to a dense DFA of our own, built from aho-corasick's NFA.
///
/// The table is what a scan waits on: each byte's transition is a load that the next byte
/// depends on, so it should stay in the fastest cache it can. aho-corasick's own DFA rounds a
/// row up to a power of two of 4-byte state ids (64 columns for the ~40 byte classes of the
/// intent terms: 870 KB); here a row has as many 2-byte entries as there are classes, rounded
/// up only as far as 16-bit ids need (225 KB for the intent terms).
#[derive(Debug, Clone)]
pub struct Literals {
    /// The column of each byte.
    classes: [u8; 256],
    /// Row `r` starts at entry `r * stride`; an entry holds the next row as `r * stride >>
    /// shift`, so that the entry's index is `(next << shift) + class`.
    table: Vec<u16>,
    shift: u32,
    /// `stride >> shift`: a row's number times this is its id.
    step: u16,
    /// Ids below this are special: the dead state (id 0), then the match states.
    special: u16,
    start: u16,
    /// Per match state (row - 1): its patterns, as a range of `patterns`.
    matches: Vec<(u32, u32)>,
    /// `(pattern, length)` of the match states' patterns.
    patterns: Vec<(u32, u32)>,
}

/// Row 0, whose transitions all stay in it.
const DEAD: u16 = 0;

/// `(shift, stride)` for `rows` rows of `width` columns: the smallest shift whose ids, `row *
/// (stride >> shift)`, fit in 16 bits, with the stride (a row's entries) rounded up to a
/// multiple of `1 << shift`. `None` if no shift makes them fit.
fn layout(rows: usize, width: usize) -> Option<(u32, usize)> {
    (0..=8u32)
        .map(|shift| (shift, width.next_multiple_of(1 << shift)))
        .find(|&(shift, stride)| (rows - 1) * (stride >> shift) <= usize::from(u16::MAX))
}

impl Literals {
    /// Compiles `patterns` (none of them empty) for [`Literals::is_match`] and
    /// [`Literals::overlapping`].
    pub fn new<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Literals, String> {
        Self::build(patterns, MatchKind::Standard, Anchored::No, false)
    }

    /// Like [`Literals::new`], but ASCII letters match either case: the patterns can be given
    /// in one case only, which makes the automaton smaller.
    pub fn ascii_case_insensitive<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Literals, String> {
        Self::build(patterns, MatchKind::Standard, Anchored::No, true)
    }

    /// Compiles `patterns` (none of them empty) for [`Literals::longest_at`] only.
    pub fn anchored<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Literals, String> {
        Self::build(patterns, MatchKind::LeftmostLongest, Anchored::Yes, false)
    }

    fn build<P: AsRef<[u8]>>(
        patterns: &[P],
        kind: MatchKind,
        anchored: Anchored,
        ascii_case_insensitive: bool,
    ) -> Result<Literals, String> {
        if patterns.iter().any(|p| p.as_ref().is_empty()) {
            return Err("an empty literal matches everywhere".to_owned());
        }
        let nfa = NFA::builder()
            .match_kind(kind)
            .ascii_case_insensitive(ascii_case_insensitive)
            .prefilter(false)
            .build(patterns)
            .map_err(|e| e.to_string())?;
        let start = nfa.start_state(anchored).map_err(|e| e.to_string())?;

        // Every state the start reaches, breadth first, with its 256 transitions (failure
        // transitions followed), the dead state first.
        // (The NFA's dead state is its state 0; an unanchored search never reaches it, but row
        // 0 is kept for it all the same.)
        let dead = StateID::ZERO;
        debug_assert!(nfa.is_dead(dead));
        let mut found: HashMap<StateID, u32> = HashMap::from([(dead, 0), (start, 1)]);
        let mut states = vec![dead, start];
        let mut next: Vec<[u32; 256]> = Vec::new();
        while next.len() < states.len() {
            let sid = states[next.len()];
            let mut row = [0u32; 256];
            for (b, to) in (0..=255u8).zip(row.iter_mut()) {
                let n = if sid == dead {
                    dead
                } else {
                    nfa.next_state(anchored, sid, b)
                };
                let len = states.len() as u32;
                *to = *found.entry(n).or_insert_with(|| {
                    states.push(n);
                    len
                });
            }
            next.push(row);
        }

        // Bytes that lead every state to the same place share a column.
        let mut columns: HashMap<Vec<u32>, u8> = HashMap::new();
        let mut classes = [0u8; 256];
        for (b, class) in classes.iter_mut().enumerate() {
            let column: Vec<u32> = next.iter().map(|row| row[b]).collect();
            let len = columns.len() as u8;
            *class = *columns.entry(column).or_insert(len);
        }
        let width = columns.len();

        // Rows: the dead state, the match states, then the rest (in the order found).
        let is_match = |sid: StateID| sid != dead && nfa.is_match(sid);
        let mut order: Vec<usize> = vec![0];
        order.extend((1..states.len()).filter(|&i| is_match(states[i])));
        let special = order.len();
        order.extend((1..states.len()).filter(|&i| !is_match(states[i])));
        let mut row_of = vec![0usize; states.len()];
        for (row, &old) in order.iter().enumerate() {
            row_of[old] = row;
        }

        let rows = states.len();
        let (shift, stride) = layout(rows, width).ok_or_else(|| {
            format!(
                "{rows} automaton states are too many (at most 65,536): fewer or shorter literals"
            )
        })?;
        let step = (stride >> shift) as u16;
        let id = |old: u32| row_of[old as usize] as u16 * step;
        let mut table = vec![0u16; rows * stride];
        for (row, &old) in order.iter().enumerate() {
            for (b, &to) in next[old].iter().enumerate() {
                table[row * stride + usize::from(classes[b])] = id(to);
            }
        }

        let mut matches = Vec::with_capacity(special - 1);
        let mut found_patterns = Vec::new();
        for &old in &order[1..special] {
            let sid = states[old];
            let first = found_patterns.len() as u32;
            for i in 0..nfa.match_len(sid) {
                let pid = nfa.match_pattern(sid, i);
                found_patterns.push((pid.as_u32(), nfa.pattern_len(pid) as u32));
            }
            matches.push((first, found_patterns.len() as u32));
        }
        Ok(Literals {
            classes,
            table,
            shift,
            step,
            // The start state is not a match state (no pattern is empty), so `special` is at
            // most `rows - 1` and its id fits.
            special: special as u16 * step,
            start: id(1),
            matches,
            patterns: found_patterns,
        })
    }

    #[inline(always)]
    fn next(&self, id: u16, b: u8) -> u16 {
        self.table[(usize::from(id) << self.shift) + usize::from(self.classes[usize::from(b)])]
    }

    /// The patterns of match state `id`: `(pattern, length)`.
    fn patterns_of(&self, id: u16) -> &[(u32, u32)] {
        let (from, to) = self.matches[usize::from(id / self.step) - 1];
        &self.patterns[from as usize..to as usize]
    }

    /// The longest pattern that occurs at `hay[at..]` and ends where `ends_well` accepts:
    /// `(end, pattern)`. Needs an automaton built by [`Literals::anchored`].
    pub fn longest_at(
        &self,
        hay: &[u8],
        at: usize,
        ends_well: impl Fn(usize) -> bool,
    ) -> Option<(usize, u32)> {
        let mut id = self.start;
        let mut found = None;
        for (i, &b) in hay.iter().enumerate().skip(at) {
            id = self.next(id, b);
            if id < self.special {
                if id == DEAD {
                    break;
                }
                if ends_well(i + 1) {
                    // Leftmost-longest: the state's first pattern.
                    found = Some((i + 1, self.patterns_of(id)[0].0));
                }
            }
        }
        found
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
        let _ = self.match_states(hay, |id, end| {
            for &(pattern, len) in self.patterns_of(id) {
                f(end - len as usize, end, pattern);
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
        mut f: impl FnMut(u16, usize) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut id = self.start;
        let mut at = 0;
        while at < hay.len() {
            (id, at) = self.run(id, hay, at);
            if id < self.special {
                if id == DEAD {
                    // Only an anchored automaton has one; its searches are `longest_at`.
                    break;
                }
                f(id, at)?;
            }
        }
        ControlFlow::Continue(())
    }

    /// From state `id` at `hay[at..]`, the transitions up to the first match state or the end:
    /// `(state, position after its byte)`. Kept apart so that this loop, the whole cost of a
    /// scan, holds its state in a register: each byte is a class lookup and one table load,
    /// and the next byte waits only for that load.
    #[inline(always)]
    fn run(&self, mut id: u16, hay: &[u8], mut at: usize) -> (u16, usize) {
        while let Some(&b) = hay.get(at) {
            id = self.next(id, b);
            at += 1;
            if id < self.special {
                break;
            }
        }
        (id, at)
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
    fn ids_fit_in_16_bits_with_as_little_padding_as_possible() {
        // Rows of 38 columns: ids step by 38, by 19 (x 2 columns) or by 10 (x 4).
        assert_eq!(layout(1_700, 38), Some((0, 38)));
        assert_eq!(layout(3_400, 38), Some((1, 38)));
        assert_eq!(layout(5_000, 38), Some((2, 40)));
        assert_eq!(layout(65_536, 256), Some((8, 256)));
        assert_eq!(layout(65_536, 257), None);
        assert_eq!(layout(65_537, 2), None);
    }

    #[test]
    fn refuses_an_empty_pattern() {
        assert!(Literals::new(&["a", ""]).is_err());
        assert!(Literals::anchored(&[""]).is_err());
    }
}
