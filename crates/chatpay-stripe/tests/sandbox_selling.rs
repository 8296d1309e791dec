//! Contract test of the sandbox's selling endpoints against the real async-stripe 1.0 client:
//! Checkout Sessions on a connected account, the hosted checkout page, every test card,
//! PaymentIntents, Charges, BalanceTransactions, Invoices, Refunds, receipts, and every event
//! payload verified and parsed with `stripe_webhook` into its typed object, so a missing field
//! fails here.
//!
//! No sleeps for synchronisation: webhooks are awaited with a deadline, time moves with the
//! sandbox clock.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chatpay_http_client::HttpClient;
use serde_json::json;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::invoice::RetrieveInvoice;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionDiscounts, CreateCheckoutSessionInvoiceCreation,
    CreateCheckoutSessionLineItems, CreateCheckoutSessionPaymentIntentData, ExpireCheckoutSession,
    ListLineItemsCheckoutSession, RetrieveCheckoutSession,
};
use stripe_connect::account::CreateAccount;
use stripe_core::balance_transaction::RetrieveBalanceTransaction;
use stripe_core::charge::{ListCharge, RetrieveCharge, UpdateCharge};
use stripe_core::payment_intent::RetrievePaymentIntent;
use stripe_core::refund::{CreateRefund, CreateRefundReason, ListRefund, RetrieveRefund};
use stripe_product::coupon::{CreateCoupon, RetrieveCoupon};
use stripe_product::price::CreatePrice;
use stripe_product::product::CreateProduct;
use stripe_product::promotion_code::{
    CreatePromotionCode, CreatePromotionCodePromotion, CreatePromotionCodePromotionType,
    CreatePromotionCodeRestrictions, RetrievePromotionCode,
};
use stripe_sandbox::{
    Authenticate, DeliveryConfig, Sandbox, SandboxConfig, TestPayment, signature_header,
};
use stripe_shared::{
    AccountId, ApiErrors, ApiErrorsCode, ApiErrorsType, CheckoutSession, CouponDuration,
};
use stripe_types::Currency;
use stripe_webhook::{Event, EventObject, Webhook};
use tokio::sync::{Mutex, mpsc};

const SECRET: &str = "whsec_selling_test";
const SUCCESS_URL: &str = "https://shop.example/thanks?session={CHECKOUT_SESSION_ID}";
const CANCEL_URL: &str = "https://shop.example/cart";
const WAIT: Duration = Duration::from_secs(15);

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        delivery: DeliveryConfig {
            max_attempts: 4,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
            concurrency: 4,
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

fn client(sandbox: &Sandbox, key: &str) -> Client {
    ClientBuilder::new(key)
        .url(sandbox.base_url())
        .build()
        .expect("client builds")
}

fn stripe_error<T: std::fmt::Debug>(result: Result<T, StripeError>) -> (ApiErrors, u16) {
    match result {
        Err(StripeError::Stripe(error, status)) => (*error, status),
        other => panic!("expected a Stripe error, got {other:?}"),
    }
}

// ---- webhook receiver ----

#[derive(Clone)]
struct HookState {
    tx: mpsc::UnboundedSender<(String, String)>,
}

async fn receive(State(s): State<HookState>, headers: HeaderMap, body: String) -> StatusCode {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let _ = s.tx.send((body, signature));
    StatusCode::OK
}

/// A webhook endpoint on port 0; every delivery must verify and parse into a typed object.
struct Hooks {
    url: String,
    rx: Mutex<mpsc::UnboundedReceiver<(String, String)>>,
    seen: Mutex<Vec<Event>>,
}

impl Hooks {
    async fn start() -> Hooks {
        let (tx, rx) = mpsc::unbounded_channel();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(HookState { tx });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hooks {
            url: format!("http://{addr}/hook"),
            rx: Mutex::new(rx),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Waits for a delivered event of `kind` (earlier or later) that `pick` accepts.
    async fn wait(&self, kind: &str, pick: impl Fn(&Event) -> bool) -> Event {
        if let Some(e) = self
            .seen
            .lock()
            .await
            .iter()
            .find(|e| e.type_.as_str() == kind && pick(e))
        {
            return e.clone();
        }
        loop {
            let (payload, signature) = tokio::time::timeout(WAIT, self.rx.lock().await.recv())
                .await
                .unwrap_or_else(|_| panic!("{kind} arrives before the deadline"))
                .expect("receiver open");
            let event = Webhook::construct_event(&payload, &signature, SECRET)
                .unwrap_or_else(|e| panic!("webhook must verify and parse: {e:?}\n{payload}"));
            assert!(
                !matches!(event.data.object, EventObject::Unknown(_)),
                "{} parses into a typed object",
                event.type_
            );
            self.seen.lock().await.push(event.clone());
            if event.type_.as_str() == kind && pick(&event) {
                return event;
            }
        }
    }
}

/// Every event the sandbox recorded, signed and parsed as a webhook would be: each must parse
/// into its typed object (a missing field fails), and carry the connected account.
fn parse_all_events(sandbox: &Sandbox, account: &str) -> Vec<Event> {
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

// ---- the shop ----

struct Shop {
    sandbox: Sandbox,
    c: Client,
    hooks: Hooks,
    account: AccountId,
    /// A one-time price of $25.00.
    price: String,
    /// A one-time price of $5.00.
    price_small: String,
    product: String,
}

async fn shop() -> Shop {
    let sandbox = sandbox().await;
    let hooks = Hooks::start().await;
    sandbox.set_webhook_endpoint(&hooks.url, SECRET);
    let c = client(&sandbox, &sandbox.config().test_secret_key);
    let mut profile = stripe_connect::account::CreateAccountBusinessProfile::new();
    profile.name = Some("Bright Yoga".into());
    let account = CreateAccount::new()
        .type_(stripe_connect::account::CreateAccountType::Standard)
        .country("US")
        .business_profile(profile)
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
    let small = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(500)
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    Shop {
        sandbox,
        c,
        hooks,
        account,
        price: price.id.to_string(),
        price_small: small.id.to_string(),
        product: product.id.to_string(),
    }
}

fn item(price: &str, quantity: u64) -> CreateCheckoutSessionLineItems {
    let mut li = CreateCheckoutSessionLineItems::new();
    li.price = Some(price.to_owned());
    li.quantity = Some(quantity);
    li
}

impl Shop {
    fn session_request(&self, items: Vec<CreateCheckoutSessionLineItems>) -> CreateCheckoutSession {
        let mut pid = CreateCheckoutSessionPaymentIntentData::new();
        pid.application_fee_amount = Some(300);
        pid.metadata = Some(HashMap::from([("order".to_owned(), "ord_1".to_owned())]));
        CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Payment)
            .line_items(items)
            .success_url(SUCCESS_URL)
            .cancel_url(CANCEL_URL)
            .customer_email("jenny@example.com")
            .client_reference_id("cart_42")
            .metadata(HashMap::from([("project".to_owned(), "prj_1".to_owned())]))
            .payment_intent_data(pid)
            .invoice_creation(CreateCheckoutSessionInvoiceCreation::new(true))
    }

    /// 2 × $25 + 1 × $5 = $55.00, fee $3.00, invoice on.
    async fn session(&self) -> CheckoutSession {
        self.session_request(vec![item(&self.price, 2), item(&self.price_small, 1)])
            .customize()
            .account_id(self.account.clone())
            .send(&self.c)
            .await
            .expect("session created")
    }

    async fn retrieve(&self, id: &str) -> CheckoutSession {
        RetrieveCheckoutSession::new(id)
            .customize()
            .account_id(self.account.clone())
            .send(&self.c)
            .await
            .unwrap()
    }

    fn pay(&self, session: &str, card: &str) -> stripe_sandbox::PaymentResult {
        self.sandbox
            .pay_checkout(session, TestPayment::card(card))
            .expect("the pay control answers")
    }

    async fn intent(&self, id: &str) -> stripe_shared::PaymentIntent {
        RetrievePaymentIntent::new(id)
            .customize()
            .account_id(self.account.clone())
            .send(&self.c)
            .await
            .unwrap()
    }

    async fn charge(&self, id: &str) -> stripe_shared::Charge {
        RetrieveCharge::new(id)
            .customize()
            .account_id(self.account.clone())
            .send(&self.c)
            .await
            .unwrap()
    }

    fn on(&self) -> AccountId {
        self.account.clone()
    }
}

fn id_of<T: stripe_types::Object>(e: &Option<stripe_types::Expandable<T>>) -> String {
    use stripe_types::AsCursorOpt as _;
    e.as_ref()
        .and_then(|x| x.id().as_cursor_opt().map(str::to_owned))
        .unwrap_or_default()
}

// ---- tests ----

#[tokio::test]
async fn a_session_is_created_in_stripes_shape_and_paid_with_4242() {
    let shop = shop().await;
    let s = shop.session().await;
    assert!(s.id.as_str().starts_with("cs_test_"));
    assert_eq!(s.status.as_ref().map(|x| x.as_str()), Some("open"));
    assert_eq!(s.payment_status.as_str(), "unpaid");
    assert_eq!(s.amount_subtotal, Some(5500));
    assert_eq!(s.amount_total, Some(5500));
    assert_eq!(s.currency, Some(Currency::USD));
    assert_eq!(s.expires_at, s.created + 24 * 3600);
    assert!(s.payment_intent.is_none() && s.invoice.is_none());
    assert_eq!(
        s.url.as_deref(),
        Some(format!("{}checkout/{}", shop.sandbox.base_url(), s.id).as_str())
    );
    assert_eq!(s.client_reference_id.as_deref(), Some("cart_42"));
    assert_eq!(s.metadata.as_ref().unwrap()["project"], "prj_1");

    let items = ListLineItemsCheckoutSession::new(s.id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(items.data.len(), 2);
    assert_eq!(items.data[0].amount_total, 5000);
    assert_eq!(items.data[0].quantity, Some(2));
    assert_eq!(items.data[0].description.as_deref(), Some("Yoga mat"));

    let paid = shop.pay(s.id.as_str(), "4242 4242 4242 4242");
    assert_eq!(paid.outcome, "succeeded");
    assert_eq!(
        paid.redirect_to.as_deref(),
        Some(format!("https://shop.example/thanks?session={}", s.id).as_str())
    );

    let s = shop.retrieve(s.id.as_str()).await;
    assert_eq!(s.status.as_ref().map(|x| x.as_str()), Some("complete"));
    assert_eq!(s.payment_status.as_str(), "paid");
    assert!(s.url.is_none());
    let pi_id = id_of(&s.payment_intent);
    let pi = shop.intent(&pi_id).await;
    assert_eq!(pi.status.as_str(), "succeeded");
    assert_eq!((pi.amount, pi.amount_received), (5500, 5500));
    assert_eq!(pi.application_fee_amount, Some(300));
    assert_eq!(pi.metadata["order"], "ord_1");
    assert_eq!(pi.receipt_email.as_deref(), Some("jenny@example.com"));
    let ch = shop.charge(&id_of(&pi.latest_charge)).await;
    assert!(ch.paid && !ch.refunded && ch.captured);
    assert_eq!(ch.status.as_str(), "succeeded");
    assert_eq!(
        (ch.amount, ch.amount_captured, ch.amount_refunded),
        (5500, 5500, 0)
    );
    assert_eq!(
        ch.receipt_url.as_deref(),
        Some(format!("{}receipts/{}", shop.sandbox.base_url(), ch.id).as_str())
    );
    assert_eq!(ch.billing_details.name.as_deref(), Some("Jenny Rosen"));
    let card = ch
        .payment_method_details
        .as_ref()
        .unwrap()
        .card
        .as_ref()
        .unwrap();
    assert_eq!(card.brand.as_deref(), Some("visa"));
    assert_eq!(card.last4.as_deref(), Some("4242"));
    assert_eq!(ch.outcome.as_ref().unwrap().type_, "authorized");

    let txn = RetrieveBalanceTransaction::new(id_of(&ch.balance_transaction))
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(txn.amount, 5500);
    assert_eq!(
        txn.fee,
        30 + 160 + 300,
        "2.9% + 30¢ plus the application fee"
    );
    assert_eq!(txn.net, 5500 - txn.fee);
    assert_eq!(txn.status, "pending");
    assert_eq!(txn.available_on, ch.created + 7 * 86_400);
    assert_eq!(id_of(&txn.source), ch.id.as_str());

    let inv = RetrieveInvoice::new(id_of(&s.invoice))
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(inv.status.as_ref().map(|x| x.as_str()), Some("paid"));
    assert_eq!(inv.amount_paid, 5500);
    assert_eq!(inv.lines.data.len(), 2);
    assert!(inv.number.is_some());
    let hosted = inv.hosted_invoice_url.clone().unwrap();
    let http = HttpClient::default();
    let page = http.get(&hosted, &[]).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("$55.00"));
    let pdf = http
        .get(inv.invoice_pdf.as_deref().unwrap(), &[])
        .await
        .unwrap();
    assert_eq!(pdf.header("content-type"), Some("application/pdf"));
    assert!(pdf.body.starts_with(b"%PDF-"));

    // Webhooks arrive signed and typed, carrying the account.
    let completed = shop
        .hooks
        .wait(
            "checkout.session.completed",
            |e| matches!(&e.data.object, EventObject::CheckoutSessionCompleted(x) if x.id == s.id),
        )
        .await;
    assert_eq!(completed.account.as_deref(), Some(shop.account.as_str()));
    shop.hooks.wait("payment_intent.succeeded", |_| true).await;
    shop.hooks.wait("charge.succeeded", |_| true).await;
    shop.hooks.wait("invoice.finalized", |_| true).await;
    shop.hooks.wait("invoice.paid", |_| true).await;
    let all = kinds(&parse_all_events(&shop.sandbox, shop.account.as_str()));
    for k in [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "checkout.session.completed",
    ] {
        assert!(all.iter().any(|x| x == k), "{k} in {all:?}");
    }

    // Outbox: the receipt was "sent".
    let outbox = shop.sandbox.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].to, "jenny@example.com");
    assert_eq!(outbox[0].charge, ch.id.as_str());
    // Paying a complete session again is refused.
    assert_eq!(
        shop.pay(s.id.as_str(), "4242424242424242").outcome,
        "not_open"
    );
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn declines_use_stripes_codes_and_the_customer_may_retry() {
    let shop = shop().await;
    let s = shop.session().await;
    let cases = [
        (
            "4000000000000002",
            "card_declined",
            "generic_decline",
            "Your card was declined.",
        ),
        (
            "4000000000009995",
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ),
        (
            "4000000000009987",
            "card_declined",
            "lost_card",
            "Your card was declined.",
        ),
        (
            "4000000000000069",
            "expired_card",
            "expired_card",
            "Your card has expired.",
        ),
        (
            "4000000000000127",
            "incorrect_cvc",
            "incorrect_cvc",
            "Your card's security code is incorrect.",
        ),
    ];
    for (card, code, decline, message) in cases {
        let r = shop.pay(s.id.as_str(), card);
        assert_eq!(r.outcome, "declined", "{card}");
        assert_eq!(r.code.as_deref(), Some(decline));
        assert_eq!(r.message.as_deref(), Some(message));
        let pi_id = r.payment_intent.as_ref().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let pi = shop.intent(&pi_id).await;
        assert_eq!(pi.status.as_str(), "requires_payment_method");
        let err = pi.last_payment_error.as_ref().unwrap();
        assert_eq!(err.type_, ApiErrorsType::CardError);
        assert_eq!(err.code.as_ref().map(|c| c.as_str()), Some(code), "{card}");
        assert_eq!(err.decline_code.as_deref(), Some(decline));
        assert_eq!(err.message.as_deref(), Some(message));
        let ch = shop.charge(err.charge.as_deref().unwrap()).await;
        assert_eq!(ch.status.as_str(), "failed");
        assert!(!ch.paid);
        assert_eq!(ch.failure_code.as_deref(), Some(code));
        assert_eq!(
            ch.outcome.as_ref().unwrap().reason.as_deref(),
            Some(decline)
        );
        assert!(ch.balance_transaction.is_none());
    }
    // Same session, same PaymentIntent: now it works.
    let before = shop.retrieve(s.id.as_str()).await;
    assert_eq!(before.status.as_ref().map(|x| x.as_str()), Some("open"));
    let r = shop.pay(s.id.as_str(), "4242424242424242");
    assert_eq!(r.outcome, "succeeded");
    let after = shop.retrieve(s.id.as_str()).await;
    assert_eq!(id_of(&after.payment_intent), id_of(&before.payment_intent));
    let pi = shop.intent(&id_of(&after.payment_intent)).await;
    assert!(pi.last_payment_error.is_none());
    let charges = ListCharge::new()
        .payment_intent(id_of(&after.payment_intent))
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(charges.data.len(), 6);
    assert_eq!(charges.data[0].status.as_str(), "succeeded");

    shop.hooks
        .wait("payment_intent.payment_failed", |_| true)
        .await;
    shop.hooks.wait("charge.failed", |_| true).await;
    let all = kinds(&parse_all_events(&shop.sandbox, shop.account.as_str()));
    assert_eq!(all.iter().filter(|k| *k == "charge.failed").count(), 5);
    assert_eq!(
        all.iter()
            .filter(|k| *k == "payment_intent.payment_failed")
            .count(),
        5
    );
    // No receipt for declines.
    assert_eq!(shop.sandbox.outbox().len(), 1);
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn three_d_secure_completes_or_fails() {
    let shop = shop().await;
    // Complete.
    let s = shop.session().await;
    let r = shop.pay(s.id.as_str(), "4000 0025 0000 3155");
    assert_eq!(r.outcome, "requires_action");
    let pi_id = r.payment_intent.as_ref().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pi = shop.intent(&pi_id).await;
    assert_eq!(pi.status.as_str(), "requires_action");
    assert!(pi.next_action.is_some());
    let http = HttpClient::default();
    let page = http
        .get(
            &format!("{}checkout/{}/authenticate", shop.sandbox.base_url(), s.id),
            &[],
        )
        .await
        .unwrap();
    assert!(page.text().contains("Complete authentication"));
    let done = shop
        .sandbox
        .authenticate_checkout(s.id.as_str(), Authenticate::Complete)
        .unwrap();
    assert_eq!(done.outcome, "succeeded");
    assert_eq!(shop.intent(&pi_id).await.status.as_str(), "succeeded");

    // Fail, then pay with another card.
    let s = shop.session().await;
    let mut payment = TestPayment::card("4000002500003155");
    payment.authenticate = Some(Authenticate::Fail);
    let r = shop.sandbox.pay_checkout(s.id.as_str(), payment).unwrap();
    assert_eq!(r.outcome, "declined");
    assert_eq!(
        r.code.as_deref(),
        Some("payment_intent_authentication_failure")
    );
    let pi_id = r.payment_intent.as_ref().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pi = shop.intent(&pi_id).await;
    assert_eq!(pi.status.as_str(), "requires_payment_method");
    assert_eq!(
        pi.last_payment_error.as_ref().unwrap().code,
        Some(ApiErrorsCode::PaymentIntentAuthenticationFailure)
    );
    assert_eq!(
        shop.pay(s.id.as_str(), "4242424242424242").outcome,
        "succeeded"
    );
    let all = kinds(&parse_all_events(&shop.sandbox, shop.account.as_str()));
    assert!(all.iter().any(|k| k == "payment_intent.requires_action"));
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn refunds_partial_full_and_over_with_stripes_errors() {
    let shop = shop().await;
    let s = shop.session().await;
    shop.pay(s.id.as_str(), "4242424242424242");
    let pi_id = id_of(&shop.retrieve(s.id.as_str()).await.payment_intent);

    let key = IdempotencyKey::new("refund-1").unwrap();
    let partial = CreateRefund::new()
        .payment_intent(pi_id.as_str())
        .amount(2000)
        .reason(CreateRefundReason::RequestedByCustomer)
        .customize()
        .account_id(shop.on())
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&shop.c)
        .await
        .unwrap();
    assert!(partial.id.as_str().starts_with("re_"));
    assert_eq!(partial.amount, 2000);
    assert_eq!(partial.status.as_deref(), Some("succeeded"));
    assert_eq!(id_of(&partial.payment_intent), pi_id);
    // The same key and parameters replay; other parameters are an idempotency error.
    let replay = CreateRefund::new()
        .payment_intent(pi_id.as_str())
        .amount(2000)
        .reason(CreateRefundReason::RequestedByCustomer)
        .customize()
        .account_id(shop.on())
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(replay.id, partial.id);
    let (err, status) = stripe_error(
        CreateRefund::new()
            .payment_intent(pi_id.as_str())
            .amount(100)
            .customize()
            .account_id(shop.on())
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&shop.c)
            .await,
    );
    assert_eq!((err.type_, status), (ApiErrorsType::IdempotencyError, 400));

    let charge_id = id_of(&partial.charge);
    let ch = shop.charge(&charge_id).await;
    assert_eq!((ch.amount_refunded, ch.refunded), (2000, false));

    // More than what remains.
    let (err, status) = stripe_error(
        CreateRefund::new()
            .charge(charge_id.as_str())
            .amount(4000)
            .customize()
            .account_id(shop.on())
            .send(&shop.c)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(err.code, Some(ApiErrorsCode::AmountTooLarge));
    assert_eq!(
        err.message.as_deref(),
        Some("Refund amount ($40.00) is greater than unrefunded amount on charge ($35.00)")
    );
    // The rest, by default.
    let rest = CreateRefund::new()
        .charge(charge_id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(rest.amount, 3500);
    let ch = shop.charge(&charge_id).await;
    assert_eq!((ch.amount_refunded, ch.refunded), (5500, true));
    assert_eq!(ch.refunds.as_ref().unwrap().data.len(), 2);
    // Nothing left.
    let (err, _) = stripe_error(
        CreateRefund::new()
            .payment_intent(pi_id.as_str())
            .customize()
            .account_id(shop.on())
            .send(&shop.c)
            .await,
    );
    assert_eq!(err.code, Some(ApiErrorsCode::ChargeAlreadyRefunded));

    let fetched = RetrieveRefund::new(rest.id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(fetched.id, rest.id);
    let txn = RetrieveBalanceTransaction::new(id_of(&fetched.balance_transaction))
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(txn.amount, -3500);
    let page1 = ListRefund::new()
        .payment_intent(pi_id.as_str())
        .limit(1)
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!((page1.data.len(), page1.has_more), (1, true));
    assert_eq!(page1.data[0].id, rest.id);
    let page2 = ListRefund::new()
        .payment_intent(pi_id.as_str())
        .starting_after(page1.data[0].id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!((page2.data.len(), page2.has_more), (1, false));
    assert_eq!(page2.data[0].id, partial.id);

    // A declined session's PaymentIntent has nothing to refund.
    let s2 = shop.session().await;
    let r = shop.pay(s2.id.as_str(), "4000000000000002");
    let pi2 = r.payment_intent.unwrap()["id"].as_str().unwrap().to_owned();
    let (err, _) = stripe_error(
        CreateRefund::new()
            .payment_intent(pi2.as_str())
            .customize()
            .account_id(shop.on())
            .send(&shop.c)
            .await,
    );
    assert_eq!(err.code, Some(ApiErrorsCode::ChargeNotRefundable));

    shop.hooks.wait("charge.refunded", |_| true).await;
    shop.hooks.wait("refund.created", |_| true).await;
    let events = parse_all_events(&shop.sandbox, shop.account.as_str());
    let refunded: Vec<&Event> = events
        .iter()
        .filter(|e| e.type_.as_str() == "charge.refunded")
        .collect();
    assert_eq!(refunded.len(), 2, "one per refund, partial included");
    match &refunded[1].data.object {
        EventObject::ChargeRefunded(c) => assert!(c.refunded),
        other => panic!("{other:?}"),
    }
    // The receipt page stays current.
    let http = HttpClient::default();
    let receipt = http
        .get(ch.receipt_url.as_deref().unwrap(), &[])
        .await
        .unwrap();
    assert!(receipt.text().contains("Refunded: $55.00"));
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn a_refund_of_5126_fails_later_and_0077_is_available_at_once() {
    let shop = shop().await;
    let s = shop.session().await;
    shop.pay(s.id.as_str(), "4000000000005126");
    let pi_id = id_of(&shop.retrieve(s.id.as_str()).await.payment_intent);
    let refund = CreateRefund::new()
        .payment_intent(pi_id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(refund.status.as_deref(), Some("succeeded"));
    assert_eq!(
        shop.charge(&id_of(&refund.charge)).await.amount_refunded,
        5500
    );
    shop.sandbox.advance_clock(Duration::from_secs(60));
    let failed = RetrieveRefund::new(refund.id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(failed.status.as_deref(), Some("failed"));
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some("expired_or_canceled_card")
    );
    let ch = shop.charge(&id_of(&refund.charge)).await;
    assert_eq!((ch.amount_refunded, ch.refunded), (0, false));
    let e = shop
        .hooks
        .wait(
            "refund.failed",
            |e| matches!(&e.data.object, EventObject::RefundFailed(r) if r.id == refund.id),
        )
        .await;
    assert!(e.request.as_ref().is_none_or(|r| r.id.is_none()));
    shop.hooks.wait("refund.updated", |_| true).await;

    // 0077: funds available immediately.
    let s = shop.session().await;
    shop.pay(s.id.as_str(), "4000000000000077");
    let pi = shop
        .intent(&id_of(&shop.retrieve(s.id.as_str()).await.payment_intent))
        .await;
    let ch = shop.charge(&id_of(&pi.latest_charge)).await;
    let txn = RetrieveBalanceTransaction::new(id_of(&ch.balance_transaction))
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(txn.status, "available");
    assert!(txn.available_on <= ch.created);
    parse_all_events(&shop.sandbox, shop.account.as_str());
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn sessions_expire_by_clock_and_explicitly() {
    let shop = shop().await;
    let s = shop.session().await;
    let expired = ExpireCheckoutSession::new(s.id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(expired.status.as_ref().map(|x| x.as_str()), Some("expired"));
    let (err, status) = stripe_error(
        ExpireCheckoutSession::new(s.id.as_str())
            .customize()
            .account_id(shop.on())
            .send(&shop.c)
            .await,
    );
    assert_eq!(status, 400);
    assert!(err.message.unwrap().contains("status of \"expired\""));
    assert_eq!(
        shop.pay(s.id.as_str(), "4242424242424242").outcome,
        "not_open"
    );

    let s2 = shop.session().await;
    // A started payment is canceled with the session.
    shop.pay(s2.id.as_str(), "4000000000000002");
    shop.sandbox
        .advance_clock(Duration::from_secs(24 * 3600 + 1));
    let e = shop
        .hooks
        .wait(
            "checkout.session.expired",
            |e| matches!(&e.data.object, EventObject::CheckoutSessionExpired(x) if x.id == s2.id),
        )
        .await;
    assert_eq!(e.account.as_deref(), Some(shop.account.as_str()));
    let s2 = shop.retrieve(s2.id.as_str()).await;
    assert_eq!(s2.status.as_ref().map(|x| x.as_str()), Some("expired"));
    let pi = shop.intent(&id_of(&s2.payment_intent)).await;
    assert_eq!(pi.status.as_str(), "canceled");
    let http = HttpClient::default();
    let page = http
        .get(
            &format!("{}checkout/{}", shop.sandbox.base_url(), s2.id),
            &[],
        )
        .await
        .unwrap();
    assert!(page.text().contains("expired"));
    assert!(!page.text().contains("cardNumber"));
    parse_all_events(&shop.sandbox, shop.account.as_str());
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn idempotent_creation_scoping_modes_and_validation() {
    let shop = shop().await;
    let key = IdempotencyKey::new("cs-1").unwrap();
    let send = |items: Vec<CreateCheckoutSessionLineItems>, key: IdempotencyKey| {
        shop.session_request(items)
            .customize()
            .account_id(shop.on())
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&shop.c)
    };
    let first = send(vec![item(&shop.price, 1)], key.clone()).await.unwrap();
    let again = send(vec![item(&shop.price, 1)], key.clone()).await.unwrap();
    assert_eq!(first.id, again.id);
    let (err, _) = stripe_error(send(vec![item(&shop.price, 2)], key).await);
    assert_eq!(err.type_, ApiErrorsType::IdempotencyError);

    // Another account cannot see it; nor can the platform itself.
    let other = CreateAccount::new().send(&shop.c).await.unwrap().id;
    let (err, status) = stripe_error(
        RetrieveCheckoutSession::new(first.id.as_str())
            .customize()
            .account_id(other.clone())
            .send(&shop.c)
            .await,
    );
    assert_eq!(
        (err.code, status),
        (Some(ApiErrorsCode::ResourceMissing), 404)
    );
    assert!(
        RetrieveCheckoutSession::new(first.id.as_str())
            .send(&shop.c)
            .await
            .is_err()
    );
    // Live mode does not see test objects; the price does not exist there either.
    let live = client(&shop.sandbox, &shop.sandbox.config().live_secret_key);
    let (_, status) = stripe_error(
        RetrieveCheckoutSession::new(first.id.as_str())
            .customize()
            .account_id(shop.on())
            .send(&live)
            .await,
    );
    assert!(status == 404 || status == 403, "{status}");

    // Validation: unknown price, recurring price, mixed currencies, quantity, subscription mode.
    // A price named in a parameter is a 400 naming the parameter (404 is for URLs).
    let (err, status) = stripe_error(
        send(
            vec![item("price_nope", 1)],
            IdempotencyKey::new("k2").unwrap(),
        )
        .await,
    );
    assert_eq!(
        (status, err.code),
        (400, Some(ApiErrorsCode::ResourceMissing))
    );
    assert_eq!(err.param.as_deref(), Some("line_items[0][price]"));
    assert_eq!(err.message.as_deref(), Some("No such price: 'price_nope'"));
    let monthly = CreatePrice::new(Currency::USD)
        .product(shop.product.as_str())
        .unit_amount(900)
        .recurring(stripe_product::price::CreatePriceRecurring::new(
            stripe_product::price::CreatePriceRecurringInterval::Month,
        ))
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let (err, _) = stripe_error(
        send(
            vec![item(monthly.id.as_str(), 1)],
            IdempotencyKey::new("k3").unwrap(),
        )
        .await,
    );
    assert!(
        err.message
            .unwrap()
            .starts_with("You specified `payment` mode but passed a recurring price.")
    );
    let eur = CreatePrice::new(Currency::EUR)
        .product(shop.product.as_str())
        .unit_amount(900)
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let (err, _) = stripe_error(
        send(
            vec![item(&shop.price, 1), item(eur.id.as_str(), 1)],
            IdempotencyKey::new("k4").unwrap(),
        )
        .await,
    );
    assert_eq!(err.param.as_deref(), Some("line_items[1][price]"));
    let (err, _) = stripe_error(
        send(
            vec![item(&shop.price, 1_000_000)],
            IdempotencyKey::new("k5").unwrap(),
        )
        .await,
    );
    assert_eq!(err.param.as_deref(), Some("line_items[0][quantity]"));
    // Subscription mode needs a recurring price (tests/sandbox_billing.rs covers the rest).
    let (err, _) = stripe_error(
        CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Subscription)
            .line_items(vec![item(&shop.price, 1)])
            .success_url(SUCCESS_URL)
            .customize()
            .account_id(shop.on())
            .send(&shop.c)
            .await,
    );
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    assert!(
        err.message
            .unwrap()
            .contains("at least one recurring price")
    );
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn the_hosted_page_works_without_javascript() {
    let shop = shop().await;
    let s = shop.session().await;
    let url = s.url.clone().unwrap();
    let http = HttpClient::default();
    let page = http.get(&url, &[]).await.unwrap();
    assert_eq!(page.status, 200);
    let html = page.text();
    for field in [
        "email",
        "cardNumber",
        "cardExpiry",
        "cardCvc",
        "billingName",
    ] {
        assert!(html.contains(&format!("id=\"{field}\"")), "{field}");
        assert!(html.contains(&format!("name=\"{field}\"")), "{field}");
        assert!(
            html.contains(&format!("for=\"{field}\"")),
            "label for {field}"
        );
    }
    assert!(html.contains("Pay $55.00"));
    assert!(html.contains("TEST MODE"));
    assert!(html.contains("4242 4242 4242 4242"));
    assert!(html.contains("width=device-width"));

    let form = |number: &str| {
        vec![
            ("email", "sam@example.com".to_owned()),
            ("cardNumber", number.to_owned()),
            ("cardExpiry", "12 / 34".to_owned()),
            ("cardCvc", "123".to_owned()),
            ("billingName", "Sam Doe".to_owned()),
        ]
    };
    let post = |pairs: Vec<(&'static str, String)>| {
        let http = HttpClient::default();
        let url = url.clone();
        async move {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http.post_form(&url, &[], &pairs).await.unwrap()
        }
    };
    let declined = post(form("4000 0000 0000 9995")).await;
    assert_eq!(declined.status, 402);
    assert!(
        declined
            .text()
            .contains("Your card has insufficient funds.")
    );
    assert!(
        declined.text().contains("id=\"cardNumber\""),
        "the form is shown again"
    );
    let bad = post(form("4242 4242 4242 4241")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("Your card number is invalid."));
    let ok = post(form("4242 4242 4242 4242")).await;
    assert_eq!(ok.status, 303);
    assert_eq!(
        ok.header("location"),
        Some(format!("https://shop.example/thanks?session={}", s.id).as_str())
    );
    let done = http.get(&url, &[]).await.unwrap();
    assert!(done.text().contains("complete"));
    assert!(!done.text().contains("id=\"cardNumber\""));

    // 3D Secure through the pages.
    let s = shop.session().await;
    let url = s.url.clone().unwrap();
    let pairs = form("4000002500003155");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = http.post_form(&url, &[], &pairs).await.unwrap();
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some(format!("/checkout/{}/authenticate", s.id).as_str())
    );
    let auth_url = format!("{url}/authenticate");
    let r = http
        .post_form(&auth_url, &[], &[("action", "fail")])
        .await
        .unwrap();
    assert_eq!(r.status, 402);
    assert!(r.text().contains("unable to authenticate"));
    let r = http.post_form(&url, &[], &pairs).await.unwrap();
    assert_eq!(r.status, 303);
    let r = http
        .post_form(&auth_url, &[], &[("action", "complete")])
        .await
        .unwrap();
    assert_eq!(r.status, 303);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("https://shop.example/thanks")
    );

    // Zero-decimal currency on the page.
    let jpy = CreatePrice::new(Currency::JPY)
        .product(shop.product.as_str())
        .unit_amount(1500)
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let s = CreateCheckoutSession::new()
        .mode(stripe_shared::CheckoutSessionMode::Payment)
        .line_items(vec![item(jpy.id.as_str(), 2)])
        .success_url(SUCCESS_URL)
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let page = http.get(s.url.as_deref().unwrap(), &[]).await.unwrap();
    assert!(page.text().contains("Pay ¥3,000"), "{}", page.text());
    shop.sandbox.shutdown().await;
}

// ---- discounts ----

fn coupon_discount(coupon: &str) -> CreateCheckoutSessionDiscounts {
    let mut d = CreateCheckoutSessionDiscounts::new();
    d.coupon = Some(coupon.to_owned());
    d
}

impl Shop {
    async fn coupon(&self, req: CreateCoupon) -> stripe_shared::Coupon {
        req.customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .expect("coupon created")
    }

    async fn code(&self, req: CreatePromotionCode) -> stripe_shared::PromotionCode {
        req.customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .expect("promotion code created")
    }
}

fn promotion(coupon: &str) -> CreatePromotionCodePromotion {
    let mut p = CreatePromotionCodePromotion::new(CreatePromotionCodePromotionType::Coupon);
    p.coupon = Some(coupon.to_owned());
    p
}

#[tokio::test]
async fn a_coupon_discounts_the_session_its_payment_and_its_invoice() {
    let shop = shop().await;
    let quarter = shop
        .coupon(CreateCoupon::new().percent_off(25.0).name("Spring sale"))
        .await;
    // `discounts` and `allow_promotion_codes` exclude each other.
    let (err, status) = stripe_error(
        shop.session_request(vec![item(&shop.price, 2)])
            .discounts(vec![coupon_discount(quarter.id.as_str())])
            .allow_promotion_codes(true)
            .customize()
            .account_id(shop.on())
            .send(&shop.c)
            .await,
    );
    assert_eq!(
        (status, err.code),
        (400, Some(ApiErrorsCode::ParametersExclusive))
    );
    assert_eq!(
        err.message.as_deref(),
        Some("You may only specify one of these parameters: allow_promotion_codes, discounts.")
    );
    assert_eq!(err.param.as_deref(), Some("allow_promotion_codes"));
    let (err, status) = stripe_error(
        shop.session_request(vec![item(&shop.price, 2)])
            .discounts(vec![coupon_discount("NOPE")])
            .customize()
            .account_id(shop.on())
            .send(&shop.c)
            .await,
    );
    assert_eq!(
        (status, err.code),
        (400, Some(ApiErrorsCode::ResourceMissing))
    );
    assert_eq!(err.param.as_deref(), Some("discounts[0][coupon]"));

    // 2 × $25 + $5 = $55.00, 25% off: $13.75 off, $41.25 to pay.
    let s = shop
        .session_request(vec![item(&shop.price, 2), item(&shop.price_small, 1)])
        .discounts(vec![coupon_discount(quarter.id.as_str())])
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(s.amount_subtotal, Some(5500));
    assert_eq!(s.total_details.as_ref().unwrap().amount_discount, 1375);
    assert_eq!(s.amount_total, Some(4125));
    let discounts = s.discounts.clone().unwrap();
    assert_eq!(discounts.len(), 1);
    assert_eq!(id_of(&discounts[0].coupon), quarter.id.as_str());
    let items = ListLineItemsCheckoutSession::new(s.id.as_str())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let off: Vec<(i64, i64)> = items
        .data
        .iter()
        .map(|li| (li.amount_discount, li.amount_total))
        .collect();
    assert_eq!(off, [(1250, 3750), (125, 375)]);
    let line_discount = &items.data[0].discounts.as_ref().unwrap()[0];
    assert_eq!(line_discount.amount, 1250);
    assert_eq!(
        line_discount.discount.checkout_session.as_deref(),
        Some(s.id.as_str())
    );
    let broken_down = RetrieveCheckoutSession::new(s.id.as_str())
        .expand(vec!["total_details.breakdown".to_owned()])
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let breakdown = broken_down
        .total_details
        .unwrap()
        .breakdown
        .expect("breakdown expanded");
    assert_eq!(breakdown.discounts[0].amount, 1375);
    assert_eq!(
        id_of(&breakdown.discounts[0].discount.source.coupon),
        quarter.id.as_str()
    );

    // The payment is the discounted total; the invoice shows the discount.
    assert_eq!(
        shop.pay(s.id.as_str(), "4242424242424242").outcome,
        "succeeded"
    );
    let done = shop.retrieve(s.id.as_str()).await;
    assert_eq!(done.amount_total, Some(4125));
    let pi = shop.intent(&id_of(&done.payment_intent)).await;
    assert_eq!((pi.amount, pi.amount_received), (4125, 4125));
    let ch = shop.charge(&id_of(&pi.latest_charge)).await;
    assert_eq!(ch.amount, 4125);
    let txn = RetrieveBalanceTransaction::new(id_of(&ch.balance_transaction))
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(txn.amount, 4125);
    let inv = RetrieveInvoice::new(id_of(&done.invoice))
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(
        (inv.subtotal, inv.total, inv.amount_paid),
        (5500, 4125, 4125)
    );
    let total_off = inv.total_discount_amounts.clone().unwrap();
    assert_eq!(total_off[0].amount, 1375);
    assert_eq!(inv.discounts.len(), 1);
    assert_eq!(
        inv.lines.data[0].discount_amounts.as_ref().unwrap()[0].amount,
        1250
    );
    // One redemption, counted when the session completed.
    let counted = RetrieveCoupon::new(quarter.id.clone())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(counted.times_redeemed, 1);
    let all = kinds(&parse_all_events(&shop.sandbox, shop.account.as_str()));
    assert!(all.iter().any(|k| k == "coupon.created"), "{all:?}");
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn promotion_codes_on_the_hosted_page_with_stripes_refusals() {
    let shop = shop().await;
    let now = chrono::Utc::now().timestamp();
    let twenty = shop
        .coupon(
            CreateCoupon::new()
                .percent_off(20.0)
                .duration(CouponDuration::Forever),
        )
        .await;
    let for_code = |code: &str| CreatePromotionCode::new(promotion(twenty.id.as_str())).code(code);
    let save = shop.code(for_code("SAVE20")).await;
    let once = shop.code(for_code("ONCE").max_redemptions(1)).await;
    let soon = shop.code(for_code("SOON").expires_at(now + 3600)).await;
    let mut minimum = CreatePromotionCodeRestrictions::new();
    minimum.minimum_amount = Some(10_000);
    minimum.minimum_amount_currency = Some(Currency::USD);
    shop.code(for_code("BIG").restrictions(minimum)).await;
    let mut first = CreatePromotionCodeRestrictions::new();
    first.first_time_transaction = Some(true);
    shop.code(for_code("WELCOME").restrictions(first)).await;

    let open = |email: Option<&'static str>| {
        let shop = &shop;
        async move {
            let mut req = CreateCheckoutSession::new()
                .mode(stripe_shared::CheckoutSessionMode::Payment)
                .line_items(vec![item(&shop.price, 2), item(&shop.price_small, 1)])
                .success_url(SUCCESS_URL)
                .allow_promotion_codes(true);
            if let Some(e) = email {
                req = req.customer_email(e);
            }
            req.customize()
                .account_id(shop.on())
                .send(&shop.c)
                .await
                .unwrap()
        }
    };
    let http = HttpClient::default();
    let apply = |s: &CheckoutSession, code: &str| {
        let url = format!("{}/promotion_code", s.url.clone().unwrap());
        let http = http.clone();
        let code = code.to_owned();
        async move {
            http.post_form(&url, &[], &[("promotionCode", &code)])
                .await
                .unwrap()
        }
    };
    // "ONCE" is used up by a first customer.
    let s = open(Some("jenny@example.com")).await;
    assert_eq!(s.allow_promotion_codes, Some(true));
    let page = http.get(s.url.as_deref().unwrap(), &[]).await.unwrap();
    assert!(page.text().contains("Add promotion code"));
    assert!(page.text().contains("id=\"promotionCode\""));
    let applied = apply(&s, "once").await;
    assert_eq!(applied.status, 303, "{}", applied.text());
    assert_eq!(
        shop.pay(s.id.as_str(), "4242424242424242").outcome,
        "succeeded"
    );
    let paid = shop.retrieve(s.id.as_str()).await;
    assert_eq!(paid.amount_total, Some(4400));
    let used = RetrievePromotionCode::new(once.id.clone())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(used.times_redeemed, 1);

    // Each refusal in Stripe's words, under the field; nothing applied.
    shop.sandbox.advance_clock(Duration::from_secs(2 * 3600));
    let s = open(Some("jenny@example.com")).await;
    for (code, message) in [
        ("NOPE", "This code is invalid."),
        (
            "ONCE",
            "This code has already been used the maximum number of times.",
        ),
        ("SOON", "This code has expired."),
        ("BIG", "This code requires a minimum order of $100.00."),
        (
            "WELCOME",
            "This code is only valid for customers making their first purchase.",
        ),
    ] {
        let r = apply(&s, code).await;
        assert_eq!(r.status, 400, "{code}");
        let html = r.text();
        assert!(html.contains(message), "{code}: {html}");
        assert!(html.contains("id=\"promotionCode-error\""), "{code}");
        assert!(html.contains("Pay $55.00"), "{code}: nothing applied");
    }
    assert!(
        shop.retrieve(s.id.as_str())
            .await
            .discounts
            .unwrap_or_default()
            .is_empty()
    );
    let _ = soon;

    // A valid code, in any case: applied, shown, removable; the payment is the discounted total.
    let r = apply(&s, "save20").await;
    assert_eq!(r.status, 303);
    let page = http
        .get(s.url.as_deref().unwrap(), &[])
        .await
        .unwrap()
        .text();
    assert!(
        page.contains("SAVE20") && page.contains("20% off"),
        "{page}"
    );
    assert!(
        page.contains("−$11.00") && page.contains("Pay $44.00"),
        "{page}"
    );
    let s_now = shop.retrieve(s.id.as_str()).await;
    assert_eq!(s_now.amount_total, Some(4400));
    assert_eq!(
        id_of(&s_now.discounts.unwrap()[0].promotion_code),
        save.id.as_str()
    );
    let removed = http
        .post_form(
            &format!("{}/promotion_code/remove", s.url.clone().unwrap()),
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(removed.status, 303);
    assert_eq!(shop.retrieve(s.id.as_str()).await.amount_total, Some(5500));
    assert_eq!(apply(&s, "SAVE20").await.status, 303);
    let form = [
        ("email", "jenny@example.com"),
        ("cardNumber", "4242 4242 4242 4242"),
        ("cardExpiry", "12 / 34"),
        ("cardCvc", "123"),
        ("billingName", "Jenny Rosen"),
    ];
    let r = http
        .post_form(s.url.as_deref().unwrap(), &[], &form)
        .await
        .unwrap();
    assert_eq!(r.status, 303);
    let done = shop.retrieve(s.id.as_str()).await;
    assert_eq!(
        (done.amount_subtotal, done.amount_total),
        (Some(5500), Some(4400))
    );
    let pi = shop.intent(&id_of(&done.payment_intent)).await;
    assert_eq!(pi.amount_received, 4400);
    let counted = RetrievePromotionCode::new(save.id.clone())
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(counted.times_redeemed, 1, "once per completed session");

    // A first-purchase code typed before the email is known is checked when the customer pays.
    let s = open(None).await;
    assert_eq!(apply(&s, "WELCOME").await.status, 303);
    let r = http
        .post_form(s.url.as_deref().unwrap(), &[], &form)
        .await
        .unwrap();
    assert_eq!(r.status, 402);
    assert!(
        r.text()
            .contains("This code is only valid for customers making their first purchase."),
        "{}",
        r.text()
    );
    assert_eq!(shop.retrieve(s.id.as_str()).await.amount_total, Some(5500));
    // A new customer gets it; the API's own message for a returning one.
    assert!(
        shop.sandbox
            .apply_promotion_code(s.id.as_str(), "WELCOME", Some("new@example.com"))
            .is_ok()
    );
    let returning =
        shop.sandbox
            .apply_promotion_code(s.id.as_str(), "WELCOME", Some("jenny@example.com"));
    assert!(returning.is_err());
    // Codes are per account: another account's session does not know them.
    let other = CreateAccount::new().send(&shop.c).await.unwrap().id;
    let elsewhere = CreatePrice::new(Currency::USD)
        .product_data(stripe_product::price::CreatePriceProductData::new("Mat"))
        .unit_amount(2500)
        .customize()
        .account_id(other.clone())
        .send(&shop.c)
        .await
        .unwrap();
    let (err, status) = stripe_error(
        CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Payment)
            .line_items(vec![item(elsewhere.id.as_str(), 1)])
            .success_url(SUCCESS_URL)
            .discounts(vec![{
                let mut d = CreateCheckoutSessionDiscounts::new();
                d.promotion_code = Some(save.id.to_string());
                d
            }])
            .customize()
            .account_id(other)
            .send(&shop.c)
            .await,
    );
    assert_eq!(
        (status, err.code),
        (400, Some(ApiErrorsCode::ResourceMissing))
    );
    assert_eq!(err.param.as_deref(), Some("discounts[0][promotion_code]"));
    let all = kinds(&parse_all_events(&shop.sandbox, shop.account.as_str()));
    assert!(all.iter().any(|k| k == "promotion_code.created"), "{all:?}");
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn the_checkout_page_names_the_business_not_the_person() {
    let shop = shop().await;
    let http = HttpClient::default();
    // An account with a public business name and a person behind it; one for a company with
    // only its legal name; one for a person without a business name.
    let named = |profile_name: Option<&str>,
                 kind: stripe_shared::AccountBusinessType,
                 company: Option<&str>| {
        let mut req = CreateAccount::new()
            .type_(stripe_connect::account::CreateAccountType::Standard)
            .country("US")
            .business_type(kind);
        if let Some(n) = profile_name {
            let mut profile = stripe_connect::account::CreateAccountBusinessProfile::new();
            profile.name = Some(n.to_owned());
            req = req.business_profile(profile);
        }
        match company {
            Some(c) => {
                let mut co = stripe_connect::account::CreateAccountCompany::new();
                co.name = Some(c.to_owned());
                req = req.company(co);
            }
            None => {
                let mut person = stripe_connect::account::CreateAccountIndividual::new();
                person.first_name = Some("Maya".to_owned());
                person.last_name = Some("Patel".to_owned());
                req = req.individual(person);
            }
        }
        let c = shop.c.clone();
        Box::pin(async move { req.send(&c).await.unwrap().id })
    };
    let cases = [
        (
            named(
                Some("Bright Yoga"),
                stripe_shared::AccountBusinessType::Individual,
                None,
            )
            .await,
            "Bright Yoga",
        ),
        (
            named(
                None,
                stripe_shared::AccountBusinessType::Company,
                Some("Patel Studio LLC"),
            )
            .await,
            "Patel Studio LLC",
        ),
        (
            named(None, stripe_shared::AccountBusinessType::Individual, None).await,
            "Maya Patel",
        ),
    ];
    for (i, (account, name)) in cases.iter().enumerate() {
        let price = CreatePrice::new(Currency::USD)
            .product_data(stripe_product::price::CreatePriceProductData::new("Class"))
            .unit_amount(1500)
            .customize()
            .account_id(account.clone())
            .send(&shop.c)
            .await
            .unwrap();
        let s = CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Payment)
            .line_items(vec![item(price.id.as_str(), 1)])
            .success_url(SUCCESS_URL)
            .customize()
            .account_id(account.clone())
            .send(&shop.c)
            .await
            .unwrap();
        let page = http
            .get(s.url.as_deref().unwrap(), &[])
            .await
            .unwrap()
            .text();
        assert!(page.contains(&format!("Pay {name}")), "{name}: {page}");
        if i < 2 {
            assert!(
                !page.contains("Maya Patel"),
                "{name}: not the person's name"
            );
        }
    }
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn receipts_are_sent_and_resent_through_the_outbox() {
    let shop = shop().await;
    let s = shop.session().await;
    let mut payment = TestPayment::card("4242424242424242");
    payment.email = Some("buyer@example.com".into());
    shop.sandbox.pay_checkout(s.id.as_str(), payment).unwrap();
    let pi = shop
        .intent(&id_of(&shop.retrieve(s.id.as_str()).await.payment_intent))
        .await;
    let charge_id = id_of(&pi.latest_charge);
    let outbox = shop.sandbox.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].to, "buyer@example.com");
    assert!(outbox[0].subject.contains("Bright Yoga"));

    let updated = UpdateCharge::new(charge_id.as_str())
        .receipt_email("other@example.com")
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    assert_eq!(updated.receipt_email.as_deref(), Some("other@example.com"));
    let outbox = shop.sandbox.outbox();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[1].to, "other@example.com");
    assert_eq!(outbox[1].charge, charge_id);
    assert_eq!(outbox[1].receipt_url, updated.receipt_url.clone().unwrap());
    shop.hooks.wait("charge.updated", |_| true).await;

    // The same over HTTP.
    let http = HttpClient::default();
    let json_box = http
        .get(
            &format!("{}__sandbox/outbox.json", shop.sandbox.base_url()),
            &[],
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(json_box.as_array().unwrap().len(), 2);
    let page = http
        .get(&format!("{}__sandbox/outbox", shop.sandbox.base_url()), &[])
        .await
        .unwrap();
    assert!(page.text().contains("other@example.com"));
    // And paying over the HTTP control.
    let s = shop.session().await;
    let r = http
        .post_json(
            &format!("{}__sandbox/checkout/{}/pay", shop.sandbox.base_url(), s.id),
            &[],
            &json!({"card": "4242 4242 4242 4242", "email": "h@example.com"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().unwrap()["outcome"], "succeeded");
    assert_eq!(shop.sandbox.outbox().len(), 3);
    parse_all_events(&shop.sandbox, shop.account.as_str());
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn selling_events_can_be_paused_reordered_and_resent() {
    let shop = shop().await;
    shop.sandbox.pause_deliveries(true);
    let s = shop.session().await;
    shop.pay(s.id.as_str(), "4242424242424242");
    let completed = shop.sandbox.events(Some("checkout.session.completed"));
    let succeeded = shop.sandbox.events(Some("payment_intent.succeeded"));
    assert_eq!((completed.len(), succeeded.len()), (1, 1));
    // Deliver the session first, then the intent, then the session again (a duplicate).
    let attempts = shop
        .sandbox
        .deliver_events(&[&completed[0].id, &succeeded[0].id])
        .await
        .unwrap();
    assert!(attempts.iter().all(|a| a.ok));
    shop.sandbox.resend_event(&completed[0].id).await.unwrap();
    shop.hooks.wait("payment_intent.succeeded", |_| true).await;
    let seen = shop.hooks.seen.lock().await.len();
    assert!(seen >= 2);
    shop.sandbox.shutdown().await;
}

#[tokio::test]
async fn sales_survive_a_restart_with_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sandbox.json");
    let config = SandboxConfig {
        state_file: Some(path.clone()),
        ..SandboxConfig::default()
    };
    let first = Sandbox::start(config.clone()).await.unwrap();
    let c = client(&first, &first.config().test_secret_key);
    let account = CreateAccount::new().send(&c).await.unwrap().id;
    let product = CreateProduct::new("Tea")
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    let price = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(1200)
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    let s = CreateCheckoutSession::new()
        .mode(stripe_shared::CheckoutSessionMode::Payment)
        .line_items(vec![item(price.id.as_str(), 1)])
        .success_url(SUCCESS_URL)
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    first
        .pay_checkout(s.id.as_str(), TestPayment::card("4242424242424242"))
        .unwrap();
    let refund_of = RetrieveCheckoutSession::new(s.id.as_str())
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    let pi = id_of(&refund_of.payment_intent);
    CreateRefund::new()
        .payment_intent(pi.as_str())
        .amount(200)
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    first.shutdown().await;

    let second = Sandbox::start(SandboxConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    })
    .await
    .unwrap();
    let c = client(&second, &second.config().test_secret_key);
    let s = RetrieveCheckoutSession::new(s.id.as_str())
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(s.payment_status.as_str(), "paid");
    let refunds = ListRefund::new()
        .payment_intent(pi.as_str())
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(refunds.data.len(), 1);
    assert_eq!(second.outbox().len(), 1);
    second.shutdown().await;
}

/// `expand[]` on a session nests the objects it names as their own retrieve shows them, a
/// path expanding every object it leads through, in shapes async-stripe parses; the gateway's
/// order re-read is that one GET (and the refunds list).
#[tokio::test]
async fn a_session_expands_its_payment_charge_balance_transaction_and_invoice() {
    let shop = shop().await;
    let s = shop.session().await;
    assert_eq!(
        shop.pay(s.id.as_str(), "4242424242424242").outcome,
        "succeeded"
    );
    let plain = shop.retrieve(s.id.as_str()).await;
    assert!(
        plain
            .payment_intent
            .as_ref()
            .is_some_and(|p| !p.is_object())
    );
    let expanded = RetrieveCheckoutSession::new(s.id.as_str())
        .expand(vec![
            "payment_intent.latest_charge.balance_transaction".to_owned(),
            "invoice".to_owned(),
        ])
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let intent = expanded
        .payment_intent
        .as_ref()
        .and_then(|p| p.as_object())
        .expect("the PaymentIntent, expanded");
    assert_eq!(intent.id.as_str(), id_of(&plain.payment_intent));
    let alone = shop.intent(intent.id.as_str()).await;
    assert_eq!(intent.status, alone.status);
    let charge = intent
        .latest_charge
        .as_ref()
        .and_then(|c| c.as_object())
        .expect("the charge, expanded");
    assert_eq!(charge.id.as_str(), id_of(&alone.latest_charge));
    let charge_alone = shop.charge(charge.id.as_str()).await;
    assert_eq!(charge.amount_captured, charge_alone.amount_captured);
    assert_eq!(charge.receipt_url, charge_alone.receipt_url);
    let txn = charge
        .balance_transaction
        .as_ref()
        .and_then(|t| t.as_object())
        .expect("the balance transaction, expanded");
    assert_eq!(txn.id.as_str(), id_of(&charge_alone.balance_transaction));
    assert!(txn.available_on > txn.created);
    let invoice = expanded
        .invoice
        .as_ref()
        .and_then(|i| i.as_object())
        .expect("the invoice, expanded");
    assert_eq!(id_of(&expanded.invoice), id_of(&plain.invoice));
    assert!(invoice.hosted_invoice_url.is_some());
    // Only what is asked for: `payment_intent` alone leaves its charge an id.
    let one_level = RetrieveCheckoutSession::new(s.id.as_str())
        .expand(vec!["payment_intent".to_owned()])
        .customize()
        .account_id(shop.on())
        .send(&shop.c)
        .await
        .unwrap();
    let intent = one_level
        .payment_intent
        .as_ref()
        .and_then(|p| p.as_object())
        .expect("expanded");
    assert!(
        intent
            .latest_charge
            .as_ref()
            .is_some_and(|c| !c.is_object())
    );
    assert!(one_level.invoice.as_ref().is_some_and(|i| !i.is_object()));
}
