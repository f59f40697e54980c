//! What a campaign job answers: a [`Report`] of what it did, or a [`RunError`] that says
//! whether to try again.

use std::time::Duration;

/// Why a campaign job did not finish its work.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Try again later (after the delay, when given).
    #[error("{message}")]
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// Trying again will not help.
    #[error("{0}")]
    Fatal(String),
    /// Redis failed: try again.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What a campaign job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub sent: u64,
    pub skipped: u64,
    pub failed: u64,
    /// The campaign was not running this run (paused, cancelled, resumed since): nothing done.
    pub stale: bool,
    /// Batch jobs pushed (a start job).
    pub batches: u64,
}
