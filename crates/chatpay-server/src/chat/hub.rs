//! The registry of live conversation actors.
//!
//! A std `Mutex` is right here: it guards a map for a few instructions and is never held across
//! an `.await`. Subscribing happens under the same lock as unloading, so an actor never unloads
//! while a client is joining it. A panic while the lock is held (which poisons it) leaves the map
//! usable: each change is one insert or remove, and at worst an entry's actor is gone, which the
//! next lookup sees (`is_closed`) and replaces. So a poisoned lock is taken as it is, rather than
//! failing every later join on the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc};

use super::Inner;
use super::actor::{self, Msg};
use super::message::OutFrame;
use chatpay_core::domain::{ConversationId, ProjectId};

/// Frames a slow client may fall behind by before it re-reads them from the store. Small on
/// purpose: the buffer is allocated up front for every loaded conversation, and catching up from
/// the store is correct and cheap.
const BROADCAST_CAPACITY: usize = 16;
const MAILBOX: usize = 256;

/// A way to reach one conversation's actor.
#[derive(Clone)]
pub struct ActorHandle {
    tx: mpsc::Sender<Msg>,
    frames: broadcast::Sender<OutFrame>,
}

impl ActorHandle {
    pub(super) fn tx(&self) -> &mpsc::Sender<Msg> {
        &self.tx
    }
}

#[derive(Default)]
pub(super) struct Hub {
    actors: Mutex<HashMap<ConversationId, ActorHandle>>,
}

impl Hub {
    /// The registry, locked (recovered if a panic poisoned the lock: see the module docs).
    fn actors(&self) -> MutexGuard<'_, HashMap<ConversationId, ActorHandle>> {
        self.actors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The conversation's actor, started if needed.
    pub(super) fn get(
        &self,
        inner: &Arc<Inner>,
        conversation: &ConversationId,
        project: &ProjectId,
    ) -> ActorHandle {
        let mut actors = self.actors();
        self.get_locked(&mut actors, inner, conversation, project)
    }

    /// The actor and a subscription to its frames, taken together.
    pub(super) fn subscribe(
        &self,
        inner: &Arc<Inner>,
        conversation: &ConversationId,
        project: &ProjectId,
    ) -> (ActorHandle, broadcast::Receiver<OutFrame>) {
        let mut actors = self.actors();
        let handle = self.get_locked(&mut actors, inner, conversation, project);
        let rx = handle.frames.subscribe();
        (handle, rx)
    }

    fn get_locked(
        &self,
        actors: &mut HashMap<ConversationId, ActorHandle>,
        inner: &Arc<Inner>,
        conversation: &ConversationId,
        project: &ProjectId,
    ) -> ActorHandle {
        if let Some(h) = actors.get(conversation)
            && !h.tx.is_closed()
        {
            return h.clone();
        }
        let (tx, rx) = mpsc::channel(MAILBOX);
        let (frames, _) = broadcast::channel(BROADCAST_CAPACITY);
        let handle = ActorHandle {
            tx: tx.clone(),
            frames: frames.clone(),
        };
        actors.insert(conversation.clone(), handle.clone());
        actor::spawn(
            Arc::clone(inner),
            conversation.clone(),
            project.clone(),
            rx,
            tx.downgrade(),
            frames,
        );
        handle
    }

    /// Tells the conversation's actor, if loaded here, that the store may be ahead of it.
    /// Never waits: a full mailbox is busy anyway, and the next turn or poll catches up.
    pub(super) fn behind(&self, conversation: &ConversationId, seq: Option<i64>) {
        let handle = self.actors().get(conversation).cloned();
        if let Some(h) = handle {
            let _ = h.tx.try_send(Msg::Behind { seq });
        }
    }

    /// [`Hub::behind`] for every loaded actor (a listener reconnect, the safety poll).
    pub(super) fn all_behind(&self) {
        let handles: Vec<ActorHandle> = self.actors().values().cloned().collect();
        for h in handles {
            let _ = h.tx.try_send(Msg::Behind { seq: None });
        }
    }

    /// Unloads the actor if nobody listens and it is still the registered one. The caller then
    /// answers what is already in its mailbox and stops.
    pub(super) fn unload_if_idle(
        &self,
        conversation: &ConversationId,
        frames: &broadcast::Sender<OutFrame>,
    ) -> bool {
        let mut actors = self.actors();
        let ours = actors
            .get(conversation)
            .is_some_and(|h| h.frames.same_channel(frames));
        if ours && frames.receiver_count() == 0 {
            actors.remove(conversation);
            return true;
        }
        !ours
    }
}
