//! Subscription schedules, from Stripe's "Subscription schedules" guide and API reference:
//! `POST /v1/subscription_schedules` (`from_subscription`), `POST /v1/subscription_schedules/{id}`
//! (`phases`, `end_behavior`), `…/release`, `…/cancel`, `GET` one and the list.
//!
//! - `from_subscription` makes a schedule of the subscription as it is: one phase for its current
//!   period, `end_behavior=release`, `status=active`; the subscription's `schedule` names it.
//! - Phases follow one another: the first keeps its start (the current phase's start can't
//!   move), each later phase starts where the one before ends, and each has an `end_date` or
//!   `iterations` (billing periods of its items' interval; 1 when neither is given for the last).
//! - When a period ends at a phase's end, the next phase's items replace the subscription's
//!   items before the renewal is invoiced (a downgrade at the period's end); after the last
//!   phase the schedule is `released` (the subscription goes on) or, with `end_behavior=cancel`,
//!   the subscription is canceled and the schedule `completed`.
//! - `release` leaves the subscription as it is; `cancel` cancels the subscription now.
//! - The customer portal uses a schedule for changes its configuration's
//!   `schedule_at_period_end` conditions hold for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::Call;
use super::billing::{SubItem, Subscription};
use super::checkout::Ctx;
use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::ids;
use super::plans;
use super::rules;
use super::shapes;
use super::state::{PageRequest, Tx, keyed_by_id, previous_attributes};
use super::subscriptions as subs;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Phase {
    pub start: i64,
    pub end: i64,
    pub items: Vec<SubItem>,
    pub proration_behavior: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Schedule {
    /// `sub_sched_…`
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub customer: String,
    pub subscription: String,
    /// `not_started`, `active`, `completed`, `released`, `canceled`.
    pub status: String,
    /// `release` or `cancel`.
    pub end_behavior: String,
    pub phases: Vec<Phase>,
    pub released_at: Option<i64>,
    pub released_subscription: Option<String>,
    pub canceled_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub test_clock: Option<String>,
    pub currency: String,
}

keyed_by_id!(Schedule);

impl Schedule {
    fn open(&self) -> bool {
        matches!(self.status.as_str(), "not_started" | "active")
    }
}

pub(crate) fn schedule_json(s: &Schedule, live: bool) -> Value {
    let phases: Vec<Value> = s
        .phases
        .iter()
        .map(|p| {
            json!({
                "add_invoice_items": [],
                "application_fee_percent": null,
                "automatic_tax": null,
                "billing_cycle_anchor": null,
                "billing_thresholds": null,
                "collection_method": null,
                "currency": s.currency,
                "default_payment_method": null,
                "default_tax_rates": [],
                "description": null,
                "discounts": [],
                "end_date": p.end,
                "invoice_settings": null,
                "items": p.items.iter().map(|i| json!({
                    "billing_thresholds": null,
                    "discounts": [],
                    "metadata": {},
                    "plan": i.price.id,
                    "price": i.price.id,
                    "quantity": i.quantity,
                    "tax_rates": [],
                })).collect::<Vec<_>>(),
                "metadata": {},
                "on_behalf_of": null,
                "proration_behavior": p.proration_behavior,
                "start_date": p.start,
                "transfer_data": null,
                "trial_end": null,
            })
        })
        .collect();
    let current = s
        .open()
        .then(|| s.phases.first())
        .flatten()
        .map(|p| json!({ "end_date": p.end, "start_date": p.start }));
    json!({
        "id": s.id,
        "object": "subscription_schedule",
        "application": null,
        "billing_mode": {
            "flexible": { "proration_discounts": "included" },
            "type": "flexible",
            "updated_at": s.created,
        },
        "canceled_at": s.canceled_at,
        "completed_at": s.completed_at,
        "created": s.created,
        "current_phase": current,
        "customer": s.customer,
        "customer_account": null,
        "default_settings": {
            "application_fee_percent": null,
            "automatic_tax": { "disabled_reason": null, "enabled": false, "liability": null },
            "billing_cycle_anchor": "automatic",
            "billing_thresholds": null,
            "collection_method": "charge_automatically",
            "default_payment_method": null,
            "description": null,
            "invoice_settings": {
                "account_tax_ids": null, "custom_fields": null, "days_until_due": null,
                "description": null, "footer": null, "issuer": { "type": "self" },
            },
            "on_behalf_of": null,
            "transfer_data": null,
        },
        "end_behavior": s.end_behavior,
        "livemode": live,
        "metadata": s.metadata,
        "pause_schedules": null,
        "phases": phases,
        "released_at": s.released_at,
        "released_subscription": s.released_subscription,
        "status": s.status,
        "subscription": if s.open() { Some(s.subscription.clone()) } else { None },
        "test_clock": s.test_clock,
    })
}

fn emit(tx: &mut Tx<'_>, kind: &str, id: &str, prev: Option<Value>) {
    let live = tx.livemode();
    if let Some(s) = tx.ms().billing.schedules.get(id).cloned() {
        tx.emit(kind, s.account.as_deref(), schedule_json(&s, live), prev);
    }
}

fn set_sub_schedule(tx: &mut Tx<'_>, ctx: Ctx<'_>, sub: &str, schedule: Option<String>) {
    subs::update_subscription(tx, ctx, sub, |s| s.schedule = schedule);
}

/// A schedule of the subscription as it is (one phase: its current period).
fn from_subscription(tx: &mut Tx<'_>, ctx: Ctx<'_>, sub: &Subscription) -> String {
    let s = Schedule {
        id: format!("sub_sched_1{}", ids::random(23)),
        account: sub.account.clone(),
        created: plans::sub_now(tx, sub),
        customer: sub.customer.clone(),
        subscription: sub.id.clone(),
        status: "active".into(),
        end_behavior: "release".into(),
        phases: vec![Phase {
            start: sub.current_period_start,
            end: sub.current_period_end,
            items: sub.items.clone(),
            proration_behavior: "create_prorations".into(),
        }],
        released_at: None,
        released_subscription: None,
        canceled_at: None,
        completed_at: None,
        metadata: BTreeMap::new(),
        test_clock: sub.test_clock.clone(),
        currency: sub.currency.clone(),
    };
    let id = s.id.clone();
    let seq = tx.st.seq();
    tx.ms().billing.schedules.insert(seq, s);
    emit(tx, "subscription_schedule.created", &id, None);
    set_sub_schedule(tx, ctx, &sub.id, Some(id.clone()));
    id
}

/// Whether the portal's `schedule_at_period_end` conditions hold for replacing `old` by `new`.
pub(crate) fn waits_for_period_end(conditions: &[String], old: &SubItem, new: &SubItem) -> bool {
    let days = |i: &SubItem| {
        i.price.recurring.as_ref().map_or(0, |r| {
            let unit = match r.interval.as_str() {
                "day" => 1,
                "week" => 7,
                "month" => 30,
                _ => 365,
            };
            unit * i64::from(r.interval_count.max(1))
        })
    };
    let per_day = |i: &SubItem| i.amount() as f64 / days(i).max(1) as f64;
    conditions.iter().any(|c| match c.as_str() {
        "decreasing_item_amount" => per_day(new) < per_day(old),
        "shortening_interval" => days(new) < days(old),
        _ => false,
    })
}

/// Schedules `items` for when the current period ends (the portal's downgrades).
pub(crate) fn change_at_period_end(
    tx: &mut Tx<'_>,
    ctx: Ctx<'_>,
    sub_id: &str,
    items: Vec<SubItem>,
) -> ApiResult<()> {
    let Some(sub) = tx.ms().billing.subscriptions.get(sub_id).cloned() else {
        return Err(ApiError::no_such("subscription", sub_id, "subscription"));
    };
    let id = match &sub.schedule {
        Some(id) => id.clone(),
        None => from_subscription(tx, ctx, &sub),
    };
    let live = tx.livemode();
    let Some(before) = tx.ms().billing.schedules.get(&id).cloned() else {
        return Ok(());
    };
    let end = sub.current_period_end;
    let next_end = items
        .first()
        .and_then(|i| i.price.recurring.as_ref())
        .map_or(end, |r| r.period_end(end));
    let mut next = before.clone();
    next.phases.retain(|p| p.start < end);
    if let Some(last) = next.phases.last_mut() {
        last.end = end;
    }
    next.phases.push(Phase {
        start: end,
        end: next_end,
        items,
        proration_behavior: "create_prorations".into(),
    });
    next.end_behavior = "release".into();
    let prev = previous_attributes(
        &schedule_json(&before, live),
        &schedule_json(&next, live),
        &[],
    );
    if let Some(slot) = tx.ms().billing.schedules.get_mut(&id) {
        *slot = next;
    }
    emit(tx, "subscription_schedule.updated", &id, prev);
    Ok(())
}

/// At the end of a subscription's period (`period_end`), before its renewal is invoiced: moves
/// its schedule to the next phase, or ends the schedule after its last phase. Returns true when
/// the subscription was canceled by the schedule.
pub(crate) fn at_period_end(tx: &mut Tx<'_>, ctx: Ctx<'_>, sub_id: &str, period_end: i64) -> bool {
    let Some(id) = tx
        .ms()
        .billing
        .subscriptions
        .get(sub_id)
        .and_then(|s| s.schedule.clone())
    else {
        return false;
    };
    let Some(s) = tx.ms().billing.schedules.get(&id).cloned() else {
        return false;
    };
    if !s.open() {
        return false;
    }
    let live = tx.livemode();
    let before = schedule_json(&s, live);
    let mut next = s.clone();
    next.phases.retain(|p| p.end > period_end);
    let now = tx.now;
    match next.phases.first().cloned() {
        Some(phase) => {
            let items = phase.items.clone();
            subs::update_subscription(tx, ctx, sub_id, |x| x.items = items);
            let after = schedule_json(&next, live);
            if let Some(slot) = tx.ms().billing.schedules.get_mut(&id) {
                *slot = next;
            }
            let prev = previous_attributes(&before, &after, &[]);
            emit(tx, "subscription_schedule.updated", &id, prev);
            false
        }
        None if s.end_behavior == "cancel" => {
            if let Some(slot) = tx.ms().billing.schedules.get_mut(&id) {
                slot.status = "completed".into();
                slot.completed_at = Some(now);
            }
            emit(tx, "subscription_schedule.completed", &id, None);
            set_sub_schedule(tx, ctx, sub_id, None);
            subs::cancel_now(tx, ctx, sub_id, "cancellation_requested");
            true
        }
        None => {
            release(tx, ctx, &id);
            false
        }
    }
}

fn release(tx: &mut Tx<'_>, ctx: Ctx<'_>, id: &str) {
    let now = tx.now;
    let Some(sub) = tx.ms().billing.schedules.get_mut(id).map(|s| {
        s.status = "released".into();
        s.released_at = Some(now);
        s.released_subscription = Some(s.subscription.clone());
        s.subscription.clone()
    }) else {
        return;
    };
    emit(tx, "subscription_schedule.released", id, None);
    set_sub_schedule(tx, ctx, &sub, None);
}

// ---- the API ----

fn scoped(tx: &mut Tx<'_>, scope: Option<&str>, id: &str) -> ApiResult<Schedule> {
    tx.ms()
        .billing
        .schedules
        .get(id)
        .filter(|s| s.account.as_deref() == scope)
        .cloned()
        .ok_or_else(|| ApiError::no_such("subscription_schedule", id, "schedule"))
}

fn not_open(s: &Schedule, action: &str) -> ApiError {
    ApiError::invalid(format!(
        "You cannot {action} a subscription schedule that is `{}`.",
        s.status
    ))
}

pub(crate) fn create(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    for k in ["customer", "phases", "start_date", "default_settings"] {
        if p.contains(k) {
            return Err(ApiError::bad_param(
                k,
                "The chatpay sandbox creates subscription schedules `from_subscription` only; \
                 add phases with an update.",
            ));
        }
    }
    p.only(&["expand", "from_subscription", "metadata"])?;
    let sub_id = p.required("from_subscription")?.to_owned();
    let sub = tx
        .ms()
        .billing
        .subscriptions
        .get(&sub_id)
        .filter(|s| s.account.as_deref() == call.scope)
        .cloned()
        .ok_or_else(|| ApiError::no_such_param("subscription", &sub_id, "from_subscription"))?;
    if sub.status.ended() {
        return Err(ApiError::bad_param(
            "from_subscription",
            format!("The subscription {sub_id} is canceled: a schedule can't manage it."),
        ));
    }
    if let Some(existing) = &sub.schedule {
        return Err(ApiError::bad_param(
            "from_subscription",
            format!(
                "You cannot migrate a subscription that is already attached to a schedule: \
                 `{existing}`."
            ),
        ));
    }
    let ctx = super::checkout::Ctx::of(call);
    let id = from_subscription(tx, ctx, &sub);
    if let Some(m) = p.metadata("metadata")?
        && let Some(s) = tx.ms().billing.schedules.get_mut(&id)
    {
        m.apply(&mut s.metadata, "metadata")?;
    }
    let s = scoped(tx, call.scope, &id)?;
    Ok(schedule_json(&s, tx.livemode()))
}

pub(crate) fn update(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&[
        "end_behavior",
        "expand",
        "metadata",
        "phases",
        "proration_behavior",
    ])?;
    let current = scoped(tx, call.scope, id)?;
    if !current.open() {
        return Err(not_open(&current, "update"));
    }
    let mut next = current.clone();
    if let Some(e) = p.str("end_behavior")? {
        next.end_behavior = rules::one_of("end_behavior", e, &["cancel", "release"])?.to_owned();
    }
    if let Some(m) = p.metadata("metadata")? {
        m.apply(&mut next.metadata, "metadata")?;
    }
    plans::Proration::parse("proration_behavior", p.str("proration_behavior")?)?;
    if let Some(phases) = p.items("phases")? {
        if phases.is_empty() {
            return Err(ApiError::missing("phases"));
        }
        let sub = tx
            .ms()
            .billing
            .subscriptions
            .get(&current.subscription)
            .cloned()
            .ok_or_else(|| ApiError::no_such("subscription", &current.subscription, "id"))?;
        let mut out: Vec<Phase> = Vec::new();
        let n = phases.len();
        for (k, ph) in phases.iter().enumerate() {
            ph.only(&[
                "end_date",
                "items",
                "iterations",
                "metadata",
                "proration_behavior",
                "start_date",
            ])?;
            let start = match (k, ph.int("start_date")?) {
                (0, Some(t)) if t != current.phases[0].start => {
                    return Err(ApiError::bad_param(
                        &ph.name("start_date"),
                        "You can not modify the start date of the current phase.",
                    ));
                }
                (0, _) => current.phases[0].start,
                (_, Some(t)) if Some(t) != out.last().map(|p| p.end) => {
                    return Err(ApiError::bad_param(
                        &ph.name("start_date"),
                        "The start date of a phase must be the end date of the phase before it.",
                    ));
                }
                _ => out.last().map_or(current.phases[0].start, |p| p.end),
            };
            let Some(item_params) = ph.items("items")?.filter(|i| !i.is_empty()) else {
                return Err(ApiError::missing(&ph.name("items")));
            };
            let mut items = Vec::new();
            for it in &item_params {
                it.only(&["metadata", "price", "quantity"])?;
                let price_id = it.required("price")?;
                let (price, name) =
                    plans::recurring_price(tx, call.scope, price_id, &it.name("price"))?;
                // An item of the same price keeps its subscription item.
                let si = sub
                    .items
                    .iter()
                    .find(|i| i.price.id == price.id)
                    .map(|i| i.id.clone())
                    .unwrap_or_else(ids::subscription_item);
                let quantity = match it.int("quantity")? {
                    None => 1,
                    Some(q) if q >= 1 => u64::try_from(q).unwrap_or(1),
                    Some(_) => {
                        return Err(ApiError::bad_param(
                            &it.name("quantity"),
                            "This value must be greater than or equal to 1.",
                        ));
                    }
                };
                items.push(SubItem {
                    id: si,
                    created: start,
                    price,
                    quantity,
                    product_name: name,
                });
            }
            plans::check_items(&items, &ph.name("items"))?;
            if items[0].price.currency != current.currency {
                return Err(ApiError::bad_param(
                    &ph.name("items"),
                    "All phases of a schedule must use the same currency.",
                ));
            }
            let end = match (ph.int("end_date")?, ph.int("iterations")?) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::bad_param(
                        &ph.name("end_date"),
                        "You may only specify one of these parameters: end_date, iterations.",
                    ));
                }
                (Some(t), None) if t <= start => {
                    return Err(ApiError::bad_param(
                        &ph.name("end_date"),
                        "The end date of a phase must be after its start date.",
                    ));
                }
                (Some(t), None) => t,
                (None, it) => {
                    if it.is_none() && k + 1 < n {
                        return Err(ApiError::bad_param(
                            &ph.name("end_date"),
                            "Every phase but the last needs an `end_date` or `iterations`.",
                        ));
                    }
                    let mut t = start;
                    if let Some(r) = items[0].price.recurring.clone() {
                        for _ in 0..it.unwrap_or(1).clamp(1, 1000) {
                            t = r.period_end(t);
                        }
                    }
                    t
                }
            };
            let pb = ph
                .str("proration_behavior")?
                .map(|v| {
                    rules::one_of(
                        &ph.name("proration_behavior"),
                        v,
                        &["always_invoice", "create_prorations", "none"],
                    )
                })
                .transpose()?
                .unwrap_or("create_prorations")
                .to_owned();
            out.push(Phase {
                start,
                end,
                items,
                proration_behavior: pb,
            });
        }
        if out[0]
            .items
            .iter()
            .map(|i| (&i.price.id, i.quantity))
            .ne(sub.items.iter().map(|i| (&i.price.id, i.quantity)))
        {
            return Err(ApiError::bad_param(
                "phases[0][items]",
                "The chatpay sandbox changes a schedule's current phase only at its end: keep \
                 the subscription's items in the first phase, and change them in the next one \
                 (or update the subscription itself).",
            ));
        }
        if out[0].end != sub.current_period_end {
            return Err(ApiError::bad_param(
                "phases[0][end_date]",
                "The chatpay sandbox moves between phases at the end of a billing period: the \
                 first phase must end when the subscription's current period ends.",
            ));
        }
        next.phases = out;
    }
    let live = tx.livemode();
    let before = schedule_json(&current, live);
    let after = schedule_json(&next, live);
    if let Some(slot) = tx.ms().billing.schedules.get_mut(id) {
        *slot = next;
    }
    if let Some(prev) = previous_attributes(&before, &after, &[]) {
        emit(tx, "subscription_schedule.updated", id, Some(prev));
    }
    Ok(after)
}

pub(crate) fn release_api(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand", "preserve_cancel_date"])?;
    let current = scoped(tx, call.scope, id)?;
    if !current.open() {
        return Err(not_open(&current, "release"));
    }
    release(tx, super::checkout::Ctx::of(call), id);
    let s = scoped(tx, call.scope, id)?;
    Ok(schedule_json(&s, tx.livemode()))
}

pub(crate) fn cancel_api(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand", "invoice_now", "prorate"])?;
    let current = scoped(tx, call.scope, id)?;
    if !current.open() {
        return Err(not_open(&current, "cancel"));
    }
    let ctx = super::checkout::Ctx::of(call);
    let now = tx.now;
    if let Some(s) = tx.ms().billing.schedules.get_mut(id) {
        s.status = "canceled".into();
        s.canceled_at = Some(now);
    }
    emit(tx, "subscription_schedule.canceled", id, None);
    set_sub_schedule(tx, ctx, &current.subscription, None);
    subs::cancel_now(tx, ctx, &current.subscription, "cancellation_requested");
    let s = scoped(tx, call.scope, id)?;
    Ok(schedule_json(&s, tx.livemode()))
}

pub(crate) fn retrieve(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    id: &str,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand"])?;
    let s = scoped(tx, call.scope, id)?;
    Ok(schedule_json(&s, tx.livemode()))
}

pub(crate) fn list(tx: &mut Tx<'_>, call: &Call<'_>, p: &Params<'_>) -> ApiResult<Value> {
    p.only(&[
        "customer",
        "ending_before",
        "expand",
        "limit",
        "scheduled",
        "starting_after",
    ])?;
    let req = PageRequest::parse(p)?;
    let customer = p.str("customer")?;
    let live = tx.livemode();
    let page = tx
        .ms()
        .billing
        .schedules
        .page(&req, "subscription_schedule", |s| {
            s.account.as_deref() == call.scope && customer.is_none_or(|c| s.customer == c)
        })?;
    let data = page.items.iter().map(|s| schedule_json(s, live)).collect();
    Ok(shapes::list(
        "/v1/subscription_schedules",
        data,
        page.has_more,
    ))
}
