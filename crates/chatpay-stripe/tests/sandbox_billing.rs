//! Contract test of the sandbox's billing endpoints against the real async-stripe 1.0 client:
//! subscription-mode Checkout on a connected account, Customers, Subscriptions, Invoices,
//! test clocks, renewals, failed payments and their retries, cancellation; every response is
//! parsed with async-stripe's types, and every event verified and parsed with `stripe_webhook`
//! into its typed object, so a missing field fails here.
//!
//! No sleeps: time moves with the sandbox clock (`advance_clock`) or a test clock.

use std::time::Duration;

use serde_json::json;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::invoice::{
    ListInvoice, MarkUncollectibleInvoice, PayInvoice, RetrieveInvoice, VoidInvoiceInvoice,
};
use stripe_billing::subscription::{
    CancelSubscription, CreateSubscription, CreateSubscriptionItems, DiscountsDataParam,
    ListSubscription, ListSubscriptionStatus, RetrieveSubscription, UpdateSubscription,
};
use stripe_billing::test_helpers_test_clock::{
    AdvanceTestHelpersTestClock, CreateTestHelpersTestClock, RetrieveTestHelpersTestClock,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionDiscounts, CreateCheckoutSessionLineItems,
    CreateCheckoutSessionSubscriptionData, RetrieveCheckoutSession,
};
use stripe_connect::account::CreateAccount;
use stripe_core::balance::RetrieveForMyAccountBalance;
use stripe_core::balance_transaction::ListBalanceTransaction;
use stripe_core::charge::RetrieveCharge;
use stripe_core::customer::{CreateCustomer, RetrieveCustomer, RetrieveCustomerReturned};
use stripe_core::payment_intent::RetrievePaymentIntent;
use stripe_core::payout::{CancelPayout, CreatePayout, ListPayout, RetrievePayout};
use stripe_product::coupon::{CreateCoupon, RetrieveCoupon};
use stripe_product::price::{CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval};
use stripe_product::product::CreateProduct;
use stripe_product::promotion_code::{
    CreatePromotionCode, CreatePromotionCodePromotion, CreatePromotionCodePromotionType,
    RetrievePromotionCode,
};
use stripe_sandbox::{
    AfterRetries, DeliveryConfig, Sandbox, SandboxConfig, TestPayment, signature_header,
};
use stripe_shared::{
    AccountId, ApiErrorsType, CheckoutSession, CouponDuration, Invoice, Subscription,
};
use stripe_types::Currency;
use stripe_webhook::{Event, EventObject, Webhook};

const SECRET: &str = "whsec_billing_test";
const DAY: i64 = 86_400;

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

fn client(sandbox: &Sandbox, key: &str) -> Client {
    ClientBuilder::new(key)
        .url(sandbox.base_url())
        .build()
        .expect("client builds")
}

fn stripe_error<T: std::fmt::Debug>(
    result: Result<T, StripeError>,
) -> (stripe_shared::ApiErrors, u16) {
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
            assert!(!event.livemode, "{}", s.kind);
            event
        })
        .collect()
}

/// `data.previous_attributes` as JSON (`null` when absent).
fn prev(e: &Event) -> serde_json::Value {
    e.data
        .previous_attributes
        .as_ref()
        .map(|p| serde_json::from_str(&miniserde::json::to_string(p)).unwrap())
        .unwrap_or(serde_json::Value::Null)
}

fn kinds(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.type_.as_str().to_owned()).collect()
}

fn id_of<T: stripe_types::Object>(e: &Option<stripe_types::Expandable<T>>) -> String {
    use stripe_types::AsCursorOpt as _;
    e.as_ref()
        .and_then(|x| x.id().as_cursor_opt().map(str::to_owned))
        .unwrap_or_default()
}

fn status(s: &Subscription) -> &str {
    s.status.as_str()
}

fn inv_status(i: &Invoice) -> &str {
    i.status.as_ref().map_or("", |s| s.as_str())
}

// ---- the membership site ----

struct Site {
    sandbox: Sandbox,
    c: Client,
    account: AccountId,
    /// $10.00 a month.
    monthly: String,
    /// $10.00 a month with a 14-day trial of its own.
    monthly_trial: String,
    /// A one-time $5.00 welcome kit.
    kit: String,
}

async fn site() -> Site {
    let sandbox = sandbox().await;
    let c = client(&sandbox, &sandbox.config().test_secret_key);
    let account = CreateAccount::new()
        .type_(stripe_connect::account::CreateAccountType::Standard)
        .country("US")
        .send(&c)
        .await
        .unwrap()
        .id;
    let product = CreateProduct::new("Members club")
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    let price = |amount: i64, trial: Option<u32>| {
        let mut recurring = CreatePriceRecurring::new(CreatePriceRecurringInterval::Month);
        recurring.trial_period_days = trial;
        CreatePrice::new(Currency::USD)
            .product(product.id.as_str())
            .unit_amount(amount)
            .recurring(recurring)
    };
    let monthly = price(1000, None)
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    let monthly_trial = price(1000, Some(14))
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    assert_eq!(
        monthly_trial.recurring.as_ref().unwrap().trial_period_days,
        Some(14)
    );
    let kit = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(500)
        .customize()
        .account_id(account.clone())
        .send(&c)
        .await
        .unwrap();
    Site {
        sandbox,
        c,
        account,
        monthly: monthly.id.to_string(),
        monthly_trial: monthly_trial.id.to_string(),
        kit: kit.id.to_string(),
    }
}

fn item(price: &str, quantity: u64) -> CreateCheckoutSessionLineItems {
    let mut li = CreateCheckoutSessionLineItems::new();
    li.price = Some(price.to_owned());
    li.quantity = Some(quantity);
    li
}

impl Site {
    fn on(&self) -> AccountId {
        self.account.clone()
    }

    async fn session(
        &self,
        items: Vec<CreateCheckoutSessionLineItems>,
        data: Option<CreateCheckoutSessionSubscriptionData>,
    ) -> CheckoutSession {
        let mut req = CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Subscription)
            .line_items(items)
            .success_url("https://club.example/welcome?session={CHECKOUT_SESSION_ID}")
            .customer_email("ana@example.com");
        if let Some(d) = data {
            req = req.subscription_data(d);
        }
        req.customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .expect("subscription session created")
    }

    /// Subscribes with a card through Checkout; returns the completed session.
    async fn subscribe(
        &self,
        card: &str,
        data: Option<CreateCheckoutSessionSubscriptionData>,
    ) -> CheckoutSession {
        let s = self.session(vec![item(&self.monthly, 1)], data).await;
        let paid = self
            .sandbox
            .pay_checkout(s.id.as_str(), TestPayment::card(card))
            .unwrap();
        assert_eq!(paid.outcome, "succeeded", "{paid:?}");
        RetrieveCheckoutSession::new(s.id.as_str())
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap()
    }

    async fn sub(&self, id: &str) -> Subscription {
        RetrieveSubscription::new(id)
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap()
    }

    async fn invoice(&self, id: &str) -> Invoice {
        RetrieveInvoice::new(id)
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap()
    }

    async fn invoices_of(&self, sub: &str) -> Vec<Invoice> {
        ListInvoice::new()
            .subscription(sub)
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap()
            .data
    }

    /// The sandbox clock (the wall clock plus what the tests advanced).
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.sandbox.advance_clock(Duration::ZERO)
    }

    fn advance(&self, seconds: i64) {
        self.sandbox
            .advance_clock(Duration::from_secs(u64::try_from(seconds).unwrap()));
    }
}

fn period(s: &Subscription) -> (i64, i64) {
    let item = &s.items.data[0];
    (item.current_period_start, item.current_period_end)
}

// ---- tests ----

#[tokio::test]
async fn subscription_checkout_creates_customer_subscription_and_paid_invoice() {
    let site = site().await;
    let s = site
        .session(vec![item(&site.monthly, 1), item(&site.kit, 1)], None)
        .await;
    assert_eq!(s.mode.as_str(), "subscription");
    assert_eq!(s.amount_total, Some(1500));
    assert!(s.subscription.is_none() && s.payment_intent.is_none());

    // A declined card leaves the session open, with nothing created.
    let declined = site
        .sandbox
        .pay_checkout(s.id.as_str(), TestPayment::card("4000000000000002"))
        .unwrap();
    assert_eq!(declined.outcome, "declined");
    // The attach-then-fail card cannot pay what is due today either.
    let declined = site
        .sandbox
        .pay_checkout(s.id.as_str(), TestPayment::card("4000000000000341"))
        .unwrap();
    assert_eq!(declined.outcome, "declined");
    // 3D Secure first, then paid.
    let mut pay = TestPayment::card("4000002500003155");
    pay.authenticate = Some(stripe_sandbox::Authenticate::Complete);
    let paid = site.sandbox.pay_checkout(s.id.as_str(), pay).unwrap();
    assert_eq!(paid.outcome, "succeeded", "{paid:?}");

    let s = RetrieveCheckoutSession::new(s.id.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(s.status.as_ref().map(|x| x.as_str()), Some("complete"));
    assert_eq!(s.payment_status.as_str(), "paid");
    let sub = site.sub(&id_of(&s.subscription)).await;
    assert_eq!(status(&sub), "active");
    assert_eq!(
        sub.items.data.len(),
        1,
        "only the recurring price is an item"
    );
    assert_eq!(sub.items.data[0].price.id.as_str(), site.monthly);
    let (start, end) = period(&sub);
    assert!(end - start >= 28 * DAY && end - start <= 31 * DAY);
    assert_eq!(id_of(&sub.latest_invoice), id_of(&s.invoice));
    let customer = match RetrieveCustomer::new(id_of(&Some(sub.customer.clone())))
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap()
    {
        RetrieveCustomerReturned::Customer(c) => c,
        other => panic!("a customer, not {other:?}"),
    };
    assert_eq!(customer.email.as_deref(), Some("ana@example.com"));
    assert_eq!(id_of(&s.customer), customer.id.as_str());
    assert!(
        customer
            .invoice_settings
            .as_ref()
            .unwrap()
            .default_payment_method
            .is_some()
    );

    let inv = site.invoice(&id_of(&s.invoice)).await;
    assert_eq!(inv_status(&inv), "paid");
    assert_eq!(
        inv.billing_reason.as_ref().map(|r| r.as_str()),
        Some("subscription_create")
    );
    assert_eq!(
        (inv.total, inv.amount_paid, inv.amount_remaining),
        (1500, 1500, 0)
    );
    assert_eq!(
        inv.lines.data.len(),
        2,
        "the one-time item is on the first invoice"
    );
    assert!(inv.hosted_invoice_url.is_some() && inv.invoice_pdf.is_some());
    // `payments` is includable: absent unless expanded, then the PaymentIntent that paid it.
    assert!(inv.payments.is_none());
    let expanded = RetrieveInvoice::new(id_of(&s.invoice))
        .expand(vec!["payments".to_owned()])
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    let payments = expanded.payments.expect("payments when expanded").data;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].status, "paid");
    assert_eq!(payments[0].amount_paid, Some(1500));
    let pi = id_of(&payments[0].payment.payment_intent);
    assert!(pi.starts_with("pi_"), "{pi}");
    let via_session = RetrieveCheckoutSession::new(s.id.as_str())
        .expand(vec!["invoice.payments".to_owned()])
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    let nested = via_session
        .invoice
        .as_ref()
        .and_then(|i| i.as_object())
        .unwrap();
    assert_eq!(
        id_of(
            &nested.payments.as_ref().unwrap().data[0]
                .payment
                .payment_intent
        ),
        pi
    );
    let parent = inv.parent.as_ref().unwrap();
    assert_eq!(
        id_of(
            &parent
                .subscription_details
                .as_ref()
                .map(|d| d.subscription.clone())
        ),
        sub.id.as_str()
    );
    assert_eq!(id_of(&inv.customer), customer.id.as_str());

    let evs = events(&site.sandbox, site.account.as_str());
    let k = kinds(&evs);
    let pos = |kind: &str| {
        k.iter()
            .position(|x| x == kind)
            .unwrap_or_else(|| panic!("{kind} in {k:?}"))
    };
    assert!(pos("customer.created") < pos("customer.subscription.created"));
    assert!(pos("customer.subscription.created") < pos("invoice.created"));
    assert!(pos("invoice.finalized") < pos("charge.succeeded"));
    assert!(pos("invoice.paid") < pos("customer.subscription.updated"));
    assert!(pos("customer.subscription.updated") < pos("checkout.session.completed"));
    let updated = &evs[pos("customer.subscription.updated")];
    assert_eq!(prev(updated)["status"], json!("incomplete"));
    let completed = &evs[pos("checkout.session.completed")];
    let EventObject::CheckoutSessionCompleted(cs) = &completed.data.object else {
        panic!("a checkout session");
    };
    assert_eq!(id_of(&cs.subscription), sub.id.as_str());
    assert_eq!(id_of(&cs.invoice), inv.id.as_ref().unwrap().as_str());
}

#[tokio::test]
async fn a_month_later_the_renewal_is_invoiced_and_paid() {
    let site = site().await;
    let s = site.subscribe("4242424242424242", None).await;
    let sub_id = id_of(&s.subscription);
    let before = site.sub(&sub_id).await;
    let (_, end) = period(&before);
    let now = site.now();
    // Past the period end: a draft invoice waits an hour before it is finalized and charged.
    site.advance(end - now + 60);
    let invoices = site.invoices_of(&sub_id).await;
    assert_eq!(invoices.len(), 2);
    assert_eq!(inv_status(&invoices[0]), "draft");
    assert_eq!(
        invoices[0].billing_reason.as_ref().map(|r| r.as_str()),
        Some("subscription_cycle")
    );
    assert!(invoices[0].hosted_invoice_url.is_none());
    site.advance(3600);
    let renewal = site
        .invoice(invoices[0].id.as_ref().unwrap().as_str())
        .await;
    assert_eq!(inv_status(&renewal), "paid");
    assert_eq!(
        (renewal.total, renewal.amount_paid, renewal.attempt_count),
        (1000, 1000, 1)
    );
    let after = site.sub(&sub_id).await;
    assert_eq!(status(&after), "active");
    assert_eq!(period(&after).0, end);
    assert_eq!(
        id_of(&after.latest_invoice),
        renewal.id.as_ref().unwrap().as_str()
    );
    let k = kinds(&events(&site.sandbox, site.account.as_str()));
    assert_eq!(k.iter().filter(|x| *x == "invoice.paid").count(), 2);
    assert_eq!(k.iter().filter(|x| *x == "invoice.finalized").count(), 2);
}

fn total_off(i: &Invoice) -> i64 {
    i.total_discount_amounts
        .as_ref()
        .map_or(0, |d| d.iter().map(|x| x.amount).sum())
}

/// Runs the subscription into its next period and the renewal's charge; returns the renewal.
async fn next_renewal(site: &Site, sub_id: &str) -> Invoice {
    let (_, end) = period(&site.sub(sub_id).await);
    site.advance(end - site.now() + 2 * 3600);
    let invoices = site.invoices_of(sub_id).await;
    let renewal = invoices[0].clone();
    assert_eq!(inv_status(&renewal), "paid");
    renewal
}

#[tokio::test]
async fn a_repeating_coupon_discounts_the_first_three_months_of_invoices() {
    let site = site().await;
    let half = CreateCoupon::new()
        .percent_off(50.0)
        .duration(CouponDuration::Repeating)
        .duration_in_months(3)
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    let mut d = CreateCheckoutSessionDiscounts::new();
    d.coupon = Some(half.id.to_string());
    let s = CreateCheckoutSession::new()
        .mode(stripe_shared::CheckoutSessionMode::Subscription)
        .line_items(vec![item(&site.monthly, 1)])
        .success_url("https://club.example/welcome")
        .customer_email("ana@example.com")
        .discounts(vec![d])
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!((s.amount_subtotal, s.amount_total), (Some(1000), Some(500)));
    let paid = site
        .sandbox
        .pay_checkout(s.id.as_str(), TestPayment::card("4242424242424242"))
        .unwrap();
    assert_eq!(paid.outcome, "succeeded");
    let s = RetrieveCheckoutSession::new(s.id.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(s.amount_total, Some(500));
    let sub_id = id_of(&s.subscription);
    let sub = site.sub(&sub_id).await;
    assert_eq!(
        sub.discounts.len(),
        1,
        "the subscription carries the discount"
    );
    let first = site.invoice(&id_of(&s.invoice)).await;
    assert_eq!(
        (first.subtotal, total_off(&first), first.total),
        (1000, 500, 500)
    );
    assert_eq!(first.amount_paid, 500);
    assert_eq!(first.discounts.len(), 1);
    // `expand[]=discounts` turns the ids into the Discounts.
    let expanded = RetrieveInvoice::new(first.id.clone().unwrap())
        .expand(vec!["discounts".to_owned()])
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    let discount = expanded.discounts[0].as_object().expect("expanded");
    assert_eq!(id_of(&discount.source.coupon), half.id.as_str());
    assert_eq!(discount.subscription.as_deref(), Some(sub_id.as_str()));
    assert!(discount.end.is_some(), "a repeating discount ends");
    // Months 2 and 3 are discounted; month 4 is not, and the discount has left the
    // subscription.
    for month in 2..=3 {
        let renewal = next_renewal(&site, &sub_id).await;
        assert_eq!(
            (renewal.total, total_off(&renewal)),
            (500, 500),
            "month {month}"
        );
    }
    let fourth = next_renewal(&site, &sub_id).await;
    assert_eq!((fourth.total, total_off(&fourth)), (1000, 0));
    assert!(fourth.discounts.is_empty());
    assert!(site.sub(&sub_id).await.discounts.is_empty());
    let counted = RetrieveCoupon::new(half.id.clone())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(
        counted.times_redeemed, 1,
        "one redemption per completed session"
    );
    events(&site.sandbox, site.account.as_str());
}

#[tokio::test]
async fn a_subscription_created_with_a_once_promotion_code_discounts_its_first_invoice() {
    let site = site().await;
    let five = CreateCoupon::new()
        .amount_off(500)
        .currency(Currency::USD)
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    let mut promotion = CreatePromotionCodePromotion::new(CreatePromotionCodePromotionType::Coupon);
    promotion.coupon = Some(five.id.to_string());
    let code = CreatePromotionCode::new(promotion)
        .code("FIVEOFF")
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    let customer = CreateCustomer::new()
        .email("bo@example.com")
        .payment_method("pm_card_visa")
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    let mut d = DiscountsDataParam::new();
    d.promotion_code = Some(code.id.to_string());
    let sub = CreateSubscription::new()
        .customer(customer.id.as_str())
        .items(vec![{
            let mut i = CreateSubscriptionItems::new();
            i.price = Some(site.monthly.clone());
            i
        }])
        .discounts(vec![d])
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(status(&sub), "active");
    assert_eq!(sub.discounts.len(), 1);
    let first = site.invoice(&id_of(&sub.latest_invoice)).await;
    assert_eq!(
        (first.subtotal, first.total, first.amount_paid),
        (1000, 500, 500)
    );
    let renewal = next_renewal(&site, sub.id.as_str()).await;
    assert_eq!((renewal.total, total_off(&renewal)), (1000, 0));
    assert!(site.sub(sub.id.as_str()).await.discounts.is_empty());
    let counted = RetrievePromotionCode::new(code.id.clone())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(counted.times_redeemed, 1);
    events(&site.sandbox, site.account.as_str());
}

#[tokio::test]
async fn a_failed_renewal_makes_it_past_due_and_paying_the_invoice_recovers_it() {
    let site = site().await;
    let s = site.subscribe("4242424242424242", None).await;
    let sub_id = id_of(&s.subscription);
    let customer = id_of(&s.customer);
    site.sandbox
        .set_customer_card(&customer, "4000 0000 0000 0341")
        .unwrap();
    let (_, end) = period(&site.sub(&sub_id).await);
    let now = site.now();
    site.advance(end - now + 3600 + 60);
    let sub = site.sub(&sub_id).await;
    assert_eq!(status(&sub), "past_due");
    let open = site.invoice(&id_of(&sub.latest_invoice)).await;
    assert_eq!(inv_status(&open), "open");
    assert_eq!(open.attempt_count, 1);
    let first_attempt = open.status_transitions.finalized_at.unwrap();
    assert_eq!(open.next_payment_attempt, Some(first_attempt + 3 * DAY));
    let evs = events(&site.sandbox, site.account.as_str());
    let failed = evs
        .iter()
        .rfind(|e| e.type_.as_str() == "invoice.payment_failed")
        .expect("invoice.payment_failed");
    let EventObject::InvoicePaymentFailed(inv) = &failed.data.object else {
        panic!("an invoice");
    };
    assert_eq!(inv.attempt_count, 1);
    assert!(inv.next_payment_attempt.is_some());

    // The first retry fails too (3 days after the first attempt).
    site.advance(3 * DAY);
    let open = site.invoice(&id_of(&sub.latest_invoice)).await;
    assert_eq!(open.attempt_count, 2);
    assert_eq!(open.next_payment_attempt, Some(first_attempt + 5 * DAY));

    // Paying the open invoice with a good card makes the subscription active again.
    let paid = PayInvoice::new(open.id.clone().unwrap())
        .payment_method("pm_card_visa")
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(inv_status(&paid), "paid");
    assert_eq!(paid.attempt_count, 3);
    assert!(paid.next_payment_attempt.is_none());
    let sub = site.sub(&sub_id).await;
    assert_eq!(status(&sub), "active");
    // Paying again is refused.
    let (err, status_code) = stripe_error(
        PayInvoice::new(open.id.clone().unwrap())
            .customize()
            .account_id(site.on())
            .send(&site.c)
            .await,
    );
    assert_eq!(status_code, 400);
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    events(&site.sandbox, site.account.as_str());
}

#[tokio::test]
async fn after_the_last_retry_the_subscription_is_canceled_or_unpaid() {
    for (setting, expected) in [(None, "canceled"), (Some(AfterRetries::Unpaid), "unpaid")] {
        let site = site().await;
        if let Some(after) = setting {
            site.sandbox
                .set_after_retries(Some(site.account.as_str()), after)
                .unwrap();
        }
        let s = site.subscribe("4242424242424242", None).await;
        let sub_id = id_of(&s.subscription);
        site.sandbox
            .set_customer_card(&id_of(&s.customer), "4000000000000341")
            .unwrap();
        let (_, end) = period(&site.sub(&sub_id).await);
        let now = site.now();
        // Renewal attempt, then retries at 3, 5 and 7 days.
        site.advance(end - now + 3600 + 60 + 7 * DAY);
        let sub = site.sub(&sub_id).await;
        assert_eq!(status(&sub), expected);
        let inv = site.invoice(&id_of(&sub.latest_invoice)).await;
        assert_eq!(inv.attempt_count, 4);
        assert!(inv.next_payment_attempt.is_none());
        let k = kinds(&events(&site.sandbox, site.account.as_str()));
        assert_eq!(
            k.iter().filter(|x| *x == "invoice.payment_failed").count(),
            4
        );
        if expected == "canceled" {
            assert!(k.contains(&"customer.subscription.deleted".to_owned()));
            assert_eq!(
                sub.cancellation_details
                    .as_ref()
                    .and_then(|d| d.reason.as_ref())
                    .map(|r| r.as_str()),
                Some("payment_failed")
            );
        }
    }
}

#[tokio::test]
async fn a_trial_ends_with_trial_will_end_then_the_first_real_invoice() {
    let site = site().await;
    // The price's own 14-day trial.
    let s = site.session(vec![item(&site.monthly_trial, 1)], None).await;
    assert_eq!(s.amount_total, Some(0));
    site.sandbox
        .pay_checkout(s.id.as_str(), TestPayment::card("4242424242424242"))
        .unwrap();
    let s = RetrieveCheckoutSession::new(s.id.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(s.payment_status.as_str(), "no_payment_required");
    let sub = site.sub(&id_of(&s.subscription)).await;
    assert_eq!(status(&sub), "trialing");
    let trial_end = sub.trial_end.unwrap();
    assert_eq!(trial_end - sub.trial_start.unwrap(), 14 * DAY);
    let first = site.invoice(&id_of(&sub.latest_invoice)).await;
    assert_eq!((inv_status(&first), first.total), ("paid", 0));

    // With the request's own trial (7 days) instead.
    let mut data = CreateCheckoutSessionSubscriptionData::new();
    data.trial_period_days = Some(7);
    let s7 = site.subscribe("4242424242424242", Some(data)).await;
    let sub7 = site.sub(&id_of(&s7.subscription)).await;
    assert_eq!(sub7.trial_end.unwrap() - sub7.trial_start.unwrap(), 7 * DAY);

    let now = site.now();
    site.advance(trial_end - now - 3 * DAY + 10);
    let k = kinds(&events(&site.sandbox, site.account.as_str()));
    assert_eq!(
        k.iter()
            .filter(|x| *x == "customer.subscription.trial_will_end")
            .count(),
        2,
        "3 days before each trial ends"
    );
    assert_eq!(status(&site.sub(sub.id.as_str()).await), "trialing");
    site.advance(3 * DAY + 3600);
    let sub = site.sub(sub.id.as_str()).await;
    assert_eq!(status(&sub), "active");
    assert_eq!(period(&sub).0, trial_end);
    let invoice = site.invoice(&id_of(&sub.latest_invoice)).await;
    assert_eq!(inv_status(&invoice), "paid");
    assert_eq!(invoice.total, 1000);
    assert_eq!(
        invoice.billing_reason.as_ref().map(|r| r.as_str()),
        Some("subscription_cycle")
    );
    let evs = events(&site.sandbox, site.account.as_str());
    let trial_over = evs
        .iter()
        .find(|e| {
            e.type_.as_str() == "customer.subscription.updated"
                && prev(e)["status"] == json!("trialing")
        })
        .expect("trialing -> active");
    let EventObject::CustomerSubscriptionUpdated(s) = &trial_over.data.object else {
        panic!("a subscription");
    };
    assert_eq!(status(s), "active");
}

#[tokio::test]
async fn cancel_at_period_end_then_resume_then_cancel_now() {
    let site = site().await;
    let s = site.subscribe("4242424242424242", None).await;
    let sub_id = id_of(&s.subscription);
    let update = |cancel: bool, key: &str| {
        UpdateSubscription::new(sub_id.as_str())
            .cancel_at_period_end(cancel)
            .customize()
            .account_id(site.on())
            .request_strategy(RequestStrategy::Idempotent(
                IdempotencyKey::new(key).unwrap(),
            ))
            .send(&site.c)
    };
    let sub = update(true, "cancel-1").await.unwrap();
    // The same key replays the first answer, even after the subscription changed.
    assert_eq!(update(true, "cancel-1").await.unwrap().id, sub.id);
    let (err, _) = stripe_error(update(false, "cancel-1").await);
    assert_eq!(err.type_, ApiErrorsType::IdempotencyError);
    assert!(sub.cancel_at_period_end);
    assert_eq!(sub.cancel_at, Some(period(&sub).1));
    assert_eq!(status(&sub), "active");
    let sub = update(false, "resume-1").await.unwrap();
    assert!(!sub.cancel_at_period_end && sub.cancel_at.is_none());

    // Set again, and let the period end: canceled, no renewal invoice.
    update(true, "cancel-2").await.unwrap();
    let (_, end) = period(&sub);
    let now = site.now();
    site.advance(end - now + 10);
    let ended = site.sub(&sub_id).await;
    assert_eq!(status(&ended), "canceled");
    assert_eq!(ended.ended_at, Some(end));
    assert_eq!(site.invoices_of(&sub_id).await.len(), 1);
    let evs = events(&site.sandbox, site.account.as_str());
    let updates: Vec<_> = evs
        .iter()
        .filter(|e| e.type_.as_str() == "customer.subscription.updated")
        .map(prev)
        .filter(|p| p.get("cancel_at_period_end").is_some())
        .collect();
    assert_eq!(updates.len(), 3);
    assert!(kinds(&evs).contains(&"customer.subscription.deleted".to_owned()));
    // Not listed by default; listed with status=canceled.
    let listed = ListSubscription::new()
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert!(listed.data.is_empty());
    let listed = ListSubscription::new()
        .status(ListSubscriptionStatus::Canceled)
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1);

    // Cancel now.
    let s2 = site.subscribe("4242424242424242", None).await;
    let canceled = CancelSubscription::new(id_of(&s2.subscription))
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(status(&canceled), "canceled");
    assert!(canceled.canceled_at.is_some() && canceled.ended_at.is_some());
    let (_, code) = stripe_error(
        CancelSubscription::new(id_of(&s2.subscription))
            .customize()
            .account_id(site.on())
            .send(&site.c)
            .await,
    );
    assert_eq!(code, 404);
    events(&site.sandbox, site.account.as_str());
}

#[tokio::test]
async fn test_clocks_move_their_customers_subscriptions() {
    let site = site().await;
    let start = 1_893_456_000; // 2030-01-01
    let clock = CreateTestHelpersTestClock::new(start)
        .name("renewals")
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(clock.status.as_str(), "ready");
    let customer = CreateCustomer::new()
        .email("bo@example.com")
        .payment_method("pm_card_visa")
        .test_clock(clock.id.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(id_of(&customer.test_clock), clock.id.as_str());
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(site.monthly.clone());
    let sub = CreateSubscription::new()
        .customer(customer.id.as_str())
        .items(vec![item])
        .customize()
        .account_id(site.on())
        .request_strategy(RequestStrategy::Idempotent(
            IdempotencyKey::new("sub-1").unwrap(),
        ))
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(status(&sub), "active");
    assert_eq!(sub.start_date, start);
    assert_eq!(period(&sub), (start, start + 31 * DAY));
    assert_eq!(id_of(&sub.test_clock), clock.id.as_str());

    // Two months and a bit.
    let to = start + 31 * DAY + 28 * DAY + 2 * 3600;
    let advancing = AdvanceTestHelpersTestClock::new(clock.id.as_str(), to)
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(advancing.status.as_str(), "advancing");
    let ready = RetrieveTestHelpersTestClock::new(clock.id.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!((ready.status.as_str(), ready.frozen_time), ("ready", to));
    let invoices = site.invoices_of(sub.id.as_str()).await;
    assert_eq!(invoices.len(), 3);
    assert!(invoices.iter().all(|i| inv_status(i) == "paid"));
    assert_eq!(invoices[0].created, start + 59 * DAY);
    let sub = site.sub(sub.id.as_str()).await;
    assert_eq!(period(&sub).0, start + 59 * DAY);
    // The sandbox clock did not move the clock's objects, nor the clock theirs.
    let k = kinds(&events(&site.sandbox, site.account.as_str()));
    assert!(k.contains(&"test_helpers.test_clock.ready".to_owned()));

    // The same key and parameters answer the same subscription; other parameters are refused.
    let mut item = CreateSubscriptionItems::new();
    item.price = Some(site.monthly.clone());
    let again = CreateSubscription::new()
        .customer(customer.id.as_str())
        .items(vec![item.clone()])
        .customize()
        .account_id(site.on())
        .request_strategy(RequestStrategy::Idempotent(
            IdempotencyKey::new("sub-1").unwrap(),
        ))
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(again.id, sub.id);
    item.quantity = Some(2);
    let (err, code) = stripe_error(
        CreateSubscription::new()
            .customer(customer.id.as_str())
            .items(vec![item])
            .customize()
            .account_id(site.on())
            .request_strategy(RequestStrategy::Idempotent(
                IdempotencyKey::new("sub-1").unwrap(),
            ))
            .send(&site.c)
            .await,
    );
    assert_eq!((err.type_, code), (ApiErrorsType::IdempotencyError, 400));
}

#[tokio::test]
async fn an_incomplete_subscription_expires_and_invoices_can_be_voided_or_marked_uncollectible() {
    let site = site().await;
    let customer = CreateCustomer::new()
        .payment_method("pm_card_chargeCustomerFail")
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    let new_sub = || {
        let mut item = CreateSubscriptionItems::new();
        item.price = Some(site.monthly.clone());
        CreateSubscription::new()
            .customer(customer.id.as_str())
            .items(vec![item])
            .customize()
            .account_id(site.on())
            .send(&site.c)
    };
    let sub = new_sub().await.unwrap();
    assert_eq!(status(&sub), "incomplete");
    let inv = site.invoice(&id_of(&sub.latest_invoice)).await;
    assert_eq!((inv_status(&inv), inv.attempt_count), ("open", 1));
    assert!(
        inv.next_payment_attempt.is_none(),
        "first invoices are not retried"
    );
    let failed = site.sandbox.events(Some("payment_intent.payment_failed"));
    let pi_id = failed.last().unwrap().event["data"]["object"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pi = RetrievePaymentIntent::new(pi_id.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(pi.status.as_str(), "requires_payment_method");
    let charge = RetrieveCharge::new(id_of(&pi.latest_charge))
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(charge.failure_code.as_deref(), Some("card_declined"));
    assert_eq!(id_of(&charge.customer), customer.id.as_str());

    site.advance(23 * 3600 + 1);
    let sub = site.sub(sub.id.as_str()).await;
    assert_eq!(status(&sub), "incomplete_expired");
    assert_eq!(
        inv_status(&site.invoice(inv.id.as_ref().unwrap().as_str()).await),
        "void"
    );

    // Voiding and marking uncollectible by hand.
    let s2 = new_sub().await.unwrap();
    let inv2 = id_of(&s2.latest_invoice);
    let marked = MarkUncollectibleInvoice::new(inv2.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(inv_status(&marked), "uncollectible");
    let voided = VoidInvoiceInvoice::new(inv2.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(inv_status(&voided), "void");
    assert!(voided.status_transitions.voided_at.is_some());
    let (err, _) = stripe_error(
        VoidInvoiceInvoice::new(inv2.as_str())
            .customize()
            .account_id(site.on())
            .send(&site.c)
            .await,
    );
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    let k = kinds(&events(&site.sandbox, site.account.as_str()));
    for kind in [
        "invoice.voided",
        "invoice.marked_uncollectible",
        "customer.subscription.deleted",
    ] {
        assert!(k.contains(&kind.to_owned()), "{kind}");
    }
}

// ---- balance and payouts ----

fn amount_of(list: &[stripe_core::BalanceAmount]) -> i64 {
    list.iter()
        .filter(|a| a.currency == Currency::USD)
        .map(|a| a.amount)
        .sum()
}

impl Site {
    async fn balance(&self) -> stripe_core::Balance {
        RetrieveForMyAccountBalance::new()
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap()
    }

    async fn payouts(&self) -> Vec<stripe_shared::Payout> {
        ListPayout::new()
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap()
            .data
    }

    /// Subscribes (a $10.00 charge) on a verified account; returns the charge's balance
    /// transaction.
    async fn paid_charge(&self) -> stripe_shared::BalanceTransaction {
        self.subscribe("4242424242424242", None).await;
        ListBalanceTransaction::new()
            .type_("charge")
            .customize()
            .account_id(self.on())
            .send(&self.c)
            .await
            .unwrap()
            .data
            .remove(0)
    }
}

fn midnight_after(t: i64) -> i64 {
    (t.div_euclid(DAY) + 1) * DAY
}

#[tokio::test]
async fn funds_become_available_after_7_days_and_the_first_payout_waits_3_more() {
    let site = site().await;
    site.sandbox
        .set_verification(
            site.account.as_str(),
            stripe_sandbox::VerificationOutcome::Verified,
        )
        .unwrap();
    let txn = site.paid_charge().await;
    let paid_at = txn.created;
    assert_eq!(
        txn.available_on,
        paid_at + 7 * DAY,
        "paid Nov 20, available Nov 27"
    );
    assert_eq!(txn.status, "pending");
    let b = site.balance().await;
    assert_eq!(
        (amount_of(&b.available), amount_of(&b.pending)),
        (0, txn.net)
    );

    // Available after 7 days; no payout yet (the first one waits for the security review).
    let now = site.now();
    site.advance(txn.available_on - now + 1);
    let b = site.balance().await;
    assert_eq!(
        (amount_of(&b.available), amount_of(&b.pending)),
        (txn.net, 0)
    );
    assert!(site.payouts().await.is_empty());
    let evs = events(&site.sandbox, site.account.as_str());
    let available = evs
        .iter()
        .find(|e| e.type_.as_str() == "balance.available")
        .expect("balance.available");
    let EventObject::BalanceAvailable(balance) = &available.data.object else {
        panic!("a balance");
    };
    assert_eq!(amount_of(&balance.available), txn.net);

    // The first payout: the first midnight 3 days after the funds became available.
    let run = midnight_after(txn.available_on + 3 * DAY - 1);
    let now = site.now();
    site.advance(run - now - 60);
    assert!(
        site.payouts().await.is_empty(),
        "not before the review ends"
    );
    site.advance(120);
    let payouts = site.payouts().await;
    assert_eq!(payouts.len(), 1);
    let po = &payouts[0];
    assert_eq!(
        (po.status.as_str(), po.amount, po.created),
        ("pending", txn.net, run)
    );
    assert!(po.automatic);
    assert!(po.arrival_date >= run + 2 * DAY && po.arrival_date <= run + 4 * DAY);
    let b = site.balance().await;
    assert_eq!(amount_of(&b.available), 0);
    // Which payments the payout carries.
    let carried = ListBalanceTransaction::new()
        .payout(po.id.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap()
        .data;
    let mut kinds_carried: Vec<&str> = carried.iter().map(|t| t.type_.as_str()).collect();
    kinds_carried.sort();
    assert_eq!(kinds_carried, ["charge", "payout"]);

    site.advance(3600);
    assert_eq!(site.payouts().await[0].status.as_str(), "in_transit");
    let now = site.now();
    site.advance(po.arrival_date - now + 1);
    let po = RetrievePayout::new(po.id.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(po.status.as_str(), "paid");
    let k = kinds(&events(&site.sandbox, site.account.as_str()));
    let payout_events: Vec<&String> = k.iter().filter(|x| x.starts_with("payout.")).collect();
    assert_eq!(
        payout_events,
        [
            "payout.created",
            "payout.updated",
            "payout.updated",
            "payout.paid"
        ]
    );

    // Later payments are paid out at the first midnight after they are available.
    let second = site.paid_charge().await;
    let now = site.now();
    site.advance(midnight_after(second.available_on - 1) - now + 1);
    let payouts = site.payouts().await;
    assert_eq!(payouts.len(), 2);
    assert_eq!(payouts[0].created, midnight_after(second.available_on - 1));
}

#[tokio::test]
async fn a_failed_payout_returns_the_money_and_says_why() {
    let site = site().await;
    site.sandbox
        .set_verification(
            site.account.as_str(),
            stripe_sandbox::VerificationOutcome::Verified,
        )
        .unwrap();
    site.sandbox
        .fail_next_payout(site.account.as_str(), "account_closed")
        .unwrap();
    assert!(
        site.sandbox
            .fail_next_payout(site.account.as_str(), "nope")
            .is_err()
    );
    let txn = site.paid_charge().await;
    let now = site.now();
    site.advance(txn.available_on + 3 * DAY - now + 6 * DAY);
    let po = site.payouts().await.remove(0);
    assert_eq!(po.status.as_str(), "failed");
    assert_eq!(po.failure_code.as_deref(), Some("account_closed"));
    assert_eq!(
        po.failure_message.as_deref(),
        Some("The bank account has been closed.")
    );
    assert!(po.failure_balance_transaction.is_some());
    let b = site.balance().await;
    assert_eq!(amount_of(&b.available), txn.net, "the money is back");
    let k = kinds(&events(&site.sandbox, site.account.as_str()));
    assert!(k.contains(&"payout.failed".to_owned()));

    // A manual payout of the available balance, canceled while pending.
    let manual = CreatePayout::new(txn.net, Currency::USD)
        .customize()
        .account_id(site.on())
        .request_strategy(RequestStrategy::Idempotent(
            IdempotencyKey::new("po-1").unwrap(),
        ))
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(
        (manual.status.as_str(), manual.automatic),
        ("pending", false)
    );
    let (err, _) = stripe_error(
        CreatePayout::new(1, Currency::USD)
            .customize()
            .account_id(site.on())
            .send(&site.c)
            .await,
    );
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    let canceled = CancelPayout::new(manual.id.as_str())
        .customize()
        .account_id(site.on())
        .send(&site.c)
        .await
        .unwrap();
    assert_eq!(canceled.status.as_str(), "canceled");
    assert_eq!(amount_of(&site.balance().await.available), txn.net);
    events(&site.sandbox, site.account.as_str());
}

#[tokio::test]
async fn the_hosted_invoice_page_pays_an_open_invoice_without_javascript() {
    let site = site().await;
    let s = site.subscribe("4242424242424242", None).await;
    let sub_id = id_of(&s.subscription);
    site.sandbox
        .set_customer_card(&id_of(&s.customer), "4000000000000341")
        .unwrap();
    let (_, end) = period(&site.sub(&sub_id).await);
    let now = site.now();
    site.advance(end - now + 3600 + 60);
    let sub = site.sub(&sub_id).await;
    assert_eq!(status(&sub), "past_due");
    let open = site.invoice(&id_of(&sub.latest_invoice)).await;
    let url = open.hosted_invoice_url.clone().unwrap();
    let http = chatpay_http_client::HttpClient::default();
    let page = http.get(&url, &[]).await.unwrap();
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("Amount due") && html.contains("id=\"cardNumber\""));
    assert!(!html.contains("<script"));
    let form = |card: &'static str| {
        vec![
            ("cardNumber", card),
            ("cardExpiry", "12 / 34"),
            ("cardCvc", "123"),
            ("billingName", "Ana Silva"),
        ]
    };
    let declined = http
        .post_form(&url, &[], &form("4000 0000 0000 0002"))
        .await
        .unwrap();
    assert_eq!(declined.status, 402);
    assert!(declined.text().contains("Your card was declined."));
    let paid = http
        .post_form(&url, &[], &form("4242 4242 4242 4242"))
        .await
        .unwrap();
    assert_eq!(paid.status, 303);
    let inv = site.invoice(open.id.as_ref().unwrap().as_str()).await;
    assert_eq!(inv_status(&inv), "paid");
    let sub = site.sub(&sub_id).await;
    assert_eq!(status(&sub), "active");
    assert!(http.get(&url, &[]).await.unwrap().text().contains("Paid"));
    // The new card pays the next renewal.
    let (_, end) = period(&sub);
    let now = site.now();
    site.advance(end - now + 3600 + 60);
    let sub = site.sub(&sub_id).await;
    assert_eq!(status(&sub), "active");
    assert_eq!(
        inv_status(&site.invoice(&id_of(&sub.latest_invoice)).await),
        "paid"
    );
    events(&site.sandbox, site.account.as_str());
}
