//! The intent file format (TOML), as read from disk or from the embedded copy.
//!
//! * `_lexicon.toml`: word replacements (contractions, slang, misspellings), shared term groups,
//!   negation cues.
//! * `_slots.toml`: slot patterns (order number, payment id, amount, date) and their examples.
//! * `_no_intent.toml`: utterances that must match nothing (small talk, look-alikes).
//! * every other `*.toml`: one intent: its term groups, rules, examples and counter-examples.
//!
//! See `docs/intents.md` for a worked example.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LexiconFile {
    /// Word or phrase -> what it means ("wanna" -> "want to", "paymnets" -> "payments").
    #[serde(default)]
    pub replace: BTreeMap<String, String>,
    /// Term groups any intent may use by name.
    #[serde(default)]
    pub terms: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub negation: NegationDef,
    /// Small talk kind (`greeting`, `thanks`, …) -> regexes over the whole normalized text.
    #[serde(default)]
    pub small_talk: BTreeMap<String, Vec<String>>,
    /// Short replies (`yes`, `no`, `second`, `month`, …) -> regexes over the whole normalized
    /// text: what an answer to a card's question reads as (the conversation decides whether one
    /// was asked).
    #[serde(default)]
    pub replies: BTreeMap<String, Vec<String>>,
    /// What makes a whole request no intent (see `frames.rs`).
    #[serde(default)]
    pub frames: FramesDef,
}

/// The words of `[frames]`: each list is word phrases, matched on word boundaries after
/// normalization (see `frames.rs` for what each kind does).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FramesDef {
    pub build_verbs: Vec<String>,
    pub restyle_verbs: Vec<String>,
    /// Words that, as the utterance's first word, make it a statement about a thing ("the
    /// revenue chart is broken"): read as a restyle verb there.
    pub subjects: Vec<String>,
    pub artifacts: Vec<String>,
    pub functional: Vec<String>,
    pub object_ends: Vec<String>,
    /// How many words after its verb an artifact still belongs to the object.
    pub object_words: usize,
    pub design: Vec<String>,
    pub working: Vec<String>,
    pub declines: Vec<String>,
    pub deferrals: Vec<String>,
    pub redirects: Vec<String>,
    pub hypothetical: Vec<String>,
    pub providers: Vec<String>,
    pub comparisons: Vec<String>,
    pub opinions: Vec<String>,
    /// Intents no frame takes away ("cancel": "park this for now" is what it is about).
    pub spare: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NegationDef {
    /// Words that negate what follows ("do not", "never").
    pub cues: Vec<String>,
    /// How many words after a cue it still negates.
    pub window: usize,
    /// Words that end a negation's reach ("but").
    pub breakers: Vec<String>,
}

impl Default for NegationDef {
    fn default() -> Self {
        NegationDef {
            cues: Vec::new(),
            window: 3,
            breakers: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SlotsFile {
    #[serde(default)]
    pub slot: Vec<Spanned<SlotDef>>,
    #[serde(default)]
    pub example: Vec<Spanned<SlotExample>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SlotKind {
    /// The `value` capture, as written.
    Text,
    /// Captures `symbol`, `number`, `code`: becomes `{"minor": …, "currency": …}`.
    Amount,
    /// Captures `year`, `month`, `day` or `rel`: becomes `YYYY-MM-DD`, `--MM-DD` or the word.
    Date,
    /// The `value` capture, a decimal number ("15", "12.5"): becomes a JSON number.
    Number,
    /// The `value` capture, a billing interval ("monthly", "annual"): becomes `week`, `month`
    /// or `year`.
    Interval,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotDef {
    pub name: String,
    pub kind: SlotKind,
    /// Matched against the original text (ids are case-sensitive), case-insensitively where the
    /// pattern says `(?i)`.
    pub regex: String,
    /// Only when the utterance is read as one of these intents (empty: always). For patterns
    /// that would mislead elsewhere: a bare upper-case word is a discount code only in a request
    /// about discount codes.
    #[serde(default)]
    pub intents: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotExample {
    pub text: String,
    pub slots: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoIntentFile {
    /// Utterances that must not match any intent.
    #[serde(default)]
    pub examples: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentFile {
    pub name: String,
    /// One line for people (used in clarify cards and `help`).
    pub summary: String,
    /// A label for a button that picks this intent ("Add payments").
    pub label: Option<String>,
    /// Whether a negation before the matched words cancels the match (default: yes).
    #[serde(default = "yes")]
    pub negatable: bool,
    /// If any of these words or phrases occurs, this intent does not match.
    #[serde(default)]
    pub unless: Vec<String>,
    /// A fixed answer, for intents that chatpay has no built-in behaviour for.
    pub answer: Option<String>,
    /// Acting on it changes something (creates, refunds, cancels, disconnects, goes live): it
    /// acts only on a confident reading, below that the conversation asks "did you mean …?".
    #[serde(default)]
    pub side_effects: bool,
    #[serde(default)]
    pub examples: Vec<Spanned<String>>,
    #[serde(default)]
    pub counter_examples: Vec<Spanned<String>>,
    #[serde(default)]
    pub terms: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RuleDef>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub id: String,
    /// Term groups that must all occur (in any order).
    #[serde(default)]
    pub all: Vec<String>,
    /// A regular expression over the normalized text; named captures become slots.
    pub regex: Option<String>,
    pub weight: f32,
    /// Overrides the intent's `side_effects` for this rule (a question about subscriptions has
    /// none; cancelling one has).
    pub side_effects: Option<bool>,
    /// Overrides the intent's `negatable` for this rule.
    pub negatable: Option<bool>,
    /// A finer topic within the intent ("timeline", "rejected"), passed to the answer.
    pub topic: Option<String>,
}

/// 1-based line of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    text[..pos.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}
