//! Disputes and early fraud warnings, from Stripe's "How disputes work", "Respond to disputes",
//! "Dispute evidence best practices" and "Testing" (Disputes, Evidence) pages:
//! `GET /v1/disputes`, `GET`/`POST /v1/disputes/{id}`, `POST /v1/disputes/{id}/close`,
//! `GET /v1/radar/early_fraud_warnings[/{id}]`.
//!
//! - Stripe's dispute test cards succeed, then: `4000 0000 0000 0259` is disputed as
//!   `fraudulent`, `…2685` as `product_not_received` (both chargebacks, `needs_response`),
//!   `…1976` as an inquiry (`warning_needs_response`), `…5423` gets an early fraud warning.
//! - A chargeback withdraws the disputed amount and the dispute (received) fee from the balance
//!   at once (`charge.dispute.funds_withdrawn`); refunds of the charge are refused while it is
//!   open (`charge_disputed`). An inquiry moves no money and the charge may still be refunded
//!   (`is_charge_refundable`).
//! - Evidence is staged with `submit=false` and submitted with `submit=true` (the default when
//!   evidence is sent): `under_review` (`warning_under_review`), `submission_count` + 1, and the
//!   evidence can't be changed any more. Countering a chargeback costs the dispute countered
//!   fee, returned if the dispute is won; the received fee is never returned.
//! - Stripe's test evidence decides the outcome: `winning_evidence` in `uncategorized_text`
//!   wins (the funds and the countered fee come back: `charge.dispute.funds_reinstated`),
//!   `losing_evidence` loses (nothing comes back). The issuer's decision arrives
//!   [`DECISION_AFTER`] after the submission (sandbox clock). Other evidence stays
//!   `under_review`, as a real issuer's review would for weeks.
//! - An inquiry won closes as `warning_closed`; one lost (or accepted) escalates to a lost
//!   chargeback, withdrawing the funds and the fee. An inquiry left alone closes after 120
//!   days (`warning_closed`).
//! - A chargeback nobody answers by `evidence_details.due_by` is lost.
//! - `POST /v1/disputes/{id}/close` accepts the dispute: `lost`, irreversible.
//! - A dispute of a partly refunded charge is for the full amount (customers may dispute the
//!   whole payment); lost, the refunded part is reinstated; won, everything is.
//! - An early fraud warning is `actionable` while its charge is neither disputed nor fully
//!   refunded (`radar.early_fraud_warning.updated` when that changes).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::Call;
use super::cards::AfterCharge;
use super::checkout::Ctx;
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::ids;
use super::money;
use super::sales::{BalanceTransaction, Charge, FeeDetail};
use super::shapes;
use super::shapes_sales as ss;
use super::state::{PageRequest, Tx, keyed_by_id, previous_attributes};

const DAY: i64 = 86_400;
/// How long after a submission the issuer's decision on Stripe's test evidence arrives.
pub(crate) const DECISION_AFTER: i64 = 60;
/// An inquiry nobody escalates closes after this long (`warning_closed`).
pub(crate) const INQUIRY_CLOSES_AFTER: i64 = 120 * DAY;
/// Days to respond to a chargeback (Stripe: 7 to 21 depending on the network; the sandbox
/// takes the shortest).
pub(crate) const RESPOND_WITHIN_DAYS: i64 = 7;
/// Stripe's test evidence values (`uncategorized_text`).
pub(crate) const WINNING_EVIDENCE: &str = "winning_evidence";
pub(crate) const LOSING_EVIDENCE: &str = "losing_evidence";

/// The text evidence fields (string parameters).
const TEXT_FIELDS: &[&str] = &[
    "access_activity_log",
    "billing_address",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_tracking_number",
    "uncategorized_text",
];

/// The evidence fields that name a file upload (`file_…`).
const FILE_FIELDS: &[&str] = &[
    "cancellation_policy",
    "customer_communication",
    "customer_signature",
    "duplicate_charge_documentation",
    "receipt",
    "refund_policy",
    "service_documentation",
    "shipping_documentation",
    "uncategorized_file",
];

/// Fields Stripe limits to 20,000 characters; the whole evidence to 150,000.
const LONG_FIELDS: &[&str] = &[
    "access_activity_log",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "duplicate_charge_explanation",
    "product_description",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
];

/// `status` of a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DisputeStatus {
    WarningNeedsResponse,
    WarningUnderReview,
    WarningClosed,
    NeedsResponse,
    UnderReview,
    Won,
    Lost,
}

impl DisputeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::WarningNeedsResponse => "warning_needs_response",
            DisputeStatus::WarningUnderReview => "warning_under_review",
            DisputeStatus::WarningClosed => "warning_closed",
            DisputeStatus::NeedsResponse => "needs_response",
            DisputeStatus::UnderReview => "under_review",
            DisputeStatus::Won => "won",
            DisputeStatus::Lost => "lost",
        }
    }

    /// Evidence may still be staged and submitted.
    fn awaits_response(self) -> bool {
        matches!(
            self,
            DisputeStatus::WarningNeedsResponse | DisputeStatus::NeedsResponse
        )
    }

    fn closed(self) -> bool {
        matches!(
            self,
            DisputeStatus::WarningClosed | DisputeStatus::Won | DisputeStatus::Lost
        )
    }
}

/// The issuer's decision on test evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Decision {
    Win,
    Lose,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dispute {
    /// `du_…`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub charge: String,
    pub payment_intent: Option<String>,
    /// `fraudulent`, `product_not_received`, `general`.
    pub reason: String,
    pub status: DisputeStatus,
    /// An inquiry (`case_type=inquiry`) rather than a chargeback.
    pub inquiry: bool,
    /// The card brand and the network's reason code.
    pub brand: String,
    pub network_reason_code: Option<String>,
    /// Evidence fields set so far (text, or file ids).
    pub evidence: BTreeMap<String, String>,
    pub submission_count: u32,
    pub due_by: i64,
    pub past_due: bool,
    pub metadata: BTreeMap<String, String>,
    /// Balance transactions withdrawing and reinstating the funds (at most two).
    pub balance_transactions: Vec<String>,
    /// The countered fee's transaction (charged when evidence of a chargeback is submitted).
    pub countered_fee: Option<String>,
    /// The issuer's decision on test evidence, and when it arrives (sandbox clock).
    pub decision: Option<(Decision, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EarlyFraudWarning {
    /// `issfr_…`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub charge: String,
    pub payment_intent: Option<String>,
    pub fraud_type: String,
    pub actionable: bool,
}

keyed_by_id!(Dispute, EarlyFraudWarning);

/// Stripe's dispute fee, received or countered: 15.00 in the charge's currency (Stripe's US
/// price; other countries' prices differ).
pub(crate) fn dispute_fee(currency: &str) -> i64 {
    15 * 10i64.pow(money::decimals(currency))
}

/// The last second of the day `days` after `t` (UTC), as Stripe's `due_by` (`…59:59`).
fn end_of_day_after(t: i64, days: i64) -> i64 {
    (t.div_euclid(DAY) + days + 1) * DAY - 1
}

// ---- shapes ----

fn evidence_json(d: &Dispute) -> Value {
    let mut out = serde_json::Map::new();
    for k in TEXT_FIELDS.iter().chain(FILE_FIELDS) {
        out.insert((*k).to_owned(), json!(d.evidence.get(*k)));
    }
    out.insert("enhanced_evidence".into(), json!({}));
    Value::Object(out)
}

pub(crate) fn dispute_json(tx: &mut Tx<'_>, client_id: &str, d: &Dispute) -> Value {
    let live = tx.livemode();
    let now = tx.now;
    let sales = &tx.st.mode(tx.mode).sales;
    let txns: Vec<Value> = d
        .balance_transactions
        .iter()
        .filter_map(|id| sales.balance_transactions.get(id))
        .map(|t| ss::balance_transaction(t, live, now, client_id))
        .collect();
    let refundable = d.inquiry
        && tx
            .ms()
            .sales
            .charges
            .get(&d.charge)
            .is_some_and(|c| c.amount_refunded < c.amount);
    json!({
        "id": d.id,
        "object": "dispute",
        "amount": d.amount,
        "balance_transactions": txns,
        "charge": d.charge,
        "created": d.created,
        "currency": d.currency,
        "enhanced_eligibility_types": [],
        "evidence": evidence_json(d),
        "evidence_details": {
            "due_by": d.due_by,
            "enhanced_eligibility": {},
            "has_evidence": !d.evidence.is_empty(),
            "past_due": d.past_due,
            "submission_count": d.submission_count,
        },
        "is_charge_refundable": refundable,
        "livemode": live,
        "metadata": d.metadata,
        "network_reason_code": d.network_reason_code,
        "payment_intent": d.payment_intent,
        "payment_method_details": {
            "card": {
                "brand": d.brand,
                "case_type": if d.inquiry { "inquiry" } else { "chargeback" },
                "network": d.brand,
                "network_reason_code": d.network_reason_code,
            },
            "type": "card",
        },
        "reason": d.reason,
        "status": d.status.as_str(),
    })
}

pub(crate) fn warning_json(w: &EarlyFraudWarning, live: bool) -> Value {
    json!({
        "id": w.id,
        "object": "radar.early_fraud_warning",
        "actionable": w.actionable,
        "charge": w.charge,
        "created": w.created,
        "fraud_type": w.fraud_type,
        "livemode": live,
        "payment_intent": w.payment_intent,
    })
}

// ---- what happens to a charge ----

/// After a successful charge of one of Stripe's dispute test cards.
pub(crate) fn after_charge(tx: &mut Tx<'_>, ctx: Ctx<'_>, charge: &str, after: AfterCharge) {
    match after {
        AfterCharge::EarlyFraudWarning => {
            open_warning(tx, charge);
        }
        AfterCharge::Fraudulent => {
            open(tx, ctx, charge, "fraudulent");
        }
        AfterCharge::ProductNotReceived => {
            open(tx, ctx, charge, "product_not_received");
        }
        AfterCharge::Inquiry => {
            open(tx, ctx, charge, "inquiry");
        }
    }
}

fn emit_dispute(tx: &mut Tx<'_>, ctx: Ctx<'_>, kind: &str, id: &str, prev: Option<Value>) {
    let Some(d) = tx.ms().sales.disputes.get(id).cloned() else {
        return;
    };
    let out = dispute_json(tx, ctx.client_id, &d);
    tx.emit(kind, d.account.as_deref(), out, prev);
}

/// A balance transaction of the dispute (`adjustment`), available at once.
fn dispute_txn(
    tx: &mut Tx<'_>,
    d: &Dispute,
    amount: i64,
    fee: i64,
    category: &str,
    description: String,
) -> String {
    let fee_details = if fee > 0 {
        vec![FeeDetail {
            kind: "stripe_fee".into(),
            amount: fee,
            description: "Dispute fee".into(),
        }]
    } else {
        Vec::new()
    };
    let txn = BalanceTransaction {
        id: ids::balance_transaction(),
        account: d.account.clone(),
        created: tx.now,
        amount,
        currency: d.currency.clone(),
        fee_details,
        available_on: tx.now,
        kind: "adjustment".into(),
        reporting_category: category.into(),
        source: d.id.clone(),
        description: Some(description),
        payout: None,
    };
    let id = txn.id.clone();
    let seq = tx.st.seq();
    tx.ms().sales.balance_transactions.insert(seq, txn);
    id
}

/// Withdraws the disputed amount and the received fee (`charge.dispute.funds_withdrawn`).
fn withdraw(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str) {
    let Some(d) = tx.ms().sales.disputes.get(id).cloned() else {
        return;
    };
    let txn = dispute_txn(
        tx,
        &d,
        -d.amount,
        dispute_fee(&d.currency),
        "dispute",
        format!("Chargeback withdrawal for {}", d.charge),
    );
    if let Some(d) = tx.ms().sales.disputes.get_mut(id) {
        d.balance_transactions.push(txn);
    }
    emit_dispute(tx, ctx, "charge.dispute.funds_withdrawn", id, None);
}

/// Reinstates `amount` (`charge.dispute.funds_reinstated`).
fn reinstate(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str, amount: i64) {
    let Some(d) = tx.ms().sales.disputes.get(id).cloned() else {
        return;
    };
    let txn = dispute_txn(
        tx,
        &d,
        amount,
        0,
        "dispute_reversal",
        format!("Chargeback reversal for {}", d.charge),
    );
    if let Some(d) = tx.ms().sales.disputes.get_mut(id) {
        d.balance_transactions.push(txn);
    }
    emit_dispute(tx, ctx, "charge.dispute.funds_reinstated", id, None);
}

/// Opens a dispute on a succeeded charge, for its full amount (a partly refunded charge too):
/// `fraudulent`, `product_not_received`, or `inquiry`.
pub(crate) fn open(tx: &mut Tx<'_>, ctx: Ctx<'_>, charge: &str, kind: &str) -> Option<String> {
    let c = tx.ms().sales.charges.get(charge).cloned()?;
    if !c.succeeded {
        return None;
    }
    let inquiry = kind == "inquiry";
    let (reason, code) = match kind {
        "fraudulent" => ("fraudulent", "10.4"),
        "product_not_received" => ("product_not_received", "13.1"),
        // Stripe's example inquiry: `general`, Visa 10.4.
        _ => ("general", "10.4"),
    };
    let now = tx.now;
    let d = Dispute {
        id: format!("du_1{}", ids::random(23)),
        account: c.account.clone(),
        created: now,
        amount: c.amount,
        currency: c.currency.clone(),
        charge: c.id.clone(),
        payment_intent: Some(c.payment_intent.clone()).filter(|p| !p.is_empty()),
        reason: reason.into(),
        status: if inquiry {
            DisputeStatus::WarningNeedsResponse
        } else {
            DisputeStatus::NeedsResponse
        },
        inquiry,
        brand: c.card.brand.clone(),
        network_reason_code: Some(code.into()),
        evidence: BTreeMap::new(),
        submission_count: 0,
        due_by: end_of_day_after(now, RESPOND_WITHIN_DAYS),
        past_due: false,
        metadata: BTreeMap::new(),
        balance_transactions: Vec::new(),
        countered_fee: None,
        decision: None,
    };
    let id = d.id.clone();
    let seq = tx.st.seq();
    tx.ms().sales.disputes.insert(seq, d);
    if let Some(c) = tx.ms().sales.charges.get_mut(charge) {
        c.disputed = true;
    }
    emit_dispute(tx, ctx, "charge.dispute.created", &id, None);
    if !inquiry {
        withdraw(tx, ctx, &id);
    }
    refresh_warnings(tx, charge);
    Some(id)
}

/// Opens an early fraud warning on a succeeded charge (`radar.early_fraud_warning.created`).
pub(crate) fn open_warning(tx: &mut Tx<'_>, charge: &str) -> Option<String> {
    let c = tx.ms().sales.charges.get(charge).cloned()?;
    if !c.succeeded {
        return None;
    }
    let w = EarlyFraudWarning {
        id: format!("issfr_1{}", ids::random(23)),
        account: c.account.clone(),
        created: tx.now,
        charge: c.id.clone(),
        payment_intent: Some(c.payment_intent.clone()).filter(|p| !p.is_empty()),
        // Stripe's example warning says `misc`; issuers also report `made_with_stolen_card`,
        // `unauthorized_use_of_card`, ...
        fraud_type: "misc".into(),
        actionable: actionable(&c),
    };
    let id = w.id.clone();
    let out = warning_json(&w, tx.livemode());
    let seq = tx.st.seq();
    tx.ms().sales.early_fraud_warnings.insert(seq, w);
    tx.emit(
        "radar.early_fraud_warning.created",
        c.account.as_deref(),
        out,
        None,
    );
    Some(id)
}

/// "An EFW is actionable if it has not received a dispute and has not been fully refunded."
fn actionable(c: &Charge) -> bool {
    !c.disputed && c.amount_refunded < c.amount
}

/// After a charge was disputed or refunded: its warnings' `actionable`
/// (`radar.early_fraud_warning.updated` when it changes).
pub(crate) fn refresh_warnings(tx: &mut Tx<'_>, charge: &str) {
    let Some(now_actionable) = tx.ms().sales.charges.get(charge).map(actionable) else {
        return;
    };
    let live = tx.livemode();
    let changed: Vec<EarlyFraudWarning> = tx
        .ms()
        .sales
        .early_fraud_warnings
        .iter()
        .filter(|w| w.charge == charge && w.actionable != now_actionable)
        .cloned()
        .collect();
    for w in changed {
        let before = warning_json(&w, live);
        let next = EarlyFraudWarning {
            actionable: now_actionable,
            ..w.clone()
        };
        let after = warning_json(&next, live);
        if let Some(slot) = tx.ms().sales.early_fraud_warnings.get_mut(&w.id) {
            *slot = next;
        }
        let prev = previous_attributes(&before, &after, &[]);
        tx.emit(
            "radar.early_fraud_warning.updated",
            w.account.as_deref(),
            after,
            prev,
        );
    }
}

/// Why a charge can't be refunded because of a chargeback: refunds go through the dispute
/// while it is open, and a lost one was already paid back by the dispute.
pub(crate) fn refund_blocked(tx: &mut Tx<'_>, charge: &str) -> Option<ApiError> {
    let blocked = tx.ms().sales.disputes.iter().any(|d| {
        d.charge == charge
            && !d.inquiry
            && matches!(
                d.status,
                DisputeStatus::NeedsResponse | DisputeStatus::UnderReview | DisputeStatus::Lost
            )
    });
    blocked.then(|| {
        ApiError::invalid(format!(
            "Charge {charge} has been charged back; cannot issue a refund."
        ))
        .code("charge_disputed")
        .param("charge")
    })
}

/// Closes a dispute as `won`, `lost` or `warning_closed`, moving the money Stripe moves.
fn close(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str, decision: Option<Decision>) {
    let Some(d) = tx.ms().sales.disputes.get(id).cloned() else {
        return;
    };
    if d.status.closed() {
        return;
    }
    let before = dispute_json(tx, ctx.client_id, &d);
    let status = match (d.inquiry, decision) {
        (true, Some(Decision::Win)) | (true, None) => DisputeStatus::WarningClosed,
        (_, Some(Decision::Win)) => DisputeStatus::Won,
        (_, Some(Decision::Lose)) => DisputeStatus::Lost,
        (false, None) => DisputeStatus::Lost,
    };
    if let Some(slot) = tx.ms().sales.disputes.get_mut(id) {
        slot.status = status;
        slot.decision = None;
    }
    // An inquiry lost escalates to a chargeback that is lost: the funds and the fee go.
    if d.inquiry && status == DisputeStatus::Lost {
        withdraw(tx, ctx, id);
    }
    let after = {
        let d = tx.ms().sales.disputes.get(id).cloned();
        d.map(|d| dispute_json(tx, ctx.client_id, &d))
    };
    if let Some(after) = after {
        let prev = previous_attributes(&before, &after, &[]);
        tx.emit("charge.dispute.closed", d.account.as_deref(), after, prev);
    }
    match status {
        DisputeStatus::Won => {
            reinstate(tx, ctx, id, d.amount);
            if d.countered_fee.is_some() {
                // Won: the countered fee comes back (the received fee does not).
                dispute_txn(
                    tx,
                    &d,
                    dispute_fee(&d.currency),
                    0,
                    "fee",
                    "Dispute countered fee refund".into(),
                );
            }
        }
        DisputeStatus::Lost if !d.inquiry => {
            // A partly refunded charge disputed in full: the refunded part comes back.
            let refunded = tx
                .ms()
                .sales
                .charges
                .get(&d.charge)
                .map_or(0, |c| c.amount_refunded.min(d.amount));
            if refunded > 0 {
                reinstate(tx, ctx, id, refunded);
            }
        }
        _ => {}
    }
}

/// Time-driven changes: issuer decisions on test evidence, chargebacks past their due date,
/// inquiries closing after 120 days. Returns true if anything happened.
pub(crate) fn settle(tx: &mut Tx<'_>, ctx: Ctx<'_>) -> bool {
    let now = tx.now;
    let due: Vec<(i64, String, Option<Decision>)> = tx
        .ms()
        .sales
        .disputes
        .iter()
        .filter_map(|d| match (d.status, d.decision) {
            (_, Some((decision, at))) if at <= now => Some((at, d.id.clone(), Some(decision))),
            (DisputeStatus::NeedsResponse, None) if d.due_by < now => {
                Some((d.due_by, d.id.clone(), Some(Decision::Lose)))
            }
            (DisputeStatus::WarningNeedsResponse | DisputeStatus::WarningUnderReview, None)
                if d.created + INQUIRY_CLOSES_AFTER <= now =>
            {
                Some((
                    d.created + INQUIRY_CLOSES_AFTER,
                    d.id.clone(),
                    Some(Decision::Win),
                ))
            }
            _ => None,
        })
        .collect();
    let mut due = due;
    due.sort();
    for (at, id, decision) in &due {
        tx.now = (*at).min(now);
        close(tx, ctx, id, *decision);
    }
    tx.now = now;
    !due.is_empty()
}

// ---- the API ----

fn scoped(tx: &mut Tx<'_>, scope: Option<&str>, id: &str) -> ApiResult<Dispute> {
    tx.ms()
        .sales
        .disputes
        .get(id)
        .filter(|d| d.account.as_deref() == scope)
        .cloned()
        .ok_or_else(|| ApiError::no_such("dispute", id, "dispute"))
}

pub(crate) fn list_disputes(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "charge",
        "created",
        "ending_before",
        "expand",
        "limit",
        "payment_intent",
        "starting_after",
    ])?;
    let req = PageRequest::parse(p)?;
    let charge = p.str("charge")?;
    let pi = p.str("payment_intent")?;
    let (from, to) = p.range("created")?.unwrap_or((i64::MIN, i64::MAX));
    let (items, has_more) = {
        let page = tx.ms().sales.disputes.page(&req, "dispute", |d| {
            d.account.as_deref() == call.scope
                && charge.is_none_or(|c| d.charge == c)
                && pi.is_none_or(|pi| d.payment_intent.as_deref() == Some(pi))
                && (from..=to).contains(&d.created)
        })?;
        let items: Vec<Dispute> = page.items.into_iter().cloned().collect();
        (items, page.has_more)
    };
    let client_id = &call.app.config.connect_client_id;
    let data = items
        .iter()
        .map(|d| dispute_json(tx, client_id, d))
        .collect();
    Ok(shapes::list("/v1/disputes", data, has_more))
}

pub(crate) fn retrieve_dispute(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let d = scoped(tx, call.scope, id)?;
    Ok(dispute_json(tx, &call.app.config.connect_client_id, &d))
}

/// `POST /v1/disputes/{id}`: `evidence[…]`, `metadata`, `submit` (true by default when evidence
/// is sent; `false` stages it).
pub(crate) fn update_dispute(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["evidence", "expand", "metadata", "submit"])?;
    let current = scoped(tx, call.scope, id)?;
    let mut next = current.clone();
    let mut allowed: Vec<&str> = TEXT_FIELDS.iter().chain(FILE_FIELDS).copied().collect();
    allowed.push("enhanced_evidence");
    let evidence = p.map("evidence", &allowed)?;
    let submit = p.bool("submit")?;
    let wants_change = evidence.is_some() || submit == Some(true);
    if wants_change && !current.status.awaits_response() {
        return Err(ApiError::invalid(format!(
            "This dispute is {} and its evidence has already been submitted or can no longer \
             be changed: evidence can only be updated while a dispute's status is \
             `needs_response` or `warning_needs_response`.",
            current.status.as_str()
        ))
        .param("evidence"));
    }
    if let Some(ev) = &evidence {
        if ev.contains("enhanced_evidence") {
            return Err(ApiError::bad_param(
                "evidence[enhanced_evidence]",
                "The chatpay sandbox does not model enhanced evidence (Visa Compelling Evidence \
                 3.0, compliance disputes).",
            ));
        }
        for k in FILE_FIELDS {
            if let Some(v) = ev.str(k)? {
                if v.is_empty() {
                    next.evidence.remove(*k);
                    continue;
                }
                return Err(ApiError::no_such_param("file", v, &ev.name(k)));
            }
        }
        for k in TEXT_FIELDS {
            if let Some(v) = ev.str(k)? {
                let limit = if LONG_FIELDS.contains(k) {
                    20_000
                } else {
                    5_000
                };
                if v.chars().count() > limit {
                    return Err(ApiError::bad_param(
                        &ev.name(k),
                        format!(
                            "Invalid string: {}... must be at most {limit} characters",
                            v.chars().take(20).collect::<String>()
                        ),
                    ));
                }
                if v.is_empty() {
                    next.evidence.remove(*k);
                } else {
                    next.evidence.insert((*k).to_owned(), v.to_owned());
                }
            }
        }
        let total: usize = next.evidence.values().map(|v| v.chars().count()).sum();
        if total > 150_000 {
            return Err(ApiError::bad_param(
                "evidence",
                "The combined character count of all evidence fields is limited to 150,000.",
            ));
        }
    }
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut next.metadata, "metadata")?;
    }
    // Stripe submits by default; `submit=false` only stages the evidence.
    let submitting = submit.unwrap_or(evidence.is_some());
    let now = tx.now;
    if submitting {
        next.submission_count += 1;
        next.past_due = now > next.due_by;
        next.status = if next.inquiry {
            DisputeStatus::WarningUnderReview
        } else {
            DisputeStatus::UnderReview
        };
        next.decision = match next.evidence.get("uncategorized_text").map(String::as_str) {
            Some(WINNING_EVIDENCE) => Some((Decision::Win, now + DECISION_AFTER)),
            Some(LOSING_EVIDENCE) => Some((Decision::Lose, now + DECISION_AFTER)),
            _ => None,
        };
        if !next.inquiry && next.countered_fee.is_none() {
            // Countering a chargeback costs the dispute countered fee (returned if won).
            let fee = dispute_txn(
                tx,
                &next,
                -dispute_fee(&next.currency),
                0,
                "fee",
                "Dispute countered fee".into(),
            );
            next.countered_fee = Some(fee);
        }
    }
    let client_id = &call.app.config.connect_client_id;
    let before = dispute_json(tx, client_id, &current);
    if let Some(slot) = tx.ms().sales.disputes.get_mut(id) {
        *slot = next.clone();
    }
    let after = dispute_json(tx, client_id, &next);
    if let Some(prev) = previous_attributes(&before, &after, &[]) {
        tx.emit(
            "charge.dispute.updated",
            next.account.as_deref(),
            after.clone(),
            Some(prev),
        );
    }
    Ok(after)
}

/// `POST /v1/disputes/{id}/close`: accepts the dispute; it is `lost`, irreversibly.
pub(crate) fn close_dispute(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let current = scoped(tx, call.scope, id)?;
    if current.status.closed() {
        return Err(ApiError::invalid(format!(
            "This dispute is already closed ({}).",
            current.status.as_str()
        ))
        .status(StatusCode::BAD_REQUEST));
    }
    if !current.status.awaits_response() {
        return Err(ApiError::invalid(format!(
            "This dispute is {}: its evidence was submitted and the issuer is reviewing it, so \
             it can no longer be accepted.",
            current.status.as_str()
        )));
    }
    let ctx = Ctx::of(call);
    close(tx, ctx, id, Some(Decision::Lose));
    let d = scoped(tx, call.scope, id)?;
    Ok(dispute_json(tx, ctx.client_id, &d))
}

pub(crate) fn list_warnings(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "charge",
        "created",
        "ending_before",
        "expand",
        "limit",
        "payment_intent",
        "starting_after",
    ])?;
    let req = PageRequest::parse(p)?;
    let charge = p.str("charge")?;
    let pi = p.str("payment_intent")?;
    let (from, to) = p.range("created")?.unwrap_or((i64::MIN, i64::MAX));
    let live = tx.livemode();
    let page = tx
        .ms()
        .sales
        .early_fraud_warnings
        .page(&req, "radar.early_fraud_warning", |w| {
            w.account.as_deref() == call.scope
                && charge.is_none_or(|c| w.charge == c)
                && pi.is_none_or(|pi| w.payment_intent.as_deref() == Some(pi))
                && (from..=to).contains(&w.created)
        })?;
    let data = page.items.iter().map(|w| warning_json(w, live)).collect();
    Ok(shapes::list(
        "/v1/radar/early_fraud_warnings",
        data,
        page.has_more,
    ))
}

pub(crate) fn retrieve_warning(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let live = tx.livemode();
    tx.ms()
        .sales
        .early_fraud_warnings
        .get(id)
        .filter(|w| w.account.as_deref() == call.scope)
        .map(|w| warning_json(w, live))
        .ok_or_else(|| ApiError::no_such("radar.early_fraud_warning", id, "early_fraud_warning"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_by_is_the_end_of_a_day() {
        // 2030-01-15 10:00 UTC -> 2030-01-22 23:59:59 UTC.
        let t = 1_894_665_600 + 10 * 3600;
        let due = end_of_day_after(t, 7);
        assert_eq!(due, 1_894_665_600 + 8 * DAY - 1);
        assert_eq!(due % DAY, DAY - 1);
    }

    #[test]
    fn fees_follow_the_currency() {
        assert_eq!(dispute_fee("usd"), 1500);
        assert_eq!(dispute_fee("jpy"), 15);
    }

    #[test]
    fn statuses() {
        assert!(DisputeStatus::NeedsResponse.awaits_response());
        assert!(!DisputeStatus::UnderReview.awaits_response());
        assert!(DisputeStatus::WarningClosed.closed());
        assert_eq!(
            serde_json::to_value(DisputeStatus::WarningNeedsResponse).unwrap(),
            "warning_needs_response"
        );
    }
}
