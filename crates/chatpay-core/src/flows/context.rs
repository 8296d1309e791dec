//! Context: what the conversation is in the middle of informs how a short answer is read.
//!
//! The matcher reads each utterance on its own (and says what a short one reads as: `yes`,
//! `no`, `second`, `month`, …, see `Classification::reply`). Here the conversation decides
//! whether that answers something:
//!
//! - **A question in words** ("Which order should I refund?", "How much is Yoga class?") leaves
//!   an [`Awaiting`]: the intent asked for, the slots it had, and the slots that would answer.
//!   A next utterance that brings one of them ("#1042", "$25 a month", "monthly") fills it and
//!   the intent runs again with everything known; a bare number where an amount was asked is
//!   not guessed into money (its currency is asked for).
//! - **A card's question**: "yes" takes the card's action when the card asks yes or no (it has
//!   a way to say no: keep, not now, cancel) or offers one reading ("did you mean …?"); "no"
//!   takes its way to say no; "the second one" its second action; "at the end of the period",
//!   "right away", "monthly" the action that says so.
//!
//! Anything else is a new request: it is read as usual and the question is forgotten.

use serde::{Deserialize, Serialize};

use super::{Owner, Turn};
use crate::cards::CardKind;
use crate::intents::{Classification, Outcome, SlotValue, Slots};

/// A question asked in words, waiting for its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Awaiting {
    /// The intent that asked.
    pub intent: String,
    /// What it already knew.
    #[serde(default)]
    pub slots: Slots,
    /// The slots that answer it.
    pub wants: Vec<String>,
}

/// Cards a "yes" answers.
const YES_NO: &[CardKind] = &[
    CardKind::ConnectStripe,
    CardKind::ConfirmDisconnect,
    CardKind::ConfirmRefund,
    CardKind::ConfirmSubscription,
    CardKind::ConfirmProduct,
    CardKind::ConfirmProductChange,
    CardKind::ConfirmCode,
    CardKind::ConfirmPlanChange,
    CardKind::Clarify,
];

/// Card actions that say no.
const NO_ACTIONS: &[&str] = &["keep", "not_now", "cancel"];

/// A short answer that names an action by what it does.
const NAMED: &[(&str, &[&str])] = &[
    ("period_end", &["cancel_at_period_end"]),
    ("now", &["cancel_now"]),
    ("month", &["month", "monthly"]),
    ("year", &["year", "yearly"]),
    ("week", &["week", "weekly"]),
    ("one_time", &["one_time"]),
];

/// An utterance a confident reading of this strength or more is a new request, whatever was
/// asked before (a slot it happens to carry answers nothing).
const NEW_REQUEST: f32 = 0.9;

impl Turn<'_, '_> {
    /// Remembers a question asked in words.
    pub(crate) fn await_answer(&mut self, intent: &str, slots: &Slots, wants: &[&str]) {
        self.state.awaiting = Some(Awaiting {
            intent: intent.to_owned(),
            slots: slots.clone(),
            wants: wants.iter().map(|w| (*w).to_owned()).collect(),
        });
    }

    /// Reads `c` as the answer to what the conversation asked, if it is one, and acts on it.
    /// Returns false when it is not an answer (then it is read as a request).
    pub(super) fn answer_in_context(&mut self, c: &Classification) -> bool {
        let awaiting = self.state.awaiting.take();
        let new_request = matches!(&c.outcome, Outcome::Matched(m)
            if m.confidence >= NEW_REQUEST && c.reply.is_none());
        if let Some(a) = awaiting
            && !new_request
            && self.fill(a, c)
        {
            return true;
        }
        let Some(reply) = c.reply.as_deref() else {
            return false;
        };
        self.answer_card(reply)
    }

    /// Fills what `a` waits for from `c`; false if `c` brings none of it.
    fn fill(&mut self, a: Awaiting, c: &Classification) -> bool {
        let mut slots = a.slots.clone();
        let mut filled = false;
        for want in &a.wants {
            if let Some(v) = c.slots.get(want) {
                slots.insert(want.clone(), v.clone());
                filled = true;
            }
        }
        let bare = c.slots.get("number").and_then(SlotValue::as_text);
        let wants = |s: &str| a.wants.iter().any(|w| w == s);
        if !filled && let Some(n) = bare {
            if wants("order_number") {
                slots.insert("order_number".to_owned(), SlotValue::Text(n.to_owned()));
                filled = true;
            } else if wants("amount") && a.intent == "create_product" {
                // A new product's price: in the project's currency, asked once if unknown.
                slots.insert("bare_amount".to_owned(), SlotValue::Text(n.to_owned()));
                filled = true;
            } else if wants("amount") {
                // A number is not money until its currency is known: never guessed.
                self.reply(format!(
                    "{n} in which currency? Say it with the currency, like ${n} or {n} EUR."
                ));
                self.state.awaiting = Some(a);
                return true;
            }
        }
        if !filled
            && wants("interval")
            && let Some(unit) = c
                .reply
                .as_deref()
                .filter(|r| ["month", "year", "week", "one_time"].contains(r))
        {
            slots.insert("interval".to_owned(), SlotValue::Text(unit.to_owned()));
            filled = true;
        }
        if !filled {
            if c.reply.as_deref() == Some("no") {
                self.reply("OK, leaving it there.");
                return true;
            }
            return false;
        }
        self.intent(&a.intent, None, &slots, None);
        true
    }

    /// Takes the action of the newest card that `reply` answers; false if none does.
    fn answer_card(&mut self, reply: &str) -> bool {
        let Some(card) = self
            .state
            .cards
            .iter()
            .rev()
            .find(|c| {
                !matches!(
                    c.owner,
                    Owner::Status | Owner::Catalog | Owner::Order { .. }
                )
            })
            .cloned()
        else {
            return false;
        };
        let says_no = |a: &String| NO_ACTIONS.contains(&a.as_str());
        let choices: Vec<&String> = card.actions.iter().filter(|a| !says_no(a)).collect();
        let action = match reply {
            // Only cards that ask yes or no (forms are answered by filling them in).
            "yes" if YES_NO.contains(&card.kind) => match choices.as_slice() {
                [only] => Some((*only).clone()),
                // Several ways to say yes ("cancel at period end" or "now"): the first, the
                // card's own suggestion, on a confirmation.
                [first, ..]
                    if matches!(
                        card.kind,
                        CardKind::ConfirmSubscription | CardKind::ConfirmProduct
                    ) =>
                {
                    Some((*first).clone())
                }
                _ => None,
            },
            "yes" => None,
            "no" => match card.actions.iter().find(|a| says_no(a)) {
                Some(a) => Some(a.clone()),
                None if card.kind == CardKind::Clarify => {
                    let id = card.id.clone();
                    self.drop_cards(|c| c.id != id);
                    self.reply("OK. Tell me in other words what you'd like to do.");
                    return true;
                }
                None => None,
            },
            ordinal => match ordinal_index(ordinal, choices.len()) {
                Some(i) => choices.get(i).map(|a| (*a).clone()),
                None => NAMED
                    .iter()
                    .find(|(kind, _)| *kind == ordinal)
                    .and_then(|(_, ids)| {
                        card.actions
                            .iter()
                            .find(|a| ids.contains(&a.as_str()))
                            .cloned()
                    }),
            },
        };
        let Some(action) = action else {
            return false;
        };
        // A click on a card that is live always goes through (its refusals are for stale or
        // foreign cards); an error here would mean the card list is wrong, so say nothing.
        self.click(&card.id, &action, &Default::default()).is_ok()
    }
}

/// `first` -> 0, …, `last` -> the last of `n`.
fn ordinal_index(reply: &str, n: usize) -> Option<usize> {
    let i = match reply {
        "first" => 0,
        "second" => 1,
        "third" => 2,
        "fourth" => 3,
        "fifth" => 4,
        "last" => n.checked_sub(1)?,
        _ => return None,
    };
    (i < n).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::ordinal_index;

    #[test]
    fn ordinals_pick_within_the_card() {
        assert_eq!(ordinal_index("second", 3), Some(1));
        assert_eq!(ordinal_index("last", 3), Some(2));
        assert_eq!(ordinal_index("fourth", 3), None);
        assert_eq!(ordinal_index("last", 0), None);
        assert_eq!(ordinal_index("month", 3), None);
    }
}
