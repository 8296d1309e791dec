//! The sandbox across a crash: what it answered is in its state file before the answer leaves
//! (a payment a customer saw succeed survives `kill -9` of the standalone process), and with
//! `keep_address` it comes back on the port it had, so the checkout links it gave out still
//! work.
//!
//! Real HTTP over loopback, every server on port 0; no sleeps: the child process's address is
//! read from its first line of output, and each step waits on an answer.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use stripe_sandbox::{Sandbox, SandboxConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const KEY: &str = "sk_test_chatpay_sandbox";
const DEADLINE: Duration = Duration::from_secs(30);

/// One HTTP/1.1 request on its own connection; the status and the body as JSON (or text).
async fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = tokio::time::timeout(DEADLINE, TcpStream::connect(&host))
        .await
        .expect("connects before the deadline")
        .expect("connects");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut raw))
        .await
        .expect("answers before the deadline")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("a complete answer to {method} {path}: {text:?}"));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line for {method} {path}: {head:?}"));
    // The sandbox's answers are small enough to come unchunked, or in one chunk.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        rest.split_once("\r\n")
            .map(|(_, b)| b.rsplit_once("\r\n0\r\n").map_or(b, |(b, _)| b))
            .unwrap_or("")
            .trim_end_matches("\r\n")
            .to_owned()
    } else {
        rest.to_owned()
    };
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, json)
}

async fn api(base: &str, method: &str, path: &str, account: Option<&str>, form: &str) -> Value {
    let auth = format!("Bearer {KEY}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    if let Some(a) = account {
        headers.push(("stripe-account", a));
    }
    let (status, body) = http(base, method, path, &headers, form).await;
    assert_eq!(status, 200, "{method} {path}: {body}");
    body
}

/// The standalone binary on port 0 with a state file; its base URL from its first line.
async fn standalone(state: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stripe-sandbox"))
        .args(["--listen", "127.0.0.1:0", "--state-file"])
        .arg(state)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the sandbox binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("Stripe sandbox at ") {
                return url.trim().to_owned();
            }
        }
        panic!("the sandbox exited before saying where it listens")
    })
    .await
    .expect("the sandbox says where it listens before the deadline");
    // Keep reading what it prints, as a terminal would.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

#[tokio::test]
async fn payments_answered_as_succeeded_survive_kill_9_of_the_standalone_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sandbox.json");
    let (mut child, base) = standalone(&state).await;
    let account = api(&base, "POST", "/v1/accounts", None, "country=US").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let price = api(
        &base,
        "POST",
        "/v1/prices",
        Some(&account),
        "currency=usd&unit_amount=2500&product_data[name]=Class",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Several payments, the process killed right after the last answer: each one answered as
    // succeeded must be there after the restart.
    let mut paid = Vec::new();
    for _ in 0..5 {
        let session = api(
            &base,
            "POST",
            "/v1/checkout/sessions",
            Some(&account),
            &format!(
                "mode=payment&success_url=https%3A%2F%2Fshop.example%2Fok&\
                 line_items[0][price]={price}&line_items[0][quantity]=1"
            ),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, result) = http(
            &base,
            "POST",
            &format!("/__sandbox/checkout/{session}/pay"),
            &[("content-type", "application/json")],
            r#"{"card": "4242 4242 4242 4242", "email": "ana@example.com"}"#,
        )
        .await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["outcome"], "succeeded");
        paid.push(session);
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let (mut child, base) = standalone(&state).await;
    for session in &paid {
        let s = api(
            &base,
            "GET",
            &format!("/v1/checkout/sessions/{session}"),
            Some(&account),
            "",
        )
        .await;
        assert_eq!(s["status"], "complete", "{session}");
        assert_eq!(s["payment_status"], "paid", "{session}");
        let pi = s["payment_intent"].as_str().unwrap();
        let intent = api(
            &base,
            "GET",
            &format!("/v1/payment_intents/{pi}"),
            Some(&account),
            "",
        )
        .await;
        assert_eq!(intent["status"], "succeeded");
        assert_eq!(intent["amount_received"], 2500);
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn an_answer_leaves_only_once_the_state_file_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let sandbox = Sandbox::start(SandboxConfig {
        state_file: Some(state.clone()),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let base = sandbox.base_url();
    for name in ["Tea", "Coffee", "Cocoa"] {
        let product = api(&base, "POST", "/v1/products", None, &format!("name={name}")).await;
        // Read straight after the answer, from disk.
        let on_disk = std::fs::read_to_string(&state).unwrap();
        assert!(
            on_disk.contains(product["id"].as_str().unwrap()),
            "{name} is on disk when it is answered"
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn with_keep_address_it_comes_back_on_the_port_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        state_file: Some(dir.path().join("state.json")),
        keep_address: true,
        ..SandboxConfig::default()
    };
    let first = Sandbox::start(config.clone()).await.unwrap();
    let addr: SocketAddr = first.addr();
    assert_ne!(addr.port(), 0);
    first.shutdown().await;
    let second = Sandbox::start(config.clone()).await.unwrap();
    assert_eq!(second.addr(), addr, "the same address after a restart");
    // Taken meanwhile: another port, and the sandbox still starts.
    let squatter = Sandbox::start(config.clone()).await.unwrap();
    assert_ne!(squatter.addr(), addr);
    squatter.shutdown().await;
    second.shutdown().await;
}
