//! The journeys, as a person takes them: every step is a click or keys in the page (or on the
//! sandbox's Stripe pages); the HTTP calls made besides are what the app builder's own app or
//! Stripe would do (creating a checkout, products made in Stripe).

use anyhow::{Context, bail, ensure};
use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::driver::Page;
use crate::{Journey, JourneyFn, PHONE, Run};

/// (name, whether the database starts with an API token, the journey)
pub const ALL: &[(&str, bool, JourneyFn)] = &[
    ("sign_in/owner_tabs_sign_out_tokens", false, sign_in),
    (
        "connect/create_account_onboarding_catalog",
        true,
        connect_and_catalog,
    ),
    (
        "connect/restricted_fix_now_then_rejected",
        true,
        restricted_then_rejected,
    ),
    ("sell/pay_decline_refund", true, sell),
    ("chat/reconnect_and_two_tabs", true, reconnect_and_two_tabs),
    ("access/keyboard_phone_axe", true, keyboard_phone_axe),
    ("projects/without_backend", true, without_backend),
    ("page/rough_edges", true, rough_edges),
    (
        "billing/subscription_renewal_cancel_payout",
        true,
        subscription_renewal_cancel_payout,
    ),
    (
        "customers/search_detail_export",
        true,
        customers_search_detail_export,
    ),
];

// ---------- steps ----------

async fn sign_in_with_token(page: &Page, url: &str, token: &str) -> anyhow::Result<()> {
    page.goto(&format!("{url}/")).await?;
    page.fill("#token", token).await?;
    page.click("form.signin-form button[type=submit]").await?;
    page.find("aside.sidebar")
        .await
        .context("signed in: the sidebar shows")?;
    Ok(())
}

/// Creates a project from the New project form; returns its id (from the address).
async fn create_project(page: &Page, name: &str, backend: bool) -> anyhow::Result<String> {
    page.click(".side-head a.small-link").await?;
    page.fill("form.form input[name=name]", name).await?;
    let checked = page
        .js("return document.getElementById('backend').checked", vec![])
        .await?;
    if checked != json!(backend) {
        page.click("label.toggle").await?;
    }
    page.find_text(".toggle-row", "can't be turned on later")
        .await?;
    page.click("form.form button[type=submit]").await?;
    let hash = page
        .until(
            "the new project opens",
            "return location.hash.startsWith('#/p/') && location.hash",
        )
        .await?;
    Ok(hash
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("#/p/")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned())
}

async fn say(page: &Page, text: &str) -> anyhow::Result<()> {
    page.fill("#composer-input", text).await?;
    page.keys(&Key::Enter).await
}

/// The current (not done) card of `kind`, the latest one.
fn current(kind: &str) -> String {
    format!("article.card[data-kind={kind}]:not(.done)")
}

/// Clicks `action` on the latest current card of `kind`.
async fn act(page: &Page, kind: &str, action: &str) -> anyhow::Result<()> {
    let css = format!("{} [data-action={action}]", current(kind));
    page.find(&css).await?;
    let all = page.client.find_all(Locator::Css(&css)).await?;
    let last = all.last().context("the action")?;
    last.click()
        .await
        .with_context(|| format!("clicking {action} on {kind}"))?;
    Ok(())
}

/// Fills a field of the latest current card of `kind`.
async fn field(page: &Page, kind: &str, name: &str, value: &str) -> anyhow::Result<()> {
    let css = format!("{} [name={name}]", current(kind));
    let el = page.find(&css).await?;
    if el.tag_name().await? == "select" {
        el.select_by_value(value).await?;
    } else {
        el.clear().await?;
        el.send_keys(value).await?;
    }
    Ok(())
}

/// The `seq` of every message the page shows, in order.
async fn seqs(page: &Page) -> anyhow::Result<Vec<i64>> {
    let v = page
        .js("return [...document.querySelectorAll('.log > .msg[data-seq]')].map(e => Number(e.dataset.seq))", vec![])
        .await?;
    Ok(serde_json::from_value(v)?)
}

/// Frames that became messages: `reply` and `card` (flow frames update state, not the list).
async fn server_messages(j: &Journey, project: &str) -> anyhow::Result<Vec<i64>> {
    let mut c = chatpay_testkit::Client::new();
    let welcome = c
        .connect(&j.world.server().ws_url(), j.world.token(), project, 0)
        .await?;
    let last = welcome["last_seq"].as_i64().unwrap_or(0);
    let mut out = Vec::new();
    let mut seen = 0;
    while seen < last {
        let f = c.next(crate::driver::PATIENCE).await?;
        if let Some(seq) = f["seq"].as_i64() {
            seen = seq;
            if f["type"] == "reply" || f["type"] == "card" {
                out.push(seq);
            }
        }
    }
    Ok(out)
}

/// Nothing lost, nothing twice: the page shows exactly the server's messages, in order.
async fn same_as_server(j: &Journey, page: &Page, project: &str) -> anyhow::Result<()> {
    let want = server_messages(j, project).await?;
    let deadline = std::time::Instant::now() + crate::driver::PATIENCE;
    loop {
        let got = seqs(page).await?;
        if got == want {
            return Ok(());
        }
        let mut sorted = got.clone();
        sorted.dedup();
        ensure!(
            sorted.len() == got.len(),
            "a message is shown twice: {got:?}"
        );
        if std::time::Instant::now() > deadline {
            bail!("the page shows messages {got:?}, the server stored {want:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Opens the link action of the latest current card in the new tab it opens; returns to the
/// app's window afterwards with `back`.
async fn open_link(
    page: &Page,
    kind: &str,
    action: &str,
) -> anyhow::Result<fantoccini::wd::WindowHandle> {
    let app = page.client.window().await?;
    let before = page.client.windows().await?;
    act(page, kind, action).await?;
    let tab = page
        .until_window(&before)
        .await
        .context("the link opens a tab")?;
    page.client.switch_to_window(tab).await?;
    Ok(app)
}

async fn back_to(page: &Page, app: fantoccini::wd::WindowHandle) -> anyhow::Result<()> {
    page.client.close_window().await?;
    page.client.switch_to_window(app).await?;
    Ok(())
}

/// The register and business-profile forms, with an invalid email first; leaves the
/// onboarding card showing.
async fn create_account_forms(j: &Journey, shots: bool) -> anyhow::Result<()> {
    let page = j.page();
    act(page, "choose_account", "create").await?;
    field(page, "register", "legal_name", "Ada Lovelace").await?;
    field(page, "register", "country", "GB").await?;
    field(page, "register", "email", "ada@invalid").await?;
    act(page, "register", "continue").await?;
    // The server's per-field message, inline, tied to the field.
    let err = page
        .find(&format!(
            "{} .field-error:not([hidden])",
            current("register")
        ))
        .await?;
    let text = err.text().await?;
    ensure!(
        text.to_lowercase().contains("email"),
        "the email's message: {text:?}"
    );
    let tied = page
        .js(
            "const i = document.querySelector('article.card[data-kind=register]:not(.done) [name=email]');
             const e = document.getElementById(i.getAttribute('aria-describedby').split(' ').pop());
             return i.getAttribute('aria-invalid') === 'true' && !e.hidden && e.textContent",
            vec![],
        )
        .await?;
    ensure!(
        tied.is_string(),
        "the error is not tied to the email field: {tied}"
    );
    if shots {
        j.shot(0, "chat-form-error").await?;
    }
    field(page, "register", "email", "ada@example.com").await?;
    act(page, "register", "continue").await?;
    page.find(&current("business_profile")).await?;
    // The register card's step is over: shown done, its buttons disabled.
    let disabled = page
        .until("the register card is done", "const c = [...document.querySelectorAll('article.card[data-kind=register]')].pop(); return c.classList.contains('done') && [...c.querySelectorAll('button')].every(b => b.disabled)")
        .await?;
    ensure!(disabled == json!(true));
    field(
        page,
        "business_profile",
        "statement_descriptor",
        "ADA LOVELACE LTD",
    )
    .await?;
    field(page, "business_profile", "business_name", "Ada's Courses").await?;
    field(page, "business_profile", "business_type", "individual").await?;
    act(page, "business_profile", "create_account").await?;
    page.find(&format!("{} [data-action=open]", current("onboarding")))
        .await?;
    Ok(())
}

/// On the sandbox's onboarding page: fills and submits with `outcome`.
async fn onboard(page: &Page, outcome: &str) -> anyhow::Result<()> {
    page.find("input[name=first_name]").await?;
    page.fill("input[name=first_name]", "Ada").await?;
    page.fill("input[name=last_name]", "Lovelace").await?;
    page.js(
        "document.getElementById('dob').value = '1990-12-10'",
        vec![],
    )
    .await?;
    page.fill("input[name=url]", "https://ada.example").await?;
    page.click(&format!("input[name=outcome][value={outcome}]"))
        .await?;
    page.click("form button[type=submit].primary").await?;
    Ok(())
}

/// The connect journey, from the chat (when taking screenshots) or the sidebar's +, to
/// Stripe's onboarding page, submitted with `outcome`; back in the app's tab.
async fn connect_with(j: &Journey, outcome: &str, shots: bool) -> anyhow::Result<()> {
    let page = j.page();
    if shots {
        // From the chat (the other journeys start from the sidebar's +).
        say(page, "I want to add payments").await?;
        act(page, "connect_stripe", "connect").await?;
    } else {
        page.click("#plus").await?;
        page.click("[data-item=connect_stripe]").await?;
    }
    page.find(&current("choose_account")).await?;
    create_account_forms(j, shots).await?;
    if shots {
        j.shot(0, "chat-cards").await?;
    }
    let app = open_link(page, "onboarding", "open").await?;
    page.find("input[name=first_name]").await?;
    if shots {
        j.shot(0, "sandbox-onboarding").await?;
    }
    onboard(page, outcome).await?;
    // Back on chatpay's return page, then in the app's tab.
    page.find_text("body", "Stripe").await?;
    back_to(page, app).await
}

/// The whole connect journey up to an active account.
async fn connect_to_active(j: &Journey, shots: bool) -> anyhow::Result<()> {
    connect_with(j, "verified", shots).await?;
    j.page()
        .find_text(&current("account_status"), "active")
        .await?;
    if shots {
        j.shot(0, "chat-active").await?;
    }
    Ok(())
}

// ---------- journeys ----------

const OWNER_EMAIL: &str = "maya@example.com";
const OWNER_PASSWORD: &str = "a long enough password";

/// Signs in on the sign-in page with email and password.
async fn sign_in_with_password(page: &Page, password: &str) -> anyhow::Result<()> {
    page.fill("#email", OWNER_EMAIL).await?;
    page.fill("#password", password).await?;
    page.click("form.password-form button[type=submit]").await?;
    Ok(())
}

fn sign_in(j: &mut Journey) -> Run<'_> {
    Box::pin(async move {
        let link = j
            .world
            .server()
            .signin_url
            .clone()
            .context("a fresh database prints a sign-in link")?;
        let url = j.world.url();
        let page = j.page();
        // The first-run link: the owner's sign-in is made, and the person is signed in.
        page.goto(&link).await?;
        page.fill("#email", OWNER_EMAIL).await?;
        page.fill("#password", OWNER_PASSWORD).await?;
        page.click("form.owner-form button[type=submit]").await?;
        page.find_text(".empty-state", "Create your first project")
            .await?;
        ensure!(
            page.hash().await?.is_empty(),
            "the sign-in code stays in the address"
        );
        // The session is an HttpOnly cookie: no script sees it, nothing in this tab's storage.
        ensure!(
            page.js("return document.cookie", vec![]).await? == json!(""),
            "the session cookie is readable by scripts"
        );
        ensure!(
            page.js("return sessionStorage.getItem('chatpay.token')", vec![])
                .await?
                .is_null(),
            "a token in the tab's storage"
        );
        // A reload keeps the session; so does a new tab.
        page.client.refresh().await?;
        page.find_text(".empty-state", "Create your first project")
            .await?;
        page.find_text(".side-foot .who", OWNER_EMAIL).await?;
        let first = page.client.window().await?;
        let tab = page.client.new_window(true).await?;
        page.client.switch_to_window(tab.handle.clone()).await?;
        page.goto(&format!("{url}/")).await?;
        page.find_text(".empty-state", "Create your first project")
            .await
            .context("a new tab is signed in too")?;
        // Sign out in the first tab: the second is signed out on its next request.
        page.client.switch_to_window(first.clone()).await?;
        page.click(".side-foot button").await?;
        page.find("form.password-form").await?;
        page.client.switch_to_window(tab.handle.clone()).await?;
        page.client.refresh().await?;
        page.find("form.password-form")
            .await
            .context("the other tab is signed out")?;
        page.client.close_window().await?;
        page.client.switch_to_window(first).await?;
        // The link works once.
        page.goto(&link).await?;
        page.fill("#email", "eve@example.com").await?;
        page.fill("#password", OWNER_PASSWORD).await?;
        page.click("form.owner-form button[type=submit]").await?;
        page.find_text("#owner-error", "exists already").await?;
        // A wrong token: a clear message, tied to the field.
        page.goto(&format!("{url}/")).await?;
        page.fill("#token", "cpk_0000000000000000000000000000000000000000")
            .await?;
        page.click("form.signin-form button[type=submit]").await?;
        page.find_text("#token-error", "not accepted").await?;
        ensure!(
            page.js(
                "return document.getElementById('token').getAttribute('aria-invalid')",
                vec![]
            )
            .await?
                == json!("true")
        );
        // A wrong password: the same answer as a wrong email.
        sign_in_with_password(page, "not the password").await?;
        page.find_text("#signin-error", "do not match").await?;
        j.page().assert_accessible("the sign-in page").await?;
        j.shot(0, "sign-in").await?;
        // A token made with `chatpay token create` signs in (this tab only).
        let store = chatpay_store::connect(&format!(
            "sqlite://{}",
            j.world.dir.path().join("chatpay.db").display()
        ))
        .await?;
        let token = chatpay_server::auth::create_token(&*store, "cli").await?;
        drop(store);
        sign_in_with_token(j.page(), &url, &token).await?;
        j.page().click(".side-foot button").await?;
        // Email and password again; Settings → API tokens: made, shown once, revoked.
        let page = j.page();
        sign_in_with_password(page, OWNER_PASSWORD).await?;
        page.find("aside.sidebar").await?;
        page.click("#tokens-link").await?;
        page.find_text("table.tokens", "cli").await?;
        page.fill("#token-name", "ci").await?;
        page.click("form.token-form button[type=submit]").await?;
        let shown = page.find("#new-token").await?.text().await?;
        ensure!(
            shown.starts_with("cpk_"),
            "the new token is shown: {shown:?}"
        );
        let auth = format!("Bearer {shown}");
        let projects = format!("{url}/v1/projects");
        let ok = j
            .world
            .http
            .get(&projects, &[("authorization", &auth)])
            .await?;
        ensure!(ok.status == 200, "the new token works: {}", ok.status);
        j.page().assert_accessible("the API tokens screen").await?;
        j.shot(0, "api-tokens").await?;
        j.page().click("tr:last-child button.revoke").await?;
        j.page()
            .find_text("table.tokens tr:last-child", "Revoked")
            .await?;
        let refused = j
            .world
            .http
            .get(&projects, &[("authorization", &auth)])
            .await?;
        ensure!(
            refused.status == 401,
            "a revoked token is refused: {}",
            refused.status
        );
        // Invite a teammate: a one-time link, opened in another browser, makes their sign-in
        // in this workspace.
        j.page().click("#make-invite").await?;
        let invite = j.page().find("#invite-link").await?.text().await?;
        ensure!(
            invite.contains("#invite=cpi_"),
            "the invite link: {invite:?}"
        );
        let other = j.open_browser(crate::LAPTOP).await?;
        let mate = &j.pages[other];
        mate.goto(&invite).await?;
        mate.find_text("h1", "Join the workspace").await?;
        mate.fill("#email", "ana@example.com").await?;
        mate.fill("#password", "another long password").await?;
        mate.click("form.owner-form button[type=submit]").await?;
        mate.find_text(".side-foot .who", "ana@example.com").await?;
        // The refused sign-ins answered 401 (the browser logs those); nothing else went wrong.
        let errors: Vec<String> = j
            .page()
            .console_errors(&url)
            .await
            .into_iter()
            .filter(|e| !e.contains("status of 401") && !e.contains("status of 409"))
            .collect();
        ensure!(errors.is_empty(), "console errors: {errors:?}");
        Ok(())
    })
}

fn connect_and_catalog(j: &mut Journey) -> Run<'_> {
    Box::pin(async move {
        let url = j.world.url();
        sign_in_with_token(j.page(), &url, j.world.token()).await?;
        // The New project form, with its note about the backend.
        j.page().click(".side-head a.small-link").await?;
        j.page()
            .fill("form.form input[name=name]", "Ada's courses")
            .await?;
        j.page().assert_accessible("the New project form").await?;
        j.shot(0, "new-project").await?;
        create_project(j.page(), "Ada's courses", true).await?;
        connect_to_active(j, true).await?;
        let page = j.page();
        // The onboarding card is over once the account is active.
        page.until("the onboarding card is done", "return [...document.querySelectorAll('article.card[data-kind=onboarding]')].every(c => c.classList.contains('done'))").await?;
        // Integrations, top right: the account's state in plain words.
        page.click("#integrations-link").await?;
        page.find_text(".integration [data-state]", "Active")
            .await?;
        page.find_text(".integration", "can take payments").await?;
        j.shot(0, "integrations").await?;
        // Stripe details -> Manage products: the sandbox's Dashboard page, in a new tab. One
        // product sells; one has no price.
        let page = j.page();
        page.click_text(".integration", "Stripe details").await?;
        let app = page.client.window().await?;
        let before = page.client.windows().await?;
        page.click("a[data-dashboard]").await?;
        let tab = page.until_window(&before).await?;
        page.client.switch_to_window(tab).await?;
        page.fill("#name", "Course").await?;
        page.fill("#amount", "49.00").await?;
        page.click("#add-product button[type=submit]").await?;
        page.find_text(".ok", "Added Course").await?;
        page.fill("#name", "Masterclass").await?;
        page.click("#add-product button[type=submit]").await?;
        page.find_text(".ok", "Added Masterclass").await?;
        page.find_text("table.list", "USD 49.00").await?;
        j.shot(0, "sandbox-products").await?;
        back_to(page, app).await?;
        // Settings -> Integrations -> Stripe details -> Product catalog -> Sync.
        page.find_text(".crumbs", "Product catalog").await?;
        page.click("#sync").await?;
        page.find_text("tr[data-sellable=false]", "Needs attention")
            .await?;
        page.find_text("tr[data-sellable=false]", "no active price")
            .await?;
        page.find_text("tr[data-sellable=true]", "Sellable").await?;
        page.find_text(".sync-report", "1 of 2 products ready to sell")
            .await?;
        page.find_text(".sync-report", "Masterclass").await?;
        page.assert_accessible("the product catalog").await?;
        // Tall enough for the report and the table together.
        page.client.set_window_size(1280, 1160).await?;
        j.shot(0, "catalog").await?;
        page.client
            .set_window_size(crate::LAPTOP.0, crate::LAPTOP.1)
            .await?;
        // The chat told the same.
        page.click("[data-nav=chat]").await?;
        page.find_text(
            &format!("{} ", "article.card[data-kind=catalog_sync]"),
            "Masterclass",
        )
        .await?;
        page.assert_accessible("the chat with cards").await?;
        let errors = page.console_errors(&url).await;
        ensure!(errors.is_empty(), "console errors: {errors:?}");
        Ok(())
    })
}

async fn pay_on_checkout_page(page: &Page, url: &str, card: &str) -> anyhow::Result<()> {
    pay_as(page, url, card, "ana@example.com").await
}

/// `email` pays the checkout at `url` with `card` on Stripe's page.
async fn pay_as(page: &Page, url: &str, card: &str, email: &str) -> anyhow::Result<()> {
    page.goto(url).await?;
    page.fill("#email", email).await?;
    page.fill("#cardNumber", card).await?;
    page.fill("#cardExpiry", "12 / 34").await?;
    page.fill("#cardCvc", "123").await?;
    page.fill("#billingName", "Ana Lima").await?;
    page.click("#submitButton").await?;
    Ok(())
}

fn sell(j: &mut Journey) -> Run<'_> {
    Box::pin(async move {
        let url = j.world.url();
        sign_in_with_token(j.page(), &url, j.world.token()).await?;
        let project = create_project(j.page(), "Ana's shop", true).await?;
        connect_to_active(j, false).await?;
        let account = j.world.account(&project).await?;
        let price = j.world.product(&account, "Course", Some(4900)).await?;
        let page = j.page();
        say(page, "sync my products").await?;
        page.find_text("article.card[data-kind=catalog_sync]", "ready to sell")
            .await?;
        // The catalog's buy link opens a checkout in a new tab; the customer pays there.
        page.click("[data-nav=catalog]").await?;
        page.find(&format!("a[data-buy='{price}']")).await?;
        let app = page.client.window().await?;
        let before = page.client.windows().await?;
        page.click(&format!("a[data-buy='{price}']")).await?;
        let tab = page
            .until_window(&before)
            .await
            .context("the buy link opens a tab")?;
        page.client.switch_to_window(tab).await?;
        page.find("#cardNumber").await?;
        let checkout = page.client.current_url().await?.to_string();
        ensure!(
            checkout.contains("/checkout/cs_"),
            "the buy link led to {checkout}"
        );
        j.shot(0, "sandbox-checkout").await?;
        // Declined first, then paid.
        pay_on_checkout_page(page, &checkout, "4000 0000 0000 0002").await?;
        page.find_text("body", "declined").await?;
        pay_on_checkout_page(page, &checkout, "4242 4242 4242 4242").await?;
        page.find_text("body", "Thank").await?;
        let number = 1001;
        back_to(page, app).await?;
        page.click("[data-nav=chat]").await?;
        // The chat's news: the failed attempt, then the paid order, linking to its page.
        page.find_text("article.card[data-kind=order]", "declined")
            .await?;
        let paid = format!("New order #{number}");
        page.find_text("article.card[data-kind=order]", &paid)
            .await?;
        let cards = page
            .client
            .find_all(Locator::Css(
                "article.card[data-kind=order] [data-action=view_order]",
            ))
            .await?;
        cards.last().context("a link to the order")?.click().await?;
        page.find_text(".panel-head", &format!("Order #{number}"))
            .await?;
        page.find_text(".panel-head .pill", "Paid").await?;
        page.find_text(".facts", "ana@example.com").await?;
        // When the payment's money becomes available, as a date.
        let funds = page.find("[data-funds]").await?.text().await?;
        ensure!(
            funds.chars().any(|c| c.is_ascii_digit()) && funds.contains("20"),
            "the funds date: {funds:?}"
        );
        // The receipt, e-mailed again.
        let sent = j.world.sandbox.outbox().len();
        page.click("[data-action=resend_receipt]").await?;
        page.find_text(
            ".inline-status",
            "Sent the receipt to ana@example.com again",
        )
        .await?;
        ensure!(
            j.world.sandbox.outbox().len() == sent + 1,
            "no receipt e-mail was sent"
        );
        j.shot(0, "order").await?;
        // Refund $5, through a confirmation: what, to whom, what remains.
        page.fill("form.refund input[name=amount]", "5").await?;
        page.click("form.refund button[type=submit]").await?;
        page.find_text(".confirm", "to ana@example.com").await?;
        page.find_text(".confirm", "$44.00 will remain").await?;
        page.click_text(".confirm", "Refund $5.00").await?;
        page.find_text(".success-box", "Refunded $5.00").await?;
        page.find_text(".panel-head .pill", "Partially refunded")
            .await?;
        page.assert_accessible("the order page").await?;
        // Over what remains: refused before anything is sent, next to the field.
        page.fill("form.refund input[name=amount]", "500").await?;
        page.click("form.refund button[type=submit]").await?;
        page.find_text("form.refund .field-error", "At most $44.00")
            .await?;
        // The orders list: status, amount, date.
        page.click("[data-nav=orders]").await?;
        let row = page
            .find_text(&format!("tr[data-order='{number}']"), "Partially refunded")
            .await?;
        let text = row.text().await?;
        ensure!(
            text.contains("$49.00") && text.contains("UTC"),
            "the order's row: {text:?}"
        );
        page.assert_accessible("the orders list").await?;
        j.shot(0, "orders").await?;
        // The refund is in the chat too.
        page.click("[data-nav=chat]").await?;
        page.find_text("article.card[data-kind=order]", "$5.00 refunded")
            .await?;
        let errors = page.console_errors(&url).await;
        ensure!(errors.is_empty(), "console errors: {errors:?}");
        Ok(())
    })
}

fn reconnect_and_two_tabs(j: &mut Journey) -> Run<'_> {
    Box::pin(async move {
        let url = j.world.url();
        let token = j.world.token().to_owned();
        sign_in_with_token(j.page(), &url, &token).await?;
        let project = create_project(j.page(), "Two tabs", true).await?;
        let page = j.page();
        say(page, "what is test mode?").await?;
        page.find_text(".log .msg.bot", "Test mode").await?;
        // A second tab on the same project.
        let second = j.open_browser(crate::LAPTOP).await?;
        sign_in_with_token(&j.pages[second], &url, &token).await?;
        j.pages[second]
            .goto(&format!("{url}/#/p/{project}"))
            .await?;
        j.pages[second]
            .find_text(".log .msg.bot", "Test mode")
            .await?;
        say(&j.pages[second], "I want to add payments").await?;
        j.page().find(&current("connect_stripe")).await?;
        // A click in one tab is seen in the other: the card is over in both.
        act(j.page(), "connect_stripe", "connect").await?;
        for p in &j.pages {
            p.find(&current("choose_account")).await?;
            p.until("the connect card is done", "return document.querySelector('article.card[data-kind=connect_stripe]').classList.contains('done')").await?;
        }
        same_as_server(j, &j.pages[0], &project).await?;
        same_as_server(j, &j.pages[second], &project).await?;

        // The network goes away: "Reconnecting…" shows; meanwhile the other tab talks, and
        // this tab sends a message of its own.
        let page = j.page();
        page.js("window.dispatchEvent(new Event('offline'))", vec![])
            .await?;
        page.find_text("#conn", "Reconnecting").await?;
        say(&j.pages[second], "what are the payout times?").await?;
        j.pages[second].find_text(".log .msg.bot", "payout").await?;
        say(page, "how do refunds work?").await?;
        page.find_text(".msg.me .status", "Sending").await?;
        // A click while offline: the button is busy and the card takes no second click.
        act(page, "choose_account", "existing").await?;
        let busy = page
            .js(
                "const c = [...document.querySelectorAll('article.card[data-kind=choose_account]')].pop();
                 return c.querySelector('[data-action=existing]').getAttribute('aria-busy') === 'true'
                   && [...c.querySelectorAll('button')].every(b => b.disabled)",
                vec![],
            )
            .await?;
        ensure!(busy == json!(true), "the clicked card is not busy");
        let _ = act(page, "choose_account", "create").await;
        page.js("window.dispatchEvent(new Event('online'))", vec![])
            .await?;
        page.until(
            "connected again",
            "return document.getElementById('conn').hidden",
        )
        .await?;
        page.find_text(".log .msg.bot", "payout").await?;
        page.find_text(".log .msg.bot", "efund").await?;
        // The click was sent once, after the reconnection, and answered once in both tabs.
        for p in &j.pages {
            p.find(&current("connect_existing")).await?;
            let n = p
                .js("return document.querySelectorAll('article.card[data-kind=connect_existing], article.card[data-kind=register]').length", vec![])
                .await?;
            ensure!(n == json!(1), "the click was answered {n} times");
        }
        same_as_server(j, j.page(), &project).await?;

        // The server restarts: every socket drops for real and comes back.
        j.world.stop_server().await;
        j.page().find_text("#conn", "Reconnecting").await?;
        j.world.restart_server().await?;
        j.page()
            .until(
                "connected again",
                "return document.getElementById('conn').hidden",
            )
            .await?;
        j.pages[second]
            .until(
                "connected again",
                "return document.getElementById('conn').hidden",
            )
            .await?;
        say(j.page(), "is my account verified?").await?;
        j.pages[second]
            .find_text(".log .msg.bot, .log .card", "No Stripe account")
            .await?;
        same_as_server(j, &j.pages[0], &project).await?;
        same_as_server(j, &j.pages[second], &project).await?;
        Ok(())
    })
}

fn keyboard_phone_axe(j: &mut Journey) -> Run<'_> {
    Box::pin(async move {
        let url = j.world.url();
        let token = j.world.token().to_owned();
        let page = j.page();
        // Sign in with the keyboard alone: the email field has focus; Tab reaches the token.
        page.goto(&format!("{url}/")).await?;
        page.find("#token").await?;
        page.until(
            "the email field has focus",
            "return document.activeElement.id === 'email'",
        )
        .await?;
        page.tab_to("#token", 6).await?;
        page.keys(&token).await?;
        page.keys(&Key::Enter).await?;
        page.find("aside.sidebar").await?;
        // New project, by keyboard.
        page.tab_to(".side-head a.small-link", 20).await?;
        page.keys(&Key::Enter).await?;
        page.until(
            "the name field has focus",
            "return document.activeElement.name === 'name'",
        )
        .await?;
        page.keys("Keyboard shop").await?;
        page.tab_to("#backend", 5).await?;
        let on = page
            .js("return document.getElementById('backend').checked", vec![])
            .await?;
        ensure!(on == json!(true), "Backend is on by default");
        page.tab_to("form.form button[type=submit]", 5).await?;
        page.keys(&Key::Enter).await?;
        page.until("the chat opens", "return location.hash.startsWith('#/p/') && document.activeElement.id === 'composer-input'").await?;
        // Chat by keyboard: type, Enter, then reach the card's button with Tab.
        page.keys("I want to add payments").await?;
        page.keys(&Key::Enter).await?;
        page.find(&current("connect_stripe")).await?;
        page.js("document.getElementById('composer-input').blur(); document.querySelector('.log').focus()", vec![]).await?;
        page.tab_to(
            &format!("{} [data-action=connect]", current("connect_stripe")),
            10,
        )
        .await?;
        page.keys(&Key::Enter).await?;
        page.find(&current("choose_account")).await?;
        page.tab_to(
            &format!("{} [data-action=create]", current("choose_account")),
            10,
        )
        .await?;
        page.keys(&Key::Enter).await?;
        page.find(&current("register")).await?;
        // A form by keyboard: the required fields missing are named at each field.
        page.tab_to(&format!("{} [name=legal_name]", current("register")), 10)
            .await?;
        page.keys(&Key::Enter).await?;
        page.find(&format!(
            "{} .field-error:not([hidden])",
            current("register")
        ))
        .await?;
        page.assert_accessible("the chat with a form and errors")
            .await?;
        // The message list is a log, made live only once the stored transcript is in, so a
        // screen reader announces new messages, not the history again.
        page.client.refresh().await?;
        page.find(&current("register")).await?;
        let log = page
            .until(
                "the log is live",
                "const l = document.querySelector('.log'); return l.getAttribute('role') === 'log' && l.getAttribute('aria-live') === 'polite' && l.getAttribute('aria-relevant')",
            )
            .await?;
        ensure!(log == json!("additions"), "aria-relevant: {log}");
        // The sidebar's + menu by keyboard: Enter opens it on its item, Escape closes it.
        page.js("document.querySelector('.brand').focus()", vec![])
            .await?;
        page.tab_to("#plus", 10).await?;
        page.keys(&Key::Enter).await?;
        page.until(
            "the menu's item has focus",
            "return document.activeElement.dataset.item === 'connect_stripe'",
        )
        .await?;
        page.keys(&Key::Escape).await?;
        page.until(
            "the menu is closed",
            "return document.getElementById('plus-menu').hidden && document.activeElement.id === 'plus'",
        )
        .await?;
        // The Integrations panel by keyboard (top right).
        page.js(
            "document.getElementById('integrations-link').focus()",
            vec![],
        )
        .await?;
        page.keys(&Key::Enter).await?;
        page.find_text(".integration", "Stripe").await?;
        page.assert_accessible("the Integrations panel").await?;

        // Phone width: the same screens, no sideways scrolling, the menu opens the sidebar.
        let phone = j.open_browser(PHONE).await?;
        let p = &j.pages[phone];
        sign_in_with_token_phone(p, &url, &token).await?;
        p.click(".tiles a").await?;
        p.find("#composer-input").await?;
        // The conversation so far (the form the laptop left open), then a question.
        p.find(&current("register")).await?;
        say(p, "what is test mode?").await?;
        p.find_text(".log .msg.bot", "Test mode").await?;
        let wide = p
            .js(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await?;
        ensure!(
            wide == json!(true),
            "the chat scrolls sideways at phone width"
        );
        p.find_text("#mode-badge", "TEST").await?;
        p.assert_accessible("the chat at phone width").await?;
        j.shot(phone, "phone-chat").await?;
        p.click(".menu-btn").await?;
        p.find("aside.sidebar [data-nav=orders]").await?;
        p.until(
            "the sidebar has slid in",
            "return document.getElementById('sidebar').getBoundingClientRect().left === 0",
        )
        .await?;
        j.shot(phone, "phone-menu").await?;
        p.click("aside.sidebar [data-nav=orders]").await?;
        p.find_text(".empty-state", "No orders yet").await?;
        let wide = p
            .js(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await?;
        ensure!(
            wide == json!(true),
            "the orders page scrolls sideways at phone width"
        );
        Ok(())
    })
}

async fn sign_in_with_token_phone(p: &Page, url: &str, token: &str) -> anyhow::Result<()> {
    p.goto(&format!("{url}/")).await?;
    p.fill("#token", token).await?;
    p.click("form.signin-form button[type=submit]").await?;
    p.find(".tiles a").await?;
    Ok(())
}

fn without_backend(j: &mut Journey) -> Run<'_> {
    Box::pin(async move {
        let url = j.world.url();
        sign_in_with_token(j.page(), &url, j.world.token()).await?;
        create_project(j.page(), "Landing page", false).await?;
        let page = j.page();
        page.find_text(".callout", "Payments are unavailable")
            .await?;
        page.find_text(".callout", "only be chosen when a project is created")
            .await?;
        // The + menu's Connect says why too.
        page.click("#plus").await?;
        page.click("[data-item=connect_stripe]").await?;
        page.find_text(".menu-note", "backend").await?;
        // So does the chat.
        page.keys(&Key::Escape).await?;
        say(page, "I want to add payments").await?;
        page.find("article.card[data-kind=backend_required]")
            .await?;
        page.assert_accessible("a project without the backend")
            .await?;
        // The check itself can fail: a button with no name is a critical violation.
        page.js(
            "document.querySelector('.callout').append(document.createElement('button'))",
            vec![],
        )
        .await?;
        let caught = page
            .assert_accessible("a page with a nameless button")
            .await;
        ensure!(
            caught
                .as_ref()
                .is_err_and(|e| e.to_string().contains("button-name")),
            "axe-core did not report a nameless button: {caught:?}"
        );
        page.js(
            "document.querySelector('.callout > button:last-child').remove()",
            vec![],
        )
        .await?;
        let v: Value = page
            .js(
                "return document.querySelector('.callout a').getAttribute('href')",
                vec![],
            )
            .await?;
        ensure!(v == json!("#/new"), "how to start a backend project: {v}");
        Ok(())
    })
}

fn restricted_then_rejected(j: &mut Journey) -> Run<'_> {
    Box::pin(async move {
        let url = j.world.url();
        sign_in_with_token(j.page(), &url, j.world.token()).await?;
        create_project(j.page(), "Dorothy's studio", true).await?;
        connect_with(j, "more_info", false).await?;
        let page = j.page();
        page.find(&current("account_status")).await?;
        // Integrations: restricted, what Stripe needs, Fix now.
        page.click("#integrations-link").await?;
        page.find_text(".integration [data-state=restricted]", "Restricted")
            .await?;
        page.find(".integration ul.needs li").await?;
        page.assert_accessible("a restricted account").await?;
        j.shot(0, "integrations-restricted").await?;
        let page = j.page();
        page.click_text(".integration", "Fix now").await?;
        // Fix now leads to the chat's step: the account's state with its fix.
        page.until(
            "the chat opens",
            "return /^#\\/p\\/[^/]+$/.test(location.hash)",
        )
        .await?;
        act(page, "account_status", "fix").await?;
        page.find(&format!("{} [data-action=open]", current("onboarding")))
            .await?;
        let app = open_link(page, "onboarding", "open").await?;
        page.find("input[name=outcome]").await?;
        page.click("input[name=outcome][value=rejected]").await?;
        page.click("form button[type=submit].primary").await?;
        page.find_text("body", "Stripe").await?;
        back_to(page, app).await?;
        page.find_text("article.card[data-kind=account_status]", "ejected")
            .await?;
        // Integrations: rejected, with the reason in plain words.
        page.click("#integrations-link").await?;
        page.find_text(".integration [data-state=rejected]", "Rejected")
            .await?;
        page.find_text(".integration", "Why:").await?;
        Ok(())
    })
}

/// Polls chatpay's API at `path` until `done` holds for its answer (webhooks arrive on their
/// own time); fails after the driver's patience with the last answer.
async fn api_until(
    j: &Journey,
    what: &str,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + crate::driver::PATIENCE;
    loop {
        let v = j.world.api("GET", path, None).await?;
        if done(&v) {
            return Ok(v);
        }
        if std::time::Instant::now() > deadline {
            bail!("timed out waiting until {what}; last answer: {v}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn subscription_renewal_cancel_payout(j: &mut Journey) -> Run<'_> {
    Box::pin(async move {
        let url = j.world.url();
        sign_in_with_token(j.page(), &url, j.world.token()).await?;
        let project = create_project(j.page(), "Ana's club", true).await?;
        connect_to_active(j, false).await?;
        let page = j.page();
        // A monthly plan, made on the sandbox's Dashboard page (kept open in its tab).
        page.click("#integrations-link").await?;
        page.click_text(".integration", "Stripe details").await?;
        let app = page.client.window().await?;
        let before = page.client.windows().await?;
        page.click("a[data-dashboard]").await?;
        let dashboard = page.until_window(&before).await?;
        page.client.switch_to_window(dashboard.clone()).await?;
        page.fill("#name", "Pro plan").await?;
        page.fill("#amount", "9.00").await?;
        page.find("#billing")
            .await?
            .select_by_value("month")
            .await?;
        page.click("#add-product button[type=submit]").await?;
        page.find_text(".ok", "Added Pro plan").await?;
        page.find_text("table.list", "USD 9.00 / month").await?;
        page.client.switch_to_window(app.clone()).await?;
        // Synced, then bought through a checkout the app makes (a recurring price has no buy
        // link), paid with 4242 on the checkout page.
        page.click("#sync").await?;
        page.find_text("tr[data-sellable=true]", "Pro plan").await?;
        page.find_text("tr[data-sellable=true]", "$9.00 / month")
            .await?;
        let catalog = j
            .world
            .api("GET", &format!("/v1/projects/{project}/catalog"), None)
            .await?;
        let price = catalog["products"][0]["prices"][0]["id"]
            .as_str()
            .context("the plan's price")?
            .to_owned();
        let order = j
            .world
            .api(
                "POST",
                &format!("/v1/projects/{project}/checkout"),
                Some(json!({"items": [{"price": price, "quantity": 1}]})),
            )
            .await?;
        let checkout = order["url"]
            .as_str()
            .context("the checkout's url")?
            .to_owned();
        let page = j.page();
        page.client.new_window(true).await?;
        let before = page.client.windows().await?;
        let tab = before
            .iter()
            .find(|w| **w != app && **w != dashboard)
            .context("the checkout's tab")?
            .clone();
        page.client.switch_to_window(tab).await?;
        pay_on_checkout_page(page, &checkout, "4242 4242 4242 4242").await?;
        page.find_text("body", "Thank").await?;
        back_to(page, app.clone()).await?;
        let subs_path = format!("/v1/projects/{project}/subscriptions");
        let list = api_until(j, "the subscription is known", &subs_path, |v| {
            v["data"][0]["status"] == "active"
        })
        .await?;
        let sub = list["data"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // The Subscriptions screen: the customer, the plan, the amount per period, active,
        // renewing.
        page.click("[data-nav=subscriptions]").await?;
        let row = page.find(&format!("tr[data-subscription='{sub}']")).await?;
        let text = row.text().await?;
        for want in [
            "ana@example.com",
            "Pro plan",
            "$9.00 / month",
            "Active",
            "Renews on",
        ] {
            ensure!(
                text.contains(want),
                "the subscription's row lacks {want:?}: {text:?}"
            );
        }
        // The filter: none past due; the active one among the active.
        page.find("select[name=status]")
            .await?
            .select_by_value("past_due")
            .await?;
        page.find_text(".empty-state", "No past due subscriptions")
            .await?;
        page.find("select[name=status]")
            .await?
            .select_by_value("active")
            .await?;
        page.find(&format!("tr[data-subscription='{sub}']")).await?;
        page.assert_accessible("the subscriptions list").await?;
        // The Clock refuses what it can't do, without moving: an unknown step, an unknown
        // account.
        let offset = j.world.sandbox.advance_clock(std::time::Duration::ZERO);
        let account = j.world.account(&project).await?;
        let base = j.world.sandbox.base_url();
        let refused = j
            .world
            .http
            .post_form(
                &format!("{base}dashboard/{account}/clock"),
                &[],
                &[("advance", "year")],
            )
            .await?;
        ensure!(refused.status == 400, "advance=year: {}", refused.status);
        let unknown = j
            .world
            .http
            .post_form(
                &format!("{base}dashboard/acct_unknown/clock"),
                &[],
                &[("advance", "day")],
            )
            .await?;
        ensure!(
            unknown.status == 404,
            "an unknown account: {}",
            unknown.status
        );
        ensure!(
            j.world.sandbox.advance_clock(std::time::Duration::ZERO) == offset,
            "a refused Clock moved the sandbox's time"
        );
        let page = j.page();
        // A month later on the sandbox's Clock: the subscription renews, its money becomes
        // available and is paid out.
        page.client.switch_to_window(dashboard.clone()).await?;
        page.find("#clock").await?;
        page.click("#clock button[value=month]").await?;
        page.find_text(".ok", "Moved the clock on by 1 month")
            .await?;
        // As on Stripe, the renewal's invoice is a draft for an hour before it is charged.
        page.click("#clock button[value=day]").await?;
        page.find_text(".ok", "Moved the clock on by 1 day").await?;
        page.js(
            "document.getElementById('test-tools').scrollIntoView({block: 'end'})",
            vec![],
        )
        .await?;
        j.shot(0, "sandbox-clock").await?;
        page.client.switch_to_window(app.clone()).await?;
        let sub_path = format!("{subs_path}/{sub}");
        api_until(j, "the renewal is paid", &sub_path, |v| {
            v["invoices"].as_array().is_some_and(|i| {
                i.iter()
                    .any(|i| i["billing_reason"] == "subscription_cycle" && i["status"] == "paid")
            })
        })
        .await?;
        // The detail: both invoices paid, the renewal among them, with its hosted page and PDF.
        page.click(&format!("tr[data-subscription='{sub}'] a"))
            .await?;
        page.find_text(".panel-head", "Pro plan").await?;
        page.find_text(
            "tr[data-reason=subscription_cycle][data-status=paid]",
            "Renewal",
        )
        .await?;
        page.find("tr[data-reason=subscription_create][data-status=paid]")
            .await?;
        page.find("tr[data-reason=subscription_cycle] a[data-hosted]")
            .await?;
        page.find("tr[data-reason=subscription_cycle] a[data-pdf]")
            .await?;
        // The customer's card starts failing (the Dashboard's failing card), and a month
        // later the renewal is declined: past due, its invoice open with a retry date.
        page.client.switch_to_window(dashboard.clone()).await?;
        page.click("#failing-card button").await?;
        page.find_text(".ok", "now pays with 4000 0000 0000 0341")
            .await?;
        // And the bank account closes: the next payout fails on its arrival date.
        let armed = j
            .world
            .http
            .send_json(
                "POST",
                &format!(
                    "{}__sandbox/accounts/{account}/payouts/fail_next",
                    j.world.sandbox.base_url()
                ),
                &[],
                &json!({"failure_code": "account_closed"}),
            )
            .await?;
        ensure!(
            armed.status == 200,
            "arming a payout failure: {}",
            armed.text()
        );
        page.click("#clock button[value=month]").await?;
        page.find_text(".ok", "Moved the clock on by 1 month")
            .await?;
        page.click("#clock button[value=day]").await?;
        page.find_text(".ok", "Moved the clock on by 1 day").await?;
        page.client.switch_to_window(app.clone()).await?;
        api_until(j, "the subscription is past due", &sub_path, |v| {
            v["status"] == "past_due"
        })
        .await?;
        page.click("[data-nav=subscriptions]").await?;
        page.find("select[name=status]")
            .await?
            .select_by_value("past_due")
            .await?;
        page.find_text(&format!("tr[data-subscription='{sub}']"), "Past due")
            .await?;
        page.click(&format!("tr[data-subscription='{sub}'] a"))
            .await?;
        page.find_text(".panel-head .pill", "Past due").await?;
        page.find_text("tr[data-status=open]", "Retry").await?;
        let renews = page.find_text("[data-renewal]", "Renews on").await?;
        let renews = renews.text().await?;
        let end_day = renews.trim_start_matches("Renews on ").to_owned();
        // Cancel at the period's end, through the confirmation (by keyboard: Enter on the
        // focused button).
        page.click("[data-action=cancel_at_period_end]").await?;
        page.find_text(".confirm", &format!("keeps access until {end_day}"))
            .await?;
        let focused = page
            .js(
                "return document.activeElement.hasAttribute('data-confirm')",
                vec![],
            )
            .await?;
        ensure!(
            focused == json!(true),
            "the confirmation's button is not focused"
        );
        page.assert_accessible("the cancel confirmation").await?;
        page.keys(&Key::Enter.to_string()).await?;
        page.find_text(".success-box", "Canceled at the period's end")
            .await?;
        let landed = page
            .js(
                "return document.activeElement.classList.contains('success-box')",
                vec![],
            )
            .await?;
        ensure!(
            landed == json!(true),
            "the focus is not on the outcome after the confirmation"
        );
        page.find_text("[data-renewal]", &format!("Ends on {end_day}"))
            .await?;
        page.find_text(".panel-head .pill", "Canceling").await?;
        j.shot(0, "subscription").await?;
        // Resumed meanwhile elsewhere (the app's own backend): Resume here answers
        // not_canceling, shown in the confirmation, tied to its button.
        j.world
            .api_with(
                "POST",
                &format!("{sub_path}/resume"),
                Some(json!({})),
                &[("idempotency-key", &format!("resume-{}", line!()))],
            )
            .await?;
        api_until(j, "the resume is known", &sub_path, |v| {
            v["cancel_at_period_end"] == false
        })
        .await?;
        page.click("[data-action=resume]").await?;
        page.click("[data-confirm]").await?;
        let err = page
            .find_text(".confirm .error-box", "nothing to resume")
            .await?;
        let tied = page
            .js(
                "const b = document.querySelector('[data-confirm]');
                 const e = document.getElementById(b.getAttribute('aria-describedby'));
                 return !!e && !e.hidden && e.textContent",
                vec![],
            )
            .await?;
        ensure!(
            tied.as_str() == Some(err.text().await?.as_str()),
            "the error is not tied to the confirmation's button: {tied}"
        );
        // Canceled again at the period's end; the list says "Ends on".
        j.world
            .api_with(
                "POST",
                &format!("{sub_path}/cancel"),
                Some(json!({"at_period_end": true})),
                &[("idempotency-key", "cancel-at-end")],
            )
            .await?;
        api_until(j, "the cancellation is known", &sub_path, |v| {
            v["cancel_at_period_end"] == true
        })
        .await?;
        page.click("[data-nav=subscriptions]").await?;
        let row = page
            .find_text(&format!("tr[data-subscription='{sub}']"), "Canceling")
            .await?;
        let text = row.text().await?;
        ensure!(
            text.contains(&format!("Ends on {end_day}")),
            "the row: {text:?}"
        );
        j.shot(0, "subscriptions").await?;
        // Balance and payouts: a payout, and when each paid order's money is available.
        let payouts = api_until(
            j,
            "a payout is made",
            &format!("/v1/projects/{project}/payouts"),
            |v| v["data"].as_array().is_some_and(|d| !d.is_empty()),
        )
        .await?;
        let payout = payouts["data"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let failed = api_until(
            j,
            "a payout fails",
            &format!("/v1/projects/{project}/payouts"),
            |v| {
                v["data"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|p| p["status"] == "failed"))
            },
        )
        .await?;
        let explained = failed["data"]
            .as_array()
            .and_then(|d| d.iter().find(|p| p["status"] == "failed"))
            .and_then(|p| p["failure_explained"].as_str())
            .context("a failed payout explained")?
            .to_owned();
        page.click("[data-nav=payouts]").await?;
        let row = page.find(&format!("tr[data-payout='{payout}']")).await?;
        // The failed one says why, in the words the API gives.
        page.find_text("tr[data-status=failed] .failure", &explained)
            .await?;
        let text = row.text().await?;
        ensure!(text.contains('$'), "the payout's row: {text:?}");
        page.find("[data-balance=available] .big-amount").await?;
        page.find("[data-balance=pending] .big-amount").await?;
        // The subscription's first order is there (Stripe's answer for an invoice payment
        // carries no availability date yet: "Not known yet").
        let funds = page.find("table.funds tr[data-order='1001']").await?;
        let text = funds.text().await?;
        ensure!(text.contains("$9.00"), "the funds row: {text:?}");
        page.assert_accessible("balance and payouts").await?;
        j.shot(0, "payouts").await?;
        // Go live: the sandbox account has no live catalog or webhook yet, so the checklist
        // answers what is missing and how to fix it, and the project stays in test mode.
        page.click("[data-nav=live]").await?;
        page.find_text("#mode-badge", "TEST").await?;
        page.click("#go-live").await?;
        let missing = page
            .find_text(".checklist li[data-ok=false]", "How to fix")
            .await?;
        ensure!(
            !missing.text().await?.trim().is_empty(),
            "an empty checklist item"
        );
        page.find_text(".error-box", "stays in test mode").await?;
        page.find_text("#mode-badge", "TEST").await?;
        let project_now = j
            .world
            .api("GET", &format!("/v1/projects/{project}"), None)
            .await?;
        ensure!(
            project_now["mode"] == "test",
            "the project left test mode: {project_now}"
        );
        page.assert_accessible("the go-live checklist").await?;
        j.shot(0, "go-live").await?;
        // Ended meanwhile (canceled now by the app's backend) while its page is open: the
        // page's Cancel answers subscription_ended, in words, by the button.
        j.world
            .api_with(
                "POST",
                &format!("{sub_path}/resume"),
                Some(json!({})),
                &[("idempotency-key", &format!("resume-{}", line!()))],
            )
            .await?;
        api_until(j, "the resume is known", &sub_path, |v| {
            v["cancel_at_period_end"] == false
        })
        .await?;
        let page = j.page();
        page.goto(&format!("{url}/#/p/{project}/subscriptions/{sub}"))
            .await?;
        page.find("[data-action=cancel_at_period_end]").await?;
        j.world
            .api_with(
                "POST",
                &format!("{sub_path}/cancel"),
                Some(json!({"at_period_end": false})),
                &[("idempotency-key", "cancel-now")],
            )
            .await?;
        api_until(j, "the end is known", &sub_path, |v| {
            v["status"] == "canceled"
        })
        .await?;
        let page = j.page();
        page.click("[data-action=cancel_at_period_end]").await?;
        page.click("[data-confirm]").await?;
        page.find_text(".confirm .error-box", "already ended")
            .await?;
        page.click(".crumbs a").await?;
        page.find_text(&format!("tr[data-subscription='{sub}']"), "Canceled")
            .await?;
        page.click(&format!("tr[data-subscription='{sub}'] a"))
            .await?;
        page.find_text(".panel-head .pill", "Canceled").await?;
        page.find_text(".panel", "This subscription has ended")
            .await?;
        // At phone width: the subscriptions and payouts screens fit.
        let phone = j.open_browser(PHONE).await?;
        let p = &j.pages[phone];
        sign_in_with_token_phone(p, &url, j.world.token()).await?;
        p.goto(&format!("{url}/#/p/{project}/payouts")).await?;
        p.find(&format!("tr[data-payout='{payout}']")).await?;
        let wide = p
            .js(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await?;
        ensure!(
            wide == json!(true),
            "payouts scroll sideways at phone width"
        );
        p.assert_accessible("balance and payouts at phone width")
            .await?;
        j.shot(phone, "phone-payouts").await?;
        let p = &j.pages[phone];
        p.goto(&format!("{url}/#/p/{project}/subscriptions"))
            .await?;
        p.find(&format!("tr[data-subscription='{sub}']")).await?;
        let wide = p
            .js(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await?;
        ensure!(
            wide == json!(true),
            "subscriptions scroll sideways at phone width"
        );
        // The answers the journey provoked aside: a 422 (Resume of a subscription not
        // canceling) and the go-live checklist's 409.
        let errors: Vec<String> = j
            .page()
            .console_errors(&url)
            .await
            .into_iter()
            .filter(|e| {
                !(e.contains(&format!("{sub}/resume")) && e.contains("422")
                    || e.contains(&format!("{sub}/cancel")) && e.contains("422")
                    || e.contains(&format!("{project}/mode")) && e.contains("409"))
            })
            .collect();
        ensure!(errors.is_empty(), "console errors: {errors:?}");
        Ok(())
    })
}

/// Whether the page itself scrolls (it should not: the chat's list and each page's main area
/// scroll inside it), and how tall it is.
const PAGE_SCROLL: &str = "const d = document.scrollingElement; \
    return { page: d.scrollHeight, window: window.innerHeight }";

/// The rough edges a new user met in the issue 22 trial, each checked where a person sees it:
/// the chat page without blank space below it (the hidden "You:" labels stay inside the chat's
/// scroll area); buy links in the chat as links, and no raw Stripe ids in what chatpay says;
/// country names in the country select; focus after a refund is confirmed (on the order page
/// and in the chat) and done cards out of the tab order; an opened but unpaid checkout shown as
/// "Checkout started"; the sandbox's checkout page naming the business; Balance & payouts
/// explaining a balance below zero and showing a partly refunded order at what remains; the
/// product catalog page's title and breadcrumb links; the Orders date column at phone width;
/// the Go live page's fix button that the checklist names, and the live account's register form
/// starting from the test account's name, country and email.
fn rough_edges(j: &mut Journey) -> Run<'_> {
    Box::pin(async move {
        let url = j.world.url();
        sign_in_with_token(j.page(), &url, j.world.token()).await?;
        let project = create_project(j.page(), "Ada's courses", true).await?;
        connect_to_active(j, false).await?;
        let page = j.page();
        // The register form's country select names countries, not codes.
        let country = page
            .js("return [...document.querySelectorAll('article.card[data-kind=register] select[name=country] option')].map(o => [o.value, o.textContent])", vec![])
            .await?;
        let names: Vec<(String, String)> = serde_json::from_value(country)?;
        ensure!(
            names
                .iter()
                .any(|(v, t)| v == "GB" && t == "United Kingdom")
                && names.iter().all(|(v, t)| v.is_empty() || t != v),
            "the country options: {names:?}"
        );
        let account = j.world.account(&project).await?;
        let price = j.world.product(&account, "Course", Some(4900)).await?;
        say(page, "sync my products").await?;
        page.find_text("article.card[data-kind=catalog_sync]", "ready to sell")
            .await?;
        // A buy link asked for in the chat is a link.
        say(page, "buy link for Course").await?;
        page.find(&format!(".log .msg.bot a[href*='{price}']"))
            .await
            .context("the buy link in the chat's answer is a link")?;
        // The chat page does not scroll into blank space below the chat.
        for i in 0..12 {
            say(page, &format!("what is test mode? ({i})")).await?;
        }
        page.until(
            "every question stored and answered",
            "return document.querySelectorAll('.log .msg.me').length >= 14 && !document.querySelector('.log .msg.me .status') && document.querySelectorAll('.log .msg.bot').length >= 14",
        )
        .await?;
        let sizes = page.js(PAGE_SCROLL, vec![]).await?;
        ensure!(
            sizes["page"].as_i64() <= sizes["window"].as_i64(),
            "the chat page scrolls beyond the window: {sizes}"
        );

        // The catalog page: its title, and its breadcrumb's links.
        page.click("[data-nav=catalog]").await?;
        page.find_text(".top-title h1", "Product catalog").await?;
        let crumbs = page
            .js("return [...document.querySelectorAll('.crumbs li')].map(li => !!li.querySelector('a[href]') || li.hasAttribute('aria-current'))", vec![])
            .await?;
        ensure!(
            crumbs == json!([true, true, true, true]),
            "breadcrumb items that are neither links nor the current page: {crumbs}"
        );
        let buy = page
            .find(&format!("a[data-buy='{price}']"))
            .await?
            .attr("href")
            .await?
            .context("the buy link's address")?;

        // A checkout opened and left unpaid, then one paid: the sandbox's page names the
        // business, not the person.
        let app = page.client.window().await?;
        page.client.new_window(true).await?;
        let tabs = page.client.windows().await?;
        let tab = tabs.into_iter().find(|w| w != &app).context("a new tab")?;
        page.client.switch_to_window(tab).await?;
        page.goto(&buy).await?;
        page.find("#cardNumber").await?;
        page.find_text(".summary", "Pay Ada's Courses").await?;
        page.goto(&buy).await?;
        let checkout = page.client.current_url().await?.to_string();
        pay_on_checkout_page(page, &checkout, "4242 4242 4242 4242").await?;
        page.find_text("body", "Thank").await?;
        back_to(page, app).await?;
        page.click("[data-nav=chat]").await?;
        page.find_text("article.card[data-kind=order]", "New order #1002")
            .await?;

        // Refunded from the chat: after Yes, the focus is not lost to the top of the page.
        say(page, "refund $5 of order 1002").await?;
        page.find(&current("confirm_refund")).await?;
        let yes = format!("{} [data-action=refund]", current("confirm_refund"));
        page.find(&yes).await?.click().await?;
        page.find_text(".log .msg.bot", "Refunded $5.00 of order #1002")
            .await?;
        let focused = page
            .until("the focus lands", "const a = document.activeElement; return a && a !== document.body && (a.id || a.tagName)")
            .await?;
        ensure!(focused.is_string(), "focus after the refund: {focused}");
        // Done cards are out of the tab order.
        let tabbable = page
            .js("return [...document.querySelectorAll('article.card.done a[href], article.card.done button, article.card.done input, article.card.done select')].filter(e => e.tabIndex >= 0 && !e.disabled).length", vec![])
            .await?;
        ensure!(
            tabbable == json!(0),
            "done cards' controls in the tab order: {tabbable}"
        );
        // No raw Stripe account or refund ids in what chatpay says.
        let raw = page
            .js("return [...document.querySelectorAll('.log .msg.bot .bubble, .log .card-body')].map(e => e.textContent).filter(t => /\\b(acct|re)_[A-Za-z0-9]{6,}/.test(t))", vec![])
            .await?;
        ensure!(raw == json!([]), "raw ids in the chat: {raw}");

        // On the order page: the focus goes to what happened.
        page.goto(&format!("{url}/#/p/{project}/orders/1002"))
            .await?;
        page.fill("form.refund input[name=amount]", "3").await?;
        page.click("form.refund button[type=submit]").await?;
        page.click_text(".confirm", "Refund $3.00").await?;
        page.find_text(".success-box", "Refunded $3.00").await?;
        let focused = page
            .until(
                "the focus lands",
                "return document.activeElement?.classList.contains('success-box') || null",
            )
            .await?;
        ensure!(focused == json!(true));

        // Orders: the unpaid checkout is "Checkout started".
        page.click("[data-nav=orders]").await?;
        page.find_text("tr[data-order='1001']", "Checkout started")
            .await?;
        // At phone width, nothing of the table is cut off.
        page.client
            .set_window_size(crate::PHONE.0, crate::PHONE.1)
            .await?;
        let clipped = page
            .until("the table is laid out", "const t = document.querySelector('table.orders'); const p = t.closest('.panel'); return t && { table: Math.round(t.getBoundingClientRect().right), panel: Math.round(p.getBoundingClientRect().right), dates: [...t.querySelectorAll('tbody td:nth-child(5)')].map(td => Math.round(td.getBoundingClientRect().right)) }")
            .await?;
        let panel = clipped["panel"].as_i64().unwrap_or_default();
        ensure!(
            clipped["table"].as_i64() <= Some(panel)
                && clipped["dates"]
                    .as_array()
                    .is_some_and(|d| d.iter().all(|r| r.as_i64() <= Some(panel))),
            "the orders table is cut off at phone width: {clipped}"
        );
        page.client
            .set_window_size(crate::LAPTOP.0, crate::LAPTOP.1)
            .await?;

        // Balance & payouts: below zero is explained; the refunded order at what remains.
        page.goto(&format!("{url}/#/p/{project}/payouts")).await?;
        let funds = page
            .find_text("table.funds tr[data-order='1002']", "$41.00")
            .await?
            .text()
            .await?;
        ensure!(funds.contains("refunded"), "the refunded order: {funds:?}");
        // The refunds came out of the available balance while the payment is still pending.
        let available = page.find("[data-balance=available]").await?.text().await?;
        ensure!(
            available.contains("-$8.00") && available.contains("refunds are taken"),
            "a balance below zero, with the chat's explanation: {available:?}"
        );

        // Go live: the checklist names a button, and the page has it.
        page.goto(&format!("{url}/#/p/{project}/live")).await?;
        page.click("#go-live").await?;
        let fix = page
            .find_text(
                "[data-item=account_active] .fix",
                "Connect your live account",
            )
            .await?;
        ensure!(fix.is_displayed().await?);
        page.find_text(
            "[data-item=account_active] [data-fix=connect_live]",
            "Connect your live account",
        )
        .await?
        .click()
        .await?;
        // It is the chat card's own button: the live account's setup starts there.
        page.find(&current("choose_account")).await?;
        // Creating the live account: the form offers the test account's name, country, email.
        act(page, "choose_account", "create").await?;
        page.find(&current("register")).await?;
        let offered = page
            .js("return ['legal_name', 'country', 'email'].map(n => document.querySelector(`article.card[data-kind=register]:not(.done) [name=${n}]`).value)", vec![])
            .await?;
        ensure!(
            offered == json!(["Ada's Courses", "GB", "ada@example.com"]),
            "the live register form offers: {offered}"
        );
        // The go-live checklist's 409 (not ready) is the answer the journey asked for.
        let errors: Vec<String> = page
            .console_errors(&url)
            .await
            .into_iter()
            .filter(|e| !(e.contains(&format!("{project}/mode")) && e.contains("409")))
            .collect();
        ensure!(errors.is_empty(), "console errors: {errors:?}");
        Ok(())
    })
}

/// A checkout the app makes for `price`, paid on Stripe's page by `email` with 4242, in a tab
/// of its own; back to the app's tab after.
async fn bought(j: &Journey, project: &str, price: &str, email: &str) -> anyhow::Result<()> {
    let order = j
        .world
        .api(
            "POST",
            &format!("/v1/projects/{project}/checkout"),
            Some(json!({"items": [{"price": price, "quantity": 1}]})),
        )
        .await?;
    let checkout = order["url"].as_str().context("the checkout's url")?;
    let page = j.page();
    let app = page.client.window().await?;
    page.client.new_window(true).await?;
    let tab = page
        .client
        .windows()
        .await?
        .into_iter()
        .find(|w| *w != app)
        .context("the checkout's tab")?;
    page.client.switch_to_window(tab).await?;
    pay_as(page, checkout, "4242 4242 4242 4242", email).await?;
    page.find_text("body", "Thank").await?;
    page.client.close_window().await?;
    page.client.switch_to_window(app).await?;
    Ok(())
}

fn customers_search_detail_export(j: &mut Journey) -> Run<'_> {
    Box::pin(async move {
        let url = j.world.url();
        sign_in_with_token(j.page(), &url, j.world.token()).await?;
        let project = create_project(j.page(), "Ana's shop", true).await?;
        connect_to_active(j, false).await?;
        let account = j.world.account(&project).await?;
        let course = j.world.product(&account, "Course", Some(4900)).await?;
        let mug = j.world.product(&account, "Mug", Some(1250)).await?;
        say(j.page(), "sync my products").await?;
        j.page()
            .find_text("article.card[data-kind=catalog_sync]", "ready to sell")
            .await?;
        bought(j, &project, &course, "ana@example.com").await?;
        bought(j, &project, &mug, "ben@example.com").await?;
        let customers = format!("/v1/projects/{project}/customers");
        api_until(j, "both customers are known", &customers, |v| {
            v["data"].as_array().is_some_and(|d| d.len() == 2)
        })
        .await?;
        // Ben gets $5.00 back (as the app's server might refund).
        j.world
            .api(
                "POST",
                &format!("/v1/projects/{project}/orders/1002/refunds"),
                Some(json!({"amount": 500})),
            )
            .await?;
        api_until(j, "the refund is known", &customers, |v| {
            v["data"][1]["lifetime_value"][0]["amount"] == 750
        })
        .await?;
        let page = j.page();
        // The list: the biggest spender first, with lifetime value and orders.
        page.click("[data-nav=customers]").await?;
        let ana = page
            .find_text("tr[data-customer='ana@example.com']", "$49.00")
            .await?
            .text()
            .await?;
        ensure!(
            ana.contains("UTC") || ana.contains("20"),
            "ana's row: {ana:?}"
        );
        page.find_text("tr[data-customer='ben@example.com']", "$7.50")
            .await?;
        page.assert_accessible("the customers list").await?;
        j.shot(0, "customers").await?;
        // Search by part of an email: only Ben, and the export follows the search.
        page.fill("input[name=q]", "BEN").await?;
        page.click("form.search button[type=submit]").await?;
        page.until(
            "the search keeps only ben",
            "return !document.querySelector(\"tr[data-customer='ana@example.com']\") \
             && !!document.querySelector(\"tr[data-customer='ben@example.com']\")",
        )
        .await?;
        page.find_text("[role=status]", "1 customer matching")
            .await?;
        // The export as the page downloads it (this tab is signed in with an API token, so
        // the button fetches with it): a CSV line per customer and currency.
        let csv = page
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const a = document.querySelector('a[data-export]');
                 fetch(a.getAttribute('href'), { headers: { authorization:
                   'Bearer ' + sessionStorage.getItem('chatpay.token') } })
                   .then(r => r.text().then(t => done([a.getAttribute('href'), r.headers.get('content-type'), t])))
                   .catch(e => done(['', '', String(e)]));",
                vec![],
            )
            .await?;
        ensure!(
            csv[0]
                .as_str()
                .is_some_and(|h| h.ends_with("/customers.csv?q=BEN"))
                && csv[1].as_str().is_some_and(|t| t.starts_with("text/csv"))
                && csv[2]
                    .as_str()
                    .is_some_and(|t| t.starts_with("email,currency,lifetime_value")
                        && t.contains("\r\nben@example.com,USD,7.50,1,1002,")
                        && !t.contains("ana@")),
            "the customers export: {csv}"
        );
        // A customer's page: what they paid, their orders, refunds, subscriptions, disputes.
        page.click("tr[data-customer='ben@example.com'] a").await?;
        page.find_text(".panel-head", "ben@example.com").await?;
        page.find_text(".facts", "$7.50").await?;
        page.find_text(
            "section[aria-labelledby=customer-orders] tr[data-order='1002']",
            "Partially refunded",
        )
        .await?;
        page.find_text("section[aria-labelledby=customer-refunds]", "$5.00")
            .await?;
        page.find_text("section[aria-labelledby=customer-subs]", "No subscriptions")
            .await?;
        page.find_text("section[aria-labelledby=customer-disputes]", "No disputes")
            .await?;
        page.assert_accessible("a customer's page").await?;
        // Its order links to the order's page.
        page.click("section[aria-labelledby=customer-orders] a[href$='/orders/1002']")
            .await?;
        page.find_text(".panel-head", "Order #1002").await?;
        // The Orders page has its export too.
        page.click("[data-nav=orders]").await?;
        let href = page
            .find("a[data-export]")
            .await?
            .attr("href")
            .await?
            .unwrap_or_default();
        ensure!(
            href == format!("/v1/projects/{project}/orders.csv"),
            "the orders export's link: {href}"
        );
        // Balance & payouts: the revenue chart, read as a table (this month: $49.00 and
        // $12.50 less the $5.00 refund; no subscription, so no MRR).
        page.click("[data-nav=payouts]").await?;
        page.find("svg.revenue-chart[aria-hidden=true]").await?;
        let month = page
            .js("return new Date().toISOString().slice(0, 7)", vec![])
            .await?;
        let month = month.as_str().unwrap_or_default();
        page.find_text(
            &format!("table.chart-table tr[data-month='{month}']"),
            "$56.50",
        )
        .await?;
        page.find_text("table.chart-table tr[data-month=mrr]", "$0.00")
            .await?;
        page.assert_accessible("Balance & payouts with its chart")
            .await?;
        j.shot(0, "payouts-chart").await?;
        let errors = page.console_errors(&url).await;
        ensure!(errors.is_empty(), "console errors: {errors:?}");
        Ok(())
    })
}
