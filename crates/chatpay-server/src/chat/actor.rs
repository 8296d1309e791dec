//! One task per loaded conversation. It owns the conversation's state, applies inputs one at a
//! time through the pure flows, stores each turn (state + frames + connection changes) before
//! anyone sees it, then broadcasts the frames and starts the Stripe calls the turn asked for.
//! What a turn stores and what follows from it is worked out without I/O in `super::turn`.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::app_webhooks::EVENT_PREFIX;
use super::catalog_sync::{self, Pacer};
use super::message::{IntentTag, OutFrame};
use super::orders::OrderCtx;
use super::turn::{self, After, Cause, Held, Stamps, Turn, slot};
use super::{ChatError, Command, FlowView, Inner, ModeAnswer, TurnReply, to_out};
use chatpay_core::domain::{ConversationId, Mode, ProjectId, now_millis, random_hex};
use chatpay_core::flows::{
    Call, CallError, CallOutput, Connection, ConversationState, Entry, Facts, Input, LiveFacts,
    OrderRef, Outside, Refusal, checklist,
};
use chatpay_core::intents::Outcome;
use chatpay_store::{
    ExtraWrite, OperationStatus, OrderKey, ProjectRecord, StoreError, StoredFrame,
    WebhookEventRecord,
};
use chatpay_stripe::Gateway;

/// What an actor is asked. Payloads are boxed so that a message, and so the mailbox every
/// loaded conversation allocates, stays small.
pub(crate) enum Msg {
    Turn {
        cmd: Box<Command>,
        reply: oneshot::Sender<Result<TurnReply, ChatError>>,
    },
    Outside {
        event: Box<Outside>,
        /// The webhook event this input applies; marked handled with the turn.
        ledger: Option<String>,
        /// The Stripe event this input comes from (its id and mode), if it comes from one.
        from: Option<(String, Mode)>,
        /// The webhook event's ledger row, when it is not stored yet: recorded with the turn,
        /// so that the delivery costs one commit (shared with other turns) before its answer.
        record: Option<Box<WebhookEventRecord>>,
        reply: Option<oneshot::Sender<Result<FlowView, ChatError>>>,
    },
    /// `POST …/mode`: switch back to test, or run the go-live checklist and answer with its
    /// outcome once it is done.
    SetMode {
        mode: Mode,
        reply: oneshot::Sender<Result<ModeAnswer, ChatError>>,
    },
    Done {
        op: u64,
        result: Box<Result<CallOutput, CallError>>,
    },
    LastSeq {
        reply: oneshot::Sender<Result<i64, ChatError>>,
    },
    /// The Stripe write `key` of this conversation was left by an instance that stopped (its
    /// lease lapsed; this instance claimed it): make it again, unless it is running here.
    TakeOver {
        key: String,
    },
    /// Another instance may have moved the conversation (to `seq`, if a notification said; a
    /// poll or a listener's reconnect does not know): read the store, take on what it has and
    /// push the new frames to this instance's clients.
    Behind {
        seq: Option<i64>,
    },
    View {
        reply: oneshot::Sender<FlowView>,
    },
    /// A refresh URL was opened: the new onboarding link, once Stripe gave it (`NotFound`
    /// when that link no longer leads anywhere).
    RefreshLink {
        nonce: String,
        reply: oneshot::Sender<Result<String, ChatError>>,
    },
}

struct Actor {
    inner: Arc<Inner>,
    conversation: ConversationId,
    project: ProjectRecord,
    state: ConversationState,
    state_json: String,
    last_seq: i64,
    /// The highest `seq` broadcast to this instance's clients. Equal to `last_seq` except
    /// while frames another instance stored are being read to be pushed.
    pushed_seq: i64,
    answered: HashSet<String>,
    /// The project's connections, test then live (see `turn::slot`).
    connections: [Option<Connection>; 2],
    connected_at: [i64; 2],
    frames: broadcast::Sender<OutFrame>,
    me: mpsc::WeakSender<Msg>,
    /// Browsers waiting on a refresh URL for the link call `op` will bring.
    link_waiters: Vec<(u64, oneshot::Sender<Result<String, ChatError>>)>,
    /// `POST …/mode` requests waiting for the checklist call `op`.
    mode_waiters: Vec<(u64, oneshot::Sender<Result<ModeAnswer, ChatError>>)>,
    /// Calls whose result could not be stored, and how often each was retried.
    retries: std::collections::HashMap<u64, u32>,
}

/// How often a turn that lost its conversation to another instance is re-applied on the
/// reloaded state before it is refused as `unavailable` (each retry follows a commit by
/// someone else, so this bounds contention, not time).
const MAX_RELOADS: u32 = 8;
/// How often a call whose result could not be stored is run again (with a doubling pause),
/// before it is left to the next load of the conversation.
const MAX_CALL_RETRIES: u32 = 5;
/// Frames read per page when pushing what another instance stored.
const PUSH_PAGE: i64 = 200;

/// Whether a turn applied, or had already been answered (by another instance, found on reload).
enum Applied {
    Done,
    Answered,
}

pub(super) fn spawn(
    inner: Arc<Inner>,
    conversation: ConversationId,
    project: ProjectId,
    mut rx: mpsc::Receiver<Msg>,
    me: mpsc::WeakSender<Msg>,
    frames: broadcast::Sender<OutFrame>,
) {
    tokio::spawn(async move {
        // Boxed: the loading state (database futures) must not stay in the task's size.
        let loading = Box::pin(Actor::load(
            inner.clone(),
            conversation.clone(),
            &project,
            me,
            frames,
        ));
        let actor = match loading.await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(%conversation, error = ?e, "could not load conversation");
                rx.close();
                while let Some(msg) = rx.recv().await {
                    fail(msg, || {
                        ChatError::Internal(anyhow::anyhow!("conversation failed to load"))
                    });
                }
                return;
            }
        };
        actor.resume_calls();
        actor.run(rx).await;
    });
}

/// Answers a message that cannot be handled.
fn fail(msg: Msg, err: impl Fn() -> ChatError) {
    match msg {
        Msg::Turn { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        Msg::Outside {
            reply: Some(reply), ..
        } => {
            let _ = reply.send(Err(err()));
        }
        Msg::LastSeq { reply } => {
            let _ = reply.send(Err(err()));
        }
        Msg::SetMode { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        _ => {}
    }
}

impl Actor {
    async fn load(
        inner: Arc<Inner>,
        conversation: ConversationId,
        project: &ProjectId,
        me: mpsc::WeakSender<Msg>,
        frames: broadcast::Sender<OutFrame>,
    ) -> anyhow::Result<Actor> {
        let store = &inner.store;
        let record = store
            .conversation(&conversation)
            .await?
            .ok_or_else(|| anyhow::anyhow!("conversation {conversation} does not exist"))?;
        let project = store
            .project(project)
            .await?
            .ok_or_else(|| anyhow::anyhow!("project {project} does not exist"))?;
        let state: ConversationState = serde_json::from_str(&record.state)?;
        let mut connections = [None, None];
        let mut connected_at = [0, 0];
        for mode in [Mode::Test, Mode::Live] {
            if let Some(c) = store.connection(&project.id, mode).await? {
                connections[slot(mode)] = Some(Connection {
                    account: serde_json::from_str(&c.snapshot)?,
                    origin: c.origin,
                });
                connected_at[slot(mode)] = c.connected_at;
            }
        }
        let answered = store
            .answered_ids(&conversation)
            .await?
            .into_iter()
            .collect();
        Ok(Actor {
            state_json: serde_json::to_string(&state)?,
            inner,
            conversation,
            project,
            state,
            last_seq: record.last_seq,
            pushed_seq: record.last_seq,
            answered,
            connections,
            connected_at,
            frames,
            me,
            link_waiters: Vec::new(),
            mode_waiters: Vec::new(),
            retries: std::collections::HashMap::new(),
        })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let idle = self.inner.config.idle_unload;
        loop {
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                _ = tokio::time::sleep(idle) => {
                    if self.state.pending.is_empty()
                        && self.inner.hub.unload_if_idle(&self.conversation, &self.frames)
                    {
                        // Unregistered: answer what already arrived, then stop.
                        rx.close();
                        while let Some(msg) = rx.recv().await {
                            self.handle(msg).await;
                        }
                        return;
                    }
                    continue;
                }
            };
            match msg {
                Some(msg) => self.handle(msg).await,
                None => return,
            }
        }
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Turn { cmd, reply } => {
                let result = Box::pin(self.turn(*cmd)).await;
                let _ = reply.send(result);
            }
            Msg::Outside {
                event,
                ledger,
                from,
                record,
                reply,
            } => {
                let result = match from {
                    // A Stripe event works in its own mode, if this conversation works in it.
                    Some((id, mode)) if !self.works_in(mode) => {
                        self.refuse_event(&id, mode, record.map(|r| *r)).await
                    }
                    from => {
                        let mode = from.map_or(self.working_mode(), |(_, m)| m);
                        let cause = Cause::Outside {
                            ledger: ledger.as_deref(),
                            record: record.as_deref(),
                        };
                        let mut event = *event;
                        self.look_up_order(&mut event, mode).await;
                        Box::pin(self.apply(Input::Outside(event), cause, mode)).await
                    }
                };
                if let Some(reply) = reply {
                    let _ = reply.send(result.map(|_| self.view()));
                }
            }
            Msg::SetMode { mode, reply } => Box::pin(self.set_mode(mode, reply)).await,
            Msg::Done { op, result } => {
                let input = Input::Done {
                    op,
                    result: *result,
                };
                let cause = Cause::Answer(self.state.asked_by(op).cloned());
                let mode = self.call_mode(op);
                let checked = match &input {
                    Input::Done {
                        result: Ok(CallOutput::LiveChecked(facts)),
                        ..
                    } => Some(Ok((**facts).clone())),
                    Input::Done { result: Err(e), .. } => Some(Err(e.message.clone())),
                    _ => None,
                };
                let link = match &input {
                    Input::Done {
                        result: Ok(CallOutput::Link { url, .. }),
                        ..
                    } => Ok(url.clone()),
                    Input::Done { result: Err(e), .. } => Err(e.message.clone()),
                    _ => Err(String::new()),
                };
                let applied = Box::pin(self.apply(input, cause, mode)).await;
                if applied.is_ok()
                    && let Some(checked) = checked
                {
                    self.answer_mode_waiters(op, checked);
                }
                if applied.is_ok()
                    && let Some(i) = self.link_waiters.iter().position(|(o, _)| *o == op)
                {
                    let (_, waiter) = self.link_waiters.swap_remove(i);
                    let _ = waiter.send(link.map_err(|m| {
                        ChatError::Internal(anyhow::anyhow!("Stripe gave no link: {m}"))
                    }));
                }
                match applied {
                    Ok(()) => {
                        self.retries.remove(&op);
                    }
                    Err(e) => self.retry_call(op, &e),
                }
            }
            Msg::LastSeq { reply } => {
                // Several instances: the store, not this copy, says where the conversation is.
                if self.inner.shared
                    && let Err(e) = self.catch_up(None).await
                {
                    let _ = reply.send(Err(e));
                    return;
                }
                let _ = reply.send(Ok(self.pushed_seq));
            }
            Msg::Behind { seq } => {
                // Nobody to push to here: the next turn's compare-and-set finds out.
                if self.frames.receiver_count() == 0 {
                    return;
                }
                if let Err(e) = self.catch_up(seq).await {
                    tracing::warn!(conversation = %self.conversation, error = %e, "could not catch up with the store");
                }
            }
            Msg::View { reply } => {
                let _ = reply.send(self.view());
            }
            Msg::TakeOver { key } => {
                if let Err(e) = self.take_over(&key).await {
                    tracing::warn!(conversation = %self.conversation, key, error = %e, "could not take over a Stripe write");
                }
            }
            Msg::RefreshLink { nonce, reply } => {
                let before: Vec<u64> = self.state.pending.iter().map(|p| p.op).collect();
                let event = Outside::RefreshLink { nonce };
                let cause = Cause::Outside {
                    ledger: None,
                    record: None,
                };
                let mode = self.working_mode();
                if let Err(e) = Box::pin(self.apply(Input::Outside(event), cause, mode)).await {
                    let _ = reply.send(Err(e));
                    return;
                }
                let asked = self.state.pending.iter().find(|p| {
                    !before.contains(&p.op) && matches!(p.call, Call::RefreshLink { .. })
                });
                match asked {
                    Some(p) => self.link_waiters.push((p.op, reply)),
                    None => {
                        let _ = reply.send(Err(ChatError::NotFound(
                            "this link is no longer part of an onboarding".to_owned(),
                        )));
                    }
                }
            }
        }
    }

    fn view(&self) -> FlowView {
        let (flow, state) = match self.state.flow_state() {
            Some((kind, step)) => (Some(kind.as_str().to_owned()), Some(step.to_owned())),
            None => (None, None),
        };
        FlowView {
            conversation: self.conversation.to_string(),
            flow,
            state,
        }
    }

    async fn turn(&mut self, cmd: Command) -> Result<TurnReply, ChatError> {
        let id = cmd.id().to_owned();
        if self.answered.contains(&id) {
            let frames = self
                .inner
                .store
                .frames_replying_to(&self.conversation, &id)
                .await?;
            return Ok(TurnReply::Resend(frames.into_iter().map(to_out).collect()));
        }
        match cmd {
            Command::Say { text, .. } => {
                let classification = self.inner.matcher.classify(&text);
                let tag = match &classification.outcome {
                    Outcome::Matched(c) => Some(IntentTag {
                        name: c.intent.to_string(),
                        confidence: c.confidence,
                    }),
                    // Unsure or undecided (a clarify card asks): nothing matched.
                    _ => None,
                };
                tracing::debug!(conversation = %self.conversation, intent = ?tag, "say");
                let cause = Cause::Say {
                    id: &id,
                    text: &text,
                    intent: tag.as_ref(),
                };
                let mode = self.working_mode();
                if let Applied::Answered = self
                    .apply_fresh(Input::Say(&classification), cause, mode)
                    .await?
                {
                    return self.resend(&id).await;
                }
            }
            Command::Click {
                card,
                action,
                values,
                ..
            } => {
                let input = Input::Click {
                    card: &card,
                    action: &action,
                    values: &values,
                };
                let mode = self.working_mode();
                if let Applied::Answered = self
                    .apply_fresh(input, Cause::Click { id: &id }, mode)
                    .await?
                {
                    return self.resend(&id).await;
                }
            }
        }
        Ok(TurnReply::Done)
    }

    /// The frames an already answered client frame produced, to send again.
    async fn resend(&self, id: &str) -> Result<TurnReply, ChatError> {
        let frames = self
            .inner
            .store
            .frames_replying_to(&self.conversation, id)
            .await?;
        Ok(TurnReply::Resend(frames.into_iter().map(to_out).collect()))
    }

    /// A call's result could not be stored: run the call again (same key), a few times with
    /// a doubling pause, then leave it pending in the stored state (the next load of the
    /// conversation re-issues it). Never a tight loop, never a log line per attempt beyond
    /// the first and the last.
    fn retry_call(&mut self, op: u64, e: &ChatError) {
        let Some(p) = self.state.pending.iter().find(|p| p.op == op) else {
            // No longer pending (another instance stored its result): nothing to retry.
            self.retries.remove(&op);
            return;
        };
        let attempt = self.retries.entry(op).or_insert(0);
        *attempt += 1;
        if *attempt > MAX_CALL_RETRIES {
            tracing::error!(conversation = %self.conversation, op, error = %e, "could not store a Stripe result; giving up until the conversation is loaded again");
            return;
        }
        if *attempt == 1 {
            tracing::warn!(conversation = %self.conversation, op, error = %e, "could not store a Stripe result; retrying the call");
        }
        let delay = std::time::Duration::from_millis(200u64 << (*attempt - 1));
        let (call, mode) = (p.call.clone(), p.mode.unwrap_or(self.project.mode));
        self.spawn_call_after(op, call, mode, delay);
    }

    /// Reads the store's position of the conversation; if it moved on (another instance), takes
    /// on its state and pushes the frames this instance's clients have not had, in pages.
    async fn catch_up(&mut self, hint: Option<i64>) -> Result<(), ChatError> {
        if hint.is_some_and(|seq| seq <= self.last_seq && seq <= self.pushed_seq) {
            return Ok(());
        }
        let stored = self
            .inner
            .store
            .conversation(&self.conversation)
            .await?
            .map_or(self.last_seq, |c| c.last_seq);
        if stored > self.last_seq {
            self.reload().await?;
        }
        self.push_stored(self.last_seq).await
    }

    /// Broadcasts the stored frames after `pushed_seq` up to `upto`, in bounded pages.
    async fn push_stored(&mut self, upto: i64) -> Result<(), ChatError> {
        while self.pushed_seq < upto {
            let page = self
                .inner
                .store
                .frames_after(
                    &self.conversation,
                    self.pushed_seq,
                    PUSH_PAGE.min(upto - self.pushed_seq),
                )
                .await?;
            if page.is_empty() {
                break;
            }
            metrics::counter!("chatpay_frames_pushed_from_store_total")
                .increment(page.len() as u64);
            for f in page {
                if f.seq > upto {
                    break;
                }
                self.pushed_seq = f.seq;
                let _ = self.frames.send(to_out(f));
            }
        }
        Ok(())
    }

    /// Takes on the stored conversation (another instance moved it): its state, position,
    /// answered ids, project and connections. The calls it has pending are not re-issued here:
    /// the instance that asked for them carries them out.
    async fn reload(&mut self) -> Result<(), ChatError> {
        let fresh = Actor::load(
            Arc::clone(&self.inner),
            self.conversation.clone(),
            &self.project.id,
            self.me.clone(),
            self.frames.clone(),
        )
        .await
        .map_err(ChatError::Internal)?;
        tracing::debug!(conversation = %self.conversation, from = self.last_seq, to = fresh.last_seq, "reloaded the conversation from the store");
        metrics::counter!("chatpay_conversation_reloads_total").increment(1);
        self.state = fresh.state;
        self.state_json = fresh.state_json;
        self.last_seq = fresh.last_seq;
        self.answered = fresh.answered;
        self.connections = fresh.connections;
        self.connected_at = fresh.connected_at;
        self.project = fresh.project;
        Ok(())
    }

    /// Whether the stored conversation is ahead of this copy.
    async fn behind_store(&self) -> Result<bool, ChatError> {
        Ok(self
            .inner
            .store
            .conversation(&self.conversation)
            .await?
            .is_some_and(|c| c.last_seq != self.last_seq))
    }

    /// The mode what people do in the chat works in: the project's, or the one being set up.
    fn working_mode(&self) -> Mode {
        self.state.setup.unwrap_or(self.project.mode)
    }

    /// Whether this conversation works in `mode` (takes payments in it, or sets it up).
    fn works_in(&self, mode: Mode) -> bool {
        mode == self.project.mode || self.state.setup == Some(mode)
    }

    /// The mode call `op` was asked in (the working mode for a call nobody waits for).
    fn call_mode(&self, op: u64) -> Mode {
        self.state
            .pending
            .iter()
            .find(|p| p.op == op)
            .map_or(self.working_mode(), |p| p.mode.unwrap_or(self.project.mode))
    }

    /// A Stripe event of a mode this project neither takes payments in nor sets up: recorded
    /// as refused, applied to nothing (test records never see live events, and the reverse).
    async fn refuse_event(
        &mut self,
        id: &str,
        mode: Mode,
        record: Option<WebhookEventRecord>,
    ) -> Result<(), ChatError> {
        let outcome = format!(
            "refused: a {}-mode event for project {} in {} mode (not setting up {} mode)",
            mode.as_str(),
            self.project.id,
            self.project.mode.as_str(),
            mode.as_str()
        );
        tracing::info!(conversation = %self.conversation, event = id, %outcome, "Stripe event refused");
        let store = &self.inner.store;
        // Not stored yet (it was to be stored with this turn): recorded as handled in one insert.
        let recorded = match record {
            Some(mut r) => {
                r.processed_at = Some(now_millis());
                r.outcome = Some(outcome.clone());
                store.record_event(&r).await?
            }
            None => chatpay_store::Recorded::Duplicate,
        };
        if recorded == chatpay_store::Recorded::Duplicate {
            store.mark_event_processed(id, &outcome).await?;
        }
        Ok(())
    }

    /// `POST …/mode`. Back to test answers at once; going live answers when the checklist
    /// (the same one "go live" runs in the chat, joined if it is running) is done.
    async fn set_mode(
        &mut self,
        mode: Mode,
        reply: oneshot::Sender<Result<ModeAnswer, ChatError>>,
    ) {
        let working = self.working_mode();
        let outside = match mode {
            Mode::Test => Outside::BackToTest(Entry::Integrations),
            Mode::Live if self.project.mode.is_live() => {
                let _ = reply.send(Ok(ModeAnswer::Switched(self.project.clone())));
                return;
            }
            Mode::Live => Outside::GoLive(Entry::Integrations),
        };
        let cause = Cause::Outside {
            ledger: None,
            record: None,
        };
        if let Err(e) = Box::pin(self.apply(Input::Outside(outside), cause, working)).await {
            let _ = reply.send(Err(e));
            return;
        }
        if mode == Mode::Test {
            let _ = reply.send(Ok(ModeAnswer::Switched(self.project.clone())));
            return;
        }
        match self
            .state
            .pending
            .iter()
            .find(|p| p.call == Call::CheckLive)
        {
            Some(p) => self.mode_waiters.push((p.op, reply)),
            None => {
                let _ = reply.send(Err(ChatError::Internal(anyhow::anyhow!(
                    "the go-live checklist did not start"
                ))));
            }
        }
    }

    /// Answers the `POST …/mode` requests that waited for checklist call `op`.
    fn answer_mode_waiters(&mut self, op: u64, checked: Result<LiveFacts, String>) {
        let webhook_url = format!("{}/v1/webhooks/stripe", self.inner.links.public);
        let mut i = 0;
        while i < self.mode_waiters.len() {
            if self.mode_waiters[i].0 != op {
                i += 1;
                continue;
            }
            let (_, waiter) = self.mode_waiters.swap_remove(i);
            let answer = match &checked {
                _ if self.project.mode.is_live() => Ok(ModeAnswer::Switched(self.project.clone())),
                Ok(facts) => Ok(ModeAnswer::NotReady(checklist(facts, &webhook_url))),
                Err(why) => Err(ChatError::Internal(anyhow::anyhow!(
                    "the go-live checklist failed: {why}"
                ))),
            };
            let _ = waiter.send(answer);
        }
    }

    /// An order event with evidence gets the stored order, so that the conversation can tell
    /// without a read of Stripe that there is nothing new. All of an order's changes are
    /// stored by this conversation's turns, each committed before the next input, so what is
    /// read here is what the conversation last stored. Not found or unreadable: the
    /// conversation asks for a read as before.
    async fn look_up_order(&self, event: &mut Outside, mode: Mode) {
        let Outside::OrderChanged {
            order,
            evidence: Some(_),
            known,
            ..
        } = event
        else {
            return;
        };
        let key = match order {
            OrderRef::Order(id) => OrderKey::Id(id),
            OrderRef::Session(cs) => OrderKey::Session(cs),
            OrderRef::PaymentIntent(pi) => OrderKey::PaymentIntent(pi),
            OrderRef::Number(_) | OrderRef::Latest => return,
        };
        let Ok(Some(record)) = self.inner.store.order_by(key).await else {
            return;
        };
        if record.project_id != self.project.id || record.mode != mode {
            return;
        }
        *known = super::orders::order_of(&record).ok().map(Box::new);
    }

    /// Runs the flows on `input` in `mode`, stores the turn, then makes it visible.
    async fn apply(
        &mut self,
        input: Input<'_>,
        cause: Cause<'_>,
        mode: Mode,
    ) -> Result<(), ChatError> {
        self.apply_fresh(input, cause, mode).await.map(|_| ())
    }

    /// [`Actor::apply`], on the stored state: when another instance moved the conversation
    /// since this copy was loaded (the commit's compare-and-set on `last_seq` refused it, or
    /// a click was refused against a card this copy does not know), the conversation is
    /// reloaded and the input applied again, a bounded number of times. A client frame that
    /// the reload shows as answered already is `Applied::Answered`; a webhook event it shows
    /// as applied already is not applied again.
    async fn apply_fresh(
        &mut self,
        input: Input<'_>,
        cause: Cause<'_>,
        mode: Mode,
    ) -> Result<Applied, ChatError> {
        let mut reloads = 0;
        loop {
            let result = self.apply_once(input.clone(), &cause, mode).await;
            let moved = match &result {
                Ok(()) => {
                    metrics::counter!("chatpay_turns_total", "outcome" => "applied").increment(1);
                    return Ok(Applied::Done);
                }
                Err(Attempt::Lost) => true,
                // Refused against this copy: the store may know better.
                Err(Attempt::Refused(_)) => self.inner.shared && self.behind_store().await?,
                Err(Attempt::Failed(_)) => false,
            };
            if !moved || reloads >= MAX_RELOADS {
                metrics::counter!("chatpay_turns_total", "outcome" => "refused").increment(1);
                return Err(match result {
                    Err(Attempt::Refused(e) | Attempt::Failed(e)) => e,
                    _ => {
                        tracing::warn!(conversation = %self.conversation, reloads, "turn kept losing its conversation to other writers");
                        ChatError::Unavailable
                    }
                });
            }
            reloads += 1;
            metrics::counter!("chatpay_turn_conflicts_total").increment(1);
            tracing::debug!(conversation = %self.conversation, at = self.last_seq, "conversation moved on elsewhere; reloading and applying the turn again");
            self.reload().await?;
            self.push_stored(self.last_seq).await?;
            if let Some(id) = cause.reply_to_id()
                && self.answered.contains(id)
            {
                return Ok(Applied::Answered);
            }
            if let Cause::Outside {
                ledger: Some(event),
                ..
            } = &cause
                && self
                    .inner
                    .store
                    .event(event)
                    .await?
                    .is_some_and(|e| e.processed_at.is_some())
            {
                return Ok(Applied::Done);
            }
        }
    }

    /// One attempt at [`Actor::apply`].
    async fn apply_once(
        &mut self,
        input: Input<'_>,
        cause: &Cause<'_>,
        mode: Mode,
    ) -> Result<(), Attempt> {
        let now = now_millis();
        let fresh = random_hex(12);
        let asked = cause.asked();
        // A call's result: the call, whose stored operation ends with this turn.
        let finished_call = match &input {
            Input::Done { op, result } => {
                self.state.pending.iter().find(|p| p.op == *op).map(|p| {
                    (
                        *op,
                        p.call.clone(),
                        result.as_ref().err().map(|e| e.message.clone()),
                    )
                })
            }
            _ => None,
        };
        let mut next = self.state.clone();
        let facts = Facts {
            conversation: &self.conversation,
            backend: self.project.backend,
            mode,
            connection: self.connections[slot(mode)].as_ref(),
            project_mode: self.project.mode,
            other_connection: self.connections[1 - slot(mode)].as_ref(),
            now_ms: now,
            links: &self.inner.links,
            labels: &self.inner.labels,
            fresh: &fresh,
            asked: asked.as_ref(),
        };
        let effects = next.handle(input, &facts).map_err(|r| {
            Attempt::Refused(match r {
                Refusal::StaleCard(m) => ChatError::StaleCard(m),
                Refusal::NotFound(m) => ChatError::NotFound(m),
                Refusal::InvalidValues(fields) => ChatError::InvalidValues(fields),
            })
        })?;
        let planned = {
            let held = Held {
                conversation: &self.conversation,
                project: &self.project.id,
                project_mode: self.project.mode,
                last_seq: self.last_seq,
                state_json: &self.state_json,
                connections: &self.connections,
                connected_at: self.connected_at,
                finished: finished_call
                    .as_ref()
                    .map(|(op, call, error)| turn::Finished {
                        op: *op,
                        call,
                        error: error.as_deref(),
                    }),
            };
            let app_seq = &self.inner.app_seq;
            let mut app_event = || {
                (
                    format!("{EVENT_PREFIX}{}", random_hex(12)),
                    app_seq.next(now),
                )
            };
            let mut stamps = Stamps {
                now,
                holder: (&self.inner.instance, super::operations::lease_until(now)),
                app_event: &mut app_event,
            };
            turn::plan(&held, cause, mode, next, &effects, &mut stamps)
                .map_err(|e| Attempt::Failed(ChatError::Internal(anyhow::Error::new(e))))?
        };
        let Some(Turn { write, after }) = planned else {
            return Ok(());
        };
        let frames = write.frames.clone();
        match self.inner.store.commit_turn(write).await {
            Ok(()) => {}
            // The move's compare-and-set lost (another instance), or a version-checked row
            // did: only the first is cured by reloading the conversation.
            Err(StoreError::Conflict(why)) => {
                return Err(match self.behind_store().await {
                    Ok(true) => Attempt::Lost,
                    Ok(false) => {
                        Attempt::Failed(ChatError::Internal(anyhow::anyhow!("conflict: {why}")))
                    }
                    Err(e) => Attempt::Failed(e),
                });
            }
            Err(e) => return Err(Attempt::Failed(ChatError::Internal(anyhow::Error::new(e)))),
        }
        // Stored: now it may be seen and acted on.
        self.take_on(after, frames);
        Ok(())
    }

    /// What a stored turn leaves: the state it moved to, its frames sent to every client, the
    /// calls it asked for started.
    fn take_on(&mut self, after: After, frames: Vec<StoredFrame>) {
        self.state = after.state;
        self.state_json = after.state_json;
        self.last_seq = after.last_seq;
        self.connections = after.connections;
        self.connected_at = after.connected_at;
        if after.project_mode != self.project.mode {
            tracing::info!(conversation = %self.conversation, project = %self.project.id, mode = after.project_mode.as_str(), "project mode switched");
            self.project.mode = after.project_mode;
        }
        if let Some(id) = after.answered {
            self.answered.insert(id);
        }
        for f in frames {
            // No receivers is fine: the frames are stored for whoever connects.
            self.pushed_seq = self.pushed_seq.max(f.seq);
            let _ = self.frames.send(to_out(f));
        }
        if after.notify_app {
            self.inner.app_events.notify_one();
        }
        for (op, call) in after.calls {
            let mode = self.call_mode(op);
            self.spawn_call(op, call, mode);
        }
    }

    /// Calls that were in flight when the conversation was last stored (a restart).
    /// Makes the pending call whose operation is `key` again (its instance stopped), after
    /// taking on what the store holds; an operation the conversation no longer waits for is
    /// ended, so that it is not claimed again.
    async fn take_over(&mut self, key: &str) -> Result<(), ChatError> {
        if self.inner.calls_in_flight().contains(key) {
            return Ok(());
        }
        if self.inner.shared && self.behind_store().await? {
            self.reload().await?;
        }
        let pending = self
            .state
            .pending_calls()
            .find(|(op, call)| turn::call_key(&self.conversation, *op, call) == key)
            .map(|(op, call)| (op, call.clone()));
        match pending {
            Some((op, call)) => {
                tracing::info!(conversation = %self.conversation, op, call = call.name(), "making a Stripe call again: the instance making it stopped");
                metrics::counter!("chatpay_calls_taken_over_total").increment(1);
                self.spawn_call(op, call, self.call_mode(op));
            }
            None => {
                self.inner
                    .store
                    .write(vec![ExtraWrite::FinishOperation {
                        key: key.to_owned(),
                        status: OperationStatus::Failed,
                        result: serde_json::json!({
                            "message": "the conversation no longer waits for this call"
                        })
                        .to_string(),
                    }])
                    .await?;
            }
        }
        Ok(())
    }

    fn resume_calls(&self) {
        for (op, call) in self.state.pending_calls() {
            tracing::info!(conversation = %self.conversation, op, call = call.name(), "re-issuing a Stripe call after restart");
            self.spawn_call(op, call.clone(), self.call_mode(op));
        }
    }

    /// Runs call `op` in `mode` (the mode it was asked in), on that mode's connected account.
    fn spawn_call(&self, op: u64, call: Call, mode: Mode) {
        self.spawn_call_after(op, call, mode, std::time::Duration::ZERO);
    }

    /// [`Actor::spawn_call`] after a pause.
    fn spawn_call_after(&self, op: u64, call: Call, mode: Mode, delay: std::time::Duration) {
        let Some(me) = self.me.upgrade() else { return };
        let ctx = Exec {
            gateway: Arc::clone(&self.inner.gateway),
            store: Arc::clone(&self.inner.store),
            pacer: Arc::clone(self.inner.pacer(mode)),
            project: self.project.id.clone(),
            mode,
            account: self.connections[slot(mode)]
                .as_ref()
                .map(|c| c.account.id.clone()),
            public: self.inner.links.public.clone(),
            engine: super::Engine {
                inner: Arc::clone(&self.inner),
            },
        };
        // Derived from the operation: the same call after a crash or retry has the same key.
        let key = turn::call_key(&self.conversation, op, &call);
        // A Stripe write's lease is renewed while it runs here.
        let in_flight = turn::writes_to_stripe(&call).then(|| InFlight::new(&self.inner, &key));
        tokio::spawn(async move {
            let _in_flight = in_flight;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let result = execute(&ctx, &call, &key).await;
            let _ = me
                .send(Msg::Done {
                    op,
                    result: Box::new(result),
                })
                .await;
        });
    }
}

/// A conversation's Stripe write this instance is making ([`Inner::calls_in_flight`]), until
/// dropped.
struct InFlight {
    inner: Arc<Inner>,
    key: String,
}

impl InFlight {
    fn new(inner: &Arc<Inner>, key: &str) -> InFlight {
        inner.calls_in_flight().insert(key.to_owned());
        InFlight {
            inner: Arc::clone(inner),
            key: key.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner.calls_in_flight().remove(&self.key);
    }
}

/// Why one attempt at a turn did not store it.
enum Attempt {
    /// Another instance moved the conversation: reload and apply again.
    Lost,
    /// The flows refused the input against this copy of the conversation.
    Refused(ChatError),
    /// Anything else.
    Failed(ChatError),
}

/// What a call needs to run.
struct Exec {
    gateway: Arc<dyn Gateway>,
    store: chatpay_store::DynStore,
    pacer: Arc<Pacer>,
    project: chatpay_core::domain::ProjectId,
    mode: chatpay_core::domain::Mode,
    /// The connected account when the call was made.
    account: Option<String>,
    /// This server's public base URL (for links in answers).
    public: String,
    /// For the calls that share the HTTP API's path (the billing portal, plan changes).
    engine: super::Engine,
}

impl Exec {
    fn orders(&self) -> OrderCtx<'_> {
        OrderCtx {
            store: &self.store,
            gateway: &*self.gateway,
            project: &self.project,
            mode: self.mode,
            account: self.account.as_deref(),
        }
    }
}

async fn execute(exec: &Exec, call: &Call, key: &str) -> Result<CallOutput, CallError> {
    let (gateway, mode) = (&*exec.gateway, exec.mode);
    let catalog = || -> Result<catalog_sync::Ctx, CallError> {
        Ok(catalog_sync::Ctx {
            store: Arc::clone(&exec.store),
            gateway: Arc::clone(&exec.gateway),
            pacer: Arc::clone(&exec.pacer),
            project: exec.project.clone(),
            mode,
            account: exec.account.clone().ok_or_else(|| CallError {
                message: "Stripe isn't connected to this project".to_owned(),
                code: None,
            })?,
        })
    };
    let result = match call {
        Call::SyncCatalog => {
            return catalog_sync::sync(&catalog()?)
                .await
                .map(|r| CallOutput::Synced(Box::new(r)));
        }
        Call::RefreshProduct { product } => {
            return catalog_sync::refresh(&catalog()?, product)
                .await
                .map(|(before, after)| CallOutput::ProductRefreshed {
                    before: before.map(Box::new),
                    after: after.map(Box::new),
                });
        }

        Call::ReadCatalog { wanted, .. } => {
            return catalog_sync::read(&exec.store, &exec.project, mode, wanted.as_deref())
                .await
                .map(|mut a| {
                    a.buy_base = Some(format!("{}/buy/{}", exec.public, exec.project));
                    CallOutput::Catalog(Box::new(a))
                });
        }
        Call::CreateProduct { product, .. } => {
            let ctx = catalog()?;
            let id = gateway
                .create_product(mode, &ctx.account, product, key)
                .await
                .map_err(|e| call_error(call, &e))?;
            return catalog_sync::written(&ctx, &id)
                .await
                .map(|p| CallOutput::ProductWritten {
                    product: Box::new(p),
                    buy_base: format!("{}/buy/{}", exec.public, exec.project),
                });
        }
        Call::FindProduct { wanted, .. } => {
            return catalog_sync::find_for_change(&exec.store, &exec.project, mode, wanted)
                .await
                .map(|f| CallOutput::ProductFound(Box::new(f)));
        }
        Call::ChangeProduct { product, edit, .. } => {
            let ctx = catalog()?;
            gateway
                .change_product(mode, &ctx.account, product, edit, key)
                .await
                .map_err(|e| call_error(call, &e))?;
            return catalog_sync::written(&ctx, product).await.map(|p| {
                CallOutput::ProductWritten {
                    product: Box::new(p),
                    buy_base: format!("{}/buy/{}", exec.public, exec.project),
                }
            });
        }
        Call::CreateCode { code } => {
            let ctx = catalog()?;
            // One active code per name: Stripe would refuse it after the coupon was made.
            let same = gateway
                .list_codes(mode, &ctx.account, Some(&code.code))
                .await
                .map_err(|e| call_error(call, &e))?;
            if same.iter().any(|c| c.active) {
                return Err(CallError {
                    message: format!("an active code called {} exists already", code.code),
                    code: Some("duplicate_code".to_owned()),
                });
            }
            // "40% off the yearly plan": the products it was said to be for, from the catalog.
            let mut code = code.clone();
            if let Some(wanted) = &code.for_product {
                let stored = catalog_sync::read(&exec.store, &exec.project, mode, None).await?;
                code.products = chatpay_core::catalog::code_products(&stored.shown, wanted);
                if code.products.is_empty() {
                    return Err(CallError {
                        message: format!(
                            "no product in your catalog is called \"{wanted}\" or sells that way"
                        ),
                        code: Some("unknown_product".to_owned()),
                    });
                }
            }
            gateway
                .create_code(mode, &ctx.account, &code, key)
                .await
                .map(|c| vec![c])
        }
        .map(CallOutput::Codes),
        Call::ListCodes { code } => {
            let ctx = catalog()?;
            gateway
                .list_codes(mode, &ctx.account, code.as_deref())
                .await
                .map(CallOutput::Codes)
        }
        Call::TurnOffCode { code } => {
            let ctx = catalog()?;
            let found = gateway
                .list_codes(mode, &ctx.account, Some(code))
                .await
                .map_err(|e| call_error(call, &e))?;
            let Some(mut active) = found.into_iter().find(|c| c.active) else {
                return Ok(CallOutput::Codes(Vec::new()));
            };
            gateway
                .set_code_active(mode, &ctx.account, &active.id, false, key)
                .await
                .map(|_| {
                    active.active = false;
                    CallOutput::Codes(vec![active])
                })
        }
        Call::RefreshOrder {
            order, warnings, ..
        } => return exec.orders().refresh(order, *warnings).await,
        Call::RefreshSubscription { subscription, .. } => {
            return exec.orders().refresh_subscription(subscription).await;
        }
        Call::ListSubscriptions { ask } => return exec.orders().list_subscriptions(ask).await,
        Call::ChangeSubscription {
            subscription,
            change,
        } => {
            return exec
                .orders()
                .change_subscription(subscription, *change, key)
                .await;
        }
        Call::ReadPayouts { ask } => return exec.orders().read_payouts(ask).await,
        Call::RefreshPayout { payout, .. } => return exec.orders().refresh_payout(payout).await,
        Call::FindOrder { order, .. } => return exec.orders().find_order(order).await,
        Call::SubscriptionMetrics { .. } => return exec.orders().subscription_metrics().await,
        Call::ExportLink { .. } => {
            return Ok(CallOutput::ExportBase(format!(
                "{}/v1/projects/{}",
                exec.public, exec.project
            )));
        }
        Call::ListCustomers { email, .. } => {
            return exec.orders().for_customers(email.as_deref()).await;
        }
        Call::ListOrders { period, ask } => return exec.orders().list(period, *ask).await,
        Call::CreateRefund {
            order,
            payment_intent,
            amount,
            ..
        } => {
            let orders = exec.orders();
            let account = orders.account_id()?;
            gateway
                .create_refund(
                    mode,
                    account,
                    &chatpay_stripe::RefundRequest {
                        payment_intent: payment_intent.clone(),
                        amount: Some(*amount),
                        order_id: order.clone(),
                    },
                    key,
                )
                .await
                .map(CallOutput::Refunded)
        }
        Call::RespondToDispute {
            dispute, evidence, ..
        } => {
            let orders = exec.orders();
            let account = orders.account_id()?;
            // Keyed by the dispute and the response, not the operation: two confirmations of
            // one response (two cards, two tabs) reach Stripe as one request.
            let response = if evidence.is_empty() {
                "accept"
            } else {
                "evidence"
            };
            let key = format!("chatpay:dispute:{dispute}:{response}");
            gateway
                .respond_to_dispute(mode, account, dispute, evidence, &key)
                .await
                .map(|d| CallOutput::Dispute(Box::new(d)))
        }
        Call::PortalSettings { set } => {
            return exec
                .engine
                .portal_answer(&exec.project, mode, *set)
                .await
                .map(|a| CallOutput::Portal(Box::new(a)))
                .map_err(super::plans::call_error);
        }
        Call::PortalLink { email } => {
            let account = exec.orders().account_id()?.to_owned();
            let engine = &exec.engine;
            let link = async {
                let p = engine.project_in(&exec.project, mode).await?;
                engine.portal_link(&p, &account, email, None, key).await
            };
            return link
                .await
                .map(|url| CallOutput::PortalLink { url })
                .map_err(super::plans::call_error);
        }
        Call::PreviewPlanChange { email, wanted } => {
            let account = exec.orders().account_id()?.to_owned();
            let engine = &exec.engine;
            let offer = async {
                let p = engine.project_in(&exec.project, mode).await?;
                let sub = engine.subscription_for_plan(&p, email).await?;
                engine.plan_offer(&p, &account, &sub, wanted).await
            };
            return offer
                .await
                .map(|o| CallOutput::PlanOffer(Box::new(o)))
                .map_err(super::plans::call_error);
        }
        Call::ChangePlan {
            change,
            proration_date,
            ..
        } => {
            let account = exec.orders().account_id()?.to_owned();
            let engine = &exec.engine;
            let made = async {
                let p = engine.project_in(&exec.project, mode).await?;
                engine
                    .change_plan(&p, &account, change, *proration_date, key)
                    .await
            };
            return made
                .await
                .map(|()| CallOutput::Done)
                .map_err(super::plans::call_error);
        }
        Call::ResendReceipt { charge, email, .. } => {
            let orders = exec.orders();
            let account = orders.account_id()?;
            gateway
                .resend_receipt(mode, account, charge, email, key)
                .await
                .map(|_| CallOutput::Done)
        }
        Call::CreateAccount(new) => gateway
            .create_account(mode, new, key)
            .await
            .map(|a| CallOutput::Account(Box::new(a))),
        Call::RetrieveAccount { account } => gateway
            .retrieve_account(mode, account)
            .await
            .map(|a| CallOutput::Account(Box::new(a))),
        Call::CreateAccountLink {
            account,
            kind,
            refresh_url,
            return_url,
        }
        | Call::RefreshLink {
            account,
            kind,
            refresh_url,
            return_url,
            ..
        } => gateway
            .create_account_link(mode, account, *kind, refresh_url, return_url, key)
            .await
            .map(|l| CallOutput::Link {
                url: l.url,
                expires_at: l.expires_at,
            }),
        Call::ExchangeOauthCode { code } => gateway
            .exchange_oauth_code(mode, code)
            .await
            .map(|account| CallOutput::Connected { account }),
        Call::Deauthorize { account } => gateway
            .deauthorize(mode, account)
            .await
            .map(|_| CallOutput::Done),
        Call::CopyCatalog => {
            return super::golive::copy_catalog(
                &exec.store,
                &exec.gateway,
                Arc::clone(&exec.pacer),
                &exec.project,
            )
            .await
            .map(|r| CallOutput::CatalogCopied(Box::new(r)));
        }
        Call::CheckLive => {
            return super::golive::check(&exec.store, &*exec.gateway, &exec.project)
                .await
                .map(|facts| CallOutput::LiveChecked(Box::new(facts)));
        }
    };
    result.map_err(|e| call_error(call, &e))
}

/// A failed Stripe call as the chat sees it (logged here, once).
fn call_error(call: &Call, e: &chatpay_stripe::GatewayError) -> CallError {
    tracing::warn!(call = call.name(), error = %e, "Stripe call failed");
    CallError {
        message: e.user_message(),
        code: e.code().map(str::to_owned),
    }
}
