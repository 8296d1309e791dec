//! Several chatpay processes on one PostgreSQL behave as one service (issue 21). The real
//! binary, on loopback: one Stripe sandbox process and two `chatpay serve` processes, A and B,
//! started by `scripts/multi.sh`, with the sandbox's webhooks delivered to B. In one run, so
//! that the processes start once:
//!
//! - a card made from a webhook that B received reaches a WebSocket client on A;
//! - a turn on A after B changed the conversation is answered (not `internal`), and a card
//!   shown on B is clickable on A;
//! - turns sent concurrently to A and B for one conversation are each answered once, and the
//!   conversation's frames are numbered without gaps or repeats;
//! - a client that read on B resumes on A and gets exactly the frames it missed;
//! - the catalog sync and a webhook sent to both instances at once answer below 500;
//! - `kill -9` of A while Stripe is creating a product A asked for, with no client left: B
//!   claims the write once A's lease lapses and finishes it once;
//! - `kill -9` of A in the middle of a turn: the client resumes on B, retries, and carries on.
//!
//! Needs PostgreSQL (`CHATPAY_TEST_POSTGRES`, set by `scripts/test.sh`); says why and passes
//! when there is none. No sleeps for synchronisation: each wait is for a frame, with a deadline
//! that only turns a hang into a failure.
//!
//! And, without PostgreSQL: a second `serve` on the same SQLite file refuses to start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_chatpay");
/// The secret `scripts/multi.sh` gives the sandbox and the instances.
const WEBHOOK_SECRET: &str = "whsec_chatpay_sandbox";
/// How long a wait may last before the test fails (a hang, not a measurement).
const DEADLINE: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/multi.sh")
}

/// The processes `scripts/multi.sh` started; stopped (by pid, by the script) when dropped.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(db: &str, n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster { dir };
        let status = std::process::Command::new("bash")
            .arg(script())
            .args(["start"])
            .arg(cluster.dir.path())
            .args([db, &n.to_string(), BIN])
            .status()
            .unwrap();
        if !status.success() {
            cluster.dump_logs();
            panic!("scripts/multi.sh start failed");
        }
        cluster
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn addr(&self, i: usize) -> String {
        self.read(&format!("instance-{i}.addr"))
    }

    fn sandbox(&self) -> String {
        self.read("sandbox.addr")
    }

    fn kill_9(&self, i: usize) {
        self.signal(i, "-KILL");
    }

    fn signal(&self, i: usize, signal: &str) {
        let pid = self.read(&format!("instance-{i}.pid"));
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn dump_logs(&self) {
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- {} (last lines)", path.display());
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        let _ = std::process::Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client of the chat that keeps every frame it received.
struct Client {
    ws: Ws,
    frames: BTreeMap<i64, Value>,
    errors: Vec<Value>,
    last_seq: i64,
    /// `last_seq` of the welcome.
    welcome_seq: i64,
}

impl Client {
    async fn join(addr: &str, token: &str, project: &str, resume: i64) -> Client {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
            format!("ws://{addr}/v1/chat"),
            None,
            true,
        )
        .await
        .unwrap();
        let hello =
            json!({ "type": "hello", "token": token, "project": project, "resume_after": resume });
        ws.send(Message::Text(hello.to_string().into()))
            .await
            .unwrap();
        let mut c = Client {
            ws,
            frames: BTreeMap::new(),
            errors: Vec::new(),
            last_seq: resume,
            welcome_seq: 0,
        };
        let welcome = c.next().await.expect("welcome");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c.welcome_seq = welcome["last_seq"].as_i64().unwrap();
        c
    }

    async fn next(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .ok()??
            {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if let Some(seq) = v["seq"].as_i64() {
                        if seq <= self.last_seq {
                            // Re-sent for a retried id: the very frame stored before.
                            if let Some(had) = self.frames.get(&seq) {
                                assert_eq!(had, &v, "seq {seq} came back different");
                            }
                        } else {
                            assert_eq!(seq, self.last_seq + 1, "a gap before {v}");
                            self.frames.insert(seq, v.clone());
                            self.last_seq = seq;
                        }
                    } else if v["type"] == "error" {
                        self.errors.push(v.clone());
                    }
                    return Some(v);
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Reads until a frame matches `want`; fails after [`DEADLINE`] or at an error frame.
    async fn until(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        loop {
            let Some(f) = self.next().await else {
                panic!(
                    "waiting for {what}: the connection ended or went quiet; got {:?}",
                    self.frames.values().collect::<Vec<_>>()
                );
            };
            if f["type"] == "error" {
                panic!("waiting for {what}: error {f}");
            }
            if want(&f) {
                return f;
            }
        }
    }

    /// Reads until every stored frame up to `seq` is here.
    async fn read_to(&mut self, seq: i64) {
        while self.last_seq < seq {
            self.until(&format!("seq {seq}"), |_| true).await;
        }
    }

    async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    /// Says `text` as `id` and waits for its first answer.
    async fn say(&mut self, id: &str, text: &str) -> Value {
        self.send(json!({ "type": "say", "id": id, "text": text }))
            .await;
        self.until(&format!("an answer to {id}"), |f| f["reply_to"] == id)
            .await
    }

    async fn click(&mut self, id: &str, card: &Value, action: &str, values: Value) {
        let frame = json!({ "type": "click", "id": id, "card": card["card"]["id"],
                            "action": action, "values": values });
        self.send(frame).await;
    }

    /// The latest card of `kind` received.
    fn card(&self, kind: &str) -> Value {
        self.frames
            .values()
            .rev()
            .find(|f| f["type"] == "card" && f["card"]["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} card"))
    }
}

fn is_card(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |f| f["type"] == "card" && f["card"]["kind"] == kind
}

async fn fresh_database(admin: &str) -> String {
    use sqlx::Connection;
    let name = format!(
        "chatpay_multi_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn signed_account_event(id: &str, account: &str) -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .cast_signed();
    let body = json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "livemode": false,
        "pending_webhooks": 1,
        "account": account,
        "request": { "id": null, "idempotency_key": null },
        "type": "account.updated",
        "data": { "object": { "id": account, "object": "account" } },
    })
    .to_string();
    let header = chatpay_stripe::webhook::sign(body.as_bytes(), WEBHOOK_SECRET, now);
    (header, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_are_one_service() {
    let admin = match chatpay_store::test_postgres() {
        Ok(Some(url)) => url,
        Ok(None) => {
            eprintln!("skipped: CHATPAY_TEST_POSTGRES=skip");
            return;
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let db = fresh_database(&admin).await;
    let out = Command::new(BIN)
        .args(["token", "create", "--name", "multi", "--database-url", &db])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let cluster = Cluster::start(&db, 2);
    let (a, b, sandbox) = (cluster.addr(0), cluster.addr(1), cluster.sandbox());
    let http = chatpay_http_client::HttpClient::default();
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];

    let res = http
        .post_json(
            &format!("http://{a}/v1/projects"),
            &headers,
            &json!({ "name": "shop", "backend": true }),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", res.text());
    let project = res.json().unwrap()["id"].as_str().unwrap().to_owned();

    // The connect flow, up to Stripe's onboarding link: asked on A, the card A made clicked on
    // B (current in the store, so not `stale_card`), the next card clicked on A.
    let mut on_a = Client::join(&a, &token, &project, 0).await;
    let mut on_b = Client::join(&b, &token, &project, 0).await;
    on_a.say("s1", "I don't have a stripe account").await;
    on_a.until("the register card", is_card("register")).await;
    on_b.until("the register card, pushed to B", is_card("register"))
        .await;
    let card = on_b.card("register");
    on_b.click(
        "c1",
        &card,
        "continue",
        json!({ "legal_name": "Dorothy Vaughan", "country": "US", "email": "dorothy@example.com" }),
    )
    .await;
    on_b.until("the business profile card", is_card("business_profile"))
        .await;
    on_a.until(
        "the business profile card, pushed to A",
        is_card("business_profile"),
    )
    .await;
    let card = on_a.card("business_profile");
    on_a.click(
        "c2",
        &card,
        "create_account",
        json!({ "statement_descriptor": "VAUGHAN DESIGN", "business_type": "individual" }),
    )
    .await;
    let onboarding = on_a
        .until("the onboarding card", is_card("onboarding"))
        .await;
    let link = onboarding["card"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "open")
        .and_then(|x| x["url"].as_str())
        .unwrap()
        .to_owned();

    // Onboarding completed at Stripe: its webhook goes to B, and the card B makes reaches A.
    on_b.read_to(on_a.last_seq).await;
    let res = http
        .post_json(
            &format!("http://{sandbox}/__sandbox/account_links/follow"),
            &[],
            &json!({ "url": link, "outcome": "verified" }),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    let active = on_a
        .until("the account made active from B's webhook", |f| {
            f["type"] == "flow" && f["state"] == "active"
        })
        .await;
    assert!(
        active.get("reply_to").is_none_or(Value::is_null),
        "{active}"
    );
    on_b.read_to(on_a.last_seq).await;

    // A's copy was stale; its next turn is answered, and so is a click on B's card.
    let answer = on_a.say("s2", "what is my account status?").await;
    assert_ne!(answer["type"], "error", "{answer}");
    on_b.read_to(on_a.last_seq).await;

    // Turns for one conversation sent concurrently to A and B: each answered once.
    let turns = 8;
    let side = |mut c: Client, tag: &'static str| async move {
        for n in 0..turns {
            c.say(&format!("{tag}{n}"), "is this test mode?").await;
        }
        c
    };
    let (mut on_a, mut on_b) = tokio::join!(side(on_a, "a"), side(on_b, "b"));
    assert!(on_a.errors.is_empty(), "{:?}", on_a.errors);
    assert!(on_b.errors.is_empty(), "{:?}", on_b.errors);

    // A fresh client on A reads the whole conversation from the store: gapless, each turn once.
    let mut all = Client::join(&a, &token, &project, 0).await;
    let last = all.welcome_seq;
    all.read_to(last).await;
    assert_eq!(
        all.frames.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>()
    );
    let mut per_turn: BTreeMap<String, usize> = BTreeMap::new();
    for f in all.frames.values() {
        if let Some(id) = f["reply_to"].as_str() {
            *per_turn.entry(id.to_owned()).or_default() += 1;
        }
    }
    let counts: BTreeSet<usize> = (0..turns)
        .flat_map(|n| [format!("a{n}"), format!("b{n}")])
        .map(|id| *per_turn.get(&id).unwrap_or(&0))
        .collect();
    assert_eq!(counts.len(), 1, "turns answered unevenly: {per_turn:?}");
    assert!(counts.iter().all(|&c| c > 0), "{per_turn:?}");
    on_a.read_to(last).await;
    on_b.read_to(last).await;

    // Read on B, then resume on A: exactly the frames missed meanwhile.
    let read_on_b = on_b.last_seq;
    drop(on_b);
    on_a.say("s3", "is this test mode?").await;
    let mut resumed = Client::join(&a, &token, &project, read_on_b).await;
    resumed.read_to(resumed.welcome_seq).await;
    assert_eq!(
        resumed.frames.keys().copied().collect::<Vec<_>>(),
        ((read_on_b + 1)..=resumed.welcome_seq).collect::<Vec<_>>()
    );
    assert!(resumed.welcome_seq > read_on_b);

    // The catalog sync asked on both at once, and one webhook delivered to both at once: no
    // 500 from either (the conversation is B's as much as A's).
    let sync = |addr: String| {
        let http = http.clone();
        let auth = auth.clone();
        let project = project.clone();
        async move {
            http.post_json(
                &format!("http://{addr}/v1/projects/{project}/integrations/stripe/catalog/sync"),
                &[("authorization", auth.as_str())],
                &json!({}),
            )
            .await
            .unwrap()
        }
    };
    let (sa, sb) = tokio::join!(sync(a.clone()), sync(b.clone()));
    assert!(sa.status < 500, "sync on A: {} {}", sa.status, sa.text());
    assert!(sb.status < 500, "sync on B: {} {}", sb.status, sb.text());
    let res = http
        .get(
            &format!("http://{a}/v1/projects/{project}/integrations/stripe"),
            &headers,
        )
        .await
        .unwrap();
    let account = res.json().unwrap()["account"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no account: {}", res.text()))
        .to_owned();
    let (header, body) = signed_account_event("evt_multi_1", &account);
    let deliver = |addr: String| {
        let (http, header, body) = (http.clone(), header.clone(), body.clone());
        async move {
            http.send(
                "POST",
                &format!("http://{addr}/v1/webhooks/stripe"),
                &[
                    ("stripe-signature", header.as_str()),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
            .unwrap()
        }
    };
    let (wa, wb) = tokio::join!(deliver(a.clone()), deliver(b.clone()));
    assert!(wa.status < 300, "webhook on A: {} {}", wa.status, wa.text());
    assert!(wb.status < 300, "webhook on B: {} {}", wb.status, wb.text());
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
        let rows: Vec<(Option<i64>,)> =
            sqlx::query_as("SELECT processed_at FROM webhook_events WHERE id = 'evt_multi_1'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(rows.len(), 1, "the event is in the ledger once");
        assert!(rows[0].0.is_some(), "and applied");
    }

    // The listeners' connections are cut (`pg_terminate_backend`): a turn on B still reaches
    // the client on A (the listener reconnects and catches up; the safety poll covers the rest).
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
        let cut: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(!cut.is_empty(), "no listener connection found");
    }
    let mut on_b = Client::join(&b, &token, &project, on_a.last_seq).await;
    on_b.say("t1", "is this test mode?").await;
    on_a.until("B's turn after the listener was cut", |f| {
        f["reply_to"] == "t1"
    })
    .await;
    drop(on_b);

    // A Stripe write in flight on A (Stripe answers late) when A is killed, with no client
    // left on the conversation: B claims the write once A's lease lapses, wakes the
    // conversation, makes the call again with the same key, and stores its answer once.
    on_a.say("p1", "new product: Ceramic mug, €18").await;
    let confirm = on_a
        .until(
            "the product's confirmation card",
            is_card("confirm_product"),
        )
        .await;
    let res = http
        .post_json(
            &format!("http://{sandbox}/__sandbox/faults"),
            &[],
            &json!({ "method": "POST", "path": "/v1/products", "delay_ms": 3000, "count": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    on_a.click("p2", &confirm, "create", json!({})).await;
    let asked = tokio::time::Instant::now();
    loop {
        let armed = http
            .get(&format!("http://{sandbox}/__sandbox/faults"), &[])
            .await
            .unwrap()
            .json()
            .unwrap();
        if armed.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(asked.elapsed() < DEADLINE, "Stripe never got the create");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // kill -9 A in the middle of a turn: the client goes to B, resumes, retries the same id.
    on_a.send(json!({ "type": "say", "id": "k1", "text": "what is my account status?" }))
        .await;
    cluster.kill_9(0);
    let seen = on_a.last_seq;
    drop(on_a);
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
        let killed = tokio::time::Instant::now();
        loop {
            let status: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, attempts FROM operations WHERE kind = 'create_product'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            assert_eq!(status.len(), 1, "{status:?}");
            if status[0].0 != "pending" {
                assert_eq!(status[0], ("done".to_owned(), 1), "taken over once");
                break;
            }
            assert!(
                killed.elapsed() < DEADLINE,
                "B never finished the write A left"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let cards: Vec<(String,)> =
            sqlx::query_as("SELECT body FROM frames WHERE body LIKE '%is ready to sell%'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(cards.len(), 1, "the product's card, once: {cards:?}");
    }
    let products = http
        .get(
            &format!("http://{sandbox}/v1/products?limit=100"),
            &[
                ("authorization", "Bearer sk_test_chatpay_sandbox"),
                ("stripe-account", account.as_str()),
            ],
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        products["data"].as_array().map(Vec::len),
        Some(1),
        "one product at Stripe: {products}"
    );
    let mut moved = Client::join(&b, &token, &project, seen).await;
    moved
        .send(json!({ "type": "say", "id": "k1", "text": "what is my account status?" }))
        .await;
    moved
        .until("the answer to k1 on B", |f| f["reply_to"] == "k1")
        .await;
    let answer = moved.say("k2", "is this test mode?").await;
    assert_ne!(answer["type"], "error", "{answer}");
    let mut check = Client::join(&b, &token, &project, 0).await;
    let last = check.welcome_seq;
    check.read_to(last).await;
    assert_eq!(
        check.frames.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>()
    );
    let k1_turns: BTreeSet<i64> = check
        .frames
        .values()
        .filter(|f| f["reply_to"] == "k1")
        .filter_map(|f| f["seq"].as_i64())
        .collect();
    let first = *k1_turns.first().unwrap();
    assert_eq!(
        k1_turns,
        (first..first + k1_turns.len() as i64).collect(),
        "k1 was answered once, in one turn"
    );

    let metrics = http
        .get(&format!("http://{b}/metrics"), &[])
        .await
        .unwrap()
        .text();
    eprintln!(
        "instance B's figures:\n{}",
        metrics
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for name in ["chatpay_turns_total", "chatpay_notifications_total"] {
        assert!(metrics.contains(name), "{name} not in /metrics:\n{metrics}");
    }

    // SIGTERM: B closes its WebSockets with 1001 ("going away": the page reconnects elsewhere).
    cluster.signal(1, "-TERM");
    let code = loop {
        match tokio::time::timeout(DEADLINE, check.ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no Close from the stopping server: {other:?}"),
        }
    };
    assert_eq!(code, Some(1001));
}

/// SQLite is one instance's database: a second `serve` on the same file refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_one_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("one.db").display());
    let mut first = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(first.stderr.take().unwrap()).lines();
    tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("chatpay listening") {
                return;
            }
        }
        panic!("the first server exited before listening");
    })
    .await
    .expect("the first server starts");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let second = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
        .output()
        .await
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("already serving"), "{said}");
    let line = said
        .lines()
        .find(|l| l.contains("already serving"))
        .unwrap();
    assert!(!line.contains("   "), "one readable sentence: {line}");
    first.kill().await.unwrap();
}
