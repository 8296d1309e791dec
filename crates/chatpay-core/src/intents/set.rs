//! Many regular expressions searched in one pass, on the lazy DFA, with no allocation per search.
//!
//! Three things keep it fast:
//! - `\b` is compiled as an ASCII word boundary and `\d` as `[0-9]` (a Unicode `\b` makes the
//!   lazy DFA give up at the first non-ASCII byte, an emoji say, and fall back to an engine a
//!   hundred times slower);
//! - when every pattern must start with one of a finite set of literals ("pi_", "$", a digit,
//!   "order"…), one Aho-Corasick scan for those literals decides whether the regex search can
//!   match at all, and most utterances skip it;
//! - the search cache and match set live in the caller's scratch space instead of being taken
//!   from a pool and allocated on every call.

use std::sync::atomic::{AtomicUsize, Ordering};

use regex_automata::meta::{self, Cache};
use regex_automata::{Input, MatchKind, PatternSet};
use regex_syntax::hir::Look;
use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::scan::Literals;

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

#[derive(Debug)]
pub struct MultiRegex {
    id: usize,
    set: meta::Regex,
    each: Vec<regex::Regex>,
    /// Literals one of which every match starts with, when there is such a finite set.
    prefilter: Option<Literals>,
}

/// Per-thread search state for one or more [`MultiRegex`].
#[derive(Debug, Default)]
pub struct SetScratch {
    cache: Option<(usize, Cache)>,
    matched: Option<PatternSet>,
}

/// Rewrites `\b`/`\B` as ASCII word boundaries and `\d`/`\D` as ASCII digits.
///
/// # Examples
/// ```
/// use chatpay_core::intents::ascii_word_boundaries;
/// assert_eq!(ascii_word_boundaries(r"\bpay\d"), r"(?-u:\b)pay[0-9]");
/// assert_eq!(ascii_word_boundaries(r"\\b"), r"\\b");
/// ```
pub fn ascii_word_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push_str(r"(?-u:\b)"),
            Some('B') => out.push_str(r"(?-u:\B)"),
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

impl MultiRegex {
    pub fn new(patterns: &[String]) -> Result<MultiRegex, String> {
        let rewritten: Vec<String> = patterns.iter().map(|p| ascii_word_boundaries(p)).collect();
        let set = meta::Regex::builder()
            .configure(
                meta::Config::new()
                    // Every pattern that matches anywhere, not just the leftmost one.
                    .match_kind(MatchKind::All)
                    // Hundreds of patterns need more than the 2 MiB default, or the DFA keeps
                    // clearing its cache.
                    .hybrid_cache_capacity(64 << 20)
                    .nfa_size_limit(Some(64 << 20)),
            )
            .build_many(&rewritten)
            .map_err(|e| e.to_string())?;
        let each = rewritten
            .iter()
            .map(|p| regex::Regex::new(p).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MultiRegex {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            set,
            each,
            prefilter: prefilter(&rewritten),
        })
    }

    /// Whether a literal prefilter guards the search.
    #[cfg(test)]
    fn has_prefilter(&self) -> bool {
        self.prefilter.is_some()
    }

    /// The `i`th pattern alone (for spans and captures).
    pub fn get(&self, i: usize) -> &regex::Regex {
        &self.each[i]
    }

    /// Appends the index of every pattern that matches anywhere in `text`.
    pub fn matches(&self, text: &str, scratch: &mut SetScratch, out: &mut Vec<usize>) {
        if self.each.is_empty()
            || self
                .prefilter
                .as_ref()
                .is_some_and(|p| !p.is_match(text.as_bytes()))
        {
            return;
        }
        if scratch.cache.as_ref().is_none_or(|(id, _)| *id != self.id) {
            scratch.cache = Some((self.id, self.set.create_cache()));
        }
        let Some((_, cache)) = scratch.cache.as_mut() else {
            return;
        };
        let matched = scratch
            .matched
            .get_or_insert_with(|| PatternSet::new(self.each.len()));
        if matched.capacity() < self.each.len() {
            *matched = PatternSet::new(self.each.len());
        }
        matched.clear();
        self.set
            .which_overlapping_matches_with(cache, &Input::new(text), matched);
        out.extend(matched.iter().map(|p| p.as_usize()));
    }
}

/// An automaton over the literals every match must start with, if each pattern has a finite,
/// non-empty set of them.
///
/// The set is made small, as only a prefilter may be: it may let through more than the
/// patterns could match, never less. Literals are folded to lowercase and matched in either
/// case (a case-insensitive pattern yields every mix of cases, "yesterday" alone 512), and a
/// literal that starts with another one is dropped ("2017" goes where "2" stays). For our slot
/// patterns: 180 literals and a 40 KB automaton, down from 4,492 literals and 3.4 MB.
fn prefilter(patterns: &[String]) -> Option<Literals> {
    let mut literals: Vec<Vec<u8>> = Vec::new();
    for p in patterns {
        literals.extend(
            prefix_literals(p, false)?
                .literals
                .into_iter()
                .map(|l| l.to_ascii_lowercase()),
        );
    }
    // Sorted, a literal's extensions follow it directly.
    literals.sort_unstable();
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(literals.len());
    for l in literals {
        if kept.last().is_none_or(|k| !l.starts_with(k)) {
            kept.push(l);
        }
    }
    if kept.is_empty() || kept.len() > 5000 {
        return None;
    }
    Literals::ascii_case_insensitive(&kept).ok()
}

/// What every match of a pattern starts with.
#[derive(Debug, PartialEq)]
pub(super) struct Prefixes {
    /// One of these literals (a finite set, none empty).
    pub literals: Vec<Vec<u8>>,
    /// Only at the start of the text (the pattern begins with `^`).
    pub at_start: bool,
}

/// What every match of `pattern` starts with, if that is a finite set of literals. A search
/// for them decides cheaply whether the pattern can match at all. `shrink` trades precision for
/// fewer, shorter literals (regex-syntax's own prefilter heuristics: `how much is the`,
/// `how much is my`, … become `how much `), for literals that ride along in a bigger automaton.
pub(super) fn prefix_literals(pattern: &str, shrink: bool) -> Option<Prefixes> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let literals = finite_literals(&hir, ExtractKind::Prefix, |seq| {
        if shrink {
            seq.optimize_for_prefix_by_preference();
        }
    })?;
    Some(Prefixes {
        literals,
        at_start: hir.properties().look_set_prefix().contains(Look::Start),
    })
}

/// What every match of `pattern` ends with, if that is a finite set of literals: one of them
/// occurs somewhere in any text it matches, which gates it too (`at_start` is false).
pub(super) fn suffix_literals(pattern: &str) -> Option<Prefixes> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let literals = finite_literals(&hir, ExtractKind::Suffix, |seq| {
        if seq.len().is_some_and(|n| n > 64) {
            // Fewer, shorter literals (the heuristics shorten them to a common ending).
            seq.optimize_for_suffix_by_preference();
        }
    })?;
    Some(Prefixes {
        literals,
        at_start: false,
    })
}

/// The literals of `kind` of `hir`, after `shrink`, sorted; `None` unless a finite set of
/// non-empty ones.
fn finite_literals(
    hir: &regex_syntax::hir::Hir,
    kind: ExtractKind,
    shrink: impl FnOnce(&mut regex_syntax::hir::literal::Seq),
) -> Option<Vec<Vec<u8>>> {
    let mut seq = Extractor::new()
        .kind(kind)
        .limit_class(64)
        .limit_total(1000)
        .extract(hir);
    shrink(&mut seq);
    let lits = seq.literals()?;
    if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    let mut literals: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
    literals.sort_unstable();
    literals.dedup();
    Some(literals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_matching_pattern_even_around_emoji() {
        let set = MultiRegex::new(&[r"\bpay\b".into(), r"\d+".into(), r"\bnope\b".into()]).unwrap();
        let mut scratch = SetScratch::default();
        let mut out = Vec::new();
        set.matches("🙏 pay 42 🙏", &mut scratch, &mut out);
        assert_eq!(out, vec![0, 1]);
        out.clear();
        set.matches("payday", &mut scratch, &mut out);
        assert!(out.is_empty());
        // A second set reuses the scratch safely.
        let other = MultiRegex::new(&["a".into()]).unwrap();
        other.matches("a", &mut scratch, &mut out);
        assert_eq!(out, vec![0]);
    }

    #[test]
    fn prefix_literals_are_found_when_finite() {
        assert_eq!(
            prefix_literals(r"\b(?:pi|ch)_.{8,}", false),
            Some(Prefixes {
                literals: vec![b"ch_".to_vec(), b"pi_".to_vec()],
                at_start: false
            })
        );
        assert_eq!(
            prefix_literals(r"^(?:ok )*(?:cancel|stop)$", false),
            Some(Prefixes {
                literals: vec![b"cancel".to_vec(), b"ok ".to_vec(), b"stop".to_vec()],
                at_start: true
            })
        );
        assert_eq!(prefix_literals(r"\w+ pay", false), None);
        // An open start, a finite end: what every match ends with gates it instead.
        let ends = suffix_literals(r"\b[a-z]{2,}[0-9]+ (?:used|redeemed)\b").unwrap();
        assert!(!ends.at_start);
        assert_eq!(
            ends.literals.len(),
            20,
            "a digit, then one of the two words"
        );
        assert!(ends.literals.contains(&b"7 redeemed".to_vec()));
        assert_eq!(suffix_literals(r"pay .*"), None);
        assert_eq!(prefix_literals(r"(?:x)?", false), None);
        // Shrunk: one short literal instead of a cross product.
        let pattern = r"\bhow much (?:is|does|are) (?:the |my |a )?[a-z]+";
        assert!(prefix_literals(pattern, false).unwrap().literals.len() > 100);
        assert_eq!(
            prefix_literals(pattern, true).unwrap().literals,
            vec![b"how much ".to_vec()]
        );
    }

    #[test]
    fn a_literal_prefilter_guards_patterns_that_need_one() {
        let guarded = MultiRegex::new(&[
            r"\bpi_[A-Za-z0-9]{8,}".into(),
            r"(?i)\border\s*#?\d+".into(),
            r"\$\d+".into(),
        ])
        .unwrap();
        assert!(guarded.has_prefilter());
        let mut scratch = SetScratch::default();
        let mut out = Vec::new();
        guarded.matches("ORDER #12 for $5 and pi_abcdefgh1", &mut scratch, &mut out);
        assert_eq!(out, vec![0, 1, 2]);
        out.clear();
        guarded.matches("nothing to see here", &mut scratch, &mut out);
        assert!(out.is_empty());
        let open = MultiRegex::new(&[r"^(?:ok )*cancel$".into(), r".*x".into()]).unwrap();
        assert!(!open.has_prefilter());
    }
}
