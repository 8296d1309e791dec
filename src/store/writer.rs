//! Group commit: turns from many conversations queue here and share transactions.
//!
//! One task owns the write side. It takes every turn already waiting (up to a bound), commits
//! them in one transaction and answers each submitter. Under load the batch grows by itself: while
//! a commit is in flight, the next batch queues. At low load a batch is one turn, so latency is
//! one commit.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use super::{StoreError, StoreResult, TurnWrite};

const QUEUE: usize = 8192;
const MAX_BATCH: usize = 1024;

struct Job {
    turn: TurnWrite,
    done: oneshot::Sender<StoreResult<()>>,
}

#[derive(Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task. `commit` applies a batch in one transaction and returns one
    /// result per turn, in order (a turn can fail alone, e.g. on a version conflict).
    pub(super) fn spawn<F, Fut>(commit: F) -> Writer
    where
        F: Fn(Vec<TurnWrite>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<StoreResult<()>>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
                let (turns, waiters): (Vec<_>, Vec<_>) =
                    jobs.drain(..).map(|j| (j.turn, j.done)).unzip();
                let size = turns.len();
                let started = std::time::Instant::now();
                let results = commit(turns).await;
                tracing::trace!(turns = size, took = ?started.elapsed(), "group commit");
                debug_assert_eq!(results.len(), waiters.len());
                for (done, result) in waiters.into_iter().zip(results) {
                    // The submitter may have gone away (connection closed); the write stands.
                    let _ = done.send(result);
                }
            }
        });
        Writer { tx }
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
