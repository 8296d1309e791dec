//! The web chat view's HTTP side, without a browser: the page and its assets (content types,
//! caching, the Content-Security-Policy) and the one-time sign-in link of a fresh database.

use std::time::Duration;

use serde_json::{Value, json};

use chatpay_http_client::{HttpClient, Response};
use chatpay_server::config::Config;
use chatpay_testkit::TestServer;

struct Fixture {
    server: TestServer,
    http: HttpClient,
    _dir: tempfile::TempDir,
}

async fn start(with_token: bool) -> (Fixture, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chatpay.db").display());
    let token = if with_token {
        let store = chatpay_store::connect(&url).await.unwrap();
        Some(
            chatpay_server::auth::create_token(&*store, "t")
                .await
                .unwrap(),
        )
    } else {
        None
    };
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: url,
        ..Config::default()
    };
    let server = tokio::task::spawn_blocking(move || TestServer::start(config))
        .await
        .unwrap()
        .unwrap();
    let http = HttpClient::new(Duration::from_secs(10));
    (
        Fixture {
            server,
            http,
            _dir: dir,
        },
        token,
    )
}

impl Fixture {
    async fn get(&self, path: &str) -> Response {
        self.http
            .get(&format!("{}{path}", self.server.url()), &[])
            .await
            .unwrap()
    }

    async fn signin(&self, body: &Value) -> Response {
        self.http
            .post_json(&format!("{}/v1/signin", self.server.url()), &[], body)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_caching_and_a_strict_policy() {
    let (f, _) = start(true).await;
    let page = f.get("/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let csp = page.header("content-security-policy").unwrap().to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    let version = chatpay_server::http::web::version();
    assert!(
        html.contains(&format!("/assets/{version}/app.js")),
        "{html}"
    );

    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("chat.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let res = f.get(&format!("/assets/{version}/{file}")).await;
        assert_eq!(res.status, 200, "{file}");
        assert_eq!(res.header("content-type"), Some(content_type), "{file}");
        assert_eq!(
            res.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{file}"
        );
        assert!(res.header("content-security-policy").is_some(), "{file}");
    }
    // An old version's URL, or a file that isn't one of ours: 404 in the API's shape.
    for path in [
        "/assets/000000000000/app.js".to_owned(),
        format!("/assets/{version}/secret.js"),
        format!("/assets/{version}/..%2Fapp.js"),
    ] {
        let res = f.get(&path).await;
        assert_eq!(res.status, 404, "{path}");
        assert_eq!(res.json().unwrap()["code"], "not_found", "{path}");
    }
    let icon = f.get("/favicon.ico").await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_database_offers_a_sign_in_link_that_works_once() {
    let (f, _) = start(false).await;
    let link = f
        .server
        .signin_url
        .clone()
        .expect("a fresh database prints a link");
    let prefix = format!("{}/#signin=", f.server.url());
    let code = link
        .strip_prefix(&prefix)
        .expect("the code is in the fragment");
    assert!(code.starts_with("cps_") && code.len() == 36, "{code}");

    let wrong = f
        .signin(&json!({ "code": "cps_00000000000000000000000000000000" }))
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json().unwrap()["code"], "unauthorized");
    assert!(
        wrong.text().contains("chatpay token create"),
        "{}",
        wrong.text()
    );
    let malformed = f.signin(&json!({ "token": code })).await;
    assert_eq!(malformed.status, 400, "{}", malformed.text());

    let ok = f.signin(&json!({ "code": code })).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    let token = ok.json().unwrap()["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cpk_"), "{token}");
    let auth = format!("Bearer {token}");
    let projects = f
        .http
        .get(
            &format!("{}/v1/projects", f.server.url()),
            &[("authorization", auth.as_str())],
        )
        .await
        .unwrap();
    assert_eq!(projects.status, 200, "the new token works");

    let again = f.signin(&json!({ "code": code })).await;
    assert_eq!(again.status, 401, "a used code is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_an_owner_offers_no_sign_in_link() {
    // A token alone is not a sign-in: the link is offered until somebody has one.
    let (f, _) = start(true).await;
    assert!(f.server.signin_url.is_some());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chatpay.db").display());
    let store = chatpay_store::connect(&url).await.unwrap();
    let w = chatpay_server::auth::create_workspace(&*store, "w")
        .await
        .unwrap();
    store
        .insert_person(&chatpay_store::PersonRecord {
            id: chatpay_core::domain::PersonId::generate(),
            workspace_id: w.id,
            email: "maya@example.com".to_owned(),
            password_hash: chatpay_server::auth::hash_password("a long enough password").unwrap(),
            created_at: chatpay_core::domain::now_millis(),
        })
        .await
        .unwrap();
    drop(store);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: url,
        ..Config::default()
    };
    let server = tokio::task::spawn_blocking(move || TestServer::start(config))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.signin_url, None);
    let res = f
        .signin(&json!({ "code": "cps_00000000000000000000000000000000" }))
        .await;
    assert_eq!(res.status, 401);
}
