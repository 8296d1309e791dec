//! The webhook ledger's group commit, over HTTP against a real server, on SQLite and (where
//! `CHATPAY_TEST_POSTGRES` names a server) PostgreSQL: deliveries that arrive together share
//! commits, yet an event delivered several times at once is recorded once and acknowledged as
//! new once; and when the commit a delivery is in fails, every delivery in it is answered 5xx
//! (so Stripe delivers it again) and none is recorded.

use chatpay_server::config::{Config, Secret};
use chatpay_testkit::TestServer;
use serde_json::json;
use sqlx::Connection;

const SECRET: &str = "whsec_ledger_test";

/// A fresh database: a SQLite file in `dir`, or a new database on the test PostgreSQL server.
async fn database(postgres: bool, dir: &tempfile::TempDir) -> Option<String> {
    if !postgres {
        return Some(format!("sqlite://{}", dir.path().join("t.db").display()));
    }
    let admin = chatpay_store::test_postgres().unwrap_or_else(|why| panic!("{why}"))?;
    let name = format!("chatpay_w_{}", chatpay_core::domain::random_hex(6));
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    Some(format!("{base}/{name}"))
}

async fn server(url: &str) -> TestServer {
    let mut config = Config {
        database_url: url.to_owned(),
        ..Config::default()
    };
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.stripe.webhook_secret = Some(Secret::new(SECRET));
    tokio::task::spawn_blocking(move || TestServer::start(config))
        .await
        .unwrap()
        .unwrap()
}

/// An event chatpay records and does not act on (no connected account).
fn event(id: &str) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": "customer.created",
        "data": { "object": { "id": "cus_1", "object": "customer" } },
    })
    .to_string()
}

/// POSTs every body at once; returns each answer's status and JSON, in order.
async fn deliver_at_once(server: &TestServer, bodies: &[String]) -> Vec<(u16, serde_json::Value)> {
    let hook = format!("{}/v1/webhooks/stripe", server.url());
    let mut tasks = Vec::new();
    for body in bodies {
        let (hook, body) = (hook.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let http = chatpay_http_client::HttpClient::default();
            let signature = chatpay_stripe::webhook::sign(
                body.as_bytes(),
                SECRET,
                chrono::Utc::now().timestamp(),
            );
            let res = http
                .send(
                    "POST",
                    &hook,
                    &[
                        ("stripe-signature", signature.as_str()),
                        ("content-type", "application/json"),
                    ],
                    body,
                )
                .await
                .unwrap();
            (res.status, res.json().unwrap_or_default())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn concurrent_redeliveries_are_recorded_once(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = database(postgres, &dir).await else {
        eprintln!("CHATPAY_TEST_POSTGRES=skip: skipped on PostgreSQL");
        return;
    };
    let server = server(&url).await;
    // 12 events, each delivered 6 times, all 72 at once.
    let ids: Vec<String> = (0..12).map(|i| format!("evt_dup{i:02}")).collect();
    let bodies: Vec<String> = (0..6)
        .flat_map(|_| ids.iter().map(|id| event(id)))
        .collect();
    let answers = deliver_at_once(&server, &bodies).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    for id in &ids {
        let new = bodies
            .iter()
            .zip(&answers)
            .filter(|(b, (_, a))| b.contains(id.as_str()) && a["duplicate"] != true)
            .count();
        assert_eq!(new, 1, "{id} is acknowledged as new once: {answers:?}");
    }
    let store = chatpay_store::connect(&url).await.unwrap();
    for id in &ids {
        let stored = store.event(id).await.unwrap().expect("recorded");
        assert_eq!(
            stored.outcome.as_deref(),
            Some("ignored: not about a connected account")
        );
        assert!(stored.processed_at.is_some());
    }
    assert!(store.unprocessed_events(100).await.unwrap().is_empty());
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
}

/// Makes every insert into the ledger fail (as a full disk would), or stops doing so.
async fn refuse_ledger_writes(url: &str, refuse: bool) {
    let statements: &[&str] = match (url.starts_with("sqlite:"), refuse) {
        (true, true) => &[
            "CREATE TRIGGER refuse_ledger BEFORE INSERT ON webhook_events \
             BEGIN SELECT RAISE(ABORT, 'the ledger refuses writes'); END",
        ],
        (true, false) => &["DROP TRIGGER refuse_ledger"],
        (false, true) => &[
            "CREATE FUNCTION refuse_ledger() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'the ledger refuses writes'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_ledger BEFORE INSERT ON webhook_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_ledger()",
        ],
        (false, false) => &["DROP TRIGGER refuse_ledger ON webhook_events"],
    };
    for sql in statements {
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut conn)
                .await
                .unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

async fn a_failed_commit_fails_every_delivery_in_it(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = database(postgres, &dir).await else {
        eprintln!("CHATPAY_TEST_POSTGRES=skip: skipped on PostgreSQL");
        return;
    };
    let server = server(&url).await;
    let bodies: Vec<String> = (0..24).map(|i| event(&format!("evt_fail{i:02}"))).collect();
    refuse_ledger_writes(&url, true).await;
    let answers = deliver_at_once(&server, &bodies).await;
    for (status, body) in &answers {
        assert_eq!(*status, 500, "not acknowledged: {body}");
        assert_eq!(body["code"], "internal", "{body}");
    }
    let store = chatpay_store::connect(&url).await.unwrap();
    for i in 0..24 {
        let id = format!("evt_fail{i:02}");
        assert!(
            store.event(&id).await.unwrap().is_none(),
            "{id} not recorded"
        );
    }
    // Stripe delivers them again; now they are stored, once each.
    refuse_ledger_writes(&url, false).await;
    let answers = deliver_at_once(&server, &bodies).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_ne!(body["duplicate"], true, "{body}");
    }
    for i in 0..24 {
        let id = format!("evt_fail{i:02}");
        assert!(store.event(&id).await.unwrap().is_some(), "{id} recorded");
    }
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_redeliveries_are_recorded_once() {
    concurrent_redeliveries_are_recorded_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_redeliveries_are_recorded_once() {
    concurrent_redeliveries_are_recorded_once(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_failed_commit_fails_every_delivery_in_it() {
    a_failed_commit_fails_every_delivery_in_it(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failed_commit_fails_every_delivery_in_it() {
    a_failed_commit_fails_every_delivery_in_it(true).await;
}
