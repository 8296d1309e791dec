//! Contract test of the Stripe sandbox against the real async-stripe 1.0 client: every endpoint
//! and every JSON shape the sandbox produces is parsed by async-stripe's own types, and every
//! webhook is verified and parsed with `stripe_webhook::Webhook::construct_event`. A shape
//! drift fails here.
//!
//! No sleeps for synchronisation: webhooks are awaited with a deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chatpay_http_client::{HttpClient, Response};
use serde_json::{Value, json};
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_connect::account::{
    CreateAccount, CreateAccountBusinessProfile, CreateAccountCapabilities,
    CreateAccountCapabilitiesCardPayments, CreateAccountCapabilitiesTransfers,
    CreateAccountController, CreateAccountControllerFees, CreateAccountControllerFeesPayer,
    CreateAccountControllerLosses, CreateAccountControllerLossesPayments,
    CreateAccountControllerRequirementCollection, CreateAccountControllerStripeDashboard,
    CreateAccountControllerStripeDashboardType, CreateAccountSettings, CreateAccountType,
    DeleteAccount, ListAccount, PaymentsSettingsSpecs, RetrieveAccount, UpdateAccount,
    UpdateAccountBusinessProfile, UpdateAccountSettings, UpdateAccountSettingsPayouts,
    UpdateAccountSettingsPayoutsSchedule, UpdateAccountSettingsPayoutsScheduleInterval,
};
use stripe_connect::account_link::{CreateAccountLink, CreateAccountLinkType};
use stripe_core::event::{ListEvent, RetrieveEvent};
use stripe_product::coupon::{
    CreateCoupon, CreateCouponAppliesTo, DeleteCoupon, ListCoupon, RetrieveCoupon, UpdateCoupon,
};
use stripe_product::price::{
    CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, ListPrice, RetrievePrice,
    UpdatePrice,
};
use stripe_product::product::{
    CreateProduct, CreateProductDefaultPriceData, CreateProductDefaultPriceDataRecurring,
    CreateProductDefaultPriceDataRecurringInterval, DeleteProduct, ListProduct, RetrieveProduct,
    SearchProduct, UpdateProduct,
};
use stripe_product::promotion_code::{
    CreatePromotionCode, CreatePromotionCodePromotion, CreatePromotionCodePromotionType,
    CreatePromotionCodeRestrictions, ListPromotionCode, RetrievePromotionCode, UpdatePromotionCode,
};
use stripe_sandbox::{
    DeliveryConfig, DeliveryState, Fault, FaultAction, OAuthAuthorize, RateLimit, Sandbox,
    SandboxConfig, SeedCatalog, VerificationOutcome,
};
use stripe_shared::{
    Account, AccountId, AccountRequirementsDisabledReason, AccountType, ApiErrors, ApiErrorsCode,
    ApiErrorsType, CouponDuration, PriceType,
};
use stripe_types::Currency;
use stripe_webhook::{Event, EventObject, Webhook};
use tokio::sync::{Mutex, mpsc};

const SECRET: &str = "whsec_contract_test";
const RETURN_URL: &str = "https://app.example/return";
const REFRESH_URL: &str = "https://app.example/refresh";
const WAIT: Duration = Duration::from_secs(15);

fn fast_delivery() -> DeliveryConfig {
    DeliveryConfig {
        max_attempts: 4,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
        concurrency: 4,
    }
}

async fn start(config: SandboxConfig) -> Sandbox {
    Sandbox::start(SandboxConfig {
        delivery: fast_delivery(),
        ..config
    })
    .await
    .expect("sandbox starts")
}

async fn sandbox() -> Sandbox {
    start(SandboxConfig::default()).await
}

fn client(sandbox: &Sandbox, key: &str) -> Client {
    ClientBuilder::new(key)
        .url(sandbox.base_url())
        .build()
        .expect("client builds")
}

fn test_client(sandbox: &Sandbox) -> Client {
    client(sandbox, &sandbox.config().test_secret_key)
}

fn live_client(sandbox: &Sandbox) -> Client {
    client(sandbox, &sandbox.config().live_secret_key)
}

/// The Stripe error of a failed call, with its status.
fn stripe_error<T: std::fmt::Debug>(result: Result<T, StripeError>) -> (ApiErrors, u16) {
    match result {
        Err(StripeError::Stripe(error, status)) => (*error, status),
        other => panic!("expected a Stripe error, got {other:?}"),
    }
}

fn acct(id: &str) -> AccountId {
    AccountId::from(id)
}

// ---- webhook receiver ----

struct Received {
    payload: String,
    signature: String,
}

#[derive(Clone)]
struct HookState {
    tx: mpsc::UnboundedSender<Received>,
    /// Answer 500 to this many deliveries first.
    fail: Arc<AtomicU32>,
}

/// A tiny webhook endpoint on port 0; verifies and parses every delivery.
struct Hooks {
    url: String,
    rx: Mutex<mpsc::UnboundedReceiver<Received>>,
    seen: Mutex<Vec<Event>>,
    fail: Arc<AtomicU32>,
}

async fn receive(State(s): State<HookState>, headers: HeaderMap, body: String) -> StatusCode {
    let failing = s
        .fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let _ = s.tx.send(Received {
        payload: body,
        signature,
    });
    StatusCode::OK
}

impl Hooks {
    async fn start() -> Hooks {
        let (tx, rx) = mpsc::unbounded_channel();
        let fail = Arc::new(AtomicU32::new(0));
        let state = HookState {
            tx,
            fail: fail.clone(),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hooks {
            url: format!("http://{addr}/hook"),
            rx: Mutex::new(rx),
            seen: Mutex::new(Vec::new()),
            fail,
        }
    }

    /// Receives one delivery: the signature must verify and the payload parse.
    async fn next(&self) -> Event {
        let received = tokio::time::timeout(WAIT, self.rx.lock().await.recv())
            .await
            .expect("a webhook arrives before the deadline")
            .expect("receiver open");
        let event = Webhook::construct_event(&received.payload, &received.signature, SECRET)
            .unwrap_or_else(|e| {
                panic!("webhook must verify and parse: {e:?}\n{}", received.payload)
            });
        self.seen.lock().await.push(event.clone());
        event
    }

    /// Waits for the first delivered event (earlier or later) that `pick` accepts.
    async fn wait_for(&self, what: &str, pick: impl Fn(&Event) -> bool) -> Event {
        if let Some(e) = self.seen.lock().await.iter().find(|e| pick(e)) {
            return e.clone();
        }
        loop {
            let e = self.next().await;
            if pick(&e) {
                return e;
            }
            assert!(
                self.seen.lock().await.len() < 10_000,
                "never received {what}"
            );
        }
    }

    async fn wait_type(&self, kind: &str, object_id: &str) -> Event {
        self.wait_for(kind, |e| {
            e.type_.as_str() == kind && object_id_of(e).as_deref() == Some(object_id)
        })
        .await
    }
}

/// The id of an event's object (or the account of an application event).
fn object_id_of(e: &Event) -> Option<String> {
    Some(match &e.data.object {
        EventObject::AccountUpdated(a) => a.id.to_string(),
        EventObject::AccountApplicationAuthorized(_)
        | EventObject::AccountApplicationDeauthorized(_) => e.account.clone()?,
        EventObject::ProductCreated(p)
        | EventObject::ProductUpdated(p)
        | EventObject::ProductDeleted(p) => p.id.to_string(),
        EventObject::PriceCreated(p)
        | EventObject::PriceUpdated(p)
        | EventObject::PriceDeleted(p) => p.id.to_string(),
        EventObject::CouponCreated(c)
        | EventObject::CouponUpdated(c)
        | EventObject::CouponDeleted(c) => c.id.to_string(),
        EventObject::PromotionCodeCreated(p) | EventObject::PromotionCodeUpdated(p) => {
            p.id.to_string()
        }
        _ => return None,
    })
}

// ---- helpers ----

fn standard_account() -> CreateAccount {
    let mut profile = CreateAccountBusinessProfile::new();
    profile.name = Some("Bright Yoga".into());
    profile.mcc = Some("7997".into());
    profile.product_description = Some("Yoga classes".into());
    let mut caps = CreateAccountCapabilities::new();
    let mut card = CreateAccountCapabilitiesCardPayments::new();
    card.requested = Some(true);
    caps.card_payments = Some(card);
    let mut transfers = CreateAccountCapabilitiesTransfers::new();
    transfers.requested = Some(true);
    caps.transfers = Some(transfers);
    let mut settings = CreateAccountSettings::new();
    let mut payments = PaymentsSettingsSpecs::new();
    payments.statement_descriptor = Some("BRIGHT YOGA".into());
    settings.payments = Some(payments);
    CreateAccount::new()
        .type_(CreateAccountType::Standard)
        .country("US")
        .email("owner@brightyoga.example")
        .business_profile(profile)
        .capabilities(caps)
        .settings(settings)
        .metadata(HashMap::from([("project".to_owned(), "prj_1".to_owned())]))
}

async fn new_account(client: &Client) -> Account {
    standard_account()
        .send(client)
        .await
        .expect("account created")
}

async fn link(
    client: &Client,
    account: &str,
    kind: CreateAccountLinkType,
) -> Result<stripe_connect::AccountLink, StripeError> {
    CreateAccountLink::new(account, kind)
        .refresh_url(REFRESH_URL)
        .return_url(RETURN_URL)
        .send(client)
        .await
}

fn disabled_reason(a: &Account) -> Option<AccountRequirementsDisabledReason> {
    a.requirements
        .as_ref()
        .and_then(|r| r.disabled_reason.clone())
}

fn currently_due(a: &Account) -> Vec<String> {
    a.requirements
        .as_ref()
        .and_then(|r| r.currently_due.clone())
        .unwrap_or_default()
}

// ---- tests ----

#[tokio::test]
async fn accounts_have_stripe_shapes_and_requirements() {
    let sandbox = sandbox().await;
    let c = test_client(&sandbox);

    let account = new_account(&c).await;
    assert!(account.id.as_str().starts_with("acct_"));
    assert_eq!(account.type_, Some(AccountType::Standard));
    assert_eq!(account.details_submitted, Some(false));
    assert_eq!(account.charges_enabled, Some(false));
    assert_eq!(account.payouts_enabled, Some(false));
    assert_eq!(account.country.as_deref(), Some("US"));
    assert_eq!(account.default_currency, Some(Currency::USD));
    assert_eq!(account.email.as_deref(), Some("owner@brightyoga.example"));
    let due = currently_due(&account);
    for field in [
        "external_account",
        "individual.first_name",
        "tos_acceptance.date",
        "tos_acceptance.ip",
    ] {
        assert!(due.iter().any(|d| d == field), "{field} in {due:?}");
    }
    assert!(
        !due.iter().any(|d| d == "business_profile.mcc"),
        "mcc was given"
    );
    assert_eq!(
        disabled_reason(&account),
        Some(AccountRequirementsDisabledReason::RequirementsPastDue)
    );
    let settings = account.settings.as_ref().unwrap();
    let schedule = &settings.payouts.as_ref().unwrap().schedule;
    assert_eq!(
        (schedule.delay_days, schedule.interval.as_str()),
        (7, "daily")
    );
    assert_eq!(
        settings.payments.statement_descriptor.as_deref(),
        Some("BRIGHT YOGA")
    );
    let controller = account.controller.as_ref().unwrap();
    assert_eq!(controller.is_controller, Some(true));
    assert!(account.external_accounts.as_ref().unwrap().data.is_empty());
    assert_eq!(
        account.business_profile.as_ref().unwrap().name.as_deref(),
        Some("Bright Yoga")
    );
    assert!(
        account
            .capabilities
            .as_ref()
            .unwrap()
            .card_payments
            .is_some()
    );
    assert_eq!(account.metadata.as_ref().unwrap()["project"], "prj_1");

    let fetched = RetrieveAccount::new(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(fetched.id, account.id);

    // Update: business URL and payout schedule.
    let mut profile = UpdateAccountBusinessProfile::new();
    profile.url = Some("https://brightyoga.example".into());
    let mut schedule = UpdateAccountSettingsPayoutsSchedule::new();
    schedule.interval = Some(UpdateAccountSettingsPayoutsScheduleInterval::Weekly);
    let mut payouts = UpdateAccountSettingsPayouts::new();
    payouts.schedule = Some(schedule);
    let mut settings = UpdateAccountSettings::new();
    settings.payouts = Some(payouts);
    let updated = UpdateAccount::new(account.id.clone())
        .business_profile(profile)
        .settings(settings)
        .send(&c)
        .await
        .unwrap();
    let schedule = &updated.settings.unwrap().payouts.unwrap().schedule;
    assert_eq!(schedule.interval, "weekly");
    assert_eq!(schedule.weekly_anchor.as_deref(), Some("monday"));
    assert_eq!(
        updated.business_profile.unwrap().url.as_deref(),
        Some("https://brightyoga.example")
    );

    // Express and controller-described (Custom-like) accounts.
    let express = CreateAccount::new()
        .type_(CreateAccountType::Express)
        .send(&c)
        .await
        .unwrap();
    assert_eq!(express.type_, Some(AccountType::Express));
    let mut controller = CreateAccountController::new();
    let mut fees = CreateAccountControllerFees::new();
    fees.payer = Some(CreateAccountControllerFeesPayer::Application);
    controller.fees = Some(fees);
    let mut losses = CreateAccountControllerLosses::new();
    losses.payments = Some(CreateAccountControllerLossesPayments::Application);
    controller.losses = Some(losses);
    controller.requirement_collection =
        Some(CreateAccountControllerRequirementCollection::Application);
    let mut dashboard = CreateAccountControllerStripeDashboard::new();
    dashboard.type_ = Some(CreateAccountControllerStripeDashboardType::None);
    controller.stripe_dashboard = Some(dashboard);
    let custom = CreateAccount::new()
        .controller(controller)
        .country("GB")
        .send(&c)
        .await
        .unwrap();
    assert_eq!(custom.type_, Some(AccountType::Custom));
    assert_eq!(custom.default_currency, Some(Currency::GBP));
    // The platform collects a Custom account's requirements: account_update links work.
    let update_link = link(&c, custom.id.as_str(), CreateAccountLinkType::AccountUpdate)
        .await
        .unwrap();
    let followed = sandbox
        .follow_account_link(&update_link.url, VerificationOutcome::Pending)
        .unwrap();
    assert!(followed.completed);

    // Paging, newest first.
    let page = ListAccount::new().limit(2).send(&c).await.unwrap();
    assert_eq!(page.data.len(), 2);
    assert!(page.has_more);
    assert_eq!(page.url, "/v1/accounts");
    assert_eq!(page.data[0].id, custom.id);
    let rest = ListAccount::new()
        .limit(2)
        .starting_after(page.data[1].id.as_str())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(rest.data.len(), 1);
    assert!(!rest.has_more);
    assert_eq!(rest.data[0].id, account.id);

    // Delete (test mode).
    let deleted = DeleteAccount::new(express.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(deleted.id, express.id);
    let (err, status) = stripe_error(RetrieveAccount::new(express.id.clone()).send(&c).await);
    assert_eq!(status, 404);
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn account_links_onboard_and_expire() {
    let sandbox = sandbox().await;
    let hooks = Hooks::start().await;
    sandbox.set_webhook_endpoint(&hooks.url, SECRET);
    let c = test_client(&sandbox);
    let account = new_account(&c).await;

    let l = link(
        &c,
        account.id.as_str(),
        CreateAccountLinkType::AccountOnboarding,
    )
    .await
    .unwrap();
    assert!(
        l.url
            .starts_with(&format!("{}onboarding/", sandbox.base_url()))
    );
    assert_eq!(l.expires_at - l.created, 300);

    let followed = sandbox
        .follow_account_link(&l.url, VerificationOutcome::Verified)
        .unwrap();
    assert!(followed.completed);
    assert_eq!(followed.redirect_to, RETURN_URL);
    let verified = RetrieveAccount::new(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(verified.details_submitted, Some(true));
    assert_eq!(verified.charges_enabled, Some(true));
    assert_eq!(verified.payouts_enabled, Some(true));
    assert!(currently_due(&verified).is_empty());
    assert_eq!(disabled_reason(&verified), None);
    let banks = &verified.external_accounts.as_ref().unwrap().data;
    assert_eq!(banks.len(), 1);
    match &banks[0] {
        stripe_shared::ExternalAccount::BankAccount(b) => assert_eq!(b.last4, "6789"),
        other => panic!("expected a bank account, got {other:?}"),
    }
    assert_eq!(
        verified.individual.as_ref().unwrap().first_name.as_deref(),
        Some("Jenny")
    );
    assert!(verified.tos_acceptance.as_ref().unwrap().date.is_some());

    let event = hooks
        .wait_type("account.updated", account.id.as_str())
        .await;
    assert_eq!(event.account.as_deref(), Some(account.id.as_str()));
    assert!(event.data.previous_attributes.is_some());
    match &event.data.object {
        EventObject::AccountUpdated(a) => assert_eq!(a.charges_enabled, Some(true)),
        other => panic!("unexpected object {other:?}"),
    }

    // Single use: following again goes to refresh_url.
    let again = sandbox
        .follow_account_link(&l.url, VerificationOutcome::Verified)
        .unwrap();
    assert!(!again.completed);
    assert_eq!(again.redirect_to, REFRESH_URL);

    // Expiry.
    let l2 = link(
        &c,
        account.id.as_str(),
        CreateAccountLinkType::AccountOnboarding,
    )
    .await
    .unwrap();
    sandbox.advance_clock(Duration::from_secs(301));
    let expired = sandbox
        .follow_account_link(&l2.url, VerificationOutcome::Verified)
        .unwrap();
    assert_eq!(expired.redirect_to, REFRESH_URL);

    // account_update is only for platform-collected (Custom) accounts.
    let (err, status) = stripe_error(
        link(
            &c,
            account.id.as_str(),
            CreateAccountLinkType::AccountUpdate,
        )
        .await,
    );
    assert_eq!(status, 400);
    assert_eq!(err.param.as_deref(), Some("type"));
    let (err, _) = stripe_error(
        link(
            &c,
            "acct_1doesnotexist",
            CreateAccountLinkType::AccountOnboarding,
        )
        .await,
    );
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn verification_outcomes_move_the_account() {
    let sandbox = sandbox().await;
    let hooks = Hooks::start().await;
    sandbox.set_webhook_endpoint(&hooks.url, SECRET);
    let c = test_client(&sandbox);
    let account = new_account(&c).await;
    let id = account.id.as_str();
    let fetch = || async { RetrieveAccount::new(account.id.clone()).send(&c).await };

    // Pending, then resolved.
    let l = link(&c, id, CreateAccountLinkType::AccountOnboarding)
        .await
        .unwrap();
    sandbox
        .follow_account_link(&l.url, VerificationOutcome::Pending)
        .unwrap();
    let a = fetch().await.unwrap();
    assert_eq!(a.details_submitted, Some(true));
    assert_eq!(a.charges_enabled, Some(false));
    assert_eq!(
        disabled_reason(&a),
        Some(AccountRequirementsDisabledReason::RequirementsPendingVerification)
    );
    assert!(
        !a.requirements
            .as_ref()
            .unwrap()
            .pending_verification
            .as_ref()
            .unwrap()
            .is_empty()
    );
    sandbox
        .set_verification(id, VerificationOutcome::Verified)
        .unwrap();
    let a = fetch().await.unwrap();
    assert_eq!(a.payouts_enabled, Some(true));

    // More information needed, then past due.
    let deadline = chrono::Utc::now().timestamp() + 86_400;
    sandbox
        .set_verification(
            id,
            VerificationOutcome::MoreInfo {
                requirement: "individual.verification.document".into(),
                deadline: Some(deadline),
                past_due: false,
                error_code: None,
            },
        )
        .unwrap();
    let a = fetch().await.unwrap();
    let r = a.requirements.as_ref().unwrap();
    assert_eq!(a.charges_enabled, Some(true));
    assert_eq!(a.payouts_enabled, Some(false));
    assert_eq!(r.current_deadline, Some(deadline));
    assert_eq!(
        r.currently_due.as_deref(),
        Some(&["individual.verification.document".to_owned()][..])
    );
    let error = &r.errors.as_ref().unwrap()[0];
    assert_eq!(error.requirement, "individual.verification.document");
    assert_eq!(
        error.code,
        stripe_shared::AccountRequirementsErrorCode::VerificationDocumentFailedOther
    );
    sandbox
        .set_verification(
            id,
            VerificationOutcome::MoreInfo {
                requirement: "business_profile.url".into(),
                deadline: Some(deadline),
                past_due: true,
                error_code: Some("invalid_url_website_inaccessible".into()),
            },
        )
        .unwrap();
    let a = fetch().await.unwrap();
    assert_eq!(a.charges_enabled, Some(false));
    assert_eq!(
        disabled_reason(&a),
        Some(AccountRequirementsDisabledReason::RequirementsPastDue)
    );

    // Every rejection reason, including the 2026-09-30 platform ones.
    for (reason, expected) in [
        (
            "rejected.fraud",
            AccountRequirementsDisabledReason::RejectedFraud,
        ),
        (
            "rejected.terms_of_service",
            AccountRequirementsDisabledReason::RejectedTermsOfService,
        ),
        (
            "rejected.listed",
            AccountRequirementsDisabledReason::RejectedListed,
        ),
        (
            "rejected.other",
            AccountRequirementsDisabledReason::RejectedOther,
        ),
        (
            "rejected.incomplete_verification",
            AccountRequirementsDisabledReason::RejectedIncompleteVerification,
        ),
        (
            "rejected.platform_fraud",
            AccountRequirementsDisabledReason::RejectedPlatformFraud,
        ),
        (
            "rejected.platform_terms_of_service",
            AccountRequirementsDisabledReason::RejectedPlatformTermsOfService,
        ),
        (
            "rejected.platform_other",
            AccountRequirementsDisabledReason::RejectedPlatformOther,
        ),
    ] {
        sandbox
            .set_verification(
                id,
                VerificationOutcome::Rejected {
                    reason: reason.into(),
                },
            )
            .unwrap();
        let a = fetch().await.unwrap();
        assert_eq!(disabled_reason(&a), Some(expected), "{reason}");
        assert_eq!(a.charges_enabled, Some(false));
        assert_eq!(a.payouts_enabled, Some(false));
    }
    sandbox
        .set_verification(
            id,
            VerificationOutcome::Disabled {
                reason: "under_review".into(),
            },
        )
        .unwrap();
    assert_eq!(
        disabled_reason(&fetch().await.unwrap()),
        Some(AccountRequirementsDisabledReason::UnderReview)
    );
    assert!(
        sandbox
            .set_verification(
                id,
                VerificationOutcome::Rejected {
                    reason: "because".into()
                }
            )
            .is_err()
    );

    // Every change emitted a parseable account.updated (13 changes, plus none for the bad one).
    let updates = sandbox.events(Some("account.updated"));
    assert_eq!(updates.len(), 13);
    for summary in &updates {
        hooks
            .wait_for("each account.updated", |e| e.id.as_str() == summary.id)
            .await;
    }
    sandbox.shutdown().await;
}

/// An `account.updated` payload, read as chatpay keeps an account, equals a fresh read of the
/// account: the webhook's evidence (which spares a read when it equals what is stored) uses the
/// same reading as the gateway.
#[tokio::test]
async fn an_account_updated_payload_reads_as_a_fresh_read_does() {
    let sandbox = sandbox().await;
    let c = test_client(&sandbox);
    let account = new_account(&c).await;
    let id = account.id.as_str();
    let l = link(&c, id, CreateAccountLinkType::AccountOnboarding)
        .await
        .unwrap();
    sandbox
        .follow_account_link(&l.url, VerificationOutcome::Verified)
        .unwrap();
    let latest = sandbox
        .events(Some("account.updated"))
        .into_iter()
        .rfind(|e| e.account.as_deref() == Some(id))
        .expect("an account.updated for the account");
    let auth = format!("Bearer {}", sandbox.config().test_secret_key);
    let http = HttpClient::new(Duration::from_secs(10));
    let res = http
        .send(
            "GET",
            &format!("{}v1/events/{}", sandbox.base_url(), latest.id),
            &[("authorization", auth.as_str()), ("stripe-account", id)],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    let event = chatpay_stripe::webhook::EventEnvelope::parse(res.text().as_bytes()).unwrap();
    let fresh = RetrieveAccount::new(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    match event.input() {
        Some(chatpay_core::flows::Outside::AccountChanged {
            evidence: Some(snapshot),
            ..
        }) => {
            assert_eq!(*snapshot, chatpay_stripe::client::snapshot(&fresh));
            assert!(snapshot.charges_enabled, "{snapshot:?}");
        }
        other => panic!("no account evidence: {other:?}"),
    }
    sandbox.shutdown().await;
}

fn form_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn location(r: &Response) -> &str {
    r.header("location").unwrap_or_default()
}

#[tokio::test]
async fn hosted_onboarding_page_works_over_plain_http() {
    let sandbox = sandbox().await;
    let c = test_client(&sandbox);
    let http = HttpClient::default();
    let account = new_account(&c).await;
    let id = account.id.as_str();

    // A browser: GET the form, POST it back with its session.
    let l = link(&c, id, CreateAccountLinkType::AccountOnboarding)
        .await
        .unwrap();
    let page = http.get(&l.url, &[]).await.unwrap();
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("<form method=\"post\""));
    assert!(html.contains("110000000") && html.contains("000123456789"));
    assert!(html.contains("rejected.platform_fraud"));
    let session = html
        .split("name=\"session\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let fields = form_of(&[
        ("first_name", "Ada"),
        ("last_name", "Lovelace"),
        ("dob", "1990-12-10"),
        ("business_name", "Bright Yoga"),
        ("url", "https://brightyoga.example"),
        ("mcc", "7997"),
        ("routing_number", "110000000"),
        ("account_number", "000123456789"),
        ("outcome", "more_info"),
        ("requirement", "individual.verification.document"),
    ]);
    let mut with_session = fields.clone();
    with_session.push(("session".into(), session));
    let pairs: Vec<(&str, &str)> = with_session
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // A bad submission shows the form again with the problems.
    let mut bad = pairs.clone();
    bad.retain(|(k, _)| *k != "dob");
    let shown = http.post_form(&l.url, &[], &bad).await.unwrap();
    assert_eq!(shown.status, 400);
    assert!(shown.text().contains("date of birth"));
    let done = http.post_form(&l.url, &[], &pairs).await.unwrap();
    assert_eq!(done.status, 303);
    assert_eq!(location(&done), RETURN_URL);
    let a = RetrieveAccount::new(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(a.payouts_enabled, Some(false));
    assert_eq!(a.charges_enabled, Some(true));
    assert_eq!(a.individual.unwrap().last_name.as_deref(), Some("Lovelace"));
    // Visiting a used link sends the browser to refresh_url.
    let revisit = http.get(&l.url, &[]).await.unwrap();
    assert_eq!(revisit.status, 302);
    assert_eq!(location(&revisit), REFRESH_URL);

    // A plain HTTP client may POST a fresh link directly.
    let l2 = link(&c, id, CreateAccountLinkType::AccountOnboarding)
        .await
        .unwrap();
    let mut direct = fields.clone();
    direct.retain(|(k, _)| k != "outcome");
    direct.push(("outcome".into(), "verified".into()));
    let pairs: Vec<(&str, &str)> = direct
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let done = http.post_form(&l2.url, &[], &pairs).await.unwrap();
    assert_eq!(done.status, 303);
    let a = RetrieveAccount::new(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(a.payouts_enabled, Some(true));

    // Expired links redirect too; unknown ones are a 404 page.
    let l3 = link(&c, id, CreateAccountLinkType::AccountOnboarding)
        .await
        .unwrap();
    sandbox.advance_clock(Duration::from_secs(600));
    let expired = http.get(&l3.url, &[]).await.unwrap();
    assert_eq!(expired.status, 302);
    assert_eq!(location(&expired), REFRESH_URL);
    let unknown = http
        .get(&format!("{}onboarding/nope", sandbox.base_url()), &[])
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn products_and_prices_on_a_connected_account() {
    let sandbox = sandbox().await;
    let hooks = Hooks::start().await;
    sandbox.set_webhook_endpoint(&hooks.url, SECRET);
    let c = test_client(&sandbox);
    let account = new_account(&c).await;
    let on = |id: &AccountId| id.clone();

    let mut default_price = CreateProductDefaultPriceData::new(Currency::USD);
    default_price.unit_amount = Some(2_000);
    default_price.recurring = Some(CreateProductDefaultPriceDataRecurring::new(
        CreateProductDefaultPriceDataRecurringInterval::Month,
    ));
    let product = CreateProduct::new("Monthly membership")
        .description("Unlimited classes")
        .default_price_data(default_price)
        .metadata(HashMap::from([("sku".to_owned(), "m-1".to_owned())]))
        .customize()
        .account_id(on(&account.id))
        .send(&c)
        .await
        .unwrap();
    assert!(product.id.as_str().starts_with("prod_"));
    assert!(product.active);
    assert!(!product.livemode);
    assert_eq!(product.metadata["sku"], "m-1");
    let default_price_id = product
        .default_price
        .as_ref()
        .map(|p| p.id().to_string())
        .expect("default price set");
    hooks
        .wait_type("product.created", product.id.as_str())
        .await;
    let created = hooks.wait_type("price.created", &default_price_id).await;
    assert_eq!(created.account.as_deref(), Some(account.id.as_str()));

    let price = RetrievePrice::new(default_price_id.as_str())
        .customize()
        .account_id(on(&account.id))
        .send(&c)
        .await
        .unwrap();
    assert_eq!(price.unit_amount, Some(2_000));
    assert_eq!(price.type_, PriceType::Recurring);
    assert_eq!(price.recurring.as_ref().unwrap().interval_count, 1);
    assert_eq!(price.product.id().as_str(), product.id.as_str());

    let one_time = CreatePrice::new(Currency::EUR)
        .product(product.id.as_str())
        .unit_amount(1_500)
        .nickname("Drop-in")
        .customize()
        .account_id(on(&account.id))
        .send(&c)
        .await
        .unwrap();
    assert_eq!(one_time.type_, PriceType::OneTime);
    assert_eq!(one_time.currency, Currency::EUR);
    let yearly = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(20_000)
        .recurring(CreatePriceRecurring::new(
            CreatePriceRecurringInterval::Year,
        ))
        .customize()
        .account_id(on(&account.id))
        .send(&c)
        .await
        .unwrap();

    // Updates emit *.updated with previous_attributes.
    let renamed = UpdateProduct::new(product.id.clone())
        .name("Membership")
        .customize()
        .account_id(on(&account.id))
        .send(&c)
        .await
        .unwrap();
    assert_eq!(renamed.name, "Membership");
    assert!(renamed.updated >= product.updated);
    let updated = hooks
        .wait_type("product.updated", product.id.as_str())
        .await;
    assert!(updated.data.previous_attributes.is_some());
    let recorded = sandbox
        .events(Some("product.updated"))
        .into_iter()
        .find(|s| s.id == updated.id.as_str())
        .unwrap();
    assert_eq!(
        recorded.event["data"]["previous_attributes"]["name"],
        "Monthly membership"
    );

    let archived = UpdatePrice::new(one_time.id.clone())
        .active(false)
        .customize()
        .account_id(on(&account.id))
        .send(&c)
        .await
        .unwrap();
    assert!(!archived.active);
    hooks.wait_type("price.updated", one_time.id.as_str()).await;
    // The default price cannot be archived.
    let (err, status) = stripe_error(
        UpdatePrice::new(default_price_id.as_str())
            .active(false)
            .customize()
            .account_id(on(&account.id))
            .send(&c)
            .await,
    );
    assert_eq!((status, err.param.as_deref()), (400, Some("active")));

    // Filters.
    let active_recurring = ListPrice::new()
        .product(product.id.as_str())
        .type_(PriceType::Recurring)
        .active(true)
        .customize()
        .account_id(on(&account.id))
        .send(&c)
        .await
        .unwrap();
    let ids: Vec<&str> = active_recurring
        .data
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(ids, [yearly.id.as_str(), default_price_id.as_str()]);
    assert_eq!(active_recurring.url, "/v1/prices");

    // A product with prices cannot be deleted; one without can.
    let (err, _) = stripe_error(
        DeleteProduct::new(product.id.clone())
            .customize()
            .account_id(on(&account.id))
            .send(&c)
            .await,
    );
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    let lonely = CreateProduct::new("Gift card")
        .customize()
        .account_id(on(&account.id))
        .send(&c)
        .await
        .unwrap();
    let deleted = DeleteProduct::new(lonely.id.clone())
        .customize()
        .account_id(on(&account.id))
        .send(&c)
        .await
        .unwrap();
    assert_eq!(deleted.id, lonely.id);
    hooks.wait_type("product.deleted", lonely.id.as_str()).await;

    // price.deleted (a Dashboard-only action) through the test control.
    let extra = CreatePrice::new(Currency::GBP)
        .product(product.id.as_str())
        .unit_amount(999)
        .customize()
        .account_id(on(&account.id))
        .send(&c)
        .await
        .unwrap();
    sandbox.delete_price(extra.id.as_str()).unwrap();
    let gone = hooks.wait_type("price.deleted", extra.id.as_str()).await;
    assert!(matches!(gone.data.object, EventObject::PriceDeleted(_)));
    sandbox.shutdown().await;
}

/// A promotion for `coupon`.
fn promotion(coupon: &str) -> CreatePromotionCodePromotion {
    let mut p = CreatePromotionCodePromotion::new(CreatePromotionCodePromotionType::Coupon);
    p.coupon = Some(coupon.to_owned());
    p
}

#[tokio::test]
async fn coupons_on_a_connected_account() {
    let sandbox = sandbox().await;
    let hooks = Hooks::start().await;
    sandbox.set_webhook_endpoint(&hooks.url, SECRET);
    let c = test_client(&sandbox);
    let account = new_account(&c).await;
    let on = || account.id.clone();
    let now = chrono::Utc::now().timestamp();
    let mat = CreateProduct::new("Yoga mat")
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();

    // A repeating percentage coupon, limited to one product, with a custom id.
    let mut applies = CreateCouponAppliesTo::new();
    applies.products = Some(vec![mat.id.to_string()]);
    let summer = CreateCoupon::new()
        .id("SUMMER")
        .name("Summer sale")
        .percent_off(25.0)
        .duration(CouponDuration::Repeating)
        .duration_in_months(3)
        .max_redemptions(10)
        .redeem_by(now + 30 * 86_400)
        .applies_to(applies)
        .metadata(HashMap::from([("campaign".to_owned(), "s1".to_owned())]))
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(summer.id.as_str(), "SUMMER");
    assert_eq!(summer.percent_off, Some(25.0));
    assert_eq!(summer.duration, CouponDuration::Repeating);
    assert_eq!(summer.duration_in_months, Some(3));
    assert_eq!((summer.times_redeemed, summer.valid), (0, true));
    assert!(!summer.livemode);
    // `applies_to` is includable: only when expanded.
    assert!(summer.applies_to.is_none());
    let expanded = RetrieveCoupon::new("SUMMER")
        .expand(vec!["applies_to".to_owned()])
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(
        expanded.applies_to.unwrap().products,
        vec![mat.id.to_string()]
    );
    hooks.wait_type("coupon.created", "SUMMER").await;
    // An amount off needs its currency; generated ids look like Stripe's.
    let five_off = CreateCoupon::new()
        .amount_off(500)
        .currency(Currency::USD)
        .duration(CouponDuration::Forever)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(five_off.id.as_str().len(), 8);
    assert_eq!(
        (five_off.amount_off, five_off.currency),
        (Some(500), Some(Currency::USD))
    );
    assert_eq!(five_off.duration_in_months, None);

    // Stripe's rules.
    let refused = |req: CreateCoupon| {
        let c = c.clone();
        let on = on();
        Box::pin(async move { stripe_error(req.customize().account_id(on).send(&c).await) })
    };
    let (err, status) = refused(CreateCoupon::new().percent_off(10.0).amount_off(100)).await;
    assert_eq!(status, 400);
    assert_eq!(err.code, Some(ApiErrorsCode::ParametersExclusive));
    let (err, _) = refused(CreateCoupon::new().amount_off(100)).await;
    assert_eq!(err.param.as_deref(), Some("currency"));
    let (err, _) = refused(CreateCoupon::new()).await;
    assert_eq!(err.code, Some(ApiErrorsCode::ParameterMissing));
    let (err, _) = refused(
        CreateCoupon::new()
            .percent_off(10.0)
            .duration(CouponDuration::Repeating),
    )
    .await;
    assert_eq!(err.param.as_deref(), Some("duration_in_months"));
    let (err, _) = refused(CreateCoupon::new().percent_off(10.0).duration_in_months(2)).await;
    assert_eq!(err.param.as_deref(), Some("duration_in_months"));
    let (err, _) = refused(CreateCoupon::new().percent_off(120.0)).await;
    assert_eq!(err.param.as_deref(), Some("percent_off"));
    let (err, _) = refused(CreateCoupon::new().percent_off(10.0).redeem_by(now - 60)).await;
    assert_eq!(err.param.as_deref(), Some("redeem_by"));
    let (err, _) = refused(CreateCoupon::new().id("SUMMER").percent_off(5.0)).await;
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceAlreadyExists));
    let mut nowhere = CreateCouponAppliesTo::new();
    nowhere.products = Some(vec!["prod_missing".to_owned()]);
    let (err, status) = refused(CreateCoupon::new().percent_off(5.0).applies_to(nowhere)).await;
    assert_eq!(
        (status, err.code),
        (400, Some(ApiErrorsCode::ResourceMissing))
    );
    assert_eq!(err.param.as_deref(), Some("applies_to[products][0]"));

    // Only the name and metadata change; the terms are fixed (an unknown parameter to Stripe).
    let renamed = UpdateCoupon::new("SUMMER")
        .name("Summer sale 2026")
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Summer sale 2026"));
    let updated = hooks.wait_type("coupon.updated", "SUMMER").await;
    assert!(updated.data.previous_attributes.is_some());
    let http = HttpClient::default();
    let auth = format!("Bearer {}", sandbox.config().test_secret_key);
    let scoped = [
        ("authorization", auth.as_str()),
        ("stripe-account", account.id.as_str()),
    ];
    let r = http
        .post_form(
            &format!("{}v1/coupons/SUMMER", sandbox.base_url()),
            &scoped,
            &[("percent_off", "50")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let body = r.json().unwrap();
    assert_eq!(body["error"]["code"], "parameter_unknown");
    assert_eq!(body["error"]["param"], "percent_off");

    sandbox.shutdown().await;
}

#[tokio::test]
async fn promotion_codes_on_a_connected_account() {
    let sandbox = sandbox().await;
    let hooks = Hooks::start().await;
    sandbox.set_webhook_endpoint(&hooks.url, SECRET);
    let c = test_client(&sandbox);
    let account = new_account(&c).await;
    let other = new_account(&c).await;
    let on = || account.id.clone();
    let now = chrono::Utc::now().timestamp();
    CreateCoupon::new()
        .id("SUMMER")
        .percent_off(25.0)
        .max_redemptions(10)
        .redeem_by(now + 30 * 86_400)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    let five_off = CreateCoupon::new()
        .amount_off(500)
        .currency(Currency::USD)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();

    // Promotion codes: unique regardless of case among active codes; within the coupon's limits.
    let mut restrictions = CreatePromotionCodeRestrictions::new();
    restrictions.first_time_transaction = Some(true);
    restrictions.minimum_amount = Some(3000);
    restrictions.minimum_amount_currency = Some(Currency::USD);
    let code = CreatePromotionCode::new(promotion("SUMMER"))
        .code("Summer25")
        .max_redemptions(5)
        .expires_at(now + 7 * 86_400)
        .restrictions(restrictions)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(code.id.as_str().starts_with("promo_"));
    assert!(code.active);
    assert_eq!(code.code, "Summer25");
    assert_eq!(
        code.promotion.coupon.as_ref().map(|k| k.id().to_string()),
        Some("SUMMER".to_owned())
    );
    assert!(code.restrictions.first_time_transaction);
    assert_eq!(
        (
            code.restrictions.minimum_amount,
            code.restrictions.minimum_amount_currency
        ),
        (Some(3000), Some(Currency::USD))
    );
    assert_eq!((code.max_redemptions, code.times_redeemed), (Some(5), 0));
    hooks
        .wait_type("promotion_code.created", code.id.as_str())
        .await;
    let (err, _) = stripe_error(
        CreatePromotionCode::new(promotion("SUMMER"))
            .code("SUMMER25")
            .customize()
            .account_id(on())
            .send(&c)
            .await,
    );
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceAlreadyExists));
    let (err, _) = stripe_error(
        CreatePromotionCode::new(promotion("SUMMER"))
            .max_redemptions(11)
            .customize()
            .account_id(on())
            .send(&c)
            .await,
    );
    assert_eq!(err.param.as_deref(), Some("max_redemptions"));
    let (err, _) = stripe_error(
        CreatePromotionCode::new(promotion("SUMMER"))
            .expires_at(now + 60 * 86_400)
            .customize()
            .account_id(on())
            .send(&c)
            .await,
    );
    assert_eq!(err.param.as_deref(), Some("expires_at"));
    let (err, status) = stripe_error(
        CreatePromotionCode::new(promotion("NOPE"))
            .customize()
            .account_id(on())
            .send(&c)
            .await,
    );
    assert_eq!(
        (status, err.code),
        (400, Some(ApiErrorsCode::ResourceMissing))
    );
    assert_eq!(err.param.as_deref(), Some("promotion[coupon]"));
    let mut half = CreatePromotionCodeRestrictions::new();
    half.minimum_amount = Some(100);
    let (err, _) = stripe_error(
        CreatePromotionCode::new(promotion("SUMMER"))
            .restrictions(half)
            .customize()
            .account_id(on())
            .send(&c)
            .await,
    );
    assert_eq!(
        err.param.as_deref(),
        Some("restrictions[minimum_amount_currency]")
    );
    let generated = CreatePromotionCode::new(promotion(five_off.id.as_str()))
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(generated.code.len() >= 6, "a code is generated");

    // Lists filter by code (regardless of case), coupon and active.
    let by_code = ListPromotionCode::new()
        .code("summer25")
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(by_code.data.len(), 1);
    assert_eq!(by_code.url, "/v1/promotion_codes");
    let by_coupon = ListPromotionCode::new()
        .coupon(five_off.id.as_str())
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(by_coupon.data[0].id, generated.id);
    let off = UpdatePromotionCode::new(code.id.clone())
        .active(false)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(!off.active);
    let deactivated = hooks
        .wait_type("promotion_code.updated", code.id.as_str())
        .await;
    assert!(deactivated.data.previous_attributes.is_some());
    let active = ListPromotionCode::new()
        .active(true)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(active.data.len(), 1);
    // While it is inactive another code may take its text; reactivating it is then refused.
    let taken = CreatePromotionCode::new(promotion("SUMMER"))
        .code("summer25")
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    let (err, _) = stripe_error(
        UpdatePromotionCode::new(code.id.clone())
            .active(true)
            .customize()
            .account_id(on())
            .send(&c)
            .await,
    );
    assert_eq!(err.param.as_deref(), Some("active"));
    UpdatePromotionCode::new(taken.id.clone())
        .active(false)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    let again = UpdatePromotionCode::new(code.id.clone())
        .active(true)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(again.active);

    // Another account sees none of it.
    let (_, status) = stripe_error(
        RetrieveCoupon::new("SUMMER")
            .customize()
            .account_id(other.id.clone())
            .send(&c)
            .await,
    );
    assert_eq!(status, 404);
    let (_, status) = stripe_error(
        RetrievePromotionCode::new(code.id.clone())
            .customize()
            .account_id(other.id.clone())
            .send(&c)
            .await,
    );
    assert_eq!(status, 404);
    let coupons = ListCoupon::new()
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(coupons.data.len(), 2);
    assert_eq!(coupons.url, "/v1/coupons");

    // Deleting the coupon: gone, `coupon.deleted`, its codes inactive.
    let deleted = DeleteCoupon::new("SUMMER")
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(deleted.id.as_str(), "SUMMER");
    hooks.wait_type("coupon.deleted", "SUMMER").await;
    let (err, status) = stripe_error(
        RetrieveCoupon::new("SUMMER")
            .customize()
            .account_id(on())
            .send(&c)
            .await,
    );
    assert_eq!(
        (status, err.code),
        (404, Some(ApiErrorsCode::ResourceMissing))
    );
    let orphan = RetrievePromotionCode::new(code.id.clone())
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(!orphan.active);

    // Every event of the account parses into its typed object.
    let now = chrono::Utc::now().timestamp();
    for s in sandbox
        .events(None)
        .into_iter()
        .filter(|s| s.account.as_deref() == Some(account.id.as_str()))
    {
        let payload = s.event.to_string();
        let header = stripe_sandbox::signature_header(payload.as_bytes(), SECRET, now);
        let event = Webhook::construct_event(&payload, &header, SECRET)
            .unwrap_or_else(|e| panic!("{} must parse: {e:?}\n{payload}", s.kind));
        assert!(
            !matches!(event.data.object, EventObject::Unknown(_)),
            "{} has a typed object",
            s.kind
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn prices_keep_their_amount_and_currency_and_products_change_what_stripe_allows() {
    let sandbox = sandbox().await;
    let c = test_client(&sandbox);
    let account = new_account(&c).await;
    let on = || account.id.clone();
    let mut data = CreateProductDefaultPriceData::new(Currency::USD);
    data.unit_amount = Some(4_900);
    let product = CreateProduct::new("Course")
        .default_price_data(data)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    let old_price = product.default_price.as_ref().unwrap().id().to_string();

    // Amount, currency and product are not parameters of a price update: Stripe's answer.
    let http = HttpClient::default();
    let auth = format!("Bearer {}", sandbox.config().test_secret_key);
    let scoped = [
        ("authorization", auth.as_str()),
        ("stripe-account", account.id.as_str()),
    ];
    let url = format!("{}v1/prices/{old_price}", sandbox.base_url());
    for (param, value) in [
        ("unit_amount", "5900"),
        ("currency", "eur"),
        ("product", "prod_x"),
        ("recurring[interval]", "month"),
    ] {
        let r = http
            .post_form(&url, &scoped, &[(param, value)])
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{param}");
        let body = r.json().unwrap();
        assert_eq!(body["error"]["code"], "parameter_unknown", "{param}");
        assert_eq!(
            body["error"]["message"],
            format!(
                "Received unknown parameter: {}",
                param.split('[').next().unwrap()
            )
        );
    }
    // What may change does.
    let renamed = UpdatePrice::new(old_price.as_str())
        .nickname("Launch price")
        .lookup_key("course")
        .metadata(HashMap::from([("k".to_owned(), "v".to_owned())]))
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(renamed.nickname.as_deref(), Some("Launch price"));
    assert_eq!(renamed.lookup_key.as_deref(), Some("course"));
    assert_eq!(renamed.unit_amount, Some(4_900));

    // "Changing the price": a new price, the product's default switched, the old archived.
    let new_price = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(5_900)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    let switched = UpdateProduct::new(product.id.clone())
        .default_price(new_price.id.as_str())
        .name("Course (2026)")
        .description("Twelve lessons")
        .metadata(HashMap::from([("level".to_owned(), "1".to_owned())]))
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(
        switched.default_price.as_ref().unwrap().id().as_str(),
        new_price.id.as_str()
    );
    assert_eq!(switched.description.as_deref(), Some("Twelve lessons"));
    let archived = UpdatePrice::new(old_price.as_str())
        .active(false)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(!archived.active);
    // The default price must be one of the product's active prices.
    let (err, _) = stripe_error(
        UpdateProduct::new(product.id.clone())
            .default_price(old_price.as_str())
            .customize()
            .account_id(on())
            .send(&c)
            .await,
    );
    assert_eq!(err.param.as_deref(), Some("default_price"));
    let (err, status) = stripe_error(
        UpdateProduct::new(product.id.clone())
            .default_price("price_missing")
            .customize()
            .account_id(on())
            .send(&c)
            .await,
    );
    assert_eq!(
        (status, err.code),
        (400, Some(ApiErrorsCode::ResourceMissing))
    );
    let archived_product = UpdateProduct::new(product.id.clone())
        .active(false)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(!archived_product.active);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn expand_works_on_lists_and_single_objects() {
    let sandbox = sandbox().await;
    let c = test_client(&sandbox);
    let account = new_account(&c).await;
    let on = || account.id.clone();
    let mut data = CreateProductDefaultPriceData::new(Currency::USD);
    data.unit_amount = Some(1_200);
    let product = CreateProduct::new("Tea")
        .default_price_data(data)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    CreateProduct::new("No price yet")
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();

    let listed = ListProduct::new()
        .expand(vec!["data.default_price".to_owned()])
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    let tea = listed.data.iter().find(|p| p.id == product.id).unwrap();
    let price = tea
        .default_price
        .as_ref()
        .and_then(|p| p.as_object())
        .expect("data.default_price is expanded into the Price");
    assert_eq!(price.unit_amount, Some(1_200));
    let bare = listed.data.iter().find(|p| p.id != product.id).unwrap();
    assert!(bare.default_price.is_none(), "a null id stays null");

    let prices = ListPrice::new()
        .expand(vec!["data.product".to_owned()])
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    let owner = prices.data[0]
        .product
        .as_object()
        .expect("data.product is expanded into the Product");
    assert_eq!(owner.name, "Tea");
    let one = RetrievePrice::new(price.id.as_str())
        .expand(vec!["product".to_owned()])
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(one.product.as_object().is_some());
    let one = RetrieveProduct::new(product.id.clone())
        .expand(vec!["default_price".to_owned()])
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(one.default_price.unwrap().as_object().is_some());
    // Without expand, ids.
    let plain = ListProduct::new()
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(
        plain
            .data
            .iter()
            .filter_map(|p| p.default_price.as_ref())
            .all(|p| p.as_object().is_none())
    );
    let (err, status) = stripe_error(
        ListProduct::new()
            .expand(vec!["data.default_price.product.a.b".to_owned()])
            .customize()
            .account_id(on())
            .send(&c)
            .await,
    );
    assert_eq!((status, err.param.as_deref()), (400, Some("expand")));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn products_search_with_stripes_query_language() {
    let sandbox = sandbox().await;
    let c = test_client(&sandbox);
    let account = new_account(&c).await;
    let on = || account.id.clone();
    for (name, sku, active) in [
        ("Yoga mat", "m-1", true),
        ("Yoga block", "b-1", true),
        ("Old strap", "s-1", false),
    ] {
        CreateProduct::new(name)
            .active(active)
            .metadata(HashMap::from([("sku".to_owned(), sku.to_owned())]))
            .customize()
            .account_id(on())
            .send(&c)
            .await
            .unwrap();
    }
    let search = |query: &str| {
        SearchProduct::new(query)
            .customize()
            .account_id(on())
            .send(&c)
    };
    let found = search("active:'true' AND metadata['sku']:'m-1'")
        .await
        .unwrap();
    assert_eq!(found.url, "/v1/products/search");
    assert_eq!(found.data.len(), 1);
    assert_eq!(found.data[0].name, "Yoga mat");
    let yoga = search("name~'yoga'").await.unwrap();
    assert_eq!(yoga.data.len(), 2);
    let either = search(r#"name:"old strap" OR metadata["sku"]:"b-1""#)
        .await
        .unwrap();
    assert_eq!(either.data.len(), 2);
    let not_yoga = search("-name~'yoga'").await.unwrap();
    assert_eq!(not_yoga.data[0].name, "Old strap");
    // Pages, newest first.
    let first = SearchProduct::new("name~'yoga'")
        .limit(1)
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(first.has_more);
    assert_eq!(first.data[0].name, "Yoga block");
    let second = SearchProduct::new("name~'yoga'")
        .limit(1)
        .page(first.next_page.clone().unwrap())
        .customize()
        .account_id(on())
        .send(&c)
        .await
        .unwrap();
    assert!(!second.has_more);
    assert_eq!(second.data[0].name, "Yoga mat");
    // Another account's catalog is not searched.
    let other = new_account(&c).await;
    let none = SearchProduct::new("name~'yoga'")
        .customize()
        .account_id(other.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert!(none.data.is_empty());
    let (err, status) = stripe_error(search("email:'a@b.example'").await);
    assert_eq!((status, err.param.as_deref()), (400, Some("query")));
    let (err, _) = stripe_error(search("name:'a' AND active:'true' OR url:'x'").await);
    assert_eq!(err.param.as_deref(), Some("query"));
    // Not a product lookup: other methods on the URL are unknown URLs.
    let http = HttpClient::default();
    let auth = format!("Bearer {}", sandbox.config().test_secret_key);
    let r = http
        .post_form(
            &format!("{}v1/products/search", sandbox.base_url()),
            &[("authorization", auth.as_str())],
            &[("name", "x")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert!(
        r.json().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unrecognized request URL (POST: /v1/products/search)")
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn http_basic_auth_works_as_in_stripes_curl_examples() {
    let sandbox = sandbox().await;
    let http = HttpClient::default();
    let url = format!("{}v1/products", sandbox.base_url());
    // `curl -u sk_test_chatpay_sandbox:` sends Basic base64("sk_test_chatpay_sandbox:").
    let basic = |key: &str| {
        let raw = format!("{key}:");
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in raw.as_bytes().chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        format!("Basic {out}")
    };
    let auth = basic(&sandbox.config().test_secret_key);
    let created = http
        .post_form(
            &url,
            &[("authorization", auth.as_str())],
            &[("name", "Tea")],
        )
        .await
        .unwrap();
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json().unwrap()["livemode"], false);
    let live = basic(&sandbox.config().live_secret_key);
    let listed = http
        .get(&url, &[("authorization", live.as_str())])
        .await
        .unwrap();
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json().unwrap()["data"], json!([]));
    let wrong = basic("sk_test_wrong");
    let refused = http
        .get(&url, &[("authorization", wrong.as_str())])
        .await
        .unwrap();
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.json().unwrap()["error"]["message"],
        "Invalid API Key provided: sk_test_****rong"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_products_page_works_for_a_live_account() {
    let sandbox = sandbox().await;
    let live = live_client(&sandbox);
    let test = test_client(&sandbox);
    let account = new_account(&live).await;
    assert!(account.id.as_str().starts_with("acct_"));
    let http = HttpClient::default();
    let page_url = format!(
        "{}dashboard/{}/products",
        sandbox.base_url(),
        account.id.as_str()
    );
    let page = http.get(&page_url, &[]).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("LIVE DATA"));
    assert!(!page.text().contains("does not have access"));
    let added = http
        .post_form(
            &page_url,
            &[],
            &[
                ("name", "Live course"),
                ("amount", "49"),
                ("currency", "usd"),
                ("billing", "one_time"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(added.status, 200, "{}", added.text());
    assert!(added.text().contains("Added Live course"));
    // In the live catalog, through the live key; test mode does not see it.
    let products = ListProduct::new()
        .customize()
        .account_id(account.id.clone())
        .send(&live)
        .await
        .unwrap();
    assert_eq!(products.data.len(), 1);
    assert!(products.data[0].livemode);
    let prices = ListPrice::new()
        .customize()
        .account_id(account.id.clone())
        .send(&live)
        .await
        .unwrap();
    assert_eq!(prices.data[0].unit_amount, Some(4900));
    let (_, status) = stripe_error(
        ListProduct::new()
            .customize()
            .account_id(account.id.clone())
            .send(&test)
            .await,
    );
    assert_eq!(status, 403);
    // The test account's page still shows test data.
    let test_account = new_account(&test).await;
    let test_page = http
        .get(
            &format!(
                "{}dashboard/{}/products",
                sandbox.base_url(),
                test_account.id.as_str()
            ),
            &[],
        )
        .await
        .unwrap();
    assert!(test_page.text().contains("TEST DATA"));
    let live_events = sandbox.events(Some("product.created"));
    assert_eq!(live_events.len(), 1);
    assert!(live_events[0].livemode);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn lists_page_with_cursors() {
    let sandbox = sandbox().await;
    let c = test_client(&sandbox);
    let account = new_account(&c).await;
    let report = sandbox
        .seed_catalog(&SeedCatalog {
            account: Some(account.id.to_string()),
            livemode: false,
            products: 57,
            currencies: vec!["usd".into(), "eur".into()],
            emit_events: false,
        })
        .unwrap();
    assert_eq!(report.products, 57);
    assert!(report.archived > 0 && report.without_price > 0 && report.prices > 57);
    assert_eq!(report.events, 0);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = ListProduct::new().limit(20);
        if let Some(c) = &cursor {
            req = req.starting_after(c.as_str());
        }
        let page = req
            .customize()
            .account_id(account.id.clone())
            .send(&c)
            .await
            .unwrap();
        assert!(page.data.len() <= 20);
        seen.extend(page.data.iter().map(|p| p.id.to_string()));
        cursor = page.data.last().map(|p| p.id.to_string());
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen.len(), 57);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 57);

    // ending_before walks back towards the newest.
    let back = ListProduct::new()
        .limit(5)
        .ending_before(seen[10].as_str())
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    let ids: Vec<String> = back.data.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(ids, seen[5..10]);
    assert!(back.has_more);

    let archived = ListProduct::new()
        .active(false)
        .limit(100)
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(archived.data.len() as u32, report.archived);
    let prices = ListPrice::new()
        .limit(100)
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert!(prices.has_more || prices.data.len() as u32 == report.prices);

    let (err, status) = stripe_error(ListProduct::new().limit(101).send(&c).await);
    assert_eq!((status, err.param.as_deref()), (400, Some("limit")));
    let (err, _) = stripe_error(
        ListProduct::new()
            .starting_after("prod_missing")
            .send(&c)
            .await,
    );
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn modes_and_accounts_are_kept_apart() {
    let sandbox = sandbox().await;
    let test = test_client(&sandbox);
    let live = live_client(&sandbox);
    let a = new_account(&test).await;
    let b = new_account(&test).await;

    let on_a = CreateProduct::new("Only on A")
        .customize()
        .account_id(a.id.clone())
        .send(&test)
        .await
        .unwrap();
    let on_platform = CreateProduct::new("Platform product")
        .send(&test)
        .await
        .unwrap();
    let list_b = ListProduct::new()
        .customize()
        .account_id(b.id.clone())
        .send(&test)
        .await
        .unwrap();
    assert!(list_b.data.is_empty());
    let list_platform = ListProduct::new().send(&test).await.unwrap();
    assert_eq!(list_platform.data.len(), 1);
    assert_eq!(list_platform.data[0].id, on_platform.id);
    let (err, status) = stripe_error(
        RetrieveProduct::new(on_a.id.clone())
            .customize()
            .account_id(b.id.clone())
            .send(&test)
            .await,
    );
    assert_eq!(status, 404);
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));

    // Live mode sees none of it.
    let (_, status) = stripe_error(RetrieveAccount::new(a.id.clone()).send(&live).await);
    assert_eq!(status, 404);
    let (err, status) = stripe_error(
        ListProduct::new()
            .customize()
            .account_id(a.id.clone())
            .send(&live)
            .await,
    );
    assert_eq!(
        (status, err.code),
        (403, Some(ApiErrorsCode::AccountInvalid))
    );
    assert!(
        ListProduct::new()
            .send(&live)
            .await
            .unwrap()
            .data
            .is_empty()
    );
    let live_account = new_account(&live).await;
    let live_product = CreateProduct::new("Live")
        .customize()
        .account_id(live_account.id.clone())
        .send(&live)
        .await
        .unwrap();
    assert!(live_product.livemode);
    assert!(ListAccount::new().send(&live).await.unwrap().data.len() == 1);

    // Bad keys.
    let (err, status) = stripe_error(
        ListProduct::new()
            .send(&client(&sandbox, "sk_test_wrong"))
            .await,
    );
    assert_eq!(status, 401);
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    assert!(err.message.unwrap().contains("sk_test_****rong"));
    // Connect-only endpoints refuse a Stripe-Account.
    let (_, status) = stripe_error(
        ListAccount::new()
            .customize()
            .account_id(a.id.clone())
            .send(&test)
            .await,
    );
    assert_eq!(status, 400);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn errors_and_idempotency() {
    let sandbox = sandbox().await;
    let c = test_client(&sandbox);

    let (err, status) = stripe_error(
        CreatePrice::new(Currency::USD)
            .unit_amount(100)
            .send(&c)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(err.code, Some(ApiErrorsCode::ParameterMissing));
    assert_eq!(err.param.as_deref(), Some("product"));
    let mut settings = CreateAccountSettings::new();
    let mut payments = PaymentsSettingsSpecs::new();
    payments.statement_descriptor = Some("A*B".into());
    settings.payments = Some(payments);
    let (err, _) = stripe_error(CreateAccount::new().settings(settings).send(&c).await);
    assert_eq!(
        err.param.as_deref(),
        Some("settings[payments][statement_descriptor]")
    );
    let (err, _) = stripe_error(CreateAccount::new().country("XX").send(&c).await);
    assert_eq!(err.code, Some(ApiErrorsCode::CountryUnsupported));
    let (err, _) = stripe_error(CreateAccount::new().email("not-an-email").send(&c).await);
    assert_eq!(err.code, Some(ApiErrorsCode::EmailInvalid));

    // Same key, same parameters: the first response, replayed; nothing new created.
    let key = IdempotencyKey::new("create-tea-1").unwrap();
    let first = CreateProduct::new("Tea")
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&c)
        .await
        .unwrap();
    let second = CreateProduct::new("Tea")
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&c)
        .await
        .unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(ListProduct::new().send(&c).await.unwrap().data.len(), 1);
    assert_eq!(sandbox.events(Some("product.created")).len(), 1);
    // Same key, other parameters: idempotency_error.
    let (err, status) = stripe_error(
        CreateProduct::new("Coffee")
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&c)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(err.type_, ApiErrorsType::IdempotencyError);

    // Byte for byte, with Stripe's replay headers.
    let http = HttpClient::default();
    let auth = format!("Bearer {}", sandbox.config().test_secret_key);
    let headers = [
        ("authorization", auth.as_str()),
        ("idempotency-key", "raw-1"),
    ];
    let url = format!("{}v1/products", sandbox.base_url());
    let a = http
        .post_form(&url, &headers, &[("name", "Raw")])
        .await
        .unwrap();
    let b = http
        .post_form(&url, &headers, &[("name", "Raw")])
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b.body);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(b.header("original-request"), a.header("request-id"));
    assert_ne!(a.header("request-id"), b.header("request-id"));
    // The event names the request and its key.
    let raw_id = a.json().unwrap()["id"].as_str().unwrap().to_owned();
    let event = sandbox
        .events(Some("product.created"))
        .into_iter()
        .find(|e| e.event["data"]["object"]["id"] == raw_id.as_str())
        .unwrap();
    assert_eq!(event.event["request"]["idempotency_key"], "raw-1");
    assert_eq!(
        event.event["request"]["id"],
        a.header("request-id").unwrap()
    );

    // Unknown parameters and URLs, malformed values.
    let bad = http
        .post_form(
            &url,
            &[("authorization", auth.as_str())],
            &[("name", "X"), ("colour", "red")],
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json().unwrap()["error"]["code"], "parameter_unknown");
    let bad = http
        .post_form(
            &url,
            &[("authorization", auth.as_str())],
            &[("name", "X"), ("active", "maybe")],
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    let bad = http
        .post_form(
            &url,
            &[("authorization", auth.as_str())],
            &[("name[x]", "X")],
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    let none = http
        .get(
            &format!("{}v1/charges", sandbox.base_url()),
            &[("authorization", auth.as_str())],
        )
        .await
        .unwrap();
    assert_eq!(none.status, 404);
    assert_eq!(
        none.json().unwrap()["error"]["type"],
        "invalid_request_error"
    );
    let no_key = http.get(&url, &[]).await.unwrap();
    assert_eq!(no_key.status, 401);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn faults_and_rate_limits() {
    let sandbox = sandbox().await;
    let c = test_client(&sandbox);
    let fault = |status: u16, count: u32| Fault {
        method: Some("POST".into()),
        path: "/v1/products".into(),
        count,
        action: FaultAction::Status { status },
        should_retry: None,
    };

    sandbox.inject_fault(fault(500, 1)).unwrap();
    let (err, status) = stripe_error(CreateProduct::new("Once").send(&c).await);
    assert_eq!((status, err.type_), (500, ApiErrorsType::ApiError));
    // The client's retry gets through the next time.
    sandbox.inject_fault(fault(500, 1)).unwrap();
    let p = CreateProduct::new("Retried")
        .customize()
        .request_strategy(RequestStrategy::Retry(3))
        .send(&c)
        .await
        .unwrap();
    assert_eq!(p.name, "Retried");
    sandbox.inject_fault(fault(429, 1)).unwrap();
    let (err, status) = stripe_error(CreateProduct::new("Limited").send(&c).await);
    assert_eq!((status, err.code), (429, Some(ApiErrorsCode::RateLimit)));
    // A delay answers normally afterwards.
    sandbox
        .inject_fault(Fault {
            method: None,
            path: "/v1/products".into(),
            count: 1,
            action: FaultAction::Delay { delay_ms: 50 },
            should_retry: None,
        })
        .unwrap();
    ListProduct::new().send(&c).await.unwrap();
    assert!(sandbox.faults().is_empty());
    // GETs are not matched by a POST fault.
    sandbox.inject_fault(fault(500, 1)).unwrap();
    ListProduct::new().send(&c).await.unwrap();
    assert_eq!(sandbox.faults().len(), 1);
    sandbox.clear_faults();
    sandbox.shutdown().await;

    // Rate limits per mode.
    let limited = start(SandboxConfig {
        rate_limit: Some(RateLimit {
            test_per_second: 1,
            live_per_second: 100,
        }),
        ..SandboxConfig::default()
    })
    .await;
    let c = test_client(&limited);
    let mut limited_seen = false;
    for _ in 0..5 {
        if let Err(e) = ListProduct::new().send(&c).await {
            let (err, status) = stripe_error::<()>(Err(e));
            assert_eq!((status, err.code), (429, Some(ApiErrorsCode::RateLimit)));
            limited_seen = true;
        }
    }
    assert!(limited_seen);
    // Live mode has its own bucket.
    ListProduct::new()
        .send(&live_client(&limited))
        .await
        .unwrap();
    limited.shutdown().await;
}

#[tokio::test]
async fn events_api_lists_and_retrieves() {
    let sandbox = sandbox().await;
    let c = test_client(&sandbox);
    let account = new_account(&c).await;
    let platform_product = CreateProduct::new("Platform").send(&c).await.unwrap();
    let connected_product = CreateProduct::new("Connected")
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    UpdateProduct::new(platform_product.id.clone())
        .active(false)
        .send(&c)
        .await
        .unwrap();

    let events = ListEvent::new().send(&c).await.unwrap();
    let kinds: Vec<&str> = events.data.iter().map(|e| e.type_.as_str()).collect();
    assert_eq!(kinds, ["product.updated", "product.created"]);
    let updated = &events.data[0];
    assert_eq!(updated.api_version.as_deref(), Some("2026-09-30.endive"));
    assert!(!updated.livemode);
    assert!(updated.data.previous_attributes.is_some());
    let filtered = ListEvent::new()
        .type_("product.created")
        .send(&c)
        .await
        .unwrap();
    assert_eq!(filtered.data.len(), 1);
    let paged = ListEvent::new().limit(1).send(&c).await.unwrap();
    assert!(paged.has_more);

    let on_account = ListEvent::new()
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(on_account.data.len(), 1);
    let e = &on_account.data[0];
    assert_eq!(e.account.as_deref(), Some(account.id.as_str()));
    let fetched = RetrieveEvent::new(e.id.clone())
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(fetched.id, e.id);
    let recorded = sandbox
        .events(None)
        .into_iter()
        .find(|s| s.id == fetched.id.as_str())
        .unwrap();
    assert_eq!(
        recorded.event["data"]["object"]["id"],
        connected_product.id.as_str()
    );
    let (_, status) = stripe_error(RetrieveEvent::new(e.id.clone()).send(&c).await);
    assert_eq!(status, 404);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn oauth_connects_existing_accounts() {
    let sandbox = sandbox().await;
    let hooks = Hooks::start().await;
    sandbox.set_webhook_endpoint(&hooks.url, SECRET);
    let c = test_client(&sandbox);
    let http = HttpClient::default();
    let base = sandbox.base_url();
    let client_id = sandbox.config().connect_client_id.clone();
    let key = sandbox.config().test_secret_key.clone();
    let auth = format!("Bearer {key}");
    let authorize = |deny: bool| OAuthAuthorize {
        client_id: client_id.clone(),
        redirect_uri: "https://app.example/oauth/callback".into(),
        state: Some("csrf-123".into()),
        scope: "read_write".into(),
        deny,
        email: Some("owner@existing.example".into()),
        business_name: Some("Existing Shop".into()),
        country: None,
    };

    let denied = sandbox.authorize_oauth(authorize(true)).unwrap();
    assert!(denied.starts_with("https://app.example/oauth/callback?error=access_denied"));
    assert!(denied.ends_with("state=csrf-123"));

    let redirect = sandbox.authorize_oauth(authorize(false)).unwrap();
    let code = redirect
        .split("code=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap()
        .to_owned();
    assert!(code.starts_with("ac_"));
    assert!(redirect.contains("state=csrf-123"));
    let token_url = format!("{base}oauth/token");
    let token = http
        .post_form(
            &token_url,
            &[("authorization", auth.as_str())],
            &[("grant_type", "authorization_code"), ("code", &code)],
        )
        .await
        .unwrap();
    assert_eq!(token.status, 200, "{}", token.text());
    let token = token.json().unwrap();
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["livemode"], false);
    assert_eq!(token["scope"], "read_write");
    assert!(
        token["stripe_publishable_key"]
            .as_str()
            .unwrap()
            .starts_with("pk_test_")
    );
    assert!(token["refresh_token"].as_str().unwrap().starts_with("rt_"));
    let user = token["stripe_user_id"].as_str().unwrap().to_owned();
    let access = token["access_token"].as_str().unwrap().to_owned();

    // A code works once.
    let reused = http
        .post_form(
            &token_url,
            &[],
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_secret", &key),
            ],
        )
        .await
        .unwrap();
    assert_eq!(reused.status, 400);
    assert_eq!(reused.json().unwrap()["error"], "invalid_grant");
    let unauthenticated = http
        .post_form(
            &token_url,
            &[],
            &[("grant_type", "authorization_code"), ("code", &code)],
        )
        .await
        .unwrap();
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(unauthenticated.json().unwrap()["error"], "invalid_client");

    // An already active Standard account.
    let account = RetrieveAccount::new(acct(&user)).send(&c).await.unwrap();
    assert_eq!(account.type_, Some(AccountType::Standard));
    assert_eq!(account.charges_enabled, Some(true));
    assert_eq!(account.payouts_enabled, Some(true));
    assert_eq!(account.email.as_deref(), Some("owner@existing.example"));
    assert_eq!(
        account.controller.as_ref().unwrap().is_controller,
        Some(false)
    );
    let authorized = hooks
        .wait_type("account.application.authorized", &user)
        .await;
    match &authorized.data.object {
        EventObject::AccountApplicationAuthorized(app) => assert_eq!(app.id.as_str(), client_id),
        other => panic!("unexpected {other:?}"),
    }
    // The access token acts as the connected account.
    let as_user = client(&sandbox, &access);
    CreateProduct::new("From the token")
        .send(&as_user)
        .await
        .unwrap();
    let on_account = ListProduct::new()
        .customize()
        .account_id(acct(&user))
        .send(&c)
        .await
        .unwrap();
    assert_eq!(on_account.data.len(), 1);

    // The page, as a browser sees it.
    let page = http
        .get(
            &format!(
                "{base}oauth/authorize?response_type=code&client_id={client_id}&scope=read_write&state=s1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("value=\"connect\""));
    let connect = http
        .post_form(
            &format!("{base}oauth/authorize"),
            &[],
            &[
                ("client_id", client_id.as_str()),
                ("redirect_uri", "https://app.example/cb"),
                ("state", "s1"),
                ("scope", "read_write"),
                ("decision", "connect"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(connect.status, 302);
    assert!(location(&connect).starts_with("https://app.example/cb?scope=read_write&code=ac_"));
    let wrong_client = http
        .get(
            &format!(
                "{base}oauth/authorize?client_id=ca_wrong&redirect_uri=https%3A%2F%2Fx.example"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(wrong_client.status, 400);

    // Disconnect.
    let gone = http
        .post_form(
            &format!("{base}oauth/deauthorize"),
            &[("authorization", auth.as_str())],
            &[
                ("client_id", client_id.as_str()),
                ("stripe_user_id", user.as_str()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(gone.status, 200);
    assert_eq!(gone.json().unwrap(), json!({ "stripe_user_id": user }));
    let event = hooks
        .wait_type("account.application.deauthorized", &user)
        .await;
    assert!(matches!(
        event.data.object,
        EventObject::AccountApplicationDeauthorized(_)
    ));
    let (err, status) = stripe_error(RetrieveAccount::new(acct(&user)).send(&c).await);
    assert_eq!(
        (status, err.code),
        (403, Some(ApiErrorsCode::AccountInvalid))
    );
    assert!(ListProduct::new().send(&as_user).await.is_err());
    let twice = http
        .post_form(
            &format!("{base}oauth/deauthorize"),
            &[("authorization", auth.as_str())],
            &[
                ("client_id", client_id.as_str()),
                ("stripe_user_id", user.as_str()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(twice.status, 401);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn every_webhook_kind_verifies_and_parses() {
    let sandbox = sandbox().await;
    let hooks = Hooks::start().await;
    let c = test_client(&sandbox);
    // Created before any endpoint exists: delivered once one is set.
    let account = new_account(&c).await;
    let product = CreateProduct::new("Early")
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(sandbox.events(None)[0].delivery, DeliveryState::Pending);
    sandbox.set_webhook_endpoint(&hooks.url, SECRET);
    let early = hooks
        .wait_type("product.created", product.id.as_str())
        .await;
    assert_eq!(early.account.as_deref(), Some(account.id.as_str()));
    assert_eq!(early.pending_webhooks, 1);
    assert_eq!(
        early.api_version,
        Some(stripe_shared::ApiVersion::V2026_09_30_endive)
    );

    let price = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(500)
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    UpdatePrice::new(price.id.clone())
        .nickname("Small")
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    UpdateProduct::new(product.id.clone())
        .default_price(price.id.as_str())
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    let doomed = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(700)
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    sandbox.delete_price(doomed.id.as_str()).unwrap();
    let temp = CreateProduct::new("Temporary").send(&c).await.unwrap();
    DeleteProduct::new(temp.id.clone()).send(&c).await.unwrap();
    let l = link(
        &c,
        account.id.as_str(),
        CreateAccountLinkType::AccountOnboarding,
    )
    .await
    .unwrap();
    sandbox
        .follow_account_link(&l.url, VerificationOutcome::Verified)
        .unwrap();
    let redirect = sandbox
        .authorize_oauth(OAuthAuthorize {
            client_id: sandbox.config().connect_client_id.clone(),
            redirect_uri: "https://app.example/cb".into(),
            state: None,
            scope: "read_write".into(),
            deny: false,
            email: None,
            business_name: None,
            country: None,
        })
        .unwrap();
    let code = redirect
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let http = HttpClient::default();
    let auth = format!("Bearer {}", sandbox.config().test_secret_key);
    let token = http
        .post_form(
            &format!("{}oauth/token", sandbox.base_url()),
            &[("authorization", auth.as_str())],
            &[("grant_type", "authorization_code"), ("code", code)],
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    let user = token["stripe_user_id"].as_str().unwrap();
    http.post_form(
        &format!("{}oauth/deauthorize", sandbox.base_url()),
        &[("authorization", auth.as_str())],
        &[
            ("client_id", sandbox.config().connect_client_id.as_str()),
            ("stripe_user_id", user),
        ],
    )
    .await
    .unwrap();

    type Check = fn(&EventObject) -> bool;
    let checks: [(&str, &str, Check); 9] = [
        ("product.created", product.id.as_str(), |o| {
            matches!(o, EventObject::ProductCreated(_))
        }),
        (
            "product.updated",
            product.id.as_str(),
            |o| matches!(o, EventObject::ProductUpdated(p) if p.default_price.is_some()),
        ),
        ("product.deleted", temp.id.as_str(), |o| {
            matches!(o, EventObject::ProductDeleted(_))
        }),
        ("price.created", price.id.as_str(), |o| {
            matches!(o, EventObject::PriceCreated(_))
        }),
        (
            "price.updated",
            price.id.as_str(),
            |o| matches!(o, EventObject::PriceUpdated(p) if p.nickname.as_deref() == Some("Small")),
        ),
        ("price.deleted", doomed.id.as_str(), |o| {
            matches!(o, EventObject::PriceDeleted(_))
        }),
        (
            "account.updated",
            account.id.as_str(),
            |o| matches!(o, EventObject::AccountUpdated(a) if a.details_submitted == Some(true)),
        ),
        ("account.application.authorized", user, |o| {
            matches!(o, EventObject::AccountApplicationAuthorized(_))
        }),
        ("account.application.deauthorized", user, |o| {
            matches!(o, EventObject::AccountApplicationDeauthorized(_))
        }),
    ];
    for (kind, id, check) in checks {
        let event = hooks.wait_type(kind, id).await;
        assert!(check(&event.data.object), "{kind} has the expected object");
        assert!(event.id.as_str().starts_with("evt_"));
        assert!(!event.livemode);
    }
    // Every recorded event reached the endpoint.
    for summary in sandbox.events(None) {
        hooks
            .wait_for(&summary.id, |e| e.id.as_str() == summary.id)
            .await;
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn deliveries_retry_duplicate_and_follow_a_chosen_order() {
    let sandbox = sandbox().await;
    let hooks = Hooks::start().await;
    let c = test_client(&sandbox);
    hooks.fail.store(2, Ordering::SeqCst);
    sandbox.set_webhook_endpoint(&hooks.url, SECRET);
    let product = CreateProduct::new("Retry me").send(&c).await.unwrap();
    let event = hooks
        .wait_type("product.created", product.id.as_str())
        .await;
    // The delivered attempt is recorded just after the endpoint answers: poll with a deadline.
    let summary = poll(|| {
        sandbox
            .events(None)
            .into_iter()
            .find(|s| s.id == event.id.as_str() && s.delivery == DeliveryState::Delivered)
    })
    .await;
    assert_eq!(summary.attempts.len(), 3);
    assert_eq!(summary.attempts[0].status, Some(500));
    assert!(!summary.attempts[0].ok && summary.attempts[2].ok);

    // A duplicate delivery of the same event.
    let attempt = sandbox.resend_event(event.id.as_str()).await.unwrap();
    assert!(attempt.ok && attempt.manual);
    let duplicate = hooks.next().await;
    assert_eq!(duplicate.id, event.id);

    // Chosen order: pause automatic delivery, create three events, deliver newest first.
    sandbox.pause_deliveries(true);
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        CreateProduct::new(name).send(&c).await.unwrap();
        ids.push(
            sandbox
                .events(Some("product.created"))
                .last()
                .unwrap()
                .id
                .clone(),
        );
    }
    ids.reverse();
    let order: Vec<&str> = ids.iter().map(String::as_str).collect();
    let attempts = sandbox.deliver_events(&order).await.unwrap();
    assert!(attempts.iter().all(|a| a.ok));
    for expected in &ids {
        assert_eq!(hooks.next().await.id.as_str(), expected);
    }
    sandbox.pause_deliveries(false);
    assert!(sandbox.deliver_events(&["evt_missing"]).await.is_err());

    // Exhausted retries end as failed.
    hooks.fail.store(100, Ordering::SeqCst);
    let p = CreateProduct::new("Never").send(&c).await.unwrap();
    let failed = poll(|| {
        sandbox
            .events(Some("product.created"))
            .into_iter()
            .find(|s| {
                s.event["data"]["object"]["id"] == p.id.as_str()
                    && s.delivery == DeliveryState::Failed
            })
    })
    .await;
    assert_eq!(failed.attempts.len(), 4);
    hooks.fail.store(0, Ordering::SeqCst);
    sandbox.shutdown().await;
}

/// Polls `f` until it returns something, failing after the deadline.
async fn poll<T>(f: impl Fn() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met before the deadline"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn state_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sandbox.json");
    let config = || SandboxConfig {
        state_file: Some(path.clone()),
        ..SandboxConfig::default()
    };
    let first = start(config()).await;
    let c = test_client(&first);
    let account = new_account(&c).await;
    let product = CreateProduct::new("Kept")
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    first.shutdown().await;

    let second = start(config()).await;
    let c = test_client(&second);
    let again = RetrieveAccount::new(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(again.id, account.id);
    let kept = RetrieveProduct::new(product.id.clone())
        .customize()
        .account_id(account.id.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(kept.name, "Kept");
    assert_eq!(second.events(Some("product.created")).len(), 1);
    second.shutdown().await;
}

#[tokio::test]
async fn test_controls_over_http() {
    let sandbox = sandbox().await;
    let hooks = Hooks::start().await;
    let c = test_client(&sandbox);
    let http = HttpClient::default();
    let base = sandbox.base_url();
    let post = |path: &str, body: Value| {
        let http = http.clone();
        let url = format!("{base}__sandbox/{path}");
        async move { http.post_json(&url, &[], &body).await.unwrap() }
    };

    let r = post(
        "webhook_endpoint",
        json!({ "url": hooks.url, "secret": SECRET }),
    )
    .await;
    assert_eq!(r.status, 200);
    let account = new_account(&c).await;
    let id = account.id.as_str();

    let r = post(
        &format!("accounts/{id}/verification"),
        json!({ "outcome": "rejected", "reason": "rejected.platform_other" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json().unwrap()["requirements"]["disabled_reason"],
        "rejected.platform_other"
    );
    let r = post(
        "accounts/acct_nope/verification",
        json!({ "outcome": "verified" }),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json().unwrap()["error"]["code"], "resource_missing");
    let r = post(
        &format!("accounts/{id}/verification"),
        json!({ "outcome": "sideways" }),
    )
    .await;
    assert_eq!(r.status, 400);

    let l = link(&c, id, CreateAccountLinkType::AccountOnboarding)
        .await
        .unwrap();
    let r = post(
        "account_links/follow",
        json!({ "url": l.url, "outcome": "pending" }),
    )
    .await;
    assert_eq!(
        r.json().unwrap(),
        json!({ "redirect_to": RETURN_URL, "completed": true })
    );

    let r = post(
        "faults",
        json!({ "method": "POST", "path": "/v1/accounts", "status": 500, "count": 1 }),
    )
    .await;
    assert_eq!(r.json().unwrap().as_array().unwrap().len(), 1);
    let (_, status) = stripe_error(CreateAccount::new().send(&c).await);
    assert_eq!(status, 500);

    let r = post(
        "catalog",
        json!({ "account": id, "products": 30, "currencies": ["usd", "jpy"], "emit_events": true }),
    )
    .await;
    let report = r.json().unwrap();
    assert_eq!(report["products"], 30);
    assert!(report["events"].as_u64().unwrap() >= 30);

    let r = post(
        "oauth/authorize",
        json!({ "client_id": "ca_chatpay_sandbox", "redirect_uri": "https://app.example/cb", "state": "z" }),
    )
    .await;
    assert!(
        r.json().unwrap()["redirect_to"]
            .as_str()
            .unwrap()
            .contains("code=ac_")
    );

    let events = http
        .get(&format!("{base}__sandbox/events?type=account.*"), &[])
        .await
        .unwrap()
        .json()
        .unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2);
    let first = events[0]["id"].as_str().unwrap();
    let r = post(&format!("events/{first}/resend"), json!({})).await;
    assert_eq!(r.json().unwrap()["manual"], true);
    let r = post("events/deliver", json!({ "ids": [first] })).await;
    assert_eq!(r.json().unwrap().as_array().unwrap().len(), 1);
    let r = post("clock/advance", json!({ "seconds": 60 })).await;
    assert_eq!(r.json().unwrap()["offset_seconds"], 60);
    let r = post("deliveries", json!({ "paused": false })).await;
    assert_eq!(r.status, 200);
    let r = http
        .send(
            "DELETE",
            &format!("{base}__sandbox/webhook_endpoint"),
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = post(&format!("events/{first}/resend"), json!({})).await;
    assert_eq!(r.status, 409);
    sandbox.shutdown().await;
}
