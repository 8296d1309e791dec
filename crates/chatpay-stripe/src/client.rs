//! The real gateway: async-stripe 1.0 against Stripe (or any base URL speaking its API).
//!
//! Every call runs under [`Retry`]: connection errors, timeouts, 429 and 5xx are retried with
//! exponential backoff and full jitter, a bounded number of times. POSTs carry the caller's
//! idempotency key on every attempt, so Stripe applies them once however often they are sent.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use stripe::{IdempotencyKey, StripeRequest};
use stripe::{RequestStrategy, StripeError};
use stripe_connect::account::{
    CreateAccount, CreateAccountController, CreateAccountControllerFees,
    CreateAccountControllerFeesPayer, CreateAccountControllerLosses,
    CreateAccountControllerLossesPayments, CreateAccountControllerRequirementCollection,
    CreateAccountControllerStripeDashboard, CreateAccountControllerStripeDashboardType,
    CreateAccountSettings, PaymentsSettingsSpecs, RetrieveAccount,
};
use stripe_connect::account_link::{CreateAccountLink, CreateAccountLinkType};
use stripe_shared::{Account, AccountBusinessType};

use stripe_product::coupon::{CreateCoupon, CreateCouponAppliesTo, ListCoupon};
use stripe_product::price::{
    CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, ListPrice, UpdatePrice,
};
use stripe_product::product::{
    CreateProduct, CreateProductDefaultPriceData, CreateProductDefaultPriceDataRecurring,
    CreateProductDefaultPriceDataRecurringInterval, ListProduct, RetrieveProduct, UpdateProduct,
};
use stripe_product::promotion_code::{
    CreatePromotionCode, CreatePromotionCodePromotion, CreatePromotionCodePromotionType,
    CreatePromotionCodeRestrictions, ListPromotionCode, UpdatePromotionCode,
};

use stripe_billing::invoice::RetrieveInvoice;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionDiscounts, CreateCheckoutSessionInvoiceCreation,
    CreateCheckoutSessionInvoiceCreationInvoiceData, CreateCheckoutSessionLineItems,
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionSubscriptionData,
    RetrieveCheckoutSession,
};
use stripe_core::balance_transaction::RetrieveBalanceTransaction;
use stripe_core::charge::{RetrieveCharge, UpdateCharge};
use stripe_core::dispute::{CloseDispute, ListDispute, UpdateDispute, UpdateDisputeEvidence};
use stripe_core::payment_intent::RetrievePaymentIntent;
use stripe_core::refund::{CreateRefund, ListRefund};
use stripe_fraud::radar_early_fraud_warning::ListRadarEarlyFraudWarning;

use super::{
    CheckoutRequest, CreatedSession, Gateway, GatewayError, IssuedLink, PAGE_SIZE, Page,
    RefundRequest, SubscriptionChange,
};
use crate::pooled::PooledClient;
use chatpay_core::account::{AccountSnapshot, PayoutSchedule, RequirementError, Requirements};
use chatpay_core::billing::{Balance, Payout, Subscription};
use chatpay_core::catalog::{
    Billing, CatalogProduct, CodeDuration, CodeInfo, NewCode, NewPrice, NewProduct, Off, PriceData,
    ProductData, ProductEdit, Recurrence,
};
use chatpay_core::domain::Secret;
use chatpay_core::domain::{BusinessType, Mode};
use chatpay_core::flows::{LinkKind, NewAccount};
use chatpay_core::orders::{ChargeInfo, InvoiceInfo, PaymentError, RefundInfo, StripeOrderRead};
use chatpay_http_client::HttpClient;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Per attempt.
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            timeout: Duration::from_secs(20),
        }
    }
}

impl Retry {
    /// Full jitter: a random wait in [0, min(max, first * 2^attempt)].
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .first_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff);
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        let fraction = f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
        cap.mul_f64(fraction)
    }
}

/// Where and how to reach Stripe.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub test_key: Option<Secret>,
    pub live_key: Option<Secret>,
    /// `https://api.stripe.com/` or the sandbox's URL.
    pub api_base: String,
    /// `https://connect.stripe.com/` or the sandbox's URL.
    pub connect_base: String,
    pub connect_client_id: Option<String>,
    pub retry: Retry,
}

pub struct StripeGateway {
    test: Option<(PooledClient, Secret)>,
    live: Option<(PooledClient, Secret)>,
    connect_base: String,
    client_id: Option<String>,
    http: HttpClient,
    retry: Retry,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeGateway")
            .field("test", &self.test.as_ref().map(|(_, k)| k))
            .field("live", &self.live.as_ref().map(|(_, k)| k))
            .field("connect_base", &self.connect_base)
            .finish_non_exhaustive()
    }
}

/// What went wrong with one attempt, and whether another may help.
enum Attempt {
    Retry(GatewayError),
    Fail(GatewayError),
}

fn classify(e: StripeError) -> Attempt {
    match e {
        StripeError::Stripe(err, status) => {
            let gw = GatewayError::Stripe {
                status,
                kind: err.type_.as_str().to_owned(),
                code: err.code.as_ref().map(|c| c.as_str().to_owned()),
                message: err
                    .message
                    .clone()
                    .unwrap_or_else(|| "no message".to_owned()),
            };
            // 409: an idempotent request with the same key is still in flight.
            if status == 429 || status == 409 || status >= 500 {
                Attempt::Retry(gw)
            } else {
                Attempt::Fail(gw)
            }
        }
        StripeError::ClientError(m) => Attempt::Retry(GatewayError::Unreachable(m)),
        StripeError::Timeout => Attempt::Retry(GatewayError::Unreachable("timed out".to_owned())),
        StripeError::JSONDeserialize(m) => Attempt::Fail(GatewayError::Protocol(m)),
        StripeError::ConfigError(m) => Attempt::Fail(GatewayError::NotConfigured(m)),
    }
}

impl StripeGateway {
    pub fn new(settings: StripeSettings) -> Result<StripeGateway, GatewayError> {
        let build = |key: &Option<Secret>| -> Result<Option<(PooledClient, Secret)>, GatewayError> {
            key.as_ref()
                .map(|k| {
                    PooledClient::new(
                        k.expose(),
                        &settings.api_base,
                        concat!("chatpay/", env!("CARGO_PKG_VERSION")),
                        settings.retry.timeout,
                    )
                    .map(|c| (c, k.clone()))
                    .map_err(GatewayError::NotConfigured)
                })
                .transpose()
        };
        Ok(StripeGateway {
            test: build(&settings.test_key)?,
            live: build(&settings.live_key)?,
            connect_base: settings.connect_base.trim_end_matches('/').to_owned(),
            client_id: settings.connect_client_id,
            http: HttpClient::new(settings.retry.timeout),
            retry: settings.retry,
        })
    }

    fn client(&self, mode: Mode) -> Result<&(PooledClient, Secret), GatewayError> {
        match mode {
            Mode::Test => self.test.as_ref(),
            Mode::Live => self.live.as_ref(),
        }
        .ok_or_else(|| {
            GatewayError::NotConfigured(format!("{} mode (no secret key)", mode.as_str()))
        })
    }

    /// Sends `req`, retrying what may be retried. A POST sends `key` on every attempt.
    async fn send<R>(
        &self,
        mode: Mode,
        req: &R,
        key: Option<&str>,
    ) -> Result<R::Output, GatewayError>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize + Send,
    {
        self.send_with(mode, None, req, key).await
    }

    /// Sends `req` on behalf of connected `account`, retrying what may be retried.
    pub(crate) async fn send_as<R>(
        &self,
        mode: Mode,
        account: &str,
        req: &R,
    ) -> Result<R::Output, GatewayError>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize + Send,
    {
        self.send_with(mode, Some(account), req, None).await
    }

    async fn send_with<R>(
        &self,
        mode: Mode,
        account: Option<&str>,
        req: &R,
        key: Option<&str>,
    ) -> Result<R::Output, GatewayError>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize + Send,
    {
        let (client, _) = self.client(mode)?;
        let strategy = match key {
            Some(k) => RequestStrategy::Idempotent(
                IdempotencyKey::new(k)
                    .map_err(|e| GatewayError::NotConfigured(format!("idempotency key: {e:?}")))?,
            ),
            None => RequestStrategy::Once,
        };
        let account = account.map(stripe::AccountId::from);
        let mut attempt = 0;
        loop {
            let mut custom = req.customize().request_strategy(strategy.clone());
            if let Some(a) = &account {
                custom = custom.account_id(a.clone());
            }
            let result = custom.send(client).await;
            match result.map_err(classify) {
                Ok(out) => return Ok(out),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry(e)) => {
                    attempt += 1;
                    if attempt >= self.retry.attempts {
                        return Err(e);
                    }
                    let wait = self.retry.backoff(attempt);
                    tracing::warn!(error = %e, attempt, ?wait, "Stripe call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// POSTs `req` on behalf of connected `account` with idempotency key `key`, with retries.
    pub(crate) async fn post_as<R>(
        &self,
        mode: Mode,
        account: &str,
        req: &R,
        key: &str,
    ) -> Result<R::Output, GatewayError>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize + Send,
    {
        self.send_with(mode, Some(account), req, Some(key)).await
    }

    /// POSTs a form to Stripe's OAuth endpoints (not part of async-stripe), with retries.
    async fn oauth_post(
        &self,
        mode: Mode,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<serde_json::Value, GatewayError> {
        let (_, secret) = self.client(mode)?;
        let url = format!("{}/{path}", self.connect_base);
        let auth = format!("Bearer {}", secret.expose());
        let mut attempt = 0;
        loop {
            let outcome = match self
                .http
                .post_form(&url, &[("authorization", &auth)], form)
                .await
            {
                Ok(res) => {
                    let body = res.json().unwrap_or(serde_json::Value::Null);
                    if (200..300).contains(&res.status) {
                        return Ok(body);
                    }
                    let err = GatewayError::Stripe {
                        status: res.status,
                        kind: "oauth_error".to_owned(),
                        code: body
                            .get("error")
                            .and_then(|v| v.as_str())
                            .map(str::to_owned),
                        message: body
                            .get("error_description")
                            .and_then(|v| v.as_str())
                            .unwrap_or("Stripe refused the request")
                            .to_owned(),
                    };
                    if res.status == 429 || res.status >= 500 {
                        Attempt::Retry(err)
                    } else {
                        Attempt::Fail(err)
                    }
                }
                Err(e) => Attempt::Retry(GatewayError::Unreachable(e.to_string())),
            };
            match outcome {
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e) => {
                    attempt += 1;
                    if attempt >= self.retry.attempts {
                        return Err(e);
                    }
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
            }
        }
    }
}

fn product_data(p: &stripe_shared::Product) -> ProductData {
    ProductData {
        id: p.id.as_str().to_owned(),
        name: p.name.clone(),
        active: p.active,
        description: p.description.clone(),
        default_price: p.default_price.as_ref().map(|d| d.id().as_str().to_owned()),
        updated: p.updated,
    }
}

fn price_data(p: &stripe_shared::Price) -> PriceData {
    PriceData {
        id: p.id.as_str().to_owned(),
        product: p.product.id().as_str().to_owned(),
        active: p.active,
        currency: p.currency.to_string(),
        unit_amount: p.unit_amount,
        kind: p.type_.as_str().to_owned(),
        recurring: p.recurring.as_ref().map(|r| Recurrence {
            interval: r.interval.as_str().to_owned(),
            interval_count: r.interval_count,
            usage_type: Some(r.usage_type.as_str().to_owned()),
        }),
        nickname: p.nickname.clone(),
    }
}

/// What we keep of Stripe's Account object.
pub fn snapshot(a: &Account) -> AccountSnapshot {
    let r = a.requirements.as_ref();
    let list = |v: Option<&Vec<String>>| v.cloned().unwrap_or_default();
    let settings = a.settings.as_ref();
    AccountSnapshot {
        id: a.id.as_str().to_owned(),
        email: a.email.clone(),
        country: a.country.clone(),
        business_name: a.business_profile.as_ref().and_then(|b| b.name.clone()),
        statement_descriptor: settings.and_then(|s| s.payments.statement_descriptor.clone()),
        default_currency: a.default_currency.as_ref().map(|c| c.to_string()),
        details_submitted: a.details_submitted.unwrap_or(false),
        charges_enabled: a.charges_enabled.unwrap_or(false),
        payouts_enabled: a.payouts_enabled.unwrap_or(false),
        requirements: Requirements {
            currently_due: list(r.and_then(|r| r.currently_due.as_ref())),
            eventually_due: list(r.and_then(|r| r.eventually_due.as_ref())),
            past_due: list(r.and_then(|r| r.past_due.as_ref())),
            pending_verification: list(r.and_then(|r| r.pending_verification.as_ref())),
            current_deadline: r.and_then(|r| r.current_deadline),
            disabled_reason: r
                .and_then(|r| r.disabled_reason.as_ref())
                .map(|d| d.as_str().to_owned()),
            errors: r
                .and_then(|r| r.errors.as_ref())
                .map(|errors| {
                    errors
                        .iter()
                        .map(|e| RequirementError {
                            requirement: e.requirement.clone(),
                            code: e.code.as_str().to_owned(),
                            reason: e.reason.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        },
        payout_schedule: settings
            .and_then(|s| s.payouts.as_ref())
            .map(|p| PayoutSchedule {
                delay_days: p.schedule.delay_days,
                interval: p.schedule.interval.clone(),
            }),
        platform_collects: a.controller.as_ref().is_some_and(|c| {
            c.requirement_collection
                .as_ref()
                .is_some_and(|r| r.as_str() == "application")
                && c.stripe_dashboard
                    .as_ref()
                    .is_some_and(|d| d.type_.as_str() == "none")
        }),
    }
}

impl StripeGateway {
    /// Creates one price of a product; answers its id.
    async fn create_price(
        &self,
        mode: Mode,
        account: &str,
        product: &str,
        p: &NewPrice,
        key: &str,
    ) -> Result<String, GatewayError> {
        let currency = p
            .amount
            .currency
            .as_str()
            .parse::<stripe_types::Currency>()
            .map_err(|_| {
                GatewayError::Protocol(format!("unknown currency {}", p.amount.currency))
            })?;
        let metadata: HashMap<String, String> =
            [("chatpay_request".to_owned(), key.to_owned())].into();
        let mut req = CreatePrice::new(currency)
            .product(product.to_owned())
            .unit_amount(p.amount.minor)
            .metadata(metadata);
        let interval = match p.billing {
            Billing::OneTime => None,
            Billing::Week => Some(CreatePriceRecurringInterval::Week),
            Billing::Month => Some(CreatePriceRecurringInterval::Month),
            Billing::Year => Some(CreatePriceRecurringInterval::Year),
        };
        if let Some(interval) = interval {
            req = req.recurring(CreatePriceRecurring::new(interval));
        }
        Ok(self.post_as(mode, account, &req, key).await?.id.to_string())
    }
}

#[async_trait]
impl Gateway for StripeGateway {
    fn has_key(&self, mode: Mode) -> bool {
        self.client(mode).is_ok()
    }

    async fn create_account(
        &self,
        mode: Mode,
        new: &NewAccount,
        key: &str,
    ) -> Result<AccountSnapshot, GatewayError> {
        let business_type = match new.business_type {
            BusinessType::Company => AccountBusinessType::Company,
            BusinessType::Individual => AccountBusinessType::Individual,
        };
        let mut controller = CreateAccountController::new();
        // A Standard-style account: Stripe collects requirements, the owner has the full
        // Dashboard and pays Stripe's fees; Stripe carries payment losses.
        controller.fees = Some(CreateAccountControllerFees {
            payer: Some(CreateAccountControllerFeesPayer::Account),
        });
        controller.losses = Some(CreateAccountControllerLosses {
            payments: Some(CreateAccountControllerLossesPayments::Stripe),
        });
        controller.requirement_collection =
            Some(CreateAccountControllerRequirementCollection::Stripe);
        controller.stripe_dashboard = Some(CreateAccountControllerStripeDashboard {
            type_: Some(CreateAccountControllerStripeDashboardType::Full),
        });
        let mut settings = CreateAccountSettings::new();
        let mut payments = PaymentsSettingsSpecs::new();
        payments.statement_descriptor = Some(new.statement_descriptor.as_str().to_owned());
        settings.payments = Some(payments);
        let mut profile = stripe_connect::account::CreateAccountBusinessProfile::new();
        // The name on checkout pages and receipts: the one the owner chose, not the legal
        // name ("Pay Maya Patel").
        profile.name = Some(if new.business_name.is_empty() {
            new.legal_name.clone()
        } else {
            new.business_name.clone()
        });
        let req = CreateAccount::new()
            .controller(controller)
            .country(new.country.as_str())
            .email(new.email.as_str())
            .business_type(business_type)
            .business_profile(profile)
            .settings(settings);
        let account = self.send(mode, &req, Some(key)).await?;
        Ok(snapshot(&account))
    }

    async fn retrieve_account(
        &self,
        mode: Mode,
        account: &str,
    ) -> Result<AccountSnapshot, GatewayError> {
        let req = RetrieveAccount::new(account);
        Ok(snapshot(&self.send(mode, &req, None).await?))
    }

    async fn create_account_link(
        &self,
        mode: Mode,
        account: &str,
        kind: LinkKind,
        refresh_url: &str,
        return_url: &str,
        key: &str,
    ) -> Result<IssuedLink, GatewayError> {
        let type_ = match kind {
            LinkKind::AccountOnboarding => CreateAccountLinkType::AccountOnboarding,
            LinkKind::AccountUpdate => CreateAccountLinkType::AccountUpdate,
        };
        let req = CreateAccountLink::new(account, type_)
            .refresh_url(refresh_url)
            .return_url(return_url);
        let link = self.send(mode, &req, Some(key)).await?;
        Ok(IssuedLink {
            url: link.url,
            expires_at: link.expires_at * 1000,
        })
    }

    fn dashboard_url(&self, mode: Mode, account: &str) -> String {
        if self.connect_base == "https://connect.stripe.com" {
            let test = if mode == Mode::Test { "test/" } else { "" };
            format!("https://dashboard.stripe.com/{test}products")
        } else {
            // The sandbox (or another Stripe-shaped server) serves its own products page.
            format!("{}/dashboard/{account}/products", self.connect_base)
        }
    }

    fn oauth_authorize_base(&self) -> Option<String> {
        self.client_id
            .as_ref()
            .map(|id| format!("{}/oauth/authorize?client_id={id}", self.connect_base))
    }

    async fn exchange_oauth_code(&self, mode: Mode, code: &str) -> Result<String, GatewayError> {
        let body = self
            .oauth_post(
                mode,
                "oauth/token",
                &[("grant_type", "authorization_code"), ("code", code)],
            )
            .await?;
        body.get("stripe_user_id")
            .and_then(|v| v.as_str())
            .filter(|id| id.starts_with("acct_"))
            .map(str::to_owned)
            .ok_or_else(|| {
                GatewayError::Protocol("the OAuth answer has no stripe_user_id".to_owned())
            })
    }

    async fn list_products(
        &self,
        mode: Mode,
        account: &str,
        starting_after: Option<&str>,
    ) -> Result<Page<ProductData>, GatewayError> {
        let mut req = ListProduct::new().limit(PAGE_SIZE);
        if let Some(after) = starting_after {
            req = req.starting_after(after);
        }
        let list = self.send_as(mode, account, &req).await?;
        Ok(Page {
            items: list.data.iter().map(product_data).collect(),
            has_more: list.has_more,
        })
    }

    async fn list_prices(
        &self,
        mode: Mode,
        account: &str,
        starting_after: Option<&str>,
    ) -> Result<Page<PriceData>, GatewayError> {
        let mut req = ListPrice::new().limit(PAGE_SIZE);
        if let Some(after) = starting_after {
            req = req.starting_after(after);
        }
        let list = self.send_as(mode, account, &req).await?;
        Ok(Page {
            items: list.data.iter().map(price_data).collect(),
            has_more: list.has_more,
        })
    }

    async fn product_with_prices(
        &self,
        mode: Mode,
        account: &str,
        product: &str,
    ) -> Result<Option<CatalogProduct>, GatewayError> {
        let found = match self
            .send_as(mode, account, &RetrieveProduct::new(product))
            .await
        {
            Ok(p) => p,
            Err(GatewayError::Stripe { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut prices = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = ListPrice::new().product(product).limit(PAGE_SIZE);
            if let Some(a) = &after {
                req = req.starting_after(a.clone());
            }
            let page = self.send_as(mode, account, &req).await?;
            prices.extend(page.data.iter().map(price_data));
            match (page.has_more, prices.last()) {
                (true, Some(last)) => after = Some(last.id.clone()),
                _ => break,
            }
        }
        prices.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Some(CatalogProduct {
            product: product_data(&found),
            prices,
            sold: false,
        }))
    }

    async fn deauthorize(&self, mode: Mode, account: &str) -> Result<(), GatewayError> {
        let client_id = self.client_id.as_deref().ok_or_else(|| {
            GatewayError::NotConfigured("Stripe Connect OAuth (no client id)".to_owned())
        })?;
        self.oauth_post(
            mode,
            "oauth/deauthorize",
            &[("client_id", client_id), ("stripe_user_id", account)],
        )
        .await?;
        Ok(())
    }

    async fn create_product(
        &self,
        mode: Mode,
        account: &str,
        new: &NewProduct,
        key: &str,
    ) -> Result<String, GatewayError> {
        let Some((first, rest)) = new.prices.split_first() else {
            return Err(GatewayError::Protocol("a product needs a price".to_owned()));
        };
        let currency = |c: &chatpay_core::domain::Currency| {
            c.as_str()
                .parse::<stripe_types::Currency>()
                .map_err(|_| GatewayError::Protocol(format!("unknown currency {c}")))
        };
        let metadata: HashMap<String, String> =
            [("chatpay_request".to_owned(), key.to_owned())].into();
        let mut default = CreateProductDefaultPriceData::new(currency(&first.amount.currency)?);
        default.unit_amount = Some(first.amount.minor);
        default.recurring = match first.billing {
            Billing::OneTime => None,
            Billing::Week => Some(CreateProductDefaultPriceDataRecurringInterval::Week),
            Billing::Month => Some(CreateProductDefaultPriceDataRecurringInterval::Month),
            Billing::Year => Some(CreateProductDefaultPriceDataRecurringInterval::Year),
        }
        .map(CreateProductDefaultPriceDataRecurring::new);
        let mut req = CreateProduct::new(new.name.clone())
            .default_price_data(default)
            .metadata(metadata.clone());
        if let Some(d) = &new.description {
            req = req.description(d.clone());
        }
        let product = self
            .post_as(mode, account, &req, &format!("{key}:product"))
            .await?;
        let id = product.id.to_string();
        for (i, p) in rest.iter().enumerate() {
            self.create_price(mode, account, &id, p, &format!("{key}:price:{}", i + 2))
                .await?;
        }
        Ok(id)
    }

    async fn create_code(
        &self,
        mode: Mode,
        account: &str,
        new: &NewCode,
        key: &str,
    ) -> Result<CodeInfo, GatewayError> {
        let metadata: HashMap<String, String> =
            [("chatpay_request".to_owned(), key.to_owned())].into();
        let mut coupon = CreateCoupon::new()
            .name(new.code.clone())
            .metadata(metadata.clone());
        coupon = match new.off {
            Off::Percent { basis_points } => coupon.percent_off(f64::from(basis_points) / 100.0),
            Off::Amount { amount } => coupon.amount_off(amount.minor).currency(
                amount
                    .currency
                    .as_str()
                    .parse::<stripe_types::Currency>()
                    .map_err(|_| GatewayError::Protocol("unknown currency".to_owned()))?,
            ),
        };
        coupon = match new.duration {
            CodeDuration::Once => coupon.duration(stripe_shared::CouponDuration::Once),
            CodeDuration::Forever => coupon.duration(stripe_shared::CouponDuration::Forever),
            CodeDuration::Repeating { months } => coupon
                .duration(stripe_shared::CouponDuration::Repeating)
                .duration_in_months(i64::from(months)),
        };
        if !new.products.is_empty() {
            let mut applies = CreateCouponAppliesTo::new();
            applies.products = Some(new.products.clone());
            coupon = coupon.applies_to(applies);
        }
        let coupon = self
            .post_as(mode, account, &coupon, &format!("{key}:coupon"))
            .await?;
        let mut promotion =
            CreatePromotionCodePromotion::new(CreatePromotionCodePromotionType::Coupon);
        promotion.coupon = Some(coupon.id.to_string());
        let mut req = CreatePromotionCode::new(promotion)
            .code(new.code.clone())
            .metadata(metadata);
        if let Some(m) = new.max_redemptions {
            req = req.max_redemptions(m);
        }
        if let Some(e) = new.expires_at {
            req = req.expires_at(e);
        }
        if new.first_time {
            let mut r = CreatePromotionCodeRestrictions::new();
            r.first_time_transaction = Some(true);
            req = req.restrictions(r);
        }
        let code = self
            .post_as(mode, account, &req, &format!("{key}:code"))
            .await?;
        let mut info = code_info(&code, Some(&coupon));
        // `applies_to` is only in the answer when expanded: it is what was asked.
        if info.products.is_empty() {
            info.products = new.products.clone();
        }
        Ok(info)
    }

    async fn list_codes(
        &self,
        mode: Mode,
        account: &str,
        code: Option<&str>,
    ) -> Result<Vec<CodeInfo>, GatewayError> {
        let coupons = self
            .send_as(
                mode,
                account,
                // `applies_to` is only sent when asked for (an includable field).
                &ListCoupon::new()
                    .limit(PAGE_SIZE)
                    .expand(vec!["data.applies_to".to_owned()]),
            )
            .await?;
        let mut req = ListPromotionCode::new().limit(PAGE_SIZE);
        if let Some(c) = code {
            req = req.code(c.to_owned());
        }
        let codes = self.send_as(mode, account, &req).await?;
        Ok(codes
            .data
            .iter()
            .filter(|p| code.is_none_or(|c| p.code.eq_ignore_ascii_case(c)))
            .map(|p| {
                let coupon_id = p.promotion.coupon.as_ref().map(|c| c.id().to_string());
                let coupon = coupons
                    .data
                    .iter()
                    .find(|c| Some(c.id.to_string()) == coupon_id);
                code_info(p, coupon)
            })
            .collect())
    }

    async fn set_code_active(
        &self,
        mode: Mode,
        account: &str,
        promotion_code: &str,
        active: bool,
        key: &str,
    ) -> Result<(), GatewayError> {
        let req = UpdatePromotionCode::new(promotion_code).active(active);
        self.post_as(mode, account, &req, key).await?;
        Ok(())
    }

    async fn change_product(
        &self,
        mode: Mode,
        account: &str,
        product: &str,
        edit: &ProductEdit,
        key: &str,
    ) -> Result<(), GatewayError> {
        let update = UpdateProduct::new(product);
        let update = match edit {
            ProductEdit::Reprice { price, old } => {
                // New price, then the default switched to it, then the old one archived: each
                // step with its own key, so a retry after any of them finishes the rest.
                let new = self
                    .create_price(mode, account, product, price, &format!("{key}:price"))
                    .await?;
                self.post_as(
                    mode,
                    account,
                    &UpdateProduct::new(product).default_price(new),
                    &format!("{key}:default"),
                )
                .await?;
                if let Some(old) = old {
                    self.post_as(
                        mode,
                        account,
                        &UpdatePrice::new(old.as_str()).active(false),
                        &format!("{key}:archive"),
                    )
                    .await?;
                }
                return Ok(());
            }
            ProductEdit::Rename { name } => update.name(name.clone()),
            ProductEdit::Describe { description } => update.description(description.clone()),
            ProductEdit::Archive => update.active(false),
            ProductEdit::Restore => update.active(true),
        };
        self.post_as(mode, account, &update, &format!("{key}:product"))
            .await?;
        Ok(())
    }

    async fn create_checkout_session(
        &self,
        mode: Mode,
        account: &str,
        r: &CheckoutRequest,
        key: &str,
    ) -> Result<CreatedSession, GatewayError> {
        let lines: Vec<CreateCheckoutSessionLineItems> = r
            .lines
            .iter()
            .map(|(price, quantity)| {
                let mut line = CreateCheckoutSessionLineItems::new();
                line.price = Some(price.clone());
                line.quantity = Some(u64::try_from(*quantity).unwrap_or(1));
                line
            })
            .collect();
        let metadata: HashMap<String, String> =
            [("chatpay_order".to_owned(), r.order_id.clone())].into();
        let mut req = CreateCheckoutSession::new()
            .line_items(lines)
            .success_url(r.success_url.clone())
            .client_reference_id(r.order_id.clone())
            .metadata(metadata.clone());
        req = match &r.promotion_code {
            // The checkout applies a code: Stripe refuses `allow_promotion_codes` with it.
            Some(code) => {
                let mut discount = CreateCheckoutSessionDiscounts::new();
                discount.promotion_code = Some(code.clone());
                req.discounts(vec![discount])
            }
            // Customers may type a discount code on Stripe's page.
            None => req.allow_promotion_codes(true),
        };
        req = match &r.subscription {
            // Subscription mode: Stripe makes the invoices (the first one carries any one-time
            // items) and their PaymentIntents; the subscription carries the order's id.
            Some(sub) => {
                let mut data = CreateCheckoutSessionSubscriptionData::new();
                data.metadata = Some(metadata);
                data.trial_period_days = sub.trial_period_days;
                data.application_fee_percent = sub.application_fee_percent;
                req.mode(stripe_shared::CheckoutSessionMode::Subscription)
                    .subscription_data(data)
            }
            None => {
                let mut invoice = CreateCheckoutSessionInvoiceCreation::new(true);
                let mut invoice_data = CreateCheckoutSessionInvoiceCreationInvoiceData::new();
                invoice_data.metadata = Some(metadata.clone());
                invoice.invoice_data = Some(invoice_data);
                let mut intent = CreateCheckoutSessionPaymentIntentData::new();
                intent.application_fee_amount = r.application_fee_amount;
                intent.metadata = Some(metadata);
                req.mode(stripe_shared::CheckoutSessionMode::Payment)
                    .payment_intent_data(intent)
                    .invoice_creation(invoice)
            }
        };
        if let Some(url) = &r.cancel_url {
            req = req.cancel_url(url.clone());
        }
        if let Some(email) = &r.customer_email {
            req = req.customer_email(email.clone());
        }
        let session = self.post_as(mode, account, &req, key).await?;
        Ok(CreatedSession {
            id: session.id.to_string(),
            url: session.url.ok_or_else(|| {
                GatewayError::Protocol("the Checkout Session has no url".to_owned())
            })?,
            expires_at: session.expires_at,
            amount_total: session.amount_total,
        })
    }

    async fn read_order(
        &self,
        mode: Mode,
        account: &str,
        session: &str,
    ) -> Result<StripeOrderRead, GatewayError> {
        // One GET for the session with its PaymentIntent, charge, balance transaction and
        // invoice expanded in place (an order is re-read per webhook event: six GETs were most
        // of the cost); an object that comes back as a bare id is read on its own.
        let s = self
            .send_as(
                mode,
                account,
                &RetrieveCheckoutSession::new(session).expand(vec![
                    "payment_intent.latest_charge.balance_transaction".to_owned(),
                    "invoice".to_owned(),
                    // A subscription's checkout has no PaymentIntent of its own: its first
                    // invoice's payment names it.
                    "invoice.payments".to_owned(),
                ]),
            )
            .await?;
        let mut read = StripeOrderRead {
            session_status: s
                .status
                .as_ref()
                .map_or("open", |st| st.as_str())
                .to_owned(),
            payment_status: s.payment_status.as_str().to_owned(),
            customer_email: s
                .customer_details
                .as_ref()
                .and_then(|d| d.email.clone())
                .or(s.customer_email.clone()),
            payment_intent: s.payment_intent.as_ref().map(|p| p.id().to_string()),
            payment_intent_status: None,
            last_payment_error: None,
            charge: None,
            refunds: Vec::new(),
            invoice: None,
            subscription: s.subscription.as_ref().map(|x| x.id().to_string()),
            amount_total: s.amount_total,
            dispute: None,
            fraud_warning: None,
        };
        // A subscription's first invoice is paid by a PaymentIntent of its own (the session has
        // none): the invoice's payments name it, where Stripe lists them.
        let mut invoice_payment: Option<String> = None;
        if let Some(expandable) = &s.invoice
            && let Some(inv) = expandable.id().clone()
        {
            let fetched;
            let invoice = match expandable.as_object() {
                Some(invoice) => invoice,
                None => {
                    fetched = self
                        .send_as(mode, account, &RetrieveInvoice::new(inv.as_str()))
                        .await?;
                    &fetched
                }
            };
            read.invoice = Some(InvoiceInfo {
                id: inv.to_string(),
                number: invoice.number.clone(),
                status: invoice
                    .status
                    .as_ref()
                    .map_or("draft", |st| st.as_str())
                    .to_owned(),
                hosted_invoice_url: invoice.hosted_invoice_url.clone(),
                invoice_pdf: invoice.invoice_pdf.clone(),
            });
            invoice_payment = invoice.payments.as_ref().and_then(|p| {
                p.data.iter().find_map(|x| {
                    x.payment
                        .payment_intent
                        .as_ref()
                        .map(|i| i.id().to_string())
                })
            });
        }
        let intent_ref = match &s.payment_intent {
            Some(e) => Some((e.id().to_string(), e.as_object())),
            None => invoice_payment.map(|id| (id, None)),
        };
        if let Some((pi, expanded)) = intent_ref {
            let fetched;
            let intent = match expanded {
                Some(intent) => intent,
                None => {
                    fetched = self
                        .send_as(mode, account, &RetrievePaymentIntent::new(pi.as_str()))
                        .await?;
                    &fetched
                }
            };
            read.payment_intent = Some(pi.clone());
            read.payment_intent_status = Some(intent.status.as_str().to_owned());
            read.last_payment_error = intent.last_payment_error.as_ref().map(|e| PaymentError {
                code: e.code.as_ref().map(|c| c.as_str().to_owned()),
                decline_code: e.decline_code.clone(),
                message: e
                    .message
                    .clone()
                    .unwrap_or_else(|| "The payment failed.".to_owned()),
            });
            if let Some(ch) = &intent.latest_charge {
                let fetched;
                let charge = match ch.as_object() {
                    Some(charge) => charge,
                    None => {
                        fetched = self
                            .send_as(mode, account, &RetrieveCharge::new(ch.id().as_str()))
                            .await?;
                        &fetched
                    }
                };
                if charge.status.as_str() == "succeeded" {
                    let (available_on, net) = match &charge.balance_transaction {
                        Some(txn) => match txn.as_object() {
                            Some(t) => (Some(t.available_on), Some(t.net)),
                            None => {
                                let t = self
                                    .send_as(
                                        mode,
                                        account,
                                        &RetrieveBalanceTransaction::new(txn.id().as_str()),
                                    )
                                    .await?;
                                (Some(t.available_on), Some(t.net))
                            }
                        },
                        None => (None, None),
                    };
                    if charge.disputed {
                        // Only a disputed charge costs the extra read: its newest dispute.
                        let page = self
                            .send_as(
                                mode,
                                account,
                                &ListDispute::new().charge(charge.id.as_str()).limit(1),
                            )
                            .await?;
                        read.dispute = page.data.first().map(dispute_info);
                    }
                    read.charge = Some(ChargeInfo {
                        id: charge.id.to_string(),
                        receipt_url: charge.receipt_url.clone(),
                        receipt_email: charge.receipt_email.clone(),
                        amount_captured: charge.amount_captured,
                        amount_refunded: charge.amount_refunded,
                        created: charge.created,
                        available_on,
                        net,
                    });
                }
            }
            let mut after: Option<String> = None;
            loop {
                let mut req = ListRefund::new()
                    .payment_intent(pi.as_str())
                    .limit(PAGE_SIZE);
                if let Some(a) = &after {
                    req = req.starting_after(a.clone());
                }
                let page = self.send_as(mode, account, &req).await?;
                read.refunds.extend(page.data.iter().map(refund_info));
                match (page.has_more, page.data.last()) {
                    (true, Some(last)) => after = Some(last.id.to_string()),
                    _ => break,
                }
            }
        }
        Ok(read)
    }

    async fn payment_intent_order(
        &self,
        mode: Mode,
        account: &str,
        payment_intent: &str,
    ) -> Result<Option<String>, GatewayError> {
        match self
            .send_as(mode, account, &RetrievePaymentIntent::new(payment_intent))
            .await
        {
            Ok(pi) => Ok(pi.metadata.get("chatpay_order").cloned()),
            Err(GatewayError::Stripe { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_refund(
        &self,
        mode: Mode,
        account: &str,
        r: &RefundRequest,
        key: &str,
    ) -> Result<RefundInfo, GatewayError> {
        let metadata: HashMap<String, String> = [
            ("chatpay_order".to_owned(), r.order_id.clone()),
            ("chatpay_request".to_owned(), key.to_owned()),
        ]
        .into();
        let mut req = CreateRefund::new()
            .payment_intent(r.payment_intent.clone())
            .metadata(metadata);
        if let Some(amount) = r.amount {
            req = req.amount(amount);
        }
        let refund = self.post_as(mode, account, &req, key).await?;
        Ok(refund_info(&refund))
    }

    async fn resend_receipt(
        &self,
        mode: Mode,
        account: &str,
        charge: &str,
        email: &str,
        key: &str,
    ) -> Result<(), GatewayError> {
        let req = UpdateCharge::new(charge).receipt_email(email);
        self.post_as(mode, account, &req, key).await?;
        Ok(())
    }

    async fn respond_to_dispute(
        &self,
        mode: Mode,
        account: &str,
        dispute: &str,
        evidence: &std::collections::BTreeMap<String, String>,
        key: &str,
    ) -> Result<chatpay_core::disputes::DisputeInfo, GatewayError> {
        let d = if evidence.is_empty() {
            self.post_as(mode, account, &CloseDispute::new(dispute), key)
                .await?
        } else {
            let text = |name: &str| evidence.get(name).cloned();
            let mut e = UpdateDisputeEvidence::new();
            e.customer_email_address = text("customer_email_address");
            e.product_description = text("product_description");
            e.service_date = text("service_date");
            e.uncategorized_text = text("uncategorized_text");
            e.access_activity_log = text("access_activity_log");
            let req = UpdateDispute::new(dispute).evidence(e).submit(true);
            self.post_as(mode, account, &req, key).await?
        };
        Ok(dispute_info(&d))
    }

    async fn fraud_warning(
        &self,
        mode: Mode,
        account: &str,
        charge: &str,
    ) -> Result<Option<chatpay_core::disputes::FraudWarningInfo>, GatewayError> {
        let page = self
            .send_as(
                mode,
                account,
                &ListRadarEarlyFraudWarning::new().charge(charge).limit(1),
            )
            .await?;
        Ok(page
            .data
            .first()
            .map(|w| chatpay_core::disputes::FraudWarningInfo {
                id: w.id.to_string(),
                fraud_type: w.fraud_type.clone(),
                actionable: w.actionable,
                created: w.created,
            }))
    }

    async fn read_subscription(
        &self,
        mode: Mode,
        account: &str,
        subscription: &str,
    ) -> Result<Option<Subscription>, GatewayError> {
        self.read_subscription_now(mode, account, subscription)
            .await
    }

    async fn change_subscription(
        &self,
        mode: Mode,
        account: &str,
        subscription: &str,
        change: SubscriptionChange,
        key: &str,
    ) -> Result<(), GatewayError> {
        self.change_subscription_now(mode, account, subscription, change, key)
            .await
    }

    async fn create_portal_configuration(
        &self,
        mode: Mode,
        account: &str,
        config: &chatpay_core::plans::PortalConfig,
        key: &str,
    ) -> Result<String, GatewayError> {
        self.create_portal_configuration_now(mode, account, config, key)
            .await
    }

    async fn create_portal_session(
        &self,
        mode: Mode,
        account: &str,
        customer: &str,
        configuration: &str,
        return_url: Option<&str>,
        key: &str,
    ) -> Result<String, GatewayError> {
        self.create_portal_session_now(mode, account, customer, configuration, return_url, key)
            .await
    }

    async fn preview_plan_change(
        &self,
        mode: Mode,
        account: &str,
        change: &chatpay_core::plans::PlanChange,
        proration_date: i64,
    ) -> Result<chatpay_core::plans::PlanPreview, GatewayError> {
        self.preview_plan_change_now(mode, account, change, proration_date)
            .await
    }

    async fn change_plan(
        &self,
        mode: Mode,
        account: &str,
        change: &chatpay_core::plans::PlanChange,
        proration_date: Option<i64>,
        key: &str,
    ) -> Result<(), GatewayError> {
        self.change_plan_now(mode, account, change, proration_date, key)
            .await
    }

    async fn balance(&self, mode: Mode, account: &str) -> Result<Balance, GatewayError> {
        self.balance_now(mode, account).await
    }

    async fn payouts(
        &self,
        mode: Mode,
        account: &str,
        limit: i64,
    ) -> Result<Vec<Payout>, GatewayError> {
        self.payouts_now(mode, account, limit).await
    }

    async fn payout(
        &self,
        mode: Mode,
        account: &str,
        payout: &str,
    ) -> Result<Option<Payout>, GatewayError> {
        self.payout_now(mode, account, payout).await
    }
}

fn dispute_info(d: &stripe_shared::Dispute) -> chatpay_core::disputes::DisputeInfo {
    chatpay_core::disputes::DisputeInfo {
        id: d.id.to_string(),
        amount: d.amount,
        reason: d.reason.clone(),
        status: d.status.as_str().to_owned(),
        due_by: d.evidence_details.due_by,
        fee: d.balance_transactions.iter().map(|t| t.fee).sum(),
        submission_count: i64::try_from(d.evidence_details.submission_count).unwrap_or(i64::MAX),
        created: d.created,
    }
}

fn refund_info(r: &stripe_shared::Refund) -> RefundInfo {
    RefundInfo {
        id: r.id.to_string(),
        amount: r.amount,
        status: r.status.clone().unwrap_or_else(|| "pending".to_owned()),
        failure_reason: r.failure_reason.clone(),
        created: r.created,
        request: r
            .metadata
            .as_ref()
            .and_then(|m| m.get("chatpay_request").cloned()),
    }
}

/// A promotion code with what its coupon takes off.
fn code_info(p: &stripe_shared::PromotionCode, coupon: Option<&stripe_shared::Coupon>) -> CodeInfo {
    let discount = coupon.and_then(|c| match (c.percent_off, c.amount_off, &c.currency) {
        (Some(pct), _, _) => Some(Off::Percent {
            basis_points: (pct * 100.0).round() as u32,
        }),
        (None, Some(amount), Some(cur)) => chatpay_core::domain::Currency::parse(&cur.to_string())
            .map(|c| Off::Amount {
                amount: chatpay_core::domain::Money::new(amount, c),
            }),
        _ => None,
    });
    let off = match (&discount, coupon) {
        (Some(d), _) => d.display(),
        (None, Some(c)) => match (c.amount_off, &c.currency) {
            (Some(amount), Some(cur)) => format!("{amount} {cur} off"),
            _ => "a discount".to_owned(),
        },
        (None, None) => "a discount".to_owned(),
    };
    let duration = coupon.map(|c| match c.duration {
        stripe_shared::CouponDuration::Forever => CodeDuration::Forever,
        stripe_shared::CouponDuration::Repeating => CodeDuration::Repeating {
            months: c
                .duration_in_months
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or(1),
        },
        _ => CodeDuration::Once,
    });
    CodeInfo {
        discount,
        duration,
        products: coupon
            .and_then(|c| c.applies_to.as_ref())
            .map(|a| a.products.clone())
            .unwrap_or_default(),
        id: p.id.to_string(),
        code: p.code.clone(),
        active: p.active,
        times_redeemed: p.times_redeemed,
        max_redemptions: p.max_redemptions,
        expires_at: p.expires_at,
        off,
        first_time: p.restrictions.first_time_transaction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let r = Retry {
            attempts: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            timeout: Duration::from_secs(1),
        };
        for attempt in 0..20 {
            assert!(r.backoff(attempt) <= Duration::from_millis(400));
        }
        let waits: std::collections::HashSet<_> = (0..10).map(|_| r.backoff(3)).collect();
        assert!(waits.len() > 1, "jitter varies the wait");
    }

    #[test]
    fn keys_are_redacted_in_debug() {
        let g = StripeGateway::new(StripeSettings {
            test_key: Some(Secret::new("sk_test_supersecretvalue")),
            live_key: None,
            api_base: "http://127.0.0.1:9/".into(),
            connect_base: "http://127.0.0.1:9/".into(),
            connect_client_id: None,
            retry: Retry::default(),
        })
        .unwrap();
        let shown = format!("{g:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
    }
}
