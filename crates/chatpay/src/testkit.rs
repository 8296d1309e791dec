//! `chatpay replay` and `chatpay bench`: test tooling from `chatpay-testkit`, in builds with the
//! `testkit` feature only (`cargo build --release --features testkit`), so that the production
//! build does not link the test kit. `bench` starts its server as `chatpay serve` from this same
//! executable.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio::runtime::Runtime;

use chatpay_server::config::Config;
use chatpay_testkit::Backend;
use chatpay_testkit::bench::BenchArgs;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Transcript files or directories of them.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Replay on PostgreSQL: an admin URL of a server where databases may be created.
    #[arg(long, env = "CHATPAY_TEST_POSTGRES")]
    postgres: Option<String>,
}

/// `chatpay replay`: every transcript in `files` (directories expanded), then the coverage.
pub fn replay(args: ReplayArgs, runtime: Runtime) -> anyhow::Result<ExitCode> {
    let backend = match args.postgres {
        Some(url) => Backend::Postgres(url),
        None => Backend::Sqlite,
    };
    let mut paths = Vec::new();
    for f in args.files {
        if f.is_dir() {
            paths.extend(chatpay_testkit::transcript_files(&f)?);
        } else {
            paths.push(f);
        }
    }
    let (passed, failed, coverage) = runtime.block_on(chatpay_testkit::run_all(&paths, &backend));
    println!("{}", coverage.report());
    println!("{passed} passed, {} failed", failed.len());
    for f in &failed {
        println!("FAILED {f}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `chatpay bench`: the load client, or with `--catalog` / `--webhooks` those benchmarks.
pub fn bench(args: BenchArgs, config: Config, runtime: Runtime) -> anyhow::Result<ExitCode> {
    runtime.block_on(chatpay_testkit::bench::run(args, config))?;
    Ok(ExitCode::SUCCESS)
}
