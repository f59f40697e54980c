//! mailroom's Redis storage for apalis: leases, delays, retries and dead letters.
//!
//! apalis runs the workers (concurrency, timeouts, tracing, panics, shutdown); this module is
//! the [`Backend`](apalis_core::backend::Backend) they pull jobs from. The key schema is shared
//! with producers through [`mailroom_jobs::QueueKeys`]; every step that touches more than one
//! key is a Lua script in `lua/`, so it is atomic and each loop in it is bounded.
//!
//! The life of a job:
//! 1. A producer pushes it onto `ready` (or `delayed` when it has a run-at time) and signals.
//! 2. A worker's fetch script promotes due delayed jobs, reclaims expired leases, and leases a
//!    batch: each leased job's attempt counter goes up and doubles as its lease token.
//! 3. While the job runs, the worker's heartbeat renews its lease.
//! 4. The [`settle`] layer records the outcome: done (with the handler's [`JobOutput`], kept for
//!    the retention period), retry
//!    (back to `delayed` after a jittered backoff or the handler's Retry-After), or dead.
//!
//! Idle workers block on the `signal` list (a dedicated connection), not a poll loop, so a job
//! pushed to an idle worker starts within milliseconds.

mod admin;
mod backend;
mod lease;
pub mod retry;
mod scripts;
mod settle;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use mailroom_jobs::RedisConnection;
use mailroom_jobs::{Job, QueueKeys};

pub use admin::{DeadLetter, QueueAdmin, QueueStats};
pub use backend::{QueueBackend, QueueError};
pub use retry::Backoff;
pub use settle::{Postpone, SettleError, SettleLayer, SettleService};

use lease::Leases;
use scripts::Scripts;
use settle::Settler;

/// What a handler's success leaves on the job's record: a JSON object kept in the job hash's
/// `output` field for the retention period (for the send job, the provider and its message
/// id). It is written in the same script call that marks the job done.
pub trait JobOutput {
    /// The output as a JSON object, or `None` to record nothing.
    fn to_output(&self) -> Option<serde_json::Value> {
        None
    }
}

impl JobOutput for () {}

/// Which run of which job a handler is in. Handlers take it as `Data<JobRun>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    /// The job's id.
    pub id: String,
    /// This run's number, from 1.
    pub attempt: u32,
    /// The run after which a failure is final.
    pub max_attempts: u32,
}

impl JobRun {
    /// True when a failure of this run dead-letters the job instead of retrying it.
    pub fn is_last(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// How a queue behaves. Every field has a production default ([`QueueConfig::default`]).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Key prefix shared by everything mailroom stores.
    pub prefix: String,
    /// How long a fetched job stays leased without a heartbeat: how soon another worker takes
    /// over the jobs of a worker that was killed.
    pub lease: Duration,
    /// Jobs leased per fetch.
    pub fetch_batch: usize,
    /// Delayed jobs promoted and expired leases reclaimed per fetch, at most.
    pub housekeeping_chunk: usize,
    /// Runs before a failing job is dead-lettered, unless the job sets its own.
    pub max_attempts: u32,
    /// The retry-delay schedule.
    pub backoff: Backoff,
    /// How long a finished job's record is kept.
    pub retention: Duration,
    /// How long a dead letter is kept.
    pub dead_retention: Duration,
    /// The longest an idle worker blocks before looking at the queue again.
    pub idle_wait: Duration,
    /// Told of each job this worker dead-letters, once it is kept as a dead letter.
    pub on_dead: Option<OnDead>,
}

/// A job given up on: its id, why, and the last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadJob {
    pub id: String,
    pub reason: String,
    pub error: String,
}

/// What a queue's owner does when one of its jobs is dead-lettered (tells the services).
#[derive(Clone)]
pub struct OnDead(
    pub Arc<dyn Fn(DeadJob) -> futures::future::BoxFuture<'static, ()> + Send + Sync>,
);

impl std::fmt::Debug for OnDead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnDead(…)")
    }
}

impl QueueConfig {
    /// The queue behaviour `settings` describe.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            prefix: settings.redis_prefix.clone(),
            lease: Duration::from_secs(settings.lease_secs),
            fetch_batch: settings.fetch_batch,
            max_attempts: settings.max_attempts,
            backoff: Backoff {
                base: Duration::from_millis(settings.backoff_base_ms),
                cap: Duration::from_secs(settings.backoff_cap_secs),
            },
            retention: Duration::from_secs(settings.retention_secs),
            dead_retention: Duration::from_secs(settings.dead_retention_secs),
            ..Self::default()
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            prefix: "mailroom".to_owned(),
            lease: Duration::from_secs(30),
            fetch_batch: 16,
            housekeeping_chunk: 500,
            max_attempts: 10,
            backoff: Backoff::default(),
            retention: Duration::from_secs(24 * 3600),
            dead_retention: Duration::from_secs(7 * 24 * 3600),
            idle_wait: Duration::from_secs(5),
            on_dead: None,
        }
    }
}

/// One worker's handle on the queue of job type `J`: makes the apalis backend and releases
/// what the worker still holds when a shutdown runs out of time.
#[derive(Debug)]
pub struct RedisQueue<J> {
    shared: Arc<Shared>,
    _job: std::marker::PhantomData<fn() -> J>,
}

impl<J> Clone for RedisQueue<J> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _job: std::marker::PhantomData,
        }
    }
}

/// What a worker's backend, its settle layer and its heartbeat share.
#[derive(Debug)]
struct Shared {
    client: mailroom_jobs::RedisClient,
    conn: RedisConnection,
    keys: QueueKeys,
    config: QueueConfig,
    worker: String,
    scripts: Scripts,
    leases: Leases,
    settler: Settler,
    heartbeat: lease::HeartbeatHandle,
}

impl<J: Job> RedisQueue<J> {
    /// A handle for worker `worker` (a name unique to this process start) on `J`'s queue.
    ///
    /// # Errors
    /// When Redis does not answer or the scripts cannot be loaded.
    pub async fn connect(
        client: mailroom_jobs::RedisClient,
        config: QueueConfig,
        worker: impl Into<String>,
    ) -> Result<Self, redis::RedisError> {
        let mut conn = client
            .connect(crate::config::REDIS_RESPONSE_TIMEOUT)
            .await?;
        let scripts = Scripts::default();
        scripts.load(&mut conn).await?;
        let keys = QueueKeys::new(&config.prefix, J::QUEUE);
        let settler = Settler::spawn(conn.clone(), keys.clone(), &config, scripts.settle.clone());
        Ok(Self {
            shared: Arc::new(Shared {
                keys,
                settler,
                heartbeat: lease::HeartbeatHandle::default(),
                client,
                conn,
                config,
                worker: worker.into(),
                scripts,
                leases: Leases::default(),
            }),
            _job: std::marker::PhantomData,
        })
    }

    /// The apalis backend to build this worker on. Make one per handle.
    pub fn backend(&self) -> QueueBackend<J> {
        QueueBackend::new(self.shared.clone())
    }

    /// The worker name this handle registers under.
    pub fn worker_name(&self) -> &str {
        &self.shared.worker
    }

    /// Hands every job this worker still holds back to the queue at once, without counting
    /// the interrupted run as an attempt. For a shutdown whose grace period ran out.
    ///
    /// # Errors
    /// When Redis does not answer; the leases then expire by themselves.
    pub async fn release_all(&self) -> Result<usize, SettleError> {
        let held = self.shared.leases.drain();
        let released = self.shared.release(&held).await;
        // The aborted backend cancelled its heartbeat as it was dropped; wait for the final beat
        // to deregister the worker, so that nothing of this worker outlives the process.
        self.shared.heartbeat.stopped().await;
        released
    }
}

impl Shared {
    /// Returns leased jobs to the front of the ready list.
    async fn release(&self, held: &[lease::Lease]) -> Result<usize, SettleError> {
        let releases = held
            .iter()
            .map(|lease| self.settle(lease, settle::Outcome::Release));
        let answers = futures::future::join_all(releases).await;
        let mut released = 0;
        for answer in answers {
            released += usize::from(answer?);
        }
        Ok(released)
    }
}

/// Milliseconds since the Unix epoch: the queue's clock. Every process that shares a queue
/// must keep its clock in sync (NTP), as with any distributed scheduler.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A duration in whole milliseconds, saturating.
fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_settings_describe_the_default_queue() {
        let from_settings = QueueConfig::from_settings(&crate::config::Settings::default());
        let default = QueueConfig::default();
        assert_eq!(from_settings.prefix, default.prefix);
        assert_eq!(from_settings.lease, default.lease);
        assert_eq!(from_settings.fetch_batch, default.fetch_batch);
        assert_eq!(from_settings.max_attempts, default.max_attempts);
        assert_eq!(from_settings.backoff, default.backoff);
        assert_eq!(from_settings.retention, default.retention);
        assert_eq!(from_settings.dead_retention, default.dead_retention);
    }
}
