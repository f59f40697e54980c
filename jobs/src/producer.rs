//! Pushing jobs from a Rust service.
//!
//! A push is one Lua script (`lua/push.lua`): the job hash, its place in the ready list or the
//! delayed set, the idempotency record and the wake-up signal for idle workers are written
//! atomically, so a job is either fully queued or not at all. One call pushes up to a hundred
//! jobs, and calls are pipelined, so a batch costs Redis a fraction of a push per job. Jobs made
//! for the push, due now and without an idempotency key have a lighter script of their own
//! (`lua/push_new.lua`, [`Producer::push_each_new`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::{
    Job, QueueKeys, Valid,
    connection::{BadRedisUrl, RedisClient, RedisConnection},
};

/// The longest idempotency key accepted; longer ones are refused rather than truncated.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The payload failed its own [`Job::validate`] check; nothing was queued.
    #[error("invalid {queue} job: {reason}")]
    Invalid {
        /// The job's queue.
        queue: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The payload could not be serialized; nothing was queued.
    #[error("could not serialize the job: {0}")]
    Serialize(#[from] serde_json::Error),
    /// Redis did not take the job; it may or may not be queued only if the error came after
    /// the script started, which Redis makes atomic: treat it as not queued and retry with the
    /// same idempotency key.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Why [`Producer::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a Redis URL.
    #[error("REDIS_URL: {0}")]
    Url(#[from] BadRedisUrl),
    /// Redis did not answer.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// How to push one job.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// The job's id; a UUID v7 is assigned when absent.
    pub id: Option<Uuid>,
    /// Not before this time (millisecond resolution); now when absent.
    pub run_at: Option<SystemTime>,
    /// Attempts before the job is dead-lettered; the worker's default when absent.
    pub max_attempts: Option<u32>,
    /// Pushing again with the same key inside the producer's window returns the first job's id
    /// and queues nothing.
    pub idempotency_key: Option<String>,
    /// Who queued it (a stored API key's id), kept on the job's record for as long as it
    /// lasts: the API shows a message's status only to its owner and to keys that read all.
    pub owner: Option<String>,
    /// The owner's limits, checked and taken in the push itself (only with an owner).
    pub limits: OwnerLimits,
}

/// How many jobs an owner may push: a second (with a second's worth of burst) and a UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerLimits {
    pub per_second: Option<u32>,
    pub per_day: Option<u64>,
}

/// Which of its owner's limits refused a push, and in how long to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    PerSecond(Duration),
    PerDay(Duration),
}

impl Limited {
    /// Reads the push script's `rate:MS` / `day:MS`.
    fn parse(text: &str) -> Option<Self> {
        let (which, ms) = text.split_once(':')?;
        let wait = Duration::from_millis(ms.parse().ok()?);
        match which {
            "rate" => Some(Self::PerSecond(wait)),
            "day" => Some(Self::PerDay(wait)),
            _ => None,
        }
    }
}

/// The outcome of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The id of the queued job, or of the earlier job that answered for this push.
    pub id: String,
    /// True when an earlier push with the same idempotency key (or id) answered for this one.
    pub duplicate: bool,
    /// True when that earlier push asked for something else ([`Job::fingerprint`] differs):
    /// the key was reused for a different request.
    pub conflict: bool,
    /// Set when the owner's limits refused it: nothing was queued.
    pub limited: Option<Limited>,
}

/// Pushes jobs onto mailroom's queues. Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct Producer {
    conn: RedisConnection,
    prefix: String,
    idempotency_window: Duration,
    script: redis::Script,
    /// For new jobs due now without an idempotency key ([`Producer::push_each_new`]).
    new_script: redis::Script,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("prefix", &self.prefix)
            .field("idempotency_window", &self.idempotency_window)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// The default window in which an idempotency key answers for later pushes.
    pub const DEFAULT_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

    /// A producer on an existing connection, for keys under `prefix` (mailroom's default is
    /// `mailroom`; it must match the workers' `MAILROOM_REDIS_PREFIX`).
    pub fn new(conn: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            idempotency_window: Self::DEFAULT_IDEMPOTENCY_WINDOW,
            script: redis::Script::new(include_str!("lua/push.lua")),
            new_script: redis::Script::new(include_str!("lua/push_new.lua")),
        }
    }

    /// How long [`Producer::connect`]'s connection waits for an answer (as mailroom's own).
    pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

    /// Connects to `redis_url` (one Redis, or `redis+cluster://` seed nodes: see
    /// [`crate::connection`]) and returns a producer for keys under `prefix`.
    ///
    /// # Errors
    /// When the URL is malformed or Redis does not answer.
    pub async fn connect(redis_url: &str, prefix: impl Into<String>) -> Result<Self, ConnectError> {
        let client = RedisClient::open(redis_url, Self::RESPONSE_TIMEOUT)?;
        let conn = client.connect(Self::RESPONSE_TIMEOUT).await?;
        Ok(Self::new(conn, prefix))
    }

    /// Checks that Redis answers and the push script is loaded (loading it if Redis forgot it).
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn ready(&self) -> Result<(), PushError> {
        for script in [&self.script, &self.new_script] {
            script
                .prepare_invoke()
                .load_async(&mut self.conn.clone())
                .await?;
        }
        Ok(())
    }

    /// Sets how long an idempotency key answers for later pushes (default 24 h).
    #[must_use]
    pub fn with_idempotency_window(mut self, window: Duration) -> Self {
        self.idempotency_window = window;
        self
    }

    /// The connection this producer pushes on (cheap to clone: one multiplexed connection).
    pub fn connection(&self) -> RedisConnection {
        self.conn.clone()
    }

    /// The key schema of `J`'s queue under this producer's prefix.
    pub fn keys<J: Job>(&self) -> QueueKeys {
        QueueKeys::new(&self.prefix, J::QUEUE)
    }

    /// Pushes `job` with the options it carries ([`Job::enqueue_options`]): now, unless it says otherwise.
    ///
    /// # Errors
    /// See [`PushError`].
    pub async fn push<J: Job>(&self, job: &J) -> Result<Pushed, PushError> {
        self.push_with(job, job.enqueue_options()).await
    }

    /// Pushes `job` with `options`.
    ///
    /// # Errors
    /// See [`PushError`]; an idempotency key longer than 255 bytes is [`PushError::Invalid`].
    pub async fn push_with<J: Job>(
        &self,
        job: &J,
        options: EnqueueOptions,
    ) -> Result<Pushed, PushError> {
        let prepared = Prepared::new(job, options, self.idempotency_window, Novelty::MaybeSeen)?;
        let mut pushed = self.push_calls::<J>(&[], &[&prepared]).await?;
        pushed.pop().ok_or_else(|| {
            PushError::Redis(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "the push script answered nothing",
            )))
        })
    }

    /// Pushes many jobs to run now, pipelined: one round trip per 1,000 jobs.
    ///
    /// Each job is atomic on its own; the batch is not (a failure part-way leaves the earlier
    /// jobs queued). Returns the ids in order.
    ///
    /// # Errors
    /// See [`PushError`]. Every payload is validated before anything is sent.
    pub async fn push_many<J: Job>(&self, jobs: &[J]) -> Result<Vec<String>, PushError> {
        self.push_many_with(jobs, &EnqueueOptions::default()).await
    }

    /// [`Producer::push_many`] with a run-at time and max attempts shared by every job (each
    /// job's own id, run-at time and idempotency key, from [`Job::enqueue_options`], are kept).
    ///
    /// # Errors
    /// See [`PushError`]. An id or idempotency key in `options` is refused: it would make
    /// every job after the first a duplicate.
    pub async fn push_many_with<J: Job>(
        &self,
        jobs: &[J],
        options: &EnqueueOptions,
    ) -> Result<Vec<String>, PushError> {
        if options.id.is_some() || options.idempotency_key.is_some() {
            return Err(PushError::Invalid {
                queue: J::QUEUE,
                reason: "a batch cannot share one id or idempotency key".to_owned(),
            });
        }
        // Each job keeps what it carries itself (a message's own id, its send time, its
        // idempotency key); the shared options fill in the rest.
        let prepared = jobs
            .iter()
            .map(|job| {
                let own = job.enqueue_options();
                let merged = EnqueueOptions {
                    run_at: options.run_at.or(own.run_at),
                    max_attempts: options.max_attempts.or(own.max_attempts),
                    ..own
                };
                Prepared::new(job, merged, self.idempotency_window, Novelty::MaybeSeen)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ready: Vec<&Prepared> = prepared.iter().collect();
        let answers = self.push_calls::<J>(&[], &ready).await?;
        Ok(answers.into_iter().map(|pushed| pushed.id).collect())
    }

    /// Pushes each job with its own options (its id, run-at time, idempotency key),
    /// pipelined: one round trip per 1,000 jobs. Each job's outcome, in order: pushed (perhaps
    /// a duplicate of, or a conflict with, an earlier push with its idempotency key), or why it
    /// was refused before anything was sent.
    ///
    /// Each job is atomic on its own; the batch is not.
    ///
    /// # Errors
    /// When Redis fails: the jobs before the failing round trip are queued, those in it may
    /// be; pushing the batch again with the same idempotency keys queues each once.
    pub async fn push_each<J: Job>(
        &self,
        jobs: &[(J, EnqueueOptions)],
    ) -> Result<Vec<Result<Pushed, PushError>>, redis::RedisError> {
        self.push_each_as(jobs, Novelty::MaybeSeen).await
    }

    /// [`Producer::push_each`] for jobs that are new: each made for this call, with an id
    /// minted with it (as [`crate::SendEmail::new`] does), and pushed by nothing else. Such a
    /// job, due now and without an idempotency key, cannot meet an earlier push of itself, so
    /// it is written without looking for one and without its [`Job::fingerprint`]
    /// (`lua/push_new.lua`: a quarter less of Redis's work for a message); the others go through
    /// the usual script. The API's single and batch sends push this way.
    ///
    /// A job pushed before must never come through here: its first record would be
    /// overwritten. The jobs were checked when they were made [`Valid`], and are not again.
    ///
    /// # Errors
    /// As [`Producer::push_each`].
    pub async fn push_each_new<J: Job>(
        &self,
        jobs: &[(Valid<J>, EnqueueOptions)],
    ) -> Result<Vec<Result<Pushed, PushError>>, redis::RedisError> {
        let prepared = jobs
            .iter()
            .map(|(job, options)| {
                Prepared::of_valid(
                    &**job,
                    options.clone(),
                    self.idempotency_window,
                    Novelty::New,
                )
            })
            .collect();
        self.push_prepared::<J>(prepared).await
    }

    async fn push_each_as<J: Job>(
        &self,
        jobs: &[(J, EnqueueOptions)],
        novelty: Novelty,
    ) -> Result<Vec<Result<Pushed, PushError>>, redis::RedisError> {
        let prepared = jobs
            .iter()
            .map(|(job, options)| {
                Prepared::new(job, options.clone(), self.idempotency_window, novelty)
            })
            .collect();
        self.push_prepared::<J>(prepared).await
    }

    /// Pushes the jobs that were prepared, and answers for each in order (a job refused while
    /// it was prepared keeps its refusal).
    async fn push_prepared<J: Job>(
        &self,
        prepared: Vec<Result<Prepared, PushError>>,
    ) -> Result<Vec<Result<Pushed, PushError>>, redis::RedisError> {
        let (plain, checked): (Vec<&Prepared>, Vec<&Prepared>) = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .partition(|p| p.plain);
        let mut answers = self.push_calls::<J>(&plain, &checked).await?.into_iter();
        Ok(prepared
            .into_iter()
            .map(|outcome| {
                outcome.and_then(|job| {
                    if job.plain {
                        return Ok(Pushed {
                            id: job.id,
                            duplicate: false,
                            conflict: false,
                            limited: None,
                        });
                    }
                    answers.next().ok_or_else(|| {
                        PushError::Redis(redis::RedisError::from((
                            redis::ErrorKind::Parse,
                            "fewer answers than pushes",
                        )))
                    })
                })
            })
            .collect())
    }

    /// Pushes `plain` jobs with `lua/push_new.lua` and `checked` ones with `lua/push.lua`:
    /// [`JOBS_PER_CALL`] jobs a call, up to [`CALLS_PER_TRIP`] calls pipelined in one round
    /// trip (so a round with both kinds is still one trip). Answers for the `checked` jobs, in
    /// order; a plain job is queued as itself.
    async fn push_calls<J: Job>(
        &self,
        plain: &[&Prepared],
        checked: &[&Prepared],
    ) -> Result<Vec<Pushed>, redis::RedisError> {
        let calls: Vec<Call<'_>> = plain
            .chunks(JOBS_PER_CALL)
            .map(Call::New)
            .chain(checked.chunks(JOBS_PER_CALL).map(Call::Checked))
            .collect();
        let mut pushed = Vec::with_capacity(checked.len());
        for trip in calls.chunks(CALLS_PER_TRIP) {
            let answers = self.run::<J>(trip).await?;
            for (call, answer) in trip.iter().zip(answers) {
                let Call::Checked(jobs) = call else { continue };
                let answers: Vec<(String, u8, String)> = redis::from_redis_value(answer)?;
                pushed.extend(jobs.iter().zip(answers).map(|(job, (id, answer, first))| {
                    let duplicate = answer == 1;
                    Pushed {
                        id,
                        duplicate,
                        conflict: duplicate && first != job.fingerprint,
                        limited: (answer == 2).then(|| Limited::parse(&first)).flatten(),
                    }
                }));
            }
        }
        Ok(pushed)
    }

    /// Runs `pipe`, calls of the push scripts. A Redis that restarted, or failed over, has
    /// forgotten them: they are loaded and the pipeline sent once more (a NOSCRIPT answer ran
    /// nothing).
    /// The script calls of one round trip, pipelined, and their answers in order. A call Redis
    /// refused for want of its script is sent again once the scripts are loaded, and only that
    /// call: the others ran, and running them again would queue their jobs twice.
    async fn run<J: Job>(&self, trip: &[Call<'_>]) -> Result<Vec<redis::Value>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let mut answers: Vec<redis::RedisResult<redis::Value>> = self
            .pipeline::<J>(trip.iter())
            .ignore_errors()
            .query_async(&mut conn)
            .await?;
        let missing: Vec<usize> = (answers.iter().enumerate())
            .filter(|(_, a)| {
                a.as_ref().is_err_and(|e| {
                    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
                })
            })
            .map(|(i, _)| i)
            .collect();
        if !missing.is_empty() {
            for script in [&self.script, &self.new_script] {
                script.prepare_invoke().load_async(&mut conn).await?;
            }
            let again: Vec<redis::RedisResult<redis::Value>> = self
                .pipeline::<J>(missing.iter().map(|i| &trip[*i]))
                .ignore_errors()
                .query_async(&mut conn)
                .await?;
            for (i, answer) in missing.into_iter().zip(again) {
                answers[i] = answer;
            }
        }
        answers.into_iter().collect()
    }

    /// One pipeline of script calls.
    fn pipeline<'c, J: Job>(&self, calls: impl Iterator<Item = &'c Call<'c>>) -> redis::Pipeline {
        let keys = self.keys::<J>();
        let (job_prefix, idempotency_prefix) = (keys.job_prefix(), keys.idempotency(""));
        let limits_prefix = keys.limits_prefix();
        let mut pipe = redis::pipe();
        for call in calls {
            match call {
                Call::New(jobs) => {
                    pipe.cmd("EVALSHA")
                        .arg(self.new_script.get_hash())
                        .arg(2)
                        .arg(keys.ready())
                        .arg(keys.signal())
                        .arg(&job_prefix)
                        .arg(jobs[0].now_ms);
                    for job in *jobs {
                        pipe.arg(&job.id).arg(&job.payload).arg(job.max_attempts);
                    }
                }
                Call::Checked(jobs) => {
                    pipe.cmd("EVALSHA")
                        .arg(self.script.get_hash())
                        .arg(3)
                        .arg(keys.ready())
                        .arg(keys.delayed())
                        .arg(keys.signal())
                        .arg(&job_prefix)
                        .arg(&idempotency_prefix)
                        .arg(&limits_prefix);
                    for job in *jobs {
                        job.bind(&mut pipe);
                    }
                }
            }
        }
        pipe
    }
}

/// Jobs pushed by one script call: enough to spread a call's cost thin, few enough that Redis
/// is never held long (a call of 100 takes well under a millisecond).
const JOBS_PER_CALL: usize = 100;

/// Script calls per round trip.
const CALLS_PER_TRIP: usize = 10;

/// One script call of a round trip, and the jobs it carries.
enum Call<'a> {
    /// `lua/push_new.lua`.
    New(&'a [&'a Prepared]),
    /// `lua/push.lua`.
    Checked(&'a [&'a Prepared]),
}

/// Whether a job may have been pushed before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Novelty {
    /// Its id may be an earlier push's: the push script looks.
    MaybeSeen,
    /// Made for this push ([`Producer::push_each_new`]).
    New,
}

/// A job checked and serialized, ready to be bound to the push script.
struct Prepared {
    id: String,
    payload: String,
    max_attempts: u32,
    now_ms: u64,
    run_at_ms: u64,
    idempotency_key: Option<String>,
    window_ms: u64,
    fingerprint: String,
    owner: Option<String>,
    limits: OwnerLimits,
    /// New, due now, without an idempotency key or an owner: pushed by `lua/push_new.lua`,
    /// with no fingerprint (nothing can compare with it).
    plain: bool,
}

impl Prepared {
    fn new<J: Job>(
        job: &J,
        options: EnqueueOptions,
        window: Duration,
        novelty: Novelty,
    ) -> Result<Self, PushError> {
        job.validate().map_err(|reason| PushError::Invalid {
            queue: J::QUEUE,
            reason: reason.0,
        })?;
        Self::of_valid(job, options, window, novelty)
    }

    /// [`Prepared::new`] for a job already validated ([`Valid`]).
    fn of_valid<J: Job>(
        job: &J,
        options: EnqueueOptions,
        window: Duration,
        novelty: Novelty,
    ) -> Result<Self, PushError> {
        let invalid = |reason: String| PushError::Invalid {
            queue: J::QUEUE,
            reason,
        };
        if let Some(key) = &options.idempotency_key
            && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN)
        {
            return Err(invalid(format!(
                "an idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes long"
            )));
        }
        let now_ms = millis(SystemTime::now());
        let plain = novelty == Novelty::New
            && options.run_at.is_none()
            && options.idempotency_key.is_none()
            && options.owner.is_none();
        Ok(Self {
            id: options.id.unwrap_or_else(Uuid::now_v7).to_string(),
            payload: serde_json::to_string(job)?,
            max_attempts: options.max_attempts.unwrap_or(0),
            now_ms,
            run_at_ms: options.run_at.map_or(now_ms, millis),
            window_ms: if options.idempotency_key.is_some() {
                u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1)
            } else {
                0
            },
            idempotency_key: options.idempotency_key,
            owner: options.owner,
            limits: options.limits,
            fingerprint: if plain {
                String::new()
            } else {
                job.fingerprint().unwrap_or_default()
            },
            plain,
        })
    }

    /// Adds this job's eleven arguments to the push script call being written in `pipe`.
    fn bind(&self, pipe: &mut redis::Pipeline) {
        pipe.arg(&self.id)
            .arg(&self.payload)
            .arg(self.max_attempts)
            .arg(self.now_ms)
            .arg(self.run_at_ms)
            .arg(self.window_ms)
            .arg(self.idempotency_key.as_deref().unwrap_or(""))
            .arg(&self.fingerprint)
            .arg(self.owner.as_deref().unwrap_or(""))
            .arg(self.limits.per_second.unwrap_or(0))
            .arg(self.limits.per_day.unwrap_or(0));
    }
}

/// Milliseconds since the Unix epoch; times before it count as the epoch.
fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
