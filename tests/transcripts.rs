//! Replays every transcript in `fixtures/transcripts/` against a real server over real
//! WebSockets: on SQLite always, and on PostgreSQL when `CHATPAY_TEST_POSTGRES` names a server
//! (the test command starts one). Prints the coverage.

use std::path::Path;

use chatpay::replay::{self, Backend};

async fn replay_all(backend: Backend) {
    let files = replay::transcript_files(Path::new("fixtures/transcripts")).unwrap();
    assert!(files.len() >= 30, "only {} transcripts", files.len());
    let (passed, failed, coverage) = replay::run_all(&files, &backend).await;
    eprintln!("{backend:?}: {passed} passed\n{}", coverage.report());
    assert!(
        failed.is_empty(),
        "{} transcript(s) failed:\n\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_on_sqlite() {
    replay_all(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_on_postgres() {
    match std::env::var("CHATPAY_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => replay_all(Backend::Postgres(url)).await,
        _ => eprintln!(
            "CHATPAY_TEST_POSTGRES is not set: the PostgreSQL run is skipped (the test command sets it)"
        ),
    }
}
