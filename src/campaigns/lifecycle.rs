//! Changing a campaign's state, for the API and the command line alike: the state change
//! itself (one script), and for a change that starts a run (schedule, resume) the start job.

use chrono::{DateTime, Utc};
use mailroom_jobs::{CampaignId, CampaignJob, EnqueueOptions, Job, Producer, PushError};

use super::store::{CampaignStore, Transition};

/// A change asked of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Start at this time (now when it has passed).
    Schedule(DateTime<Utc>),
    Pause,
    Resume,
    Cancel,
}

impl Change {
    /// The action's name, as the transition script and messages know it.
    pub fn action(self) -> &'static str {
        match self {
            Self::Schedule(_) => "schedule",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Cancel => "cancel",
        }
    }
}

/// Why a change could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The state changed but its start job was not queued: asking again queues it.
    #[error("the start job was not queued: {0}")]
    Push(#[from] PushError),
}

/// Makes `change` to campaign `id`, queuing the start job of a new run.
///
/// # Errors
/// See [`ChangeError`].
pub async fn change(
    store: &CampaignStore,
    producer: &Producer,
    id: CampaignId,
    change: Change,
) -> Result<Transition, ChangeError> {
    let argument = match change {
        Change::Schedule(at) => at.timestamp_millis().to_string(),
        _ => String::new(),
    };
    let done = store.transition(id, change.action(), &argument).await?;
    if let (Transition::Done(_, run), Change::Schedule(_) | Change::Resume) = (&done, change) {
        let job = CampaignJob::Start {
            campaign: id,
            run: *run,
        };
        let run_at = match change {
            Change::Schedule(at) if at > Utc::now() => Some(std::time::SystemTime::from(at)),
            _ => None,
        };
        let options = EnqueueOptions {
            run_at,
            ..job.enqueue_options()
        };
        producer.push_with(&job, options).await?;
    }
    Ok(done)
}
