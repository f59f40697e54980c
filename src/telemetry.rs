//! Logging through tracing-subscriber: readable lines by default, JSON with
//! `MAILROOM_LOG_FORMAT=json`. `RUST_LOG` filters as usual (default `info`). Logs go to
//! stderr so that command output (`mailroom queue stats`) stays clean on stdout.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
