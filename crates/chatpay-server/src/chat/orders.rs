//! Carrying out the selling calls: re-reading an order from Stripe, reading stored orders for
//! answers, refunds and receipts; and the checkout and refund requests of the HTTP API.
//!
//! A re-read resolves the order from what Stripe named (a session, a PaymentIntent, possibly one
//! chatpay has not seen yet: its `chatpay_order` metadata says whose it is), reads its objects
//! from Stripe on the connected account, and returns the stored order with its version and the
//! order as the read makes it. The flow decides what to tell and stores the change on that
//! version (see `chatpay_core::flows` `selling`).

use chatpay_core::customers::{Customer, CustomerBook};
use chatpay_core::domain::{Email, Mode, ProjectId, WebOrigin, WebUrl, now_millis, random_hex};
use chatpay_core::flows::{CallError, CallOutput, ListAsk, OrderRef, Period};
use chatpay_core::orders::{CartItem, Order, OrderStatus, RefundInfo, check_cart};
use chatpay_core::rules::{self, RefundSize};
use chatpay_store::{
    DynStore, OrderFilter, OrderKey, OrderRecord, ProjectRecord, PublishableKey, StoreError,
};
use chatpay_stripe::{CheckoutRequest, Gateway, GatewayError, RefundRequest, SubscriptionCheckout};

use super::operations::StripeWrite;
use super::{ChatError, Engine, catalog_sync};

/// Where an order's calls run: the project, its mode and its connected account.
pub(crate) struct OrderCtx<'a> {
    pub store: &'a DynStore,
    pub gateway: &'a dyn Gateway,
    pub project: &'a ProjectId,
    pub mode: Mode,
    pub account: Option<&'a str>,
}

fn store_error(e: StoreError) -> CallError {
    tracing::error!(error = %e, "order storage failed");
    CallError {
        message: "the orders could not be read".to_owned(),
        code: None,
    }
}

fn stripe_error(e: GatewayError) -> CallError {
    tracing::warn!(error = %e, "Stripe call for an order failed");
    CallError {
        message: e.user_message(),
        code: e.code().map(str::to_owned),
    }
}

/// A stored order as the core's value (its number comes from the column).
pub(crate) fn order_of(record: &OrderRecord) -> Result<Order, CallError> {
    let mut order: Order = serde_json::from_str(&record.data).map_err(|e| {
        tracing::error!(order = %record.id, error = %e, "unreadable stored order");
        CallError {
            message: "a stored order could not be read".to_owned(),
            code: None,
        }
    })?;
    order.number = record.number;
    Ok(order)
}

/// A stored order for the HTTP API, whose callers see an unreadable row as an internal error.
fn stored_order(record: &OrderRecord) -> Result<Order, ChatError> {
    order_of(record).map_err(|e| ChatError::Internal(anyhow::anyhow!(e.message)))
}

impl OrderCtx<'_> {
    fn ours(&self, r: OrderRecord) -> Option<OrderRecord> {
        (r.project_id == *self.project && r.mode == self.mode).then_some(r)
    }

    /// The stored order `order` names, if it is this project's in this mode.
    async fn find(&self, order: &OrderRef) -> Result<Option<OrderRecord>, CallError> {
        let found = match order {
            OrderRef::Number(n) => self
                .store
                .order_by_number(self.project, self.mode, *n)
                .await
                .map_err(store_error)?,
            OrderRef::Order(id) => self
                .store
                .order_by(OrderKey::Id(id))
                .await
                .map_err(store_error)?,
            OrderRef::Latest => {
                let newest = OrderFilter {
                    limit: 1,
                    ..OrderFilter::default()
                };
                self.store
                    .orders(self.project, self.mode, &newest)
                    .await
                    .map_err(store_error)?
                    .pop()
            }
            OrderRef::Session(cs) => self
                .store
                .order_by(OrderKey::Session(cs))
                .await
                .map_err(store_error)?,
            OrderRef::PaymentIntent(pi) => {
                match self
                    .store
                    .order_by(OrderKey::PaymentIntent(pi))
                    .await
                    .map_err(store_error)?
                {
                    Some(r) => Some(r),
                    // Not seen yet (its first event arrived before the checkout's): the
                    // PaymentIntent says which order it was made for.
                    None => match self.account {
                        Some(account) => {
                            let id = self
                                .gateway
                                .payment_intent_order(self.mode, account, pi)
                                .await
                                .map_err(stripe_error)?;
                            match id {
                                Some(id) => self
                                    .store
                                    .order_by(OrderKey::Id(&id))
                                    .await
                                    .map_err(store_error)?,
                                None => None,
                            }
                        }
                        None => None,
                    },
                }
            }
        };
        Ok(found.and_then(|r| self.ours(r)))
    }

    pub fn account_id(&self) -> Result<&str, CallError> {
        self.account.ok_or_else(|| CallError {
            message: "Stripe isn't connected to this project".to_owned(),
            code: None,
        })
    }

    /// Re-reads an order from Stripe: the stored order, its version, and what the read makes it.
    /// `warnings`: one of the events is an early fraud warning, so the charge's warnings are
    /// read too (only then: every other read would pay for a list that is nearly always empty).
    pub async fn refresh(&self, order: &OrderRef, warnings: bool) -> Result<CallOutput, CallError> {
        let Some(record) = self.find(order).await? else {
            return Ok(CallOutput::OrderRefreshed {
                before: None,
                after: None,
                version: 0,
            });
        };
        let before = order_of(&record)?;
        let mut read = self
            .gateway
            .read_order(self.mode, self.account_id()?, &before.checkout_session)
            .await
            .map_err(stripe_error)?;
        if warnings && let Some(charge) = &read.charge {
            read.fraud_warning = self
                .gateway
                .fraud_warning(self.mode, self.account_id()?, &charge.id)
                .await
                .map_err(stripe_error)?;
        }
        let after = before.with_read(&read, now_millis());
        Ok(CallOutput::OrderRefreshed {
            before: Some(Box::new(before)),
            after: Some(Box::new(after)),
            version: record.version,
        })
    }

    pub async fn find_order(&self, order: &OrderRef) -> Result<CallOutput, CallError> {
        let found = match self.find(order).await? {
            Some(r) => Some(Box::new(order_of(&r)?)),
            None => None,
        };
        Ok(CallOutput::OrderFound(found))
    }

    /// The orders customers are derived from: all of the project's in its mode (one buyer's
    /// with `email`), newest first, up to 5,000.
    pub async fn for_customers(&self, email: Option<&str>) -> Result<CallOutput, CallError> {
        let filter = OrderFilter {
            limit: 5000,
            customer_email: email.map(str::to_lowercase),
            ..OrderFilter::default()
        };
        let records = self
            .store
            .orders(self.project, self.mode, &filter)
            .await
            .map_err(store_error)?;
        let orders = records.iter().map(order_of).collect::<Result<_, _>>()?;
        Ok(CallOutput::Orders(orders))
    }

    pub async fn list(&self, period: &Period, ask: ListAsk) -> Result<CallOutput, CallError> {
        let limit = if ask == ListAsk::Recent { 10 } else { 1000 };
        let filter = OrderFilter {
            since: period.since,
            until: period.until,
            limit,
            ..OrderFilter::default()
        };
        let records = self
            .store
            .orders(self.project, self.mode, &filter)
            .await
            .map_err(store_error)?;
        let orders = records.iter().map(order_of).collect::<Result<_, _>>()?;
        Ok(CallOutput::Orders(orders))
    }
}

/// A checkout the builder's app asks for, parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutInput {
    pub items: Vec<CartItem>,
    pub customer_email: Option<Email>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    /// Days of free trial for a subscription (a cart with a recurring price), 1 to 730.
    pub trial_period_days: Option<u32>,
    /// A discount code the checkout applies (as customers type it).
    pub promotion_code: Option<String>,
}

/// A refund made through the API: the refund as Stripe answered, and the order after it.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundOutcome {
    pub refund: RefundInfo,
    pub order: Order,
}

fn rejected(code: &'static str, message: impl Into<String>) -> ChatError {
    ChatError::Rejected {
        code,
        message: message.into(),
    }
}

/// A Stripe call's failure for the HTTP API: Stripe's refusal says why (422), an unreachable
/// Stripe asks for a retry (503), anything else is internal.
pub(crate) fn gateway_error(e: GatewayError) -> ChatError {
    match e {
        GatewayError::Stripe {
            status, message, ..
        } if (400..500).contains(&status) && status != 429 => {
            rejected("stripe_refused", format!("Stripe refused: {message}"))
        }
        GatewayError::Unreachable(_) => ChatError::Unavailable,
        other => ChatError::Internal(anyhow::Error::new(other)),
    }
}

/// A stored order for a retried checkout: the same cart, or the key was used for another.
fn same_cart(order: Order, lines: &[chatpay_core::orders::OrderLine]) -> Result<Order, ChatError> {
    if order.lines != lines {
        return Err(ChatError::Conflict {
            code: "idempotency_key_reused",
            message: "This Idempotency-Key was used for a different cart: use a new key for a new checkout.".to_owned(),
        });
    }
    Ok(order)
}

fn web_url(field: &str, raw: &str) -> Result<String, ChatError> {
    WebUrl::parse(raw).map(|u| u.as_str().to_owned()).ok_or_else(|| {
        rejected(
            "invalid_url",
            format!(
                "`{field}` must be an absolute http(s) URL, such as https://your-app.example/thanks"
            ),
        )
    })
}

/// The order id for a checkout: derived from the caller's idempotency key (so a retried
/// request finds the same order and Stripe replays the same session), or new.
fn order_id(project: &ProjectId, mode: Mode, key: Option<&str>) -> String {
    use sha2::Digest;
    match key {
        Some(k) => {
            let digest = sha2::Sha256::digest(format!("{project}\u{1f}{}\u{1f}{k}", mode.as_str()));
            format!("ord_{}", &hex::encode(digest)[..24])
        }
        None => format!("ord_{}", random_hex(12)),
    }
}

impl Engine {
    /// The project's connected account, if it can take payments now; says why not otherwise.
    /// The one place that decides whether a project may sell.
    pub async fn selling_account(&self, project: &ProjectRecord) -> Result<String, ChatError> {
        let connection = match project.backend {
            true => self.stripe_connection(project).await?,
            false => None,
        };
        let account = rules::selling_account(project.backend, connection.as_ref().map(|(_, a)| a))?;
        Ok(account.id.clone())
    }

    /// Creates an order and its Checkout Session for a cart of the synced catalog. With `key`
    /// (the request's `Idempotency-Key`), a retry answers the same order.
    pub async fn checkout(
        &self,
        project: &ProjectRecord,
        input: CheckoutInput,
        key: Option<&str>,
    ) -> Result<Order, ChatError> {
        let account = self.selling_account(project).await?;
        let email = input.customer_email.as_ref().map(|e| e.as_str().to_owned());
        let id = order_id(&project.id, project.mode, key);
        let success_url = match &input.success_url {
            Some(u) => web_url("success_url", u)?,
            None => format!("{}/checkout/complete?order={id}", self.inner.links.public),
        };
        let cancel_url = input
            .cancel_url
            .as_deref()
            .map(|u| web_url("cancel_url", u))
            .transpose()?;
        let catalog = catalog_sync::read(&self.inner.store, &project.id, project.mode, None)
            .await
            .map_err(|e| ChatError::Internal(anyhow::anyhow!(e.message)))?;
        if catalog.synced_at.is_none() && catalog.total == 0 {
            return Err(rejected(
                "catalog_not_synced",
                "The catalog hasn't been synced yet: say \"sync my products\" in the chat (or POST …/integrations/stripe/catalog/sync), then check out.",
            ));
        }
        let cart =
            check_cart(&catalog.shown, &input.items).map_err(|e| rejected(e.code, e.message))?;
        rules::trial(input.trial_period_days, cart.recurring())?;
        if let Some(existing) = self.inner.store.order_by(OrderKey::Id(&id)).await? {
            let order = stored_order(&existing)?;
            return same_cart(order, &cart.lines);
        }
        let key = format!("chatpay:order:{id}:checkout");
        if let Some(op) = self.inner.store.operation(&key).await? {
            // Recorded before (a retried request, or one that crashed): the same checkout, once.
            if let Ok(StripeWrite::Checkout { order, .. }) = serde_json::from_str(&op.request) {
                same_cart(*order, &cart.lines)?;
            }
            self.settle_operation(&key).await?;
            return self.checkout_made(&key, &id).await;
        }
        // A code the checkout applies: the account's codes of that name, judged by the rule.
        let promotion_code = match input.promotion_code.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(code) => {
                let found = self
                    .inner
                    .gateway
                    .list_codes(project.mode, &account, Some(code))
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "reading the discount codes failed");
                        ChatError::Unavailable
                    })?;
                let products: Vec<String> = cart.lines.iter().map(|l| l.product.clone()).collect();
                let now = now_millis() / 1000;
                Some(
                    rules::code_for_checkout(code, &found, now, &products)?
                        .id
                        .clone(),
                )
            }
        };
        let fee = u64::from(self.inner.config.application_fee_bps);
        let subscription = cart.recurring().then(|| SubscriptionCheckout {
            trial_period_days: input.trial_period_days,
            // The same fee, as Stripe takes it on every invoice of a subscription.
            application_fee_percent: (fee > 0).then(|| fee as f64 / 100.0),
        });
        let application_fee_amount = (fee > 0 && subscription.is_none()).then(|| {
            i64::try_from(u64::try_from(cart.total).unwrap_or(0) * fee / 10_000).unwrap_or(0)
        });
        let request = CheckoutRequest {
            order_id: id.clone(),
            lines: cart
                .lines
                .iter()
                .map(|l| (l.price.clone(), l.quantity))
                .collect(),
            success_url,
            cancel_url,
            customer_email: email.clone(),
            application_fee_amount,
            subscription,
            promotion_code,
        };
        let now = now_millis();
        // The order as it is stored once Stripe has made its session (`operations::apply`).
        let order = Order {
            id: id.clone(),
            number: 0,
            status: OrderStatus::Open,
            currency: cart.currency,
            amount_total: cart.total,
            lines: cart.lines,
            customer_email: email,
            checkout_session: String::new(),
            checkout_url: None,
            expires_at: 0,
            payment_intent: None,
            last_payment_error: None,
            charge: None,
            refunds: Vec::new(),
            invoice: None,
            subscription: None,
            created_at: now,
            paid_at: None,
            updated_at: now,
            dispute: None,
            fraud_warning: None,
        };
        let write = StripeWrite::Checkout {
            account,
            request,
            order: Box::new(order),
        };
        self.stripe_write(project, &key, &write, Vec::new()).await?;
        self.checkout_made(&key, &id).await
    }

    /// The order a finished checkout operation made (stored with the operation's end).
    async fn checkout_made(&self, key: &str, id: &str) -> Result<Order, ChatError> {
        let record = self
            .inner
            .store
            .order_by(OrderKey::Id(id))
            .await?
            .ok_or_else(|| {
                ChatError::Internal(anyhow::anyhow!("checkout {key} is done without its order"))
            })?;
        stored_order(&record)
    }

    /// An order by chatpay's id, whichever project it is (the page a paid checkout lands on
    /// names it; the id is unguessable).
    pub async fn order_by_id(&self, id: &str) -> Result<Option<Order>, ChatError> {
        match self.inner.store.order_by(OrderKey::Id(id)).await? {
            Some(r) => Ok(Some(stored_order(&r)?)),
            None => Ok(None),
        }
    }

    /// One of the project's orders, by number, in its current mode.
    pub async fn order(&self, project: &ProjectRecord, number: i64) -> Result<Order, ChatError> {
        let record = self
            .inner
            .store
            .order_by_number(&project.id, project.mode, number)
            .await?
            .ok_or_else(|| {
                ChatError::NotFound(format!(
                    "no order #{number} in this project's {} mode",
                    project.mode.as_str()
                ))
            })?;
        stored_order(&record)
    }

    /// The project's orders in its current mode, newest first.
    pub async fn orders(
        &self,
        project: &ProjectRecord,
        filter: &OrderFilter,
    ) -> Result<Vec<Order>, ChatError> {
        let records = self
            .inner
            .store
            .orders(&project.id, project.mode, filter)
            .await?;
        records.iter().map(stored_order).collect()
    }

    /// The project's customers in its current mode (one buyer with `email`), from all of its
    /// paid orders, read a page at a time: memory grows with the customers, not the orders.
    pub async fn customers(
        &self,
        project: &ProjectRecord,
        email: Option<&str>,
    ) -> Result<Vec<Customer>, ChatError> {
        const PAGE: i64 = 1000;
        let mut book = CustomerBook::default();
        let mut filter = OrderFilter {
            limit: PAGE,
            customer_email: email.map(str::to_lowercase),
            ..OrderFilter::default()
        };
        loop {
            let page = self.orders(project, &filter).await?;
            for o in &page {
                book.add(o);
            }
            match page.last() {
                Some(last) if page.len() as i64 == PAGE => filter.before = Some(last.number),
                _ => return Ok(book.customers()),
            }
        }
    }

    /// Refunds `amount` (all that remains when `None`) of order `number`. The Stripe key derives
    /// from the order and the caller's `Idempotency-Key`, so a retried request refunds once.
    pub async fn refund(
        &self,
        project: &ProjectRecord,
        number: i64,
        amount: Option<i64>,
        key: Option<&str>,
    ) -> Result<RefundOutcome, ChatError> {
        let account = self.selling_account(project).await?;
        let order = self.order(project, number).await?;
        let key = match key {
            Some(k) => format!("chatpay:refund:{}:{k}", order.id),
            // Without the caller's key: the same request against the same order state gets
            // the same key, so a retry after a lost answer refunds once.
            None => format!(
                "chatpay:refund:{}:{}:{}",
                order.id,
                amount.map_or_else(|| "rest".to_owned(), |a| a.to_string()),
                order.refunds.len()
            ),
        };
        // The same request again (same key): the refund it made, once.
        let answer = if self.inner.store.operation(&key).await?.is_some() {
            self.settle_operation(&key).await?
        } else {
            // Made before refunds were stored operations: Stripe answers the refund it made.
            let replayed = order
                .refunds
                .iter()
                .find(|r| r.request.as_deref() == Some(key.as_str()));
            let (payment_intent, amount) = match replayed {
                Some(r) => (order.payment_intent.clone().unwrap_or_default(), r.amount),
                None => {
                    let size = match amount {
                        Some(minor) => RefundSize::Amount {
                            minor,
                            currency: None,
                        },
                        None => RefundSize::Rest,
                    };
                    let plan = rules::refund(&order, size, 0)?;
                    (plan.payment_intent, plan.amount)
                }
            };
            let write = StripeWrite::Refund {
                account: account.clone(),
                request: RefundRequest {
                    payment_intent,
                    amount: Some(amount),
                    order_id: order.id.clone(),
                },
            };
            // The order's conversation reads the order again once Stripe has made the refund
            // (`operations::apply`), as for a refund from the Dashboard; the answer shows the
            // order as that same read of Stripe makes it.
            self.stripe_write(project, &key, &write, Vec::new()).await?
        };
        let refund: RefundInfo = serde_json::from_value(answer).map_err(anyhow::Error::new)?;
        let read = self
            .inner
            .gateway
            .read_order(project.mode, &account, &order.checkout_session)
            .await
            .map_err(gateway_error)?;
        let order = order.with_read(&read, now_millis());
        Ok(RefundOutcome { refund, order })
    }
}

impl Engine {
    /// Sends a paid order's receipt to its customer again (the order page's button; the chat's
    /// "send the receipt for order 12 again" does the same through the conversation). Each
    /// request sends once more: an `Idempotency-Key` makes a retried request send once.
    pub async fn resend_receipt(
        &self,
        project: &ProjectRecord,
        number: i64,
        key: Option<&str>,
    ) -> Result<String, ChatError> {
        let account = self.selling_account(project).await?;
        let order = self.order(project, number).await?;
        let (Some(charge), Some(email)) = (order.charge.as_ref(), order.customer_email.as_ref())
        else {
            return Err(rejected(
                "no_receipt",
                if order.customer_email.is_none() {
                    format!("Order #{number} has no customer email to send the receipt to.")
                } else {
                    format!(
                        "Order #{number} has no receipt to send: it is {}.",
                        order.status.label()
                    )
                },
            ));
        };
        let key = match key {
            Some(k) => format!("chatpay:receipt:{}:{k}", order.id),
            None => format!("chatpay:receipt:{}:{}", order.id, random_hex(8)),
        };
        let write = StripeWrite::Receipt {
            account,
            charge: charge.id.clone(),
            email: email.clone(),
        };
        self.stripe_write(project, &key, &write, Vec::new()).await?;
        Ok(email.clone())
    }
}

/// Publishable keys start so (API tokens start `cpk_`): a key that can only create checkouts.
pub const PUBLISHABLE_PREFIX: &str = "cpub_";

impl Engine {
    /// The project's publishable key, made on first use.
    pub async fn publishable_key(
        &self,
        project: &ProjectRecord,
    ) -> Result<PublishableKey, ChatError> {
        if let Some(k) = self.inner.store.publishable_key(&project.id).await? {
            return Ok(k);
        }
        let key = PublishableKey {
            project_id: project.id.clone(),
            key: format!("{PUBLISHABLE_PREFIX}{}", random_hex(16)),
            allowed_origins: Vec::new(),
            created_at: now_millis(),
        };
        Ok(self.inner.store.put_publishable_key(&key).await?)
    }

    /// Sets the origins whose pages may use the project's publishable key.
    pub async fn allow_origins(
        &self,
        project: &ProjectRecord,
        origins: &[String],
    ) -> Result<PublishableKey, ChatError> {
        let mut allowed = Vec::with_capacity(origins.len());
        for o in origins {
            let origin = WebOrigin::parse(o).map(|o| o.as_str().to_owned()).ok_or_else(|| {
                rejected(
                    "invalid_origin",
                    format!("\"{o}\" is not a web origin: write it as https://your-app.example (scheme and host, a port if any, no path)"),
                )
            })?;
            if !allowed.contains(&origin) {
                allowed.push(origin);
            }
        }
        let mut key = self.publishable_key(project).await?;
        key.allowed_origins = allowed;
        Ok(self.inner.store.put_publishable_key(&key).await?)
    }

    /// Whether a page on `origin` may create checkouts for `project` with its publishable key.
    pub async fn check_origin(
        &self,
        project: &ProjectRecord,
        origin: &str,
    ) -> Result<(), ChatError> {
        let key = self.publishable_key(project).await?;
        if key.allowed_origins.iter().any(|o| o == origin) {
            Ok(())
        } else {
            Err(ChatError::Forbidden {
                code: "origin_not_allowed",
                message: format!(
                    "{origin} may not create checkouts for this project: add it to the publishable key's allowed origins (PATCH /v1/projects/{}/publishable_key)",
                    project.id
                ),
            })
        }
    }

    /// The project publishable key `key` may create a checkout for: it must be project
    /// `project_id`'s key, and a page calling from `origin` must be one the project allows.
    pub async fn publishable_checkout_project(
        &self,
        key: &str,
        project_id: &str,
        origin: Option<&str>,
    ) -> Result<ProjectRecord, ChatError> {
        let k = self
            .inner
            .store
            .publishable_key_by_key(key)
            .await?
            .ok_or_else(|| {
                ChatError::Unauthorized("this publishable key is not valid".to_owned())
            })?;
        if k.project_id.as_str() != project_id {
            return Err(ChatError::Unauthorized(
                "this publishable key belongs to another project".to_owned(),
            ));
        }
        let project = self.public_project(project_id).await?;
        if let Some(o) = origin {
            self.check_origin(&project, o).await?;
        }
        Ok(project)
    }

    /// A project by id, whoever asks (buy links and publishable checkouts name it).
    pub async fn public_project(&self, id: &str) -> Result<ProjectRecord, ChatError> {
        let not_found = || ChatError::NotFound(format!("no project \"{id}\""));
        let id = ProjectId::parse(id).ok_or_else(not_found)?;
        self.inner.store.project(&id).await?.ok_or_else(not_found)
    }

    /// This server's public base URL.
    pub fn public_url(&self) -> &str {
        &self.inner.links.public
    }
}
