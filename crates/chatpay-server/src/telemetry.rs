//! Tracing set-up, in one place. `RUST_LOG` (or `CHATPAY_LOG`) picks what is logged; the default
//! is `info`. Logs go to stderr so that commands printing results on stdout stay pipeable.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = std::env::var("CHATPAY_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_timer(Stamp)
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests booting several servers) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// This process among several instances: `CHATPAY_INSTANCE` if set, else `{host}-{pid}`. On
/// every log line (after the time) and in `/readyz`-adjacent logs.
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::env::var("CHATPAY_INSTANCE")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                let host = std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "chatpay".to_owned());
                format!("{host}-{}", std::process::id())
            })
    })
}

/// The time and the instance id, in front of each log line (one place that every line,
/// whichever task logs it, goes through).
struct Stamp;

impl FormatTime for Stamp {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        SystemTime.format_time(w)?;
        write!(w, " {}", instance_id())
    }
}

/// The process's metrics recorder (installed once; a test process booting several servers
/// shares it).
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder already installed (an embedding program's): this one still renders
        // what it is given, which is nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Installs the metrics recorder (call before serving, so that counters are kept from the
/// start).
pub fn init_metrics() {
    let _ = recorder();
}

/// The metrics in Prometheus' text format.
pub fn metrics_text() -> String {
    recorder().render()
}
