//! Scoring the matcher on a held-out file (`chatpay intents eval FILE`): a measurement, not a
//! test. The file is utterances the rules and the model never saw, so its score says how the
//! matcher does on phrasings nobody wrote down.
//!
//! One line per utterance: `text<TAB>intent or none<TAB>optional slots as a JSON object`; `#`
//! starts a comment line. An intent line is right when the matcher is confident in that intent
//! (a clarify card is not an answer); a `none` line is right when nothing is confidently matched,
//! and a confident match there is a false trigger. Slots are right when every slot the line
//! names has that value. The clarify rate is the share of lines where the conversation asks
//! instead of acting (a clarify card, or "did you mean …?"): wrong on any line, never a false
//! trigger.

use std::collections::BTreeMap;
use std::fmt;

use super::matcher::{Matcher, Outcome};

/// One held-out utterance and what it should give.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalCase {
    pub line: usize,
    pub text: String,
    /// `None` for `none`.
    pub intent: Option<String>,
    pub slots: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Parses a held-out file; errors name the line.
pub fn parse_eval(text: &str) -> Result<Vec<EvalCase>, String> {
    let mut cases = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let mut cols = raw.split('\t');
        let utterance = cols.next().unwrap_or_default();
        let Some(expected) = cols.next().map(str::trim).filter(|e| !e.is_empty()) else {
            return Err(format!("line {line}: expected `text<TAB>intent or none`"));
        };
        let slots = match cols.next().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(json) => match serde_json::from_str::<serde_json::Value>(json) {
                Ok(serde_json::Value::Object(m)) => Some(m),
                _ => return Err(format!("line {line}: slots must be a JSON object")),
            },
        };
        cases.push(EvalCase {
            line,
            text: utterance.to_owned(),
            intent: (expected != "none").then(|| expected.to_owned()),
            slots,
        });
    }
    Ok(cases)
}

/// What a held-out run measured.
#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    pub total: usize,
    pub correct: usize,
    pub in_scope: usize,
    pub in_scope_correct: usize,
    pub none_lines: usize,
    /// `none` lines that confidently matched an intent.
    pub false_triggers: usize,
    pub slot_lines: usize,
    pub slot_correct: usize,
    /// Lines answered with a clarify card or "did you mean …?".
    pub clarified: usize,
    /// (expected, got) -> count, for the lines that were wrong; `none`, `clarify`.
    pub confusion: BTreeMap<(String, String), usize>,
    /// Every wrong line: (line, text, expected, got and what decided).
    pub misses: Vec<(usize, String, String, String)>,
    /// Every line whose slots were wrong: (line, text, the slots expected, the slots got).
    pub slot_misses: Vec<(usize, String, String, String)>,
}

/// Classifies every case and tallies the result.
pub fn evaluate(matcher: &Matcher, cases: &[EvalCase]) -> EvalReport {
    let mut r = EvalReport::default();
    for case in cases {
        let got = matcher.classify_explained(&case.text);
        let (got_name, why) = match &got.outcome {
            Outcome::Matched(m) => (
                m.intent.to_string(),
                format!("{:.2} {}", m.confidence, m.rule),
            ),
            Outcome::Clarify(cs) => (
                "clarify".to_owned(),
                cs.iter().map(|c| &*c.intent).collect::<Vec<_>>().join("/"),
            ),
            Outcome::Suggest(c) => (
                "clarify".to_owned(),
                format!("did you mean {} ({:.2} {})", c.intent, c.confidence, c.rule),
            ),
            Outcome::Unsure(_) | Outcome::Nothing => ("none".to_owned(), String::new()),
        };
        if got.asks() {
            r.clarified += 1;
        }
        let want = case.intent.as_deref().unwrap_or("none");
        r.total += 1;
        let right = match &case.intent {
            Some(i) => {
                r.in_scope += 1;
                got_name == *i
            }
            None => {
                r.none_lines += 1;
                if matches!(got.outcome, Outcome::Matched(_)) {
                    r.false_triggers += 1;
                }
                got_name == "none"
            }
        };
        if right {
            r.correct += 1;
            if case.intent.is_some() {
                r.in_scope_correct += 1;
            }
        } else {
            *r.confusion
                .entry((want.to_owned(), got_name.clone()))
                .or_default() += 1;
            r.misses.push((
                case.line,
                case.text.clone(),
                want.to_owned(),
                format!("{got_name} {why}"),
            ));
        }
        if let Some(want_slots) = &case.slots {
            r.slot_lines += 1;
            let got_json = serde_json::to_value(&got.slots).unwrap_or_default();
            if want_slots.iter().all(|(k, v)| got_json.get(k) == Some(v)) {
                r.slot_correct += 1;
            } else {
                r.slot_misses.push((
                    case.line,
                    case.text.clone(),
                    serde_json::Value::Object(want_slots.clone()).to_string(),
                    got_json.to_string(),
                ));
            }
        }
    }
    r
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        100.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "accuracy: {}/{} ({:.1}%)",
            self.correct,
            self.total,
            pct(self.correct, self.total)
        )?;
        writeln!(
            f,
            "in scope recognized: {}/{} ({:.1}%)",
            self.in_scope_correct,
            self.in_scope,
            pct(self.in_scope_correct, self.in_scope)
        )?;
        writeln!(
            f,
            "false triggers: {} of {} none lines",
            self.false_triggers, self.none_lines
        )?;
        writeln!(
            f,
            "slots: {}/{} ({:.1}%)",
            self.slot_correct,
            self.slot_lines,
            pct(self.slot_correct, self.slot_lines)
        )?;
        writeln!(
            f,
            "clarify rate: {}/{} ({:.1}%)",
            self.clarified,
            self.total,
            pct(self.clarified, self.total)
        )?;
        if !self.confusion.is_empty() {
            writeln!(f, "confusion (expected -> got: count):")?;
            for ((want, got), n) in &self.confusion {
                writeln!(f, "  {want} -> {got}: {n}")?;
            }
            writeln!(f, "misses:")?;
            for (line, text, want, got) in &self.misses {
                writeln!(f, "  {line}: {text:?}: expected {want}, got {got}")?;
            }
        }
        if !self.slot_misses.is_empty() {
            writeln!(f, "slot misses:")?;
            for (line, text, want, got) in &self.slot_misses {
                writeln!(f, "  {line}: {text:?}: expected {want}, got {got}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_comments_and_slots() {
        let cases =
            parse_eval("# c\nrefund 12\trefund\t{\"order_number\":\"12\"}\nhi\tnone\n").unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].line, 2);
        assert_eq!(cases[0].intent.as_deref(), Some("refund"));
        assert!(cases[0].slots.is_some());
        assert_eq!(cases[1].intent, None);
        assert!(parse_eval("no tab here\n").unwrap_err().contains("line 1"));
        assert!(parse_eval("x\trefund\t[1]\n").is_err());
    }

    #[test]
    fn counts_false_triggers_and_slots() {
        let matcher = crate::intents::load_embedded(0.5, 0.08).unwrap();
        let cases = parse_eval(
            "refund order 1234\trefund\t{\"order_number\":\"1234\"}\nrefund order 9\tnone\n",
        )
        .unwrap();
        let r = evaluate(&matcher, &cases);
        assert_eq!((r.total, r.correct, r.false_triggers), (2, 1, 1));
        assert_eq!((r.slot_lines, r.slot_correct), (1, 1));
        assert_eq!(r.confusion.get(&("none".into(), "refund".into())), Some(&1));
    }
}
