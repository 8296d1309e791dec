//! The optional state file: loaded at start, rewritten (atomically, coalesced) after mutations,
//! so a restarted dev server keeps its sandbox accounts, catalogs and events.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::task::JoinHandle;

use super::state::{App, State};

/// Reads the state file; `None` if it does not exist yet.
pub(crate) fn load(path: &Path) -> anyhow::Result<Option<State>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading sandbox state {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading sandbox state {}", path.display())),
    }
}

/// Writes the state whenever it changes, and once more at shutdown.
pub(crate) fn spawn_writer(app: App, path: PathBuf) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = app.shutdown.clone();
        loop {
            let stopping = tokio::select! {
                () = app.dirty.notified() => false,
                _ = shutdown.changed() => true,
            };
            if let Err(e) = save(&app, &path).await {
                tracing::warn!(error = %format!("{e:#}"), path = %path.display(), "sandbox: saving state failed");
            }
            if stopping {
                break;
            }
        }
    })
}

async fn save(app: &App, path: &Path) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(&*app.lock())?;
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    })
    .await?
}
