//! Concurrent `POST /v1/emails` requests share Redis round trips: each hands its job to one
//! pusher task, which takes every job waiting and pushes them with one pipelined call of the
//! push script ([`Producer::push_each`]), up to [`IN_FLIGHT`] calls at once. Alone, a request
//! goes at once, in a call of its own; under load, the calls grow instead of multiplying, so
//! Redis runs one script call per hundred requests rather than one each.
//!
//! Each job keeps its own outcome (a duplicate, a conflict, an invalid payload), and a Redis
//! failure fails every request of that call, as it would have failed each alone.

use std::sync::{Arc, OnceLock};

use mailroom_jobs::{EnqueueOptions, Producer, PushError, Pushed, SendEmail};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Pushes run at once; past it, waiting jobs gather for the next.
const IN_FLIGHT: usize = 4;
/// The most jobs one call pushes (the push script's own chunk is a hundred).
const MAX_JOBS: usize = 256;
/// Requests waiting for the pusher at most; past it a request waits to hand its job over.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<Pushed, PushError>>;

/// The pusher of one API process: started with the first push.
#[derive(Debug)]
pub struct Coalescer {
    producer: Producer,
    sender: OnceLock<mpsc::Sender<(SendEmail, EnqueueOptions, Reply)>>,
}

impl Coalescer {
    /// Pushes through `producer`.
    pub fn new(producer: Producer) -> Self {
        Self {
            producer,
            sender: OnceLock::new(),
        }
    }

    /// Pushes `job` with `options`, together with whatever other requests push meanwhile.
    ///
    /// # Errors
    /// As [`Producer::push_with`].
    pub async fn push(&self, job: SendEmail, options: EnqueueOptions) -> Result<Pushed, PushError> {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            tokio::spawn(run(self.producer.clone(), receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((job, options, _))) =
            sender.send((job, options, reply)).await
        {
            // The pusher is gone (its runtime is shutting down): push alone.
            return self.producer.push_with(&job, options).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(PushError::Redis(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the pusher stopped before answering",
            ))))
        })
    }
}

/// The pusher: takes the first waiting job, then every other one already there.
async fn run(producer: Producer, mut receiver: mpsc::Receiver<(SendEmail, EnqueueOptions, Reply)>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = receiver.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let producer = producer.clone();
        tokio::spawn(async move {
            let (jobs, replies): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|(job, options, reply)| ((job, options), reply))
                .unzip();
            match producer.push_each(&jobs).await {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome);
                    }
                }
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(PushError::Redis(error.clone())));
                    }
                }
            }
            drop(permit);
        });
    }
}
