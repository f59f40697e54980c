//! The no-op job's handler: logs its note and waits as long as the job asks.

use std::time::Duration;

use apalis_core::error::BoxDynError;
use mailroom_jobs::Noop;

/// Runs a [`Noop`] job.
///
/// # Errors
/// Never; the signature is the one every handler shares.
pub async fn run_noop(job: Noop) -> Result<(), BoxDynError> {
    if let Some(note) = &job.note {
        tracing::info!(%note, "no-op job");
    }
    if job.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    }
    Ok(())
}
