//! The campaign jobs: they travel on their own queue, `campaigns`, so a newsletter to a million
//! people never stands in front of a password reset on `email`.
//!
//! A campaign's content, audience and progress live in Redis under the campaign's own keys; a
//! job only names the campaign and the part of it to do, so a job is a few dozen bytes however
//! large the campaign.

use crate::{CampaignId, EnqueueOptions, Job};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One step of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum CampaignJob {
    /// Start (or go on with) run `run` of the campaign: fix its audience if it is not fixed
    /// yet, then push a [`CampaignJob::Batch`] for every batch with someone still to send to.
    Start {
        /// The campaign.
        campaign: CampaignId,
        /// Which start this is: a job of an earlier schedule or resume does nothing.
        run: u32,
    },
    /// Send to the recipients of batch `batch` (ordinals `batch × size` onwards) not sent yet.
    Batch {
        /// The campaign.
        campaign: CampaignId,
        /// The run that cut it: a job of an earlier run does nothing.
        run: u32,
        /// The batch's number.
        batch: u32,
    },
}

impl CampaignJob {
    /// How many times a campaign job runs before it is dead-lettered.
    pub const MAX_ATTEMPTS: u32 = 200;

    /// The campaign the job works on.
    pub fn campaign(&self) -> CampaignId {
        match self {
            Self::Start { campaign, .. } | Self::Batch { campaign, .. } => *campaign,
        }
    }
}

impl Job for CampaignJob {
    const QUEUE: &'static str = "campaigns";

    fn enqueue_options(&self) -> EnqueueOptions {
        // A job pushed twice for the same step (a start job redelivered after a crash cuts its
        // batches again) is queued once.
        let key = match self {
            Self::Start { campaign, run } => format!("cp:{campaign}:{run}"),
            Self::Batch {
                campaign,
                run,
                batch,
            } => format!("cp:{campaign}:{run}:{batch}"),
        };
        EnqueueOptions {
            idempotency_key: Some(key),
            // A batch held back by throttles and 429s is retried for a long while before it is
            // dead-lettered: a dead batch leaves its recipients unsent until someone resumes.
            max_attempts: Some(Self::MAX_ATTEMPTS),
            ..EnqueueOptions::default()
        }
    }
}
