//! Carrying out the billing calls (re-reading a subscription or payout from Stripe, reading
//! stored subscriptions, cancelling and resuming, the balance and payout dates) and the billing
//! parts of the HTTP API (subscriptions, entitlements, balance, payouts).
//!
//! Like orders, a subscription's stored state is a fresh read of Stripe's objects: a re-read
//! returns the stored subscription with its version and the subscription as Stripe holds it now;
//! the flow decides what to tell and stores the change on that version.

use chrono::NaiveDate;

use chatpay_core::billing::{
    Balance, Entitlement, Payout, Subscription, SubscriptionChange, SubscriptionStatus,
    entitlements, funds_upcoming, paid_on_day,
};
use chatpay_core::domain::{Mode, ProjectId, now_millis};
use chatpay_core::flows::{CallError, CallOutput, PayoutAsk, PayoutsAnswer, SubscriptionAsk};
use chatpay_core::metrics::{SubscriptionMetrics, subscription_metrics};
use chatpay_core::orders::{Order, OrderStatus};
use chatpay_core::rules;
use chatpay_store::{DynStore, OrderFilter, ProjectRecord, SubscriptionFilter, SubscriptionRecord};
use chatpay_stripe::GatewayError;

use super::operations::StripeWrite;
use super::orders::{OrderCtx, gateway_error, order_of};
use super::{ChatError, Engine, catalog_sync};

fn store_error(e: chatpay_store::StoreError) -> CallError {
    tracing::error!(error = %e, "billing storage failed");
    CallError {
        message: "the subscriptions could not be read".to_owned(),
        code: None,
    }
}

fn stripe_error(e: GatewayError) -> CallError {
    tracing::warn!(error = %e, "Stripe call for billing failed");
    CallError {
        message: e.user_message(),
        code: e.code().map(str::to_owned),
    }
}

/// A stored subscription as the core's value.
pub(crate) fn subscription_of(record: &SubscriptionRecord) -> Result<Subscription, CallError> {
    serde_json::from_str(&record.data).map_err(|e| {
        tracing::error!(subscription = %record.id, error = %e, "unreadable stored subscription");
        CallError {
            message: "a stored subscription could not be read".to_owned(),
            code: None,
        }
    })
}

/// Subscriptions listed for one answer or page.
const LISTED: i64 = 1000;

/// Every stored subscription of a project in a mode, newest first, read `LISTED` at a time
/// (the subscription figures count them all).
async fn all_subscriptions(
    store: &DynStore,
    project: &ProjectId,
    mode: Mode,
) -> Result<Vec<Subscription>, CallError> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let filter = SubscriptionFilter {
            before,
            limit: LISTED,
            ..SubscriptionFilter::default()
        };
        let page = store
            .subscriptions(project, mode, &filter)
            .await
            .map_err(store_error)?;
        before = page.last().map(|r| (r.created_at, r.id.clone()));
        let full = page.len() as i64 == LISTED;
        for r in &page {
            all.push(subscription_of(r)?);
        }
        if !full {
            return Ok(all);
        }
    }
}

impl OrderCtx<'_> {
    /// Re-reads a subscription from Stripe: the stored one (if any), its version (0: none
    /// yet), and what Stripe holds now, with product names from the synced catalog.
    pub async fn refresh_subscription(&self, id: &str) -> Result<CallOutput, CallError> {
        let stored = self.store.subscription(id).await.map_err(store_error)?;
        if let Some(r) = &stored
            && (r.project_id != *self.project || r.mode != self.mode)
        {
            // Another project's (or the other mode's): never mixed.
            return Ok(CallOutput::SubscriptionRefreshed {
                before: None,
                after: None,
                version: 0,
            });
        }
        let before = stored.as_ref().map(subscription_of).transpose()?;
        let after = self
            .gateway
            .read_subscription(self.mode, self.account_id()?, id)
            .await
            .map_err(stripe_error)?;
        let after = match after {
            Some(mut s) => {
                let catalog = catalog_sync::read(self.store, self.project, self.mode, None).await?;
                for item in &mut s.items {
                    if item.name.is_none() {
                        item.name = catalog
                            .shown
                            .iter()
                            .find(|p| p.product.id == item.product)
                            .map(|p| p.product.name.clone());
                    }
                }
                if s.customer_email.is_none() {
                    s.customer_email = before.as_ref().and_then(|b| b.customer_email.clone());
                }
                if let Some(order) = &s.order {
                    s.order_number = self
                        .store
                        .order_by(chatpay_store::OrderKey::Id(order))
                        .await
                        .map_err(store_error)?
                        .filter(|r| r.project_id == *self.project && r.mode == self.mode)
                        .map(|r| r.number);
                }
                Some(Box::new(s))
            }
            None => None,
        };
        Ok(CallOutput::SubscriptionRefreshed {
            version: stored.as_ref().map_or(0, |r| r.version),
            before: before.map(Box::new),
            after,
        })
    }

    pub async fn list_subscriptions(&self, ask: &SubscriptionAsk) -> Result<CallOutput, CallError> {
        if let SubscriptionAsk::Invoices { subscription, .. } = ask {
            let found = self
                .store
                .subscription(subscription)
                .await
                .map_err(store_error)?
                .filter(|r| r.project_id == *self.project && r.mode == self.mode);
            let subs = found
                .iter()
                .map(subscription_of)
                .collect::<Result<_, _>>()?;
            return Ok(CallOutput::Subscriptions(subs));
        }
        let email = match ask {
            SubscriptionAsk::Customer { email } | SubscriptionAsk::Change { email, .. } => {
                Some(email.clone())
            }
            _ => None,
        };
        let filter = SubscriptionFilter {
            customer_email: email,
            limit: LISTED,
            ..SubscriptionFilter::default()
        };
        let records = self
            .store
            .subscriptions(self.project, self.mode, &filter)
            .await
            .map_err(store_error)?;
        let subs = records
            .iter()
            .map(subscription_of)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CallOutput::Subscriptions(subs))
    }

    /// Every stored subscription, for the subscription figures.
    pub async fn subscription_metrics(&self) -> Result<CallOutput, CallError> {
        all_subscriptions(self.store, self.project, self.mode)
            .await
            .map(CallOutput::Subscriptions)
    }

    pub async fn change_subscription(
        &self,
        id: &str,
        change: SubscriptionChange,
        key: &str,
    ) -> Result<CallOutput, CallError> {
        self.gateway
            .change_subscription(self.mode, self.account_id()?, id, change, key)
            .await
            .map_err(stripe_error)?;
        Ok(CallOutput::Done)
    }

    pub async fn refresh_payout(&self, id: &str) -> Result<CallOutput, CallError> {
        let p = self
            .gateway
            .payout(self.mode, self.account_id()?, id)
            .await
            .map_err(stripe_error)?;
        Ok(CallOutput::PayoutRefreshed(p.map(Box::new)))
    }

    /// The balance, recent payouts, and when paid orders' money becomes available.
    pub async fn read_payouts(&self, ask: &PayoutAsk) -> Result<CallOutput, CallError> {
        let account = self.account_id()?;
        let balance = self
            .gateway
            .balance(self.mode, account)
            .await
            .map_err(stripe_error)?;
        let payouts = self
            .gateway
            .payouts(self.mode, account, 20)
            .await
            .map_err(stripe_error)?;
        let paid = self.paid_orders(now_millis() - 90 * 86_400_000).await?;
        let upcoming = funds_upcoming(&paid, now_millis() / 1000);
        let paid_on = match ask {
            PayoutAsk::PaidOn { day } => NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map(|d| paid_on_day(&paid, d))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let first_payout = !payouts
            .iter()
            .any(|p| p.status == chatpay_core::billing::PayoutStatus::Paid);
        Ok(CallOutput::Payouts(Box::new(PayoutsAnswer {
            balance,
            payouts,
            upcoming,
            paid_on,
            first_payout,
        })))
    }

    async fn paid_orders(&self, since_ms: i64) -> Result<Vec<Order>, CallError> {
        let filter = OrderFilter {
            since: Some(since_ms),
            limit: 1000,
            ..OrderFilter::default()
        };
        let records = self
            .store
            .orders(self.project, self.mode, &filter)
            .await
            .map_err(store_error)?;
        Ok(records
            .iter()
            .filter_map(|r| order_of(r).ok())
            .filter(|o| o.status.was_paid())
            .collect())
    }
}

/// A page of subscriptions for the HTTP API.
pub struct SubscriptionPage {
    pub items: Vec<Subscription>,
    pub has_more: bool,
}

fn internal(e: CallError) -> ChatError {
    ChatError::Internal(anyhow::anyhow!(e.message))
}

impl Engine {
    /// The project's connected account (charges need not be enabled to read or cancel).
    pub(crate) async fn billing_account(&self, p: &ProjectRecord) -> Result<String, ChatError> {
        Self::require_backend(p)?;
        match self.stripe_connection(p).await? {
            Some((_, account)) => Ok(account.id),
            None => Err(ChatError::Conflict {
                code: "stripe_not_connected",
                message: "Connect Stripe first: say \"add payments\" in the chat, or use Integrations -> Stripe -> Connect.".to_owned(),
            }),
        }
    }

    /// The project's subscription figures in its current mode: MRR now, and what started,
    /// ended and churned in `[since, until)` (milliseconds).
    pub async fn subscription_metrics(
        &self,
        p: &ProjectRecord,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<SubscriptionMetrics, ChatError> {
        Self::require_backend(p)?;
        let subs = all_subscriptions(&self.inner.store, &p.id, p.mode)
            .await
            .map_err(internal)?;
        Ok(subscription_metrics(&subs, now_millis(), since, until))
    }

    /// The project's subscriptions in its current mode, newest first.
    pub async fn subscriptions(
        &self,
        p: &ProjectRecord,
        status: Option<SubscriptionStatus>,
        customer: Option<&str>,
        limit: i64,
        starting_after: Option<&str>,
    ) -> Result<SubscriptionPage, ChatError> {
        Self::require_backend(p)?;
        let before = match starting_after {
            Some(id) => {
                let r = self
                    .inner
                    .store
                    .subscription(id)
                    .await?
                    .filter(|r| r.project_id == p.id && r.mode == p.mode)
                    .ok_or_else(|| {
                        ChatError::NotFound(format!("no subscription {id} in this project"))
                    })?;
                Some((r.created_at, r.id))
            }
            None => None,
        };
        let filter = SubscriptionFilter {
            status,
            customer_email: customer.map(str::to_owned),
            before,
            limit: limit + 1,
        };
        let records = self
            .inner
            .store
            .subscriptions(&p.id, p.mode, &filter)
            .await?;
        let mut items = records
            .iter()
            .map(subscription_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let has_more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        Ok(SubscriptionPage { items, has_more })
    }

    /// One of the project's subscriptions, in its current mode.
    pub async fn subscription(
        &self,
        p: &ProjectRecord,
        id: &str,
    ) -> Result<Subscription, ChatError> {
        let r = self.subscription_record(p, id).await?;
        subscription_of(&r).map_err(internal)
    }

    pub(crate) async fn subscription_record(
        &self,
        p: &ProjectRecord,
        id: &str,
    ) -> Result<SubscriptionRecord, ChatError> {
        Self::require_backend(p)?;
        self.inner
            .store
            .subscription(id)
            .await?
            .filter(|r| r.project_id == p.id && r.mode == p.mode)
            .ok_or_else(|| {
                ChatError::NotFound(format!(
                    "no subscription {id} in this project's {} mode",
                    p.mode.as_str()
                ))
            })
    }

    /// Cancels (now or at the period's end) or resumes a subscription on Stripe; the change
    /// reaches the store through Stripe's event, like every other. `key` makes a retried
    /// request act once.
    pub async fn change_subscription(
        &self,
        p: &ProjectRecord,
        id: &str,
        change: SubscriptionChange,
        key: Option<&str>,
    ) -> Result<Subscription, ChatError> {
        let record = self.subscription_record(p, id).await?;
        let before = subscription_of(&record).map_err(internal)?;
        rules::subscription_change(&before, change)?;
        Self::require_backend(p)?;
        let account = self.billing_account(p).await?;
        // The caller's key makes a retried request act once; without one, the same change of
        // the same stored version is one request (a cancel after a resume is a new one).
        let key = match key {
            Some(k) => format!("chatpay:{}:sub:{id}:{change:?}:key:{k}", p.id),
            None => format!("chatpay:{}:sub:{id}:{change:?}:v{}", p.id, record.version),
        };
        let write = StripeWrite::SubscriptionChange {
            account: account.clone(),
            subscription: id.to_owned(),
            change,
        };
        self.stripe_write(p, &key, &write, Vec::new()).await?;
        let mut after = self
            .inner
            .gateway
            .read_subscription(p.mode, &account, id)
            .await
            .map_err(gateway_error)?
            .unwrap_or(before.clone());
        for item in &mut after.items {
            if let Some(b) = before.items.iter().find(|b| b.price == item.price) {
                item.name = item.name.take().or(b.name.clone());
            }
        }
        after.customer_email = after.customer_email.or(before.customer_email);
        Ok(after)
    }

    /// What `email` may access now in the project's current mode.
    pub async fn entitlements(
        &self,
        p: &ProjectRecord,
        email: &str,
    ) -> Result<Vec<Entitlement>, ChatError> {
        Self::require_backend(p)?;
        let subs = self
            .inner
            .store
            .subscriptions(
                &p.id,
                p.mode,
                &SubscriptionFilter {
                    customer_email: Some(email.to_owned()),
                    limit: LISTED,
                    ..SubscriptionFilter::default()
                },
            )
            .await?
            .iter()
            .map(subscription_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let orders: Vec<Order> = self
            .inner
            .store
            .orders(
                &p.id,
                p.mode,
                &OrderFilter {
                    customer_email: Some(email.to_owned()),
                    limit: 1000,
                    ..OrderFilter::default()
                },
            )
            .await?
            .iter()
            .map(order_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let orders: Vec<Order> = orders
            .into_iter()
            .filter(|o| o.status != OrderStatus::Open)
            .collect();
        Ok(entitlements(
            email,
            &subs,
            &orders,
            now_millis() / 1000,
            self.inner.config.grace_days,
        ))
    }

    /// The connected account's balance, per currency.
    pub async fn balance(&self, p: &ProjectRecord) -> Result<Balance, ChatError> {
        Self::require_backend(p)?;
        let account = self.billing_account(p).await?;
        self.inner
            .gateway
            .balance(p.mode, &account)
            .await
            .map_err(gateway_error)
    }

    /// The connected account's payouts, newest first; with `detail`, each with the charges it
    /// carries.
    pub async fn payouts(&self, p: &ProjectRecord, limit: i64) -> Result<Vec<Payout>, ChatError> {
        Self::require_backend(p)?;
        let account = self.billing_account(p).await?;
        let list = self
            .inner
            .gateway
            .payouts(p.mode, &account, limit)
            .await
            .map_err(gateway_error)?;
        let mut out = Vec::with_capacity(list.len());
        for po in list {
            let detailed = self
                .inner
                .gateway
                .payout(p.mode, &account, &po.id)
                .await
                .map_err(gateway_error)?;
            out.push(detailed.unwrap_or(po));
        }
        Ok(out)
    }
}
