//! Answers that need no flow: test mode, timelines, payouts, refunds, receipts, going live.
//! Where the project's Stripe state is known (a connected account), answers use it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::{FlowKind, Turn};
use crate::account::USUAL_REJECTION_CAUSES;
use crate::cards::{Action, CardKind, Fact};
use crate::intents::{Intent, SlotValue, Slots};

pub const FALLBACK: &str = "I'm not sure what you mean. I can add payments to your app with \
    Stripe, check your account, explain test mode, payouts, refunds and receipts. Try one of these:";

/// The reply to small talk or a refusal (see `intents::SmallTalk`), and whether the help card
/// goes with it; `None` for a kind with no reply here (the fallback answers it).
pub fn small_talk(kind: &str, about: Option<&str>) -> Option<(&'static str, bool)> {
    Some(match kind {
        "greeting" => (
            "Hi! I add Stripe payments to your app and answer questions about them. What would \
             you like to do?",
            true,
        ),
        "thanks" => ("You're welcome!", false),
        "who" => (
            "I'm chatpay: I add payments to your app with Stripe (connecting your account, \
             syncing your products) and answer questions about payments, payouts, refunds and \
             receipts.",
            true,
        ),
        "goodbye" => ("Bye! Come back any time.", false),
        "refusal" => match about {
            None | Some("add_payments" | "connect_stripe" | "create_stripe_account") => (
                "OK, no payments for now; say \"add payments\" when you're ready.",
                false,
            ),
            Some("go_live") => (
                "OK, we'll stay in test mode; say \"go live\" when you're ready.",
                false,
            ),
            Some(_) => ("OK, I won't. Tell me when you want something else.", false),
        },
        _ => return None,
    })
}

pub const HELP_INTRO: &str = "I set up payments for your app with Stripe and answer questions \
    about them. Pick one, or ask in your own words:";

pub use crate::rules::BACKEND_REQUIRED;

pub const TIMELINES: &str = "How long things usually take: setting up a Stripe account takes \
    about 15-20 minutes; verification is often instant and can take 1-7 business days; funds \
    from a payment are typically available 7 days after the payment (paid Nov 20 -> available \
    Nov 27), and the first payout may take 2-3 more days for a security review.";

pub fn rejection_causes() -> String {
    format!(
        "accounts are usually rejected for: {}. Fix the details on Stripe and ask Stripe to review again.",
        USUAL_REJECTION_CAUSES.join("; ")
    )
}

pub fn flow_title(kind: FlowKind) -> &'static str {
    match kind {
        FlowKind::StripeConnect => "connecting Stripe",
        FlowKind::CatalogSync => "syncing your catalog",
        FlowKind::GoLive => "going live",
    }
}

/// `Nov 27, 2026 14:05 UTC` for milliseconds since the epoch.
pub fn format_deadline(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%b %-d, %Y %H:%M UTC").to_string())
        .unwrap_or_else(|| "soon".to_owned())
}

fn format_day(d: NaiveDate) -> String {
    d.format("%b %-d").to_string()
}

/// The day a date slot means, relative to today (UTC).
pub(super) fn resolve_date(slot: &str, today: NaiveDate) -> Option<NaiveDate> {
    match slot {
        "today" => Some(today),
        "yesterday" => today.pred_opt(),
        "tomorrow" => today.succ_opt(),
        s if s.starts_with("--") => {
            let (m, d) = s[2..].split_once('-')?;
            let (m, d) = (m.parse().ok()?, d.parse().ok()?);
            // A month and day without a year: the most recent such day.
            NaiveDate::from_ymd_opt(today.year(), m, d).map(|date| {
                if date > today {
                    NaiveDate::from_ymd_opt(today.year() - 1, m, d).unwrap_or(date)
                } else {
                    date
                }
            })
        }
        s => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
    }
}

/// Answers an informational intent.
pub(super) fn answer(turn: &mut Turn<'_, '_>, intent: Intent, topic: Option<&str>, slots: &Slots) {
    let mode = turn.mode;
    match intent {
        Intent::TestMode => {
            let text = if topic == Some("mode") {
                format!(
                    "This project is in {} mode. {}",
                    mode.as_str(),
                    if mode.is_live() {
                        "Payments are real."
                    } else {
                        "No real money moves until you go live."
                    }
                )
            } else {
                "Yes: you can try everything in test mode first. Test mode is Stripe's sandbox (the \
                 \"Test mode\" switch in the Stripe Dashboard): test cards such as 4242 4242 4242 4242 \
                 (any future expiry date, any CVC) complete purchases without real payments. Switch \
                 to live mode only when you're launching."
                    .to_owned()
            };
            let mut card = turn.facts_card(
                CardKind::Info,
                "Test mode",
                text,
                vec![
                    Fact::new("This project", format!("{} mode", mode.as_str())),
                    Fact::new("Card that succeeds", "4242 4242 4242 4242"),
                    Fact::new("Card that is declined", "4000 0000 0000 0002"),
                    Fact::new("Card that needs 3D Secure", "4000 0025 0000 3155"),
                ],
            );
            card.actions = Vec::new();
            turn.show_info(card);
        }
        Intent::PayoutStatus => payouts(turn, slots),
        Intent::PaymentStatus => {
            let what = slots
                .get("payment_id")
                .and_then(SlotValue::as_text)
                .map(|id| format!("payment {id}"))
                .or_else(|| {
                    slots
                        .get("order_number")
                        .and_then(SlotValue::as_text)
                        .map(|o| format!("order {o}"))
                })
                .unwrap_or_else(|| "a payment".to_owned());
            let where_ = if turn.connection.as_ref().is_some() {
                "the Payments page of your Stripe Dashboard"
            } else {
                "the Stripe Dashboard once Stripe is connected"
            };
            turn.reply(format!(
                "To see whether {what} went through, look it up in {where_}: a payment is \
                 succeeded, processing, requires action (3D Secure) or failed, and a failed one \
                 shows the bank's reason (for example insufficient funds). Checkouts and payments \
                 that settle later report back here automatically."
            ));
        }
        Intent::Refund => {
            let what = slots
                .get("payment_id")
                .and_then(SlotValue::as_text)
                .map(|id| format!(" {id}"))
                .unwrap_or_default();
            let amount = match slots.get("amount") {
                Some(SlotValue::Amount(m)) => format!(" A partial refund of {m} is fine too."),
                _ => String::new(),
            };
            turn.reply(format!(
                "You can refund a payment{what} in full or in part from the payment's page in the \
                 Stripe Dashboard (Refund payment).{amount} The money goes back to the customer's \
                 card in 5-10 business days; Stripe's processing fee isn't returned. A payment can \
                 only be refunded up to what's left of it, so a second identical refund can't \
                 charge you twice."
            ));
        }
        Intent::Customers | Intent::Disputes => not_yet(turn, intent, slots),
        Intent::ReceiptsInvoices => turn.reply(
            "Stripe can email a receipt for every successful payment and refund (Settings -> \
             Customer emails in the Stripe Dashboard). For invoices, create one in the Dashboard \
             (Invoices -> Create) and Stripe emails it with a payment link; subscriptions get an \
             invoice every billing period automatically.",
        ),
        _ => {}
    }
}

/// The intents whose flows are still to come: a truthful answer that says where it is done
/// today (the later flows replace these).
fn not_yet(turn: &mut Turn<'_, '_>, intent: Intent, _slots: &Slots) {
    let reply = match intent {
        Intent::Customers => "I can't answer questions about customers yet. Every order here \
             shows who paid (ask \"show my orders this month\"), and the Stripe Dashboard's \
             Customers page lists each customer with their payments and what they've spent."
            .to_owned(),
        Intent::Disputes => "I don't track disputes yet. When a customer disputes a payment, \
             Stripe emails you and takes the amount and a dispute fee from your balance; the \
             Stripe Dashboard's Disputes page lists them with the deadline to respond, where you \
             submit evidence or accept the dispute. Early fraud warnings appear there too."
            .to_owned(),
        _ => return,
    };
    turn.reply(reply);
}

fn payouts(turn: &mut Turn<'_, '_>, slots: &Slots) {
    let today = DateTime::<Utc>::from_timestamp_millis(turn.facts.now_ms)
        .map(|d| d.date_naive())
        .unwrap_or_default();
    let schedule = turn
        .facts
        .connection
        .and_then(|c| c.account.payout_schedule.clone());
    let delay = schedule.as_ref().map_or(7, |s| s.delay_days.max(1));
    let example = NaiveDate::from_ymd_opt(today.year(), 11, 20).unwrap_or(today);
    let mut text = format!(
        "Funds from a payment are typically available {delay} days after the payment (paid {} \
         -> available {}), then go out on your payout schedule. Your first payout may take \
         2-3 more days for a security review.",
        format_day(example),
        format_day(example + Duration::days(delay as i64)),
    );
    if let Some(SlotValue::Date(d)) = slots.get("date")
        && let Some(paid) = resolve_date(d, today)
    {
        let available = paid + Duration::days(delay as i64);
        text.push_str(&format!(
            " A payment made on {} becomes available around {} (UTC dates){}.",
            format_day(paid),
            format_day(available),
            if available <= today {
                ", so it should be available now"
            } else {
                ""
            }
        ));
    }
    match (turn.connection.as_ref(), &schedule) {
        (Some(c), Some(s)) => text.push_str(&format!(
            " Your account {} pays out {}, {} days after payment; payouts are {}.",
            c.account.id,
            s.interval,
            s.delay_days,
            if c.account.payouts_enabled {
                "enabled"
            } else {
                "not enabled yet"
            }
        )),
        (Some(c), None) => text.push_str(&format!(
            " Payouts for {} are {}.",
            c.account.id,
            if c.account.payouts_enabled {
                "enabled"
            } else {
                "not enabled yet"
            }
        )),
        (None, _) => text.push_str(" Connect Stripe to see your own schedule."),
    }
    turn.reply(text);
    if turn.connection.as_ref().is_none() && turn.facts.backend && turn.state.flow.is_none() {
        let mut card = turn.new_card(
            CardKind::Info,
            "Payouts",
            "Connect Stripe to get paid.".to_owned(),
        );
        card.actions = vec![Action::secondary("add_payments", "Add payments")];
        // Like the help card, only the newest of these stays clickable.
        turn.drop_cards(|c| c.owner != super::Owner::Help);
        turn.show(card, super::Owner::Help);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_resolve_against_today() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(
            resolve_date("--11-20", today),
            NaiveDate::from_ymd_opt(2026, 11, 20)
        );
        assert_eq!(
            resolve_date("--12-20", today),
            NaiveDate::from_ymd_opt(2025, 12, 20)
        );
        assert_eq!(
            resolve_date("yesterday", today),
            NaiveDate::from_ymd_opt(2026, 11, 25)
        );
        assert_eq!(
            resolve_date("2026-01-02", today),
            NaiveDate::from_ymd_opt(2026, 1, 2)
        );
        assert_eq!(resolve_date("--02-30", today), None);
    }

    #[test]
    fn deadlines_say_their_time_zone() {
        assert_eq!(format_deadline(1_764_633_600_000), "Dec 2, 2025 00:00 UTC");
    }
}
