//! Balance and payouts of an account, from Stripe's "Payouts" and "Balance" documentation:
//! `GET /v1/balance`, `GET /v1/balance_transactions` (filters `payout`, `type`, `created`,
//! `currency`, `source`), `GET /v1/payouts`, `GET /v1/payouts/{id}`, `POST /v1/payouts` (a
//! manual payout of the available balance) and `POST /v1/payouts/{id}/cancel`.
//!
//! Timing (all on the sandbox clock; test clocks do not move balances, as Stripe's don't):
//! - A card payment's funds become available `delay_days` after it (the account's
//!   `settings.payouts.schedule.delay_days`, 7 for a new US account): paid Nov 20, available
//!   Nov 27. `balance.available` fires when they do.
//! - Automatic payouts run at midnight UTC on the schedule's days (`daily`; `weekly` on
//!   `weekly_anchor`, Monday by default; `monthly` on `monthly_anchor`, the 1st by default, the
//!   last day in shorter months; never for `manual`) and carry every available transaction not
//!   paid out yet (the list's `payout` filter shows which), if the total is positive.
//! - An account's first payout also waits [`FIRST_PAYOUT_REVIEW`] after its first funds become
//!   available: Stripe's security review of a new account's first payout (2 to 3 days; the
//!   sandbox takes 3), so paid Nov 20 means a first payout on Nov 30.
//! - Only accounts with `payouts_enabled` are paid out. A payout is `pending` when created,
//!   `in_transit` an hour later, and `paid` on its `arrival_date` (2 days later, moved past a
//!   weekend to Monday, as standard US payouts arrive in 1-2 business days); or `failed` on that
//!   day when the test control armed a failure (`failure_code`, `failure_message`; the amount
//!   returns to the balance with a `payout_failure` transaction). A pending payout can be
//!   canceled (`canceled`; its amount returns with a `payout_cancel` transaction).

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Days, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::Call;
use super::checkout::Ctx;
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::ids;
use super::model::PayoutSchedule;
use super::rules;
use super::sales::BalanceTransaction;
use super::shapes;
use super::shapes_sales as ss;
use super::state::{Collection, Keyed, PLATFORM, PageRequest, Tx, previous_attributes};

const DAY: i64 = 86_400;
/// The extra hold on an account's first payout (Stripe's security review, 2-3 days).
pub(crate) const FIRST_PAYOUT_REVIEW: i64 = 3 * DAY;
/// A payout goes `in_transit` this long after it is created.
const IN_TRANSIT_AFTER: i64 = 3600;

/// The failure codes the control accepts, with Stripe's messages.
pub const PAYOUT_FAILURES: &[(&str, &str)] = &[
    ("account_closed", "The bank account has been closed."),
    ("account_frozen", "The bank account has been frozen."),
    (
        "bank_account_restricted",
        "The bank account has restrictions on either the type or number of payouts allowed.",
    ),
    (
        "could_not_process",
        "The bank could not process this payout.",
    ),
    (
        "debit_not_authorized",
        "Debit transactions are not approved on the bank account.",
    ),
    (
        "insufficient_funds",
        "Your Stripe account has insufficient funds to cover the payout.",
    ),
    (
        "invalid_account_number",
        "The routing number seems correct, but the account number is invalid.",
    ),
    (
        "no_account",
        "The bank account details on file are probably incorrect. No bank account could be \
         located with those details.",
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Payout {
    /// `po_...`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub arrival_date: i64,
    pub automatic: bool,
    /// `pending`, `in_transit`, `paid`, `failed`, `canceled`.
    pub status: String,
    pub balance_transaction: String,
    pub failure_balance_transaction: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub destination: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// The code it fails with on its arrival date (test control).
    pub fails_with: Option<String>,
}

impl Keyed for Payout {
    fn key(&self) -> &str {
        &self.id
    }
}

/// Per account: where the payout schedule and the `balance.available` announcements are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AccountPayouts {
    /// The last automatic payout run (a midnight), so each day runs once.
    pub last_run: i64,
    /// Funds available up to this time were announced with `balance.available`.
    pub announced_until: i64,
    pub first_payout_made: bool,
    /// The next payout fails with this code (test control).
    pub fail_next: Option<String>,
}

/// Payouts of one mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Payouts {
    pub payouts: Collection<Payout>,
    /// Keyed by connected account id.
    pub accounts: BTreeMap<String, AccountPayouts>,
}

/// How long after a payment on `account` its funds become available (`delay_days`).
pub(crate) fn available_after(tx: &mut Tx<'_>, account: Option<&str>) -> i64 {
    let days = account
        .and_then(|a| tx.ms().accounts.get(a))
        .map_or(7, |a| a.payouts.delay_days);
    i64::from(days) * DAY
}

// ---- shapes ----

pub(crate) fn payout_json(p: &Payout, live: bool) -> Value {
    json!({
        "id": p.id,
        "object": "payout",
        "amount": p.amount,
        "application_fee": null,
        "application_fee_amount": null,
        "arrival_date": p.arrival_date,
        "automatic": p.automatic,
        "balance_transaction": p.balance_transaction,
        "created": p.created,
        "currency": p.currency,
        "description": p.description,
        "destination": p.destination,
        "failure_balance_transaction": p.failure_balance_transaction,
        "failure_code": p.failure_code,
        "failure_message": p.failure_message,
        "livemode": live,
        "metadata": p.metadata,
        "method": "standard",
        "original_payout": null,
        "payout_method": null,
        "reconciliation_status": match (p.automatic, p.status.as_str()) {
            (false, _) => "not_applicable",
            (true, "paid") => "completed",
            _ => "in_progress",
        },
        "reversed_by": null,
        "source_type": "card",
        "statement_descriptor": null,
        "status": p.status,
        "trace_id": null,
        "type": "bank_account",
    })
}

/// Available and pending per currency (`net` of each transaction), with the account's default
/// currency always listed.
fn balance_json(tx: &mut Tx<'_>, account: Option<&str>) -> Value {
    let live = tx.livemode();
    let now = tx.now;
    let default_currency = account
        .and_then(|a| tx.ms().accounts.get(a))
        .map_or_else(|| "usd".to_owned(), |a| a.default_currency.clone());
    let mut available: BTreeMap<String, i64> = BTreeMap::new();
    let mut pending: BTreeMap<String, i64> = BTreeMap::new();
    available.insert(default_currency.clone(), 0);
    pending.insert(default_currency, 0);
    for t in tx.ms().sales.balance_transactions.iter() {
        if t.account.as_deref() != account {
            continue;
        }
        let bucket = if now >= t.available_on {
            &mut available
        } else {
            &mut pending
        };
        *bucket.entry(t.currency.clone()).or_insert(0) += t.net();
        let other = if now >= t.available_on {
            &mut pending
        } else {
            &mut available
        };
        other.entry(t.currency.clone()).or_insert(0);
    }
    let amounts = |m: &BTreeMap<String, i64>| -> Vec<Value> {
        m.iter()
            .map(|(c, a)| json!({ "amount": a, "currency": c, "source_types": { "card": a } }))
            .collect()
    };
    json!({
        "object": "balance",
        "available": amounts(&available),
        "connect_reserved": amounts(&available.keys().map(|c| (c.clone(), 0)).collect()),
        "livemode": live,
        "pending": amounts(&pending),
    })
}

// ---- API ----

pub(crate) fn retrieve_balance(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    Ok(balance_json(tx, call.scope))
}

pub(crate) fn list_balance_transactions(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "created",
        "currency",
        "ending_before",
        "expand",
        "limit",
        "payout",
        "source",
        "starting_after",
        "type",
    ])?;
    let req = PageRequest::parse(p)?;
    let payout = p.str("payout")?;
    let kind = p.str("type")?;
    let source = p.str("source")?;
    let currency = p
        .str("currency")?
        .map(|c| rules::currency("currency", c))
        .transpose()?;
    let created = p.range("created")?;
    if let Some(po) = payout
        && tx
            .ms()
            .payouts
            .payouts
            .get(po)
            .is_none_or(|x| x.account.as_deref() != call.scope)
    {
        return Err(ApiError::no_such("payout", po, "payout"));
    }
    let live = tx.livemode();
    let now = tx.now;
    let client_id = &call.app.config.connect_client_id;
    let page = tx
        .ms()
        .sales
        .balance_transactions
        .page(&req, "balance_transaction", |t| {
            t.account.as_deref() == call.scope
                && payout.is_none_or(|po| t.payout.as_deref() == Some(po))
                && kind.is_none_or(|k| t.kind == k)
                && source.is_none_or(|s| t.source == s)
                && currency.as_deref().is_none_or(|c| t.currency == c)
                && created.is_none_or(|(lo, hi)| (lo..=hi).contains(&t.created))
        })?;
    let data = page
        .items
        .iter()
        .map(|t| ss::balance_transaction(t, live, now, client_id))
        .collect();
    Ok(shapes::list(
        "/v1/balance_transactions",
        data,
        page.has_more,
    ))
}

fn scoped_payout<'t>(tx: &'t mut Tx<'_>, scope: Option<&str>, id: &str) -> ApiResult<&'t Payout> {
    tx.ms()
        .payouts
        .payouts
        .get(id)
        .filter(|p| p.account.as_deref() == scope)
        .ok_or_else(|| ApiError::no_such("payout", id, "payout"))
}

pub(crate) fn retrieve_payout(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    Ok(payout_json(scoped_payout(tx, call.scope, id)?, live))
}

pub(crate) fn list_payouts(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "arrival_date",
        "created",
        "destination",
        "ending_before",
        "expand",
        "limit",
        "starting_after",
        "status",
    ])?;
    let req = PageRequest::parse(p)?;
    let status = p
        .str("status")?
        .map(|s| {
            rules::one_of(
                "status",
                s,
                &["canceled", "failed", "in_transit", "paid", "pending"],
            )
        })
        .transpose()?;
    let created = p.range("created")?;
    let arrival = p.range("arrival_date")?;
    let live = tx.livemode();
    let page = tx.ms().payouts.payouts.page(&req, "payout", |po| {
        po.account.as_deref() == call.scope
            && status.is_none_or(|s| po.status == s)
            && created.is_none_or(|(lo, hi)| (lo..=hi).contains(&po.created))
            && arrival.is_none_or(|(lo, hi)| (lo..=hi).contains(&po.arrival_date))
    })?;
    let data = page.items.iter().map(|po| payout_json(po, live)).collect();
    Ok(shapes::list("/v1/payouts", data, page.has_more))
}

/// `POST /v1/payouts`: a manual payout from the available balance.
pub(crate) fn create_payout(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "amount",
        "currency",
        "description",
        "destination",
        "expand",
        "metadata",
        "method",
        "source_type",
        "statement_descriptor",
    ])?;
    let Some(amount) = p.int("amount")? else {
        return Err(ApiError::missing("amount"));
    };
    if amount <= 0 {
        return Err(ApiError::bad_param("amount", "Invalid positive integer"));
    }
    let currency = rules::currency("currency", p.required("currency")?)?;
    if let Some(m) = p.str("method")?
        && m != "standard"
    {
        return Err(ApiError::bad_param(
            "method",
            "The chatpay sandbox supports only `method=standard` payouts.",
        ));
    }
    let available = available_of(tx, call.scope, &currency);
    if amount > available {
        return Err(ApiError::invalid(format!(
            "You have insufficient funds in your Stripe account for this transfer. Your card \
             balance is too low. You can use the /v1/balance endpoint to view your Stripe \
             balance (for more details, see stripe.com/docs/api#balance). Available: {available}."
        ))
        .code("balance_insufficient"));
    }
    let mut metadata = BTreeMap::new();
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut metadata, "metadata")?;
    }
    let description = p.text("description")?;
    let id = make_payout(
        tx,
        call.scope,
        amount,
        &currency,
        false,
        description,
        metadata,
    );
    let live = tx.livemode();
    Ok(payout_json(scoped_payout(tx, call.scope, &id)?, live))
}

pub(crate) fn cancel_payout(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let po = scoped_payout(tx, call.scope, id)?.clone();
    if po.status != "pending" {
        return Err(ApiError::invalid(format!(
            "Payouts can only be canceled while they are pending; this payout is {}.",
            po.status
        )));
    }
    Ok(finish(tx, id, "canceled"))
}

fn available_of(tx: &mut Tx<'_>, account: Option<&str>, currency: &str) -> i64 {
    let now = tx.now;
    tx.ms()
        .sales
        .balance_transactions
        .iter()
        .filter(|t| {
            t.account.as_deref() == account && t.currency == currency && now >= t.available_on
        })
        .map(BalanceTransaction::net)
        .sum()
}

// ---- making and moving payouts ----

/// Two days later, moved past a weekend.
fn arrival(created: i64) -> i64 {
    let mut t = created + 2 * DAY;
    if let Some(d) = Utc.timestamp_opt(t, 0).single() {
        match d.weekday() {
            chrono::Weekday::Sat => t += 2 * DAY,
            chrono::Weekday::Sun => t += DAY,
            _ => {}
        }
    }
    t
}

fn payout_txn(
    tx: &mut Tx<'_>,
    account: Option<&str>,
    payout: &str,
    amount: i64,
    currency: &str,
    kind: &str,
) -> String {
    let now = tx.now;
    let (category, description) = match kind {
        "payout" => ("payout", "STRIPE PAYOUT"),
        "payout_cancel" => ("payout_reversal", "PAYOUT CANCELED"),
        _ => ("payout_reversal", "PAYOUT FAILURE"),
    };
    let txn = BalanceTransaction {
        id: ids::balance_transaction(),
        account: account.map(str::to_owned),
        created: now,
        amount,
        currency: currency.to_owned(),
        fee_details: Vec::new(),
        available_on: now,
        kind: kind.to_owned(),
        reporting_category: category.to_owned(),
        source: payout.to_owned(),
        description: Some(description.to_owned()),
        payout: Some(payout.to_owned()),
    };
    let id = txn.id.clone();
    let seq = tx.st.seq();
    tx.ms().sales.balance_transactions.insert(seq, txn);
    id
}

fn make_payout(
    tx: &mut Tx<'_>,
    account: Option<&str>,
    amount: i64,
    currency: &str,
    automatic: bool,
    description: Option<String>,
    metadata: BTreeMap<String, String>,
) -> String {
    let live = tx.livemode();
    let now = tx.now;
    let id = format!("po_1{}", ids::random(23));
    let txn = payout_txn(tx, account, &id, -amount, currency, "payout");
    let key = account.unwrap_or(PLATFORM).to_owned();
    let fails_with = tx
        .ms()
        .payouts
        .accounts
        .get_mut(&key)
        .and_then(|a| a.fail_next.take());
    let destination = account
        .and_then(|a| tx.ms().accounts.get(a))
        .and_then(|a| a.bank.as_ref().map(|b| b.id.clone()));
    let payout = Payout {
        id: id.clone(),
        account: account.map(str::to_owned),
        created: now,
        amount,
        currency: currency.to_owned(),
        arrival_date: arrival(now),
        automatic,
        status: "pending".into(),
        balance_transaction: txn,
        failure_balance_transaction: None,
        failure_code: None,
        failure_message: None,
        destination,
        description: description.or_else(|| automatic.then(|| "STRIPE PAYOUT".to_owned())),
        metadata,
        fails_with,
    };
    let out = payout_json(&payout, live);
    let seq = tx.st.seq();
    tx.ms().payouts.payouts.insert(seq, payout);
    tx.emit("payout.created", account, out, None);
    id
}

/// Moves a payout to `status` (`in_transit`, `paid`, `failed`, `canceled`) with its events.
fn finish(tx: &mut Tx<'_>, id: &str, status: &str) -> Value {
    let live = tx.livemode();
    let Some(before) = tx.ms().payouts.payouts.get(id).cloned() else {
        return Value::Null;
    };
    let mut after = before.clone();
    after.status = status.to_owned();
    let account = before.account.clone();
    match status {
        "failed" => {
            let code = before
                .fails_with
                .clone()
                .unwrap_or_else(|| "could_not_process".into());
            after.failure_message = PAYOUT_FAILURES
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, m)| (*m).to_owned());
            after.failure_code = Some(code);
            after.failure_balance_transaction = Some(payout_txn(
                tx,
                account.as_deref(),
                id,
                before.amount,
                &before.currency,
                "payout_failure",
            ));
        }
        "canceled" => {
            after.failure_balance_transaction = Some(payout_txn(
                tx,
                account.as_deref(),
                id,
                before.amount,
                &before.currency,
                "payout_cancel",
            ));
        }
        _ => {}
    }
    let old = payout_json(&before, live);
    let new = payout_json(&after, live);
    if let Some(slot) = tx.ms().payouts.payouts.get_mut(id) {
        *slot = after;
    }
    tx.emit(
        "payout.updated",
        account.as_deref(),
        new.clone(),
        previous_attributes(&old, &new, &[]),
    );
    if let Some(kind) = match status {
        "paid" => Some("payout.paid"),
        "failed" => Some("payout.failed"),
        "canceled" => Some("payout.canceled"),
        _ => None,
    } {
        tx.emit(kind, account.as_deref(), new.clone(), None);
    }
    new
}

// ---- time ----

fn midnight_at_or_after(t: i64) -> i64 {
    if t.rem_euclid(DAY) == 0 {
        t
    } else {
        (t.div_euclid(DAY) + 1) * DAY
    }
}

/// The first payout run at or after `t` on the schedule (`None` for manual payouts).
fn run_at_or_after(t: i64, s: &PayoutSchedule) -> Option<i64> {
    let mut day = midnight_at_or_after(t);
    let matches = |d: i64| -> bool {
        let Some(date) = Utc.timestamp_opt(d, 0).single() else {
            return true;
        };
        match s.interval.as_str() {
            "weekly" => {
                let anchor = s.weekly_anchor.as_deref().unwrap_or("monday");
                date.weekday()
                    .to_string()
                    .to_ascii_lowercase()
                    .starts_with(&anchor[..3.min(anchor.len())])
            }
            "monthly" => {
                let anchor = u32::from(s.monthly_anchor.unwrap_or(1));
                let last = date
                    .date_naive()
                    .checked_add_days(Days::new(1))
                    .is_some_and(|next| next.month() != date.month());
                date.day() == anchor || (last && date.day() < anchor)
            }
            _ => true,
        }
    };
    match s.interval.as_str() {
        "manual" => None,
        _ => {
            for _ in 0..400 {
                if matches(day) {
                    return Some(day);
                }
                day += DAY;
            }
            Some(day)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Due {
    Announce(String),
    Run(String, i64),
    InTransit(String),
    Arrive(String),
}

/// What one pass over the balance finds for one account: its unpaid-out transactions' earliest
/// availability, and its first charge's.
#[derive(Default)]
struct Unpaid {
    first_available: Option<i64>,
    unpaid_from: Option<i64>,
    /// The first availability of a credit after what was announced.
    announce: Option<i64>,
}

fn next_due(tx: &mut Tx<'_>) -> Option<(i64, Due)> {
    let mut best: Option<(i64, Due)> = None;
    let mut consider = |t: i64, d: Due| {
        if best.as_ref().is_none_or(|(bt, _)| t < *bt) {
            best = Some((t, d));
        }
    };
    let ms = tx.st.mode(tx.mode);
    // One pass over the balance (not one per account: a request settles time first, and the
    // balance grows with every payment).
    let mut unpaid: HashMap<&str, Unpaid> = HashMap::new();
    for t in ms.sales.balance_transactions.iter() {
        let (Some(account), None) = (t.account.as_deref(), &t.payout) else {
            continue;
        };
        let announced_until = ms
            .payouts
            .accounts
            .get(account)
            .map_or(0, |a| a.announced_until);
        let u = unpaid.entry(account).or_default();
        if t.kind == "charge" {
            u.first_available = Some(
                u.first_available
                    .map_or(t.available_on, |f| f.min(t.available_on)),
            );
        }
        if t.amount > 0 && t.available_on > announced_until {
            u.announce = Some(u.announce.map_or(t.available_on, |a| a.min(t.available_on)));
        }
        u.unpaid_from = Some(
            u.unpaid_from
                .map_or(t.available_on, |f| f.min(t.available_on)),
        );
    }
    for a in ms.accounts.iter() {
        let Some(u) = unpaid.get(a.id.as_str()) else {
            continue;
        };
        let default = AccountPayouts::default();
        let state = ms.payouts.accounts.get(&a.id).unwrap_or(&default);
        if let Some(t) = u.announce {
            consider(t, Due::Announce(a.id.clone()));
        }
        if !a.payouts_enabled() {
            continue;
        }
        let Some(from) = u.unpaid_from else {
            continue;
        };
        let hold = if state.first_payout_made {
            0
        } else {
            u.first_available.map_or(0, |f| f + FIRST_PAYOUT_REVIEW)
        };
        let earliest = from.max(hold).max(state.last_run + 1);
        if let Some(run) = run_at_or_after(earliest, &a.payouts) {
            consider(run, Due::Run(a.id.clone(), run));
        }
    }
    for po in ms.payouts.payouts.iter() {
        match po.status.as_str() {
            "pending" => consider(po.created + IN_TRANSIT_AFTER, Due::InTransit(po.id.clone())),
            "in_transit" => consider(po.arrival_date, Due::Arrive(po.id.clone())),
            _ => {}
        }
    }
    best
}

fn apply(tx: &mut Tx<'_>, due: Due) {
    let now = tx.now;
    match due {
        Due::Announce(account) => {
            tx.ms()
                .payouts
                .accounts
                .entry(account.clone())
                .or_default()
                .announced_until = now;
            let balance = balance_json(tx, Some(&account));
            tx.emit("balance.available", Some(&account), balance, None);
        }
        Due::Run(account, at) => {
            let mut by_currency: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
            for t in tx.ms().sales.balance_transactions.iter() {
                if t.account.as_deref() == Some(account.as_str())
                    && t.payout.is_none()
                    && t.available_on <= at
                {
                    let e = by_currency.entry(t.currency.clone()).or_default();
                    e.0 += t.net();
                    e.1.push(t.id.clone());
                }
            }
            {
                let state = tx.ms().payouts.accounts.entry(account.clone()).or_default();
                state.last_run = at;
            }
            for (currency, (amount, txns)) in by_currency {
                if amount <= 0 {
                    continue;
                }
                let id = make_payout(
                    tx,
                    Some(&account),
                    amount,
                    &currency,
                    true,
                    None,
                    BTreeMap::new(),
                );
                for t in txns {
                    if let Some(txn) = tx.ms().sales.balance_transactions.get_mut(&t) {
                        txn.payout = Some(id.clone());
                    }
                }
                tx.ms()
                    .payouts
                    .accounts
                    .entry(account.clone())
                    .or_default()
                    .first_payout_made = true;
            }
        }
        Due::InTransit(id) => {
            finish(tx, &id, "in_transit");
        }
        Due::Arrive(id) => {
            let fails = tx
                .ms()
                .payouts
                .payouts
                .get(&id)
                .is_some_and(|p| p.fails_with.is_some());
            finish(tx, &id, if fails { "failed" } else { "paid" });
        }
    }
}

/// Runs what is due on the sandbox clock: funds becoming available, payout runs, payouts
/// moving. Returns true if anything happened.
pub(crate) fn settle(tx: &mut Tx<'_>, _ctx: Ctx<'_>) -> bool {
    let until = tx.now;
    let mut changed = false;
    for _ in 0..100_000 {
        let Some((t, due)) = next_due(tx) else {
            break;
        };
        if t > until {
            break;
        }
        tx.now = t;
        apply(tx, due);
        changed = true;
    }
    tx.now = until;
    changed
}

/// Arms a failure for the next payout of `account`.
pub(crate) fn fail_next(tx: &mut Tx<'_>, account: &str, code: &str) -> Result<(), String> {
    if !PAYOUT_FAILURES.iter().any(|(c, _)| *c == code) {
        return Err(format!(
            "failure_code must be one of {}",
            PAYOUT_FAILURES
                .iter()
                .map(|(c, _)| *c)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    tx.ms()
        .payouts
        .accounts
        .entry(account.to_owned())
        .or_default()
        .fail_next = Some(code.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(interval: &str, weekly: Option<&str>, monthly: Option<u8>) -> PayoutSchedule {
        PayoutSchedule {
            delay_days: 7,
            interval: interval.into(),
            weekly_anchor: weekly.map(str::to_owned),
            monthly_anchor: monthly,
        }
    }

    #[test]
    fn runs_follow_the_schedule() {
        // 2030-01-02 10:00 UTC, a Wednesday.
        let t = 1_893_578_400;
        let day = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap().timestamp();
        assert_eq!(
            run_at_or_after(t, &schedule("daily", None, None)),
            Some(day(2030, 1, 3))
        );
        assert_eq!(
            run_at_or_after(t, &schedule("weekly", Some("friday"), None)),
            Some(day(2030, 1, 4))
        );
        assert_eq!(
            run_at_or_after(t, &schedule("weekly", None, None)),
            Some(day(2030, 1, 7))
        );
        assert_eq!(
            run_at_or_after(t, &schedule("monthly", None, Some(31))),
            Some(day(2030, 1, 31))
        );
        assert_eq!(
            run_at_or_after(day(2030, 2, 1) + 1, &schedule("monthly", None, Some(31))),
            Some(day(2030, 2, 28))
        );
        assert_eq!(run_at_or_after(t, &schedule("manual", None, None)), None);
        assert_eq!(
            run_at_or_after(day(2030, 1, 3), &schedule("daily", None, None)),
            Some(day(2030, 1, 3))
        );
    }

    #[test]
    fn arrivals_skip_weekends() {
        let day = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap().timestamp();
        // Wednesday -> Friday; Thursday -> Saturday -> Monday.
        assert_eq!(arrival(day(2030, 1, 2)), day(2030, 1, 4));
        assert_eq!(arrival(day(2030, 1, 3)), day(2030, 1, 7));
    }
}
