//! The write value: everything one conversation turn changes ([`TurnWrite`]), and the SQL that
//! each kind of row it carries runs ([`ExtraWrite::statements`]), once for both backends.
//!
//! A turn is its conversation's move (to `last_seq`, only from `prev_seq`: the compare-and-set
//! that refuses a stale or concurrent writer), its frames and new state, and the other rows that
//! must change with it ([`ExtraWrite`]). Each backend's writer (`sqlite::writer`,
//! `postgres::writer`) commits many turns per transaction; it writes the moves and frames in its
//! own batched way and runs each row's [`Statement`]s exactly as given here. So a new kind of row
//! is a variant of [`ExtraWrite`] and its arm in [`ExtraWrite::statements`], and the compiler
//! points at the arm until it is written (the recipe, with an example, is in
//! `docs/architecture.md`).

use std::sync::Arc;

use super::sql::{Arg, Dialect, Statement, VersionCheck, sql};
use super::{
    ConnectionRecord, NewOrder, OperationStatus, StoreError, StoredFrame, WebhookEventRecord,
};
use chatpay_core::domain::{ConversationId, Mode, ProjectId};

/// Everything one conversation turn changes, committed atomically.
#[derive(Debug, Clone)]
pub struct TurnWrite {
    pub conversation: ConversationId,
    /// The `last_seq` this turn started from; a different stored value is a conflict.
    pub prev_seq: i64,
    pub last_seq: i64,
    /// The new state, or `None` if the turn left it as it was.
    pub state: Option<Arc<str>>,
    pub frames: Vec<StoredFrame>,
    /// Other rows that must change with this turn, in order.
    pub extra: Vec<ExtraWrite>,
}

impl TurnWrite {
    /// The error of a turn that lost: its conversation moved on (another writer, or a replay).
    pub(crate) fn conflict(&self) -> StoreError {
        StoreError::Conflict(format!(
            "conversation {} is no longer at seq {}",
            self.conversation, self.prev_seq
        ))
    }
}

/// Rows a turn writes besides its own frames and state.
#[derive(Debug, Clone)]
pub enum ExtraWrite {
    /// Insert or replace the project's connection in that mode (a different account than the
    /// stored one forgets the old account's catalog).
    UpsertConnection(ConnectionRecord),
    /// The project no longer has a connection in that mode (and its catalog there is forgotten).
    DeleteConnection { project_id: ProjectId, mode: Mode },
    /// A webhook event's effects are part of this turn.
    MarkEventProcessed { id: String, outcome: String },
    /// Records a webhook event in the ledger with this turn (nothing if its id is stored
    /// already), so that the delivery is acknowledged after one commit, not two. Comes before
    /// the turn's [`ExtraWrite::MarkEventProcessed`] of the same event.
    RecordEvent(WebhookEventRecord),
    /// An order's next version; the turn fails with `Conflict` if the order moved on meanwhile.
    PutOrder(OrderUpdate),
    /// A subscription's first or next version; the turn fails with `Conflict` if another read
    /// stored it first or it moved on meanwhile.
    PutSubscription(SubscriptionUpdate),
    /// The project takes payments in `mode` from this turn on (the go-live switch, or back).
    SetProjectMode { project_id: ProjectId, mode: Mode },
    /// An event for the builder's app, into the outbox; written only if the project has an app
    /// webhook endpoint when the turn commits (nobody to tell otherwise).
    EnqueueAppEvent(NewAppEvent),
    /// A Stripe write about to be made, with its idempotency key (nothing if that key is stored
    /// already: the same operation again). Written with the change that asks for it.
    RecordOperation(NewOperation),
    /// A pending Stripe write's end: `Done` with Stripe's answer, written with the change that
    /// applies it, or `Failed` with the refusal. Nothing if it had ended already.
    FinishOperation {
        key: String,
        status: OperationStatus,
        result: String,
    },
    /// A new order, numbered next in its project and mode (from 1001); nothing if its id is
    /// stored already (its checkout finished before).
    InsertOrder(NewOrder),
    /// The project's billing portal settings in `mode`: created with `proof_secret` if there
    /// are none (cancelling at the period's end unless `cancel_mode` says otherwise); an
    /// existing row keeps its secret and takes `cancel_mode` if given.
    PutPortalSettings {
        project_id: ProjectId,
        mode: Mode,
        cancel_mode: Option<String>,
        proof_secret: String,
    },
    /// The portal configuration made on `account_id` from `configuration` (JSON), numbered
    /// `version`; nothing if a later one is stored already.
    PortalConfigured {
        project_id: ProjectId,
        mode: Mode,
        account_id: String,
        configuration_id: String,
        configuration: String,
        version: i64,
    },
}

impl ExtraWrite {
    /// The statements that write this row, in order, at time `now` (milliseconds). A statement
    /// with a [`VersionCheck`] that changes no row fails the turn with `Conflict`.
    pub(crate) fn statements(&self, now: i64) -> Vec<Statement<'_>> {
        match self {
            ExtraWrite::UpsertConnection(c) => {
                let (project, mode) = (c.project_id.as_str(), c.mode.as_str());
                let mut out: Vec<Statement<'_>> = FORGET_CATALOG_OF_ANOTHER_ACCOUNT
                    .iter()
                    .map(|&s| sql(s).bind(project).bind(mode).bind(c.account_id.as_str()))
                    .collect();
                out.push(
                    sql("INSERT INTO stripe_connections \
                         (project_id, mode, account_id, origin, snapshot, connected_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (project_id, mode) DO UPDATE SET \
                         account_id = excluded.account_id, origin = excluded.origin, \
                         snapshot = excluded.snapshot, connected_at = excluded.connected_at, \
                         updated_at = excluded.updated_at")
                    .bind(project)
                    .bind(mode)
                    .bind(c.account_id.as_str())
                    .bind(c.origin.as_str())
                    .bind(c.snapshot.as_str())
                    .bind(c.connected_at)
                    .bind(c.updated_at),
                );
                out
            }
            ExtraWrite::DeleteConnection { project_id, mode } => {
                let (project, mode) = (project_id.as_str(), mode.as_str());
                std::iter::once(
                    "DELETE FROM stripe_connections WHERE project_id = $1 AND mode = $2",
                )
                .chain(FORGET_CATALOG)
                .map(|s| sql(s).bind(project).bind(mode))
                .collect()
            }
            ExtraWrite::MarkEventProcessed { id, outcome } => {
                vec![mark_event_processed(id, outcome, now)]
            }
            ExtraWrite::RecordEvent(e) => vec![record_event(e)],
            ExtraWrite::PutOrder(o) => vec![
                sql("UPDATE orders SET version = version + 1, status = $3, \
                     payment_intent = COALESCE($4, payment_intent), data = $5, updated_at = $6, \
                     customer_email = COALESCE($7, customer_email) \
                     WHERE id = $1 AND version = $2")
                .bind(o.id.as_str())
                .bind(o.expected_version)
                .bind(o.status.as_str())
                .bind(o.payment_intent.as_deref())
                .bind(o.data.as_str())
                .bind(now)
                .bind(o.customer_email.as_deref().map(str::to_lowercase))
                .checked(VersionCheck {
                    what: "order",
                    id: &o.id,
                    version: o.expected_version,
                }),
            ],
            ExtraWrite::PutSubscription(s) => {
                let email = s.customer_email.as_deref().map(str::to_lowercase);
                let check = VersionCheck {
                    what: "subscription",
                    id: &s.id,
                    version: s.expected_version,
                };
                let st = if s.expected_version == 0 {
                    // Its first version; nothing if another read stored it first.
                    sql("INSERT INTO subscriptions (id, project_id, mode, account_id, status, \
                         customer_email, data, created_at, updated_at, version) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1) ON CONFLICT (id) DO NOTHING")
                    .bind(s.id.as_str())
                    .bind(s.project_id.as_str())
                    .bind(s.mode.as_str())
                    .bind(s.account_id.as_str())
                    .bind(s.status.as_str())
                    .bind(email)
                    .bind(s.data.as_str())
                    .bind(now)
                } else {
                    sql(
                        "UPDATE subscriptions SET version = version + 1, status = $3, \
                         customer_email = COALESCE($4, customer_email), data = $5, updated_at = $6 \
                         WHERE id = $1 AND version = $2",
                    )
                    .bind(s.id.as_str())
                    .bind(s.expected_version)
                    .bind(s.status.as_str())
                    .bind(email)
                    .bind(s.data.as_str())
                    .bind(now)
                };
                vec![st.checked(check)]
            }
            ExtraWrite::SetProjectMode { project_id, mode } => vec![
                sql("UPDATE projects SET mode = $2 WHERE id = $1")
                    .bind(project_id.as_str())
                    .bind(mode.as_str()),
            ],
            ExtraWrite::EnqueueAppEvent(e) => vec![
                // $6 is also when the first attempt is due.
                sql("INSERT INTO app_events \
                     (id, project_id, type, payload, seq, created_at, attempts, next_attempt_at) \
                     SELECT $1, project_id, $3, $4, $5, $6, 0, $6 FROM app_webhooks \
                     WHERE project_id = $2 ON CONFLICT (id) DO NOTHING")
                .bind(e.id.as_str())
                .bind(e.project_id.as_str())
                .bind(e.event_type.as_str())
                .bind(e.payload.as_str())
                .bind(e.seq)
                .bind(e.created_at),
            ],
            ExtraWrite::RecordOperation(o) => {
                vec![
                sql("INSERT INTO operations (idempotency_key, project_id, mode, conversation_id, \
                     kind, request, status, result, owner, lease_until, attempts, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', NULL, $8, $9, 0, \
                     $7, $7) ON CONFLICT (idempotency_key) DO NOTHING")
                .bind(o.key.as_str())
                .bind(o.project_id.as_str())
                .bind(o.mode.as_str())
                .bind(o.conversation_id.as_ref().map(ConversationId::as_str))
                .bind(o.kind.as_str())
                .bind(o.request.as_str())
                .bind(o.created_at)
                .bind(o.held.as_ref().map(|(owner, _)| owner.as_str()))
                .bind(o.held.as_ref().map(|&(_, until)| until)),
            ]
            }
            ExtraWrite::FinishOperation {
                key,
                status,
                result,
            } => vec![
                sql(
                    "UPDATE operations SET status = $2, result = $3, owner = NULL, \
                     lease_until = NULL, updated_at = $4 \
                     WHERE idempotency_key = $1 AND status = 'pending'",
                )
                .bind(key.as_str())
                .bind(status.as_str())
                .bind(result.as_str())
                .bind(now),
            ],
            ExtraWrite::InsertOrder(o) => vec![
                // Two at once may pick the same number: the loser's transaction fails on the
                // unique number and is run again (`Store::write`).
                sql(
                    "INSERT INTO orders (id, project_id, mode, number, status, session_id, \
                     payment_intent, created_at, updated_at, version, data, customer_email) \
                     SELECT $1, $2, $3, COALESCE(MAX(number), 1000) + 1, $4, $5, NULL, $6, $6, 1, \
                     $7, $8 FROM orders WHERE project_id = $2 AND mode = $3 \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(o.id.as_str())
                .bind(o.project_id.as_str())
                .bind(o.mode.as_str())
                .bind(o.status.as_str())
                .bind(o.session_id.as_str())
                .bind(o.created_at)
                .bind(o.data.as_str())
                .bind(o.customer_email.as_deref().map(str::to_lowercase)),
            ],
            ExtraWrite::PutPortalSettings {
                project_id,
                mode,
                cancel_mode,
                proof_secret,
            } => vec![
                sql(
                    "INSERT INTO portal_settings (project_id, mode, cancel_mode, proof_secret, \
                     version, updated_at) VALUES ($1, $2, COALESCE($3, 'at_period_end'), $4, 0, $5) \
                     ON CONFLICT (project_id, mode) DO UPDATE SET \
                     cancel_mode = COALESCE($3, portal_settings.cancel_mode), updated_at = $5",
                )
                .bind(project_id.as_str())
                .bind(mode.as_str())
                .bind(cancel_mode.as_deref())
                .bind(proof_secret.as_str())
                .bind(now),
            ],
            ExtraWrite::PortalConfigured {
                project_id,
                mode,
                account_id,
                configuration_id,
                configuration,
                version,
            } => vec![
                sql(
                    "UPDATE portal_settings SET account_id = $3, configuration_id = $4, \
                     configuration = $5, version = $6, updated_at = $7 \
                     WHERE project_id = $1 AND mode = $2 AND version < $6",
                )
                .bind(project_id.as_str())
                .bind(mode.as_str())
                .bind(account_id.as_str())
                .bind(configuration_id.as_str())
                .bind(configuration.as_str())
                .bind(*version)
                .bind(now),
            ],
        }
    }
}

/// A Stripe write to record before it is made ([`ExtraWrite::RecordOperation`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewOperation {
    /// The idempotency key, derived from chatpay's own ids.
    pub key: String,
    pub project_id: ProjectId,
    pub mode: Mode,
    /// The conversation whose turn makes it, if any.
    pub conversation_id: Option<ConversationId>,
    pub kind: String,
    /// What to ask Stripe, as JSON owned by the server.
    pub request: String,
    pub created_at: i64,
    /// The instance that makes it at once, and until when (milliseconds) it holds it without
    /// renewing: a conversation's call, made by the instance whose turn asked for it. `None`
    /// for an operation that is claimed after it is recorded (the HTTP API's).
    pub held: Option<(String, i64)>,
}

/// Forgets a project's catalog in a mode ($1, $2), its runs and what they staged: the catalog
/// belongs to the connected account, and that connection is ending. A sync still running finds
/// its run gone and stores nothing.
const FORGET_CATALOG: [&str; 4] = [
    "DELETE FROM catalog_staging WHERE run_id IN \
     (SELECT id FROM catalog_runs WHERE project_id = $1 AND mode = $2)",
    "DELETE FROM catalog_runs WHERE project_id = $1 AND mode = $2",
    "DELETE FROM catalog_products WHERE project_id = $1 AND mode = $2",
    "DELETE FROM catalogs WHERE project_id = $1 AND mode = $2",
];

/// [`FORGET_CATALOG`], only if the project is connected in that mode to an account other than
/// $3 (run before the connection is replaced: reconnecting the same account keeps its catalog).
const FORGET_CATALOG_OF_ANOTHER_ACCOUNT: [&str; 4] = [
    "DELETE FROM catalog_staging WHERE run_id IN \
     (SELECT id FROM catalog_runs WHERE project_id = $1 AND mode = $2) AND EXISTS \
     (SELECT 1 FROM stripe_connections WHERE project_id = $1 AND mode = $2 AND account_id <> $3)",
    "DELETE FROM catalog_runs WHERE project_id = $1 AND mode = $2 AND EXISTS \
     (SELECT 1 FROM stripe_connections WHERE project_id = $1 AND mode = $2 AND account_id <> $3)",
    "DELETE FROM catalog_products WHERE project_id = $1 AND mode = $2 AND EXISTS \
     (SELECT 1 FROM stripe_connections WHERE project_id = $1 AND mode = $2 AND account_id <> $3)",
    "DELETE FROM catalogs WHERE project_id = $1 AND mode = $2 AND EXISTS \
     (SELECT 1 FROM stripe_connections WHERE project_id = $1 AND mode = $2 AND account_id <> $3)",
];

/// An event a turn puts in the outbox for the project's app webhook endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAppEvent {
    /// `evt_cp_…`.
    pub id: String,
    pub project_id: ProjectId,
    /// `entitlement.granted`, `entitlement.revoked`.
    pub event_type: String,
    /// The exact JSON body every attempt sends.
    pub payload: String,
    /// Order within the project (increasing): events are delivered oldest first.
    pub seq: i64,
    /// Milliseconds; also when the first attempt is due.
    pub created_at: i64,
}

/// A change to an order, computed from version `expected_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderUpdate {
    pub id: String,
    pub expected_version: i64,
    pub status: String,
    pub payment_intent: Option<String>,
    /// The order as JSON (owned by `chatpay_core::orders`).
    pub data: String,
    pub customer_email: Option<String>,
}

/// A subscription's change, computed from version `expected_version` (0: not stored yet).
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionUpdate {
    pub id: String,
    pub project_id: ProjectId,
    pub mode: Mode,
    pub account_id: String,
    pub expected_version: i64,
    pub status: String,
    pub customer_email: Option<String>,
    /// The subscription as JSON (owned by `chatpay_core::billing`).
    pub data: String,
}

// ---- The turn's own statements: its conversation's move, its frames, its ledger event. Each
// backend's writer batches these its own way (PostgreSQL: many rows per statement), always with
// the arguments given here.

/// Moves one conversation on, only from the seq its turn started at (compare-and-set).
/// Arguments: [`move_args`].
pub(crate) const MOVE_CONVERSATION: &str = "UPDATE conversations SET last_seq = $3, \
     state = COALESCE($4, state), updated_at = $5 WHERE id = $1 AND last_seq = $2";

/// A conversation's move: (id, prev_seq, last_seq, state, time).
pub(crate) fn move_args(turn: &TurnWrite, now: i64) -> [Arg<'_>; 5] {
    [
        turn.conversation.as_str().into(),
        turn.prev_seq.into(),
        turn.last_seq.into(),
        turn.state.as_deref().into(),
        now.into(),
    ]
}

/// [`MOVE_CONVERSATION`] for `turns` conversations in one statement, returning the ids of those
/// that moved. `VALUES` columns are `column1…` in both SQLite and PostgreSQL.
pub(crate) fn moves_sql(dialect: Dialect, turns: usize) -> String {
    format!(
        "UPDATE conversations SET last_seq = v.column3, \
         state = COALESCE(v.column4, conversations.state), updated_at = v.column5 \
         FROM (VALUES {}) AS v \
         WHERE conversations.id = v.column1 AND conversations.last_seq = v.column2 \
         RETURNING conversations.id",
        dialect.rows(turns, 5)
    )
}

const FRAME_COLUMNS: &str = "frames (conversation_id, seq, reply_to, body, created_at)";

/// One frame. Arguments: [`frame_args`].
pub(crate) const INSERT_FRAME: &str = "INSERT INTO frames \
     (conversation_id, seq, reply_to, body, created_at) VALUES ($1, $2, $3, $4, $5)";

pub(crate) fn frame_args<'a>(
    conversation: &'a ConversationId,
    f: &'a StoredFrame,
    now: i64,
) -> [Arg<'a>; 5] {
    [
        conversation.as_str().into(),
        f.seq.into(),
        f.reply_to.as_deref().into(),
        (&*f.body).into(),
        now.into(),
    ]
}

/// [`INSERT_FRAME`] for `rows` frames.
pub(crate) fn frames_sql(dialect: Dialect, rows: usize) -> String {
    format!(
        "INSERT INTO {FRAME_COLUMNS} VALUES {}",
        dialect.rows(rows, 5)
    )
}

const EVENT_COLUMNS: &str = "webhook_events \
     (id, event_type, account, livemode, created, payload, received_at, processed_at, outcome)";

/// Records a webhook event unless its id is stored already. Arguments: [`event_args`].
pub(crate) const RECORD_EVENT: &str = "INSERT INTO webhook_events \
     (id, event_type, account, livemode, created, payload, received_at, processed_at, outcome) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING";

/// Records a webhook event in the ledger unless its id is stored already.
pub(crate) fn record_event(e: &WebhookEventRecord) -> Statement<'_> {
    let mut st = sql(RECORD_EVENT);
    st.args = event_args(e).into();
    st
}

/// An event's columns, in [`RECORD_EVENT`]'s order.
pub(crate) fn event_args(e: &WebhookEventRecord) -> [Arg<'_>; 9] {
    [
        e.id.as_str().into(),
        e.event_type.as_str().into(),
        e.account.as_deref().into(),
        e.livemode.into(),
        e.created.into(),
        e.payload.as_str().into(),
        e.received_at.into(),
        e.processed_at.into(),
        e.outcome.as_deref().into(),
    ]
}

/// [`record_event`] for many events in one statement, returning the ids it inserted (the events
/// that were new).
pub(crate) fn record_events<'a>(
    dialect: Dialect,
    events: &[&'a WebhookEventRecord],
) -> Statement<'a> {
    let mut st = sql(format!(
        "INSERT INTO {EVENT_COLUMNS} VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
        dialect.rows(events.len(), 9)
    ));
    st.args = events.iter().flat_map(|e| event_args(e)).collect();
    st
}

/// Marks a webhook event handled, unless it already is.
pub(crate) fn mark_event_processed<'a>(id: &'a str, outcome: &'a str, now: i64) -> Statement<'a> {
    sql("UPDATE webhook_events SET processed_at = $2, outcome = $3 \
         WHERE id = $1 AND processed_at IS NULL")
    .bind(id)
    .bind(now)
    .bind(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn multi_row_statements_number_parameters_in_text_order() {
        assert_eq!(
            moves_sql(Dialect::Postgres, 2),
            "UPDATE conversations SET last_seq = v.column3, \
             state = COALESCE(v.column4, conversations.state), updated_at = v.column5 \
             FROM (VALUES ($1,$2,$3,$4,$5),($6,$7,$8,$9,$10)) AS v \
             WHERE conversations.id = v.column1 AND conversations.last_seq = v.column2 \
             RETURNING conversations.id"
        );
        assert_eq!(
            frames_sql(Dialect::Sqlite, 2),
            "INSERT INTO frames (conversation_id, seq, reply_to, body, created_at) VALUES \
             (?,?,?,?,?),(?,?,?,?,?)"
        );
    }

    /// The single-row and multi-row forms write the same columns with the same arguments.
    #[test]
    fn an_event_is_recorded_with_the_same_arguments_alone_or_in_a_batch() {
        let e = WebhookEventRecord {
            id: "evt_1".into(),
            event_type: "charge.succeeded".into(),
            account: None,
            livemode: true,
            created: 1,
            payload: "{}".into(),
            received_at: 2,
            processed_at: None,
            outcome: None,
        };
        let one = record_event(&e);
        let many = record_events(Dialect::Postgres, &[&e, &e]);
        assert_eq!(many.args.len(), 2 * one.args.len());
        assert_eq!(&many.args[..9], &one.args[..]);
        assert!(one.sql.contains(EVENT_COLUMNS) && many.sql.contains(EVENT_COLUMNS));
        assert!(INSERT_FRAME.contains(FRAME_COLUMNS));
    }

    /// Each statement binds exactly the parameters its SQL names (a miscount fails only at run
    /// time, and only on the backend that notices).
    #[test]
    fn every_row_binds_the_parameters_its_sql_names() {
        let project = ProjectId::generate();
        let rows = [
            ExtraWrite::UpsertConnection(ConnectionRecord {
                project_id: project.clone(),
                mode: Mode::Live,
                account_id: "acct_1".into(),
                origin: chatpay_core::domain::Origin::Created,
                snapshot: "{}".into(),
                connected_at: 1,
                updated_at: 2,
            }),
            ExtraWrite::DeleteConnection {
                project_id: project.clone(),
                mode: Mode::Test,
            },
            ExtraWrite::MarkEventProcessed {
                id: "evt_1".into(),
                outcome: "applied".into(),
            },
            ExtraWrite::RecordEvent(WebhookEventRecord {
                id: "evt_1".into(),
                event_type: "charge.succeeded".into(),
                account: None,
                livemode: false,
                created: 1,
                payload: "{}".into(),
                received_at: 2,
                processed_at: None,
                outcome: None,
            }),
            ExtraWrite::PutOrder(OrderUpdate {
                id: "ord_1".into(),
                expected_version: 1,
                status: "paid".into(),
                payment_intent: None,
                data: "{}".into(),
                customer_email: Some("Ana@Example.com".into()),
            }),
            ExtraWrite::PutSubscription(subscription(&project, 0)),
            ExtraWrite::PutSubscription(subscription(&project, 2)),
            ExtraWrite::SetProjectMode {
                project_id: project.clone(),
                mode: Mode::Live,
            },
            ExtraWrite::EnqueueAppEvent(NewAppEvent {
                id: "evt_cp_1".into(),
                project_id: project.clone(),
                event_type: "entitlement.granted".into(),
                payload: "{}".into(),
                seq: 1,
                created_at: 1,
            }),
            ExtraWrite::RecordOperation(NewOperation {
                key: "chatpay:order:ord_1:checkout".into(),
                project_id: project.clone(),
                mode: Mode::Test,
                conversation_id: None,
                kind: "checkout".into(),
                request: "{}".into(),
                created_at: 1,
                held: None,
            }),
            ExtraWrite::FinishOperation {
                key: "chatpay:order:ord_1:checkout".into(),
                status: OperationStatus::Done,
                result: "{}".into(),
            },
            ExtraWrite::InsertOrder(NewOrder {
                id: "ord_1".into(),
                project_id: project.clone(),
                mode: Mode::Test,
                status: "open".into(),
                session_id: "cs_1".into(),
                created_at: 1,
                data: "{}".into(),
                customer_email: None,
            }),
            ExtraWrite::PutPortalSettings {
                project_id: project.clone(),
                mode: Mode::Test,
                cancel_mode: None,
                proof_secret: "cps_1".into(),
            },
            ExtraWrite::PortalConfigured {
                project_id: project.clone(),
                mode: Mode::Test,
                account_id: "acct_1".into(),
                configuration_id: "bpc_1".into(),
                configuration: "{}".into(),
                version: 1,
            },
        ];
        for row in &rows {
            for st in row.statements(7) {
                let named = (1..=st.args.len() + 1)
                    .filter(|n| st.sql.contains(&format!("${n}")))
                    .count();
                assert_eq!(named, st.args.len(), "{row:?}: {}", st.sql);
            }
        }
    }

    fn subscription(project: &ProjectId, expected_version: i64) -> SubscriptionUpdate {
        SubscriptionUpdate {
            id: "sub_1".into(),
            project_id: project.clone(),
            mode: Mode::Test,
            account_id: "acct_1".into(),
            expected_version,
            status: "active".into(),
            customer_email: None,
            data: "{}".into(),
        }
    }

    /// Version-guarded rows carry their check; an email is stored in lower case.
    #[test]
    fn an_order_moves_only_from_its_version() {
        let row = ExtraWrite::PutOrder(OrderUpdate {
            id: "ord_1".into(),
            expected_version: 4,
            status: "paid".into(),
            payment_intent: Some("pi_1".into()),
            data: "{}".into(),
            customer_email: Some("Ana@Example.com".into()),
        });
        let st = &row.statements(7)[0];
        assert_eq!(
            st.check,
            Some(VersionCheck {
                what: "order",
                id: "ord_1",
                version: 4
            })
        );
        assert_eq!(st.args[6], Arg::from("ana@example.com".to_owned()));
        assert_eq!(st.args[5], Arg::Int(Some(7)));
    }
}
