//! Group commit: turns from many conversations queue here and share transactions.
//!
//! One writer owns the write side. It takes every turn already waiting (up to a bound), commits
//! them in one transaction and answers each submitter. Under load the batch grows by itself: while
//! a commit is in flight, the next batch queues. At low load a batch is one turn, so latency is
//! one commit.
//!
//! The writer is a tokio task ([`Writer::spawn`], PostgreSQL: its statements are network round
//! trips anyway) or an OS thread of its own ([`Writer::spawn_thread`], SQLite: the whole batch
//! runs on the thread that owns the connection, with no hand-off per statement).

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use super::{StoreError, StoreResult, TurnWrite};

const QUEUE: usize = 8192;
const MAX_BATCH: usize = 1024;

pub(super) struct Job {
    turn: TurnWrite,
    done: oneshot::Sender<StoreResult<()>>,
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
    /// result per turn, in order (a turn can fail alone, e.g. on a version conflict).
    pub(super) fn spawn<F, Fut>(commit: F) -> Writer
    where
        F: Fn(Vec<TurnWrite>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<StoreResult<()>>> + Send,
    {
        let (writer, mut rx) = Writer::channel();
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
                let (turns, waiters) = split(&mut jobs);
                answer(waiters, commit(turns).await);
            }
        });
        writer
    }

    pub(super) async fn submit(&self, turn: TurnWrite) -> StoreResult<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { turn, done })
            .await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("the store writer has stopped")))?;
        wait.await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("the store writer dropped a turn")))?
    }
}

/// Serves `jobs` on the calling (non-async) thread until every [`Writer`] is dropped: the
/// blocking twin of the task in [`Writer::spawn`]. `after` runs once a batch is answered, for
/// upkeep that must not delay answers (turns arriving meanwhile join the next batch).
pub(super) fn serve_blocking(
    mut jobs: Jobs,
    mut commit: impl FnMut(Vec<TurnWrite>) -> Vec<StoreResult<()>>,
    mut after: impl FnMut(),
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        let (turns, waiters) = split(&mut batch);
        answer(waiters, commit(turns));
        after();
    }
}

fn split(jobs: &mut Vec<Job>) -> (Vec<TurnWrite>, Vec<oneshot::Sender<StoreResult<()>>>) {
    jobs.drain(..).map(|j| (j.turn, j.done)).unzip()
}

fn answer(waiters: Vec<oneshot::Sender<StoreResult<()>>>, results: Vec<StoreResult<()>>) {
    debug_assert_eq!(results.len(), waiters.len());
    tracing::trace!(turns = waiters.len(), "group commit");
    for (done, result) in waiters.into_iter().zip(results) {
        // The submitter may have gone away (connection closed); the write stands.
        let _ = done.send(result);
    }
}
