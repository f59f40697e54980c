//! `mailroom-jobs`: what a service needs to hand work to mailroom's workers.
//!
//! - [`Job`]: the trait every payload implements (its queue name and its own validity check).
//! - The payloads, plain serde data: [`email`] (`SendEmail`, the message and its checks),
//!   [`templates`] (the data each template takes), [`verification`] (`SendVerification`,
//!   `DeliverEvent`), [`campaign`] (`CampaignJob`) and [`payloads`] (`Noop`).
//! - [`keys`]: the Redis key schema ([`QueueKeys`] for one queue, the contract shared by
//!   producers and workers; [`Keys`] for everything else).
//! - [`connection`]: one Redis or a Redis Cluster behind one connection type.
//! - [`Producer`]: pushes jobs from a Rust service, atomically and idempotently.
//!
//! Services in other languages push through mailroom's HTTP API or with the Redis commands
//! documented in docs/architecture.md ("Enqueueing from another language"); both end in the same layout.

pub mod address;
pub mod campaign;
pub mod connection;
pub mod email;
pub mod field;
pub mod hooks;
pub mod ids;
pub mod keys;
pub mod payloads;
mod producer;
pub mod request_id;
pub mod templates;
pub mod tracking;
pub mod verification;
pub mod webhooks;
pub mod whole;

pub use campaign::CampaignJob;
pub use connection::{RedisClient, RedisConnection};
pub use email::{Attachment, EmailMessage, KEY_METADATA, Mailbox, SendEmail};
pub use field::FieldError;
pub use hooks::{DeliverWebhook, WebhookMessage};
pub use ids::{CampaignId, MessageId};
pub use keys::{
    BUCKET_SPAN, CampaignKeys, Keys, MALFORMED_SUFFIX, QueueKeys, RECORDS_PER_BUCKET, RateScope,
    SUBSCRIBER_SHARDS, ShardKeys, ThrottleScope, bucket_of,
};
pub use payloads::Noop;
pub use producer::{
    ConnectError, EnqueueOptions, Limited, MAX_IDEMPOTENCY_KEY_LEN, OwnerLimits, Producer,
    PushError, Pushed,
};
pub use request_id::{MAX_REQUEST_ID_LEN, is_valid_request_id};
pub use templates::{TemplateData, TemplateRef, WebUrl};
pub use tracking::{Tracking, TrackingHits};
pub use verification::{DeliverEvent, SendVerification};
pub use webhooks::{EventSource, ProviderEvents};

use serde::{Serialize, de::DeserializeOwned};

/// Every queue a mailroom worker process runs: the one list the workers, the CLI, the console
/// and the metrics read.
pub const QUEUES: &[&str] = &[
    SendEmail::QUEUE,
    SendVerification::QUEUE,
    DeliverEvent::QUEUE,
    ProviderEvents::QUEUE,
    CampaignJob::QUEUE,
    TrackingHits::QUEUE,
    DeliverWebhook::QUEUE,
];

/// Why a payload must not run or be pushed, in words a person reads (a range, a cross-field
/// rule; the field at fault named first when there is one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A job payload: plain data that knows which queue it travels on.
///
/// New fields must be optional (`#[serde(default)]`) so that jobs pushed by an older producer
/// still decode in a newer worker: workers deploy before producers.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The queue this job is pushed to and consumed from.
    const QUEUE: &'static str;

    /// Checks what serde cannot: ranges, cross-field rules.
    ///
    /// A worker dead-letters a job that fails this check instead of running it; a producer
    /// refuses to push it.
    ///
    /// # Errors
    /// A human-readable reason when the payload must not run.
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }

    /// How [`Producer::push`] queues this job: its own id, run-at time or idempotency key,
    /// when the payload carries them.
    fn enqueue_options(&self) -> EnqueueOptions {
        EnqueueOptions::default()
    }

    /// A digest of what the job asks for, without what differs between two pushes of the same
    /// request (such as a freshly assigned id). A push that reuses an idempotency key with a
    /// different fingerprint is reported as a [`Pushed::conflict`].
    fn fingerprint(&self) -> Option<String> {
        None
    }
}

/// A job that passed [`Job::validate`], so that a payload checked where it came in (the API's
/// handlers) is not checked again by the producer ([`Producer::push_each_new`]): the checks of
/// an email are a tenth of the API's own work for one. Made only by checking ([`Valid::new`],
/// or a job type's own checking constructor such as [`SendEmail::checked`]) and read-only
/// after, so what was checked is what is pushed.
#[derive(Debug, Clone)]
pub struct Valid<J>(J);

impl<J: Job> Valid<J> {
    /// `job`, if it passes [`Job::validate`].
    ///
    /// # Errors
    /// The reason it does not.
    pub fn new(job: J) -> Result<Self, Invalid> {
        job.validate()?;
        Ok(Self(job))
    }

    /// For a job type's own checking constructor, once it has run every check
    /// [`Job::validate`] runs.
    pub(crate) fn checked_by_caller(job: J) -> Self {
        Self(job)
    }
}

impl<J> std::ops::Deref for Valid<J> {
    type Target = J;

    fn deref(&self) -> &J {
        &self.0
    }
}
