//! A Stripe write the HTTP API makes is finished after a crash, once, with no client retry: the
//! real `chatpay` binary is stopped by its fault hook between Stripe's answer and the commit that
//! applies it (`CHATPAY_FAULT_PAUSE_AFTER_STRIPE`), killed there with SIGKILL, and restarted on
//! the same database; the stored operation is issued again with the same idempotency key and
//! completed. Stripe is a sandbox in this test's own process, so it keeps its state (and its
//! idempotency records) across the server's kill, and its objects show that Stripe acted once:
//! one Checkout Session for the checkout, one refund for the refund.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stripe_sandbox::{OAuthAuthorize, Sandbox, SandboxConfig, TestPayment};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use chatpay_http_client::HttpClient;
use chatpay_store::OperationStatus;
use chatpay_testkit::Client;

const BIN: &str = env!("CARGO_BIN_EXE_chatpay");
const WEBHOOK_SECRET: &str = "whsec_operations_crash";
const PAUSED: &str = "fault injection: paused between Stripe's answer and the commit";

/// A running `chatpay serve` pointed at the sandbox: the child, its address, its log lines.
struct Server {
    child: Child,
    addr: String,
    log: mpsc::UnboundedReceiver<String>,
}

async fn serve(db: &str, sandbox: &Sandbox, fault: Option<&str>) -> Server {
    let c = sandbox.config();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", db])
        .env("CHATPAY_LOG", "info")
        .env("STRIPE_SECRET_KEY", &c.test_secret_key)
        .env("STRIPE_LIVE_SECRET_KEY", &c.live_secret_key)
        .env("STRIPE_API_BASE", sandbox.base_url())
        .env("STRIPE_CONNECT_BASE", sandbox.base_url())
        .env("STRIPE_CONNECT_CLIENT_ID", &c.connect_client_id)
        .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env_remove("CHATPAY_FAULT_PAUSE_AFTER_STRIPE")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if let Some(kind) = fault {
        cmd.env("CHATPAY_FAULT_PAUSE_AFTER_STRIPE", kind);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line.find("chatpay listening address=") {
                return line[at + 26..].trim().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server starts");
    let (tx, log) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    sandbox.set_webhook_endpoint(&format!("http://{addr}/v1/webhooks/stripe"), WEBHOOK_SECRET);
    Server { child, addr, log }
}

impl Server {
    /// Waits for a log line containing `text`.
    async fn logged(&mut self, text: &str) -> String {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let line = self.log.recv().await.expect("the server's log ended");
                if line.contains(text) {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the server never logged {text:?}"))
    }

    /// SIGKILL: no shutdown hook runs.
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Polls `f` until it returns `Some`, for up to a minute.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get(http: &HttpClient, url: &str, auth: &str) -> Value {
    let res = http.get(url, &[("authorization", auth)]).await.unwrap();
    assert_eq!(res.status, 200, "GET {url}: {}", res.text());
    res.json().unwrap()
}

/// The sandbox's API as the connected account.
async fn stripe(
    http: &HttpClient,
    sandbox: &Sandbox,
    account: &str,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Value {
    let auth = format!("Bearer {}", sandbox.config().test_secret_key);
    let url = format!("{}{path}", sandbox.base_url());
    let headers = [
        ("authorization", auth.as_str()),
        ("stripe-account", account),
    ];
    let res = if method == "GET" {
        http.get(&url, &headers).await.unwrap()
    } else {
        http.post_form(&url, &headers, form).await.unwrap()
    };
    assert!(
        (200..300).contains(&res.status),
        "{method} {path}: {}",
        res.text()
    );
    res.json().unwrap()
}

/// Reads frames until a card of `kind` arrives.
async fn until_card(client: &mut Client, kind: &str) -> Value {
    loop {
        let f = client
            .next(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("waiting for a {kind} card: {e}"));
        if f["type"] == "card" && f["card"]["kind"] == kind {
            return f;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_write_cut_off_by_a_crash_is_finished_once_on_restart() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("operations.db");
    let db = format!("sqlite://{}", db_path.display());
    let out = Command::new(BIN)
        .args(["token", "create", "--name", "ops", "--database-url", &db])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let auth = format!("Bearer {token}");
    let http = HttpClient::new(Duration::from_secs(120));

    // ---- Set up a shop: a project connected to a Stripe account, one product, synced.
    let mut server = serve(&db, &sandbox, Some("checkout")).await;
    let res = http
        .post_json(
            &server.url("/v1/projects"),
            &[("authorization", &auth)],
            &json!({ "name": "shop", "backend": true }),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", res.text());
    let project = res.json().unwrap()["id"].as_str().unwrap().to_owned();
    let mut client = Client::new();
    client
        .connect(
            &format!("ws://{}/v1/chat", server.addr),
            &token,
            &project,
            0,
        )
        .await
        .unwrap();
    let res = http
        .post_json(
            &server.url(&format!(
                "/v1/projects/{project}/integrations/stripe/connect"
            )),
            &[("authorization", &auth)],
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 202, "{}", res.text());
    until_card(&mut client, "choose_account").await;
    let card = client.card("choose_account", None).unwrap();
    let click = json!({ "type": "click", "id": "existing", "card": card, "action": "existing" });
    client.send_json("existing", &click).await.unwrap();
    until_card(&mut client, "connect_existing").await;
    let link = client.link("connect_existing", "authorize").unwrap();
    let query: BTreeMap<String, String> = link
        .split_once('?')
        .map(|(_, q)| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let redirect = sandbox
        .authorize_oauth(OAuthAuthorize {
            client_id: query["client_id"].clone(),
            redirect_uri: query["redirect_uri"].clone(),
            state: query.get("state").cloned(),
            scope: "read_write".to_owned(),
            deny: false,
            email: None,
            business_name: Some("Crash Shop".to_owned()),
            country: None,
        })
        .unwrap();
    http.get(&redirect, &[]).await.unwrap();
    until_card(&mut client, "account_status").await;
    let status = get(
        &http,
        &server.url(&format!(
            "/v1/projects/{project}/integrations/stripe?mode=test"
        )),
        &auth,
    )
    .await;
    let account = status["account"]["id"].as_str().unwrap().to_owned();
    let product = stripe(
        &http,
        &sandbox,
        &account,
        "POST",
        "v1/products",
        &[
            ("name", "Course"),
            ("default_price_data[unit_amount]", "4900"),
            ("default_price_data[currency]", "usd"),
        ],
    )
    .await;
    let price = product["default_price"].as_str().unwrap().to_owned();
    let res = http
        .post_json(
            &server.url(&format!(
                "/v1/projects/{project}/integrations/stripe/catalog/sync"
            )),
            &[("authorization", &auth)],
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 202, "{}", res.text());
    loop {
        let f = client.next(Duration::from_secs(30)).await.unwrap();
        if f["type"] == "flow" && f["flow"] == "catalog_sync" && f["state"] == "done" {
            break;
        }
    }

    // ---- A checkout, cut off after Stripe made the session and before the order is stored.
    let checkout = server.url(&format!("/v1/projects/{project}/checkout"));
    let cart =
        json!({ "items": [{ "price": price, "quantity": 1 }], "customer_email": "bo@example.com" });
    let request = {
        let (http, auth, checkout, cart) = (http.clone(), auth.clone(), checkout.clone(), cart);
        tokio::spawn(async move {
            http.post_json(
                &checkout,
                &[("authorization", &auth), ("idempotency-key", "checkout-1")],
                &cart,
            )
            .await
        })
    };
    let line = server.logged(PAUSED).await;
    assert!(line.contains("checkout"), "{line}");
    server.kill().await;
    // The client's request died with the server; it is never sent again.
    assert!(request.await.unwrap().is_err(), "the checkout was answered");

    // ---- Restarted (refunds will pause the same way): the checkout finishes by itself.
    let mut server = serve(&db, &sandbox, Some("refund")).await;
    let orders_url = server.url(&format!("/v1/projects/{project}/orders"));
    let order = eventually("the checkout's order", || {
        let (http, orders_url, auth) = (&http, &orders_url, &auth);
        async move {
            let list = get(http, orders_url, auth).await;
            list["data"].as_array()?.first().cloned()
        }
    })
    .await;
    let session = order["checkout_session"].as_str().unwrap().to_owned();
    assert!(session.starts_with("cs_"), "{order}");
    let sessions = stripe(
        &http,
        &sandbox,
        &account,
        "GET",
        "v1/checkout/sessions",
        &[],
    )
    .await;
    assert_eq!(
        sessions["data"].as_array().unwrap().len(),
        1,
        "Stripe made one session: {sessions}"
    );
    assert_eq!(sessions["data"][0]["id"], session.as_str());
    let list = get(&http, &orders_url, &auth).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "one order: {list}"
    );

    // ---- Paid; then a refund, cut off after Stripe made it and before the order learns of it.
    let paid = sandbox
        .pay_checkout(&session, TestPayment::card("4242424242424242"))
        .unwrap();
    assert_eq!(paid.outcome, "succeeded");
    let number = order["number"].as_i64().unwrap();
    let order_url = server.url(&format!("/v1/projects/{project}/orders/{number}"));
    eventually("the order paid", || {
        let (http, order_url, auth) = (&http, &order_url, &auth);
        async move { (get(http, order_url, auth).await["status"] == "paid").then_some(()) }
    })
    .await;
    // From here Stripe's events wait: only the stored operation can tell the order.
    sandbox.pause_deliveries(true);
    let refunds_url = server.url(&format!("/v1/projects/{project}/orders/{number}/refunds"));
    let request = {
        let (http, auth, refunds_url) = (http.clone(), auth.clone(), refunds_url.clone());
        tokio::spawn(async move {
            http.post_json(
                &refunds_url,
                &[("authorization", &auth), ("idempotency-key", "refund-1")],
                &json!({}),
            )
            .await
        })
    };
    let line = server.logged(PAUSED).await;
    assert!(line.contains("refund"), "{line}");
    server.kill().await;
    assert!(request.await.unwrap().is_err(), "the refund was answered");

    // ---- Restarted: the refund finishes by itself and the order shows it.
    let server = serve(&db, &sandbox, None).await;
    let order_url = server.url(&format!("/v1/projects/{project}/orders/{number}"));
    let order = eventually("the order refunded", || {
        let (http, order_url, auth) = (&http, &order_url, &auth);
        async move {
            let o = get(http, order_url, auth).await;
            (o["status"] == "refunded").then_some(o)
        }
    })
    .await;
    let pi = paid.payment_intent.as_ref().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refunds = stripe(
        &http,
        &sandbox,
        &account,
        "GET",
        &format!("v1/refunds?payment_intent={pi}"),
        &[],
    )
    .await;
    assert_eq!(
        refunds["data"].as_array().unwrap().len(),
        1,
        "Stripe made one refund: {refunds}"
    );
    assert_eq!(
        order["refunds"].as_array().map(Vec::len),
        Some(1),
        "{order}"
    );

    // Both operations are done, each after two attempts (the cut-off one and the restart's).
    let store = chatpay_store::connect(&db).await.unwrap();
    let order_id = order["id"].as_str().unwrap();
    for key in [
        format!("chatpay:order:{order_id}:checkout"),
        format!("chatpay:refund:{order_id}:refund-1"),
    ] {
        let op = store.operation(&key).await.unwrap().expect(&key);
        assert_eq!(op.status, OperationStatus::Done, "{op:?}");
        assert_eq!(op.attempts, 2, "{op:?}");
    }
    drop(server);
}
