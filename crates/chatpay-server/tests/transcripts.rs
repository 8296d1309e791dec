//! Replays every transcript in `fixtures/transcripts/` against a real server over real
//! WebSockets, one test per file and backend (`sqlite/001_add_payments`,
//! `postgres/001_add_payments`), in parallel: each plays against a fresh server, sandbox and
//! database of its own. PostgreSQL runs where `CHATPAY_TEST_POSTGRES` names a server (the test
//! command starts one); unset, those tests fail saying so, and `CHATPAY_TEST_POSTGRES=skip` skips
//! them for a quick local run. The merged coverage is printed at the end.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chatpay_testkit::{Backend, Coverage};
use libtest_mimic::{Arguments, Failed, Trial};

static COVERAGE: Mutex<Option<Coverage>> = Mutex::new(None);

fn play(path: &Path, backend: &Backend) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let coverage = runtime
        .block_on(chatpay_testkit::run_file(path, backend))
        .map_err(|e| format!("{e:#}"))?;
    COVERAGE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Coverage::default)
        .merge(&coverage);
    Ok(())
}

fn main() {
    // The servers' logs, for a failing transcript: `CHATPAY_LOG=info cargo test … -- NAME`.
    if std::env::var_os("CHATPAY_LOG").is_some() {
        chatpay_server::telemetry::init(chatpay_server::config::LogFormat::Text);
    }
    let args = Arguments::from_args();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/transcripts");
    let files: Vec<PathBuf> =
        chatpay_testkit::transcript_files(&dir).expect("fixtures/transcripts");
    assert!(files.len() >= 30, "only {} transcripts", files.len());
    let postgres = chatpay_testkit::postgres_for_tests();
    let mut trials = Vec::new();
    for file in &files {
        let stem = file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let path = file.clone();
        trials.push(Trial::test(format!("sqlite/{stem}"), move || {
            play(&path, &Backend::Sqlite)
        }));
        let path = file.clone();
        let skipped = matches!(postgres, Ok(None));
        let postgres = postgres.clone();
        let trial = Trial::test(format!("postgres/{stem}"), move || match postgres {
            Ok(Some(url)) => play(&path, &Backend::Postgres(url)),
            Ok(None) => Ok(()),
            Err(why) => Err(why.into()),
        });
        trials.push(trial.with_ignored_flag(skipped));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(coverage) = COVERAGE.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        eprintln!("{}", coverage.report());
    }
    conclusion.exit();
}
