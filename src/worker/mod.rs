//! The worker process: one apalis worker per queue, each on mailroom's Redis backend, and the
//! supervision that turns a shutdown signal into a graceful stop.
//!
//! On SIGTERM or Ctrl-C a worker stops fetching, lets the jobs it is running finish within the
//! grace period, and hands everything else back to the queue at once: jobs it had fetched but
//! not started, and, when the grace period runs out, the jobs still running. A worker whose
//! runtime fails makes the process exit non-zero; it never exits 0 with work silently undone.

mod campaign;
pub mod dead_mail;
mod deliver_event;
mod hooks;
mod noop;
mod process_events;
mod send_email;
mod send_verification;
pub mod tracking;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::{Context, anyhow};
use apalis::layers::WorkerBuilderExt;
use apalis_core::{error::WorkerError, worker::builder::WorkerBuilder};
use futures::{FutureExt, future::BoxFuture};
use mailroom_jobs::{
    CampaignJob, DeliverEvent, DeliverWebhook, Job, ProviderEvents, SendEmail, SendVerification,
    TrackingHits,
};
use tokio_util::sync::CancellationToken;

use crate::{
    campaigns::Campaigner,
    config::Settings,
    events::EventStore,
    queue::{QueueConfig, RedisQueue},
};

pub use campaign::run_campaign;
pub use deliver_event::{Callbacks, deliver_event, signature};
pub use noop::run_noop;
pub use process_events::{Processed, process_events};
pub use send_email::{Mailer, Sent, send_email};
pub use send_verification::send_verification;

/// How one worker process runs its jobs.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    /// Jobs in flight at once.
    pub concurrency: usize,
    /// A run taking longer fails and is retried.
    pub job_timeout: Duration,
    /// How long a stopping worker lets running jobs finish.
    pub grace: Duration,
    /// A log line (info) for every email handed over or failed: `mailroom dev` sets it, where
    /// a person watches the terminal; at production volume it would be thousands a second.
    pub announce: bool,
}

impl WorkerOptions {
    /// The options `settings` describe, with `concurrency` overriding theirs when given.
    pub fn from_settings(settings: &Settings, concurrency: Option<usize>) -> Self {
        Self {
            concurrency: concurrency.unwrap_or(settings.concurrency).max(1),
            job_timeout: Duration::from_secs(settings.job_timeout_secs),
            grace: Duration::from_secs(settings.shutdown_grace_secs),
            announce: false,
        }
    }
}

/// A name unique to this process start: host, process id and a random suffix.
pub fn worker_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

/// What the workers of one process share, built once by the composition root.
#[derive(Debug)]
pub struct Handlers {
    /// Sends single emails and verification emails.
    pub mailer: Arc<Mailer>,
    /// Runs campaigns.
    pub campaigner: Arc<Campaigner>,
    /// Delivers `email.verified` callbacks.
    pub callbacks: Arc<Callbacks>,
    /// Applies SendGrid's event batches.
    pub events: EventStore,
    /// Records tracking hits.
    pub hits: tracking::HitStore,
    /// Delivers events to the services' webhook endpoints.
    pub hooks: Arc<crate::hooks::deliver::Deliverer>,
}

/// Where the queues are and how they behave.
#[derive(Debug, Clone)]
pub struct Queues {
    pub client: mailroom_jobs::RedisClient,
    /// Every queue but `email`'s.
    pub config: QueueConfig,
    /// The `email` queue's: its finished records are the messages' statuses.
    pub email_config: QueueConfig,
}

/// The queues of a worker process, connected.
struct Connected {
    emails: RedisQueue<SendEmail>,
    verifications: RedisQueue<SendVerification>,
    events: RedisQueue<DeliverEvent>,
    webhooks: RedisQueue<ProviderEvents>,
    tracking: RedisQueue<TrackingHits>,
    campaigns: RedisQueue<CampaignJob>,
    hooks: RedisQueue<DeliverWebhook>,
}

impl Queues {
    async fn connect(&self, name: &str) -> anyhow::Result<Connected> {
        async fn one<J: Job>(
            queues: &Queues,
            config: &QueueConfig,
            name: &str,
        ) -> anyhow::Result<RedisQueue<J>> {
            RedisQueue::<J>::connect(queues.client.clone(), config.clone(), name.to_owned())
                .await
                .context("could not connect to Redis (is REDIS_URL right, and is Redis running?)")
        }
        Ok(Connected {
            emails: one(self, &self.email_config, name).await?,
            verifications: one(self, &self.config, name).await?,
            events: one(self, &self.config, name).await?,
            webhooks: one(self, &self.config, name).await?,
            tracking: one(self, &self.config, name).await?,
            campaigns: one(self, &self.config, name).await?,
            hooks: one(self, &self.config, name).await?,
        })
    }
}

fn announce(name: &str, handlers: &Handlers, options: WorkerOptions, campaign_concurrency: usize) {
    tracing::info!(
        worker = %name,
        concurrency = options.concurrency,
        providers = ?handlers.mailer.routes.providers().iter().map(|p| p.name()).collect::<Vec<_>>(),
        campaign_concurrency,
        queues = ?mailroom_jobs::QUEUES,
        "worker started"
    );
}

/// Runs one worker per queue until `shutdown` is cancelled and the stop has completed;
/// campaigns run `campaign_concurrency` at a time.
///
/// # Errors
/// When Redis cannot be reached at start-up or a worker's runtime fails.
pub async fn run(
    queues: Queues,
    handlers: Handlers,
    options: WorkerOptions,
    campaign_concurrency: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let name = worker_name();
    let q = queues.connect(&name).await?;
    announce(&name, &handlers, options, campaign_concurrency);
    let stop = || -> StopSignal { shutdown.clone().cancelled_owned().map(Ok as fn(()) -> _) };
    let Handlers {
        mailer,
        campaigner,
        callbacks,
        events,
        hits,
        hooks,
    } = handlers;
    let campaign_options = WorkerOptions {
        concurrency: campaign_concurrency.max(1),
        ..options
    };
    let grace = options.grace;
    // Every worker runs to its end: when one fails it cancels `shutdown`, and the others then
    // stop gracefully and hand their jobs back instead of being cut off.
    let (email, verification, event, webhook, campaign, tracked, hook) = tokio::join!(
        supervise(
            email_worker(&name, &q.emails, mailer.clone(), options, stop()),
            &q.emails,
            &shutdown,
            grace
        ),
        supervise(
            verification_worker(&name, &q.verifications, mailer, options, stop()),
            &q.verifications,
            &shutdown,
            grace
        ),
        supervise(
            event_worker(&name, &q.events, callbacks, options, stop()),
            &q.events,
            &shutdown,
            grace
        ),
        supervise(
            webhook_worker(&name, &q.webhooks, events, options, stop()),
            &q.webhooks,
            &shutdown,
            grace
        ),
        supervise(
            campaign_worker(&name, &q.campaigns, campaigner, campaign_options, stop()),
            &q.campaigns,
            &shutdown,
            grace
        ),
        supervise(
            tracking_worker(&name, &q.tracking, hits, options, stop()),
            &q.tracking,
            &shutdown,
            grace
        ),
        supervise(
            hook_worker(&name, &q.hooks, hooks, options, stop()),
            &q.hooks,
            &shutdown,
            grace
        ),
    );
    email.context("the email worker")?;
    verification.context("the verification worker")?;
    event.context("the callback worker")?;
    webhook.context("the SendGrid event worker")?;
    campaign.context("the campaign worker")?;
    tracked.context("the tracking worker")?;
    hook.context("the webhook delivery worker")?;
    tracing::info!(worker = %name, "worker stopped");
    Ok(())
}

type StopSignal = futures::future::Map<
    tokio_util::sync::WaitForCancellationFutureOwned,
    fn(()) -> Result<(), std::io::Error>,
>;
type WorkerRun = BoxFuture<'static, Result<(), WorkerError>>;

/// Builds one queue's apalis worker with mailroom's layers (concurrency, timeout, tracing,
/// catch-panic, in that order) and returns its run as a boxed future.
///
/// A macro rather than a generic function: apalis's builder types change with every layer,
/// and spelling their bounds out would be longer than the builder. It expands inside plain
/// functions on purpose: apalis's catch-panic layer holds a higher-ranked function pointer, and
/// a built worker kept in `run`'s own async state would make `run` unusable with
/// `tokio::spawn` (rustc cannot prove it Send).
macro_rules! worker {
    ($job:ty, $name:expr, $queue:expr, $options:expr, $stop:expr, $handler:expr $(, data = $data:expr)?) => {
        WorkerBuilder::new(format!("{}/{}", $name, <$job>::QUEUE))
            .backend($queue.backend())
            $(.data($data))?
            .concurrency($options.concurrency)
            .timeout($options.job_timeout)
            .enable_tracing()
            .catch_panic()
            .build($handler)
            .run_until($stop)
            .boxed()
    };
}

fn email_worker(
    name: &str,
    queue: &RedisQueue<SendEmail>,
    mailer: Arc<Mailer>,
    options: WorkerOptions,
    stop: StopSignal,
) -> WorkerRun {
    worker!(
        SendEmail,
        name,
        queue,
        options,
        stop,
        send_email,
        data = mailer
    )
}

fn verification_worker(
    name: &str,
    queue: &RedisQueue<SendVerification>,
    mailer: Arc<Mailer>,
    options: WorkerOptions,
    stop: StopSignal,
) -> WorkerRun {
    worker!(
        SendVerification,
        name,
        queue,
        options,
        stop,
        send_verification,
        data = mailer
    )
}

fn event_worker(
    name: &str,
    queue: &RedisQueue<DeliverEvent>,
    callbacks: Arc<Callbacks>,
    options: WorkerOptions,
    stop: StopSignal,
) -> WorkerRun {
    worker!(
        DeliverEvent,
        name,
        queue,
        options,
        stop,
        deliver_event,
        data = callbacks
    )
}

fn hook_worker(
    name: &str,
    queue: &RedisQueue<DeliverWebhook>,
    deliverer: Arc<crate::hooks::deliver::Deliverer>,
    options: WorkerOptions,
    stop: StopSignal,
) -> WorkerRun {
    worker!(
        DeliverWebhook,
        name,
        queue,
        options,
        stop,
        hooks::deliver_webhook,
        data = deliverer
    )
}

fn campaign_worker(
    name: &str,
    queue: &RedisQueue<CampaignJob>,
    campaigner: Arc<Campaigner>,
    options: WorkerOptions,
    stop: StopSignal,
) -> WorkerRun {
    worker!(
        CampaignJob,
        name,
        queue,
        options,
        stop,
        run_campaign,
        data = campaigner
    )
}

fn tracking_worker(
    name: &str,
    queue: &RedisQueue<TrackingHits>,
    store: tracking::HitStore,
    options: WorkerOptions,
    stop: StopSignal,
) -> WorkerRun {
    worker!(
        TrackingHits,
        name,
        queue,
        options,
        stop,
        tracking::record_hits,
        data = store
    )
}

fn webhook_worker(
    name: &str,
    queue: &RedisQueue<ProviderEvents>,
    store: EventStore,
    options: WorkerOptions,
    stop: StopSignal,
) -> WorkerRun {
    worker!(
        ProviderEvents,
        name,
        queue,
        options,
        stop,
        process_events,
        data = store
    )
}

/// Drives a worker future to its end: an error or an end before any shutdown request is a
/// failure (and cancels `shutdown`, so the process's other workers stop too); after a shutdown
/// request, the worker has `grace` to finish before the jobs it still holds are returned to
/// the queue.
///
/// # Errors
/// When the worker ends on its own, fails, or panics.
pub async fn supervise<F, J>(
    worker: F,
    queue: &RedisQueue<J>,
    shutdown: &CancellationToken,
    grace: Duration,
) -> anyhow::Result<()>
where
    F: Future<Output = Result<(), WorkerError>> + Send + 'static,
    J: Job,
{
    let mut task = tokio::spawn(worker);
    tokio::select! {
        ended = &mut task => {
            // Both branches can be ready at once: a stop that was asked for finishes quickly.
            let asked = shutdown.is_cancelled();
            // The process stops: the other workers sharing `shutdown` are asked to stop too,
            // instead of running on half-staffed.
            shutdown.cancel();
            return match ended {
                Ok(Ok(())) if asked => Ok(()),
                Ok(Ok(())) => Err(anyhow!("the worker stopped without being asked to")),
                Ok(Err(error)) => Err(error).context("the worker failed"),
                Err(join) => Err(join).context("the worker panicked"),
            };
        }
        () = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(grace, &mut task).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(error))) => Err(error).context("the worker failed while stopping"),
        Ok(Err(join)) => Err(join).context("the worker panicked while stopping"),
        Err(_) => {
            task.abort();
            let _ = task.await;
            let returned = queue
                .release_all()
                .await
                .context("could not return unfinished jobs; their leases will expire")?;
            tracing::warn!(
                returned,
                grace_secs = grace.as_secs_f64(),
                "grace period over; returned unfinished jobs to the queue"
            );
            Ok(())
        }
    }
}
