//! Subscribers' plans in the chat: the billing portal ("give ana@… the billing portal link",
//! "let members cancel only at the end of the period") and plan changes by the seller ("move
//! ana@… to yearly", "upgrade bo@… to Pro"): a card with Stripe's proration preview, then one
//! confirmed change. What the subscriber does in the portal reaches the chat through the
//! subscription's re-read, like every other change ("Plan changed", "Cancellation scheduled").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Call, CallError, CallOutput, Owner, Pending, Purpose, Turn};
use crate::cards::{Action, CardKind, Fact};
use crate::intents::{SlotValue, Slots};
use crate::plans::{CancelMode, PlanChange, PlanPreview, PlanTiming, PlanWanted};

/// What the portal setting is now (and whether this answer changed it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalAnswer {
    pub cancel_mode: CancelMode,
    pub changed: bool,
    /// Plans subscribers can switch between there (prices in the portal's configuration).
    pub plans: usize,
}

/// A plan change the seller may confirm, with what Stripe says it costs now (`None` for a
/// change at the period's end: nothing is charged then, and no proration applies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOffer {
    pub customer: String,
    pub change: PlanChange,
    pub preview: Option<PlanPreview>,
}

fn day(s: i64) -> String {
    DateTime::<Utc>::from_timestamp(s, 0)
        .map(|d| d.format("%b %-d, %Y").to_string())
        .unwrap_or_default()
}

/// Interval words the plan slot may catch ("to yearly"): they are the interval, not a product.
const INTERVAL_WORDS: &[&str] = &[
    "yearly", "annual", "annually", "monthly", "weekly", "year", "month", "week",
];

impl Turn<'_, '_> {
    /// "give ana@… the billing portal link", "let members cancel only at the end of the
    /// period", "set up the customer portal".
    pub(super) fn portal_intent(&mut self, topic: Option<&str>, slots: &Slots) {
        if !self.billing_ready("set up the billing portal") {
            return;
        }
        let email = slots
            .get("email")
            .and_then(SlotValue::as_text)
            .map(str::to_lowercase);
        match (topic, email) {
            (Some("cancel_period_end"), _) => self.call(
                Call::PortalSettings {
                    set: Some(CancelMode::AtPeriodEnd),
                },
                Purpose::Answer,
            ),
            (Some("cancel_now"), _) => self.call(
                Call::PortalSettings {
                    set: Some(CancelMode::Immediately),
                },
                Purpose::Answer,
            ),
            (_, Some(email)) => self.call(Call::PortalLink { email }, Purpose::Answer),
            _ => self.call(Call::PortalSettings { set: None }, Purpose::Answer),
        };
    }

    /// "move ana@… to yearly", "upgrade bo@… to Pro".
    pub(super) fn change_plan_intent(&mut self, slots: &Slots) {
        if !self.billing_ready("change a subscriber's plan") {
            return;
        }
        let text = |name: &str| slots.get(name).and_then(SlotValue::as_text);
        let Some(email) = text("email").map(str::to_lowercase) else {
            self.reply(
                "Whose plan? Name the subscriber's email, for example \"move ana@example.com to yearly\" or \"upgrade bo@example.com to Pro\".",
            );
            return;
        };
        let product = text("plan")
            .filter(|p| !INTERVAL_WORDS.contains(&p.to_lowercase().as_str()))
            .map(str::to_owned);
        let interval = text("interval").map(str::to_owned);
        if product.is_none() && interval.is_none() {
            self.reply(format!(
                "Which plan should {email} move to? Name it, for example \"move {email} to yearly\" or \"upgrade {email} to Pro\"."
            ));
            return;
        }
        self.call(
            Call::PreviewPlanChange {
                email,
                wanted: PlanWanted { product, interval },
            },
            Purpose::Answer,
        );
    }

    pub(super) fn plan_click(&mut self, owner: &Owner, action: &str) {
        let Owner::ConfirmPlanChange {
            change,
            customer,
            proration_date,
        } = owner
        else {
            return;
        };
        if action != "confirm" {
            self.reply(format!("OK, {customer} stays on {}.", change.from.label()));
            return;
        }
        self.call(
            Call::ChangePlan {
                change: change.clone(),
                customer: customer.clone(),
                proration_date: *proration_date,
            },
            Purpose::Answer,
        );
    }

    pub(super) fn plans_done(&mut self, pending: Pending, result: Result<CallOutput, CallError>) {
        match (pending.call, result) {
            (Call::PortalSettings { set }, Ok(CallOutput::Portal(a))) => {
                let how = a.cancel_mode.in_words();
                let plans = if a.plans > 1 {
                    format!(
                        " They can switch between your {} plans there (an upgrade is charged now, prorated; a cheaper plan or a shorter interval starts at the end of the period).",
                        a.plans
                    )
                } else {
                    String::new()
                };
                let text = match (set, a.changed) {
                    (Some(_), true) => format!(
                        "Done: in the billing portal, members now cancel {how}.{plans} The portal's settings on Stripe follow before the next portal link is made."
                    ),
                    (Some(_), false) => {
                        format!("That's already the setting: members cancel {how}.")
                    }
                    (None, _) => format!(
                        "Subscribers manage their own billing in Stripe's billing portal: update their card, see and pay invoices, cancel {how}.{plans} Say \"give ana@example.com the billing portal link\" for one subscriber's link; your app gets links for signed-in customers from POST /v1/projects/{{id}}/portal-sessions (see the README). To change how they cancel, say \"let members cancel only at the end of the period\" (or \"right away\")."
                    ),
                };
                self.reply(text);
            }
            (Call::PortalLink { email }, Ok(CallOutput::PortalLink { url })) => {
                let mut card = self.facts_card(
                    CardKind::PortalLink,
                    "Billing portal link",
                    format!(
                        "{email}'s billing portal: update the card, see and pay invoices, switch plan or cancel. The link works for a short while: send it now, or ask again for a fresh one. What {email} changes there shows up here."
                    ),
                    vec![Fact::new("Customer", &email)],
                );
                card.actions = vec![Action::link("open", "Open the portal", &url)];
                self.show_info(card);
            }
            (Call::PreviewPlanChange { .. }, Ok(CallOutput::PlanOffer(offer))) => {
                self.plan_card(*offer)
            }
            (
                Call::ChangePlan {
                    change, customer, ..
                },
                Ok(_),
            ) => self.reply(match change.timing {
                PlanTiming::Now => format!(
                    "Done: {customer} is on {} now; Stripe invoices the prorated difference at once. Access follows the subscription.",
                    change.to.label()
                ),
                PlanTiming::AtPeriodEnd => format!(
                    "Scheduled: {customer} moves from {} to {} on {}, when the period already paid for ends. Nothing is charged now.",
                    change.from.label(),
                    change.to.label(),
                    day(change.period_end)
                ),
            }),
            (Call::ChangePlan { customer, .. }, Err(e)) => self.reply(format!(
                "Stripe didn't change {customer}'s plan: {} Nothing changed.",
                e.message
            )),
            (Call::PortalLink { email }, Err(e)) => self.reply(format!(
                "I couldn't make {email}'s billing portal link: {}",
                e.message
            )),
            (Call::PreviewPlanChange { .. } | Call::PortalSettings { .. }, Err(e)) => {
                self.reply(e.message)
            }
            _ => {}
        }
    }

    fn plan_card(&mut self, offer: PlanOffer) {
        let PlanOffer {
            customer,
            change,
            preview,
        } = offer;
        let (from, to) = (change.from.label(), change.to.label());
        let mut facts = vec![
            Fact::new("Customer", &customer),
            Fact::new(
                "Now on",
                format!("{from}: {} per period", change.from.money()),
            ),
            Fact::new(
                "Moves to",
                format!("{to}: {} per period", change.to.money()),
            ),
        ];
        let body = match (&change.timing, &preview) {
            (PlanTiming::Now, Some(p)) => {
                facts.push(Fact::new("Charged now", p.charged_now.to_string()));
                facts.push(Fact::new(
                    "Then",
                    format!("{} from {}", change.to.money(), day(p.renews_on)),
                ));
                format!(
                    "Move {customer} from {from} to {to}? It takes effect now: Stripe charges {} today (the new plan, less the unused time on the old one) and then {} at each renewal, the next on {}.",
                    p.charged_now,
                    change.to.money(),
                    day(p.renews_on)
                )
            }
            _ => {
                facts.push(Fact::new("Charged now", "nothing"));
                facts.push(Fact::new(
                    "From",
                    format!(
                        "{}: {} per period",
                        day(change.period_end),
                        change.to.money()
                    ),
                ));
                format!(
                    "Move {customer} from {from} to {to}? A cheaper plan or a shorter interval starts when the period already paid for ends, on {}: nothing is charged now, then {} at each renewal.",
                    day(change.period_end),
                    change.to.money()
                )
            }
        };
        let mut card =
            self.facts_card(CardKind::ConfirmPlanChange, "Change the plan?", body, facts);
        card.actions = vec![
            Action::primary("confirm", "Confirm"),
            Action::secondary("keep", "Keep the current plan"),
        ];
        let owner = Owner::ConfirmPlanChange {
            change: Box::new(change),
            customer,
            proration_date: preview.map(|p| p.proration_date),
        };
        // One open offer per subscription: an older card for it goes stale.
        self.drop_cards(|c| {
            !matches!(&c.owner, Owner::ConfirmPlanChange { change: o, .. }
                if matches!(&owner, Owner::ConfirmPlanChange { change: n, .. } if n.subscription == o.subscription))
        });
        self.show(card, owner);
    }
}
