//! A revoked credential ends an open chat whoever revoked it: the real binary, on loopback.
//!
//! `chatpay token revoke` and `chatpay user reset-password` are processes of their own that only
//! write the database; a server learns of what they did from PostgreSQL's notification, or from
//! its sweep of revoked credentials (SQLite, or a notification that was lost). Here:
//!
//! - a chat open with an API token closes (1008, "the token was revoked") when
//!   `chatpay token revoke` runs as another process;
//! - a chat open from the page with the session cookie closes (1008, "signed out: …") when
//!   `chatpay user reset-password` ends that person's sessions;
//! - on PostgreSQL, with two `serve` processes on one database: a token revoked through one
//!   instance's API closes the chat open with it on the other.
//!
//! On SQLite always, and on PostgreSQL when `CHATPAY_TEST_POSTGRES` names a server. No sleeps:
//! each wait is for the server's Close, with a deadline that only turns a hang into a failure.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use chatpay_http_client::HttpClient;

const BIN: &str = env!("CARGO_BIN_EXE_chatpay");
/// How long a wait may last before the test fails (a hang, not a measurement).
const DEADLINE: Duration = Duration::from_secs(60);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `chatpay serve` process (killed when dropped), with its address and, on a first run, the
/// sign-in link it printed.
struct Server {
    _child: Child,
    url: String,
    signin: Option<String>,
    http: HttpClient,
}

impl Server {
    async fn start(db: &str, log: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", db])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (url, signin) = tokio::time::timeout(DEADLINE, async {
            // "chatpay is running at URL/", then the first-run link or how to sign in.
            let mut url = None;
            while let Some(line) = lines.next_line().await.unwrap() {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("chatpay is running at ") {
                    url = Some(rest.trim_end_matches('/').to_owned());
                } else if line.starts_with("http") && line.contains("#signin=") {
                    return (url.unwrap(), Some(line.to_owned()));
                } else if line.starts_with("Sign in with your email") {
                    return (url.unwrap(), None);
                }
            }
            panic!(
                "the server exited before it was running:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        })
        .await
        .expect("the server starts");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            _child: child,
            url,
            signin,
            http: HttpClient::new(Duration::from_secs(30)),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let res = match body {
            Some(b) => self.http.send_json(method, &url, headers, &b).await,
            None => self.http.send(method, &url, headers, Vec::new()).await,
        }
        .unwrap();
        (res.status, res.json().unwrap_or(Value::Null))
    }

    async fn new_project(&self, token: &str) -> String {
        let auth = format!("Bearer {token}");
        let (status, body) = self
            .call(
                "POST",
                "/v1/projects",
                &[("authorization", &auth)],
                Some(json!({ "name": "shop", "backend": true })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Opens the chat with these upgrade headers, says `hello`, and checks the welcome.
    async fn chat(&self, headers: &[(&str, &str)], token: Option<&str>, project: &str) -> Ws {
        let ws_url = format!("{}/v1/chat", self.url.replacen("http://", "ws://", 1));
        let mut req = ws_url.into_client_request().unwrap();
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
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        ws
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Waits for the server to close the socket: its close code and reason.
async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return (u16::from(f.code), f.reason.to_string());
            }
            Ok(Some(Ok(Message::Close(None)))) => panic!("a Close without a code"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("the connection ended without a Close: {other:?}"),
        }
    }
}

/// Runs `chatpay ARGS` on the database as a process of its own; its standard error.
async fn chatpay(db: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--database-url", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chatpay {args:?} failed: {err}");
    format!("{}{err}", String::from_utf8_lossy(&out.stdout))
}

/// `chatpay token create --name NAME`: the secret and the token's id.
async fn create_token(db: &str, name: &str) -> (String, String) {
    let said = chatpay(db, &["token", "create", "--name", name], None).await;
    let secret = said
        .split_whitespace()
        .find(|w| w.starts_with("cpk_"))
        .unwrap_or_else(|| panic!("no token in {said:?}"))
        .to_owned();
    let id = said
        .split_whitespace()
        .find(|w| w.starts_with("tok_"))
        .unwrap_or_else(|| panic!("no token id in {said:?}"))
        .to_owned();
    (secret, id)
}

/// The owner's sign-in from the first-run link: the session cookie's value.
async fn owner_session(server: &Server, email: &str) -> String {
    let link = server.signin.as_deref().expect("a first run prints a link");
    let code = link.rsplit_once("#signin=").unwrap().1;
    let res = server
        .http
        .send_json(
            "POST",
            &format!("{}/v1/session/owner", server.url),
            &[("origin", &server.url)],
            &json!({ "code": code, "email": email, "password": "a long enough password" }),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", res.text());
    let set = res.header("set-cookie").expect("a Set-Cookie");
    set.strip_prefix("chatpay_session=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn revocation_from_the_command_line_closes_open_chats(db: &str, dir: &Path) {
    let server = Server::start(db, &dir.join("serve.log")).await;
    let cookie = owner_session(&server, "maya@example.com").await;
    let (token, id) = create_token(db, "ci").await;
    let project = server.new_project(&token).await;

    // An API token's chat: `chatpay token revoke` is another process.
    let mut by_token = server.chat(&[], Some(&token), &project).await;
    // The page's chat: the session cookie, from the page's own origin.
    let cookie_header = format!("chatpay_session={cookie}");
    let mut by_cookie = server
        .chat(
            &[("cookie", &cookie_header), ("origin", &server.url)],
            None,
            &project,
        )
        .await;

    let said = chatpay(db, &["token", "revoke", &id], None).await;
    assert!(said.contains(&format!("revoked {id}")), "{said}");
    assert_eq!(
        closed(&mut by_token).await,
        (1008, "the token was revoked".to_owned()),
        "the chat open with the revoked token closes"
    );
    let auth = format!("Bearer {token}");
    let (status, _) = server
        .call("GET", "/v1/projects", &[("authorization", &auth)], None)
        .await;
    assert_eq!(status, 401, "and the API refuses it");

    // A new password ends every session of the person, and the page's open chat with it.
    let said = chatpay(
        db,
        &["user", "reset-password", "maya@example.com"],
        Some("another long password\n"),
    )
    .await;
    assert!(said.contains("1 session(s) ended"), "{said}");
    assert_eq!(
        closed(&mut by_cookie).await,
        (1008, "signed out: the session was ended".to_owned()),
        "the page's chat closes when its session ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revocation_from_the_command_line_closes_open_chats() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    revocation_from_the_command_line_closes_open_chats(&db, dir.path()).await;
}

async fn fresh_postgres() -> Option<String> {
    use sqlx::Connection;
    let admin = chatpay_store::test_postgres().unwrap_or_else(|why| panic!("{why}"))?;
    let name = format!("chatpay_r_{}", chatpay_core::domain::random_hex(6));
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocation_from_the_command_line_closes_open_chats() {
    let Some(db) = fresh_postgres().await else {
        eprintln!("CHATPAY_TEST_POSTGRES=skip: skipped on PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    revocation_from_the_command_line_closes_open_chats(&db, dir.path()).await;
}

/// Two instances on one PostgreSQL: revoked through B's API, the chat open on A closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocation_on_another_instance_closes_open_chats() {
    let Some(db) = fresh_postgres().await else {
        eprintln!("CHATPAY_TEST_POSTGRES=skip: skipped on PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (admin, _) = create_token(&db, "admin").await;
    let a = Server::start(&db, &dir.path().join("a.log")).await;
    let b = Server::start(&db, &dir.path().join("b.log")).await;
    let auth = format!("Bearer {admin}");
    let (status, made) = b
        .call(
            "POST",
            "/v1/tokens",
            &[("authorization", &auth)],
            Some(json!({ "name": "ci" })),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let (token, id) = (
        made["token"].as_str().unwrap().to_owned(),
        made["id"].as_str().unwrap().to_owned(),
    );
    let project = a.new_project(&token).await;
    let mut on_a = a.chat(&[], Some(&token), &project).await;
    let (status, body) = b
        .call(
            "DELETE",
            &format!("/v1/tokens/{id}"),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        closed(&mut on_a).await,
        (1008, "the token was revoked".to_owned()),
        "the chat on the other instance closes"
    );
}
