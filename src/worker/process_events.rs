//! Processing a stored webhook batch of any provider: parse it, apply it ([`crate::events::store`]).
//! Redis failing makes the job fail and retry; dedupe makes the retry count each event once.
//! An event refused because a record it touches cannot be read dead-letters the batch with the
//! event named, after every other event of it was applied.

use apalis_core::{
    error::{AbortError, BoxDynError},
    task::data::Data,
};
use mailroom_jobs::ProviderEvents;

use crate::{
    events::{EventStore, parse_from},
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
/// A body its provider's parser cannot read is permanent (the API checks it, so only a job
/// pushed around the API has one); a Redis failure is retried.
#[tracing::instrument(skip_all, fields(provider = ?job.provider, received_at = %job.received_at, request_id = job.request_id.as_deref()))]
pub async fn process_events(
    job: ProviderEvents,
    store: Data<EventStore>,
) -> Result<Processed, BoxDynError> {
    let batch = parse_from(job.provider, &job.body, job.received_at).map_err(AbortError::new)?;
    let applied = store.apply(&batch.events, job.received_at).await?;
    if !applied.refused.is_empty() {
        // The others are applied and marked seen; a retry of this dead letter (once the record
        // is repaired) applies only the refused ones.
        let detail: Vec<String> = applied
            .refused
            .iter()
            .take(10)
            .map(|(index, why)| {
                let id = batch.events[*index]
                    .sg_event_id
                    .as_deref()
                    .unwrap_or("no sg_event_id");
                format!("event {index} ({id}): {why}")
            })
            .collect();
        return Err(AbortError::new(format!(
            "{} of {} events could not be applied (the other {} were): {}",
            applied.refused.len(),
            batch.events.len(),
            applied.fresh,
            detail.join("; ")
        ))
        .into());
    }
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
