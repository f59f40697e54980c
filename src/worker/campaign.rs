//! The campaign job's handler: runs a start or batch job ([`crate::campaigns::run`]) and
//! translates its outcome for the queue.

use std::sync::Arc;

use apalis_core::{
    error::{AbortError, BoxDynError, RetryAfterError},
    task::data::Data,
};
use mailroom_jobs::CampaignJob;

use crate::{
    campaigns::{Campaigner, Report, RunError},
    queue::{JobOutput, JobRun},
};

impl JobOutput for Report {
    fn to_output(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": self.failed,
            "stale": self.stale,
            "batches": self.batches,
        }))
    }
}

/// Runs one campaign job.
///
/// # Errors
/// A retry (with the delay a throttle or the provider asked for), or a permanent failure.
#[tracing::instrument(skip_all, fields(campaign = %job.campaign(), attempt = run.attempt))]
pub async fn run_campaign(
    job: CampaignJob,
    run: Data<JobRun>,
    campaigner: Data<Arc<Campaigner>>,
) -> Result<Report, BoxDynError> {
    match campaigner.run(&job).await {
        Ok(report) => Ok(report),
        Err(RunError::Retry {
            message,
            after: Some(after),
        }) => Err(RetryAfterError::new(message, after).into()),
        Err(RunError::Retry {
            message,
            after: None,
        }) => Err(message.into()),
        Err(RunError::Fatal(message)) => Err(AbortError::new(message).into()),
        Err(RunError::Redis(error)) => Err(error.into()),
    }
}
