//! The orchestrator: a client frame becomes a [`Command`], the command an input to the pure flows,
//! and the effects they return are carried out here: frames stored (with the new state, in one
//! transaction) before they are sent, Stripe called, connections saved.
//!
//! Each conversation is served by one actor task (see `actor`), so a conversation's turns are
//! applied one at a time and its `seq` has no gaps, while different conversations run in
//! parallel and share group commits. Actors load on first use and unload when idle.
//!
//! With several instances on one PostgreSQL, an actor's copy of its conversation is a cache: the
//! database decides which turn commits (a compare-and-set on `last_seq`), the loser reloads and
//! applies its input again, and other instances' commits arrive as notifications
//! ([`Engine::follow_changes`]) that make the actor read and push the new frames
//! (docs/architecture.md, "Several instances").

mod actor;
pub mod app_webhooks;
mod billing;
mod bucket;
mod catalog_sync;
mod golive;
mod hub;
mod identity;
mod message;
mod operations;
mod orders;
mod plans;
mod projects;
mod turn;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{broadcast, oneshot};

use crate::auth::Principal;
use crate::config::ChatConfig;
use chatpay_core::domain::{ConversationId, Mode, ProjectId, TokenId};
use chatpay_core::error::ErrorCode;
use chatpay_core::flows::{CatalogAnswer, CheckItem, Entry, Links, Outside};
use chatpay_core::intents::Matcher;
use chatpay_core::rules::{RefusalKind, Refused};
use chatpay_store::{
    DynStore, ProjectRecord, Recorded, StoreError, StoredFrame, TokenKind, WebhookEventRecord,
};
use chatpay_stripe::Gateway;
use chatpay_stripe::webhook::EventEnvelope;

use actor::Msg;
pub use bucket::TokenBucket;
pub use hub::ActorHandle;
use hub::Hub;
pub use identity::Session;
pub use message::OutFrame;
pub use orders::{CheckoutInput, PUBLISHABLE_PREFIX};
pub use projects::Received;

/// A client frame that asks for something, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Say {
        id: String,
        text: String,
    },
    Click {
        id: String,
        card: String,
        action: String,
        values: BTreeMap<String, String>,
    },
}

impl Command {
    pub fn id(&self) -> &str {
        match self {
            Command::Say { id, .. } | Command::Click { id, .. } => id,
        }
    }
}

/// What a turn did besides the frames every client receives.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnReply {
    Done,
    /// The id was already answered: these are the frames it produced, to send again.
    Resend(Vec<OutFrame>),
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    StaleCard(String),
    #[error("some values are not valid")]
    InvalidValues(BTreeMap<String, String>),
    #[error("{0}")]
    BackendRequired(String),
    #[error("the server is shutting down or overloaded; retry shortly")]
    Unavailable,
    /// The request breaks a rule (a bad cart, an over-refund); says what to do.
    #[error("{message}")]
    Rejected { code: &'static str, message: String },
    /// The project is not in a state that allows it (Stripe not connected, charges disabled).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The caller may not do this from where it calls (a web origin the project doesn't allow).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ChatError {
    /// The error code clients receive.
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::Unauthorized(_) => ErrorCode::Unauthorized,
            ChatError::NotFound(_) => ErrorCode::NotFound,
            ChatError::StaleCard(_) => ErrorCode::StaleCard,
            ChatError::InvalidValues(_) => ErrorCode::InvalidValues,
            ChatError::BackendRequired(_) => ErrorCode::BackendRequired,
            ChatError::Unavailable => ErrorCode::Unavailable,
            ChatError::Rejected { code, .. }
            | ChatError::Conflict { code, .. }
            | ChatError::Forbidden { code, .. } => ErrorCode::Rule(code),
            ChatError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// What the user may see (internals are logged, not sent).
    pub fn public_message(&self) -> String {
        match self {
            ChatError::Internal(_) => {
                "Something went wrong on our side; nothing was lost. Please retry.".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl From<Refused> for ChatError {
    fn from(r: Refused) -> Self {
        match r.kind {
            RefusalKind::Rejected => ChatError::Rejected {
                code: r.code,
                message: r.message,
            },
            RefusalKind::NotReady => ChatError::Conflict {
                code: r.code,
                message: r.message,
            },
            RefusalKind::BackendRequired => ChatError::BackendRequired(r.message),
        }
    }
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ChatError::NotFound("not found".to_owned()),
            other => ChatError::Internal(anyhow::Error::new(other)),
        }
    }
}

/// A client's place in a conversation after `hello`.
pub struct Joined {
    pub conversation: ConversationId,
    pub mode: Mode,
    pub last_seq: i64,
    pub frames: broadcast::Receiver<OutFrame>,
    pub handle: ActorHandle,
}

/// What `POST /v1/projects/{id}/mode` comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum ModeAnswer {
    /// The project is in the mode asked for (it switched, or already was).
    Switched(ProjectRecord),
    /// The checklist found something missing: every item, passing or not.
    NotReady(Vec<CheckItem>),
}

/// A flow's position, for the HTTP API.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FlowView {
    pub conversation: String,
    pub flow: Option<String>,
    pub state: Option<String>,
}

pub(crate) struct Inner {
    pub store: DynStore,
    pub matcher: Arc<Matcher>,
    pub gateway: Arc<dyn Gateway>,
    pub links: Links,
    pub labels: BTreeMap<String, String>,
    pub config: ChatConfig,
    hub: Hub,
    /// Paces catalog reads within Stripe's rate limit, per mode.
    pacers: [Arc<catalog_sync::Pacer>; 2],
    /// Wakes the app webhook delivery task when a turn has put events in the outbox.
    pub app_events: tokio::sync::Notify,
    pub app_seq: app_webhooks::EventSeq,
    pub app_webhooks: app_webhooks::RetryPolicy,
    /// This instance's name in the claims it makes on stored Stripe writes: the logs' instance
    /// id (`telemetry::instance_id`) and a nonce of this boot.
    pub instance: String,
    /// Wakes the task that finishes stored Stripe writes (one is waiting for another attempt).
    pub operations_due: tokio::sync::Notify,
    /// The keys of the conversations' Stripe writes this instance is making right now: their
    /// leases are renewed while Stripe answers (`run_operations`), and a conversation woken to
    /// take one over does not make it twice.
    pub calls_in_flight: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The crash test's fault hook ([`operations::FAULT_PAUSE_ENV`]); `None` in production.
    pub fault_pause: Option<String>,
    /// Whether other instances may write the same database (PostgreSQL): then an actor's copy
    /// of its conversation is a cache, checked against the store where it matters.
    pub shared: bool,
    /// Credentials revoked in this process: open connections using one close.
    revocations: broadcast::Sender<TokenId>,
    /// Each project's conversation, as looked up (it never changes).
    conversations: std::sync::Mutex<std::collections::HashMap<ProjectId, ConversationId>>,
}

impl Inner {
    /// The Stripe writes in flight ([`Inner::calls_in_flight`]).
    pub(crate) fn calls_in_flight(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        // The set holds plain keys; a panic elsewhere cannot leave it half-written.
        self.calls_in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn conversations(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<ProjectId, ConversationId>> {
        // The map holds plain ids; a panic elsewhere cannot leave it half-written.
        self.conversations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn pacer(&self, mode: Mode) -> &Arc<catalog_sync::Pacer> {
        &self.pacers[usize::from(mode.is_live())]
    }
}

/// How far before its previous look the revocation sweep reads again: revocations are stamped
/// by the revoking process's clock, before their transaction commits.
const SWEEP_OVERLAP_MS: i64 = 30_000;

/// The chat engine: cheap to clone, shared by the WebSocket and HTTP layers.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    pub fn new(
        store: DynStore,
        matcher: Arc<Matcher>,
        gateway: Arc<dyn Gateway>,
        public_url: String,
        config: ChatConfig,
    ) -> Engine {
        let labels = matcher
            .intent_names()
            .filter_map(|n| {
                matcher
                    .describe(n)
                    .map(|(_, label)| (n.to_owned(), label.to_owned()))
            })
            .collect();
        let links = Links {
            public: public_url,
            oauth_authorize: gateway.oauth_authorize_base(),
        };
        let shared = store.backend() == "postgres";
        Engine {
            inner: Arc::new(Inner {
                shared,
                store,
                matcher,
                gateway,
                links,
                labels,
                pacers: [
                    Arc::new(catalog_sync::Pacer::new(
                        config.stripe_test_requests_per_second,
                    )),
                    Arc::new(catalog_sync::Pacer::new(
                        config.stripe_live_requests_per_second,
                    )),
                ],
                app_events: tokio::sync::Notify::new(),
                app_seq: app_webhooks::EventSeq::default(),
                app_webhooks: app_webhooks::RetryPolicy {
                    first_retry: config.app_webhook_first_retry,
                    give_up_after: std::time::Duration::from_secs(
                        config.app_webhook_give_up_hours.saturating_mul(3600),
                    ),
                    timeout: config.app_webhook_timeout,
                },
                config,
                // The name every log line carries, with this boot's nonce: a restarted process
                // (same host and pid, or the same `CHATPAY_INSTANCE`) is not taken for its
                // predecessor's claims.
                instance: format!(
                    "{}.{}",
                    crate::telemetry::instance_id(),
                    chatpay_core::domain::random_hex(4)
                ),
                operations_due: tokio::sync::Notify::new(),
                calls_in_flight: std::sync::Mutex::default(),
                fault_pause: std::env::var(operations::FAULT_PAUSE_ENV)
                    .ok()
                    .filter(|v| !v.is_empty()),
                hub: Hub::default(),
                revocations: broadcast::channel(64).0,
                conversations: std::sync::Mutex::default(),
            }),
        }
    }

    /// The project's stored catalog in its current mode, products sorted by name.
    pub async fn catalog(&self, project: &ProjectRecord) -> Result<CatalogAnswer, ChatError> {
        catalog_sync::read(&self.inner.store, &project.id, project.mode, None)
            .await
            .map_err(|e| ChatError::Internal(anyhow::anyhow!(e.message)))
    }

    pub fn matcher(&self) -> &Matcher {
        &self.inner.matcher
    }

    /// The principal of an API token or a platform's scoped token (as sent in
    /// `Authorization: Bearer` or the chat's `hello`), or `unauthorized`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ChatError> {
        crate::auth::verify(
            &*self.inner.store,
            token,
            &[TokenKind::Api, TokenKind::Scoped],
        )
        .await?
        .ok_or_else(|| ChatError::Unauthorized("the API token is not valid".to_owned()))
    }

    /// The principal of a browser session's cookie, or `unauthorized`.
    pub async fn authenticate_session(&self, secret: &str) -> Result<Principal, ChatError> {
        crate::auth::verify(&*self.inner.store, secret, &[TokenKind::Session])
            .await?
            .ok_or_else(|| ChatError::Unauthorized("You are signed out. Sign in again.".to_owned()))
    }

    /// The project if it exists and the principal reaches it (its workspace's, or a scoped
    /// token's one project); otherwise `not_found`, the same whether it exists elsewhere or
    /// not at all.
    pub async fn project_of(
        &self,
        who: &Principal,
        project: &str,
    ) -> Result<ProjectRecord, ChatError> {
        let found = match ProjectId::parse(project) {
            Some(id) => self.inner.store.project(&id).await?,
            None => None,
        };
        found
            .filter(|p| who.reaches(&p.workspace_id, &p.id))
            .ok_or_else(|| {
                ChatError::NotFound(format!("no project \"{project}\" in this workspace"))
            })
    }

    /// Tells open connections that a credential was revoked (they close at once).
    pub fn revoked(&self, credential: &TokenId) {
        let _ = self.inner.revocations.send(credential.clone());
    }

    /// Revoked credentials, as this process learns of them: revoked here, notified by
    /// PostgreSQL, or found by [`Engine::sweep_revocations`].
    pub fn revocations(&self) -> broadcast::Receiver<TokenId> {
        self.inner.revocations.subscribe()
    }

    /// Whether the principal's credential still works (not revoked, not expired), asked of the
    /// store: a connection that missed revocations (its receiver lagged) checks its own.
    pub async fn still_valid(&self, who: &Principal) -> Result<bool, ChatError> {
        let now = chatpay_core::domain::now_millis();
        Ok(self
            .inner
            .store
            .token(&who.credential)
            .await?
            .is_some_and(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now)))
    }

    /// Until `stopping`: every `revocation_sweep`, reads the credentials revoked since the last
    /// look and tells open connections, as a revocation made here does. This covers what no
    /// notification brings: SQLite (`chatpay token revoke` and `user reset-password` are other
    /// processes), and on PostgreSQL a notification lost while the listener was reconnecting.
    /// Each look reaches back [`SWEEP_OVERLAP_MS`] before the previous one, so a revocation
    /// stamped by a slightly slow clock, or committed just after its stamp, is not missed; an
    /// id already told is not told again.
    pub async fn sweep_revocations(&self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.inner.config.revocation_sweep);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut since = chatpay_core::domain::now_millis() - SWEEP_OVERLAP_MS;
        let mut told: std::collections::HashMap<TokenId, i64> = std::collections::HashMap::new();
        loop {
            tokio::select! {
                _ = stopping.changed() => return,
                _ = tick.tick() => {}
            }
            let looked_at = chatpay_core::domain::now_millis();
            match self.inner.store.revoked_since(since).await {
                Ok(revoked) => {
                    for (id, at) in revoked {
                        if told.insert(id.clone(), at).is_none() {
                            self.revoked(&id);
                        }
                    }
                    since = looked_at - SWEEP_OVERLAP_MS;
                    told.retain(|_, at| *at >= since);
                }
                Err(e) => tracing::warn!(error = %e, "could not read revoked credentials"),
            }
        }
    }

    /// Joins the project's conversation: subscribes to its frames and tells where it is.
    pub async fn join(&self, project: &ProjectRecord) -> Result<Joined, ChatError> {
        let conversation = self.inner.store.conversation_for(&project.id).await?;
        let (handle, frames) = self
            .inner
            .hub
            .subscribe(&self.inner, &conversation.id, &project.id);
        // Asked after subscribing: every frame after `last_seq` will come through `frames`.
        let (tx, rx) = oneshot::channel();
        handle.send(Msg::LastSeq { reply: tx }).await?;
        let last_seq = rx.await.map_err(|_| ChatError::Unavailable)??;
        Ok(Joined {
            conversation: conversation.id,
            mode: project.mode,
            last_seq,
            frames,
            handle,
        })
    }

    /// Follows other instances' commits until `stopping`: each notification wakes the actor of
    /// its conversation if this instance has it loaded (it reads the new frames from the store
    /// and pushes them); after the listener reconnects, and every `poll` in case a
    /// notification was lost, every loaded actor checks the store. Nothing to follow on SQLite.
    pub async fn follow_changes(&self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let Some(mut feed) = self.inner.store.take_changes() else {
            return;
        };
        let poll = self.inner.config.safety_poll;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stopping.changed() => return,
                change = feed.changes.recv() => match change {
                    Some(chatpay_store::changes::Change::Moved { conversation, seq }) => {
                        metrics::counter!("chatpay_notifications_total").increment(1);
                        self.inner.hub.behind(&conversation, Some(seq));
                    }
                    Some(chatpay_store::changes::Change::Revoked { credential }) => {
                        self.revoked(&credential);
                    }
                    Some(chatpay_store::changes::Change::Reconnected) => {
                        metrics::counter!("chatpay_listener_reconnects_total").increment(1);
                        self.inner.hub.all_behind();
                    }
                    None => return,
                },
                _ = tick.tick() => self.inner.hub.all_behind(),
            }
        }
    }

    /// Stored frames with `after < seq <= upto`, in order.
    pub async fn backlog(
        &self,
        conversation: &ConversationId,
        after: i64,
        upto: i64,
    ) -> Result<Vec<OutFrame>, ChatError> {
        let mut out = Vec::new();
        let mut cursor = after;
        while cursor < upto {
            let page = self
                .inner
                .store
                .frames_after(conversation, cursor, 500.min(upto - cursor))
                .await?;
            let Some(last) = page.last() else { break };
            cursor = last.seq;
            out.extend(page.into_iter().filter(|f| f.seq <= upto).map(to_out));
        }
        Ok(out)
    }

    /// Applies a client command to the conversation behind `handle`.
    pub async fn turn(&self, handle: &ActorHandle, cmd: Command) -> Result<TurnReply, ChatError> {
        let (tx, rx) = oneshot::channel();
        handle
            .send(Msg::Turn {
                cmd: Box::new(cmd),
                reply: tx,
            })
            .await?;
        rx.await.map_err(|_| ChatError::Unavailable)?
    }

    async fn handle_for(&self, project: &ProjectRecord) -> Result<ActorHandle, ChatError> {
        self.handle_for_id(&project.id).await
    }

    /// The actor of the project's conversation. A project's conversation never changes once
    /// made, so it is looked up once and remembered.
    async fn handle_for_id(&self, project: &ProjectId) -> Result<ActorHandle, ChatError> {
        let known = self.inner.conversations().get(project).cloned();
        let conversation = match known {
            Some(c) => c,
            None => {
                let c = self.inner.store.conversation_for(project).await?.id;
                self.inner
                    .conversations()
                    .insert(project.clone(), c.clone());
                c
            }
        };
        Ok(self.inner.hub.get(&self.inner, &conversation, project))
    }

    /// Sends an outside event to the project's conversation and waits until it is applied.
    pub async fn outside(
        &self,
        project: &ProjectRecord,
        event: Outside,
    ) -> Result<FlowView, ChatError> {
        let handle = self.handle_for(project).await?;
        let (tx, rx) = oneshot::channel();
        handle
            .send(Msg::Outside {
                event: Box::new(event),
                ledger: None,
                from: None,
                record: None,
                reply: Some(tx),
            })
            .await?;
        rx.await.map_err(|_| ChatError::Unavailable)?
    }

    /// Starts (or shows) `stripe_connect` from the project screens.
    pub async fn start_connect(
        &self,
        project: &ProjectRecord,
        entry: Entry,
    ) -> Result<FlowView, ChatError> {
        Self::require_backend(project)?;
        self.outside(project, Outside::StartConnect(entry)).await
    }

    /// Switches the project to `mode`: back to test at once; to live only when the go-live
    /// checklist (run by the conversation's flow, the same one the chat runs) passes.
    pub async fn set_mode(
        &self,
        project: &ProjectRecord,
        mode: Mode,
    ) -> Result<ModeAnswer, ChatError> {
        if mode.is_live() {
            Self::require_backend(project)?;
        }
        let handle = self.handle_for(project).await?;
        let (tx, rx) = oneshot::channel();
        handle.send(Msg::SetMode { mode, reply: tx }).await?;
        rx.await.map_err(|_| ChatError::Unavailable)?
    }

    /// Where the project's conversation is.
    pub async fn flow_view(&self, project: &ProjectRecord) -> Result<FlowView, ChatError> {
        let handle = self.handle_for(project).await?;
        let (tx, rx) = oneshot::channel();
        handle.send(Msg::View { reply: tx }).await?;
        rx.await.map_err(|_| ChatError::Unavailable)
    }

    /// The project a conversation belongs to.
    pub async fn project_of_conversation(
        &self,
        conversation: &str,
    ) -> Result<ProjectRecord, ChatError> {
        let not_found = || ChatError::NotFound("no such conversation".to_owned());
        let id = ConversationId::parse(conversation).ok_or_else(not_found)?;
        let conv = self
            .inner
            .store
            .conversation(&id)
            .await?
            .ok_or_else(not_found)?;
        self.inner
            .store
            .project(&conv.project_id)
            .await?
            .ok_or_else(not_found)
    }

    /// The refresh URL of an onboarding link: the conversation asks Stripe for a new link (a
    /// call of its own, with its idempotency key, re-issued after a crash), tells the chat, and
    /// the browser is sent to it.
    pub async fn refresh_link(&self, conversation: &str, nonce: &str) -> Result<String, ChatError> {
        let project = self.project_of_conversation(conversation).await?;
        let handle = self.handle_for(&project).await?;
        let (tx, rx) = oneshot::channel();
        handle
            .send(Msg::RefreshLink {
                nonce: nonce.to_owned(),
                reply: tx,
            })
            .await?;
        rx.await.map_err(|_| ChatError::Unavailable)?
    }

    /// Hands a recorded Stripe event to the conversations it concerns (after a crash, or a
    /// redelivery of one recorded but not applied). Returns what happened, for the ledger.
    pub async fn stripe_event(&self, event: &EventEnvelope) -> Result<String, ChatError> {
        Ok(self.handle_event(event, None).await?.0)
    }

    /// Handles a verified event. `record` is its ledger row when it is not stored yet: it is
    /// stored with the event's first effect (the ignored outcome, or the conversation's turn),
    /// in the writer's group commit, so that a delivery costs one shared commit before its
    /// answer. Returns what happened and whether the row turned out to be stored already (a
    /// concurrent delivery of the same event got there first).
    pub(crate) async fn handle_event(
        &self,
        event: &EventEnvelope,
        mut record: Option<WebhookEventRecord>,
    ) -> Result<(String, Recorded), ChatError> {
        let store = &self.inner.store;
        let Some(account) = event.account.as_deref() else {
            let outcome = "ignored: not about a connected account".to_owned();
            return self.settle(event, record, outcome).await;
        };
        let Some(input) = event.input() else {
            let outcome = format!("ignored: {} is not handled", event.event_type);
            return self.settle(event, record, outcome).await;
        };
        // An order's re-read marks its event applied with the order's change; other inputs
        // mark it with the turn they cause.
        let ledger = match &input {
            Outside::OrderChanged { .. }
            | Outside::SubscriptionChanged { .. }
            | Outside::PayoutChanged { .. } => None,
            _ => Some(event.id.clone()),
        };
        let mode = if event.livemode {
            Mode::Live
        } else {
            Mode::Test
        };
        let connections = store.connections_for_account(account).await?;
        let matching: Vec<_> = connections.iter().filter(|c| c.mode == mode).collect();
        if matching.is_empty() {
            let outcome = if connections.is_empty() {
                format!("ignored: no project is connected to {account}")
            } else {
                format!(
                    "ignored: livemode={} does not match the connection's mode",
                    event.livemode
                )
            };
            return self.settle(event, record, outcome).await;
        }
        for c in matching {
            let handle = self.handle_for_id(&c.project_id).await?;
            let (tx, rx) = oneshot::channel();
            handle
                .send(Msg::Outside {
                    event: Box::new(input.clone()),
                    ledger: ledger.clone(),
                    from: Some((event.id.clone(), mode)),
                    // Stored with the first project's turn.
                    record: record.take().map(Box::new),
                    reply: Some(tx),
                })
                .await?;
            rx.await.map_err(|_| ChatError::Unavailable)??;
        }
        Ok(("delivered".to_owned(), Recorded::New))
    }

    /// An event chatpay does not act on: recorded as handled in one insert, or, if its row is
    /// stored already, marked handled.
    async fn settle(
        &self,
        event: &EventEnvelope,
        record: Option<WebhookEventRecord>,
        outcome: String,
    ) -> Result<(String, Recorded), ChatError> {
        let store = &self.inner.store;
        let recorded = match record {
            Some(mut r) => {
                r.processed_at = Some(chatpay_core::domain::now_millis());
                r.outcome = Some(outcome.clone());
                store.record_event(&r).await?
            }
            None => Recorded::Duplicate,
        };
        if recorded == Recorded::Duplicate {
            store.mark_event_processed(&event.id, &outcome).await?;
        }
        Ok((outcome, recorded))
    }

    /// Handles events recorded before a crash but not yet applied.
    pub async fn resume_events(&self) -> Result<usize, ChatError> {
        let pending: Vec<WebhookEventRecord> = self.inner.store.unprocessed_events(10_000).await?;
        let mut n = 0;
        for record in &pending {
            match EventEnvelope::parse(record.payload.as_bytes()) {
                Ok(env) => {
                    self.stripe_event(&env).await?;
                    n += 1;
                }
                Err(e) => {
                    self.inner
                        .store
                        .mark_event_processed(&record.id, &format!("ignored: unreadable ({e})"))
                        .await?;
                }
            }
        }
        Ok(n)
    }
}

fn to_out(f: StoredFrame) -> OutFrame {
    OutFrame {
        seq: f.seq,
        json: f.body,
    }
}

impl ActorHandle {
    pub(crate) async fn send(&self, msg: Msg) -> Result<(), ChatError> {
        self.tx()
            .send(msg)
            .await
            .map_err(|_| ChatError::Unavailable)
    }
}
