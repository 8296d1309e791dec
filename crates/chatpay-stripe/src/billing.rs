//! Subscriptions, invoices, the balance and payouts: Stripe's objects as chatpay's plain values.

use stripe_billing::invoice::ListInvoice;
use stripe_billing::subscription::{CancelSubscription, RetrieveSubscription, UpdateSubscription};
use stripe_core::balance::RetrieveForMyAccountBalance;
use stripe_core::balance_transaction::ListBalanceTransaction;
use stripe_core::payout::{ListPayout, RetrievePayout};
use stripe_types::Expandable;

use chatpay_core::billing::{
    Balance, BalanceAmount, Invoice, InvoiceStatus, Payout, PayoutStatus, Subscription,
    SubscriptionDiscount, SubscriptionItem, SubscriptionStatus,
};
use chatpay_core::domain::{Currency, Mode};

use super::client::StripeGateway;
use super::{GatewayError, PAGE_SIZE, SubscriptionChange};

/// Invoices read with a subscription: a year of monthly renewals and then some.
const INVOICES_READ: i64 = 24;

fn currency(c: &stripe_types::Currency) -> Result<Currency, GatewayError> {
    let code = c.to_string();
    Currency::parse(&code)
        .ok_or_else(|| GatewayError::Protocol(format!("unknown currency {code:?}")))
}

fn not_found_is_none<T>(r: Result<T, GatewayError>) -> Result<Option<T>, GatewayError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(GatewayError::Stripe { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn invoice(i: &stripe_shared::Invoice) -> Result<Invoice, GatewayError> {
    let status = i.status.as_ref().map_or("draft", |s| s.as_str()).to_owned();
    Ok(Invoice {
        id: i.id.as_ref().map(|x| x.to_string()).unwrap_or_default(),
        number: i.number.clone(),
        status: InvoiceStatus::parse(&status)
            .ok_or_else(|| GatewayError::Protocol(format!("invoice status {status:?}")))?,
        currency: currency(&i.currency)?,
        amount_due: i.amount_due,
        amount_paid: i.amount_paid,
        billing_reason: i.billing_reason.as_ref().map(|r| r.as_str().to_owned()),
        hosted_invoice_url: i.hosted_invoice_url.clone(),
        invoice_pdf: i.invoice_pdf.clone(),
        attempt_count: i64::try_from(i.attempt_count).unwrap_or(i64::MAX),
        next_payment_attempt: i.next_payment_attempt,
        created: i.created,
        paid_at: i.status_transitions.paid_at,
    })
}

fn payout(p: &stripe_shared::Payout) -> Result<Payout, GatewayError> {
    Ok(Payout {
        id: p.id.to_string(),
        amount: p.amount,
        currency: currency(&p.currency)?,
        status: PayoutStatus::parse(&p.status)
            .ok_or_else(|| GatewayError::Protocol(format!("payout status {:?}", p.status)))?,
        arrival_date: p.arrival_date,
        created: p.created,
        failure_code: p.failure_code.clone(),
        failure_message: p.failure_message.clone(),
        payments: Vec::new(),
    })
}

/// A subscription's discount with its coupon's terms; `None` unless both were expanded.
fn discount(d: &Expandable<stripe_shared::Discount>) -> Option<SubscriptionDiscount> {
    let Expandable::Object(d) = d else {
        return None;
    };
    let Some(Expandable::Object(c)) = &d.source.coupon else {
        return None;
    };
    Some(SubscriptionDiscount {
        coupon: c.id.to_string(),
        // Stripe's percent_off is a number with up to two decimals (12.5): kept in hundredths.
        percent_off_hundredths: c.percent_off.map(|p| (p * 100.0).round() as i64),
        amount_off: c.amount_off,
        duration: c.duration.as_str().to_owned(),
        end: d.end,
    })
}

impl StripeGateway {
    pub(crate) async fn read_subscription_now(
        &self,
        mode: Mode,
        account: &str,
        id: &str,
    ) -> Result<Option<Subscription>, GatewayError> {
        // Two reads (the subscription, then its invoices) are one snapshot only if the
        // subscription didn't move in between: Stripe changes an invoice and its subscription a
        // moment apart. Read again until it holds still (a few times at most).
        // The discount's coupon says how much it takes off and for how long (MRR).
        let req = RetrieveSubscription::new(id).expand(vec![
            "customer".to_owned(),
            "discounts.source.coupon".to_owned(),
        ]);
        let Some(mut s) = not_found_is_none(self.send_as(mode, account, &req).await)? else {
            return Ok(None);
        };
        let list = ListInvoice::new().subscription(id).limit(INVOICES_READ);
        let mut page = self.send_as(mode, account, &list).await?;
        for _ in 0..3 {
            let Some(again) = not_found_is_none(self.send_as(mode, account, &req).await)? else {
                return Ok(None);
            };
            let still = again.status == s.status
                && again.cancel_at_period_end == s.cancel_at_period_end
                && again
                    .latest_invoice
                    .as_ref()
                    .and_then(|i| i.id().as_ref().map(|x| x.to_string()))
                    == s.latest_invoice
                        .as_ref()
                        .and_then(|i| i.id().as_ref().map(|x| x.to_string()));
            s = again;
            if still {
                break;
            }
            page = self.send_as(mode, account, &list).await?;
        }
        let mut invoices = Vec::new();
        let mut email = match &s.customer {
            Expandable::Object(c) => c.email.clone(),
            Expandable::Id(_) => None,
        };
        for i in &page.data {
            if email.is_none() {
                email = i.customer_email.clone();
            }
            invoices.push(invoice(i)?);
        }
        invoices.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
        let items = s
            .items
            .data
            .iter()
            .map(|it| {
                let recurring = it.price.recurring.as_ref();
                SubscriptionItem {
                    id: Some(it.id.to_string()),
                    price: it.price.id.to_string(),
                    product: it.price.product.id().to_string(),
                    name: match &it.price.product {
                        Expandable::Object(p) => Some(p.name.clone()),
                        Expandable::Id(_) => None,
                    },
                    quantity: it.quantity.map_or(1, |q| i64::try_from(q).unwrap_or(1)),
                    unit_amount: it.price.unit_amount,
                    interval: recurring
                        .map_or("month", |r| r.interval.as_str())
                        .to_owned(),
                    interval_count: recurring
                        .map_or(1, |r| i64::try_from(r.interval_count).unwrap_or(1)),
                    current_period_start: it.current_period_start,
                    current_period_end: it.current_period_end,
                }
            })
            .collect();
        let status = s.status.as_str();
        Ok(Some(Subscription {
            id: s.id.to_string(),
            customer: s.customer.id().to_string(),
            customer_email: email,
            status: SubscriptionStatus::parse(status)
                .ok_or_else(|| GatewayError::Protocol(format!("subscription status {status:?}")))?,
            currency: currency(&s.currency)?,
            items,
            created: s.created,
            trial_end: s.trial_end,
            cancel_at_period_end: s.cancel_at_period_end,
            cancel_at: s.cancel_at,
            canceled_at: s.canceled_at,
            ended_at: s.ended_at,
            order: s.metadata.get("chatpay_order").cloned(),
            order_number: None,
            invoices,
            schedule: s.schedule.as_ref().map(|x| x.id().to_string()),
            discount: s.discounts.iter().find_map(discount),
        }))
    }

    pub(crate) async fn change_subscription_now(
        &self,
        mode: Mode,
        account: &str,
        id: &str,
        change: SubscriptionChange,
        key: &str,
    ) -> Result<(), GatewayError> {
        match change {
            SubscriptionChange::CancelNow => {
                self.post_as(mode, account, &CancelSubscription::new(id), key)
                    .await?;
            }
            SubscriptionChange::CancelAtPeriodEnd | SubscriptionChange::Resume => {
                let at_end = change == SubscriptionChange::CancelAtPeriodEnd;
                let req = UpdateSubscription::new(id).cancel_at_period_end(at_end);
                self.post_as(mode, account, &req, key).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn balance_now(
        &self,
        mode: Mode,
        account: &str,
    ) -> Result<Balance, GatewayError> {
        let b = self
            .send_as(mode, account, &RetrieveForMyAccountBalance::new())
            .await?;
        let amounts = |list: &[stripe_core::BalanceAmount]| {
            list.iter()
                .map(|a| {
                    Ok(BalanceAmount {
                        amount: a.amount,
                        currency: currency(&a.currency)?,
                    })
                })
                .collect::<Result<Vec<_>, GatewayError>>()
        };
        Ok(Balance {
            available: amounts(&b.available)?,
            pending: amounts(&b.pending)?,
        })
    }

    pub(crate) async fn payouts_now(
        &self,
        mode: Mode,
        account: &str,
        limit: i64,
    ) -> Result<Vec<Payout>, GatewayError> {
        let req = ListPayout::new().limit(limit.clamp(1, PAGE_SIZE));
        let page = self.send_as(mode, account, &req).await?;
        page.data.iter().map(payout).collect()
    }

    pub(crate) async fn payout_now(
        &self,
        mode: Mode,
        account: &str,
        id: &str,
    ) -> Result<Option<Payout>, GatewayError> {
        let req = RetrievePayout::new(id);
        let Some(p) = not_found_is_none(self.send_as(mode, account, &req).await)? else {
            return Ok(None);
        };
        let mut out = payout(&p)?;
        let mut after: Option<String> = None;
        loop {
            let mut req = ListBalanceTransaction::new()
                .payout(id)
                .type_("charge")
                .limit(PAGE_SIZE);
            if let Some(a) = &after {
                req = req.starting_after(a.clone());
            }
            let page = self.send_as(mode, account, &req).await?;
            out.payments.extend(
                page.data
                    .iter()
                    .filter_map(|t| t.source.as_ref().map(|s| s.id().to_string())),
            );
            match (page.has_more, page.data.last()) {
                (true, Some(last)) => after = Some(last.id.to_string()),
                _ => break,
            }
        }
        Ok(Some(out))
    }
}
