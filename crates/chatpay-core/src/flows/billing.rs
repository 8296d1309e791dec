//! Subscriptions and payouts in the chat: news pushed when Stripe says something changed (read
//! again first, told once: the turn that stores the change pushes its card), answers from the
//! stored subscriptions and from Stripe's balance and payouts, and cancelling or resuming a
//! subscription behind a confirmation card.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Call, CallError, CallOutput, Effect, Owner, Pending, Purpose, Turn};
use crate::billing::{
    Balance, Payout, PayoutStatus, Subscription, SubscriptionChange, SubscriptionNews,
    SubscriptionStatus, changes, payout_failure_in_words, subscription_access,
};
use crate::cards::{Action, Card, CardKind, Fact, Style};
use crate::domain::Money;
use crate::intents::{SlotValue, Slots};
use crate::rules;

/// Re-reads of a subscription tried before its events are marked failed.
const REFRESH_ATTEMPTS: u32 = 3;

/// Told payouts remembered (far more than arrive between two events of one payout).
const TOLD_PAYOUTS: usize = 200;

/// What was asked about subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "snake_case")]
pub enum SubscriptionAsk {
    /// How many are active and trialing.
    Count,
    PastDue,
    List,
    /// One customer's subscriptions (what's their status).
    Customer {
        email: String,
    },
    /// Confirm cancelling (`resume`: taking a scheduled cancellation back) a customer's.
    Change {
        email: String,
        resume: bool,
    },
    /// The invoices of the subscription an order started.
    Invoices {
        subscription: String,
        order: i64,
    },
}

/// What was asked about payouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "snake_case")]
pub enum PayoutAsk {
    /// When will I get paid; where is my payout.
    When,
    /// Why did my payout fail.
    Failed,
    Balance,
    /// When payments of a day become available (`YYYY-MM-DD`, UTC).
    PaidOn {
        day: String,
    },
}

/// The balance, the recent payouts and when paid orders' money becomes available.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PayoutsAnswer {
    pub balance: Balance,
    /// Newest first.
    pub payouts: Vec<Payout>,
    /// Money from paid orders not yet available, per day it becomes available (Unix seconds
    /// of the day, amount): the balance transactions' `available_on`.
    pub upcoming: Vec<(i64, Money)>,
    /// Paid orders of the asked day: (available_on, amount), for `PayoutAsk::PaidOn`.
    pub paid_on: Vec<(Option<i64>, Money)>,
    /// The account has had no payout yet (its first one carries Stripe's extra review).
    pub first_payout: bool,
}

fn day(s: i64) -> String {
    DateTime::<Utc>::from_timestamp(s, 0)
        .map(|d| d.format("%b %-d, %Y").to_string())
        .unwrap_or_default()
}

fn email_slot(slots: &Slots) -> Option<String> {
    slots
        .get("email")
        .and_then(SlotValue::as_text)
        .map(str::to_lowercase)
}

impl Turn<'_, '_> {
    /// A Stripe event about a subscription or its invoice: re-read it (joining a re-read
    /// already running).
    pub(super) fn subscription_changed(
        &mut self,
        subscription: String,
        event: Option<String>,
        trial_ending: bool,
    ) {
        let same = |c: &Call| matches!(c, Call::RefreshSubscription { subscription: s, .. } if *s == subscription);
        if let Some(p) = self.join_reread(same, event.clone()) {
            if let Call::RefreshSubscription {
                trial_ending: flag, ..
            } = &mut p.call
            {
                *flag |= trial_ending;
            }
            return;
        }
        self.refresh_subscription(subscription, event.into_iter().collect(), 0, trial_ending);
    }

    pub(super) fn payout_changed(&mut self, payout: String, event: Option<String>) {
        let same = |c: &Call| matches!(c, Call::RefreshPayout { payout: s, .. } if *s == payout);
        if self.join_reread(same, event.clone()).is_some() {
            return;
        }
        self.call(
            Call::RefreshPayout {
                payout,
                events: event.into_iter().collect(),
            },
            Purpose::Billing,
        );
    }

    /// "how many active subscribers do I have?", "who is past due?", "cancel ana@…'s
    /// subscription".
    pub(super) fn subscriptions_intent(&mut self, topic: Option<&str>, slots: &Slots) {
        if !self.billing_ready("answer about subscriptions") {
            return;
        }
        let email = email_slot(slots);
        let ask = match (topic, email) {
            (Some("cancel"), Some(email)) => SubscriptionAsk::Change {
                email,
                resume: false,
            },
            (Some("resume"), Some(email)) => SubscriptionAsk::Change {
                email,
                resume: true,
            },
            (Some("cancel" | "resume"), None) => {
                self.reply(
                    "Whose subscription? Name the customer's email, for example \"cancel ana@example.com's subscription\".",
                );
                return;
            }
            (Some("count"), _) => SubscriptionAsk::Count,
            (Some("past_due"), _) => SubscriptionAsk::PastDue,
            (_, Some(email)) => SubscriptionAsk::Customer { email },
            _ => SubscriptionAsk::List,
        };
        self.call(Call::ListSubscriptions { ask }, Purpose::Answer);
    }

    /// Payout questions answered from Stripe's real balance and payouts; false when there is
    /// no account to ask about (the general answer is given instead).
    pub(super) fn payouts_intent(&mut self, topic: Option<&str>, slots: &Slots) -> bool {
        if !self.facts.backend || self.connection.is_none() {
            return false;
        }
        let today = DateTime::<Utc>::from_timestamp_millis(self.facts.now_ms)
            .map(|d| d.date_naive())
            .unwrap_or_default();
        let ask = match (topic, slots.get("date")) {
            (_, Some(SlotValue::Date(d))) => match super::answers::resolve_date(d, today) {
                Some(d) => PayoutAsk::PaidOn {
                    day: d.format("%Y-%m-%d").to_string(),
                },
                None => PayoutAsk::When,
            },
            (Some("failed"), _) => PayoutAsk::Failed,
            (Some("balance"), _) => PayoutAsk::Balance,
            _ => PayoutAsk::When,
        };
        self.call(Call::ReadPayouts { ask }, Purpose::Answer);
        true
    }

    pub(super) fn billing_ready(&mut self, doing: &str) -> bool {
        if !self.facts.backend {
            self.backend_required();
            return false;
        }
        if self.connection.is_none() {
            self.reply(format!(
                "I can {doing} once Stripe is connected to this project. Say \"add payments\" to connect it."
            ));
            return false;
        }
        true
    }

    pub(super) fn subscription_click(&mut self, owner: &Owner, action: &str) {
        let Owner::ConfirmSubscription {
            subscription,
            customer,
        } = owner
        else {
            return;
        };
        let change = match action {
            "cancel_now" => SubscriptionChange::CancelNow,
            "cancel_at_period_end" => SubscriptionChange::CancelAtPeriodEnd,
            "resume" => SubscriptionChange::Resume,
            _ => {
                self.reply(format!("OK, {customer}'s subscription stays as it is."));
                return;
            }
        };
        self.call(
            Call::ChangeSubscription {
                subscription: subscription.clone(),
                change,
            },
            Purpose::Answer,
        );
    }

    pub(super) fn billing_done(&mut self, pending: Pending, result: Result<CallOutput, CallError>) {
        let said_before = self.effects.len();
        match (pending.call, result) {
            (
                Call::RefreshSubscription {
                    subscription,
                    events,
                    attempt,
                    trial_ending,
                },
                result,
            ) => {
                let mut queued = pending.queued;
                match result {
                    Ok(CallOutput::SubscriptionRefreshed {
                        before,
                        after,
                        version,
                    }) => {
                        if let Some(after) = after {
                            self.subscription_news(before.as_deref(), &after);
                            if trial_ending {
                                self.trial_ending_news(&after);
                            }
                            if before.as_deref() != Some(&*after) {
                                self.effects.push(Effect::SaveSubscription {
                                    subscription: after,
                                    expected_version: version,
                                });
                            }
                        }
                        self.billing_events(events, "applied");
                    }
                    Ok(_) => self.billing_events(events, "applied"),
                    Err(e) if e.code.is_none() && attempt + 1 < REFRESH_ATTEMPTS => {
                        queued.extend(events);
                        self.refresh_subscription(subscription, queued, attempt + 1, trial_ending);
                        return;
                    }
                    Err(e) => {
                        let outcome = format!(
                            "ignored: the subscription could not be read ({})",
                            e.message
                        );
                        self.billing_events(events, &outcome);
                    }
                }
                if pending.again || !queued.is_empty() {
                    self.refresh_subscription(subscription, queued, 0, false);
                }
            }
            (Call::RefreshPayout { payout, events }, result) => {
                match result {
                    Ok(CallOutput::PayoutRefreshed(Some(p))) => {
                        self.payout_news(&p);
                        self.billing_events(events, "applied");
                    }
                    Ok(_) => self.billing_events(events, "applied"),
                    Err(e) => {
                        let outcome =
                            format!("ignored: the payout could not be read ({})", e.message);
                        self.billing_events(events, &outcome);
                    }
                }
                // Events that came while it ran are applied by a read after them.
                if pending.again || !pending.queued.is_empty() {
                    self.call(
                        Call::RefreshPayout {
                            payout,
                            events: pending.queued,
                        },
                        Purpose::Billing,
                    );
                }
            }
            (Call::ListSubscriptions { ask }, Ok(CallOutput::Subscriptions(subs))) => {
                self.answer_subscriptions(ask, &subs)
            }
            (Call::ChangeSubscription { change, .. }, Ok(_)) => self.reply(match change {
                SubscriptionChange::CancelNow => {
                    "Canceled. Stripe ends the subscription now and charges nothing more; access ends with it."
                }
                SubscriptionChange::CancelAtPeriodEnd => {
                    "Done: the subscription ends at the end of the current period. Access stays until then, and nothing more is charged."
                }
                SubscriptionChange::Resume => {
                    "Resumed: the scheduled cancellation is taken back and the subscription renews as before."
                }
            }),
            (Call::ChangeSubscription { .. }, Err(e)) => self.reply(format!(
                "Stripe didn't change the subscription: {} Nothing changed.",
                e.message
            )),
            (Call::ReadPayouts { ask }, Ok(CallOutput::Payouts(answer))) => {
                self.answer_payouts(ask, &answer)
            }
            (_, Err(e)) => self.reply(format!(
                "I couldn't look that up just now ({}); please ask again.",
                e.message
            )),
            _ => {}
        }
        if self.effects.len() > said_before && pending.purpose == Purpose::Billing {
            self.present_step();
        }
    }

    fn refresh_subscription(
        &mut self,
        subscription: String,
        events: Vec<String>,
        attempt: u32,
        trial_ending: bool,
    ) {
        self.call(
            Call::RefreshSubscription {
                subscription,
                events,
                attempt,
                trial_ending,
            },
            Purpose::Billing,
        );
    }

    fn billing_events(&mut self, events: Vec<String>, outcome: &str) {
        for id in events {
            self.effects.push(Effect::EventApplied {
                id,
                outcome: outcome.to_owned(),
            });
        }
    }

    fn subscription_card(&mut self, s: &Subscription, title: &str, body: String) -> Card {
        let mut facts = vec![
            Fact::new("Customer", s.email_or_customer()),
            Fact::new("Plan", s.summary()),
            Fact::new("Amount", format!("{} per period", s.amount_per_period())),
            Fact::new("Status", s.status.as_str()),
        ];
        if let Some(n) = s.order_number {
            facts.push(Fact::new("Order", format!("#{n}")));
        }
        if let Some(end) = s.current_period_end() {
            let label = if s.cancel_at_period_end {
                "Ends"
            } else if s.status.is_final() {
                "Ended"
            } else {
                "Renews"
            };
            facts.push(Fact::new(label, day(s.ended_at.unwrap_or(end))));
        }
        let mut card = self.facts_card(CardKind::Subscription, title, body, facts);
        card.actions = Vec::new();
        if let Some(url) = s
            .failing_invoice()
            .and_then(|i| i.hosted_invoice_url.as_deref())
        {
            card.actions
                .push(Action::link("invoice", "Open invoice to pay", url));
        }
        card
    }

    /// "Trial ends soon", when Stripe said so and the subscription is still in its trial (a
    /// late event, after the trial converted or was canceled, says nothing).
    fn trial_ending_news(&mut self, after: &Subscription) {
        if after.status != SubscriptionStatus::Trialing {
            return;
        }
        let who = after.email_or_customer().to_owned();
        let body = format!(
            "{who}'s free trial of {} ends{}; then {} per period is charged to the card on file, unless the trial is canceled first.",
            after.summary(),
            after
                .trial_end
                .map(|t| format!(" on {}", day(t)))
                .unwrap_or_default(),
            after.amount_per_period()
        );
        let card = self.subscription_card(after, "Trial ends soon", body);
        self.show_info(card);
    }

    fn subscription_news(&mut self, before: Option<&Subscription>, after: &Subscription) {
        let who = after.email_or_customer().to_owned();
        let plan = after.summary();
        for news in changes(before, after) {
            let (title, body) = match news {
                SubscriptionNews::Started => (
                    "New subscriber".to_owned(),
                    format!(
                        "{who} subscribed to {plan}: {} per period, paid.",
                        after.amount_per_period()
                    ),
                ),
                SubscriptionNews::TrialStarted => (
                    "New trial".to_owned(),
                    format!(
                        "{who} started a free trial of {plan}{}.",
                        after
                            .trial_end
                            .map(|t| format!(" until {}; the first charge is then", day(t)))
                            .unwrap_or_default()
                    ),
                ),
                SubscriptionNews::TrialConverted => (
                    "Trial converted".to_owned(),
                    format!(
                        "{who}'s free trial of {plan} ended and the first payment of {} was made.",
                        after
                            .invoices
                            .iter()
                            .find(|i| i.status == crate::billing::InvoiceStatus::Paid)
                            .map_or_else(|| after.amount_per_period(), |i| i.amount())
                    ),
                ),
                SubscriptionNews::Renewed(inv) => (
                    "Subscription renewed".to_owned(),
                    format!("{who}'s {plan} renewed: {} paid.", inv.amount()),
                ),
                SubscriptionNews::PaymentFailed(inv) => (
                    "Renewal payment failed".to_owned(),
                    format!(
                        "{who}'s payment of {} for {plan} failed (attempt {}).{}{} The customer can pay the open invoice any time.",
                        inv.amount(),
                        inv.attempt_count,
                        // Stripe moves the subscription a moment after the invoice: say its
                        // status only once it has.
                        if matches!(
                            after.status,
                            SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid
                        ) {
                            format!(" The subscription is {}.", after.status.in_words())
                        } else {
                            String::new()
                        },
                        inv.next_payment_attempt
                            .map(|t| format!(" Stripe tries again on {}.", day(t)))
                            .unwrap_or_default()
                    ),
                ),
                SubscriptionNews::Recovered => (
                    "Subscription active again".to_owned(),
                    format!("{who} paid: {plan} is active again."),
                ),
                SubscriptionNews::CancelScheduled => (
                    "Cancellation scheduled".to_owned(),
                    format!(
                        "{who}'s {plan} ends on {}; access stays until then.",
                        after.current_period_end().map(day).unwrap_or_default()
                    ),
                ),
                SubscriptionNews::Resumed => (
                    "Subscription resumed".to_owned(),
                    format!("{who}'s {plan} renews as before."),
                ),
                SubscriptionNews::Ended => (
                    "Subscription ended".to_owned(),
                    format!(
                        "{who}'s {plan} has ended; {who} no longer has access to {}.",
                        after
                            .items
                            .iter()
                            .map(|i| i.label())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                SubscriptionNews::Paused => (
                    "Subscription paused".to_owned(),
                    format!("{who}'s {plan} is paused; nothing is charged while it is."),
                ),
            };
            let card = self.subscription_card(after, &title, body);
            self.show_info(card);
        }
        // The builder's app hears who gained or lost access, with the same turn.
        for change in subscription_access(before, after, self.facts.now_ms / 1000) {
            self.effects.push(Effect::Notify(change));
        }
    }

    fn payout_news(&mut self, p: &Payout) {
        if self.state.told_payouts.contains(&p.id) {
            return;
        }
        let (title, body) = match p.status {
            PayoutStatus::Paid => (
                "Payout arrived",
                format!(
                    "{} reached your bank on {}.",
                    p.money(),
                    day(p.arrival_date)
                ),
            ),
            PayoutStatus::Failed => (
                "Payout failed",
                format!(
                    "Your payout of {} failed: {}",
                    p.money(),
                    payout_failure_in_words(p.failure_code.as_deref().unwrap_or(""))
                ),
            ),
            PayoutStatus::Canceled => (
                "Payout canceled",
                format!(
                    "The payout of {} was canceled; the money stays in your Stripe balance.",
                    p.money()
                ),
            ),
            PayoutStatus::Pending | PayoutStatus::InTransit => return,
        };
        let card = self.payout_card(p, title, body);
        self.show_info(card);
        self.state.told_payouts.push(p.id.clone());
        if self.state.told_payouts.len() > TOLD_PAYOUTS {
            self.state.told_payouts.remove(0);
        }
    }

    fn payout_card(&mut self, p: &Payout, title: &str, body: String) -> Card {
        let mut facts = vec![
            Fact::new("Amount", p.money().to_string()),
            Fact::new("Status", p.status.as_str()),
            Fact::new(
                if p.status == PayoutStatus::Paid {
                    "Arrived"
                } else {
                    "Expected"
                },
                day(p.arrival_date),
            ),
        ];
        if let Some(code) = &p.failure_code {
            facts.push(Fact::new("Failure code", code.clone()));
        }
        let mut card = self.facts_card(CardKind::Payout, title, body, facts);
        card.actions = Vec::new();
        card
    }

    fn answer_subscriptions(&mut self, ask: SubscriptionAsk, subs: &[Subscription]) {
        use SubscriptionStatus as S;
        let count = |st: S| subs.iter().filter(|s| s.status == st).count();
        match ask {
            SubscriptionAsk::Count => {
                let (active, trialing, past_due) =
                    (count(S::Active), count(S::Trialing), count(S::PastDue));
                let ending = subs
                    .iter()
                    .filter(|s| s.cancel_at_period_end && !s.status.is_final())
                    .count();
                self.reply(format!(
                    "You have {active} active subscriber{}, {trialing} in a free trial and {past_due} past due{}.",
                    if active == 1 { "" } else { "s" },
                    if ending > 0 {
                        format!("; {ending} set to cancel at the end of their period")
                    } else {
                        String::new()
                    }
                ));
            }
            SubscriptionAsk::PastDue => {
                let due: Vec<&Subscription> = subs
                    .iter()
                    .filter(|s| matches!(s.status, S::PastDue | S::Unpaid))
                    .collect();
                if due.is_empty() {
                    self.reply("Nobody is past due: every renewal so far was paid.");
                    return;
                }
                let lines = due
                    .iter()
                    .map(|s| {
                        let inv = s.failing_invoice();
                        format!(
                            "{} ({}, {}{})",
                            s.email_or_customer(),
                            s.summary(),
                            s.status.as_str().replace('_', " "),
                            inv.map(|i| format!(
                                ", {} open after {} attempt{}",
                                i.amount(),
                                i.attempt_count,
                                if i.attempt_count == 1 { "" } else { "s" }
                            ))
                            .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                self.reply(format!(
                    "{} past due: {lines}. Stripe retries the card automatically; each customer can also pay the open invoice from its link.",
                    due.len()
                ));
            }
            SubscriptionAsk::List => {
                if subs.is_empty() {
                    self.reply(
                        "No subscriptions yet. A checkout with a recurring price starts one.",
                    );
                    return;
                }
                let lines = subs
                    .iter()
                    .take(10)
                    .map(|s| {
                        format!(
                            "{}: {}, {}",
                            s.email_or_customer(),
                            s.summary(),
                            s.status.as_str().replace('_', " ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                self.reply(format!(
                    "Your newest subscriptions ({} of {}): {lines}.",
                    subs.len().min(10),
                    subs.len()
                ));
            }
            SubscriptionAsk::Customer { email } => match subs.first() {
                None => self.reply(format!("{email} has no subscription in this project.")),
                Some(s) => {
                    let card = self.subscription_card(
                        s,
                        "Subscription",
                        format!("{email}'s subscription is {}.", s.status.in_words()),
                    );
                    self.show_info(card);
                }
            },
            SubscriptionAsk::Invoices { order, .. } => {
                let Some(s) = subs.first() else {
                    self.reply(format!(
                        "Order #{order} started a subscription I haven't heard about from Stripe yet; ask again in a moment."
                    ));
                    return;
                };
                let mut card = self.subscription_card(
                    s,
                    &format!("Invoices for order #{order}"),
                    format!(
                        "{} invoice{} for {}'s {}, newest first.",
                        s.invoices.len(),
                        if s.invoices.len() == 1 { "" } else { "s" },
                        s.email_or_customer(),
                        s.summary()
                    ),
                );
                for inv in s.invoices.iter().take(12) {
                    card.facts.push(Fact::new(
                        &format!(
                            "{}{}",
                            day(inv.created),
                            inv.number
                                .as_deref()
                                .map(|n| format!(" ({n})"))
                                .unwrap_or_default()
                        ),
                        format!("{} {}", inv.amount(), inv.status.as_str()),
                    ));
                }
                card.actions.clear();
                for (i, inv) in s.invoices.iter().take(3).enumerate() {
                    if let Some(url) = &inv.hosted_invoice_url {
                        let label = if i == 0 {
                            "Newest invoice".to_owned()
                        } else {
                            format!("Invoice of {}", day(inv.created))
                        };
                        card.actions
                            .push(Action::link(&format!("invoice_{i}"), &label, url));
                    }
                }
                self.show_info(card);
            }
            SubscriptionAsk::Change { email, resume } => {
                let live: Vec<&Subscription> =
                    subs.iter().filter(|s| !s.status.is_final()).collect();
                let Some(s) = live.first() else {
                    self.reply(format!(
                        "{email} has no subscription that could be {}.",
                        if resume { "resumed" } else { "canceled" }
                    ));
                    return;
                };
                let change = if resume {
                    SubscriptionChange::Resume
                } else {
                    SubscriptionChange::CancelAtPeriodEnd
                };
                if let Err(refused) = rules::subscription_change(s, change) {
                    self.reply(refused.message);
                    return;
                }
                let end = s.current_period_end().map(day).unwrap_or_default();
                let (title, body) = if resume {
                    (
                        "Resume this subscription?",
                        format!(
                            "{email}'s {} is set to end on {end}. Resume it so it renews as before?",
                            s.summary()
                        ),
                    )
                } else {
                    (
                        "Cancel this subscription?",
                        format!(
                            "Cancel {email}'s {}? At the period's end ({end}) keeps access until then; now ends access today. Nothing already paid is refunded.",
                            s.summary()
                        ),
                    )
                };
                let mut card = self.subscription_card(s, title, body);
                card.kind = CardKind::ConfirmSubscription;
                card.actions = if resume {
                    vec![
                        Action::primary("resume", "Resume"),
                        Action::secondary("keep", "Leave it"),
                    ]
                } else {
                    vec![
                        Action::primary("cancel_at_period_end", "Cancel at period end"),
                        Action::new("cancel_now", "Cancel now", Style::Danger),
                        Action::secondary("keep", "Keep it"),
                    ]
                };
                if live.len() > 1 {
                    card.body.push_str(&format!(
                        " ({email} has {} subscriptions; this is the newest.)",
                        live.len()
                    ));
                }
                let owner = Owner::ConfirmSubscription {
                    subscription: s.id.clone(),
                    customer: email.clone(),
                };
                self.drop_cards(|c| c.owner != owner);
                self.show(card, owner);
            }
        }
    }

    fn answer_payouts(&mut self, ask: PayoutAsk, a: &PayoutsAnswer) {
        let amounts = |list: &[crate::billing::BalanceAmount]| {
            if list.is_empty() {
                "nothing".to_owned()
            } else {
                list.iter()
                    .map(|b| Money::new(b.amount, b.currency).to_string())
                    .collect::<Vec<_>>()
                    .join(" + ")
            }
        };
        let first_hold = if a.first_payout {
            " Your first payout may take 2-3 more days for Stripe's security review."
        } else {
            ""
        };
        // Stripe takes a refund from the available balance when it is made, while the payment
        // it refunds may still be pending: the sum comes out right, but it reads like a debt.
        let below_zero = if a.balance.available.iter().any(|b| b.amount < 0) {
            " The available balance is below zero because refunds are taken from it at once, while the payments they refund are still pending; as those become available it evens out, and payouts wait until it is above zero."
        } else {
            ""
        };
        match ask {
            PayoutAsk::Balance => self.reply(format!(
                "Your Stripe balance: {} available to pay out, {} pending (payments still settling).{below_zero}",
                amounts(&a.balance.available),
                amounts(&a.balance.pending)
            )),
            PayoutAsk::Failed => match a.payouts.iter().find(|p| p.status == PayoutStatus::Failed) {
                None => self.reply("None of your recent payouts failed."),
                Some(p) => {
                    let body = format!(
                        "Your payout of {} (expected {}) failed: {}",
                        p.money(),
                        day(p.arrival_date),
                        payout_failure_in_words(p.failure_code.as_deref().unwrap_or(""))
                    );
                    let card = self.payout_card(p, "Why the payout failed", body);
                    self.show_info(card);
                }
            },
            PayoutAsk::PaidOn { day: asked } => {
                if a.paid_on.is_empty() {
                    self.reply(format!(
                        "I see no paid orders on {asked} (UTC). Funds from a payment are usually available 7 days after it."
                    ));
                    return;
                }
                let lines = a
                    .paid_on
                    .iter()
                    .map(|(on, m)| match on {
                        Some(on) => format!("{m} available on {}", day(*on)),
                        None => format!("{m} (its availability date isn't known yet)"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                self.reply(format!(
                    "Payments from {asked} (UTC): {lines}. They go out with the next payout after that.{first_hold}"
                ));
            }
            PayoutAsk::When => {
                let mut parts = Vec::new();
                if let Some(p) = a
                    .payouts
                    .iter()
                    .find(|p| matches!(p.status, PayoutStatus::Pending | PayoutStatus::InTransit))
                {
                    parts.push(format!(
                        "Your next payout, {}, is {} and expected in your bank on {}.",
                        p.money(),
                        p.status.as_str().replace('_', " "),
                        day(p.arrival_date)
                    ));
                }
                if let Some(p) = a.payouts.iter().find(|p| p.status == PayoutStatus::Paid) {
                    parts.push(format!(
                        "The last payout, {}, arrived on {}.",
                        p.money(),
                        day(p.arrival_date)
                    ));
                }
                if let Some(p) = a.payouts.first().filter(|p| p.status == PayoutStatus::Failed) {
                    parts.push(format!(
                        "Your latest payout of {} failed: {}",
                        p.money(),
                        payout_failure_in_words(p.failure_code.as_deref().unwrap_or(""))
                    ));
                }
                if !a.upcoming.is_empty() {
                    let list = a
                        .upcoming
                        .iter()
                        .take(5)
                        .map(|(on, m)| format!("{m} on {}", day(*on)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    parts.push(format!("Money from recent payments becomes available: {list}."));
                }
                parts.push(format!(
                    "Balance: {} available, {} pending.{below_zero}",
                    amounts(&a.balance.available),
                    amounts(&a.balance.pending)
                ));
                let text = format!("{}{first_hold}", parts.join(" "));
                self.reply(text);
            }
        }
    }
}
