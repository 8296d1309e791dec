//! The optional state file: loaded at start, and written durably after changes, before the
//! request that made them is answered.
//!
//! Every change counts one more in `Shared::changed` (after it is applied). One writer task
//! takes the count and a snapshot of the state under its lock, writes the snapshot to a
//! temporary file, syncs it, renames it over the state file and syncs the directory, then
//! publishes the count in `Shared::durable`. A request that changed the state (every route
//! runs inside [`durable_answers`]) answers only once the published count reaches its own
//! change, so a payment a customer saw succeed, or an object an API call returned, survives
//! `kill -9`; changes that arrive while a write is under way share the next write (group
//! commit). Webhook deliveries wait the same way before their first attempt, so an event is
//! never sent about an object a crash could lose.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::task::JoinHandle;

use super::state::{App, State as SandboxState, WROTE};

/// Reads the state file; `None` if it does not exist yet.
pub(crate) fn load(path: &Path) -> anyhow::Result<Option<SandboxState>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading sandbox state {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading sandbox state {}", path.display())),
    }
}

/// Middleware around every route: a request that changed the state is answered once the state
/// file holds the change.
pub(crate) async fn durable_answers(State(app): State<App>, req: Request, next: Next) -> Response {
    let (response, wrote) = WROTE
        .scope(Cell::new(0), async {
            let response = next.run(req).await;
            (response, WROTE.with(Cell::get))
        })
        .await;
    if wrote > 0 {
        app.wait_durable(wrote).await;
    }
    response
}

/// Writes the state whenever it changed, until shutdown, and once more then.
pub(crate) fn spawn_writer(app: App, path: PathBuf) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = app.shutdown.clone();
        loop {
            let stopping = *shutdown.borrow();
            if app.changed.load(Ordering::SeqCst) > *app.durable.borrow() {
                write_until_saved(&app, &path).await;
                continue;
            }
            if stopping {
                break;
            }
            tokio::select! {
                () = app.dirty.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    })
}

/// Saves, trying again (a full disk, a read-only directory) until it works: the requests
/// waiting for it are answered only then.
async fn write_until_saved(app: &App, path: &Path) {
    let mut wait = Duration::from_millis(50);
    loop {
        match save(app, path).await {
            Ok(count) => {
                app.durable.send_modify(|d| *d = (*d).max(count));
                return;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), path = %path.display(), "sandbox: saving state failed; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Writes a snapshot durably; returns the change count it holds.
pub(crate) async fn save(app: &App, path: &Path) -> anyhow::Result<u64> {
    let (count, bytes) = {
        let st = app.lock();
        // Read under the lock: every change counted so far is in the snapshot.
        let count = app.changed.load(Ordering::SeqCst);
        (count, serde_json::to_vec(&*st)?)
    };
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || write_durably(&path, &bytes)).await??;
    Ok(count)
}

/// Temporary file, fsync, rename over the state file, fsync of the directory.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}
