//! The `hooks` queue's handler: one endpoint's events, delivered by [`Deliverer`]; a failure
//! comes back after Svix's schedule (the queue's own backoff is shorter).

use std::{sync::Arc, time::Duration};

use apalis_core::{
    error::{BoxDynError, RetryAfterError},
    task::data::Data,
};
use mailroom_jobs::DeliverWebhook;

use crate::{
    hooks::deliver::{Deliverer, DeliveryError, Outcome, retry_delay},
    queue::{JobOutput, JobRun, Postpone},
};

impl JobOutput for Outcome {
    fn to_output(&self) -> Option<serde_json::Value> {
        Some(match self {
            Outcome::Delivered { events } => serde_json::json!({ "delivered": events }),
            Outcome::Skipped(why) => serde_json::json!({ "skipped": why }),
            Outcome::Gone => serde_json::json!({ "gone": true }),
        })
    }
}

/// Delivers one job's events.
///
/// # Errors
/// An event not taken: retried after the schedule's wait.
#[tracing::instrument(skip_all, fields(webhook = %job.endpoint, events = job.events.len()))]
pub(super) async fn deliver_webhook(
    job: DeliverWebhook,
    deliverer: Data<Arc<Deliverer>>,
    run: Data<JobRun>,
) -> Result<Outcome, BoxDynError> {
    match deliverer.deliver(&job, run.attempt).await {
        Ok(outcome) => Ok(outcome),
        Err(DeliveryError::Busy) => {
            // Another job's turn on a slow endpoint: back in a second or two, not an attempt.
            let wait = Duration::from_millis(1000 + fastrand::u64(0..1000));
            Err(Postpone(wait).into())
        }
        Err(error) => {
            let wait = retry_delay(run.attempt, &mut fastrand::Rng::new());
            tracing::info!(%error, attempt = run.attempt, wait_secs = wait.as_secs(), "a webhook delivery failed");
            Err(RetryAfterError::new(error.to_string(), wait).into())
        }
    }
}
