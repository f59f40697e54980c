//! Processing a stored Event Webhook batch: parse it, apply it ([`crate::events::store`]).
//! Redis failing makes the job fail and retry; dedupe makes the retry count each event once.

use apalis_core::{
    error::{AbortError, BoxDynError},
    task::data::Data,
};
use mailroom_jobs::SendgridEvents;

use crate::{
    events::{EventStore, parse_batch},
    queue::JobOutput,
};

/// What a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub fresh: u64,
    pub duplicates: u64,
    pub skipped: usize,
}

impl JobOutput for Processed {
    fn to_output(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "fresh": self.fresh,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
        }))
    }
}

/// The `events` queue's handler.
///
/// # Errors
/// A body that is not a JSON array is permanent (the API checks it, so only a job pushed
/// around the API has one); a Redis failure is retried.
pub async fn process_events(
    job: SendgridEvents,
    store: Data<EventStore>,
) -> Result<Processed, BoxDynError> {
    let batch = parse_batch(&job.body).map_err(AbortError::new)?;
    let applied = store.apply(&batch.events, job.received_at).await?;
    tracing::debug!(
        fresh = applied.fresh,
        duplicates = applied.duplicates,
        skipped = batch.skipped,
        "event batch applied"
    );
    Ok(Processed {
        fresh: applied.fresh,
        duplicates: applied.duplicates,
        skipped: batch.skipped,
    })
}
