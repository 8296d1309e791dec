//! The matcher: one Aho-Corasick automaton over every term, negation cue and exclusion, and over
//! the literals each regex rule starts with, built once at load. Matching an utterance is a
//! normalization pass, one automaton scan, the regex rules whose literals occurred (few, usually
//! none) and a few bit tests per rule; no I/O and no allocation beyond the result.

use std::cell::RefCell;
use std::sync::Arc;

use super::frames::{self, Frame, FrameHit, FrameWord};
use super::model::{self, Feature, Model};
use super::normalize::{Normalized, Normalizer};
use super::scan::Literals;
use super::set::SetScratch;
use super::slots::{SlotExtractor, SlotValue, Slots};

/// What an automaton pattern means; one pattern can mean several things.
#[derive(Debug, Clone, Copy)]
pub(super) enum Tag {
    Term {
        intent: u16,
        group: u8,
    },
    Negation,
    Breaker,
    Unless {
        intent: u16,
    },
    /// One of the literals every match of rule regex `regex` starts with: only if one occurs
    /// (at the very start, for a regex anchored there) can that regex match, so only then is
    /// it run. Counts inside words too.
    RegexGate {
        regex: u16,
        at_start: bool,
    },
    /// One of the literals every match of rule regex `regex` ends with: one must occur too
    /// (anywhere, inside words too).
    RegexGateEnd {
        regex: u16,
    },
    /// A word of `[frames]` (see `frames.rs`).
    Frame(FrameWord),
}

#[derive(Debug, Clone)]
pub(super) struct IntentInfo {
    pub name: Arc<str>,
    pub summary: String,
    pub label: String,
    pub answer: Option<Arc<str>>,
    /// The intent file says `side_effects` (what a model-decided candidate carries).
    pub side_effects: bool,
}

/// A rule's regular expression, and what the term scan knows about it.
#[derive(Debug)]
pub(super) struct RuleRegex {
    pub re: regex::Regex,
    /// Whether the automaton carries its [`Tag::RegexGate`] literals; if not, it runs on every
    /// utterance.
    pub gated: bool,
    /// Whether it also carries [`Tag::RegexGateEnd`] literals, one of which must occur.
    pub gated_end: bool,
    /// The intents of the rules that use it.
    pub intents: Vec<u16>,
    /// Whether it has named captures (slots of the candidate); if not, a match needs no second
    /// search for them.
    pub named: bool,
}

#[derive(Debug, Clone)]
pub(super) struct RuleInfo {
    pub intent: u16,
    /// Bit per term group of the intent that must occur (for term rules).
    pub required: u64,
    /// Index into the regex set (for regex rules).
    pub regex: Option<usize>,
    pub weight: f32,
    pub negatable: bool,
    /// Acting on it changes something: it acts only on a confident reading.
    pub side_effects: bool,
    pub topic: Option<Arc<str>>,
    /// `file:line id`, for explanations.
    pub label: Arc<str>,
}

/// The result of matching one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub outcome: Outcome,
    /// Slots found anywhere in the utterance.
    pub slots: Slots,
    /// When no intent matched: small talk ("hi", "thanks") or a refusal ("no payments for
    /// now"), answered as such. Never an action.
    pub small_talk: Option<SmallTalk>,
    /// What a short utterance reads as when it answers a question (`yes`, `no`, `second`,
    /// `month`, …: the `[replies]` kinds of `_lexicon.toml`). Context-free: the conversation
    /// knows whether a card asked something and decides.
    pub reply: Option<Arc<str>>,
}

/// Small talk or a refusal, and what decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct SmallTalk {
    /// `greeting`, `thanks`, `who`, `goodbye`, … (the `[small_talk]` keys), or `refusal`.
    pub kind: Arc<str>,
    /// For a refusal: the intent refused, when a negated rule says which.
    pub about: Option<Arc<str>>,
    /// The `_lexicon.toml` pattern or the negated rule.
    pub rule: Arc<str>,
}

/// The `[small_talk]` patterns of `_lexicon.toml`, over the normalized text.
#[derive(Debug)]
pub(super) struct SmallTalkSet {
    pub set: regex::RegexSet,
    /// Per pattern: kind and label.
    pub kinds: Vec<(Arc<str>, Arc<str>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// One intent, confidently.
    Matched(Candidate),
    /// Several intents, too close to call: ask.
    Clarify(Vec<Candidate>),
    /// One reading, not confident enough to act on (an intent with side effects below
    /// [`ACT_CONFIDENCE`], or the model short of its threshold): ask "did you mean …?".
    Suggest(Candidate),
    /// Something matched, but below the threshold.
    Unsure(Candidate),
    Nothing,
}

/// One intent a rule matched, with how it matched (for explanations).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub intent: Arc<str>,
    pub confidence: f32,
    /// `file:line rule-id` of the rule that decided.
    pub rule: Arc<str>,
    /// Byte range in the original text that the rule matched.
    pub span: (usize, usize),
    pub topic: Option<Arc<str>>,
    /// Named captures of a regex rule.
    pub captures: Slots,
    /// The fixed answer of a data-only intent.
    pub answer: Option<Arc<str>>,
    /// Acting on this reading changes something (its rule, or its intent, says
    /// `side_effects`).
    pub side_effects: bool,
}

impl Classification {
    /// The confident match, if any.
    pub fn matched(&self) -> Option<&Candidate> {
        match &self.outcome {
            Outcome::Matched(c) => Some(c),
            _ => None,
        }
    }

    /// The best candidate whatever the outcome.
    pub fn best(&self) -> Option<&Candidate> {
        match &self.outcome {
            Outcome::Matched(c) | Outcome::Unsure(c) | Outcome::Suggest(c) => Some(c),
            Outcome::Clarify(cs) => cs.first(),
            Outcome::Nothing => None,
        }
    }

    /// Whether the conversation asks instead of acting (a clarify card or "did you mean …?").
    pub fn asks(&self) -> bool {
        matches!(self.outcome, Outcome::Clarify(_) | Outcome::Suggest(_))
    }
}

#[derive(Debug)]
pub struct Matcher {
    pub(super) normalizer: Normalizer,
    pub(super) automaton: Literals,
    pub(super) tags: Vec<Vec<Tag>>,
    pub(super) intents: Vec<IntentInfo>,
    pub(super) rules: Vec<RuleInfo>,
    /// The rule regexes, by [`RuleInfo::regex`].
    pub(super) regexes: Vec<RuleRegex>,
    /// Per intent, its rules in file order.
    pub(super) rules_of: Vec<Vec<usize>>,
    /// Per intent: every rule of it is negatable (an action a refusal can refuse).
    pub(super) refusable: Vec<bool>,
    pub(super) slots: SlotExtractor,
    pub(super) negation_window: usize,
    /// How far after its verb an artifact is still its object (`[frames]`).
    pub(super) object_words: usize,
    /// Per intent: no frame takes it away (`[frames] spare`).
    pub(super) frame_spare: Vec<bool>,
    /// The n-gram model, consulted when no rule decides or rules tie.
    pub(super) model: Model,
    /// `model`: the `rule` of a model reading that is not explained.
    pub(super) model_label: Arc<str>,
    pub(super) small_talk: SmallTalkSet,
    /// The `[replies]` patterns: what a short answer reads as.
    pub(super) replies: SmallTalkSet,
    pub threshold: f32,
    pub clarify_margin: f32,
}

/// The model decides alone (no rule fired) from this probability on.
const MODEL_THRESHOLD: f32 = 0.5;
/// The model breaks a tie between rule candidates from this probability on.
const MODEL_TIE_BREAK: f32 = 0.7;
/// The model overrules a rule below [`STRONG_RULE`] when it is sure of something else (from
/// [`MODEL_OVERRULE`] on) and either the rule is weak (below [`WEAK_RULE`]: one word, "stripe"
/// alone) or the model finds the rule's intent unlikely ([`MODEL_DOUBT`] times less likely than
/// its own pick).
const STRONG_RULE: f32 = 0.93;
const WEAK_RULE: f32 = 0.7;
const MODEL_OVERRULE: f32 = 0.6;
const MODEL_DOUBT: f32 = 6.0;
/// An intent with side effects acts from this confidence on; below it the conversation asks
/// "did you mean …?" (calibrated on blind rounds 1 and 2: see docs/intents.md).
pub const ACT_CONFIDENCE: f32 = 0.7;
/// The model's best intent short of [`MODEL_THRESHOLD`] is offered as "did you mean …?" from
/// this probability on.
const SUGGEST_FLOOR: f32 = 0.4;
/// Utterances longer than this many words are not read as short replies.
const REPLY_WORDS: usize = 6;

#[derive(Debug, Clone, Copy)]
struct Hit {
    start: u32,
    end: u32,
    pattern: u32,
}

/// The strongest rule that fired for one intent, and how many fired.
#[derive(Debug, Clone, Copy)]
struct Best {
    rule: usize,
    weight: f32,
    span: (u32, u32),
    count: u32,
}

#[derive(Default)]
struct Scratch {
    first: Normalized,
    norm: Normalized,
    hits: Vec<Hit>,
    negations: Vec<(u32, u32)>,
    breakers: Vec<u32>,
    /// Word breaks that end a clause (`Normalized::clause_breaks`).
    clause_breaks: Vec<u32>,
    masks: Vec<u64>,
    suppressed: Vec<bool>,
    best: Vec<Option<Best>>,
    /// Per rule regex: whether it can match (an ungated one always can).
    gates: Vec<bool>,
    /// Per rule regex: whether one of the literals it ends with occurred (or it has none).
    gates_end: Vec<bool>,
    /// Intents with a term or a regex gate seen: only their rules can fire.
    touched: Vec<u16>,
    ranked: Vec<(usize, usize, f32, (u32, u32))>,
    slot_sets: SetScratch,
    slot_hits: Vec<usize>,
    /// Per intent: a rule of it matched but a negation cancelled it.
    refused: Vec<Option<usize>>,
    features: Vec<Feature>,
    probs: Vec<f32>,
    frame_hits: Vec<FrameHit>,
    /// The request's frame, if it makes it no intent, and what decided it.
    frame: Option<(Frame, (u32, u32))>,
    /// Whether a model reading names the n-grams that decided it (`classify_explained`).
    explain: bool,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Matcher {
    /// Normalized form of `text`, as the rules see it.
    pub fn normalize(&self, text: &str) -> String {
        self.normalizer.normalize(text).text
    }

    /// Names of the loaded intents, in file order.
    pub fn intent_names(&self) -> impl Iterator<Item = &str> {
        self.intents.iter().map(|i| &*i.name)
    }

    /// Summary and button label of an intent.
    pub fn describe(&self, intent: &str) -> Option<(&str, &str)> {
        self.intents
            .iter()
            .find(|i| &*i.name == intent)
            .map(|i| (i.summary.as_str(), i.label.as_str()))
    }

    /// The fixed answer of a data-only intent.
    pub fn answer(&self, intent: &str) -> Option<&str> {
        self.intents
            .iter()
            .find(|i| &*i.name == intent)
            .and_then(|i| i.answer.as_deref())
    }

    /// Rule identifiers, `file:line id`, for coverage reports.
    pub fn rule_names(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.label.to_string()).collect()
    }

    /// Classifies one utterance.
    ///
    /// # Examples
    /// ```
    /// let matcher = chatpay_core::intents::load_embedded(0.5, 0.08).unwrap();
    /// let c = matcher.classify("I wanna add payments to my app");
    /// assert_eq!(&*c.matched().unwrap().intent, "add_payments");
    /// assert!(matcher.classify("I don't want payments yet").matched().is_none());
    /// ```
    pub fn classify(&self, text: &str) -> Classification {
        self.classify_explaining(text, false)
    }

    /// Classifies one utterance, and a reading the model decided names what decided it: its
    /// `rule` is the n-grams that weighed most (`model "membership" +10.07, …`) and its `span`
    /// covers them. [`Matcher::classify`] gives the same outcome and slots without that
    /// explanation (`rule` is just `model`, `span` the whole text): building it costs as much
    /// as a sixth of a reading, and only the command line and the scores print it.
    pub fn classify_explained(&self, text: &str) -> Classification {
        self.classify_explaining(text, true)
    }

    fn classify_explaining(&self, text: &str, explain: bool) -> Classification {
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let s = &mut *guard;
            s.explain = explain;
            self.classify_with(text, s)
        })
    }

    fn classify_with(&self, text: &str, s: &mut Scratch) -> Classification {
        self.normalizer
            .normalize_into(text, &mut s.first, &mut s.norm);
        let norm = s.norm.text.as_bytes();
        let n_intents = self.intents.len();
        s.hits.clear();
        s.negations.clear();
        s.breakers.clear();
        s.masks.clear();
        s.masks.resize(n_intents, 0);
        s.suppressed.clear();
        s.suppressed.resize(n_intents, false);
        s.refused.clear();
        s.refused.resize(n_intents, None);
        s.frame_hits.clear();
        s.norm.clause_breaks(text, &mut s.clause_breaks);

        s.gates.clear();
        s.gates.extend(self.regexes.iter().map(|r| !r.gated));
        s.gates_end.clear();
        s.gates_end
            .extend(self.regexes.iter().map(|r| !r.gated_end));
        s.touched.clear();
        self.automaton.overlapping(norm, |start, end, pattern| {
            let bounded =
                (start == 0 || norm[start - 1] == b' ') && (end == norm.len() || norm[end] == b' ');
            let mut word = false;
            for tag in &self.tags[pattern as usize] {
                match *tag {
                    Tag::RegexGate { regex, at_start } => {
                        if start == 0 || !at_start {
                            s.gates[regex as usize] = true;
                        }
                    }
                    Tag::RegexGateEnd { regex } => s.gates_end[regex as usize] = true,
                    _ if !bounded => {}
                    Tag::Term { intent, group } => {
                        if s.masks[intent as usize] == 0 {
                            s.touched.push(intent);
                        }
                        s.masks[intent as usize] |= 1 << group;
                        word = true;
                    }
                    Tag::Negation => s.negations.push((start as u32, end as u32)),
                    Tag::Breaker => s.breakers.push(start as u32),
                    Tag::Unless { intent } => s.suppressed[intent as usize] = true,
                    Tag::Frame(FrameWord::Subject) => {
                        if start == 0 {
                            s.frame_hits.push(FrameHit {
                                start: 0,
                                end: end as u32,
                                word: FrameWord::RestyleVerb,
                            });
                        }
                    }
                    Tag::Frame(word) => s.frame_hits.push(FrameHit {
                        start: start as u32,
                        end: end as u32,
                        word,
                    }),
                }
            }
            if word {
                s.hits.push(Hit {
                    start: start as u32,
                    end: end as u32,
                    pattern,
                });
            }
        });

        // A request that builds something about payments, declines or puts them off, supposes
        // or compares is no intent, whatever words it holds.
        let (norm_ref, breaks) = (&s.norm, &s.clause_breaks);
        s.frame = frames::read(&mut s.frame_hits, self.object_words, |from, to| {
            // An object phrase ends with its clause.
            if breaks
                .iter()
                .any(|&b| b as usize > from && (b as usize) < to)
            {
                usize::MAX
            } else {
                norm_ref.words_between(from, to)
            }
        });
        if s.frame.is_some() {
            for (suppressed, spare) in s.suppressed.iter_mut().zip(&self.frame_spare) {
                *suppressed |= !spare;
            }
        }

        for (gate, &end) in s.gates.iter_mut().zip(&s.gates_end) {
            *gate &= end;
        }
        for (regex, &open) in self.regexes.iter().zip(&s.gates) {
            if open {
                s.touched.extend_from_slice(&regex.intents);
            }
        }
        s.touched.sort_unstable();
        s.touched.dedup();

        // The best rule per intent: (rule, confidence, span in normalized text).
        s.best.clear();
        s.best.resize(n_intents, None);
        let touched = std::mem::take(&mut s.touched);
        for &intent in &touched {
            let intent = intent as usize;
            if s.suppressed[intent] {
                continue;
            }
            for &r in &self.rules_of[intent] {
                let rule = &self.rules[r];
                let span = match rule.regex {
                    Some(ix) => {
                        if !s.gates[ix] {
                            continue;
                        }
                        match self.regexes[ix].re.find(&s.norm.text) {
                            Some(m) => (m.start() as u32, m.end() as u32),
                            None => continue,
                        }
                    }
                    None => {
                        if rule.required & !s.masks[intent] != 0 {
                            continue;
                        }
                        self.term_span(rule, &s.hits)
                    }
                };
                if rule.negatable && self.negated(span, s) {
                    s.refused[intent].get_or_insert(r);
                    continue;
                }
                let entry = &mut s.best[intent];
                match entry {
                    Some(best) => {
                        best.count += 1;
                        if rule.weight > best.weight {
                            (best.rule, best.weight, best.span) = (r, rule.weight, span);
                        }
                    }
                    None => {
                        *entry = Some(Best {
                            rule: r,
                            weight: rule.weight,
                            span,
                            count: 1,
                        })
                    }
                }
            }
        }
        s.touched = touched;

        // Each further rule that fired for the same intent is more evidence: +0.02, at most 0.99.
        let mut ranked = std::mem::take(&mut s.ranked);
        ranked.clear();
        ranked.extend(s.best.iter().enumerate().filter_map(|(i, b)| {
            b.map(|b| {
                let confidence = (b.weight + 0.02 * (b.count - 1) as f32).min(0.99);
                (i, b.rule, confidence, b.span)
            })
        }));
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));

        let rules_outcome = match ranked.first() {
            None => Outcome::Nothing,
            Some(&(_, _, top, _)) if top < self.threshold => {
                Outcome::Unsure(self.candidate(text, &s.norm, ranked[0]))
            }
            Some(&(_, _, top, _)) => {
                let close = ranked
                    .iter()
                    .take_while(|c| c.2 >= self.threshold && top - c.2 < self.clarify_margin)
                    .take(3)
                    .count();
                if close > 1 {
                    Outcome::Clarify(
                        ranked[..close]
                            .iter()
                            .map(|c| self.candidate(text, &s.norm, *c))
                            .collect(),
                    )
                } else {
                    Outcome::Matched(self.candidate(text, &s.norm, ranked[0]))
                }
            }
        };
        s.ranked = ranked;
        let outcome = match rules_outcome {
            // A weak rule (one word, "stripe" alone) gives way to a model that is sure of
            // something else, `none` included.
            Outcome::Matched(c) if c.confidence < STRONG_RULE && !self.model.is_empty() => {
                self.model_scores(s);
                let (best, p) = self.model_best(s);
                let rule_ix = self.intents.iter().position(|i| i.name == c.intent);
                let p_rule = rule_ix.map_or(0.0, |i| s.probs[i]);
                let overrule =
                    p >= MODEL_OVERRULE && (c.confidence < WEAK_RULE || p >= MODEL_DOUBT * p_rule);
                if best == rule_ix.unwrap_or(usize::MAX) || !overrule {
                    Outcome::Matched(c)
                } else if best >= self.intents.len() {
                    Outcome::Unsure(c)
                } else if s.suppressed[best] || s.refused[best].is_some() {
                    Outcome::Matched(c)
                } else {
                    Outcome::Matched(self.model_explained(text, s, best, p, None))
                }
            }
            Outcome::Matched(c) => Outcome::Matched(c),
            Outcome::Clarify(cs) => match self.model_tie_break(&cs, s) {
                Some(c) => Outcome::Matched(c),
                None => Outcome::Clarify(cs),
            },
            other => match self.model_candidate(text, s) {
                Some(c) if c.confidence >= MODEL_THRESHOLD => Outcome::Matched(c),
                Some(c) => Outcome::Suggest(c),
                None => other,
            },
        };
        // Side effects only on a confident reading.
        let outcome = match outcome {
            Outcome::Matched(c) if c.side_effects && c.confidence < ACT_CONFIDENCE => {
                Outcome::Suggest(c)
            }
            other => other,
        };
        // Slots are read for the intent the utterance is read as (some patterns are limited to
        // some intents).
        let intent = match &outcome {
            Outcome::Matched(c) | Outcome::Unsure(c) | Outcome::Suggest(c) => Some(&*c.intent),
            Outcome::Clarify(cs) => cs.first().map(|c| &*c.intent),
            Outcome::Nothing => None,
        };
        let mut slots = Slots::new();
        self.slots
            .extract(text, intent, &mut s.slot_sets, &mut s.slot_hits, &mut slots);
        let small_talk = match outcome {
            Outcome::Matched(_) | Outcome::Clarify(_) | Outcome::Suggest(_) => None,
            _ => self.small_talk(s),
        };
        let reply = if s.norm.text.bytes().filter(|&b| b == b' ').count() < REPLY_WORDS {
            self.replies
                .set
                .matches(&s.norm.text)
                .into_iter()
                .next()
                .map(|ix| self.replies.kinds[ix].0.clone())
        } else {
            None
        };
        Classification {
            outcome,
            slots,
            small_talk,
            reply,
        }
    }

    /// The model's class probabilities for the utterance in `s` (normalized and scanned).
    fn model_scores(&self, s: &mut Scratch) {
        let mut features = std::mem::take(&mut s.features);
        model::features(
            &s.norm.text,
            |start| self.negated((start, start), s),
            &mut features,
        );
        self.model.score(&features, &mut s.probs);
        s.features = features;
    }

    /// The model's view of `text` on its own: each class (intents, then `none`) with its
    /// probability, best first. For explaining and tuning; `classify` decides.
    pub fn model_view(&self, text: &str) -> Vec<(String, f32)> {
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let s = &mut *guard;
            self.classify_with(text, s);
            self.model_scores(s);
            let mut out: Vec<(String, f32)> = s
                .probs
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let name = self.intents.get(i).map_or("none", |x| &*x.name);
                    (name.to_owned(), *p)
                })
                .collect();
            out.sort_by(|a, b| b.1.total_cmp(&a.1));
            out
        })
    }

    /// The model's features for `text`, for training.
    pub(super) fn model_features(&self, text: &str) -> Vec<Feature> {
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let s = &mut *guard;
            self.classify_with(text, s);
            let mut features = Vec::new();
            model::features(
                &s.norm.text,
                |start| self.negated((start, start), s),
                &mut features,
            );
            features
        })
    }

    /// The model's best intent, if it is confident, not `none`, not excluded by the intent's
    /// `unless` phrases and not refused by a negation of one of its rules.
    fn model_candidate(&self, text: &str, s: &mut Scratch) -> Option<Candidate> {
        if self.model.is_empty() {
            return None;
        }
        self.model_scores(s);
        let (best, p) = self.model_best(s);
        // A refusal holds: when a negation cancelled a rule and no rule is left, the model finds
        // no other action in it ("never charge my users" is not "never mind"). Questions, and
        // intents whose rules read a negation as part of what they ask ("I have no Stripe
        // account"), may still be found.
        let refusal = s.refused.iter().any(Option::is_some);
        // Nor is a refusal turned into a question ("please do not connect stripe").
        if best >= self.intents.len()
            || (refusal && (self.refusable[best] || p < MODEL_THRESHOLD))
            || p < SUGGEST_FLOOR
            || s.suppressed[best]
            || s.refused[best].is_some()
        {
            return None;
        }
        Some(self.model_explained(text, s, best, p, None))
    }

    /// The model's best class and its probability (the first on a tie).
    fn model_best(&self, s: &Scratch) -> (usize, f32) {
        s.probs
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .unwrap_or((usize::MAX, 0.0))
    }

    /// Between rule candidates too close to call, the model's choice if it clearly prefers one.
    fn model_tie_break(&self, cs: &[Candidate], s: &mut Scratch) -> Option<Candidate> {
        if self.model.is_empty() {
            return None;
        }
        self.model_scores(s);
        let pick = cs
            .iter()
            .filter_map(|c| {
                let i = self.intents.iter().position(|x| x.name == c.intent)?;
                Some((c, s.probs[i]))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        let runner_up = cs
            .iter()
            .filter(|c| c.intent != pick.0.intent)
            .filter_map(|c| self.intents.iter().position(|x| x.name == c.intent))
            .map(|i| s.probs[i])
            .fold(0.0, f32::max);
        // Clearly: most of the mass overall, and three times the next candidate.
        if pick.1 < MODEL_TIE_BREAK || pick.1 < 3.0 * runner_up {
            return None;
        }
        let mut c = pick.0.clone();
        if s.explain {
            c.rule = Arc::from(format!("{} (model broke the tie at {:.2})", c.rule, pick.1));
        }
        Some(c)
    }

    /// A candidate decided by the model, its `rule` naming the n-grams that weighed most.
    fn model_explained(
        &self,
        text: &str,
        s: &Scratch,
        intent: usize,
        p: f32,
        topic: Option<Arc<str>>,
    ) -> Candidate {
        let candidate = |rule: Arc<str>, span: (usize, usize)| Candidate {
            intent: self.intents[intent].name.clone(),
            confidence: (p * 100.0).round() / 100.0,
            rule,
            span,
            topic,
            captures: Slots::new(),
            answer: self.intents[intent].answer.clone(),
            side_effects: self.intents[intent].side_effects,
        };
        if !s.explain {
            return candidate(Arc::clone(&self.model_label), (0, text.len()));
        }
        // What each word (or pair of words) weighed for the intent: its own feature and its
        // character n-grams together, so that the explanation names words, not fragments.
        let norm = s.norm.text.as_bytes();
        let mut weighed: Vec<(u32, u32, bool, f32)> = Vec::new();
        for f in s.features.iter().filter(|f| f.end > f.start) {
            let (mut start, mut end) = (f.start as usize, f.end as usize);
            if !norm[start..end].contains(&b' ') {
                while start > 0 && norm[start - 1] != b' ' {
                    start -= 1;
                }
                while end < norm.len() && norm[end] != b' ' {
                    end += 1;
                }
            }
            let w = self.model.weight(f, intent);
            let key = (start as u32, end as u32, f.negated);
            match weighed.iter_mut().find(|x| (x.0, x.1, x.2) == key) {
                Some(x) => x.3 += w,
                None => weighed.push((key.0, key.1, key.2, w)),
            }
        }
        weighed.retain(|x| x.3 > 0.0);
        weighed.sort_by(|a, b| b.3.total_cmp(&a.3));
        let mut named: Vec<String> = Vec::new();
        let mut span = (u32::MAX, 0);
        for &(start, end, negated, w) in weighed.iter().take(3) {
            let gram = s.norm.text.get(start as usize..end as usize).unwrap_or("");
            let not = if negated { "not:" } else { "" };
            named.push(format!("\"{not}{gram}\" {w:+.2}"));
            span = (span.0.min(start), span.1.max(end));
        }
        if span.0 == u32::MAX {
            span = (0, 0);
        }
        candidate(
            Arc::from(format!("model {}", named.join(", "))),
            s.norm.original_span(text, span.0 as usize, span.1 as usize),
        )
    }

    /// Small talk, when nothing matched: a refusal (a rule cancelled by a negation) first, then
    /// the `[small_talk]` patterns, then the request's frame.
    fn small_talk(&self, s: &Scratch) -> Option<SmallTalk> {
        if let Some((intent, r)) = s
            .refused
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.map(|r| (i, r)))
        {
            return Some(SmallTalk {
                kind: Arc::from("refusal"),
                about: Some(self.intents[intent].name.clone()),
                rule: Arc::from(format!("negated {}", self.rules[r].label)),
            });
        }
        // A pattern says more than a frame ("no payments for now, just make the header blue" is
        // a refusal before it is a design request).
        if let Some(ix) = self.small_talk.set.matches(&s.norm.text).into_iter().next() {
            let (kind, rule) = &self.small_talk.kinds[ix];
            return Some(SmallTalk {
                kind: kind.clone(),
                about: None,
                rule: rule.clone(),
            });
        }
        let (frame, (start, end)) = s.frame?;
        let words = s.norm.text.get(start as usize..end as usize).unwrap_or("");
        Some(SmallTalk {
            kind: Arc::from(frame.kind()),
            about: None,
            rule: Arc::from(format!("frame {} \"{words}\"", frame.name())),
        })
    }

    /// From the earliest to the latest occurrence of the rule's groups.
    fn term_span(&self, rule: &RuleInfo, hits: &[Hit]) -> (u32, u32) {
        let mut start = u32::MAX;
        let mut end = 0;
        let mut seen = 0u64;
        for h in hits {
            for tag in &self.tags[h.pattern as usize] {
                if let Tag::Term { intent, group } = *tag {
                    let bit = 1u64 << group;
                    if intent == rule.intent && rule.required & bit != 0 && seen & bit == 0 {
                        seen |= bit;
                        start = start.min(h.start);
                        end = end.max(h.end);
                    }
                }
            }
        }
        if start == u32::MAX {
            (0, 0)
        } else {
            (start, end)
        }
    }

    /// True if a negation cue sits shortly before the match with nothing breaking it off.
    fn negated(&self, span: (u32, u32), s: &Scratch) -> bool {
        s.negations.iter().any(|&(ns, ne)| {
            if ne > span.0 {
                // A cue inside the match is part of what the rule asks for ("do not have").
                return false;
            }
            // From the cue's last word to the match's first.
            let distance = s
                .norm
                .words_between(ne.saturating_sub(1) as usize, span.0 as usize);
            let broken = s.breakers.iter().any(|&b| b > ns && b < span.0)
                || s.clause_breaks.iter().any(|&b| b > ne && b < span.0);
            distance <= self.negation_window && !broken
        })
    }

    fn candidate(
        &self,
        text: &str,
        norm: &Normalized,
        (intent, r, confidence, span): (usize, usize, f32, (u32, u32)),
    ) -> Candidate {
        let rule = &self.rules[r];
        let mut captures = Slots::new();
        if let Some(ix) = rule.regex
            && self.regexes[ix].named
            && let Some(caps) = self.regexes[ix].re.captures(&norm.text)
        {
            for name in self.regexes[ix].re.capture_names().flatten() {
                if let Some(m) = caps.name(name) {
                    captures.insert(name.to_owned(), SlotValue::Text(m.as_str().to_owned()));
                }
            }
        }
        Candidate {
            intent: self.intents[intent].name.clone(),
            confidence: (confidence * 100.0).round() / 100.0,
            rule: Arc::clone(&rule.label),
            span: norm.original_span(text, span.0 as usize, span.1 as usize),
            topic: rule.topic.clone(),
            captures,
            answer: self.intents[intent].answer.clone(),
            side_effects: rule.side_effects,
        }
    }
}
