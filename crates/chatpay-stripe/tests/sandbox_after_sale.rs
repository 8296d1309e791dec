//! Contract test of the sandbox's "after the sale" endpoints against the real async-stripe 1.0
//! client, on a connected account: disputes (Stripe's dispute test cards, evidence, test
//! evidence deciding the outcome, acceptance, funds withdrawn and reinstated with the dispute
//! fees), early fraud warnings, the billing portal (configurations, sessions, the hosted portal
//! page), invoice previews with prorations, subscription item changes and subscription
//! schedules. Every response is parsed with async-stripe's types and every recorded event is
//! signed, verified and parsed with `stripe_webhook` into its typed object.
//!
//! No sleeps: time moves with the sandbox clock (`advance_clock`) or a test clock.

use std::time::Duration;

use stripe::{Client, ClientBuilder, StripeError, StripeRequest};
use stripe_billing::invoice::{
    CreatePreviewInvoice, CreatePreviewInvoiceSubscriptionDetails,
    CreatePreviewInvoiceSubscriptionDetailsItems,
    CreatePreviewInvoiceSubscriptionDetailsProrationBehavior, ListInvoice, RetrieveInvoice,
};
use stripe_billing::subscription::{
    CreateSubscription, CreateSubscriptionItems, RetrieveSubscription, UpdateSubscription,
    UpdateSubscriptionItems, UpdateSubscriptionProrationBehavior,
};
use stripe_billing::test_helpers_test_clock::{
    AdvanceTestHelpersTestClock, CreateTestHelpersTestClock,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, RetrieveCheckoutSession,
};
use stripe_connect::account::CreateAccount;
use stripe_core::balance::RetrieveForMyAccountBalance;
use stripe_core::charge::RetrieveCharge;
use stripe_core::customer::CreateCustomer;
use stripe_core::dispute::{
    CloseDispute, ListDispute, RetrieveDispute, UpdateDispute, UpdateDisputeEvidence,
};
use stripe_core::refund::CreateRefund;
use stripe_fraud::radar_early_fraud_warning::{
    ListRadarEarlyFraudWarning, RetrieveRadarEarlyFraudWarning,
};
use stripe_product::price::{CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval};
use stripe_product::product::CreateProduct;
use stripe_sandbox::{DeliveryConfig, Sandbox, SandboxConfig, TestPayment, signature_header};
use stripe_shared::{
    AccountId, ApiErrors, Dispute, DisputeStatus, Invoice, Subscription, SubscriptionStatus,
};
use stripe_types::Currency;
use stripe_webhook::{Event, EventObject, Webhook};

const SECRET: &str = "whsec_after_sale_test";
const SUCCESS_URL: &str = "https://shop.example/thanks";

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        delivery: DeliveryConfig {
            max_attempts: 2,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
            concurrency: 2,
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

fn stripe_error<T: std::fmt::Debug>(result: Result<T, StripeError>) -> (ApiErrors, u16) {
    match result {
        Err(StripeError::Stripe(error, status)) => (*error, status),
        other => panic!("expected a Stripe error, got {other:?}"),
    }
}

/// Every event the sandbox recorded for `account`, signed and parsed as a webhook would be:
/// each must parse into its typed object and carry the connected account.
fn events(sandbox: &Sandbox, account: &str) -> Vec<Event> {
    let now = chrono::Utc::now().timestamp();
    sandbox
        .events(None)
        .into_iter()
        .filter(|s| s.account.as_deref() == Some(account))
        .map(|s| {
            let payload = s.event.to_string();
            let header = signature_header(payload.as_bytes(), SECRET, now);
            let event = Webhook::construct_event(&payload, &header, SECRET)
                .unwrap_or_else(|e| panic!("{} must parse: {e:?}\n{payload}", s.kind));
            assert!(
                !matches!(event.data.object, EventObject::Unknown(_)),
                "{} has a typed object",
                s.kind
            );
            assert_eq!(event.account.as_deref(), Some(account), "{}", s.kind);
            event
        })
        .collect()
}

fn kinds(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.type_.as_str().to_owned()).collect()
}

/// The kinds of events after the first `skip`.
fn kinds_after(events: &[Event], skip: usize) -> Vec<String> {
    kinds(&events[skip.min(events.len())..])
}

fn id_of<T: stripe_types::Object>(e: &Option<stripe_types::Expandable<T>>) -> String {
    use stripe_types::AsCursorOpt as _;
    e.as_ref()
        .and_then(|x| x.id().as_cursor_opt().map(str::to_owned))
        .unwrap_or_default()
}

// ---- the shop ----

struct Shop {
    sandbox: Sandbox,
    c: Client,
    account: AccountId,
    /// A one-time price of $25.00.
    price: String,
}

async fn shop() -> Shop {
    let sandbox = sandbox().await;
    let c = ClientBuilder::new(&sandbox.config().test_secret_key)
        .url(sandbox.base_url())
        .build()
        .expect("client builds");
    let account = CreateAccount::new()
        .type_(stripe_connect::account::CreateAccountType::Standard)
        .country("US")
        .send(&c)
        .await
        .unwrap()
        .id;
    let product = CreateProduct::new("Yoga mat")
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    let price = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(2500)
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    Shop {
        sandbox,
        c,
        account,
        price: price.id.to_string(),
    }
}

impl Shop {
    fn on(&self) -> AccountId {
        self.account.clone()
    }

    /// Pays 2 × $25.00 with `card`; returns the charge id.
    async fn paid_with(&self, card: &str) -> String {
        let mut li = CreateCheckoutSessionLineItems::new();
        li.price = Some(self.price.clone());
        li.quantity = Some(2);
        let s = CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Payment)
            .line_items(vec![li])
            .success_url(SUCCESS_URL)
            .customer_email("jenny@example.com")
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap();
        let paid = self
            .sandbox
            .pay_checkout(s.id.as_str(), TestPayment::card(card))
            .unwrap();
        assert_eq!(paid.outcome, "succeeded", "{card}: {paid:?}");
        let s = RetrieveCheckoutSession::new(s.id.as_str())
            .expand(vec!["payment_intent".to_owned()])
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap();
        let pi = match s.payment_intent {
            Some(stripe_types::Expandable::Object(pi)) => pi,
            other => panic!("expanded intent: {other:?}"),
        };
        id_of(&pi.latest_charge)
    }

    async fn disputes_of(&self, charge: &str) -> Vec<Dispute> {
        ListDispute::new()
            .charge(charge)
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap()
            .data
    }

    async fn dispute(&self, id: &str) -> Dispute {
        RetrieveDispute::new(id)
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap()
    }

    async fn submit(&self, id: &str, text: &str, submit: bool) -> Result<Dispute, StripeError> {
        let mut evidence = UpdateDisputeEvidence::new();
        evidence.uncategorized_text = Some(text.to_owned());
        evidence.customer_email_address = Some("jenny@example.com".into());
        UpdateDispute::new(id)
            .evidence(evidence)
            .submit(submit)
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
    }

    /// Available plus pending balance in USD, cents.
    async fn balance(&self) -> i64 {
        let b = RetrieveForMyAccountBalance::new()
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap();
        b.available
            .iter()
            .chain(b.pending.iter())
            .filter(|a| a.currency == Currency::USD)
            .map(|a| a.amount)
            .sum()
    }

    async fn refund(&self, charge: &str, amount: Option<i64>) -> Result<(), StripeError> {
        let mut r = CreateRefund::new().charge(charge);
        if let Some(a) = amount {
            r = r.amount(a);
        }
        r.customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .map(|_| ())
    }

    fn decide(&self) {
        // The issuer's decision on Stripe's test evidence comes a minute after submitting.
        self.sandbox.advance_clock(Duration::from_secs(120));
    }
}

fn txn_amounts(d: &Dispute) -> Vec<(i64, i64, String)> {
    d.balance_transactions
        .iter()
        .map(|t| (t.amount, t.fee, t.reporting_category.clone()))
        .collect()
}

// ---- disputes ----

#[tokio::test]
async fn a_0259_payment_is_disputed_and_won_with_winning_evidence() {
    let shop = shop().await;
    let charge = shop.paid_with("4000 0000 0000 0259").await;
    let before = shop.balance().await;
    let disputes = shop.disputes_of(&charge).await;
    assert_eq!(disputes.len(), 1, "the charge is disputed right after it");
    let d = &disputes[0];
    assert!(d.id.as_str().starts_with("du_"));
    assert_eq!(d.status, DisputeStatus::NeedsResponse);
    assert_eq!(d.reason, "fraudulent");
    assert_eq!(d.amount, 5000);
    assert_eq!(id_of(&Some(d.charge.clone())), charge);
    assert!(
        !d.is_charge_refundable,
        "a chargeback is answered, not refunded"
    );
    let due = d.evidence_details.due_by.expect("due_by");
    assert_eq!(due % 86_400, 86_399, "due at the end of a day");
    assert!(due > d.created + 6 * 86_400);
    assert_eq!(d.evidence_details.submission_count, 0);
    assert!(!d.evidence_details.has_evidence);
    let card = d
        .payment_method_details
        .as_ref()
        .and_then(|p| p.card.as_ref())
        .expect("card details");
    assert_eq!(card.case_type.as_str(), "chargeback");
    assert_eq!(card.network_reason_code.as_deref(), Some("10.4"));
    // The disputed amount and the $15.00 dispute fee are withdrawn at once.
    assert_eq!(txn_amounts(d), vec![(-5000, 1500, "dispute".to_owned())]);
    assert_eq!(d.balance_transactions[0].net, -6500);
    let c = RetrieveCharge::new(charge.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert!(c.disputed);

    // Refunds go through the dispute while it is open.
    let (e, status) = stripe_error(shop.refund(&charge, Some(100)).await);
    assert_eq!(status, 400);
    assert_eq!(
        e.code.as_ref().map(|c| c.as_str()),
        Some("charge_disputed"),
        "{e:?}"
    );

    // Staged evidence is not submitted.
    let staged = shop
        .submit(d.id.as_str(), "winning_evidence", false)
        .await
        .unwrap();
    assert_eq!(staged.status, DisputeStatus::NeedsResponse);
    assert!(staged.evidence_details.has_evidence);
    assert_eq!(staged.evidence_details.submission_count, 0);
    assert_eq!(
        staged.evidence.uncategorized_text.as_deref(),
        Some("winning_evidence")
    );
    // Submitted: under review, and the evidence is final.
    let submitted = UpdateDispute::new(d.id.as_str())
        .submit(true)
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(submitted.status, DisputeStatus::UnderReview);
    assert_eq!(submitted.evidence_details.submission_count, 1);
    let (e, status) = stripe_error(shop.submit(d.id.as_str(), "more", true).await);
    assert_eq!(status, 400, "{e:?}");
    assert_eq!(e.param.as_deref(), Some("evidence"));
    let (_, status) = stripe_error(
        CloseDispute::new(d.id.as_str())
            .customize()
            .account_id(shop.on())
            .send(&shop.c)
            .await,
    );
    assert_eq!(status, 400, "under review can't be accepted");
    // Countering costs the $15.00 countered fee.
    assert_eq!(shop.balance().await, before - 1500);

    shop.decide();
    let won = shop.dispute(d.id.as_str()).await;
    assert_eq!(won.status, DisputeStatus::Won);
    assert_eq!(
        txn_amounts(&won),
        vec![
            (-5000, 1500, "dispute".to_owned()),
            (5000, 0, "dispute_reversal".to_owned())
        ]
    );
    // Won: the funds and the countered fee come back; the received fee does not.
    assert_eq!(shop.balance().await, before + 5000);

    let all = events(&shop.sandbox, shop.account.as_str());
    let dispute_events: Vec<String> = kinds(&all)
        .into_iter()
        .filter(|k| k.starts_with("charge.dispute."))
        .collect();
    assert_eq!(
        dispute_events,
        [
            "charge.dispute.created",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.updated",
            "charge.dispute.updated",
            "charge.dispute.closed",
            "charge.dispute.funds_reinstated",
        ]
    );
    let created = all
        .iter()
        .find(|e| e.type_.as_str() == "charge.dispute.created")
        .unwrap();
    match &created.data.object {
        EventObject::ChargeDisputeCreated(d) => {
            assert_eq!(d.status, DisputeStatus::NeedsResponse);
            assert!(d.balance_transactions.is_empty(), "withdrawn just after");
        }
        other => panic!("{other:?}"),
    }
    let closed = all
        .iter()
        .find(|e| e.type_.as_str() == "charge.dispute.closed")
        .unwrap();
    match &closed.data.object {
        EventObject::ChargeDisputeClosed(d) => assert_eq!(d.status, DisputeStatus::Won),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn losing_evidence_and_acceptance_keep_the_funds_withdrawn() {
    let shop = shop().await;
    // 2685: disputed as product not received.
    let charge = shop.paid_with("4000000000002685").await;
    let d = shop.disputes_of(&charge).await.remove(0);
    assert_eq!(d.reason, "product_not_received");
    assert_eq!(d.status, DisputeStatus::NeedsResponse);
    let before = shop.balance().await;
    let submitted = shop
        .submit(d.id.as_str(), "losing_evidence", true)
        .await
        .unwrap();
    assert_eq!(submitted.status, DisputeStatus::UnderReview);
    shop.decide();
    let lost = shop.dispute(d.id.as_str()).await;
    assert_eq!(lost.status, DisputeStatus::Lost);
    assert_eq!(lost.balance_transactions.len(), 1, "nothing reinstated");
    assert_eq!(
        shop.balance().await,
        before - 1500,
        "the countered fee stays"
    );

    // Accepting (closing) another one: lost at once, irreversibly.
    let charge = shop.paid_with("4000000000000259").await;
    let d = shop.disputes_of(&charge).await.remove(0);
    let closed = CloseDispute::new(d.id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(closed.status, DisputeStatus::Lost);
    assert_eq!(closed.balance_transactions.len(), 1);
    let (_, status) = stripe_error(
        CloseDispute::new(d.id.as_str())
            .customize()
            .account_id(shop.on())
            .send(&shop.c)
            .await,
    );
    assert_eq!(status, 400, "already closed");
    let (e, _) = stripe_error(shop.refund(&charge, None).await);
    assert_eq!(e.code.as_ref().map(|c| c.as_str()), Some("charge_disputed"));

    // An unknown dispute is a 404; a file evidence field names a file that must exist.
    let (e, status) = stripe_error(
        RetrieveDispute::new("du_missing")
            .customize()
            .account_id(shop.on())
            .send(&shop.c)
            .await,
    );
    assert_eq!((status, e.param.as_deref()), (404, Some("dispute")));
    let all = ListDispute::new()
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(all.data.len(), 2);
    events(&shop.sandbox, shop.account.as_str());
}

#[tokio::test]
async fn a_chargeback_nobody_answers_is_lost_at_its_due_date() {
    let shop = shop().await;
    let charge = shop.paid_with("4000000000000259").await;
    let d = shop.disputes_of(&charge).await.remove(0);
    shop.sandbox
        .advance_clock(Duration::from_secs(8 * 86_400 + 60));
    let lost = shop.dispute(d.id.as_str()).await;
    assert_eq!(lost.status, DisputeStatus::Lost);
    let (_, status) = stripe_error(shop.submit(d.id.as_str(), "winning_evidence", true).await);
    assert_eq!(status, 400, "too late");
}

#[tokio::test]
async fn an_1976_inquiry_moves_no_money_and_closes_when_won() {
    let shop = shop().await;
    let before_payment = shop.balance().await;
    let charge = shop.paid_with("4000 0000 0000 1976").await;
    let d = shop.disputes_of(&charge).await.remove(0);
    assert_eq!(d.status, DisputeStatus::WarningNeedsResponse);
    assert_eq!(d.reason, "general");
    assert!(d.is_charge_refundable, "an inquiry may be refunded");
    assert!(d.balance_transactions.is_empty(), "no money moves");
    let card = d
        .payment_method_details
        .as_ref()
        .unwrap()
        .card
        .as_ref()
        .unwrap();
    assert_eq!(card.case_type.as_str(), "inquiry");
    let after_payment = shop.balance().await;
    assert!(after_payment > before_payment);
    // A partial refund is allowed during an inquiry.
    shop.refund(&charge, Some(500)).await.unwrap();
    let submitted = shop
        .submit(d.id.as_str(), "winning_evidence", true)
        .await
        .unwrap();
    assert_eq!(submitted.status, DisputeStatus::WarningUnderReview);
    shop.decide();
    let closed = shop.dispute(d.id.as_str()).await;
    assert_eq!(closed.status, DisputeStatus::WarningClosed);
    assert!(closed.balance_transactions.is_empty());
    assert_eq!(shop.balance().await, after_payment - 500, "no dispute fee");

    // An inquiry lost escalates to a lost chargeback: the funds and the fee go.
    let charge = shop.paid_with("4000000000001976").await;
    let d = shop.disputes_of(&charge).await.remove(0);
    shop.submit(d.id.as_str(), "losing_evidence", true)
        .await
        .unwrap();
    shop.decide();
    let lost = shop.dispute(d.id.as_str()).await;
    assert_eq!(lost.status, DisputeStatus::Lost);
    assert_eq!(
        txn_amounts(&lost),
        vec![(-5000, 1500, "dispute".to_owned())]
    );
    events(&shop.sandbox, shop.account.as_str());
}

#[tokio::test]
async fn a_partly_refunded_charge_is_disputed_in_full() {
    let shop = shop().await;
    let charge = shop.paid_with("4242424242424242").await;
    shop.refund(&charge, Some(1000)).await.unwrap();
    let d = shop
        .sandbox
        .dispute_charge(&charge, "fraudulent")
        .expect("the bank disputes it");
    assert_eq!(d["amount"], 5000, "the customer disputes the whole payment");
    let id = d["id"].as_str().unwrap().to_owned();
    // Accepted: lost, and the part already refunded comes back.
    let closed = CloseDispute::new(id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(closed.status, DisputeStatus::Lost);
    assert_eq!(
        txn_amounts(&closed),
        vec![
            (-5000, 1500, "dispute".to_owned()),
            (1000, 0, "dispute_reversal".to_owned())
        ]
    );
    let all = events(&shop.sandbox, shop.account.as_str());
    let tail: Vec<String> = kinds(&all)
        .into_iter()
        .filter(|k| k.starts_with("charge.dispute."))
        .collect();
    assert_eq!(
        tail,
        [
            "charge.dispute.created",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.closed",
            "charge.dispute.funds_reinstated",
        ]
    );
    let reinstated = all
        .iter()
        .rev()
        .find(|e| e.type_.as_str() == "charge.dispute.funds_reinstated")
        .unwrap();
    match &reinstated.data.object {
        EventObject::ChargeDisputeFundsReinstated(d) => {
            assert_eq!(d.status, DisputeStatus::Lost)
        }
        other => panic!("{other:?}"),
    }
    assert!(
        shop.sandbox.dispute_charge(&charge, "chargeback").is_err(),
        "an unknown reason is refused"
    );
}

// ---- early fraud warnings ----

#[tokio::test]
async fn a_5423_payment_gets_an_early_fraud_warning() {
    let shop = shop().await;
    let charge = shop.paid_with("4000000000005423").await;
    assert!(shop.disputes_of(&charge).await.is_empty(), "no dispute");
    let list = ListRadarEarlyFraudWarning::new()
        .charge(charge.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(list.data.len(), 1);
    let w = &list.data[0];
    assert!(w.id.as_str().starts_with("issfr_"));
    assert!(w.actionable);
    assert_eq!(w.fraud_type, "misc");
    assert_eq!(id_of(&Some(w.charge.clone())), charge);
    let mark = events(&shop.sandbox, shop.account.as_str()).len();
    // Fully refunded, it is no longer actionable.
    shop.refund(&charge, None).await.unwrap();
    let w = RetrieveRadarEarlyFraudWarning::new(w.id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert!(!w.actionable);
    let all = events(&shop.sandbox, shop.account.as_str());
    assert!(
        kinds(&all).contains(&"radar.early_fraud_warning.created".to_owned()),
        "{:?}",
        kinds(&all)
    );
    assert!(kinds_after(&all, mark).contains(&"radar.early_fraud_warning.updated".to_owned()));
    let updated = all
        .iter()
        .rev()
        .find(|e| e.type_.as_str() == "radar.early_fraud_warning.updated")
        .unwrap();
    match &updated.data.object {
        EventObject::RadarEarlyFraudWarningUpdated(w) => assert!(!w.actionable),
        other => panic!("{other:?}"),
    }
    let empty = ListRadarEarlyFraudWarning::new()
        .charge("ch_other")
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert!(empty.data.is_empty());
}

// ---- plan changes and invoice previews ----

const DAY: i64 = 86_400;
/// 2030-01-01 00:00 UTC.
const START: i64 = 1_893_456_000;

struct Plans {
    shop: Shop,
    basic: String,
    pro: String,
    pro_yearly: String,
    customer: String,
    sub: Subscription,
    pro_product_id: String,
}

async fn recurring_price(shop: &Shop, product: &str, amount: i64, yearly: bool) -> String {
    let interval = if yearly {
        CreatePriceRecurringInterval::Year
    } else {
        CreatePriceRecurringInterval::Month
    };
    CreatePrice::new(Currency::USD)
        .product(product)
        .unit_amount(amount)
        .recurring(CreatePriceRecurring::new(interval))
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap()
        .id
        .to_string()
}

/// A subscriber on Basic ($10.00 a month) since 2030-01-01, on a test clock; Pro costs $30.00
/// a month or $300.00 a year.
async fn plans() -> Plans {
    let shop = shop().await;
    let basic_product = CreateProduct::new("Basic")
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let pro_product = CreateProduct::new("Pro")
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let basic = recurring_price(&shop, basic_product.id.as_str(), 1000, false).await;
    let pro = recurring_price(&shop, pro_product.id.as_str(), 3000, false).await;
    let pro_yearly = recurring_price(&shop, pro_product.id.as_str(), 30000, true).await;
    let clock = CreateTestHelpersTestClock::new(START)
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let customer = CreateCustomer::new()
        .email("ana@example.com")
        .payment_method("pm_card_visa")
        .test_clock(clock.id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap()
        .id
        .to_string();
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(basic.clone());
    let sub = CreateSubscription::new()
        .customer(customer.as_str())
        .items(vec![item])
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Active);
    Plans {
        shop,
        basic,
        pro,
        pro_yearly,
        customer,
        sub,
        pro_product_id: pro_product.id.to_string(),
    }
}

impl Plans {
    fn item(&self) -> String {
        self.sub.items.data[0].id.to_string()
    }

    async fn preview(
        &self,
        price: &str,
        behavior: Option<CreatePreviewInvoiceSubscriptionDetailsProrationBehavior>,
        date: i64,
    ) -> Result<Invoice, StripeError> {
        let mut item = CreatePreviewInvoiceSubscriptionDetailsItems::new();
        item.id = Some(self.item());
        item.price = Some(price.to_owned());
        let mut details = CreatePreviewInvoiceSubscriptionDetails::new();
        details.items = Some(vec![item]);
        details.proration_behavior = behavior;
        details.proration_date = Some(date);
        CreatePreviewInvoice::new()
            .customer(self.customer.as_str())
            .subscription(self.sub.id.as_str())
            .subscription_details(details)
            .customize()
            .account_id(self.shop.on())
            .send(&self.shop.c)
            .await
    }

    async fn switch(
        &self,
        price: &str,
        behavior: UpdateSubscriptionProrationBehavior,
        date: Option<i64>,
    ) -> Result<Subscription, StripeError> {
        let mut item = UpdateSubscriptionItems::new();
        item.id = Some(self.item());
        item.price = Some(price.to_owned());
        let mut req = UpdateSubscription::new(self.sub.id.as_str())
            .items(vec![item])
            .proration_behavior(behavior);
        if let Some(d) = date {
            req = req.proration_date(d);
        }
        req.customize()
            .account_id(self.shop.on())
            .send(&self.shop.c)
            .await
    }

    async fn invoice(&self, id: &str) -> Invoice {
        RetrieveInvoice::new(id)
            .customize()
            .account_id(self.shop.on())
            .send(&self.shop.c)
            .await
            .unwrap()
    }
}

fn is_proration(l: &stripe_shared::InvoiceLineItem) -> bool {
    l.parent
        .as_ref()
        .and_then(|p| p.subscription_item_details.as_ref())
        .is_some_and(|d| d.proration)
}

fn line_amounts(i: &Invoice) -> Vec<(i64, bool)> {
    i.lines
        .data
        .iter()
        .map(|l| (l.amount, is_proration(l)))
        .collect()
}

#[tokio::test]
async fn an_upgrade_is_previewed_then_invoiced_with_prorations() {
    let p = plans().await;
    // Half of January's 31 days are left.
    let half = START + 31 * DAY / 2;
    let next = p.preview(&p.pro, None, half).await.unwrap();
    assert!(next.id.is_none(), "a preview has no id");
    assert_eq!(
        line_amounts(&next),
        vec![(-500, true), (1500, true), (3000, false)],
        "create_prorations: the next invoice carries them"
    );
    assert_eq!(next.total, 4000);
    assert_eq!(next.period_end, START + 31 * DAY);
    assert!(
        next.lines.data[0]
            .description
            .as_deref()
            .is_some_and(|d| d.starts_with("Unused time on Basic after 16 Jan 2030")),
        "{:?}",
        next.lines.data[0].description
    );
    let now = p
        .preview(
            &p.pro,
            Some(CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::AlwaysInvoice),
            half,
        )
        .await
        .unwrap();
    assert_eq!(line_amounts(&now), vec![(-500, true), (1500, true)]);
    assert_eq!(now.total, 1000, "what is charged now");
    assert_eq!(
        now.billing_reason,
        Some(stripe_shared::InvoiceBillingReason::SubscriptionUpdate)
    );
    // Nothing was stored.
    let listed = ListInvoice::new()
        .subscription(p.sub.id.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1, "only the first invoice");

    let mark = events(&p.shop.sandbox, p.shop.account.as_str()).len();
    let upgraded = p
        .switch(
            &p.pro,
            UpdateSubscriptionProrationBehavior::AlwaysInvoice,
            Some(half),
        )
        .await
        .unwrap();
    assert_eq!(
        upgraded.items.data[0].price.id.as_str(),
        p.pro.as_str(),
        "same item, new price"
    );
    assert_eq!(upgraded.items.data[0].id.as_str(), p.item());
    let invoice = p.invoice(&id_of(&upgraded.latest_invoice)).await;
    assert_eq!(invoice.total, 1000);
    assert_eq!(invoice.status, Some(stripe_shared::InvoiceStatus::Paid));
    let all = events(&p.shop.sandbox, p.shop.account.as_str());
    let after = kinds_after(&all, mark);
    assert!(
        after.starts_with(&["customer.subscription.updated".to_owned()]),
        "{after:?}"
    );
    assert!(after.contains(&"invoice.paid".to_owned()), "{after:?}");
    let updated = &all[mark];
    let prev = updated
        .data
        .previous_attributes
        .as_ref()
        .map(miniserde::json::to_string)
        .unwrap_or_default();
    assert!(prev.contains("\"items\""), "{prev}");

    // The renewal then bills Pro alone.
    AdvanceTestHelpersTestClock::new(
        id_of(&upgraded.test_clock).as_str(),
        START + 31 * DAY + 2 * 3600,
    )
    .customize()
    .account_id(p.shop.on())
    .send(&p.shop.c)
    .await
    .unwrap();
    let renewed = RetrieveSubscription::new(p.sub.id.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    let renewal = p.invoice(&id_of(&renewed.latest_invoice)).await;
    assert_eq!(line_amounts(&renewal), vec![(3000, false)]);
}

#[tokio::test]
async fn a_downgrade_with_create_prorations_credits_the_next_renewal() {
    let p = plans().await;
    let pro = p
        .switch(&p.pro, UpdateSubscriptionProrationBehavior::None, None)
        .await
        .unwrap();
    assert_eq!(
        id_of(&pro.latest_invoice),
        id_of(&p.sub.latest_invoice),
        "none: no invoice"
    );
    let p = Plans { sub: pro, ..p };
    // Three quarters of 31 days left: 23.25 days.
    let at = START + 31 * DAY / 4;
    p.switch(
        &p.basic,
        UpdateSubscriptionProrationBehavior::CreateProrations,
        Some(at),
    )
    .await
    .unwrap();
    AdvanceTestHelpersTestClock::new(
        id_of(&p.sub.test_clock).as_str(),
        START + 31 * DAY + 2 * 3600,
    )
    .customize()
    .account_id(p.shop.on())
    .send(&p.shop.c)
    .await
    .unwrap();
    let renewed = RetrieveSubscription::new(p.sub.id.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    let renewal = p.invoice(&id_of(&renewed.latest_invoice)).await;
    assert_eq!(
        line_amounts(&renewal),
        vec![(-2250, true), (750, true), (1000, false)]
    );
    assert_eq!(renewal.total, -500);
    assert_eq!(renewal.amount_due, 0, "a credit is never due");
    assert_eq!(renewal.status, Some(stripe_shared::InvoiceStatus::Paid));
}

#[tokio::test]
async fn monthly_to_yearly_restarts_the_period_and_invoices_now() {
    let p = plans().await;
    let half = START + 31 * DAY / 2;
    let yearly = p
        .switch(
            &p.pro_yearly,
            UpdateSubscriptionProrationBehavior::CreateProrations,
            Some(half),
        )
        .await
        .unwrap();
    let item = &yearly.items.data[0];
    assert_eq!(item.current_period_start, half);
    assert_eq!(item.current_period_end, half + 365 * DAY);
    assert_eq!(yearly.billing_cycle_anchor, half);
    let invoice = p.invoice(&id_of(&yearly.latest_invoice)).await;
    assert_eq!(line_amounts(&invoice), vec![(-500, true), (30000, false)]);
    assert_eq!(invoice.status, Some(stripe_shared::InvoiceStatus::Paid));
}

#[tokio::test]
async fn bad_plan_changes_and_previews_are_refused_with_the_param() {
    let p = plans().await;
    let (e, status) = stripe_error(
        p.switch(
            "price_missing",
            UpdateSubscriptionProrationBehavior::CreateProrations,
            None,
        )
        .await,
    );
    assert_eq!(status, 400);
    assert_eq!(e.param.as_deref(), Some("items[0][price]"));
    assert_eq!(
        e.code.as_ref().map(|c| c.as_str()),
        Some("resource_missing")
    );
    let (e, status) = stripe_error(
        p.switch(
            &p.pro,
            UpdateSubscriptionProrationBehavior::CreateProrations,
            Some(START - DAY),
        )
        .await,
    );
    assert_eq!((status, e.param.as_deref()), (400, Some("proration_date")));
    let (e, status) = stripe_error(p.preview(&p.pro, None, START + 40 * DAY).await);
    assert_eq!(
        (status, e.param.as_deref()),
        (400, Some("subscription_details[proration_date]"))
    );
    let (e, status) = stripe_error(
        CreatePreviewInvoice::new()
            .subscription("sub_missing")
            .customize()
            .account_id(p.shop.on())
            .send(&p.shop.c)
            .await,
    );
    assert_eq!((status, e.param.as_deref()), (400, Some("subscription")));
    let (e, status) = stripe_error(
        CreatePreviewInvoice::new()
            .customer(p.customer.as_str())
            .customize()
            .account_id(p.shop.on())
            .send(&p.shop.c)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(
        e.code.as_ref().map(|c| c.as_str()),
        Some("invoice_upcoming_none")
    );
    // Without changes: the next renewal as it stands.
    let next = CreatePreviewInvoice::new()
        .subscription(p.sub.id.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    assert_eq!(line_amounts(&next), vec![(1000, false)]);
}

// ---- the billing portal and subscription schedules ----

use stripe_billing::billing_portal_configuration::{
    CreateBillingPortalConfiguration, CreateBillingPortalConfigurationFeatures,
    CreateBillingPortalConfigurationFeaturesSubscriptionCancel,
    CreateBillingPortalConfigurationFeaturesSubscriptionCancelMode,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdate,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdateProrationBehavior,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdateScheduleAtPeriodEnd,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdateScheduleAtPeriodEndConditions,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdateScheduleAtPeriodEndConditionsType,
    InvoiceListParam, ListBillingPortalConfiguration, PaymentMethodUpdateParam,
    RetrieveBillingPortalConfiguration, SubscriptionUpdateProductParam,
};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::subscription_schedule::{
    CancelSubscriptionSchedule, CreateSubscriptionSchedule, ReleaseSubscriptionSchedule,
    RetrieveSubscriptionSchedule, UpdateSubscriptionSchedule, UpdateSubscriptionSchedulePhases,
    UpdateSubscriptionSchedulePhasesItems,
};

impl Plans {
    async fn portal_configuration(&self) -> stripe_billing::BillingPortalConfiguration {
        let mut cancel = CreateBillingPortalConfigurationFeaturesSubscriptionCancel::new(true);
        cancel.mode =
            Some(CreateBillingPortalConfigurationFeaturesSubscriptionCancelMode::AtPeriodEnd);
        let mut update = CreateBillingPortalConfigurationFeaturesSubscriptionUpdate::new(true);
        update.products = Some(vec![
            SubscriptionUpdateProductParam::new(vec![self.basic.clone()], self.basic_product()),
            SubscriptionUpdateProductParam::new(
                vec![self.pro.clone(), self.pro_yearly.clone()],
                self.pro_product(),
            ),
        ]);
        update.proration_behavior = Some(
            CreateBillingPortalConfigurationFeaturesSubscriptionUpdateProrationBehavior::AlwaysInvoice,
        );
        let mut at_end =
            CreateBillingPortalConfigurationFeaturesSubscriptionUpdateScheduleAtPeriodEnd::new();
        at_end.conditions = Some(vec![
            CreateBillingPortalConfigurationFeaturesSubscriptionUpdateScheduleAtPeriodEndConditions::new(
                CreateBillingPortalConfigurationFeaturesSubscriptionUpdateScheduleAtPeriodEndConditionsType::DecreasingItemAmount,
            ),
        ]);
        update.schedule_at_period_end = Some(at_end);
        let mut features = CreateBillingPortalConfigurationFeatures::new();
        features.invoice_history = Some(InvoiceListParam::new(true));
        features.payment_method_update = Some(PaymentMethodUpdateParam::new(true));
        features.subscription_cancel = Some(cancel);
        features.subscription_update = Some(update);
        CreateBillingPortalConfiguration::new(features)
            .default_return_url("https://shop.example/account")
            .customize()
            .account_id(self.shop.on())
            .send(&self.shop.c)
            .await
            .unwrap()
    }

    fn basic_product(&self) -> String {
        self.sub.items.data[0].price.product.id().to_string()
    }

    fn pro_product(&self) -> String {
        self.pro_product_id.clone()
    }

    async fn current(&self) -> Subscription {
        RetrieveSubscription::new(self.sub.id.as_str())
            .customize()
            .account_id(self.shop.on())
            .send(&self.shop.c)
            .await
            .unwrap()
    }

    async fn advance_to(&self, t: i64) {
        AdvanceTestHelpersTestClock::new(id_of(&self.sub.test_clock).as_str(), t)
            .customize()
            .account_id(self.shop.on())
            .send(&self.shop.c)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_portal_switches_plans_updates_the_card_and_cancels() {
    let p = plans().await;
    let config = p.portal_configuration().await;
    assert!(config.id.as_str().starts_with("bpc_"));
    assert!(config.features.subscription_update.enabled);
    assert_eq!(
        config
            .features
            .subscription_update
            .products
            .as_ref()
            .map(Vec::len),
        Some(2)
    );
    let again = RetrieveBillingPortalConfiguration::new(config.id.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    assert_eq!(again.id, config.id);
    let listed = ListBillingPortalConfiguration::new()
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1);

    let session = CreateBillingPortalSession::new()
        .customer(p.customer.as_str())
        .configuration(config.id.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    assert_eq!(
        session.return_url.as_deref(),
        Some("https://shop.example/account")
    );
    assert!(session.url.contains("/p/session/test_"), "{}", session.url);
    let http = chatpay_http_client::HttpClient::default();
    let page = http.get(&session.url, &[]).await.unwrap();
    assert_eq!(page.status, 200);
    let html = page.text();
    for needle in [
        "Update plan",
        "Invoice history",
        "id=\"cardNumber\"",
        "Cancel plan",
    ] {
        assert!(html.contains(needle), "{needle}: {html}");
    }
    assert!(!html.contains("<script"));

    // Upgrade now (always_invoice).
    let mark = events(&p.shop.sandbox, p.shop.account.as_str()).len();
    let sub_id = p.sub.id.to_string();
    let up = http
        .post_form(
            &format!("{}/update", session.url),
            &[],
            &[("subscription", sub_id.as_str()), ("price", p.pro.as_str())],
        )
        .await
        .unwrap();
    assert_eq!(up.status, 200, "{}", up.text());
    assert!(up.text().contains("Your plan was updated."));
    let now = p.current().await;
    assert_eq!(now.items.data[0].price.id.as_str(), p.pro.as_str());
    let k = kinds_after(&events(&p.shop.sandbox, p.shop.account.as_str()), mark);
    assert!(
        k.contains(&"customer.subscription.updated".to_owned()),
        "{k:?}"
    );
    assert!(k.contains(&"invoice.paid".to_owned()), "{k:?}");

    // A downgrade waits for the period's end (schedule_at_period_end).
    let down = http
        .post_form(
            &format!("{}/update", session.url),
            &[],
            &[
                ("subscription", sub_id.as_str()),
                ("price", p.basic.as_str()),
            ],
        )
        .await
        .unwrap();
    assert!(
        down.text().contains("at the end of the billing period"),
        "{}",
        down.text()
    );
    let now = p.current().await;
    assert_eq!(
        now.items.data[0].price.id.as_str(),
        p.pro.as_str(),
        "not yet"
    );
    let schedule = id_of(&now.schedule);
    assert!(schedule.starts_with("sub_sched_"), "{schedule}");
    let sched = RetrieveSubscriptionSchedule::new(schedule.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    assert_eq!(sched.phases.len(), 2);
    assert_eq!(sched.phases[1].start_date, START + 31 * DAY);

    // A card that is refused stays out; a good one becomes the default.
    let card = |n: &'static str| {
        vec![
            ("cardNumber", n),
            ("cardExpiry", "12 / 34"),
            ("cardCvc", "123"),
            ("billingName", "Ana Silva"),
        ]
    };
    let refused = http
        .post_form(
            &format!("{}/card", session.url),
            &[],
            &card("4000000000000002"),
        )
        .await
        .unwrap();
    assert_eq!(refused.status, 402);
    let before_pm = id_of(&p.current().await.default_payment_method);
    let saved = http
        .post_form(
            &format!("{}/card", session.url),
            &[],
            &card("5555555555554444"),
        )
        .await
        .unwrap();
    assert_eq!(saved.status, 200);
    assert!(saved.text().contains("Your card was updated."));
    let after_pm = id_of(&p.current().await.default_payment_method);
    assert_ne!(before_pm, after_pm);

    // The period ends: the schedule's next phase (Basic) is billed; the schedule is released
    // when that last phase ends.
    p.advance_to(START + 31 * DAY + 2 * 3600).await;
    let renewed = p.current().await;
    assert_eq!(renewed.items.data[0].price.id.as_str(), p.basic.as_str());
    assert_eq!(id_of(&renewed.schedule), schedule);
    let renewal = p.invoice(&id_of(&renewed.latest_invoice)).await;
    assert_eq!(line_amounts(&renewal), vec![(1000, false)]);

    // Cancel at the period's end.
    let cancel = http
        .post_form(
            &format!("{}/cancel", session.url),
            &[],
            &[("subscription", sub_id.as_str())],
        )
        .await
        .unwrap();
    assert_eq!(cancel.status, 200);
    assert!(p.current().await.cancel_at_period_end);
    let all = events(&p.shop.sandbox, p.shop.account.as_str());
    for k in [
        "billing_portal.configuration.created",
        "billing_portal.session.created",
        "subscription_schedule.created",
        "subscription_schedule.updated",
        "customer.updated",
    ] {
        assert!(kinds(&all).contains(&k.to_owned()), "{k}");
    }
    // Another customer's link can't touch this subscription.
    assert_eq!(
        http.get(&format!("{}x", session.url), &[])
            .await
            .unwrap()
            .status,
        404
    );
}

#[tokio::test]
async fn portal_configurations_and_sessions_refuse_bad_input() {
    let p = plans().await;
    let (e, status) = stripe_error(
        CreateBillingPortalSession::new()
            .customer(p.customer.as_str())
            .customize()
            .account_id(p.shop.on())
            .send(&p.shop.c)
            .await,
    );
    assert_eq!((status, e.param.as_deref()), (400, Some("configuration")));
    let mut features = CreateBillingPortalConfigurationFeatures::new();
    features.subscription_update =
        Some(CreateBillingPortalConfigurationFeaturesSubscriptionUpdate::new(true));
    let (e, status) = stripe_error(
        CreateBillingPortalConfiguration::new(features)
            .customize()
            .account_id(p.shop.on())
            .send(&p.shop.c)
            .await,
    );
    assert_eq!(
        (status, e.param.as_deref()),
        (400, Some("features[subscription_update][products]"))
    );
    let mut update = CreateBillingPortalConfigurationFeaturesSubscriptionUpdate::new(true);
    update.products = Some(vec![SubscriptionUpdateProductParam::new(
        vec![p.pro.clone()],
        p.basic_product(),
    )]);
    let mut features = CreateBillingPortalConfigurationFeatures::new();
    features.subscription_update = Some(update);
    let (e, status) = stripe_error(
        CreateBillingPortalConfiguration::new(features)
            .customize()
            .account_id(p.shop.on())
            .send(&p.shop.c)
            .await,
    );
    assert_eq!(
        (status, e.param.as_deref()),
        (
            400,
            Some("features[subscription_update][products][0][prices]")
        ),
        "a price of another product"
    );
    let config = p.portal_configuration().await;
    let (e, status) = stripe_error(
        CreateBillingPortalSession::new()
            .customer("cus_missing")
            .configuration(config.id.as_str())
            .customize()
            .account_id(p.shop.on())
            .send(&p.shop.c)
            .await,
    );
    assert_eq!((status, e.param.as_deref()), (400, Some("customer")));
    assert_eq!(
        e.code.as_ref().map(|c| c.as_str()),
        Some("resource_missing")
    );
}

#[tokio::test]
async fn a_schedule_from_a_subscription_downgrades_at_the_period_end() {
    let p = plans().await;
    let pro = p
        .switch(&p.pro, UpdateSubscriptionProrationBehavior::None, None)
        .await
        .unwrap();
    let p = Plans { sub: pro, ..p };
    let sched = CreateSubscriptionSchedule::new()
        .from_subscription(p.sub.id.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    assert_eq!(sched.status.as_str(), "active");
    assert_eq!(sched.phases.len(), 1);
    assert_eq!(sched.phases[0].end_date, START + 31 * DAY);
    let (e, status) = stripe_error(
        CreateSubscriptionSchedule::new()
            .from_subscription(p.sub.id.as_str())
            .customize()
            .account_id(p.shop.on())
            .send(&p.shop.c)
            .await,
    );
    assert_eq!(
        (status, e.param.as_deref()),
        (400, Some("from_subscription"))
    );
    let phase = |price: &str, end: Option<i64>| {
        let mut item = UpdateSubscriptionSchedulePhasesItems::new();
        item.price = Some(price.to_owned());
        let mut ph = UpdateSubscriptionSchedulePhases::new(vec![item]);
        if let Some(e) = end {
            ph.end_date = Some(stripe_billing::subscription_schedule::UpdateSubscriptionSchedulePhasesEndDate::Timestamp(e));
        }
        ph
    };
    let updated = UpdateSubscriptionSchedule::new(sched.id.as_str())
        .phases(vec![
            phase(&p.pro, Some(START + 31 * DAY)),
            phase(&p.basic, None),
        ])
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    assert_eq!(updated.phases.len(), 2);
    assert_eq!(updated.phases[1].end_date, START + 59 * DAY, "one February");
    p.advance_to(START + 31 * DAY + 2 * 3600).await;
    let now = p.current().await;
    assert_eq!(now.items.data[0].price.id.as_str(), p.basic.as_str());
    assert_eq!(id_of(&now.schedule), sched.id.as_str(), "still managed");
    let released = ReleaseSubscriptionSchedule::new(sched.id.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    assert_eq!(released.status.as_str(), "released");
    assert_eq!(
        released.released_subscription.as_deref(),
        Some(p.sub.id.as_str())
    );
    assert!(p.current().await.schedule.is_none());
    let (_, status) = stripe_error(
        CancelSubscriptionSchedule::new(sched.id.as_str())
            .customize()
            .account_id(p.shop.on())
            .send(&p.shop.c)
            .await,
    );
    assert_eq!(status, 400, "a released schedule can't be canceled");
    // Canceling a schedule cancels its subscription.
    let again = CreateSubscriptionSchedule::new()
        .from_subscription(p.sub.id.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    CancelSubscriptionSchedule::new(again.id.as_str())
        .customize()
        .account_id(p.shop.on())
        .send(&p.shop.c)
        .await
        .unwrap();
    assert_eq!(p.current().await.status, SubscriptionStatus::Canceled);
    events(&p.shop.sandbox, p.shop.account.as_str());
}
