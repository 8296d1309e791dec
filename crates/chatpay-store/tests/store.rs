//! The `Store` contract, run against SQLite always and PostgreSQL when `CHATPAY_TEST_POSTGRES`
//! names a server (the test command starts one): both backends must behave the same.

use std::sync::Arc;

use chatpay_core::domain::{
    ConversationId, Mode, PersonId, ProjectId, TokenId, WorkspaceId, now_millis,
};
use chatpay_store::changes::Change;
use chatpay_store::{
    AppWebhook, ConnectionRecord, DynStore, ExtraWrite, NewAppEvent, NewInvite, NewOperation,
    NewOrder, NewToken, OperationStatus, OrderFilter, OrderKey, OrderUpdate, PersonRecord,
    ProductState, ProjectRecord, PublishableKey, Recorded, RunPhase, StagedKind, StoreError,
    StoredFrame, StoredProduct, SubscriptionFilter, SubscriptionUpdate, TokenKind, TurnWrite,
    WebhookEventRecord, WorkspaceRecord,
};

async fn sqlite() -> (DynStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (chatpay_store::connect(&url).await.unwrap(), dir)
}

async fn postgres() -> Option<DynStore> {
    use sqlx::Connection;
    let admin = chatpay_store::test_postgres().unwrap_or_else(|why| panic!("{why}"))?;
    let name = format!("chatpay_s_{}", chatpay_core::domain::random_hex(6));
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    Some(
        chatpay_store::connect(&format!("{base}/{name}"))
            .await
            .unwrap(),
    )
}

async fn workspace(store: &DynStore) -> WorkspaceId {
    let w = WorkspaceRecord {
        id: WorkspaceId::generate(),
        name: "w".into(),
        created_at: now_millis(),
    };
    store.insert_workspace(&w).await.unwrap();
    w.id
}

fn new_token<'a>(id: &'a TokenId, workspace: &'a WorkspaceId, hash: &'a str) -> NewToken<'a> {
    NewToken {
        id,
        workspace_id: workspace,
        kind: TokenKind::Api,
        name: "t",
        secret_hash: hash,
        person_id: None,
        project_id: None,
        expires_at: None,
    }
}

async fn project(store: &DynStore) -> ProjectRecord {
    let token = TokenId::generate();
    let w = workspace(store).await;
    let hash = chatpay_core::domain::random_hex(32);
    store
        .insert_token(new_token(&token, &w, &hash))
        .await
        .unwrap();
    let p = ProjectRecord {
        id: ProjectId::generate(),
        workspace_id: w,
        token_id: token,
        name: "p".into(),
        backend: true,
        mode: Mode::Test,
        created_at: now_millis(),
    };
    store.insert_project(&p).await.unwrap();
    p
}

fn frame(seq: i64, reply_to: Option<&str>) -> StoredFrame {
    StoredFrame {
        seq,
        reply_to: reply_to.map(str::to_owned),
        body: Arc::from(format!("{{\"seq\":{seq}}}")),
    }
}

fn turn(conversation: &ConversationId, prev: i64, frames: Vec<StoredFrame>) -> TurnWrite {
    TurnWrite {
        conversation: conversation.clone(),
        prev_seq: prev,
        last_seq: prev + frames.len() as i64,
        state: Some(Arc::from(format!(
            "{{\"at\":{}}}",
            prev + frames.len() as i64
        ))),
        frames,
        extra: Vec::new(),
    }
}

async fn contract(store: DynStore) {
    // Tokens and projects.
    assert!(
        !store.has_tokens().await.unwrap(),
        "a fresh database has no token"
    );
    let p = project(&store).await;
    assert_eq!(store.project(&p.id).await.unwrap().as_ref(), Some(&p));
    assert_eq!(
        store.projects_of(&p.workspace_id).await.unwrap(),
        vec![p.clone()]
    );
    store.rename_project(&p.id, "renamed").await.unwrap();
    assert_eq!(store.project(&p.id).await.unwrap().unwrap().name, "renamed");
    assert!(matches!(
        store.rename_project(&ProjectId::generate(), "x").await,
        Err(StoreError::NotFound)
    ));
    assert!(store.has_tokens().await.unwrap());
    let (t1, t2) = (TokenId::generate(), TokenId::generate());
    let dup = store
        .insert_token(new_token(&t1, &p.workspace_id, "same-hash"))
        .await;
    assert!(dup.is_ok());
    let dup = store
        .insert_token(new_token(&t2, &p.workspace_id, "same-hash"))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    // Credentials: read back by hash, used, listed, revoked; people.
    let t = store.token_by_hash("same-hash").await.unwrap().unwrap();
    assert_eq!(
        (t.id.clone(), t.kind, t.revoked_at),
        (t1.clone(), TokenKind::Api, None)
    );
    assert_eq!(t.workspace_id, p.workspace_id);
    store.touch_token(&t1, 1234, None).await.unwrap();
    let t = store.token_by_hash("same-hash").await.unwrap().unwrap();
    assert_eq!(t.last_used_at, Some(1234));
    assert_eq!(
        store
            .tokens_of(&p.workspace_id, TokenKind::Api)
            .await
            .unwrap()
            .len(),
        2
    );
    let stranger = workspace(&store).await;
    // PostgreSQL tells every listening process of a revocation when it commits.
    let mut feed = store.take_changes();
    if feed.is_some() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.listener_connected() != Some(true) {
            assert!(
                std::time::Instant::now() < deadline,
                "the listener connects"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert!(
        !store.revoke_token(&stranger, &t1, 5).await.unwrap(),
        "another workspace's"
    );
    assert!(store.revoke_token(&p.workspace_id, &t1, 5).await.unwrap());
    assert!(
        !store.revoke_token(&p.workspace_id, &t1, 6).await.unwrap(),
        "once"
    );
    if let Some(feed) = &mut feed {
        let told = tokio::time::timeout(std::time::Duration::from_secs(30), feed.changes.recv())
            .await
            .expect("a notification in time");
        assert_eq!(
            told,
            Some(Change::Revoked {
                credential: t1.clone()
            }),
            "one notification, for the one revocation that changed a row"
        );
    }
    drop(feed);
    assert_eq!(store.token(&t1).await.unwrap().unwrap().revoked_at, Some(5));
    assert!(store.token(&TokenId::generate()).await.unwrap().is_none());
    assert_eq!(store.revoked_since(5).await.unwrap(), vec![(t1.clone(), 5)]);
    assert!(store.revoked_since(6).await.unwrap().is_empty());
    assert_eq!(
        store
            .token_by_hash("same-hash")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(5)
    );
    assert!(store.projects_of(&stranger).await.unwrap().is_empty());
    assert!(!store.has_people().await.unwrap());
    let person = PersonRecord {
        id: PersonId::generate(),
        workspace_id: p.workspace_id.clone(),
        email: "maya@example.com".into(),
        password_hash: "$argon2id$x".into(),
        created_at: now_millis(),
    };
    store.insert_person(&person).await.unwrap();
    assert!(store.has_people().await.unwrap());
    assert_eq!(
        store.person_by_email("maya@example.com").await.unwrap(),
        Some(person.clone())
    );
    store.set_password(&person.id, "$argon2id$y").await.unwrap();
    let session = TokenId::generate();
    store
        .insert_token(NewToken {
            kind: TokenKind::Session,
            person_id: Some(&person.id),
            expires_at: Some(99),
            ..new_token(&session, &p.workspace_id, "session-hash")
        })
        .await
        .unwrap();
    assert_eq!(
        store.revoke_sessions_of(&person.id, 7).await.unwrap(),
        vec![session.clone()]
    );
    assert_eq!(
        store.revoked_since(6).await.unwrap(),
        vec![(session, 7)],
        "a sign-out everywhere is found by the sweep too"
    );
    assert_eq!(
        store
            .person(&person.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$y"
    );
    // A teammate's invite: works once, until it expires; a taken email leaves it unused.
    let invite = |id: &'static str, hash: &'static str, expires_at: i64| NewInvite {
        id,
        workspace_id: &p.workspace_id,
        code_hash: hash,
        created_by: Some(&person.id),
        created_at: 1,
        expires_at,
    };
    store
        .insert_invite(&invite("inv_1", "invite-hash", 1_000))
        .await
        .unwrap();
    store
        .insert_invite(&invite("inv_2", "old-hash", 50))
        .await
        .unwrap();
    assert_eq!(
        store.invite_workspace("invite-hash", 100).await.unwrap(),
        Some(p.workspace_id.clone())
    );
    assert_eq!(store.invite_workspace("old-hash", 100).await.unwrap(), None);
    let teammate = |email: &str| PersonRecord {
        id: PersonId::generate(),
        workspace_id: p.workspace_id.clone(),
        email: email.into(),
        password_hash: "$argon2id$z".into(),
        created_at: 100,
    };
    let taken = store
        .redeem_invite("invite-hash", 100, &teammate("maya@example.com"))
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert!(
        store
            .invite_workspace("invite-hash", 100)
            .await
            .unwrap()
            .is_some(),
        "still unused"
    );
    let ana = teammate("ana@example.com");
    assert!(store.redeem_invite("invite-hash", 100, &ana).await.unwrap());
    assert_eq!(
        store.person_by_email("ana@example.com").await.unwrap(),
        Some(ana)
    );
    assert!(
        !store
            .redeem_invite("invite-hash", 101, &teammate("eve@example.com"))
            .await
            .unwrap(),
        "once"
    );
    assert!(
        !store
            .redeem_invite("old-hash", 100, &teammate("eve@example.com"))
            .await
            .unwrap(),
        "expired"
    );
    assert_eq!(
        store.person_by_email("eve@example.com").await.unwrap(),
        None
    );
    assert!(
        store.first_workspace().await.unwrap().is_some(),
        "the oldest workspace"
    );

    // One conversation per project, created once.
    let c1 = store.conversation_for(&p.id).await.unwrap();
    let c2 = store.conversation_for(&p.id).await.unwrap();
    assert_eq!(c1.id, c2.id);
    assert_eq!(c1.last_seq, 0);
    let conv = c1.id;

    // Turns commit atomically; a turn from a stale seq is a conflict and writes nothing.
    store
        .commit_turn(turn(
            &conv,
            0,
            vec![frame(1, Some("u1")), frame(2, Some("u1"))],
        ))
        .await
        .unwrap();
    let stale = store
        .commit_turn(turn(&conv, 0, vec![frame(1, Some("u9"))]))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    store
        .commit_turn(turn(&conv, 2, vec![frame(3, None)]))
        .await
        .unwrap();
    let c = store.conversation(&conv).await.unwrap().unwrap();
    assert_eq!((c.last_seq, c.state.as_str()), (3, "{\"at\":3}"));
    // A turn that leaves the state as it was moves only the seq.
    let mut t = turn(&conv, 3, vec![]);
    t.state = None;
    t.last_seq = 3;
    store.commit_turn(t).await.unwrap();
    assert_eq!(
        store.conversation(&conv).await.unwrap().unwrap().state,
        "{\"at\":3}"
    );
    let all = store.frames_after(&conv, 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(
        store.frames_after(&conv, 1, 1).await.unwrap(),
        vec![frame(2, Some("u1"))]
    );
    assert_eq!(
        store.frames_replying_to(&conv, "u1").await.unwrap().len(),
        2
    );
    assert!(
        store
            .frames_replying_to(&conv, "u9")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.answered_ids(&conv).await.unwrap(),
        vec!["u1".to_owned()]
    );

    // Connections ride along with a turn.
    let connection = ConnectionRecord {
        project_id: p.id.clone(),
        mode: Mode::Test,
        account_id: "acct_1".into(),
        origin: chatpay_core::domain::Origin::Created,
        snapshot: "{}".into(),
        connected_at: 1,
        updated_at: 2,
    };
    let mut t = turn(&conv, 3, vec![frame(4, None)]);
    t.extra
        .push(ExtraWrite::UpsertConnection(connection.clone()));
    store.commit_turn(t).await.unwrap();
    assert_eq!(
        store.connection(&p.id, Mode::Test).await.unwrap(),
        Some(connection.clone())
    );
    assert_eq!(store.connection(&p.id, Mode::Live).await.unwrap(), None);
    assert_eq!(
        store.connections_for_account("acct_1").await.unwrap(),
        vec![connection]
    );
    let mut t = turn(&conv, 4, vec![]);
    t.extra.push(ExtraWrite::DeleteConnection {
        project_id: p.id.clone(),
        mode: Mode::Test,
    });
    store.commit_turn(t).await.unwrap();
    assert_eq!(store.connection(&p.id, Mode::Test).await.unwrap(), None);

    // The webhook ledger: a second delivery is a duplicate; handled events leave the queue.
    let event = WebhookEventRecord {
        id: "evt_1".into(),
        event_type: "account.updated".into(),
        account: Some("acct_1".into()),
        livemode: false,
        created: 10,
        payload: "{}".into(),
        received_at: now_millis(),
        processed_at: None,
        outcome: None,
    };
    assert_eq!(store.record_event(&event).await.unwrap(), Recorded::New);
    assert_eq!(
        store.record_event(&event).await.unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(store.unprocessed_events(10).await.unwrap().len(), 1);
    let mut t = turn(&conv, 4, vec![frame(5, None)]);
    t.extra.push(ExtraWrite::MarkEventProcessed {
        id: "evt_1".into(),
        outcome: "applied".into(),
    });
    store.commit_turn(t).await.unwrap();
    assert!(store.unprocessed_events(10).await.unwrap().is_empty());
    let stored = store.event("evt_1").await.unwrap().unwrap();
    assert_eq!(stored.outcome.as_deref(), Some("applied"));
    assert!(stored.processed_at.is_some());

    // The go-live checklist's ledger question: an event about that account, in that mode.
    assert!(store.has_event_for("acct_1", false).await.unwrap());
    assert!(!store.has_event_for("acct_1", true).await.unwrap());
    assert!(!store.has_event_for("acct_2", false).await.unwrap());
    let live = WebhookEventRecord {
        id: "evt_live_1".into(),
        livemode: true,
        ..event.clone()
    };
    store.record_event(&live).await.unwrap();
    assert!(store.has_event_for("acct_1", true).await.unwrap());

    // The go-live switch is part of a turn, and so is the way back.
    let mut t = turn(&conv, 5, vec![frame(6, None)]);
    t.extra.push(ExtraWrite::SetProjectMode {
        project_id: p.id.clone(),
        mode: Mode::Live,
    });
    store.commit_turn(t).await.unwrap();
    assert_eq!(
        store.project(&p.id).await.unwrap().unwrap().mode,
        Mode::Live
    );
    let mut t = turn(&conv, 6, vec![frame(7, None)]);
    t.extra.push(ExtraWrite::SetProjectMode {
        project_id: p.id.clone(),
        mode: Mode::Test,
    });
    store.commit_turn(t).await.unwrap();
    assert_eq!(
        store.project(&p.id).await.unwrap().unwrap().mode,
        Mode::Test
    );
}

fn ledger_event(id: &str) -> WebhookEventRecord {
    WebhookEventRecord {
        id: id.into(),
        event_type: "charge.succeeded".into(),
        account: Some("acct_1".into()),
        livemode: false,
        created: 10,
        payload: format!("{{\"id\":\"{id}\"}}"),
        received_at: now_millis(),
        processed_at: None,
        outcome: None,
    }
}

/// The ledger's writes share the writer's group commits: many deliveries at once, the same
/// event several times among them, are each stored once and answered once each as new; an
/// event recorded as handled needs no second write; a turn can record its event itself.
async fn ledger(store: DynStore) {
    let store = Arc::new(store);
    // 40 distinct events, each delivered 5 times at once (200 concurrent records).
    let mut tasks = Vec::new();
    for copy in 0..5 {
        for i in 0..40 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut e = ledger_event(&format!("evt_c{i}"));
                e.received_at += copy;
                (i, store.record_event(&e).await.unwrap())
            }));
        }
    }
    let mut new = vec![0; 40];
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if r == Recorded::New {
            new[i] += 1;
        }
    }
    assert!(
        new.iter().all(|&n| n == 1),
        "each event is new exactly once: {new:?}"
    );
    let pending = store.unprocessed_events(1000).await.unwrap();
    assert_eq!(pending.len(), 40);
    assert!(pending.iter().all(|e| e.payload.contains(&e.id)));

    // An ignored event is recorded handled in its one insert.
    let mut ignored = ledger_event("evt_ignored");
    ignored.processed_at = Some(now_millis());
    ignored.outcome = Some("ignored: customer.created is not handled".into());
    assert_eq!(store.record_event(&ignored).await.unwrap(), Recorded::New);
    assert_eq!(
        store.record_event(&ignored).await.unwrap(),
        Recorded::Duplicate
    );
    let stored = store.event("evt_ignored").await.unwrap().unwrap();
    assert_eq!(stored.outcome, ignored.outcome);
    assert_eq!(store.unprocessed_events(1000).await.unwrap().len(), 40);

    // A turn records its event and marks it applied in the same transaction; a second turn
    // recording the same event (a concurrent redelivery) leaves the row as it is.
    let p = project(&store).await;
    let conv = store.conversation_for(&p.id).await.unwrap().id;
    let mut t = turn(&conv, 0, vec![frame(1, None)]);
    t.extra
        .push(ExtraWrite::RecordEvent(ledger_event("evt_turn")));
    t.extra.push(ExtraWrite::MarkEventProcessed {
        id: "evt_turn".into(),
        outcome: "applied".into(),
    });
    store.commit_turn(t).await.unwrap();
    let mut t = turn(&conv, 1, vec![frame(2, None)]);
    let mut again = ledger_event("evt_turn");
    again.payload = "{}".into();
    t.extra.push(ExtraWrite::RecordEvent(again));
    store.commit_turn(t).await.unwrap();
    let stored = store.event("evt_turn").await.unwrap().unwrap();
    assert_eq!(stored.outcome.as_deref(), Some("applied"));
    assert_eq!(stored.payload, "{\"id\":\"evt_turn\"}");
    assert_eq!(
        store.record_event(&ledger_event("evt_turn")).await.unwrap(),
        Recorded::Duplicate
    );

    // A turn that loses its conflict check stores nothing of its event: the delivery fails and
    // Stripe sends it again.
    let mut stale = turn(&conv, 0, vec![frame(1, None)]);
    stale
        .extra
        .push(ExtraWrite::RecordEvent(ledger_event("evt_lost")));
    assert!(matches!(
        store.commit_turn(stale).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.event("evt_lost").await.unwrap().is_none());
}

/// Many conversations committing at once share transactions; none loses a frame, and a
/// conflicting turn fails alone.
async fn group_commit(store: DynStore) {
    let mut conversations = Vec::new();
    for _ in 0..50 {
        let p = project(&store).await;
        conversations.push(store.conversation_for(&p.id).await.unwrap().id);
    }
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for (i, conv) in conversations.iter().cloned().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..20i64 {
                let id = format!("u{i}-{n}");
                store
                    .commit_turn(turn(&conv, n, vec![frame(n + 1, Some(&id))]))
                    .await
                    .unwrap();
            }
            // A stale turn in the middle of everyone else's traffic.
            assert!(
                store
                    .commit_turn(turn(&conv, 3, vec![frame(4, None)]))
                    .await
                    .is_err()
            );
            // A turn that fails inside the transaction (its frame's seq is taken): the batch
            // it shared is retried turn by turn, and only this one fails.
            assert!(
                store
                    .commit_turn(turn(&conv, 20, vec![frame(3, None)]))
                    .await
                    .is_err()
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for conv in &conversations {
        assert_eq!(
            store.conversation(conv).await.unwrap().unwrap().last_seq,
            20
        );
        let frames = store.frames_after(conv, 0, 1000).await.unwrap();
        assert_eq!(
            frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            (1..=20).collect::<Vec<_>>()
        );
    }
}

/// Connects (or disconnects, with `None`) the project's Stripe account in `mode`, in a turn.
async fn connect(store: &DynStore, p: &ProjectRecord, mode: Mode, account: Option<&str>) {
    let conv = store.conversation_for(&p.id).await.unwrap();
    let mut t = turn(
        &conv.id,
        conv.last_seq,
        vec![frame(conv.last_seq + 1, None)],
    );
    t.extra.push(match account {
        Some(a) => ExtraWrite::UpsertConnection(ConnectionRecord {
            project_id: p.id.clone(),
            mode,
            account_id: a.into(),
            origin: chatpay_core::domain::Origin::Created,
            snapshot: "{}".into(),
            connected_at: 1,
            updated_at: 2,
        }),
        None => ExtraWrite::DeleteConnection {
            project_id: p.id.clone(),
            mode,
        },
    });
    store.commit_turn(t).await.unwrap();
}

/// How many products the project's catalog holds in `mode`.
async fn products(store: &DynStore, p: &ProjectRecord, mode: Mode) -> usize {
    store.catalog(&p.id, mode).await.unwrap().products.len()
}

fn row(id: &str, data: &str, at: i64) -> StoredProduct {
    StoredProduct {
        product_id: id.to_owned(),
        data: ProductState::Present(data.to_owned()),
        observed_at: at,
    }
}

/// The catalog: test and live apart, runs resumable at their cursor, a replace applied only on
/// the version it read, a product read never overwritten by an older read, and everything
/// forgotten (a running sync included) when the account is disconnected or replaced.
async fn catalog(store: DynStore) {
    let p = project(&store).await;
    connect(&store, &p, Mode::Test, Some("acct_a")).await;
    connect(&store, &p, Mode::Live, Some("acct_a")).await;
    let empty = store.catalog(&p.id, Mode::Test).await.unwrap();
    assert_eq!((empty.version, empty.synced_at), (0, None));

    // A run stages pages; reopened (after a crash), it is the same run at its cursor.
    let run = store
        .catalog_open_run(&p.id, Mode::Test, "run_a")
        .await
        .unwrap();
    assert_eq!((run.id.as_str(), run.phase), ("run_a", RunPhase::Products));
    let page = vec![("prod_1".to_owned(), "{\"p\":1}".to_owned())];
    store
        .catalog_stage(
            &run.id,
            StagedKind::Product,
            &page,
            10,
            RunPhase::Products,
            Some("prod_1"),
            1,
        )
        .await
        .unwrap();
    let again = store
        .catalog_open_run(&p.id, Mode::Test, "run_b")
        .await
        .unwrap();
    assert_eq!(again.id, "run_a", "an unfinished run is continued");
    assert_eq!(again.cursor.as_deref(), Some("prod_1"));
    assert_eq!(again.requests, 1);
    // Live mode has its own runs.
    let live_run = store
        .catalog_open_run(&p.id, Mode::Live, "run_live")
        .await
        .unwrap();
    assert_eq!(live_run.id, "run_live");
    let staged = store.catalog_staged("run_a").await.unwrap();
    assert_eq!(
        staged
            .iter()
            .map(|s| (s.kind, s.data.as_str()))
            .collect::<Vec<_>>(),
        [(StagedKind::Product, "{\"p\":1}")]
    );

    let rows = [row("prod_1", "test", 10)];
    store
        .catalog_replace(&p.id, Mode::Test, 0, &rows, "run_a", "{}")
        .await
        .unwrap();
    assert!(store.catalog_staged("run_a").await.unwrap().is_empty());
    let test = store.catalog(&p.id, Mode::Test).await.unwrap();
    assert!(test.synced_at.is_some());
    assert_eq!(test.products, vec![row("prod_1", "test", 10)]);
    let live = store.catalog(&p.id, Mode::Live).await.unwrap();
    assert!(live.products.is_empty(), "test products are not live ones");
    // A finished run does not apply twice; a run computed from an older version is refused.
    let twice = store
        .catalog_replace(&p.id, Mode::Test, test.version, &[], "run_a", "{}")
        .await;
    assert!(matches!(twice, Err(StoreError::NotFound)), "{twice:?}");
    store
        .catalog_open_run(&p.id, Mode::Test, "run_c")
        .await
        .unwrap();
    let stale = store
        .catalog_replace(&p.id, Mode::Test, 0, &[], "run_c", "{}")
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(products(&store, &p, Mode::Test).await, 1);

    // Single-product puts: newer reads apply (seeing the previous data), older ones do not.
    let newer = |prev: Option<&ProductState>| {
        ProductState::Present(format!("{:?}+new", prev.and_then(ProductState::json)))
    };
    let put = store
        .catalog_put_product(&p.id, Mode::Test, "acct_a", "prod_1", &newer, 20)
        .await
        .unwrap();
    assert_eq!(put.previous, Some(ProductState::Present("test".into())));
    assert!(put.synced);
    let old = |_: Option<&ProductState>| ProductState::Present("old".into());
    let older = store
        .catalog_put_product(&p.id, Mode::Test, "acct_a", "prod_1", &old, 15)
        .await;
    assert!(matches!(older, Err(StoreError::Conflict(_))), "{older:?}");
    let now = store.catalog(&p.id, Mode::Test).await.unwrap();
    assert_eq!(now.products, vec![row("prod_1", "Some(\"test\")+new", 20)]);
    assert!(now.version > test.version, "every change bumps the version");
    // A deleted product is kept as such (an older read cannot bring it back) and read back so.
    let deleted = |_: Option<&ProductState>| ProductState::Deleted;
    store
        .catalog_put_product(&p.id, Mode::Test, "acct_a", "prod_1", &deleted, 25)
        .await
        .unwrap();
    let put = store
        .catalog_put_product(&p.id, Mode::Test, "acct_a", "prod_1", &newer, 26)
        .await
        .unwrap();
    assert_eq!(put.previous, Some(ProductState::Deleted));
    let now = store.catalog(&p.id, Mode::Test).await.unwrap();
    assert_eq!(now.products, vec![row("prod_1", "None+new", 26)]);
    // Another account's product is not stored.
    let foreign = store
        .catalog_put_product(&p.id, Mode::Test, "acct_other", "prod_2", &old, 30)
        .await;
    assert!(matches!(foreign, Err(StoreError::NotFound)), "{foreign:?}");
    // Before any live sync, a live put is stored but the catalog is not "synced".
    let live = store
        .catalog_put_product(&p.id, Mode::Live, "acct_a", "prod_9", &old, 5)
        .await
        .unwrap();
    assert!(!live.synced);
    assert_eq!(products(&store, &p, Mode::Test).await, 1);

    // Disconnecting forgets the test catalog and its running sync (run_c), and only those.
    connect(&store, &p, Mode::Test, None).await;
    let gone = store.catalog(&p.id, Mode::Test).await.unwrap();
    assert_eq!((gone.products.len(), gone.synced_at), (0, None));
    let late = store
        .catalog_stage(
            "run_c",
            StagedKind::Product,
            &page,
            40,
            RunPhase::Products,
            None,
            2,
        )
        .await;
    assert!(matches!(late, Err(StoreError::NotFound)), "{late:?}");
    let late = store
        .catalog_replace(&p.id, Mode::Test, 0, &rows, "run_c", "{}")
        .await;
    assert!(matches!(late, Err(StoreError::NotFound)), "{late:?}");
    assert_eq!(products(&store, &p, Mode::Test).await, 0);
    assert_eq!(products(&store, &p, Mode::Live).await, 1);
    // Connecting a different account forgets the old account's catalog; reconnecting the same
    // one keeps it.
    connect(&store, &p, Mode::Live, Some("acct_a")).await;
    assert_eq!(products(&store, &p, Mode::Live).await, 1);
    connect(&store, &p, Mode::Live, Some("acct_b")).await;
    assert_eq!(products(&store, &p, Mode::Live).await, 0);
    let fresh = store
        .catalog_open_run(&p.id, Mode::Live, "run_new")
        .await
        .unwrap();
    assert_eq!(
        fresh.id, "run_new",
        "the old account's run is not continued"
    );
}

/// An order moves inside a turn, only from the version its change was computed from: a stale
/// `PutOrder` fails its turn with `Conflict` and the turn writes nothing, alone or in a batch.
async fn orders(store: DynStore) {
    let p = project(&store).await;
    let conv = store.conversation_for(&p.id).await.unwrap().id;
    let order = store
        .insert_order(&NewOrder {
            id: "ord_1".into(),
            project_id: p.id.clone(),
            mode: Mode::Test,
            status: "open".into(),
            session_id: "cs_1".into(),
            created_at: 1,
            data: "{}".into(),
            customer_email: Some("Ana@Example.com".into()),
        })
        .await
        .unwrap();
    assert_eq!((order.number, order.version), (1001, 1));
    let put = |expected_version: i64, status: &str| {
        ExtraWrite::PutOrder(OrderUpdate {
            id: "ord_1".into(),
            expected_version,
            status: status.into(),
            payment_intent: Some("pi_1".into()),
            data: format!("{{\"status\":\"{status}\"}}"),
            customer_email: None,
        })
    };
    let mut t = turn(&conv, 0, vec![frame(1, None)]);
    t.extra.push(put(1, "paid"));
    store.commit_turn(t).await.unwrap();
    let stored = store
        .order_by(OrderKey::PaymentIntent("pi_1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.version, stored.status.as_str()), (2, "paid"));

    // The same change again, computed from version 1: refused, and its turn with it.
    let mut stale = turn(&conv, 1, vec![frame(2, None)]);
    stale.extra.push(put(1, "refunded"));
    let refused = store.commit_turn(stale.clone()).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(
        store.conversation(&conv).await.unwrap().unwrap().last_seq,
        1
    );
    assert!(store.frames_after(&conv, 1, 10).await.unwrap().is_empty());

    // In a batch, the stale turn fails alone; the other turn commits.
    let other = store
        .conversation_for(&project(&store).await.id)
        .await
        .unwrap()
        .id;
    let (a, b) = tokio::join!(
        store.commit_turn(stale),
        store.commit_turn(turn(&other, 0, vec![frame(1, None)]))
    );
    assert!(matches!(a, Err(StoreError::Conflict(_))), "{a:?}");
    b.unwrap();
    let stored = store
        .order_by(OrderKey::Id("ord_1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.version, stored.status.as_str()), (2, "paid"));

    // Numbers count per project and mode; a retried insert answers the stored order.
    let new = |id: &str, mode: Mode, at: i64| NewOrder {
        id: id.into(),
        project_id: p.id.clone(),
        mode,
        status: "open".into(),
        session_id: format!("cs_{id}"),
        created_at: at,
        data: "{}".into(),
        customer_email: None,
    };
    assert_eq!(
        store
            .insert_order(&new("ord_2", Mode::Test, 2))
            .await
            .unwrap()
            .number,
        1002
    );
    let again = store
        .insert_order(&new("ord_2", Mode::Test, 9))
        .await
        .unwrap();
    assert_eq!((again.number, again.created_at), (1002, 2));
    assert_eq!(
        store
            .insert_order(&new("ord_3", Mode::Live, 3))
            .await
            .unwrap()
            .number,
        1001
    );
    let (o4, o5) = (new("ord_4", Mode::Test, 4), new("ord_5", Mode::Test, 5));
    let (x, y) = tokio::join!(store.insert_order(&o4), store.insert_order(&o5));
    let mut numbers = [x.unwrap().number, y.unwrap().number];
    numbers.sort();
    assert_eq!(
        numbers,
        [1003, 1004],
        "concurrent checkouts get distinct numbers"
    );
    assert_eq!(
        store
            .order_by(OrderKey::Session("cs_ord_2"))
            .await
            .unwrap()
            .unwrap()
            .id,
        "ord_2"
    );
    assert!(
        store
            .order_by_number(&p.id, Mode::Live, 1002)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .order_by_number(&p.id, Mode::Live, 1001)
            .await
            .unwrap()
            .unwrap()
            .id,
        "ord_3"
    );
    // Newest first, by status and time, paged below a number; never the other mode's.
    let list = |f: OrderFilter| {
        let store = store.clone();
        let id = p.id.clone();
        async move {
            store
                .orders(&id, Mode::Test, &f)
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.number)
                .collect::<Vec<_>>()
        }
    };
    let all = OrderFilter {
        limit: 10,
        ..OrderFilter::default()
    };
    assert_eq!(list(all.clone()).await, [1004, 1003, 1002, 1001]);
    assert_eq!(
        list(OrderFilter {
            status: Some(chatpay_core::orders::OrderStatus::Paid),
            ..all.clone()
        })
        .await,
        [1001]
    );
    assert_eq!(
        list(OrderFilter {
            before: Some(1003),
            limit: 1,
            ..all.clone()
        })
        .await,
        [1002]
    );
    assert_eq!(
        list(OrderFilter {
            since: Some(2),
            until: Some(4),
            ..all
        })
        .await,
        [1002]
    );
    // By customer, whatever the case of the address (kept from the insert: a change without
    // an email leaves it).
    assert_eq!(
        list(OrderFilter {
            customer_email: Some("ANA@example.COM".into()),
            limit: 10,
            ..OrderFilter::default()
        })
        .await,
        [1001]
    );

    // A publishable key per project; its origins can change, the key stays.
    assert!(store.publishable_key(&p.id).await.unwrap().is_none());
    let key = PublishableKey {
        project_id: p.id.clone(),
        key: "cpub_abc".into(),
        allowed_origins: vec!["https://shop.example".into()],
        created_at: 1,
    };
    assert_eq!(store.put_publishable_key(&key).await.unwrap(), key);
    let moved = PublishableKey {
        key: "cpub_other".into(),
        allowed_origins: vec![],
        ..key.clone()
    };
    let stored = store.put_publishable_key(&moved).await.unwrap();
    assert_eq!(
        (stored.key.as_str(), stored.allowed_origins.len()),
        ("cpub_abc", 0)
    );
    assert_eq!(
        store
            .publishable_key_by_key("cpub_abc")
            .await
            .unwrap()
            .unwrap()
            .project_id,
        p.id
    );
    assert!(
        store
            .publishable_key_by_key("cpub_other")
            .await
            .unwrap()
            .is_none()
    );
}

/// A subscription is inserted by its first read (version 0 -> 1) and moves only from the version
/// its change was computed from; a second first-insert (two reads racing) is a conflict; lists
/// are per project and mode, by status and customer, newest first.
async fn subscriptions(store: DynStore) {
    let p = project(&store).await;
    let conv = store.conversation_for(&p.id).await.unwrap().id;
    let put = |id: &str, expected_version: i64, status: &str, email: Option<&str>| {
        ExtraWrite::PutSubscription(SubscriptionUpdate {
            id: id.into(),
            project_id: p.id.clone(),
            mode: Mode::Test,
            account_id: "acct_1".into(),
            expected_version,
            status: status.into(),
            customer_email: email.map(str::to_owned),
            data: format!("{{\"status\":\"{status}\"}}"),
        })
    };
    let mut t = turn(&conv, 0, vec![frame(1, None)]);
    t.extra
        .push(put("sub_1", 0, "active", Some("Ana@Example.com")));
    store.commit_turn(t).await.unwrap();
    let stored = store.subscription("sub_1").await.unwrap().unwrap();
    assert_eq!((stored.version, stored.status.as_str()), (1, "active"));

    let mut twice = turn(&conv, 1, vec![frame(2, None)]);
    twice.extra.push(put("sub_1", 0, "active", None));
    let refused = store.commit_turn(twice).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );

    let mut next = turn(&conv, 1, vec![frame(2, None)]);
    next.extra.push(put("sub_1", 1, "past_due", None));
    store.commit_turn(next).await.unwrap();
    let mut stale = turn(&conv, 2, vec![frame(3, None)]);
    stale.extra.push(put("sub_1", 1, "canceled", None));
    assert!(matches!(
        store.commit_turn(stale).await,
        Err(StoreError::Conflict(_))
    ));
    let stored = store.subscription("sub_1").await.unwrap().unwrap();
    assert_eq!((stored.version, stored.status.as_str()), (2, "past_due"));

    let mut more = turn(&conv, 2, vec![frame(3, None)]);
    more.extra
        .push(put("sub_2", 0, "active", Some("bo@example.com")));
    store.commit_turn(more).await.unwrap();
    let ids = |f: SubscriptionFilter| {
        let store = store.clone();
        let id = p.id.clone();
        async move {
            store
                .subscriptions(&id, Mode::Test, &f)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    let all = SubscriptionFilter {
        limit: 10,
        ..SubscriptionFilter::default()
    };
    assert_eq!(ids(all.clone()).await.len(), 2);
    assert_eq!(
        ids(SubscriptionFilter {
            customer_email: Some("ana@EXAMPLE.com".into()),
            ..all.clone()
        })
        .await,
        ["sub_1"],
        "the email is kept when a later change has none, and matched in any case"
    );
    assert_eq!(
        ids(SubscriptionFilter {
            status: Some(chatpay_core::billing::SubscriptionStatus::Active),
            ..all.clone()
        })
        .await,
        ["sub_2"]
    );
    assert!(
        store
            .subscriptions(&p.id, Mode::Live, &all)
            .await
            .unwrap()
            .is_empty(),
        "never the other mode's"
    );
}

fn app_event(p: &ProjectRecord, id: &str, seq: i64, at: i64) -> ExtraWrite {
    ExtraWrite::EnqueueAppEvent(NewAppEvent {
        id: id.to_owned(),
        project_id: p.id.clone(),
        event_type: "entitlement.granted".to_owned(),
        payload: format!("{{\"id\":\"{id}\"}}"),
        seq,
        created_at: at,
    })
}

/// The app webhook outbox: events exist only with their committed turn and only for a project
/// with an endpoint; each project's go out oldest first; delivery and failure are recorded.
async fn app_outbox(store: DynStore) {
    let p = project(&store).await;
    let other = project(&store).await;
    let conv = store.conversation_for(&p.id).await.unwrap();
    let t0 = 1_800_000_000_000;

    // No endpoint yet: the turn commits, the event is not kept (nobody to tell).
    let mut t = turn(&conv.id, 0, vec![frame(1, None)]);
    t.extra.push(app_event(&p, "evt_cp_none", 1, t0));
    store.commit_turn(t).await.unwrap();
    assert!(store.app_events(&p.id, 10).await.unwrap().is_empty());
    assert_eq!(store.app_webhook(&p.id).await.unwrap(), None);

    let hook = AppWebhook {
        project_id: p.id.clone(),
        url: "http://127.0.0.1:9/hook".into(),
        secret: "whsec_one".into(),
        created_at: t0,
        updated_at: t0,
    };
    assert_eq!(store.put_app_webhook(&hook).await.unwrap(), hook);
    let rotated = AppWebhook {
        secret: "whsec_two".into(),
        updated_at: t0 + 1,
        ..hook.clone()
    };
    let stored = store.put_app_webhook(&rotated).await.unwrap();
    assert_eq!(
        (stored.secret.as_str(), stored.created_at),
        ("whsec_two", t0)
    );

    // A turn that loses its race writes no event.
    let mut lost = turn(&conv.id, 0, vec![frame(1, None)]);
    lost.extra.push(app_event(&p, "evt_cp_lost", 2, t0));
    assert!(matches!(
        store.commit_turn(lost).await,
        Err(StoreError::Conflict(_))
    ));
    // Two events in one turn, one in the next; another project's without an endpoint.
    let mut t = turn(&conv.id, 1, vec![frame(2, None)]);
    t.extra.push(app_event(&p, "evt_cp_a", 3, t0));
    t.extra.push(app_event(&p, "evt_cp_b", 4, t0));
    t.extra.push(app_event(&other, "evt_cp_other", 1, t0));
    store.commit_turn(t).await.unwrap();
    let mut t = turn(&conv.id, 2, vec![frame(3, None)]);
    t.extra.push(app_event(&p, "evt_cp_c", 5, t0 + 10));
    store.commit_turn(t).await.unwrap();
    let ids =
        |v: &[chatpay_store::AppEventRecord]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    let all = store.app_events(&p.id, 10).await.unwrap();
    assert_eq!(ids(&all), ["evt_cp_a", "evt_cp_b", "evt_cp_c"]);
    assert_eq!(all[0].attempts, 0);
    assert_eq!(all[0].next_attempt_at, Some(t0));
    assert!(store.app_events(&other.id, 10).await.unwrap().is_empty());

    // Not due before its time; then only the project's oldest, signed with the current secret.
    assert!(store.due_app_events(t0 - 1, 10).await.unwrap().is_empty());
    assert_eq!(store.next_app_event_at().await.unwrap(), Some(t0));
    let due = store.due_app_events(t0 + 100, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].event.id, "evt_cp_a");
    assert_eq!(due[0].event.payload, "{\"id\":\"evt_cp_a\"}");
    assert_eq!(
        (due[0].url.as_str(), due[0].secret.as_str()),
        (hook.url.as_str(), "whsec_two")
    );

    // A failure moves it later and holds the ones behind it.
    store
        .app_event_failed("evt_cp_a", "answered 500", Some(t0 + 1_000))
        .await
        .unwrap();
    assert!(store.due_app_events(t0 + 100, 10).await.unwrap().is_empty());
    assert_eq!(store.next_app_event_at().await.unwrap(), Some(t0 + 1_000));
    let due = store.due_app_events(t0 + 1_000, 10).await.unwrap();
    assert_eq!(due[0].event.attempts, 1);
    assert_eq!(due[0].event.last_error.as_deref(), Some("answered 500"));
    store
        .app_event_delivered("evt_cp_a", t0 + 1_001)
        .await
        .unwrap();
    // Delivered is final: a late failure report changes nothing.
    store
        .app_event_failed("evt_cp_a", "late", Some(t0 + 5_000))
        .await
        .unwrap();
    let a = &store.app_events(&p.id, 10).await.unwrap()[0];
    assert_eq!(
        (a.attempts, a.delivered_at, a.next_attempt_at),
        (2, Some(t0 + 1_001), None)
    );
    assert_eq!(a.last_error, None);

    // Given up: no longer pending, and the next one goes.
    let due = store.due_app_events(t0 + 2_000, 10).await.unwrap();
    assert_eq!(ids(&[due[0].event.clone()]), ["evt_cp_b"]);
    store
        .app_event_failed("evt_cp_b", "gave up", None)
        .await
        .unwrap();
    let due = store.due_app_events(t0 + 2_000, 10).await.unwrap();
    assert_eq!(due[0].event.id, "evt_cp_c");

    // A claim takes the due row until its lease ends: a second claim (another instance) gets
    // nothing meanwhile, and the row is due again after the lease (its claimer died).
    let claimed = store
        .claim_app_events(t0 + 2_000, t0 + 5_000, 10)
        .await
        .unwrap();
    assert_eq!(ids(&[claimed[0].event.clone()]), ["evt_cp_c"]);
    assert!(
        store
            .claim_app_events(t0 + 2_000, t0 + 5_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_app_event_at().await.unwrap(), Some(t0 + 5_000));
    let again = store
        .claim_app_events(t0 + 5_000, t0 + 8_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);

    // Removing the endpoint drops what was not delivered; the delivered one stays on record.
    assert!(store.delete_app_webhook(&p.id).await.unwrap());
    assert!(!store.delete_app_webhook(&p.id).await.unwrap());
    assert_eq!(store.app_webhook(&p.id).await.unwrap(), None);
    assert!(
        store
            .due_app_events(t0 + 10_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_app_event_at().await.unwrap(), None);
    assert_eq!(
        ids(&store.app_events(&p.id, 10).await.unwrap()),
        ["evt_cp_a"]
    );
}

fn new_operation(p: &ProjectRecord, key: &str, at: i64) -> ExtraWrite {
    ExtraWrite::RecordOperation(NewOperation {
        key: key.into(),
        project_id: p.id.clone(),
        mode: Mode::Test,
        conversation_id: None,
        kind: "checkout".into(),
        request: format!("{{\"for\":\"{key}\"}}"),
        created_at: at,
        held: None,
    })
}

fn new_order(p: &ProjectRecord, id: &str, session: &str) -> NewOrder {
    NewOrder {
        id: id.into(),
        project_id: p.id.clone(),
        mode: Mode::Test,
        status: "open".into(),
        session_id: session.into(),
        created_at: now_millis(),
        data: "{}".into(),
        customer_email: Some("Bo@Example.com".into()),
    }
}

/// Stored Stripe writes: recorded once per key, claimed by one owner at a time under a lease
/// that another may take over once it lapses, given back for a later attempt, and finished
/// with their result in the same transaction as the change that applies it.
/// The billing portal's settings: made once with their secret (a second put keeps it), the
/// cancellation choice changed, and the configuration made recorded only forward.
async fn portal_settings(store: DynStore) {
    let p = project(&store).await;
    assert!(
        store
            .portal_settings(&p.id, Mode::Test)
            .await
            .unwrap()
            .is_none()
    );
    let put = |cancel: Option<&str>, secret: &str| ExtraWrite::PutPortalSettings {
        project_id: p.id.clone(),
        mode: Mode::Test,
        cancel_mode: cancel.map(str::to_owned),
        proof_secret: secret.to_owned(),
    };
    store.write(vec![put(None, "cps_one")]).await.unwrap();
    store.write(vec![put(None, "cps_two")]).await.unwrap();
    let r = store
        .portal_settings(&p.id, Mode::Test)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.cancel_mode.as_str(), r.proof_secret.as_str(), r.version),
        ("at_period_end", "cps_one", 0)
    );
    assert_eq!(r.configuration_id, None);
    store
        .write(vec![put(Some("immediately"), "cps_three")])
        .await
        .unwrap();
    let configured = |version: i64, id: &str| ExtraWrite::PortalConfigured {
        project_id: p.id.clone(),
        mode: Mode::Test,
        account_id: "acct_1".into(),
        configuration_id: id.into(),
        configuration: format!("{{\"v\":{version}}}"),
        version,
    };
    store.write(vec![configured(2, "bpc_2")]).await.unwrap();
    // An older configuration finishing late changes nothing.
    store.write(vec![configured(1, "bpc_1")]).await.unwrap();
    let r = store
        .portal_settings(&p.id, Mode::Test)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            r.cancel_mode.as_str(),
            r.proof_secret.as_str(),
            r.configuration_id.as_deref(),
            r.version
        ),
        ("immediately", "cps_one", Some("bpc_2"), 2)
    );
    assert_eq!(r.account_id.as_deref(), Some("acct_1"));
    assert!(
        store
            .portal_settings(&p.id, Mode::Live)
            .await
            .unwrap()
            .is_none()
    );
}

async fn operations(store: DynStore) {
    let p = project(&store).await;
    let t0 = 1_000_000;
    // Recorded with the change that asks for it; the same key again records nothing new.
    store
        .write(vec![new_operation(&p, "op_a", t0)])
        .await
        .unwrap();
    store
        .write(vec![ExtraWrite::RecordOperation(NewOperation {
            request: "{\"other\":true}".into(),
            ..match new_operation(&p, "op_a", t0 + 5) {
                ExtraWrite::RecordOperation(o) => o,
                _ => unreachable!(),
            }
        })])
        .await
        .unwrap();
    let a = store.operation("op_a").await.unwrap().unwrap();
    assert_eq!(a.status, OperationStatus::Pending);
    assert_eq!(a.request, "{\"for\":\"op_a\"}");
    assert_eq!(
        (a.attempts, a.owner.as_deref(), a.created_at),
        (0, None, t0)
    );
    assert_eq!(a.project_id, p.id);
    assert!(store.operation("op_missing").await.unwrap().is_none());
    store
        .write(vec![new_operation(&p, "op_b", t0 + 1)])
        .await
        .unwrap();

    // One claim at a time: "one" takes a by key; nobody else may until its lease lapses.
    let now = t0 + 10;
    let claimed = store
        .claim_operation("op_a", "one", now, now + 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (claimed.attempts, claimed.owner.as_deref()),
        (1, Some("one"))
    );
    assert!(
        store
            .claim_operation("op_a", "two", now + 50, now + 150)
            .await
            .unwrap()
            .is_none()
    );
    // The background claim takes only what no live lease holds: b, not a.
    let batch = store
        .claim_operations("two", now + 50, now + 150, 10)
        .await
        .unwrap();
    assert_eq!(
        batch.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["op_b"]
    );
    assert_eq!(batch[0].attempts, 1);
    // Renewed by its owner only.
    assert!(
        store
            .renew_operation("op_a", "one", now + 300)
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_operation("op_a", "two", now + 300)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_operations("three", now + 140, now + 400, 10)
            .await
            .unwrap()
            .is_empty(),
        "a renewed lease and b's are live"
    );
    // Lapsed: taken over, oldest first, each claim one more attempt.
    let taken = store
        .claim_operations("three", now + 301, now + 700, 10)
        .await
        .unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|o| (o.key.as_str(), o.attempts))
            .collect::<Vec<_>>(),
        [("op_a", 2), ("op_b", 2)]
    );
    assert!(
        !store
            .renew_operation("op_a", "one", now + 900)
            .await
            .unwrap()
    );

    // Given back after a failure that may pass: tried again from then, its error kept.
    store
        .retry_operation("op_b", "three", now + 1_000, "Stripe unreachable")
        .await
        .unwrap();
    let b = store.operation("op_b").await.unwrap().unwrap();
    assert_eq!(
        (b.owner, b.lease_until, b.result.as_deref()),
        (None, Some(now + 1_000), Some("Stripe unreachable"))
    );
    assert!(
        store
            .claim_operations("four", now + 650, now + 2_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A client's retry of the same request may take it at once.
    assert!(
        store
            .claim_operation("op_b", "four", now + 650, now + 2_000)
            .await
            .unwrap()
            .is_some()
    );

    // Done with its result, in the same transaction as the order it made; done once.
    store
        .write(vec![
            ExtraWrite::InsertOrder(new_order(&p, "ord_ops_1", "cs_1")),
            ExtraWrite::FinishOperation {
                key: "op_a".into(),
                status: OperationStatus::Done,
                result: "{\"id\":\"cs_1\"}".into(),
            },
        ])
        .await
        .unwrap();
    store
        .write(vec![
            ExtraWrite::InsertOrder(new_order(&p, "ord_ops_1", "cs_other")),
            ExtraWrite::FinishOperation {
                key: "op_a".into(),
                status: OperationStatus::Failed,
                result: "{}".into(),
            },
        ])
        .await
        .unwrap();
    let a = store.operation("op_a").await.unwrap().unwrap();
    assert_eq!(
        (a.status, a.result.as_deref(), a.owner, a.lease_until),
        (OperationStatus::Done, Some("{\"id\":\"cs_1\"}"), None, None)
    );
    let order = store
        .order_by(OrderKey::Id("ord_ops_1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((order.number, order.version), (1001, 1));
    assert_eq!(
        store
            .order_by(OrderKey::Session("cs_1"))
            .await
            .unwrap()
            .map(|o| o.id),
        Some("ord_ops_1".to_owned())
    );
    // The next order is numbered after it; numbering is per project.
    store
        .write(vec![ExtraWrite::InsertOrder(new_order(
            &p,
            "ord_ops_2",
            "cs_2",
        ))])
        .await
        .unwrap();
    let second = store
        .order_by(OrderKey::Id("ord_ops_2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.number, 1002);
    // Finished operations are never claimed again.
    store
        .write(vec![ExtraWrite::FinishOperation {
            key: "op_b".into(),
            status: OperationStatus::Failed,
            result: "{\"message\":\"no\"}".into(),
        }])
        .await
        .unwrap();
    assert!(
        store
            .claim_operations("five", i64::MAX - 1, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_operation("op_a", "five", i64::MAX - 1, i64::MAX)
            .await
            .unwrap()
            .is_none()
    );
    // A conversation's operation is held by the instance whose turn recorded it, until its
    // lease lapses (that instance died): then it is claimed like any other.
    let conversation = store.conversation_for(&p.id).await.unwrap().id;
    store
        .write(vec![ExtraWrite::RecordOperation(NewOperation {
            conversation_id: Some(conversation.clone()),
            held: Some(("six".into(), now + 1_000)),
            ..match new_operation(&p, "op_c", t0) {
                ExtraWrite::RecordOperation(o) => o,
                _ => unreachable!(),
            }
        })])
        .await
        .unwrap();
    let c = store.operation("op_c").await.unwrap().unwrap();
    assert_eq!(
        (c.owner.as_deref(), c.lease_until, c.attempts),
        (Some("six"), Some(now + 1_000), 0)
    );
    assert!(
        store
            .claim_operations("five", now + 999, now + 2_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .renew_operation("op_c", "six", now + 3_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_operations("five", now + 2_500, now + 5_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let taken = store
        .claim_operations("five", now + 3_000, now + 5_000, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (taken[0].key.as_str(), taken[0].conversation_id.as_ref()),
        ("op_c", Some(&conversation))
    );
    assert_eq!(taken[0].owner.as_deref(), Some("five"));
    // A version-checked row that changes nothing fails the whole write.
    let refused = store
        .write(vec![
            new_operation(&p, "op_d", t0),
            ExtraWrite::PutOrder(OrderUpdate {
                id: "ord_ops_1".into(),
                expected_version: 7,
                status: "paid".into(),
                payment_intent: None,
                data: "{}".into(),
                customer_email: None,
            }),
        ])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert!(store.operation("op_d").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_meets_the_store_contract() {
    let (store, _dir) = sqlite().await;
    contract(store).await;
    let (store, _dir) = sqlite().await;
    group_commit(store).await;
    let (store, _dir) = sqlite().await;
    catalog(store).await;
    let (store, _dir) = sqlite().await;
    orders(store).await;
    let (store, _dir) = sqlite().await;
    subscriptions(store).await;
    let (store, _dir) = sqlite().await;
    app_outbox(store).await;
    let (store, _dir) = sqlite().await;
    ledger(store).await;
    let (store, _dir) = sqlite().await;
    operations(store).await;
    let (store, _dir) = sqlite().await;
    portal_settings(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_meets_the_store_contract() {
    let Some(store) = postgres().await else {
        eprintln!("CHATPAY_TEST_POSTGRES=skip: the PostgreSQL contract is skipped");
        return;
    };
    contract(store).await;
    group_commit(postgres().await.unwrap()).await;
    catalog(postgres().await.unwrap()).await;
    orders(postgres().await.unwrap()).await;
    subscriptions(postgres().await.unwrap()).await;
    app_outbox(postgres().await.unwrap()).await;
    ledger(postgres().await.unwrap()).await;
    operations(postgres().await.unwrap()).await;
    portal_settings(postgres().await.unwrap()).await;
}

/// Under a steady stream of turns the write-ahead log is checkpointed and restarted, so it stays
/// a fraction of what was written (a checkpointer beside the writer never caught up, and the log
/// grew without bound). The stream runs long enough for several checkpoint periods, and writes
/// enough (1,500 turns of 8 KB) that a log bounded at a few megabytes is a fraction of it even on
/// a disk whose syncs are slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_ahead_log_stays_bounded_under_steady_writes() {
    let (store, dir) = sqlite().await;
    let p = project(&store).await;
    let conv = store.conversation_for(&p.id).await.unwrap().id;
    let body: Arc<str> = Arc::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(8000)));
    let started = std::time::Instant::now();
    let (mut seq, mut written) = (0i64, 0usize);
    while seq < 1500 || started.elapsed() < std::time::Duration::from_millis(1500) {
        let mut t = turn(&conv, seq, vec![frame(seq + 1, None)]);
        t.frames[0].body = body.clone();
        store.commit_turn(t).await.unwrap();
        seq += 1;
        written += body.len();
    }
    let wal = std::fs::metadata(dir.path().join("t.db-wal"))
        .unwrap()
        .len() as usize;
    assert!(
        wal < written / 2,
        "the log is {wal} bytes after {written} bytes of frames in {seq} turns"
    );
    assert_eq!(
        store.frames_after(&conv, 0, 10_000).await.unwrap().len() as i64,
        seq
    );
}

#[tokio::test]
async fn in_memory_sqlite_is_refused() {
    let err = chatpay_store::connect("sqlite::memory:")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("in-memory"), "{err}");
}

#[tokio::test]
async fn unknown_database_urls_are_refused() {
    let err = chatpay_store::connect("mysql://x").await.err().unwrap();
    assert!(
        err.to_string().contains("unsupported database URL"),
        "{err}"
    );
}
