//! Job payload types. Plain serde data: no HTML, no domain logic.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Job;

/// A job that does nothing but, optionally, wait: for smoke tests, benchmarks and checking that
/// workers are alive (`mailroom bench`, the queue's tests).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Noop {
    /// How long the job takes, in milliseconds (at most 600,000).
    #[serde(default)]
    #[schemars(range(max = 600_000))]
    pub sleep_ms: u64,
    /// A note written to the worker's log when the job runs.
    #[serde(default)]
    pub note: Option<String>,
}

impl Noop {
    /// The longest a no-op job may take.
    pub const MAX_SLEEP: Duration = Duration::from_secs(600);
}

impl Job for Noop {
    const QUEUE: &'static str = "noop";

    fn validate(&self) -> Result<(), crate::Invalid> {
        if Duration::from_millis(self.sleep_ms) > Self::MAX_SLEEP {
            return Err(crate::Invalid(format!(
                "sleep_ms {} is over the limit of {} ms",
                self.sleep_ms,
                Self::MAX_SLEEP.as_millis()
            )));
        }
        Ok(())
    }
}
