//! Concurrent `POST /v1/emails` requests share Redis round trips: each hands its job to one
//! pusher task, which takes every job waiting, looks up all their recipients on the
//! suppression list with one HMGET and pushes them with one pipelined call of the push script
//! ([`Producer::push_each_new`]), up to [`IN_FLIGHT`] such rounds at once. Alone, a request goes
//! at once, in a round of its own; under load, the rounds grow instead of multiplying, so
//! Redis answers two commands per hundred requests rather than two each.
//!
//! Each job keeps its own outcome (a duplicate, a conflict, an invalid payload) and its own
//! suppressed recipients; a failed push fails every request of that round, as it would have
//! failed each alone, and a request answered with an error never leaves a job behind. The
//! lookup goes with the push ([`lookup_and_push`]): one round trip's wait, not two.

use std::sync::{Arc, OnceLock};

use mailroom_jobs::{EmailMessage, EnqueueOptions, Producer, PushError, Pushed, SendEmail, Valid};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::store::Suppressions;

/// Pushes run at once; past it, waiting jobs gather for the next.
const IN_FLIGHT: usize = 4;
/// The most jobs one call pushes (the push script's own chunk is a hundred).
const MAX_JOBS: usize = 256;
/// Requests waiting for the pusher at most; past it a request waits to hand its job over.
const QUEUE: usize = 4096;

/// A push's outcome and the message's suppressed recipients.
pub(super) type Outcome = Result<(Pushed, Vec<String>), PushError>;
type Reply = oneshot::Sender<Outcome>;
type Waiting = (Valid<SendEmail>, EnqueueOptions, Reply);

/// Where a round pushes and looks up.
#[derive(Debug, Clone)]
struct Stores {
    producer: Producer,
    suppressions: Suppressions,
    /// Categories sent regardless of the suppression list.
    transactional: Arc<Vec<String>>,
}

impl Stores {
    /// One round: every job pushed, its recipients looked up.
    async fn round(
        &self,
        jobs: &[(Valid<SendEmail>, EnqueueOptions)],
    ) -> Result<Vec<(Result<Pushed, PushError>, Vec<String>)>, redis::RedisError> {
        lookup_and_push(
            &self.producer,
            &self.suppressions,
            &self.transactional,
            jobs,
        )
        .await
    }
}

/// Pushes `jobs` and looks their recipients up on the suppression list at the same time, so
/// the two commands share one round trip's wait: each job's outcome and its suppressed
/// recipients, in order.
///
/// The push decides: when it fails, nothing was queued and its error is returned. When only
/// the lookup fails, the jobs are queued all the same (the worker skips suppressed recipients
/// when it sends, whatever the answer said) and no recipient is named as suppressed; refusing
/// them would have the caller send again what is already queued.
///
/// # Errors
/// When the push fails.
pub(super) async fn lookup_and_push(
    producer: &Producer,
    suppressions: &Suppressions,
    transactional: &[String],
    jobs: &[(Valid<SendEmail>, EnqueueOptions)],
) -> Result<Vec<(Result<Pushed, PushError>, Vec<String>)>, redis::RedisError> {
    let messages: Vec<&EmailMessage> = jobs.iter().map(|(job, _)| &job.message).collect();
    let (suppressed, pushed) = tokio::join!(
        suppressions.suppressed_recipients_of(&messages, transactional),
        producer.push_each_new(jobs)
    );
    let pushed = pushed?;
    let suppressed = suppressed.unwrap_or_else(|error| {
        tracing::warn!(
            %error,
            messages = jobs.len(),
            "the suppression lookup failed: messages queued without naming suppressed recipients"
        );
        vec![Vec::new(); jobs.len()]
    });
    Ok(pushed.into_iter().zip(suppressed).collect())
}

/// The pusher of one API process: started with the first push.
#[derive(Debug)]
pub struct Coalescer {
    stores: Stores,
    lane: Lane<Waiting>,
}

impl Coalescer {
    /// Pushes through `producer`, and looks recipients up in `suppressions` unless a message
    /// has one of the `transactional` categories.
    pub fn new(
        producer: Producer,
        suppressions: Suppressions,
        transactional: Arc<Vec<String>>,
    ) -> Self {
        Self {
            stores: Stores {
                producer,
                suppressions,
                transactional,
            },
            lane: Lane::new(),
        }
    }

    /// Pushes `job` with `options`, together with whatever other requests push meanwhile, and
    /// answers with its recipients on the suppression list.
    ///
    /// # Errors
    /// As [`Producer::push_with`].
    pub async fn push(&self, job: Valid<SendEmail>, options: EnqueueOptions) -> Outcome {
        let sender = self.lane.sender(QUEUE, |receiver, stop| {
            run(self.stores.clone(), receiver, stop)
        });
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((job, options, _))) =
            sender.send((job, options, reply)).await
        {
            // The pusher has stopped (the process is stopping): a round of its own.
            let mut alone = self.stores.round(&[(job, options)]).await?;
            let (pushed, suppressed) = alone.pop().ok_or_else(stopped)?;
            return pushed.map(|pushed| (pushed, suppressed));
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Pushes what has been handed over and waits for the rounds under way; a push after this
    /// goes alone.
    pub async fn finish(&self) {
        self.lane.finish().await;
    }
}

fn stopped() -> PushError {
    PushError::Redis(redis::RedisError::from((
        redis::ErrorKind::Io,
        "the pusher stopped before answering",
    )))
}

/// The way into a gathering task ([`gather`]) started with the first item, and the means to
/// stop it without losing what was handed over.
pub(super) struct Lane<T> {
    sender: OnceLock<mpsc::Sender<T>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl<T> std::fmt::Debug for Lane<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("started", &self.sender.get().is_some())
            .field("stopping", &self.stop.is_cancelled())
            .finish()
    }
}

impl<T: Send + 'static> Lane<T> {
    pub(super) fn new() -> Self {
        Self {
            sender: OnceLock::new(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// The sender; the first call starts the task, `start(receiver, stop)`, with a channel of
    /// `capacity`.
    pub(super) fn sender<Fut>(
        &self,
        capacity: usize,
        start: impl FnOnce(mpsc::Receiver<T>, CancellationToken) -> Fut,
    ) -> &mpsc::Sender<T>
    where
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(capacity);
            self.tasks.spawn(start(receiver, self.stop.clone()));
            sender
        })
    }

    /// Takes nothing more (a later item is refused at the sender) and returns once everything
    /// handed over has been dealt with.
    pub(super) async fn finish(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Takes the first waiting item, then every other one already there (up to `max`), and runs
/// `round` on them in a task of its own, at most `in_flight` rounds at once. The gathering
/// loop of the email pusher and of the tracking recorder.
///
/// Ends when every sender is gone, or once `stop` is cancelled: then the channel is closed,
/// what is already in it still goes out in rounds, and the loop returns only when every round
/// has finished, so that a process stopping gracefully loses nothing it has accepted.
pub(super) async fn gather<T, F, Fut>(
    mut receiver: mpsc::Receiver<T>,
    max: usize,
    in_flight: usize,
    stop: CancellationToken,
    round: F,
) where
    T: Send + 'static,
    F: Fn(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut closed = false;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let first = tokio::select! {
            biased;
            () = stop.cancelled(), if !closed => {
                // Nothing new comes in; what is waiting is still received.
                receiver.close();
                closed = true;
                continue;
            }
            first = receiver.recv() => first,
        };
        let Some(first) = first else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < max {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let work = round(batch);
        tokio::spawn(async move {
            work.await;
            drop(permit);
        });
    }
    // Every round has finished when every permit is back.
    let _ = permits
        .acquire_many(u32::try_from(in_flight).unwrap_or(u32::MAX))
        .await;
}

/// The pusher: one round of lookups and pushes per gathered batch.
async fn run(stores: Stores, receiver: mpsc::Receiver<Waiting>, stop: CancellationToken) {
    gather(receiver, MAX_JOBS, IN_FLIGHT, stop, move |batch| {
        let stores = stores.clone();
        async move {
            let (jobs, replies): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|(job, options, reply)| ((job, options), reply))
                .unzip();
            match stores.round(&jobs).await {
                Ok(outcomes) => {
                    for (reply, (pushed, suppressed)) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(pushed.map(|pushed| (pushed, suppressed)));
                    }
                }
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(PushError::Redis(error.clone())));
                    }
                }
            }
        }
    })
    .await;
}
