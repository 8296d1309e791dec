//! A turn worked out, without I/O: from the effects the flows returned to the one write the store
//! commits ([`TurnWrite`]) and what the actor holds and does once it is committed ([`After`]).
//!
//! The actor runs the flows, calls [`plan`], commits the write, then takes on [`After`]
//! (`Actor::apply`). Nothing here reads a clock, a random source or the store: the caller passes
//! them in ([`Stamps`], [`Held`]). So the whole mapping is tested below without a server: which
//! client frame the turn's frames answer and with which intent, how they are numbered, which
//! rows go with them and in what order, the "Okay." a say or click gets when nothing else
//! answers it, and what the actor holds afterwards.

use std::sync::Arc;

use super::app_webhooks::outbox_row;
use super::message::{Body, IntentTag};
use chatpay_core::domain::{ConversationId, Mode, ProjectId};
use chatpay_core::flows::{Asked, Call, Connection, ConversationState, Effect};
use chatpay_store::{
    ConnectionRecord, ExtraWrite, NewOperation, OperationStatus, OrderUpdate, StoredFrame,
    SubscriptionUpdate, TurnWrite, WebhookEventRecord,
};

/// Where a mode's connection is kept in a `[Option<Connection>; 2]`: test, then live.
pub(super) fn slot(mode: Mode) -> usize {
    usize::from(mode.is_live())
}

/// The idempotency key of the conversation's call `op`: the same call after a crash or a retry
/// has the same key, so Stripe acts once.
pub(super) fn call_key(conversation: &ConversationId, op: u64, call: &Call) -> String {
    format!("chatpay:{conversation}:{op}:{}", call.name())
}

/// Whether a call writes to Stripe, and so is recorded in the `operations` table with the turn
/// that starts it (and finished with the turn that applies its result). Reads are not recorded:
/// nothing is changed by making them twice.
pub(super) fn writes_to_stripe(call: &Call) -> bool {
    match call {
        Call::CreateAccount(_)
        | Call::CreateAccountLink { .. }
        | Call::RefreshLink { .. }
        | Call::ExchangeOauthCode { .. }
        | Call::Deauthorize { .. }
        | Call::CreateRefund { .. }
        | Call::ResendReceipt { .. }
        | Call::ChangeSubscription { .. }
        | Call::CreateProduct { .. }
        | Call::ChangeProduct { .. }
        | Call::CreateCode { .. }
        | Call::TurnOffCode { .. }
        | Call::RespondToDispute { .. }
        | Call::CopyCatalog => true,
        Call::RetrieveAccount { .. }
        | Call::SyncCatalog
        | Call::RefreshProduct { .. }
        | Call::ReadCatalog { .. }
        | Call::RefreshOrder { .. }
        | Call::FindOrder { .. }
        | Call::ListOrders { .. }
        | Call::RefreshSubscription { .. }
        | Call::ListSubscriptions { .. }
        | Call::ReadPayouts { .. }
        | Call::RefreshPayout { .. }
        | Call::CheckLive
        | Call::FindProduct { .. }
        | Call::ListCodes { .. }
        | Call::ListCustomers { .. }
        | Call::PortalSettings { .. }
        | Call::PreviewPlanChange { .. }
        | Call::SubscriptionMetrics { .. }
        | Call::ExportLink { .. } => false,
        // Writes that record their own stored operations (`Engine::stripe_write`, keyed by the
        // call): the same path as the HTTP API's, so the turn records none.
        Call::PortalLink { .. } | Call::ChangePlan { .. } => false,
    }
}

/// A call whose result the turn applies: its stored operation ends with the turn.
pub(super) struct Finished<'a> {
    pub op: u64,
    pub call: &'a Call,
    /// The call's failure, if it failed.
    pub error: Option<&'a str>,
}

/// What caused an input: which client frame its frames reply to, and the intent they carry.
pub(super) enum Cause<'a> {
    /// A `say`, read as `intent` (`None`: nothing matched).
    Say {
        id: &'a str,
        /// What was said: stored as the turn's first frame (`said`).
        text: &'a str,
        intent: Option<&'a IntentTag>,
    },
    Click {
        id: &'a str,
    },
    /// Something outside the chat; `ledger` is the webhook event the turn applies, `record`
    /// its ledger row if it is to be stored with the turn.
    Outside {
        ledger: Option<&'a str>,
        record: Option<&'a WebhookEventRecord>,
    },
    /// A call's result that answers someone's question.
    Answer(Option<Asked>),
}

impl Cause<'_> {
    /// Who the turn answers, for the flows (`Facts::asked`): a say or click answers itself, a
    /// call's result whoever asked for the call.
    pub(super) fn asked(&self) -> Option<Asked> {
        match self {
            Cause::Say { id, .. } | Cause::Click { id } => Some(Asked {
                reply_to: (*id).to_owned(),
                intent: None,
            }),
            Cause::Answer(asked) => asked.clone(),
            Cause::Outside { .. } => None,
        }
    }

    /// The client frame this turn answers itself (a say or a click), whose id is then answered.
    pub(super) fn reply_to_id(&self) -> Option<&str> {
        match self {
            Cause::Say { id, .. } | Cause::Click { id } => Some(id),
            Cause::Answer(_) | Cause::Outside { .. } => None,
        }
    }

    /// The client frame the turn's frames reply to.
    fn reply_to(&self) -> Option<&str> {
        match self {
            Cause::Say { id, .. } | Cause::Click { id } => Some(id),
            Cause::Answer(Some(asked)) => Some(&asked.reply_to),
            Cause::Answer(None) | Cause::Outside { .. } => None,
        }
    }
}

/// What the actor holds when the turn starts.
pub(super) struct Held<'a> {
    pub conversation: &'a ConversationId,
    pub project: &'a ProjectId,
    pub project_mode: Mode,
    pub last_seq: i64,
    /// The state as last stored.
    pub state_json: &'a str,
    /// The project's connections, test then live ([`slot`]), and when each was connected.
    pub connections: &'a [Option<Connection>; 2],
    pub connected_at: [i64; 2],
    /// The pending call whose result this turn applies, if it does.
    pub finished: Option<Finished<'a>>,
}

/// What a turn takes from the world, read by the caller.
pub(super) struct Stamps<'a> {
    /// The turn's time (milliseconds).
    pub now: i64,
    /// This instance (as it claims operations) and until when a Stripe write the turn asks
    /// for is held by it without renewing.
    pub holder: (&'a str, i64),
    /// An id and an order number for each event the turn tells the builder's app.
    pub app_event: &'a mut dyn FnMut() -> (String, i64),
}

/// A turn to store, and what follows once it is stored.
pub(super) struct Turn {
    pub write: TurnWrite,
    pub after: After,
}

/// What the actor holds and does once the turn's write is committed (never before: until then
/// nobody may see or act on it).
pub(super) struct After {
    pub state: ConversationState,
    pub state_json: String,
    pub last_seq: i64,
    pub connections: [Option<Connection>; 2],
    pub connected_at: [i64; 2],
    pub project_mode: Mode,
    /// The client frame the turn answered (a retry of it gets the stored frames again).
    pub answered: Option<String>,
    /// The Stripe calls to start, each with its operation number.
    pub calls: Vec<(u64, Call)>,
    /// Whether the turn put events in the app webhook outbox (their sender is woken).
    pub notify_app: bool,
}

/// The turn that `effects` make, in `mode`, leaving the conversation in state `next`; `None`
/// when it changes nothing (no frame, no row, the same state).
pub(super) fn plan(
    held: &Held<'_>,
    cause: &Cause<'_>,
    mode: Mode,
    next: ConversationState,
    effects: &[Effect],
    stamps: &mut Stamps<'_>,
) -> Result<Option<Turn>, serde_json::Error> {
    let now = stamps.now;
    let reply_to = cause.reply_to();
    // The frames of a say carry its intent (`null`: nothing matched), and so do those of a
    // call's result that answers a say; a click's and an outside event's carry none.
    let answer_tag = match cause {
        Cause::Answer(Some(asked)) => asked.intent.as_ref().map(|(name, confidence)| IntentTag {
            name: name.clone(),
            confidence: *confidence,
        }),
        _ => None,
    };
    let intent: Option<Option<&IntentTag>> = match cause {
        Cause::Say { intent, .. } => Some(*intent),
        Cause::Answer(Some(_)) => answer_tag.as_ref().map(Some),
        _ => None,
    };
    let frame = |seq: i64, body: &Body<'_>| -> Result<StoredFrame, serde_json::Error> {
        Ok(StoredFrame {
            seq,
            reply_to: reply_to.map(str::to_owned),
            body: Arc::from(serde_json::to_string(body)?),
        })
    };

    let mut frames: Vec<StoredFrame> = Vec::new();
    let mut extra = Vec::new();
    if let Cause::Outside {
        record: Some(record),
        ..
    } = cause
    {
        // First: the turn's own marks of this event update the row it inserts.
        extra.push(ExtraWrite::RecordEvent((*record).clone()));
    }
    let mut calls = Vec::new();
    let mut connections = held.connections.clone();
    let mut connected_at = held.connected_at;
    let mut project_mode = held.project_mode;
    let mut notify_app = false;
    if let Some(done) = &held.finished
        && writes_to_stripe(done.call)
    {
        let (status, result) = match done.error {
            None => (OperationStatus::Done, "{}".to_owned()),
            Some(e) => (
                OperationStatus::Failed,
                serde_json::json!({ "message": e }).to_string(),
            ),
        };
        extra.push(ExtraWrite::FinishOperation {
            key: call_key(held.conversation, done.op, done.call),
            status,
            result,
        });
    }
    if let Cause::Say { text, .. } = cause {
        // The person's own words come first, numbered like every frame of the conversation.
        let seq = held.last_seq + 1;
        frames.push(frame(
            seq,
            &Body::Said {
                seq,
                reply_to,
                text,
            },
        )?);
    }
    let said = frames.len();
    for effect in effects {
        let seq = held.last_seq + frames.len() as i64 + 1;
        let body = match effect {
            Effect::Reply(text) => Body::Reply {
                seq,
                reply_to,
                text,
                intent,
            },
            Effect::Card(card) => Body::Card {
                seq,
                reply_to,
                intent,
                card,
            },
            Effect::Flow { flow, state } => Body::Flow {
                seq,
                reply_to,
                intent,
                flow: flow.as_str(),
                state,
            },
            Effect::Call { op, call } => {
                if writes_to_stripe(call) {
                    // Recorded before it is made: one record of every Stripe write in flight.
                    // The conversation re-issues it (its pending calls) after a crash.
                    extra.push(ExtraWrite::RecordOperation(NewOperation {
                        key: call_key(held.conversation, *op, call),
                        project_id: held.project.clone(),
                        mode,
                        conversation_id: Some(held.conversation.clone()),
                        kind: call.name().to_owned(),
                        request: serde_json::to_string(call)?,
                        created_at: now,
                        held: Some((stamps.holder.0.to_owned(), stamps.holder.1)),
                    }));
                }
                calls.push((*op, call.clone()));
                continue;
            }
            Effect::SaveConnection {
                mode,
                connection: c,
            } => {
                let at = slot(*mode);
                if connections[at]
                    .as_ref()
                    .is_none_or(|old| old.account.id != c.account.id)
                {
                    connected_at[at] = now;
                }
                extra.push(ExtraWrite::UpsertConnection(ConnectionRecord {
                    project_id: held.project.clone(),
                    mode: *mode,
                    account_id: c.account.id.clone(),
                    origin: c.origin,
                    snapshot: serde_json::to_string(&c.account)?,
                    connected_at: connected_at[at],
                    updated_at: now,
                }));
                connections[at] = Some((**c).clone());
                continue;
            }
            Effect::DropConnection { mode } => {
                extra.push(ExtraWrite::DeleteConnection {
                    project_id: held.project.clone(),
                    mode: *mode,
                });
                connections[slot(*mode)] = None;
                continue;
            }
            Effect::SetMode(mode) => {
                extra.push(ExtraWrite::SetProjectMode {
                    project_id: held.project.clone(),
                    mode: *mode,
                });
                project_mode = *mode;
                continue;
            }
            Effect::SaveOrder {
                order,
                expected_version,
            } => {
                extra.push(ExtraWrite::PutOrder(OrderUpdate {
                    id: order.id.clone(),
                    expected_version: *expected_version,
                    status: order.status.as_str().to_owned(),
                    payment_intent: order.payment_intent.clone(),
                    data: serde_json::to_string(order)?,
                    customer_email: order.customer_email.clone(),
                }));
                continue;
            }
            Effect::SaveSubscription {
                subscription,
                expected_version,
            } => {
                extra.push(ExtraWrite::PutSubscription(SubscriptionUpdate {
                    id: subscription.id.clone(),
                    project_id: held.project.clone(),
                    mode,
                    account_id: connections[slot(mode)]
                        .as_ref()
                        .map(|c| c.account.id.clone())
                        .unwrap_or_default(),
                    expected_version: *expected_version,
                    status: subscription.status.as_str().to_owned(),
                    customer_email: subscription.customer_email.clone(),
                    data: serde_json::to_string(subscription)?,
                }));
                continue;
            }
            Effect::EventApplied { id, outcome } => {
                extra.push(ExtraWrite::MarkEventProcessed {
                    id: id.clone(),
                    outcome: outcome.clone(),
                });
                continue;
            }
            Effect::Notify(change) => {
                let (id, seq) = (stamps.app_event)();
                extra.push(ExtraWrite::EnqueueAppEvent(outbox_row(
                    held.project,
                    mode,
                    change,
                    now,
                    seq,
                    id,
                )));
                notify_app = true;
                continue;
            }
        };
        frames.push(frame(seq, &body)?);
    }
    let answered_later = reply_to.is_some_and(|id| next.answers_pending_for(id));
    if reply_to.is_some() && frames.len() == said && !answered_later {
        // The protocol promises at least one frame per say and click (an answer a call will
        // give comes with the call's result); the echo of a say is not an answer.
        let seq = held.last_seq + frames.len() as i64 + 1;
        frames.push(frame(
            seq,
            &Body::Reply {
                seq,
                reply_to,
                text: "Okay.",
                intent,
            },
        )?);
    }
    if let Cause::Outside {
        ledger: Some(id), ..
    } = cause
    {
        extra.push(ExtraWrite::MarkEventProcessed {
            id: (*id).to_owned(),
            outcome: "applied".to_owned(),
        });
    }
    let state_json = serde_json::to_string(&next)?;
    let state_changed = state_json != held.state_json;
    if frames.is_empty() && extra.is_empty() && !state_changed {
        return Ok(None);
    }
    let last_seq = held.last_seq + frames.len() as i64;
    Ok(Some(Turn {
        write: TurnWrite {
            conversation: held.conversation.clone(),
            prev_seq: held.last_seq,
            last_seq,
            state: state_changed.then(|| Arc::from(state_json.as_str())),
            frames,
            extra,
        },
        after: After {
            state: next,
            state_json,
            last_seq,
            connections,
            connected_at,
            project_mode,
            answered: reply_to.map(str::to_owned),
            calls,
            notify_app,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatpay_core::account::AccountSnapshot;
    use chatpay_core::billing::{AccessChange, AccessReason, Grant};
    use chatpay_core::domain::Origin;

    /// A conversation at seq 5 in the default state, connected in test mode to `acct_1` since
    /// time 100.
    struct Fixture {
        conversation: ConversationId,
        project: ProjectId,
        state_json: String,
        connections: [Option<Connection>; 2],
    }

    fn fixture() -> Fixture {
        Fixture {
            conversation: ConversationId::generate(),
            project: ProjectId::generate(),
            state_json: serde_json::to_string(&ConversationState::default()).unwrap(),
            connections: [Some(connection("acct_1")), None],
        }
    }

    fn connection(account: &str) -> Connection {
        Connection {
            account: AccountSnapshot {
                id: account.to_owned(),
                ..AccountSnapshot::default()
            },
            origin: Origin::Created,
        }
    }

    impl Fixture {
        fn held(&self) -> Held<'_> {
            Held {
                conversation: &self.conversation,
                project: &self.project,
                project_mode: Mode::Test,
                last_seq: 5,
                state_json: &self.state_json,
                connections: &self.connections,
                connected_at: [100, 0],
                finished: None,
            }
        }

        /// The turn at time 1000 (app events numbered 1, 2, …), in test mode, leaving the
        /// state as it was.
        fn plan(&self, cause: &Cause<'_>, effects: &[Effect]) -> Option<Turn> {
            let mut n = 0;
            let mut app_event = || {
                n += 1;
                (format!("evt_cp_{n}"), n)
            };
            let mut stamps = Stamps {
                now: 1000,
                holder: ("inst_test", 11_000),
                app_event: &mut app_event,
            };
            plan(
                &self.held(),
                cause,
                Mode::Test,
                ConversationState::default(),
                effects,
                &mut stamps,
            )
            .unwrap()
        }
    }

    fn bodies(write: &TurnWrite) -> Vec<serde_json::Value> {
        write
            .frames
            .iter()
            .map(|f| serde_json::from_str(&f.body).unwrap())
            .collect()
    }

    #[test]
    fn a_say_that_nothing_answers_gets_okay() {
        let f = fixture();
        let turn = f.plan(
            &Cause::Say {
                id: "u1",
                text: "hm",
                intent: None,
            },
            &[],
        );
        let turn = turn.expect("a say is always answered");
        assert_eq!(
            bodies(&turn.write),
            [
                serde_json::json!({"type": "said", "seq": 6, "reply_to": "u1", "text": "hm"}),
                serde_json::json!({"type": "reply", "seq": 7, "reply_to": "u1", "text": "Okay.", "intent": null})
            ]
        );
        assert_eq!(turn.write.frames[0].reply_to.as_deref(), Some("u1"));
        assert_eq!((turn.write.prev_seq, turn.write.last_seq), (5, 7));
        assert_eq!(turn.write.state, None, "the state did not change");
        assert_eq!(turn.after.last_seq, 7);
        assert_eq!(turn.after.answered.as_deref(), Some("u1"));
    }

    #[test]
    fn frames_are_numbered_after_the_last_and_carry_the_say_and_its_intent() {
        let f = fixture();
        let tag = IntentTag {
            name: "refund".to_owned(),
            confidence: 0.5,
        };
        let turn = f
            .plan(
                &Cause::Say {
                    id: "u2",
                    text: "refund it",
                    intent: Some(&tag),
                },
                &[
                    Effect::Reply("one".to_owned()),
                    Effect::Call {
                        op: 3,
                        call: Call::CheckLive,
                    },
                    Effect::Reply("two".to_owned()),
                ],
            )
            .unwrap();
        let intent = serde_json::json!({"name": "refund", "confidence": 0.5});
        assert_eq!(
            bodies(&turn.write),
            [
                serde_json::json!({"type": "said", "seq": 6, "reply_to": "u2", "text": "refund it"}),
                serde_json::json!({"type": "reply", "seq": 7, "reply_to": "u2", "text": "one", "intent": intent}),
                serde_json::json!({"type": "reply", "seq": 8, "reply_to": "u2", "text": "two", "intent": intent}),
            ]
        );
        assert_eq!(
            turn.write.frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            [6, 7, 8]
        );
        assert_eq!((turn.write.last_seq, turn.after.last_seq), (8, 8));
        assert_eq!(turn.after.calls, [(3, Call::CheckLive)]);
    }

    /// A Stripe write is recorded (with its key) in the turn that starts it, and ends in the turn
    /// that applies its result; a read is neither.
    #[test]
    fn a_stripe_write_is_recorded_with_the_turn_that_starts_it_and_ends_with_its_result() {
        let f = fixture();
        let refund = Call::CreateRefund {
            order: "ord_1".into(),
            number: 1001,
            payment_intent: "pi_1".into(),
            amount: 500,
            currency: "usd".into(),
        };
        let turn = f
            .plan(
                &Cause::Click { id: "u3" },
                &[
                    Effect::Call {
                        op: 4,
                        call: refund.clone(),
                    },
                    Effect::Call {
                        op: 5,
                        call: Call::CheckLive,
                    },
                    Effect::Reply("Refunding…".to_owned()),
                ],
            )
            .unwrap();
        let key = format!("chatpay:{}:4:create_refund", f.conversation);
        match turn.write.extra.as_slice() {
            [ExtraWrite::RecordOperation(op)] => {
                assert_eq!(op.key, key);
                assert_eq!(op.kind, "create_refund");
                assert_eq!(op.conversation_id.as_ref(), Some(&f.conversation));
                assert_eq!((op.mode, op.created_at), (Mode::Test, 1000));
                // Held by the instance whose turn asks for it, which makes it at once.
                assert_eq!(op.held, Some(("inst_test".to_owned(), 11_000)));
                assert_eq!(serde_json::from_str::<Call>(&op.request).unwrap(), refund);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(key, call_key(&f.conversation, 4, &refund));

        // Its result: the operation ends with the turn that applies it.
        for (error, status) in [
            (None, OperationStatus::Done),
            (Some("card declined"), OperationStatus::Failed),
        ] {
            let mut held = f.held();
            held.finished = Some(Finished {
                op: 4,
                call: &refund,
                error,
            });
            let mut app_event = || ("evt_cp_1".to_owned(), 1);
            let mut stamps = Stamps {
                now: 1000,
                holder: ("inst_test", 11_000),
                app_event: &mut app_event,
            };
            let turn = plan(
                &held,
                &Cause::Answer(None),
                Mode::Test,
                ConversationState::default(),
                &[Effect::Reply("Refunded.".to_owned())],
                &mut stamps,
            )
            .unwrap()
            .unwrap();
            match turn.write.extra.as_slice() {
                [
                    ExtraWrite::FinishOperation {
                        key: k, status: s, ..
                    },
                ] => {
                    assert_eq!((k, *s), (&key, status));
                }
                other => panic!("{other:?}"),
            }
        }
        // A read's result ends nothing.
        let mut held = f.held();
        held.finished = Some(Finished {
            op: 5,
            call: &Call::CheckLive,
            error: None,
        });
        let mut app_event = || ("evt_cp_1".to_owned(), 1);
        let mut stamps = Stamps {
            now: 1000,
            holder: ("inst_test", 11_000),
            app_event: &mut app_event,
        };
        let turn = plan(
            &held,
            &Cause::Answer(None),
            Mode::Test,
            ConversationState::default(),
            &[Effect::Reply("Checked.".to_owned())],
            &mut stamps,
        )
        .unwrap()
        .unwrap();
        assert!(turn.write.extra.is_empty());
    }

    #[test]
    fn a_click_answered_by_nothing_gets_okay_without_an_intent() {
        let f = fixture();
        let turn = f.plan(&Cause::Click { id: "u3" }, &[]).unwrap();
        assert_eq!(
            bodies(&turn.write),
            [serde_json::json!({"type": "reply", "seq": 6, "reply_to": "u3", "text": "Okay."})]
        );
    }

    #[test]
    fn a_call_result_replies_to_whoever_asked_with_their_intent() {
        let f = fixture();
        let asked = |intent| {
            Cause::Answer(Some(Asked {
                reply_to: "u4".to_owned(),
                intent,
            }))
        };
        let said = f
            .plan(
                &asked(Some(("payouts".to_owned(), 0.75))),
                &[Effect::Reply("paid".to_owned())],
            )
            .unwrap();
        assert_eq!(
            bodies(&said.write),
            [
                serde_json::json!({"type": "reply", "seq": 6, "reply_to": "u4", "text": "paid",
                "intent": {"name": "payouts", "confidence": 0.75}})
            ]
        );
        let clicked = f
            .plan(&asked(None), &[Effect::Reply("paid".to_owned())])
            .unwrap();
        assert_eq!(
            bodies(&clicked.write),
            [serde_json::json!({"type": "reply", "seq": 6, "reply_to": "u4", "text": "paid"})]
        );
        // Nobody waits for an answer that says nothing: no "Okay." for a call's result.
        assert!(f.plan(&Cause::Answer(None), &[]).is_none());
    }

    #[test]
    fn a_turn_that_changes_nothing_stores_nothing() {
        let f = fixture();
        let outside = Cause::Outside {
            ledger: None,
            record: None,
        };
        assert!(f.plan(&outside, &[]).is_none());
    }

    #[test]
    fn a_webhook_event_is_recorded_first_and_marked_applied_last() {
        let f = fixture();
        let record = WebhookEventRecord {
            id: "evt_1".to_owned(),
            event_type: "account.updated".to_owned(),
            account: Some("acct_1".to_owned()),
            livemode: false,
            created: 1,
            payload: "{}".to_owned(),
            received_at: 2,
            processed_at: None,
            outcome: None,
        };
        let turn = f
            .plan(
                &Cause::Outside {
                    ledger: Some("evt_1"),
                    record: Some(&record),
                },
                &[
                    Effect::Reply("You're live.".to_owned()),
                    Effect::SetMode(Mode::Live),
                ],
            )
            .unwrap();
        assert!(
            matches!(
                turn.write.extra.as_slice(),
                [
                    ExtraWrite::RecordEvent(recorded),
                    ExtraWrite::SetProjectMode { mode: Mode::Live, .. },
                    ExtraWrite::MarkEventProcessed { id, outcome },
                ] if recorded.id == "evt_1" && id == "evt_1" && outcome == "applied"
            ),
            "{:?}",
            turn.write.extra
        );
        // Nobody asked: the frame replies to nothing and carries no intent.
        assert_eq!(
            bodies(&turn.write),
            [serde_json::json!({"type": "reply", "seq": 6, "text": "You're live."})]
        );
        assert_eq!(turn.write.frames[0].reply_to, None);
        assert_eq!(turn.after.answered, None);
        assert_eq!(turn.after.project_mode, Mode::Live);
    }

    #[test]
    fn a_connection_keeps_its_time_unless_the_account_changes() {
        let f = fixture();
        let save = |mode, account| Effect::SaveConnection {
            mode,
            connection: Box::new(connection(account)),
        };
        let outside = Cause::Outside {
            ledger: None,
            record: None,
        };
        let turn = f
            .plan(
                &outside,
                &[save(Mode::Test, "acct_1"), save(Mode::Live, "acct_2")],
            )
            .unwrap();
        let stored: Vec<(Mode, &str, i64, i64)> = turn
            .write
            .extra
            .iter()
            .map(|x| match x {
                ExtraWrite::UpsertConnection(c) => {
                    (c.mode, c.account_id.as_str(), c.connected_at, c.updated_at)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            stored,
            [
                (Mode::Test, "acct_1", 100, 1000),
                (Mode::Live, "acct_2", 1000, 1000)
            ]
        );
        assert_eq!(turn.after.connected_at, [100, 1000]);
        assert_eq!(
            turn.after.connections[slot(Mode::Live)]
                .as_ref()
                .map(|c| c.account.id.as_str()),
            Some("acct_2")
        );
        // Dropping a connection forgets it.
        let turn = f
            .plan(&outside, &[Effect::DropConnection { mode: Mode::Test }])
            .unwrap();
        assert!(turn.after.connections[slot(Mode::Test)].is_none());
        assert!(turn.write.frames.is_empty());
    }

    #[test]
    fn app_events_take_their_ids_and_order_from_the_stamps() {
        let f = fixture();
        let change = AccessChange {
            granted: true,
            reason: AccessReason::SubscriptionStarted,
            customer_email: Some("ana@example.com".to_owned()),
            product: "prod_1".to_owned(),
            name: "Yoga".to_owned(),
            grant: Grant::Order { order: 1001 },
            since: 1,
            until: None,
        };
        let outside = Cause::Outside {
            ledger: None,
            record: None,
        };
        let turn = f
            .plan(
                &outside,
                &[
                    Effect::Notify(change.clone()),
                    Effect::Notify(change.clone()),
                ],
            )
            .unwrap();
        let events: Vec<(&str, i64, i64)> = turn
            .write
            .extra
            .iter()
            .map(|x| match x {
                ExtraWrite::EnqueueAppEvent(e) => (e.id.as_str(), e.seq, e.created_at),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(events, [("evt_cp_1", 1, 1000), ("evt_cp_2", 2, 1000)]);
        assert!(turn.after.notify_app);
    }
}
