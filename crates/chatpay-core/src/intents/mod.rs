//! Intents as data: the file format, the loader, the matcher. No I/O after load.
//!
//! The files in `intents/` are compiled into the binary (see `build.rs`); `intents_dir` in the
//! configuration swaps in a directory instead. [`load_sources`] builds a [`Matcher`] and the
//! [`Corpus`] of examples that `chatpay intents check` runs.

mod eval;
mod format;
mod frames;
mod matcher;
mod model;
mod normalize;
mod scan;
mod set;
mod slots;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use eval::{EvalCase, EvalReport, evaluate, parse_eval};
use format::{IntentFile, LexiconFile, NoIntentFile, SlotsFile, line_of};
pub use matcher::{ACT_CONFIDENCE, Candidate, Classification, Matcher, Outcome, SmallTalk};
use matcher::{IntentInfo, RuleInfo, RuleRegex, SmallTalkSet, Tag};
pub use normalize::{Normalized, Normalizer};
use scan::Literals;
pub use set::ascii_word_boundaries;
pub use slots::{Price, SlotValue, Slots, currency_of};

/// The intents chatpay has built-in behaviour for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    AddPayments,
    ConnectStripe,
    CreateStripeAccount,
    AccountStatus,
    SyncCatalog,
    ShowCatalog,
    TestMode,
    GoLive,
    BackToTest,
    PaymentStatus,
    Refund,
    PayoutStatus,
    ReceiptsInvoices,
    DisconnectStripe,
    Subscriptions,
    Help,
    Cancel,
    CreateProduct,
    UpdateProduct,
    DiscountCodes,
    Customers,
    Disputes,
    CustomerPortal,
    ChangePlan,
    SubscriptionMetrics,
    ExportData,
}

impl Intent {
    pub const ALL: [Intent; 26] = [
        Intent::AddPayments,
        Intent::ConnectStripe,
        Intent::CreateStripeAccount,
        Intent::AccountStatus,
        Intent::SyncCatalog,
        Intent::ShowCatalog,
        Intent::TestMode,
        Intent::GoLive,
        Intent::BackToTest,
        Intent::PaymentStatus,
        Intent::Refund,
        Intent::PayoutStatus,
        Intent::ReceiptsInvoices,
        Intent::DisconnectStripe,
        Intent::Subscriptions,
        Intent::Help,
        Intent::Cancel,
        Intent::CreateProduct,
        Intent::UpdateProduct,
        Intent::DiscountCodes,
        Intent::Customers,
        Intent::Disputes,
        Intent::CustomerPortal,
        Intent::ChangePlan,
        Intent::SubscriptionMetrics,
        Intent::ExportData,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Intent::AddPayments => "add_payments",
            Intent::ConnectStripe => "connect_stripe",
            Intent::CreateStripeAccount => "create_stripe_account",
            Intent::AccountStatus => "account_status",
            Intent::SyncCatalog => "sync_catalog",
            Intent::ShowCatalog => "show_catalog",
            Intent::TestMode => "test_mode",
            Intent::GoLive => "go_live",
            Intent::BackToTest => "back_to_test",
            Intent::PaymentStatus => "payment_status",
            Intent::Refund => "refund",
            Intent::PayoutStatus => "payout_status",
            Intent::ReceiptsInvoices => "receipts_invoices",
            Intent::DisconnectStripe => "disconnect_stripe",
            Intent::Help => "help",
            Intent::Cancel => "cancel",
            Intent::Subscriptions => "subscriptions",
            Intent::CreateProduct => "create_product",
            Intent::UpdateProduct => "update_product",
            Intent::DiscountCodes => "discount_codes",
            Intent::Customers => "customers",
            Intent::Disputes => "disputes",
            Intent::CustomerPortal => "customer_portal",
            Intent::ChangePlan => "change_plan",
            Intent::SubscriptionMetrics => "subscription_metrics",
            Intent::ExportData => "export_data",
        }
    }

    pub fn parse(name: &str) -> Option<Intent> {
        Intent::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// An intent file, by name, with its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// What an example in the files expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Intent(String),
    NotIntent(String),
    Nothing,
    Slots(BTreeMap<String, serde_json::Value>),
}

/// One example from the files, with where it was written.
#[derive(Debug, Clone)]
pub struct Check {
    pub file: String,
    pub line: usize,
    pub text: String,
    pub expect: Expect,
}

/// Every example and counter-example of the loaded files.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub checks: Vec<Check>,
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_intents.rs"));
}

/// The intent files compiled into the binary.
pub fn embedded_sources() -> Vec<Source> {
    embedded::FILES
        .iter()
        .map(|(name, text)| Source {
            name: (*name).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}

/// Reads every `*.toml` in `dir`, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<Source>, String> {
    let mut sources = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|x| x == "toml") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            sources.push(Source { name, text });
        }
    }
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sources)
}

/// The matcher over the embedded files.
pub fn load_embedded(threshold: f32, clarify_margin: f32) -> Result<Matcher, String> {
    load_sources(&embedded_sources(), threshold, clarify_margin)
        .map(|(m, _)| m)
        .map_err(|errors| errors.join("\n"))
}

/// Builds the matcher and the example corpus, or every problem found, each as `file:line: …`.
///
/// The steps, in order (which is the order problems are reported in): parse every file
/// ([`parse_files`]); tag the lexicon's negation words ([`Build::negation`]); read each intent's
/// rules, terms and examples ([`Build::intent`]); compile the rule regexes and ride their
/// literals along in the term automaton ([`compile_regexes`], [`Build::gate_regexes`]); read the
/// slot definitions and their examples ([`Build::slots`]); assemble the [`Matcher`].
pub fn load_sources(
    sources: &[Source],
    threshold: f32,
    clarify_margin: f32,
) -> Result<(Matcher, Corpus), Vec<String>> {
    let Parsed {
        lexicon,
        slots: slot_file,
        intents,
        errors,
        corpus,
    } = parse_files(sources);
    let mut build = Build {
        normalizer: Normalizer::new(
            lexicon
                .replace
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        ),
        patterns: Patterns::default(),
        rules: Vec::new(),
        regex_patterns: Vec::new(),
        errors,
        corpus,
    };
    build.negation(&lexicon);
    build.frames(&lexicon);
    let mut infos = Vec::new();
    let mut seen_names: HashMap<String, String> = HashMap::new();
    for (i, (src, file)) in intents.iter().enumerate() {
        if let Some(other) = seen_names.insert(file.name.clone(), src.name.clone()) {
            build.errors.push(format!(
                "{}:1: intent {:?} is already defined in {other}",
                src.name, file.name
            ));
        }
        infos.push(build.intent(i as u16, src, file, &lexicon));
    }
    let regexes = compile_regexes(&build.regex_patterns, &build.rules, &mut build.errors);
    let regex_gated = build.gate_regexes();
    let slot_extractor = build.slots(slot_file);
    let small_talk = build.small_talk(&lexicon.small_talk, "small_talk");
    let replies = build.small_talk(&lexicon.replies, "replies");

    let Build {
        normalizer,
        patterns,
        rules,
        errors,
        corpus,
        ..
    } = build;
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut regexes: Vec<RuleRegex> = regexes
        .into_iter()
        .zip(regex_gated)
        .map(|(re, (gated, gated_end))| RuleRegex {
            named: re.capture_names().flatten().next().is_some(),
            re,
            gated,
            gated_end,
            intents: Vec::new(),
        })
        .collect();
    let mut rules_of = vec![Vec::new(); infos.len()];
    for (r, rule) in rules.iter().enumerate() {
        rules_of[rule.intent as usize].push(r);
        if let Some(ix) = rule.regex {
            regexes[ix].intents.push(rule.intent);
        }
    }
    let frame_spare = infos
        .iter()
        .map(|i| lexicon.frames.spare.iter().any(|n| **n == *i.name))
        .collect();
    let refusable = rules_of
        .iter()
        .map(|rs| rs.iter().all(|&r| rules[r].negatable))
        .collect();
    let mut matcher = Matcher {
        normalizer,
        automaton: Literals::new(&patterns.list).expect("term automaton compiles"),
        tags: patterns.tags,
        intents: infos,
        rules,
        regexes,
        rules_of,
        refusable,
        slots: slot_extractor,
        negation_window: lexicon.negation.window,
        object_words: lexicon.frames.object_words,
        frame_spare,
        model: model::Model::default(),
        model_label: Arc::from("model"),
        small_talk,
        replies,
        threshold,
        clarify_margin,
    };
    matcher.model = train_model(&matcher, &corpus);
    Ok((matcher, corpus))
}

/// The n-gram model, trained on the corpus: an intent's examples teach it, its
/// counter-examples teach "not it", `_no_intent.toml`'s lines teach `none` (the last class).
fn train_model(matcher: &Matcher, corpus: &Corpus) -> model::Model {
    let names: Vec<&str> = matcher.intent_names().collect();
    let none = names.len();
    let index = |n: &str| names.iter().position(|x| *x == n);
    let samples: Vec<model::Sample> = corpus
        .checks
        .iter()
        .filter_map(|c| {
            let label = match &c.expect {
                Expect::Intent(n) => model::Label::Is(index(n)?),
                Expect::NotIntent(n) => model::Label::Not(index(n)?),
                Expect::Nothing => model::Label::Is(none),
                Expect::Slots(_) => return None,
            };
            Some(model::Sample {
                features: matcher.model_features(&c.text),
                label,
            })
        })
        .collect();
    model::Model::train(none + 1, &samples)
}

/// The files, parsed: the lexicon, the slot file (its name and text, for lines), the intent
/// files, and `_no_intent.toml`'s examples already in the corpus.
struct Parsed<'s> {
    lexicon: LexiconFile,
    slots: (String, String, SlotsFile),
    intents: Vec<(&'s Source, IntentFile)>,
    errors: Vec<String>,
    corpus: Corpus,
}

fn parse_files(sources: &[Source]) -> Parsed<'_> {
    let mut parsed = Parsed {
        lexicon: LexiconFile::default(),
        slots: (String::new(), String::new(), SlotsFile::default()),
        intents: Vec::new(),
        errors: Vec::new(),
        corpus: Corpus::default(),
    };
    for src in sources {
        let outcome = match src.name.as_str() {
            "_lexicon.toml" => toml::from_str(&src.text).map(|l| parsed.lexicon = l),
            "_slots.toml" => toml::from_str(&src.text)
                .map(|s| parsed.slots = (src.name.clone(), src.text.clone(), s)),
            "_no_intent.toml" => toml::from_str::<NoIntentFile>(&src.text).map(|f| {
                for ex in f.examples {
                    parsed.corpus.checks.push(Check {
                        file: src.name.clone(),
                        line: line_of(&src.text, ex.span().start),
                        text: ex.into_inner(),
                        expect: Expect::Nothing,
                    });
                }
            }),
            _ => toml::from_str::<IntentFile>(&src.text).map(|f| parsed.intents.push((src, f))),
        };
        if let Err(e) = outcome {
            let line = e.span().map_or(1, |s| line_of(&src.text, s.start));
            parsed
                .errors
                .push(format!("{}:{line}: {}", src.name, e.message()));
        }
    }
    parsed
}

/// What the matcher is built from, as the files are read, with the problems found so far.
struct Build {
    normalizer: Normalizer,
    patterns: Patterns,
    rules: Vec<RuleInfo>,
    /// The rule regexes as written, by [`RuleInfo::regex`].
    regex_patterns: Vec<String>,
    errors: Vec<String>,
    corpus: Corpus,
}

impl Build {
    /// Tags a phrase (normalized as utterances are) in the term automaton.
    fn add(&mut self, raw: &str, tag: Tag) -> Result<(), String> {
        let norm = self.normalizer.normalize(raw).text;
        if norm.is_empty() {
            return Err(format!("{raw:?} has no words after normalization"));
        }
        self.patterns.tag(norm, tag);
        Ok(())
    }

    fn negation(&mut self, lexicon: &LexiconFile) {
        for cue in &lexicon.negation.cues {
            self.add(cue, Tag::Negation)
                .unwrap_or_else(|e| self.errors.push(format!("_lexicon.toml: {e}")));
        }
        for b in &lexicon.negation.breakers {
            self.add(b, Tag::Breaker)
                .unwrap_or_else(|e| self.errors.push(format!("_lexicon.toml: {e}")));
        }
    }

    /// The `[frames]` words, tagged in the term automaton.
    fn frames(&mut self, lexicon: &LexiconFile) {
        use frames::FrameWord as W;
        let f = &lexicon.frames;
        let lists: [(&Vec<String>, W); 15] = [
            (&f.build_verbs, W::BuildVerb),
            (&f.restyle_verbs, W::RestyleVerb),
            (&f.subjects, W::Subject),
            (&f.artifacts, W::Artifact),
            (&f.functional, W::Functional),
            (&f.object_ends, W::ObjectEnd),
            (&f.design, W::Design),
            (&f.working, W::Working),
            (&f.declines, W::Decline),
            (&f.deferrals, W::Deferral),
            (&f.redirects, W::Redirect),
            (&f.hypothetical, W::Hypothetical),
            (&f.providers, W::Provider),
            (&f.comparisons, W::Comparison),
            (&f.opinions, W::Opinion),
        ];
        for (list, word) in lists {
            for p in list {
                if let Err(e) = self.add(p, Tag::Frame(word)) {
                    self.errors.push(format!("_lexicon.toml: frames: {e}"));
                }
            }
        }
    }

    /// One intent file: its rules (with the term groups they use), `unless` phrases and
    /// examples.
    fn intent(
        &mut self,
        intent: u16,
        src: &Source,
        file: &IntentFile,
        lexicon: &LexiconFile,
    ) -> IntentInfo {
        if Intent::parse(&file.name).is_none() && file.answer.is_none() {
            self.errors.push(format!(
                "{}:1: intent {:?} has no built-in behaviour, so it needs an `answer`",
                src.name, file.name
            ));
        }
        // Groups get bits in order of first use by a rule.
        let mut groups: Vec<&str> = Vec::new();
        for rule in &file.rule {
            self.rule(intent, src, file, lexicon, rule, &mut groups);
        }
        for unused in file.terms.keys().filter(|k| !groups.contains(&k.as_str())) {
            self.errors.push(format!(
                "{}:1: term group {unused:?} is not used by any rule",
                src.name
            ));
        }
        for u in &file.unless {
            if let Err(e) = self.add(u, Tag::Unless { intent }) {
                self.errors.push(format!("{}: unless: {e}", src.name));
            }
        }
        self.examples(src, file);
        IntentInfo {
            name: Arc::from(file.name.as_str()),
            summary: file.summary.clone(),
            label: file.label.clone().unwrap_or_else(|| file.summary.clone()),
            answer: file.answer.as_deref().map(Arc::from),
            side_effects: file.side_effects,
        }
    }

    /// One rule: either term groups that must all occur or a regex.
    fn rule<'f>(
        &mut self,
        intent: u16,
        src: &Source,
        file: &'f IntentFile,
        lexicon: &LexiconFile,
        rule: &'f toml::Spanned<format::RuleDef>,
        groups: &mut Vec<&'f str>,
    ) {
        let pos = rule.span().start;
        let at = format!("{}:{}", src.name, line_of(&src.text, pos));
        let def = rule.get_ref();
        if def.all.is_empty() == def.regex.is_none() {
            self.errors.push(format!(
                "{at}: rule {:?} needs either `all` or `regex`",
                def.id
            ));
            return;
        }
        if !(def.weight > 0.0 && def.weight <= 1.0) {
            self.errors
                .push(format!("{at}: rule {:?}: weight must be in (0, 1]", def.id));
        }
        let mut required = 0u64;
        for g in &def.all {
            let bit = match groups.iter().position(|x| x == g) {
                Some(b) => b,
                None => {
                    let phrases = file.terms.get(g).or_else(|| lexicon.terms.get(g));
                    let Some(phrases) = phrases else {
                        self.errors.push(format!(
                            "{at}: rule {:?} uses term group {g:?}, which is defined neither here nor in _lexicon.toml",
                            def.id
                        ));
                        continue;
                    };
                    if groups.len() == 64 {
                        self.errors.push(format!("{at}: more than 64 term groups"));
                        continue;
                    }
                    groups.push(g);
                    let group = (groups.len() - 1) as u8;
                    for p in phrases {
                        if let Err(e) = self.add(p, Tag::Term { intent, group }) {
                            self.errors.push(format!("{}: group {g:?}: {e}", src.name));
                        }
                    }
                    groups.len() - 1
                }
            };
            required |= 1 << bit;
        }
        let regex = def.regex.as_ref().map(|re| {
            self.regex_patterns.push(re.clone());
            self.regex_patterns.len() - 1
        });
        let line = line_of(&src.text, pos);
        self.rules.push(RuleInfo {
            intent,
            required,
            regex,
            weight: def.weight,
            negatable: def.negatable.unwrap_or(file.negatable),
            side_effects: def.side_effects.unwrap_or(file.side_effects),
            topic: def.topic.as_deref().map(Arc::from),
            label: Arc::from(format!("{}:{line} {}", src.name, def.id)),
        });
    }

    /// The `[small_talk]` (or `[replies]`) patterns of the lexicon, named `table`, in one set
    /// (first kind by name wins).
    fn small_talk(&mut self, lexicon: &BTreeMap<String, Vec<String>>, table: &str) -> SmallTalkSet {
        let mut patterns = Vec::new();
        let mut kinds = Vec::new();
        for (kind, list) in lexicon {
            for (i, p) in list.iter().enumerate() {
                patterns.push(ascii_word_boundaries(p));
                kinds.push((
                    Arc::from(kind.as_str()),
                    Arc::from(format!("_lexicon.toml {table}.{kind}[{i}]")),
                ));
            }
        }
        let set = regex::RegexSet::new(&patterns).unwrap_or_else(|e| {
            self.errors
                .push(format!("_lexicon.toml: {table}: bad regex: {e}"));
            regex::RegexSet::empty()
        });
        SmallTalkSet { set, kinds }
    }

    /// The intent's examples and counter-examples, into the corpus.
    fn examples(&mut self, src: &Source, file: &IntentFile) {
        let checks = file
            .examples
            .iter()
            .map(|ex| (ex, Expect::Intent(file.name.clone())))
            .chain(
                file.counter_examples
                    .iter()
                    .map(|ex| (ex, Expect::NotIntent(file.name.clone()))),
            );
        for (ex, expect) in checks {
            self.corpus.checks.push(Check {
                file: src.name.clone(),
                line: line_of(&src.text, ex.span().start),
                text: ex.get_ref().clone(),
                expect,
            });
        }
    }

    /// The literals each rule regex starts with, and those it ends with, ride along in the term
    /// automaton, so that the one scan also tells which regexes can match at all: one of each
    /// finite set must occur (`\badd\b … \d` runs only when "add" and a digit occurred); the
    /// rest are not run. Returns, per regex, whether it is gated by its start and by its end.
    fn gate_regexes(&mut self) -> Vec<(bool, bool)> {
        let mut regex_gated = vec![(false, false); self.regex_patterns.len()];
        let utf8 = |literals: Vec<Vec<u8>>| {
            literals
                .into_iter()
                .map(String::from_utf8)
                .collect::<Result<Vec<_>, _>>()
                .ok()
        };
        for (i, p) in self.regex_patterns.iter().enumerate() {
            let pattern = ascii_word_boundaries(p);
            let regex = i as u16;
            if let Some(prefixes) = set::prefix_literals(&pattern, true)
                && let Some(literals) = utf8(prefixes.literals)
            {
                let at_start = prefixes.at_start;
                for literal in literals {
                    self.patterns
                        .tag(literal, Tag::RegexGate { regex, at_start });
                }
                regex_gated[i].0 = true;
            }
            // Ends of a byte or two ("a digit", "a letter") occur in nearly every text: they
            // would cost the scan more than they save.
            if let Some(suffixes) = set::suffix_literals(&pattern)
                && suffixes.literals.iter().all(|l| l.len() >= 3)
                && let Some(literals) = utf8(suffixes.literals)
            {
                for literal in literals {
                    self.patterns.tag(literal, Tag::RegexGateEnd { regex });
                }
                regex_gated[i].1 = true;
            }
        }
        regex_gated
    }

    /// The slot extractor from `_slots.toml` (`(name, text, parsed)`), and its examples into the
    /// corpus.
    fn slots(
        &mut self,
        (slot_name, slot_text, slot_defs): (String, String, SlotsFile),
    ) -> slots::SlotExtractor {
        let slot_extractor = slots::SlotExtractor::new(
            &slot_defs
                .slot
                .iter()
                .map(|s| s.get_ref())
                .map(|d| format::SlotDef {
                    name: d.name.clone(),
                    kind: d.kind,
                    regex: d.regex.clone(),
                    intents: d.intents.clone(),
                })
                .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|e| {
            self.errors.push(format!("{slot_name}: {e}"));
            slots::SlotExtractor::new(&[]).expect("empty set compiles")
        });
        for ex in slot_defs.example {
            let line = line_of(&slot_text, ex.span().start);
            let ex = ex.into_inner();
            let expected = ex
                .slots
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect();
            self.corpus.checks.push(Check {
                file: slot_name.clone(),
                line,
                text: ex.text,
                expect: Expect::Slots(expected),
            });
        }
        slot_extractor
    }
}

/// Each rule regex on its own: a rule runs only its own (see [`Build::gate_regexes`]). A regex
/// that does not compile is reported at its rule.
fn compile_regexes(
    patterns: &[String],
    rules: &[RuleInfo],
    errors: &mut Vec<String>,
) -> Vec<regex::Regex> {
    let mut regexes = Vec::with_capacity(patterns.len());
    for (i, p) in patterns.iter().enumerate() {
        match regex::Regex::new(&ascii_word_boundaries(p)) {
            Ok(re) => regexes.push(re),
            Err(e) => {
                let place = rules
                    .iter()
                    .find(|r| r.regex == Some(i))
                    .map_or(String::new(), |r| r.label.to_string());
                errors.push(format!("{place}: bad regex: {e}"));
            }
        }
    }
    regexes
}

/// The term automaton's patterns, each once, with everything each one means.
#[derive(Default)]
struct Patterns {
    list: Vec<String>,
    tags: Vec<Vec<Tag>>,
    index: HashMap<String, usize>,
}

impl Patterns {
    /// Adds `tag` to `pattern`, adding the pattern if it is new.
    fn tag(&mut self, pattern: String, tag: Tag) {
        let ix = match self.index.get(&pattern) {
            Some(&ix) => ix,
            None => {
                self.index.insert(pattern.clone(), self.list.len());
                self.list.push(pattern);
                self.tags.push(Vec::new());
                self.list.len() - 1
            }
        };
        self.tags[ix].push(tag);
    }
}

fn toml_to_json(v: toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s),
        toml::Value::Integer(i) => i.into(),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        }
        toml::Value::Boolean(b) => b.into(),
        toml::Value::Array(a) => a.into_iter().map(toml_to_json).collect(),
        toml::Value::Table(t) => t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect(),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
    }
}

/// Runs every example against the matcher; one line per failure, `file:line: …`.
pub fn check(matcher: &Matcher, corpus: &Corpus) -> Vec<String> {
    let mut failures = Vec::new();
    let defined: Vec<&str> = matcher.intent_names().collect();
    for required in Intent::ALL {
        if !defined.contains(&required.name()) {
            failures.push(format!("intent {:?} has no file", required.name()));
        }
    }
    for c in &corpus.checks {
        let got = matcher.classify_explained(&c.text);
        let describe = || match &got.outcome {
            Outcome::Matched(m) => format!("{} ({:.2}, rule {})", m.intent, m.confidence, m.rule),
            Outcome::Clarify(cs) => format!(
                "clarify between {}",
                cs.iter()
                    .map(|m| format!("{} ({:.2}, rule {})", m.intent, m.confidence, m.rule))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            Outcome::Unsure(m) => format!("nothing (best {} at {:.2})", m.intent, m.confidence),
            Outcome::Suggest(m) => format!(
                "did you mean {} ({:.2}, rule {})?",
                m.intent, m.confidence, m.rule
            ),
            Outcome::Nothing => "nothing".to_owned(),
        };
        let failure = match &c.expect {
            Expect::Intent(want) => (got.matched().map(|m| &*m.intent) != Some(want.as_str()))
                .then(|| format!("expected {want}, got {}", describe())),
            Expect::NotIntent(not) => {
                let hit = match &got.outcome {
                    Outcome::Matched(m) => *m.intent == **not,
                    Outcome::Clarify(cs) => cs.iter().any(|m| *m.intent == **not),
                    Outcome::Suggest(m) => *m.intent == **not,
                    _ => false,
                };
                hit.then(|| format!("must not be {not}, got {}", describe()))
            }
            Expect::Nothing => matches!(
                got.outcome,
                Outcome::Matched(_) | Outcome::Clarify(_) | Outcome::Suggest(_)
            )
            .then(|| format!("expected no intent, got {}", describe())),
            Expect::Slots(want) => {
                let got_json = serde_json::to_value(&got.slots).unwrap_or_default();
                let mismatched: Vec<String> = want
                    .iter()
                    .filter(|(k, v)| got_json.get(k.as_str()) != Some(v))
                    .map(|(k, v)| {
                        format!(
                            "{k}: expected {v}, got {}",
                            got_json
                                .get(k.as_str())
                                .map_or("nothing".to_owned(), |g| g.to_string())
                        )
                    })
                    .collect();
                (!mismatched.is_empty()).then(|| mismatched.join("; "))
            }
        };
        if let Some(f) = failure {
            failures.push(format!("{}:{}: {:?}: {f}", c.file, c.line, c.text));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> Source {
        Source {
            name: name.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn load_errors_name_file_and_line() {
        let errors = load_sources(
            &[src(
                "refund.toml",
                "name = \"refund\"\nsummary = \"x\"\n\n[[rule]]\nid = \"r\"\nall = [\"missing\"]\nweight = 0.9\n",
            )],
            0.5,
            0.1,
        )
        .unwrap_err();
        assert!(errors[0].starts_with("refund.toml:4:"), "{errors:?}");
        assert!(errors[0].contains("missing"), "{errors:?}");

        let errors = load_sources(&[src("x.toml", "name = 3")], 0.5, 0.1).unwrap_err();
        assert!(errors[0].starts_with("x.toml:1:"), "{errors:?}");
    }

    #[test]
    fn data_only_intents_need_an_answer() {
        let errors = load_sources(
            &[src(
                "faq.toml",
                "name = \"opening_hours\"\nsummary = \"x\"\n",
            )],
            0.5,
            0.1,
        )
        .unwrap_err();
        assert!(errors[0].contains("needs an `answer`"), "{errors:?}");
    }

    #[test]
    fn small_talk_and_refusals_are_not_actions() {
        let m = load_embedded(0.5, 0.08).unwrap();
        for (text, kind) in [
            ("hi there!", "greeting"),
            ("thanks a lot", "thanks"),
            ("who are you?", "who"),
            ("bye", "goodbye"),
            ("I don't want to add payments yet", "refusal"),
            ("no payments for now", "refusal"),
        ] {
            let c = m.classify(text);
            assert!(c.matched().is_none(), "{text}: {:?}", c.outcome);
            let talk = c
                .small_talk
                .unwrap_or_else(|| panic!("{text}: no small talk"));
            assert_eq!(&*talk.kind, kind, "{text}");
        }
        let refused = m
            .classify("I do not want to connect stripe")
            .small_talk
            .unwrap();
        assert_eq!(refused.about.as_deref(), Some("connect_stripe"));
        assert!(
            refused.rule.starts_with("negated connect_stripe.toml:"),
            "{}",
            refused.rule
        );
        // A negation governs only what follows it: this is a request.
        let c = m.classify("don't worry about the design, just add payments");
        assert_eq!(c.matched().map(|c| &*c.intent), Some("add_payments"));
        assert_eq!(c.small_talk, None);
    }

    #[test]
    fn the_model_is_deterministic_and_explains_itself() {
        let a = load_embedded(0.5, 0.08).unwrap();
        let b = load_embedded(0.5, 0.08).unwrap();
        // Phrasings no rule covers: the model decides, naming the n-grams that weighed most.
        let mut decided = 0;
        for text in [
            "members pay a monthly fee to see the lessons",
            "why has stripe not finished looking at my business",
            "the app is missing the plan I made yesterday in stripe",
        ] {
            let (x, y) = (a.classify_explained(text), b.classify_explained(text));
            assert_eq!(x, y, "{text}");
            if let Some(c) = x.matched()
                && c.rule.starts_with("model ")
            {
                decided += 1;
                assert!(c.rule.contains('"'), "{}", c.rule);
                // Unexplained, the same reading without the n-grams.
                let plain = a.classify(text);
                let p = plain.matched().unwrap();
                assert_eq!((&p.intent, p.confidence), (&c.intent, c.confidence));
                assert_eq!((&*p.rule, p.span), ("model", (0, text.len())));
                assert_eq!(plain.slots, x.slots);
            }
        }
        assert!(decided > 0, "the model decided none of them");
    }

    #[test]
    fn embedded_files_pass_their_own_examples() {
        let (matcher, corpus) = load_sources(&embedded_sources(), 0.5, 0.08).unwrap();
        let failures = check(&matcher, &corpus);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(
            corpus.checks.len() > 300,
            "only {} examples",
            corpus.checks.len()
        );
    }
}
