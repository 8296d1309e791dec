//! `kill -9` in the middle of traffic loses nothing: the real `chatpay` binary serves many
//! conversations at once, is killed with SIGKILL, restarted on the same database, and every frame
//! a client received is still stored, with the same `seq` and bytes, with no gaps; retrying the
//! frames that were in flight never answers one twice. The same for webhooks: every event the
//! server acknowledged before the kill is in the ledger afterwards, once.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_chatpay");

const WEBHOOK_SECRET: &str = "whsec_crash_test";

async fn serve(db: &str, listen: &str) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", listen, "--database-url", db])
        .env("CHATPAY_LOG", "info")
        .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
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
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn join(addr: &str, token: &str, project: &str, resume: i64) -> (Ws, i64) {
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/v1/chat"), None, true)
            .await
            .unwrap();
    let hello =
        json!({ "type": "hello", "token": token, "project": project, "resume_after": resume });
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    let welcome = next(&mut ws).await.expect("welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome["last_seq"].as_i64().unwrap())
}

async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .ok()??
        {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_traffic_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let out = Command::new(BIN)
        .args(["token", "create", "--name", "crash", "--database-url", &db])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let (mut server, addr) = serve(&db, "127.0.0.1:0").await;
    let http = chatpay_http_client::HttpClient::default();
    let auth = format!("Bearer {token}");
    let mut projects = Vec::new();
    for i in 0..8 {
        let res = http
            .post_json(
                &format!("http://{addr}/v1/projects"),
                &[("authorization", &auth)],
                &json!({ "name": format!("p{i}"), "backend": true }),
            )
            .await
            .unwrap();
        assert_eq!(res.status, 201, "{}", res.text());
        projects.push(res.json().unwrap()["id"].as_str().unwrap().to_owned());
    }

    // Each client sends turns one after another and keeps every frame it receives.
    let (kill_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let received_total = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let mut clients = Vec::new();
    // Every client is in before the traffic starts: a client still waiting for its welcome
    // when the others' traffic triggers the kill would fail for the wrong reason.
    let mut joined = Vec::new();
    for project in &projects {
        joined.push(join(&addr, &token, project, 0).await.0);
    }
    for ((i, project), mut ws) in projects.iter().cloned().enumerate().zip(joined) {
        let mut killed = kill_tx.subscribe();
        let counter = received_total.clone();
        let enough = enough.clone();
        clients.push(tokio::spawn(async move {
            let mut received: BTreeMap<i64, Value> = BTreeMap::new();
            let mut sent: Vec<String> = Vec::new();
            for n in 0.. {
                let id = format!("c{i}-{n}");
                let text = if n % 2 == 0 {
                    "I want to add payments"
                } else {
                    "is this test mode?"
                };
                let frame = json!({ "type": "say", "id": id, "text": text });
                if ws
                    .send(Message::Text(frame.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
                sent.push(id.clone());
                // Wait for this turn's frames (or the crash).
                let mut got_reply = false;
                while !got_reply {
                    tokio::select! {
                        f = next(&mut ws) => match f {
                            Some(f) => {
                                if f["reply_to"] == id.as_str() {
                                    got_reply = true;
                                }
                                received.insert(f["seq"].as_i64().unwrap(), f);
                                if counter.fetch_add(1, Ordering::Relaxed) + 1 == 120 {
                                    enough.notify_one();
                                }
                            }
                            None => return (project, received, sent),
                        },
                        _ = killed.recv() => return (project, received, sent),
                    }
                }
            }
            (project, received, sent)
        }));
    }
    // Let traffic build up, then SIGKILL (no shutdown hook runs).
    let _ = tokio::time::timeout(Duration::from_secs(60), enough.notified()).await;
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let _ = kill_tx.send(());
    let mut results = Vec::new();
    for c in clients {
        results.push(c.await.unwrap());
    }
    let total: usize = results.iter().map(|(_, r, _)| r.len()).sum();
    assert!(
        total > 16,
        "the clients exchanged too little before the kill ({total} frames)"
    );

    let (_server, addr) = serve(&db, "127.0.0.1:0").await;
    for (project, received, sent) in results {
        // Everything stored, from the start: contiguous seqs, and what was received is
        // exactly what is stored.
        let (mut ws, last) = join(&addr, &token, &project, 0).await;
        let mut stored: HashMap<i64, Value> = HashMap::new();
        for _ in 0..last {
            let f = next(&mut ws).await.expect("a stored frame");
            stored.insert(f["seq"].as_i64().unwrap(), f);
        }
        assert_eq!(stored.len() as i64, last, "seqs 1..={last} without gaps");
        for (seq, f) in &received {
            assert_eq!(
                stored.get(seq),
                Some(f),
                "frame {seq} of {project} changed or vanished"
            );
        }
        // Retrying every id sent: the answered ones come back as they were (same seq), the one
        // in flight is answered now.
        for id in &sent {
            let frame = json!({ "type": "say", "id": id, "text": "I want to add payments" });
            ws.send(Message::Text(frame.to_string().into()))
                .await
                .unwrap();
            loop {
                let f = next(&mut ws).await.expect("an answer to the retry");
                if f["reply_to"] == id.as_str() {
                    let seq = f["seq"].as_i64().unwrap();
                    if let Some(before) = stored.get(&seq) {
                        assert_eq!(before, &f, "a retry of {id} was answered differently");
                    }
                    break;
                }
            }
        }
        // Read it all back: each id's frames form one contiguous block, so none was answered
        // twice.
        let (mut ws, last) = join(&addr, &token, &project, 0).await;
        let mut blocks: HashMap<String, Vec<i64>> = HashMap::new();
        let mut previous: Option<String> = None;
        for _ in 0..last {
            let f = next(&mut ws).await.expect("a stored frame");
            let r = f["reply_to"].as_str().map(str::to_owned);
            if let Some(r) = &r
                && previous.as_ref() != Some(r)
            {
                blocks
                    .entry(r.clone())
                    .or_default()
                    .push(f["seq"].as_i64().unwrap());
            }
            previous = r;
        }
        for id in &sent {
            assert_eq!(
                blocks.get(id).map(Vec::len),
                Some(1),
                "{id} answered {:?} times",
                blocks.get(id)
            );
        }
    }
}

/// A signed event chatpay records and does not act on.
fn signed_event(id: &str) -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": "customer.created",
        "data": { "object": { "id": "cus_1", "object": "customer" } },
    })
    .to_string();
    let header = chatpay_stripe::webhook::sign(body.as_bytes(), WEBHOOK_SECRET, now);
    (header, body)
}

/// Webhooks share the writer's group commits; an acknowledged one is on disk. Many senders
/// deliver distinct events at once, the server is SIGKILLed among them, and every event that
/// was answered 2xx is in the ledger afterwards; delivered again, each is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_webhooks_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hooks.db").display());
    let (mut server, addr) = serve(&db, "127.0.0.1:0").await;
    let hook = format!("http://{addr}/v1/webhooks/stripe");
    let acked_total = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let mut senders = Vec::new();
    for s in 0..16 {
        let (hook, acked_total, enough) = (hook.clone(), acked_total.clone(), enough.clone());
        senders.push(tokio::spawn(async move {
            let http = chatpay_http_client::HttpClient::new(Duration::from_secs(10));
            let mut acked = Vec::new();
            let mut sent = Vec::new();
            for n in 0.. {
                let id = format!("evt_crash_{s}_{n}");
                let (header, body) = signed_event(&id);
                sent.push(id.clone());
                let headers = [
                    ("stripe-signature", header.as_str()),
                    ("content-type", "application/json"),
                ];
                match http.send("POST", &hook, &headers, body).await {
                    Ok(res) if res.status == 200 => {
                        acked.push(id);
                        if acked_total.fetch_add(1, Ordering::Relaxed) + 1 == 400 {
                            enough.notify_one();
                        }
                    }
                    Ok(res) => panic!("{id} was answered {}: {}", res.status, res.text()),
                    // The kill: connection refused or reset.
                    Err(_) => break,
                }
            }
            (acked, sent)
        }));
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), enough.notified()).await;
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let mut acked = Vec::new();
    let mut sent = Vec::new();
    for s in senders {
        let (a, t) = s.await.unwrap();
        acked.extend(a);
        sent.extend(t);
    }
    assert!(
        acked.len() >= 100,
        "too little before the kill ({} acknowledged)",
        acked.len()
    );

    let store = chatpay_store::connect(&db).await.unwrap();
    for id in &acked {
        assert!(
            store.event(id).await.unwrap().is_some(),
            "{id} was acknowledged but is not in the ledger"
        );
    }
    drop(store);
    // Stripe delivers again what it never heard answered (and some of what it did): the
    // acknowledged ones are duplicates, the rest are recorded now.
    let (_server, addr) = serve(&db, "127.0.0.1:0").await;
    let hook = format!("http://{addr}/v1/webhooks/stripe");
    let http = chatpay_http_client::HttpClient::default();
    for id in acked.iter().take(50).chain(sent.iter().rev().take(50)) {
        let (header, body) = signed_event(id);
        let headers = [
            ("stripe-signature", header.as_str()),
            ("content-type", "application/json"),
        ];
        let res = http.send("POST", &hook, &headers, body).await.unwrap();
        assert_eq!(res.status, 200, "{}", res.text());
        if acked.contains(id) {
            assert_eq!(
                res.json().unwrap()["duplicate"],
                true,
                "{id}: {}",
                res.text()
            );
        }
    }
}
