//! The apalis [`Backend`] over mailroom's Redis queue.
//!
//! `poll_next` drives one stored fetch future at a time. The future leases a batch with the
//! fetch script; when nothing is ready it blocks in `BLPOP` on the queue's signal list, on a
//! connection of its own (a blocked connection would stall every other command sent on it),
//! for no longer than the next due time. It never fails and never ends: Redis errors are
//! retried inside it with backoff, and a payload that does not decode or validate is
//! dead-lettered on the spot, so neither can stop the worker.

use std::{
    collections::VecDeque,
    convert::Infallible,
    marker::PhantomData,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use apalis_core::{
    backend::{Backend, BackendConfig, finalize::Ephemeral},
    task::{Task, builder::TaskBuilder, task_id::TaskId},
    worker::context::WorkerContext,
};
use futures::{FutureExt, future::BoxFuture};
use mailroom_jobs::Job;
use mailroom_jobs::RedisConnection;
use tokio_util::sync::CancellationToken;

use super::{
    JobRun, QueueConfig, Shared,
    lease::{Lease, heartbeat},
    ms, now_ms,
    settle::{Outcome, SettleLayer},
};

/// The backend never fails: errors are retried inside it. This type only names that fact.
pub type QueueError = Infallible;

type Fetch<J> = BoxFuture<'static, (Vec<Task<J>>, Option<RedisConnection>)>;

/// A worker's source of jobs of type `J`. Made by [`RedisQueue::backend`](super::RedisQueue::backend).
pub struct QueueBackend<J> {
    shared: Arc<Shared>,
    buffer: VecDeque<Task<J>>,
    fetch: Option<Fetch<J>>,
    blocking: Option<RedisConnection>,
    closing: CancellationToken,
    heartbeat_started: bool,
    close: Option<BoxFuture<'static, ()>>,
    _job: PhantomData<fn() -> J>,
}

impl<J> std::fmt::Debug for QueueBackend<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueBackend")
            .field("queue", &self.shared.keys.queue())
            .field("worker", &self.shared.worker)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl<J: Job> QueueBackend<J> {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            buffer: VecDeque::new(),
            fetch: None,
            blocking: None,
            closing: CancellationToken::new(),
            heartbeat_started: false,
            close: None,
            _job: PhantomData,
        }
    }

    fn start_heartbeat(&mut self) {
        if !self.heartbeat_started {
            self.heartbeat_started = true;
            let shared = self.shared.clone();
            let stop = self.closing.clone();
            // Kept in the shared state, so that whoever stops the worker last (a graceful close
            // here, or `release_all` after an abort) can wait for its final deregistration.
            self.shared
                .heartbeat
                .set(tokio::spawn(heartbeat(shared, stop)));
        }
    }
}

impl<J: Job> Backend for QueueBackend<J> {
    type Task = Task<J>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.start_heartbeat();
        loop {
            if let Some(task) = self.buffer.pop_front() {
                return Poll::Ready(Some(Ok(task)));
            }
            let fetch = self.fetch.get_or_insert_with(|| {
                fetch_round(
                    self.shared.clone(),
                    self.blocking.take(),
                    self.closing.clone(),
                )
                .boxed()
            });
            let (tasks, blocking) = std::task::ready!(fetch.as_mut().poll(cx));
            self.fetch = None;
            self.blocking = blocking;
            self.buffer.extend(tasks);
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        // Stop blocking, but let a fetch that already leased jobs hand them over, so that
        // they can be released below instead of waiting out their lease.
        self.closing.cancel();
        if let Some(fetch) = self.fetch.as_mut() {
            let (tasks, _) = std::task::ready!(fetch.as_mut().poll(cx));
            self.fetch = None;
            self.buffer.extend(tasks);
        }
        let close = self.close.get_or_insert_with(|| {
            let shared = self.shared.clone();
            let unstarted: Vec<Lease> = self
                .buffer
                .drain(..)
                .filter_map(|task| task.ctx().data().get::<Lease>().cloned())
                .collect();
            async move {
                if let Err(error) = shared.release(&unstarted).await {
                    tracing::warn!(%error, "could not return unstarted jobs; their leases will expire");
                }
                shared.heartbeat.stopped().await;
            }
            .boxed()
        });
        std::task::ready!(close.as_mut().poll(cx));
        Poll::Ready(Ok(()))
    }
}

impl<J: Job> BackendConfig for QueueBackend<J> {
    type Args = J;
    type Id = String;
    type Kind = Ephemeral;
    type Config = QueueConfig;
    type Layer = SettleLayer;

    fn config(&self) -> &Self::Config {
        &self.shared.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        SettleLayer::new(self.shared.clone())
    }
}

impl<J> Unpin for QueueBackend<J> {}

impl<J> Drop for QueueBackend<J> {
    fn drop(&mut self) {
        // Stops the heartbeat when the worker is dropped without a graceful close (an aborted
        // worker): its leases then expire, or `release_all` hands them back.
        self.closing.cancel();
    }
}

/// One fetch: returns as soon as at least one job is leased, or when closing.
async fn fetch_round<J: Job>(
    shared: Arc<Shared>,
    mut blocking: Option<RedisConnection>,
    closing: CancellationToken,
) -> (Vec<Task<J>>, Option<RedisConnection>) {
    let mut failures = 0u32;
    loop {
        let next_due = match fetch_batch::<J>(&shared).await {
            Ok((tasks, next_due)) => {
                failures = 0;
                if !tasks.is_empty() || closing.is_cancelled() {
                    return (tasks, blocking);
                }
                next_due
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, failures, queue = %shared.keys.queue(), "fetch failed; retrying");
                let pause = Duration::from_millis(100 * u64::from(failures.min(50)));
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = closing.cancelled() => return (Vec::new(), blocking),
                }
            }
        };
        let mut wait = shared.config.idle_wait;
        if let Some(due) = next_due {
            wait = wait.min(Duration::from_millis(due.saturating_sub(now_ms())));
        }
        if wait.is_zero() {
            continue;
        }
        if blocking.is_none() {
            blocking = dedicated_connection(&shared).await;
        }
        let Some(conn) = blocking.as_mut() else {
            tokio::select! {
                () = tokio::time::sleep(wait.min(Duration::from_secs(1))) => continue,
                () = closing.cancelled() => return (Vec::new(), blocking),
            }
        };
        let mut blpop = redis::cmd("BLPOP");
        blpop.arg(shared.keys.signal()).arg(wait.as_secs_f64());
        tokio::select! {
            woke = blpop.query_async::<Option<(String, String)>>(conn) => {
                if let Err(error) = woke {
                    tracing::warn!(%error, "waiting for work failed; reconnecting");
                    blocking = None;
                }
            }
            () = closing.cancelled() => return (Vec::new(), None),
        }
    }
}

/// A connection of its own without a response timeout, for `BLPOP` (redis-rs would cut it
/// at the response timeout, and on the shared connection it would hold up other commands).
async fn dedicated_connection(shared: &Shared) -> Option<RedisConnection> {
    match shared.client.blocking().await {
        Ok(conn) => Some(conn),
        Err(error) => {
            tracing::warn!(%error, "could not open the connection that waits for work");
            None
        }
    }
}

/// One raw job as the fetch script returns it.
type RawJob = (String, String, u32, u32);

/// Runs the fetch script once. Jobs that cannot run (undecodable or invalid payloads) are
/// dead-lettered here and left out of the result.
async fn fetch_batch<J: Job>(shared: &Shared) -> redis::RedisResult<(Vec<Task<J>>, Option<u64>)> {
    let keys = &shared.keys;
    let config = &shared.config;
    let (raw, next): (Vec<RawJob>, i64) = shared
        .scripts
        .fetch
        .key(keys.ready())
        .key(keys.delayed())
        .key(keys.inflight())
        .key(keys.dead())
        .key(keys.signal())
        .key(keys.counts())
        .arg(keys.job_prefix())
        .arg(now_ms())
        .arg(config.fetch_batch)
        .arg(ms(config.lease))
        .arg(config.housekeeping_chunk)
        .arg(config.max_attempts)
        .arg(&shared.worker)
        .arg(ms(config.dead_retention))
        .arg(ms(config.retention))
        .arg(mailroom_jobs::MALFORMED_SUFFIX)
        .invoke_async(&mut shared.conn.clone())
        .await?;
    let mut tasks = Vec::with_capacity(raw.len());
    for (id, payload, attempts, max_attempts) in raw {
        let lease = Lease {
            id,
            token: attempts,
            max_attempts,
        };
        shared.leases.insert(lease.clone());
        match decode::<J>(&payload) {
            Ok(job) => tasks.push(
                TaskBuilder::new(job)
                    .task_id(TaskId::from_string(lease.id.clone()))
                    // apalis counts this run itself when it starts.
                    .attempt(attempts.saturating_sub(1) as usize)
                    .max_attempts(max_attempts as usize)
                    .data(JobRun {
                        id: lease.id.clone(),
                        attempt: attempts,
                        max_attempts,
                    })
                    .data(lease)
                    .build(),
            ),
            Err(poison) => shared.settle_and_log(&lease, poison.into_outcome()).await,
        }
    }
    Ok((tasks, u64::try_from(next).ok()))
}

/// Why a payload cannot run.
#[derive(Debug)]
enum Poison {
    Undecodable(String),
    Invalid(String),
}

impl Poison {
    fn into_outcome(self) -> Outcome {
        let (reason, error) = match self {
            Poison::Undecodable(error) => ("undecodable payload", error),
            Poison::Invalid(error) => ("invalid payload", error),
        };
        Outcome::Dead {
            reason: reason.to_owned(),
            error,
        }
    }
}

/// A queue payload is untrusted input: parse it, then let the job check itself.
fn decode<J: Job>(payload: &str) -> Result<J, Poison> {
    let job: J = serde_json::from_str(payload).map_err(|e| Poison::Undecodable(e.to_string()))?;
    job.validate()
        .map_err(|invalid| Poison::Invalid(invalid.0))?;
    Ok(job)
}
