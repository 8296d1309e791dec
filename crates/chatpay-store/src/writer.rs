//! Group commit: turns from many conversations, and webhook events for the ledger, queue here
//! and share transactions.
//!
//! One writer owns the write side. It takes every write already waiting (up to a bound), commits
//! them in one transaction and answers each submitter. Under load the batch grows by itself: while
//! a commit is in flight, the next batch queues. At low load a batch is one write, so latency is
//! one commit. A webhook event is answered only once its batch is committed, so a 2xx sent after
//! [`Writer::record`] means the event is on disk; a batch that fails fails every write in it
//! that cannot be committed alone (see the backends' `commit_batch`).
//!
//! The writer is a tokio task ([`Writer::spawn`], PostgreSQL: its statements are network round
//! trips anyway) or an OS thread of its own ([`serve_blocking`], SQLite: the whole batch runs on
//! the thread that owns the connection, with no hand-off per statement).

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use super::{Recorded, StoreError, StoreResult, TurnWrite, WebhookEventRecord};

const QUEUE: usize = 8192;
const MAX_BATCH: usize = 1024;

/// One write the writer commits.
#[derive(Debug)]
pub(super) enum Write {
    Turn(TurnWrite),
    /// A webhook event for the ledger (`INSERT … ON CONFLICT (id) DO NOTHING`): new, or a
    /// duplicate of one already stored (or earlier in the same batch).
    Event(WebhookEventRecord),
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    Turn,
    Event(Recorded),
}

pub(super) struct Job {
    write: Write,
    done: oneshot::Sender<StoreResult<Written>>,
}

/// Where the writer takes its jobs from.
pub(super) type Jobs = mpsc::Receiver<Job>;

#[derive(Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// A writer and the queue its committer serves.
    pub(super) fn channel() -> (Writer, Jobs) {
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        (Writer { tx }, rx)
    }

    /// Starts the writer task. `commit` applies a batch in one transaction and returns one
    /// result per write, in order (a turn can fail alone, e.g. on a version conflict).
    pub(super) fn spawn<F, Fut>(commit: F) -> Writer
    where
        F: Fn(Vec<Write>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<StoreResult<Written>>> + Send,
    {
        let (writer, mut rx) = Writer::channel();
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
                let (writes, waiters) = split(&mut jobs);
                answer(waiters, commit(writes).await);
            }
        });
        writer
    }

    async fn submit(&self, write: Write) -> StoreResult<Written> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { write, done })
            .await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("the store writer has stopped")))?;
        wait.await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("the store writer dropped a write")))?
    }

    /// Commits a turn with the next batch.
    pub(super) async fn turn(&self, turn: TurnWrite) -> StoreResult<()> {
        self.submit(Write::Turn(turn)).await.map(|_| ())
    }

    /// Records a webhook event with the next batch; answered once it is committed.
    pub(super) async fn record(&self, event: WebhookEventRecord) -> StoreResult<Recorded> {
        match self.submit(Write::Event(event)).await? {
            Written::Event(r) => Ok(r),
            Written::Turn => Err(StoreError::Other(anyhow::anyhow!(
                "the store writer answered an event as a turn"
            ))),
        }
    }
}

/// Serves `jobs` on the calling (non-async) thread until every [`Writer`] is dropped: the
/// blocking twin of the task in [`Writer::spawn`]. `after` runs once a batch is answered, for
/// upkeep that must not delay answers (writes arriving meanwhile join the next batch).
pub(super) fn serve_blocking(
    mut jobs: Jobs,
    mut commit: impl FnMut(Vec<Write>) -> Vec<StoreResult<Written>>,
    mut after: impl FnMut(),
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        let (writes, waiters) = split(&mut batch);
        answer(waiters, commit(writes));
        after();
    }
}

fn split(jobs: &mut Vec<Job>) -> (Vec<Write>, Vec<oneshot::Sender<StoreResult<Written>>>) {
    jobs.drain(..).map(|j| (j.write, j.done)).unzip()
}

fn answer(waiters: Vec<oneshot::Sender<StoreResult<Written>>>, results: Vec<StoreResult<Written>>) {
    tracing::trace!(writes = waiters.len(), "group commit");
    let mut results = results.into_iter();
    for done in waiters {
        // A missing result is a failure, never a silent success.
        let result = results.next().unwrap_or_else(|| {
            Err(StoreError::Other(anyhow::anyhow!(
                "the store writer gave no result for a write"
            )))
        });
        // The submitter may have gone away (connection closed); the write stands.
        let _ = done.send(result);
    }
}

/// Which events of a batch are new: the first write of each id that the database inserted;
/// every later write of the same id in the batch is a duplicate of it.
pub(super) fn first_of_each<'a>(
    ids: impl Iterator<Item = &'a str>,
    inserted: &std::collections::HashSet<String>,
) -> Vec<Recorded> {
    let mut claimed = std::collections::HashSet::new();
    ids.map(|id| {
        if inserted.contains(id) && claimed.insert(id) {
            Recorded::New
        } else {
            Recorded::Duplicate
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> WebhookEventRecord {
        WebhookEventRecord {
            id: id.to_owned(),
            event_type: "customer.created".to_owned(),
            account: None,
            livemode: false,
            created: 1,
            payload: "{}".to_owned(),
            received_at: 1,
            processed_at: None,
            outcome: None,
        }
    }

    /// A batch whose commit fails answers every write in it with the failure (the webhook
    /// endpoint turns that into a 5xx, so Stripe delivers again); none is answered as stored.
    #[tokio::test]
    async fn a_failed_batch_fails_every_write_in_it() {
        let (writer, jobs) = Writer::channel();
        let mut submitted = Vec::new();
        for i in 0..5 {
            let w = writer.clone();
            submitted.push(tokio::spawn(async move {
                w.record(event(&format!("evt_{i}"))).await
            }));
        }
        // Wait until all five are queued, so that they form one batch.
        while jobs.len() < 5 {
            tokio::task::yield_now().await;
        }
        drop(writer);
        let batches = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = batches.clone();
        let server = std::thread::spawn(move || {
            serve_blocking(
                jobs,
                |writes| {
                    seen.lock().unwrap().push(writes.len());
                    writes
                        .iter()
                        .map(|_| Err(StoreError::Other(anyhow::anyhow!("disk I/O error"))))
                        .collect()
                },
                || {},
            )
        });
        for s in submitted {
            let err = s.await.unwrap().unwrap_err();
            assert!(err.to_string().contains("disk I/O error"), "{err}");
        }
        server.join().unwrap();
        assert_eq!(*batches.lock().unwrap(), vec![5]);
    }

    /// A committer that gives fewer results than writes fails the rest instead of leaving
    /// them unanswered or answering them as stored.
    #[tokio::test]
    async fn a_write_without_a_result_is_a_failure() {
        let (writer, jobs) = Writer::channel();
        let w = writer.clone();
        let a = tokio::spawn(async move { w.record(event("evt_a")).await });
        let w = writer.clone();
        let b = tokio::spawn(async move { w.record(event("evt_b")).await });
        while jobs.len() < 2 {
            tokio::task::yield_now().await;
        }
        drop(writer);
        let server = std::thread::spawn(move || {
            serve_blocking(jobs, |_| vec![Ok(Written::Event(Recorded::New))], || {})
        });
        let results = [a.await.unwrap(), b.await.unwrap()];
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
        server.join().unwrap();
    }

    #[test]
    fn the_first_write_of_an_inserted_id_is_new_and_the_rest_duplicates() {
        let inserted: std::collections::HashSet<String> =
            ["evt_1".to_owned(), "evt_3".to_owned()].into();
        let got = first_of_each(["evt_1", "evt_2", "evt_1", "evt_3"].into_iter(), &inserted);
        assert_eq!(
            got,
            vec![
                Recorded::New,
                Recorded::Duplicate,
                Recorded::Duplicate,
                Recorded::New
            ]
        );
    }
}
