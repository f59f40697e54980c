//! Settling a run: the apalis layer that records each job's outcome in Redis.
//!
//! apalis puts a backend's layer outside every user layer, so this one sees the final result
//! of each run, timeouts and caught panics included. It decides what happens next:
//! - `Ok` → done, with the handler's [`JobOutput`] recorded;
//! - an [`AbortError`] anywhere in the error chain → dead letter at once (a permanent failure),
//!   and so is a panic, which apalis's catch-panic layer reports as an abort;
//! - any other error → retry after the backoff (or a [`RetryAfterError`]'s delay when that is
//!   longer), or a dead letter once the job's attempts are used up.

use std::{
    error::Error as StdError,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use apalis::layers::catch_panic::PanicError;
use apalis_core::{
    error::{AbortError, BoxDynError, RetryAfterError},
    task::Task,
};
use futures::{FutureExt, future::BoxFuture};
use mailroom_jobs::QueueKeys;
use mailroom_jobs::RedisConnection;
use redis::Script;
use tokio::sync::{mpsc, oneshot};
use tower::{Layer, Service};

use super::{JobOutput, QueueConfig, Shared, lease::Lease, ms, now_ms};

/// What happens to a job after a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Success, with the handler's output as JSON ('' for none).
    Done(String),
    Retry {
        after: Duration,
        error: String,
    },
    Dead {
        reason: String,
        error: String,
    },
    /// Back to the queue without counting the run (unstarted, or cut off by a shutdown).
    Release,
    /// Back to the queue after a wait, without counting the run: the handler could not start
    /// its work yet ([`Postpone`]).
    Postpone {
        after: Duration,
    },
}

/// What a handler answers when its job cannot start yet (a limit it shares with other jobs is
/// full): the job comes back after the wait, and the run does not count as an attempt.
#[derive(Debug, thiserror::Error)]
#[error("postponed for {0:?}: not started")]
pub struct Postpone(pub Duration);

impl Outcome {
    /// The outcome as `mailroom_jobs_total` counts it.
    fn metric(&self) -> crate::metrics::JobOutcome {
        use crate::metrics::JobOutcome;
        match self {
            Outcome::Done(_) => JobOutcome::Done,
            Outcome::Retry { .. } => JobOutcome::Retried,
            Outcome::Dead { .. } => JobOutcome::Dead,
            Outcome::Release | Outcome::Postpone { .. } => JobOutcome::Released,
        }
    }

    /// Decides the outcome of a run that ended with `result`.
    pub(super) fn of<T: JobOutput>(
        result: &Result<T, BoxDynError>,
        lease: &Lease,
        shared: &Shared,
    ) -> Outcome {
        let error = match result {
            Ok(output) => {
                let json = output
                    .to_output()
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                return Outcome::Done(json);
            }
            Err(error) => error,
        };
        let chain = || causes(error.as_ref());
        if let Some(Postpone(after)) = chain().find_map(|e| e.downcast_ref::<Postpone>()) {
            return Outcome::Postpone { after: *after };
        }
        let message = describe(error.as_ref());
        // apalis's catch-panic layer reports a panic as an abort: a panicking handler is a bug
        // that a retry would only repeat.
        if chain().any(|e| e.is::<PanicError>()) {
            return Outcome::Dead {
                reason: "handler panicked".to_owned(),
                error: message,
            };
        }
        if chain().any(|e| e.is::<AbortError>()) {
            return Outcome::Dead {
                reason: "permanent failure".to_owned(),
                error: message,
            };
        }
        if lease.token >= lease.max_attempts {
            return Outcome::Dead {
                reason: "attempts exhausted".to_owned(),
                error: message,
            };
        }
        let retry_after = chain()
            .find_map(|e| e.downcast_ref::<RetryAfterError>())
            .map(RetryAfterError::get_duration);
        let after =
            shared
                .config
                .backoff
                .delay(lease.token, retry_after, &mut fastrand::Rng::new());
        Outcome::Retry {
            after,
            error: message,
        }
    }
}

/// `error` and its sources, outermost first.
fn causes<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |e: &&'a (dyn StdError + 'static)| {
        (*e).source()
    })
}

/// The error's message without apalis's wrapper prefixes ("AbortError: …").
fn describe(error: &(dyn StdError + 'static)) -> String {
    if (error.is::<AbortError>() || error.is::<RetryAfterError>())
        && let Some(source) = error.source()
    {
        return source.to_string();
    }
    error.to_string()
}

/// The most runs settled by one script call.
const MAX_BATCH: usize = 256;

/// Why an outcome could not be recorded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not record the job's outcome in Redis: {0}")]
pub struct SettleError(String);

struct Request {
    lease: Lease,
    outcome: Outcome,
    reply: oneshot::Sender<Result<bool, SettleError>>,
}

/// Records outcomes through one background task that batches whatever has queued up while the
/// previous call was in flight: under load, one script call settles dozens of runs; when
/// idle, a run is settled on its own at once.
#[derive(Debug, Clone)]
pub(super) struct Settler {
    requests: mpsc::UnboundedSender<Request>,
}

/// What the background task needs; it holds no reference back to the queue, so it ends when
/// the last [`Settler`] is dropped.
struct Recorder {
    conn: RedisConnection,
    keys: QueueKeys,
    script: Script,
    retention_ms: u64,
    dead_retention_ms: u64,
    /// How long a lease lasts without renewal: how long an outcome is worth retrying.
    lease: Duration,
}

impl Settler {
    pub(super) fn spawn(
        conn: RedisConnection,
        keys: QueueKeys,
        config: &QueueConfig,
        script: Script,
    ) -> Self {
        let (requests, incoming) = mpsc::unbounded_channel();
        let recorder = Recorder {
            conn,
            keys,
            script,
            retention_ms: ms(config.retention),
            dead_retention_ms: ms(config.dead_retention),
            lease: config.lease,
        };
        tokio::spawn(recorder.run(incoming));
        Self { requests }
    }

    /// Records `outcome` for `lease`. Answers false when the lease was no longer ours (it
    /// expired and the job was reclaimed), in which case nothing changed.
    pub(super) async fn settle(
        &self,
        lease: &Lease,
        outcome: Outcome,
    ) -> Result<bool, SettleError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            lease: lease.clone(),
            outcome,
            reply,
        };
        if self.requests.send(request).is_err() {
            return Err(SettleError("the settling task has stopped".to_owned()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(SettleError("the settling task has stopped".to_owned())))
    }
}

impl Recorder {
    async fn run(mut self, mut incoming: mpsc::UnboundedReceiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while incoming.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let answers = self.apply_with_retries(&batch).await;
            for (index, request) in batch.drain(..).enumerate() {
                let answer = match &answers {
                    Ok(answers) => Ok(answers.get(index) == Some(&1)),
                    Err(error) => Err(error.clone()),
                };
                // The caller may have been cancelled (an aborted worker); nothing to tell it.
                let _ = request.reply.send(answer);
            }
        }
    }

    /// Runs the script, retrying while Redis is unreachable for as long as the runs' leases
    /// could still be held: a settle given up earlier would let another worker run a job that
    /// already did its work (an email sent twice after a Redis restart). Past a lease's length
    /// the lease has run out at Redis anyway. Retrying is safe: a run already settled no
    /// longer holds its lease, so a repeat changes nothing.
    async fn apply_with_retries(&mut self, batch: &[Request]) -> Result<Vec<u8>, SettleError> {
        let mut pause = Duration::from_millis(50);
        let mut attempt = 1;
        let started = tokio::time::Instant::now();
        loop {
            match self.apply(batch).await {
                Ok(answers) => return Ok(answers),
                Err(error) if started.elapsed() + pause >= self.lease => {
                    return Err(SettleError(error.to_string()));
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, runs = batch.len(), "could not record job outcomes; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                    attempt += 1;
                }
            }
        }
    }

    async fn apply(&mut self, batch: &[Request]) -> redis::RedisResult<Vec<u8>> {
        let now = now_ms();
        let keys = &self.keys;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(keys.inflight())
            .key(keys.delayed())
            .key(keys.dead())
            .key(keys.ready())
            .key(keys.signal())
            .key(keys.counts())
            .arg(keys.job_prefix())
            .arg(now)
            .arg(self.retention_ms)
            .arg(self.dead_retention_ms);
        for Request { lease, outcome, .. } in batch {
            let (name, run_at, error, reason, output) = match outcome {
                Outcome::Done(output) => ("done", 0, "", "", output.as_str()),
                Outcome::Retry { after, error } => {
                    ("retry", now + ms(*after), error.as_str(), "", "")
                }
                Outcome::Dead { reason, error } => ("dead", 0, error.as_str(), reason.as_str(), ""),
                Outcome::Release => ("release", 0, "", "", ""),
                Outcome::Postpone { after } => ("postpone", now + ms(*after), "", "", ""),
            };
            invocation
                .arg(&lease.id)
                .arg(lease.token)
                .arg(name)
                .arg(run_at)
                .arg(error)
                .arg(reason)
                .arg(output);
        }
        invocation.invoke_async(&mut self.conn).await
    }
}

impl Shared {
    /// Records `outcome` for `lease` and forgets the lease. See [`Settler::settle`].
    pub(super) async fn settle(
        &self,
        lease: &Lease,
        outcome: Outcome,
    ) -> Result<bool, SettleError> {
        let settled = self.settler.settle(lease, outcome).await;
        self.leases.remove(lease);
        settled
    }

    /// [`Shared::settle`], logging what happened. If Redis never answers the lease runs out
    /// and another worker runs the job again: at least once, never lost.
    pub(super) async fn settle_and_log(&self, lease: &Lease, outcome: Outcome) {
        let log = outcome.clone();
        match self.settle(lease, outcome).await {
            Ok(true) => match log {
                Outcome::Dead { reason, error } => {
                    tracing::warn!(job_id = %lease.id, attempts = lease.token, %reason, %error, "job dead-lettered");
                    if let Some(on_dead) = &self.config.on_dead {
                        let id = lease.id.clone();
                        (on_dead.0)(super::DeadJob { id, reason, error }).await;
                    }
                }
                Outcome::Retry { after, error } => {
                    tracing::info!(job_id = %lease.id, attempt = lease.token, retry_in_ms = ms(after), %error, "job failed; will retry");
                }
                Outcome::Done(_) | Outcome::Release | Outcome::Postpone { .. } => {}
            },
            Ok(false) => {
                tracing::warn!(job_id = %lease.id, "this run's outcome was not recorded: its lease had run out (Redis was unreachable for longer than the lease, or restarted without the lease on disk), so the job was handed out again and its next run decides");
            }
            Err(error) => {
                tracing::error!(job_id = %lease.id, %error, "gave up recording the job's outcome; its lease will expire and it will run again");
            }
        }
    }
}

/// The layer a [`QueueBackend`](super::QueueBackend) hands apalis.
#[derive(Debug, Clone)]
pub struct SettleLayer {
    shared: Arc<Shared>,
}

impl SettleLayer {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl<S> Layer<S> for SettleLayer {
    type Service = SettleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SettleService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Runs the job, then records its outcome. See [`SettleLayer`].
#[derive(Debug, Clone)]
pub struct SettleService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, J> Service<Task<J>> for SettleService<S>
where
    S: Service<Task<J>>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
    S::Response: JobOutput + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<J>) -> Self::Future {
        let lease = task.ctx().data().get::<Lease>().cloned();
        let run = self.inner.call(task);
        let shared = self.shared.clone();
        async move {
            let watch = crate::metrics::Stopwatch::start();
            let result = run.await.map_err(Into::into);
            if let Some(lease) = lease {
                let outcome = Outcome::of(&result, &lease, &shared);
                crate::metrics::job_run(shared.keys.queue(), outcome.metric(), watch.elapsed());
                shared.settle_and_log(&lease, outcome).await;
            }
            result
        }
        .boxed()
    }
}
