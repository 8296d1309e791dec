//! People and platforms over a real socket, on SQLite and (when `CHATPAY_TEST_POSTGRES` names a
//! server) PostgreSQL: workspaces keep their projects to themselves over HTTP and WebSocket
//! alike; the first-run link makes the owner's sign-in; email and password sign in to a session
//! cookie that every request shares, refused from another site, ended by Sign out; API tokens
//! made, listed and revoked (an open chat with a revoked one closes); the platform key makes a
//! workspace and mints short-lived tokens scoped to a project.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use chatpay_http_client::{HttpClient, Response};
use chatpay_server::config::{Config, Secret};
use chatpay_testkit::TestServer;

const PLATFORM_KEY: &str = "cpp_test_platform_key_not_a_real_one";

async fn database(postgres: bool, dir: &tempfile::TempDir) -> Option<String> {
    if !postgres {
        return Some(format!("sqlite://{}", dir.path().join("t.db").display()));
    }
    let admin = chatpay_store::test_postgres().unwrap_or_else(|why| panic!("{why}"))?;
    let name = format!("chatpay_i_{}", chatpay_core::domain::random_hex(6));
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    Some(format!("{base}/{name}"))
}

struct Fixture {
    server: TestServer,
    http: HttpClient,
    url: String,
    database_url: String,
    _dir: tempfile::TempDir,
}

async fn start(postgres: bool) -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let database_url = database(postgres, &dir).await?;
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.clone(),
        platform_key: Some(Secret::new(PLATFORM_KEY)),
        ..Config::default()
    };
    config.chat.hello_timeout = Duration::from_secs(10);
    let server = tokio::task::spawn_blocking(move || TestServer::start(config))
        .await
        .unwrap()
        .unwrap();
    Some(Fixture {
        url: server.url(),
        server,
        http: HttpClient::new(Duration::from_secs(30)),
        database_url,
        _dir: dir,
    })
}

impl Fixture {
    fn origin(&self) -> String {
        self.url.clone()
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        let url = format!("{}{path}", self.url);
        match body {
            Some(b) => self.http.send_json(method, &url, headers, &b).await,
            None => self.http.send(method, &url, headers, Vec::new()).await,
        }
        .unwrap()
    }

    async fn bearer(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Response {
        let auth = format!("Bearer {token}");
        self.call(method, path, &[("authorization", &auth)], body)
            .await
    }

    /// A request from the page: the session cookie and the page's own Origin.
    async fn page(&self, method: &str, path: &str, cookie: &str, body: Option<Value>) -> Response {
        let origin = self.origin();
        let cookie = format!("chatpay_session={cookie}");
        self.call(
            method,
            path,
            &[("cookie", &cookie), ("origin", &origin)],
            body,
        )
        .await
    }

    async fn new_project(&self, token: &str, name: &str) -> String {
        let res = self
            .bearer(
                "POST",
                "/v1/projects",
                token,
                Some(json!({ "name": name, "backend": true })),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text());
        res.json().unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// Opens the chat with these upgrade headers and says `hello`; the first frame back.
    async fn chat(
        &self,
        headers: &[(&str, &str)],
        token: Option<&str>,
        project: &str,
    ) -> (Ws, Value) {
        let mut req = self.server.ws_url().into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut hello = json!({ "type": "hello", "project": project });
        if let Some(t) = token {
            hello["token"] = json!(t);
        }
        ws.send(Message::Text(hello.to_string().into()))
            .await
            .unwrap();
        let first = next_json(&mut ws).await;
        (ws, first)
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Waits for the server to close the socket; its close code.
async fn closed(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return None,
            Err(_) => panic!("the server did not close the connection"),
        }
    }
}

fn session_cookie(res: &Response) -> String {
    let set = res.header("set-cookie").expect("a Set-Cookie");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Lax"), "{set}");
    assert!(set.contains("Max-Age=2592000"), "{set}");
    assert!(!set.contains("Secure"), "plain http: {set}");
    let value = set
        .strip_prefix("chatpay_session=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert!(value.starts_with("cpx_"), "{value}");
    value.to_owned()
}

async fn workspaces_keep_their_projects(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = database(postgres, &dir).await else {
        eprintln!("CHATPAY_TEST_POSTGRES=skip: skipped on PostgreSQL");
        return;
    };
    // Two tokens of the first workspace and a stranger's, as `chatpay token create` makes them.
    let store = chatpay_store::connect(&db).await.unwrap();
    let first = chatpay_server::auth::create_token(&*store, "first")
        .await
        .unwrap();
    let teammate = chatpay_server::auth::create_token(&*store, "teammate")
        .await
        .unwrap();
    let stranger = chatpay_server::auth::create_api_token(
        &*store,
        "stranger",
        &chatpay_server::auth::Target::New,
    )
    .await
    .unwrap()
    .secret;
    drop(store);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: db.clone(),
        ..Config::default()
    };
    let server = tokio::task::spawn_blocking(move || TestServer::start(config))
        .await
        .unwrap()
        .unwrap();
    let f = Fixture {
        url: server.url(),
        server,
        http: HttpClient::new(Duration::from_secs(30)),
        database_url: db,
        _dir: dir,
    };
    let mine = f.new_project(&first, "shop").await;
    // A teammate's token sees the workspace's projects.
    let listed = f.bearer("GET", "/v1/projects", &teammate, None).await;
    assert_eq!(listed.json().unwrap()["data"][0]["id"], mine.as_str());
    let shown = f
        .bearer("GET", &format!("/v1/projects/{mine}"), &teammate, None)
        .await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    // Another workspace's project is not found, over HTTP…
    for (method, path) in [
        ("GET", format!("/v1/projects/{mine}")),
        ("GET", format!("/v1/projects/{mine}/orders")),
        ("PATCH", format!("/v1/projects/{mine}")),
    ] {
        let body = (method == "PATCH").then(|| json!({ "name": "mine now" }));
        let res = f.bearer(method, &path, &stranger, body).await;
        assert_eq!(res.status, 404, "{method} {path}: {}", res.text());
        assert_eq!(res.json().unwrap()["code"], "not_found");
    }
    let theirs = f.bearer("GET", "/v1/projects", &stranger, None).await;
    assert_eq!(theirs.json().unwrap()["data"], json!([]));
    // …and over the WebSocket, where it is refused exactly as a project that does not exist.
    let (_, foreign) = f.chat(&[], Some(&stranger), &mine).await;
    let (_, missing) = f.chat(&[], Some(&stranger), "prj_doesnotexist").await;
    assert_eq!(foreign["type"], "error", "{foreign}");
    assert_eq!(foreign["code"], missing["code"]);
    assert_eq!(foreign["message"], missing["message"]);
    let (_, welcome) = f.chat(&[], Some(&teammate), &mine).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
}

async fn sign_in_lasts_until_sign_out(postgres: bool) {
    let Some(f) = start(postgres).await else {
        eprintln!("CHATPAY_TEST_POSTGRES=skip: skipped on PostgreSQL");
        return;
    };
    let link = f
        .server
        .signin_url
        .clone()
        .expect("a first run prints a link");
    let code = link.rsplit_once("#signin=").unwrap().1.to_owned();
    let origin = f.origin();
    let owner = |code: &str, email: &str, password: &str| json!({ "code": code, "email": email, "password": password });
    // From another site: refused, and the code is not used up.
    let res = f
        .call(
            "POST",
            "/v1/session/owner",
            &[("origin", "https://evil.example")],
            Some(owner(&code, "maya@example.com", "a long enough password")),
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert_eq!(res.json().unwrap()["code"], "cross_site");
    // A short password is named, and the code still works.
    let res = f
        .call(
            "POST",
            "/v1/session/owner",
            &[("origin", &origin)],
            Some(owner(&code, "maya@example.com", "short")),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text());
    assert!(res.json().unwrap()["fields"]["password"].is_string());
    let res = f
        .call(
            "POST",
            "/v1/session/owner",
            &[("origin", &origin)],
            Some(owner(&code, "Maya@Example.com", "a long enough password")),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let first_tab = session_cookie(&res);
    assert_eq!(res.json().unwrap()["email"], "maya@example.com");
    let again = f
        .call(
            "POST",
            "/v1/session/owner",
            &[("origin", &origin)],
            Some(owner(&code, "eve@example.com", "a long enough password")),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text());

    // The cookie works for every request (every tab shares it), and renews itself.
    let me = f.page("GET", "/v1/session", &first_tab, None).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json().unwrap()["kind"], "session");
    assert!(me.header("set-cookie").is_some(), "renewed");
    let made = f
        .page(
            "POST",
            "/v1/projects",
            &first_tab,
            Some(json!({ "name": "shop", "backend": true })),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text());
    let project = made.json().unwrap()["id"].as_str().unwrap().to_owned();
    // A write with the cookie but from another site (or none) is refused.
    let cookie = format!("chatpay_session={first_tab}");
    for origin in [Some("https://evil.example"), None] {
        let mut headers = vec![("cookie", cookie.as_str())];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let res = f
            .call(
                "POST",
                "/v1/projects",
                &headers,
                Some(json!({ "name": "x", "backend": true })),
            )
            .await;
        assert_eq!(res.status, 403, "{origin:?}: {}", res.text());
    }
    // The chat takes the cookie from the page's own origin only.
    let host = f.url.strip_prefix("http://").unwrap().to_owned();
    let page_headers = [("cookie", cookie.as_str()), ("origin", origin.as_str())];
    let (mut page_ws, welcome) = f.chat(&page_headers, None, &project).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let (_, refused) = f
        .chat(
            &[
                ("cookie", cookie.as_str()),
                ("origin", "https://evil.example"),
            ],
            None,
            &project,
        )
        .await;
    assert_eq!(refused["code"], "unauthorized", "{refused}");
    assert!(!host.is_empty());

    // Email and password: the same answer for a wrong email and a wrong password.
    let sign_in = |email: &str, password: &str| json!({ "email": email, "password": password });
    let wrong_email = f
        .call(
            "POST",
            "/v1/session",
            &[("origin", &origin)],
            Some(sign_in("nobody@example.com", "a long enough password")),
        )
        .await;
    let wrong_password = f
        .call(
            "POST",
            "/v1/session",
            &[("origin", &origin)],
            Some(sign_in("maya@example.com", "not the password")),
        )
        .await;
    assert_eq!(wrong_email.status, 401);
    assert_eq!(wrong_email.body, wrong_password.body);
    let second = f
        .call(
            "POST",
            "/v1/session",
            &[("origin", &origin)],
            Some(sign_in("maya@example.com", "a long enough password")),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.text());
    let second = session_cookie(&second);
    let listed = f.page("GET", "/v1/projects", &second, None).await;
    assert_eq!(listed.json().unwrap()["data"][0]["id"], project.as_str());

    // Sign out ends the session on the server: its chat closes, its next request is refused;
    // the other session goes on.
    let out = f.page("DELETE", "/v1/session", &first_tab, None).await;
    assert_eq!(out.status, 204, "{}", out.text());
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(closed(&mut page_ws).await, Some(1008));
    let after = f.page("GET", "/v1/projects", &first_tab, None).await;
    assert_eq!(after.status, 401, "{}", after.text());
    let other = f.page("GET", "/v1/projects", &second, None).await;
    assert_eq!(other.status, 200);

    // Too many attempts: rate-limited.
    let mut limited = false;
    for _ in 0..8 {
        let res = f
            .call(
                "POST",
                "/v1/session",
                &[("origin", &origin)],
                Some(sign_in("maya@example.com", "still not the password")),
            )
            .await;
        limited |= res.status == 429;
    }
    assert!(limited, "a burst of wrong passwords is slowed down");
    let _ = &f.database_url;
}

async fn tokens_are_managed_and_revoked_at_once(postgres: bool) {
    let Some(f) = start(postgres).await else {
        eprintln!("CHATPAY_TEST_POSTGRES=skip: skipped on PostgreSQL");
        return;
    };
    let store = chatpay_store::connect(&f.database_url).await.unwrap();
    let admin = chatpay_server::auth::create_token(&*store, "admin")
        .await
        .unwrap();
    drop(store);
    let made = f
        .bearer("POST", "/v1/tokens", &admin, Some(json!({ "name": "ci" })))
        .await;
    assert_eq!(made.status, 201, "{}", made.text());
    let made = made.json().unwrap();
    let (id, ci) = (
        made["id"].as_str().unwrap().to_owned(),
        made["token"].as_str().unwrap().to_owned(),
    );
    let project = f.new_project(&ci, "shop").await;
    let list = f.bearer("GET", "/v1/tokens", &admin, None).await;
    let list = list.json().unwrap();
    let row = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["name"], "ci");
    assert!(row["last_used_at"].is_string(), "{row}");
    assert!(row.get("token").is_none(), "the secret is shown once");

    let (mut ws, welcome) = f.chat(&[], Some(&ci), &project).await;
    assert_eq!(welcome["type"], "welcome");
    let revoked = f
        .bearer("DELETE", &format!("/v1/tokens/{id}"), &admin, None)
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text());
    assert_eq!(closed(&mut ws).await, Some(1008), "its open chat closes");
    let refused = f.bearer("GET", "/v1/projects", &ci, None).await;
    assert_eq!(refused.status, 401);
    let twice = f
        .bearer("DELETE", &format!("/v1/tokens/{id}"), &admin, None)
        .await;
    assert_eq!(twice.status, 404);
}

async fn a_platform_acts_for_its_builders(postgres: bool) {
    let Some(f) = start(postgres).await else {
        eprintln!("CHATPAY_TEST_POSTGRES=skip: skipped on PostgreSQL");
        return;
    };
    let wrong = f
        .bearer(
            "POST",
            "/v1/platform/workspaces",
            "cpp_wrong",
            Some(json!({ "name": "Ana" })),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let ws = f
        .bearer(
            "POST",
            "/v1/platform/workspaces",
            PLATFORM_KEY,
            Some(json!({ "name": "Ana's apps" })),
        )
        .await;
    assert_eq!(ws.status, 201, "{}", ws.text());
    let workspace = ws.json().unwrap()["id"].as_str().unwrap().to_owned();
    let mint = |project: Option<&str>, seconds: i64| {
        let mut body = json!({ "workspace": workspace, "expires_in": seconds });
        if let Some(p) = project {
            body["project"] = json!(p);
        }
        body
    };
    let res = f
        .bearer(
            "POST",
            "/v1/platform/tokens",
            PLATFORM_KEY,
            Some(mint(None, 600)),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let builder = res.json().unwrap()["token"].as_str().unwrap().to_owned();
    assert!(builder.starts_with("cpt_"));
    let project = f.new_project(&builder, "Ana's shop").await;
    let other = f.new_project(&builder, "Ana's blog").await;
    let res = f
        .bearer(
            "POST",
            "/v1/platform/tokens",
            PLATFORM_KEY,
            Some(mint(Some(&project), 60)),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let scoped = res.json().unwrap()["token"].as_str().unwrap().to_owned();
    // The platform's front end, on its own origin, opens the chat with it.
    let (_, welcome) = f
        .chat(
            &[("origin", "https://builder.example")],
            Some(&scoped),
            &project,
        )
        .await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    // Not another project, not the project list beyond its own, not tokens.
    let (_, refused) = f.chat(&[], Some(&scoped), &other).await;
    assert_eq!(refused["code"], "unauthorized", "{refused}");
    let res = f
        .bearer("GET", &format!("/v1/projects/{other}"), &scoped, None)
        .await;
    assert_eq!(res.status, 404);
    let res = f.bearer("GET", "/v1/projects", &scoped, None).await;
    assert_eq!(res.json().unwrap()["data"].as_array().unwrap().len(), 1);
    let res = f.bearer("GET", "/v1/tokens", &scoped, None).await;
    assert_eq!(res.status, 403);
    // Another workspace's project cannot be minted for.
    let res = f
        .bearer(
            "POST",
            "/v1/platform/workspaces",
            PLATFORM_KEY,
            Some(json!({ "name": "Bo" })),
        )
        .await;
    let bo = res.json().unwrap()["id"].as_str().unwrap().to_owned();
    let res = f
        .bearer(
            "POST",
            "/v1/platform/tokens",
            PLATFORM_KEY,
            Some(json!({ "workspace": bo, "project": project })),
        )
        .await;
    assert_eq!(res.status, 404, "{}", res.text());
    // Expiry: an hour at most; an expired token is refused (made to expire in the database).
    let res = f
        .bearer(
            "POST",
            "/v1/platform/tokens",
            PLATFORM_KEY,
            Some(mint(None, 7200)),
        )
        .await;
    assert_eq!(res.status, 422);
    let store = chatpay_store::connect(&f.database_url).await.unwrap();
    let hash = chatpay_server::auth::hash(&scoped);
    let t = store.token_by_hash(&hash).await.unwrap().unwrap();
    assert!(t.expires_at.unwrap() <= chatpay_core::domain::now_millis() + 61_000);
    expire(&f.database_url, &hash).await;
    let res = f
        .bearer("GET", &format!("/v1/projects/{project}"), &scoped, None)
        .await;
    assert_eq!(res.status, 401, "expired: {}", res.text());
    let (_, refused) = f.chat(&[], Some(&scoped), &project).await;
    assert_eq!(refused["code"], "unauthorized");
}

/// A teammate's invite: made by a person signed in (not a token), it lets one person create
/// their sign-in in the same workspace, once, until it expires.
async fn an_invite_lets_one_teammate_in(postgres: bool) {
    let Some(f) = start(postgres).await else {
        eprintln!("CHATPAY_TEST_POSTGRES=skip: skipped on PostgreSQL");
        return;
    };
    let origin = f.origin();
    let link = f
        .server
        .signin_url
        .clone()
        .expect("a first run prints a link");
    let code = link.rsplit_once("#signin=").unwrap().1.to_owned();
    let res = f
        .call(
            "POST",
            "/v1/session/owner",
            &[("origin", &origin)],
            Some(json!({ "code": code, "email": "maya@example.com", "password": "a long enough password" })),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let owner = session_cookie(&res);
    let project = f
        .page(
            "POST",
            "/v1/projects",
            &owner,
            Some(json!({ "name": "shop", "backend": true })),
        )
        .await;
    assert_eq!(project.status, 201, "{}", project.text());
    let project = project.json().unwrap()["id"].as_str().unwrap().to_owned();

    // A token cannot invite; a person can, from the page.
    let store = chatpay_store::connect(&f.database_url).await.unwrap();
    let token = chatpay_server::auth::create_token(&*store, "ci")
        .await
        .unwrap();
    drop(store);
    let res = f.bearer("POST", "/v1/invites", &token, None).await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert_eq!(res.json().unwrap()["code"], "people_only");
    let code = invite(&f, &owner).await;
    let res = join(&f, &code, "ana@example.com", "https://evil.example").await;
    assert_eq!(res.status, 403, "from another site: {}", res.text());
    let res = join(&f, &code, "maya@example.com", &origin).await;
    assert_eq!(res.status, 409, "a taken email: {}", res.text());
    assert_eq!(res.json().unwrap()["code"], "email_taken");
    // The teammate joins (the link was not used up by the refusals) and sees the workspace.
    let res = join(&f, &code, "ana@example.com", &origin).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let ana = session_cookie(&res);
    let seen = f.page("GET", "/v1/projects", &ana, None).await;
    assert!(seen.text().contains(&project), "{}", seen.text());
    let signed_in = f
        .call(
            "POST",
            "/v1/session",
            &[("origin", &origin)],
            Some(json!({ "email": "ana@example.com", "password": "another long password" })),
        )
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text());
    // Once only.
    let res = join(&f, &code, "eve@example.com", &origin).await;
    assert_eq!(res.status, 401, "used: {}", res.text());
    // Not after it expires.
    let late = invite(&f, &ana).await;
    let q = "UPDATE invites SET expires_at = 1 WHERE used_at IS NULL";
    if f.database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(&f.database_url)
            .await
            .unwrap();
        sqlx::raw_sql(q).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&f.database_url).await.unwrap();
        sqlx::raw_sql(q).execute(&mut c).await.unwrap();
    }
    let res = join(&f, &late, "eve@example.com", &origin).await;
    assert_eq!(res.status, 401, "expired: {}", res.text());
}

/// A new invite link's code, made from the page with `cookie`.
async fn invite(f: &Fixture, cookie: &str) -> String {
    let res = f.page("POST", "/v1/invites", cookie, None).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let url = res.json().unwrap()["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/#invite=cpi_", f.origin())),
        "{url}"
    );
    url.rsplit_once("#invite=").unwrap().1.to_owned()
}

/// Creates a sign-in with an invite's code, from `origin`.
async fn join(f: &Fixture, code: &str, email: &str, origin: &str) -> Response {
    f.call(
        "POST",
        "/v1/session/invite",
        &[("origin", origin)],
        Some(json!({ "code": code, "email": email, "password": "another long password" })),
    )
    .await
}

/// Moves a token's expiry into the past, as time would.
async fn expire(database_url: &str, hash: &str) {
    let q = format!("UPDATE tokens SET expires_at = 1 WHERE secret_hash = '{hash}'");
    if database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(q))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(q))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(false).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(true).await;
            }
        }
    };
}

both!(workspaces_keep_their_projects);
both!(sign_in_lasts_until_sign_out);
both!(tokens_are_managed_and_revoked_at_once);
both!(a_platform_acts_for_its_builders);
both!(an_invite_lets_one_teammate_in);

/// Both sides of the conversation in every tab: a person's `say` is stored and echoed as a
/// numbered `said` frame (with the say's id) to every client, and replayed on resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_say_is_echoed_to_every_tab_and_replayed() {
    let f = start(false).await.unwrap();
    let store = chatpay_store::connect(&f.database_url).await.unwrap();
    let token = chatpay_server::auth::create_token(&*store, "t")
        .await
        .unwrap();
    drop(store);
    let project = f.new_project(&token, "shop").await;
    let (mut one, _) = f.chat(&[], Some(&token), &project).await;
    let (mut two, _) = f.chat(&[], Some(&token), &project).await;
    let say = json!({ "type": "say", "id": "u1", "text": "what is test mode?" });
    one.send(Message::Text(say.to_string().into()))
        .await
        .unwrap();
    for ws in [&mut one, &mut two] {
        let said = next_json(ws).await;
        assert_eq!(
            said,
            json!({ "type": "said", "seq": 1, "reply_to": "u1", "text": "what is test mode?" })
        );
        let answer = next_json(ws).await;
        assert_eq!(answer["reply_to"], "u1");
        assert_eq!(answer["seq"], 2);
    }
    // A new tab (or a reload) replays both sides.
    let (mut three, welcome) = f.chat(&[], Some(&token), &project).await;
    assert!(welcome["last_seq"].as_i64().unwrap() >= 2);
    let first = next_json(&mut three).await;
    assert_eq!(
        (first["type"].as_str(), first["text"].as_str()),
        (Some("said"), Some("what is test mode?"))
    );
}
