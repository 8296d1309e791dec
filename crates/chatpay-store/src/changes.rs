//! What other instances committed: the feed of "conversation X reached seq N" that several
//! instances on one PostgreSQL use to wake each other, and of "credential T was revoked" (by
//! another instance, or by `chatpay token revoke` / `user reset-password`, which are processes
//! of their own), on which open connections using T close.
//!
//! The database is the history; this is only a wake-up. Each PostgreSQL turn's transaction runs
//! `pg_notify('chatpay', '<conversation>:<seq>')` (in `postgres::writer`), delivered to every
//! listener when the transaction commits, never before. One connection per instance LISTENs
//! ([`listen`]) and hands each notification on as a [`Change::Moved`]; the instance then reads
//! the frames from the table. NOTIFY is fire-and-forget: what is sent while the listening
//! connection is down is lost, so after a reconnect the feed says [`Change::Reconnected`] and the
//! instance catches up by sequence on every conversation it serves (and a slow poll, the
//! caller's, covers a lost notification). SQLite has no feed: it is one instance's database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use chatpay_core::domain::{ConversationId, TokenId};

/// The channel every PostgreSQL turn notifies.
pub const CHANNEL: &str = "chatpay";

/// One thing the feed says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A turn committed: the conversation is at `seq` (or further).
    Moved {
        conversation: ConversationId,
        seq: i64,
    },
    /// A credential was revoked (`revoked:<token id>`): connections using it close.
    Revoked { credential: TokenId },
    /// The listening connection was lost and is back: notifications may have been missed.
    Reconnected,
}

/// The prefix of a revocation's payload (a conversation id never starts so).
const REVOKED: &str = "revoked:";

impl Change {
    /// A notification's payload, `<conversation>:<seq>` or `revoked:<token id>`.
    pub fn parse(payload: &str) -> Option<Change> {
        if let Some(id) = payload.strip_prefix(REVOKED) {
            return Some(Change::Revoked {
                credential: TokenId::parse(id)?,
            });
        }
        let (conversation, seq) = payload.rsplit_once(':')?;
        Some(Change::Moved {
            conversation: ConversationId::parse(conversation)?,
            seq: seq.parse().ok()?,
        })
    }

    /// The payload of a turn's notification.
    pub fn payload(conversation: &ConversationId, seq: i64) -> String {
        format!("{conversation}:{seq}")
    }

    /// The payload of a revocation's notification.
    pub fn revoked_payload(credential: &TokenId) -> String {
        format!("{REVOKED}{credential}")
    }
}

/// The receiving end of the feed, and whether its connection is up (for `/readyz`).
pub struct ChangeFeed {
    pub changes: mpsc::Receiver<Change>,
    pub connected: Arc<AtomicBool>,
}

/// Whether the listener is connected: shared by the feed and the store.
#[derive(Clone, Default)]
pub(crate) struct Listening(pub(crate) Arc<AtomicBool>);

impl Listening {
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Starts the listening task for the database at `url`: one connection of its own (not the
/// pool's), reconnected with a bounded backoff when it drops. The task ends when the feed's
/// receiver is dropped.
pub(crate) fn listen(url: String, listening: Listening) -> ChangeFeed {
    let (tx, rx) = mpsc::channel(4096);
    let connected = Arc::clone(&listening.0);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        loop {
            let mut listener = match connect(&url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "change listener: could not connect");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            listening.0.store(true, Ordering::Relaxed);
            if !first {
                tracing::info!("change listener reconnected; catching up");
                if tx.send(Change::Reconnected).await.is_err() {
                    return;
                }
            }
            first = false;
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        let Some(change) = Change::parse(n.payload()) else {
                            tracing::debug!(
                                payload = n.payload(),
                                "change listener: unreadable payload"
                            );
                            continue;
                        };
                        if tx.send(change).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        tracing::warn!("change listener: connection lost");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "change listener: connection failed");
                        break;
                    }
                }
            }
            listening.0.store(false, Ordering::Relaxed);
            if tx.is_closed() {
                return;
            }
        }
    });
    ChangeFeed {
        changes: rx,
        connected,
    }
}

async fn connect(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let c = ConversationId::generate();
        let p = Change::payload(&c, 42);
        assert_eq!(
            Change::parse(&p),
            Some(Change::Moved {
                conversation: c,
                seq: 42
            })
        );
        assert_eq!(Change::parse("nonsense"), None);
        let t = TokenId::generate();
        assert_eq!(
            Change::parse(&Change::revoked_payload(&t)),
            Some(Change::Revoked { credential: t })
        );
        assert_eq!(Change::parse("revoked:nonsense"), None);
    }
}
