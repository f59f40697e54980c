//! The worker process: one apalis worker per queue, each on mailroom's Redis backend, and the
//! supervision that turns a shutdown signal into a graceful stop.
//!
//! On SIGTERM or Ctrl-C a worker stops fetching, lets the jobs it is running finish within the
//! grace period, and hands everything else back to the queue at once: jobs it had fetched but
//! not started, and, when the grace period runs out, the jobs still running. A worker whose
//! runtime fails makes the process exit non-zero; it never exits 0 with work silently undone.

mod campaign;
mod deliver_event;
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
    CampaignJob, DeliverEvent, Job, Producer, SendEmail, SendVerification, SendgridEvents,
    TrackingHits,
};
use tokio_util::sync::CancellationToken;

use crate::{
    campaigns::{CampaignStore, Campaigner, Throttles},
    config::Settings,
    events::{EventStore, MessageIndex},
    providers::Provider,
    queue::{QueueConfig, RedisQueue},
    store::{RedisGuard, Suppressions, Verifications, health::WATCH_EVERY},
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

/// Runs the worker process (the send, verification, callback and SendGrid event queues) until `shutdown` is
/// cancelled and the stop has completed.
///
/// # Errors
/// When Redis cannot be reached at start-up, the provider is misconfigured, or a worker's
/// runtime fails.
pub async fn run(
    settings: &Settings,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    settings.check_sending()?;
    crate::metrics::handle();
    let client = settings.redis_client()?;
    let name = worker_name();
    let connect = "could not connect to Redis (is REDIS_URL right, and is Redis running?)";
    let conn = settings.redis_connection().await?;
    let guard = RedisGuard::new(conn.clone(), settings.allow_evicting_redis);
    guard.check_at_start().await?;
    crate::store::migrate::rename_old_keys(&conn, &settings.redis_prefix).await?;
    guard.watch(WATCH_EVERY, shutdown.clone());
    let event_store = EventStore::new(
        conn.clone(),
        &settings.redis_prefix,
        settings.event_retention_secs,
        settings.timeline_max_events,
    )
    .with_guards(settings.guards());
    let provider = Provider::from_settings(settings)?;
    // SendGrid tracks its own mail; mailroom tracks what it writes.
    let tracker = match provider {
        Provider::SendGrid(_) => None,
        _ => crate::tracking::Tracker::from_settings(settings, &conn)?,
    };
    if let Some(address) = settings.metrics_address()? {
        crate::metrics::serve_listener(address, shutdown.clone()).await?;
    }
    let activity = crate::store::activity::Activity::new(conn.clone(), &settings.redis_prefix);
    crate::metrics::spawn_upkeep(conn.clone(), Some(activity.clone()), shutdown.clone());
    let mailer = Arc::new(Mailer {
        activity,
        tracker,
        tracking: crate::tracking::Policy::from_settings(settings),
        unsubscribe_groups: settings.sendgrid_group_map()?,
        events: event_store.clone(),
        provider,
        default_from: settings.default_from()?,
        renderer: settings.renderer()?,
        verifications: Verifications::new(conn.clone(), settings.redis_prefix.clone()),
        public_url: settings.public_url.clone(),
        suppressions: Suppressions::new(conn.clone(), &settings.redis_prefix),
        transactional: settings.transactional_category_list(),
        announce: options.announce,
        lists: crate::lists::ListStore::new(conn.clone(), &settings.redis_prefix),
        links: settings.link_keys()?,
        unsubscribe_mailto: settings.unsubscribe_mailto.clone(),
        addresses: crate::lists::privacy::AddressIndex::new(
            conn.clone(),
            &settings.redis_prefix,
            settings.event_retention_secs,
        ),
        message_index: MessageIndex::new(
            conn.clone(),
            &settings.redis_prefix,
            settings.event_retention_secs,
        ),
    });
    let config = settings.queue_config();
    // A sent message's job record is its status (`GET /v1/emails/{id}`): it is kept as long as
    // the timeline its events build, not only the other queues' retention. Once done, it holds
    // no payload: a few hundred bytes of state, times and the provider's answer.
    let email_config = QueueConfig {
        retention: config
            .retention
            .max(Duration::from_secs(settings.event_retention_secs)),
        ..config.clone()
    };
    let emails = RedisQueue::<SendEmail>::connect(client.clone(), email_config, name.clone())
        .await
        .context(connect)?;
    let verifications =
        RedisQueue::<SendVerification>::connect(client.clone(), config.clone(), name.clone())
            .await
            .context(connect)?;
    let events = RedisQueue::<DeliverEvent>::connect(client.clone(), config.clone(), name.clone())
        .await
        .context(connect)?;
    let webhooks =
        RedisQueue::<SendgridEvents>::connect(client.clone(), config.clone(), name.clone())
            .await
            .context(connect)?;
    let tracking_queue =
        RedisQueue::<TrackingHits>::connect(client.clone(), config.clone(), name.clone())
            .await
            .context(connect)?;
    let hit_store = tracking::HitStore {
        events: event_store.clone(),
        campaigns: crate::campaigns::CampaignStore::new(
            conn.clone(),
            &settings.redis_prefix,
            settings.campaign_retention_secs,
        ),
        lists: crate::lists::ListStore::new(conn.clone(), &settings.redis_prefix),
        conn: conn.clone(),
        keys: mailroom_jobs::Keys::new(&settings.redis_prefix),
    };
    let campaign_queue =
        RedisQueue::<CampaignJob>::connect(client.clone(), config.clone(), name.clone())
            .await
            .context(connect)?;
    let campaigner = Arc::new(campaigner(settings, &conn, &mailer)?);
    let callbacks = Arc::new(Callbacks::from_settings(settings)?);
    tracing::info!(
        worker = %name,
        concurrency = options.concurrency,
        provider = mailer.provider.name(),
        campaign_concurrency = settings.campaign_concurrency,
        queues = ?[SendEmail::QUEUE, SendVerification::QUEUE, DeliverEvent::QUEUE, SendgridEvents::QUEUE, CampaignJob::QUEUE, TrackingHits::QUEUE],
        "worker started"
    );
    let stop = || -> StopSignal { shutdown.clone().cancelled_owned().map(Ok as fn(()) -> _) };
    let email_worker = email_worker(&name, &emails, mailer.clone(), options, stop());
    let verification_worker = verification_worker(&name, &verifications, mailer, options, stop());
    let event_worker = event_worker(&name, &events, callbacks, options, stop());
    let webhook_worker = webhook_worker(&name, &webhooks, event_store, options, stop());
    let tracking_worker = tracking_worker(&name, &tracking_queue, hit_store, options, stop());
    let campaign_options = WorkerOptions {
        concurrency: settings.campaign_concurrency.max(1),
        ..options
    };
    let campaign_worker =
        campaign_worker(&name, &campaign_queue, campaigner, campaign_options, stop());
    // Both run to their end: when one fails it cancels `shutdown`, and the other then stops
    // gracefully and hands its jobs back instead of being cut off.
    let (email, verification, event, webhook, campaign, hits) = tokio::join!(
        supervise(email_worker, &emails, &shutdown, options.grace),
        supervise(
            verification_worker,
            &verifications,
            &shutdown,
            options.grace
        ),
        supervise(event_worker, &events, &shutdown, options.grace),
        supervise(webhook_worker, &webhooks, &shutdown, options.grace),
        supervise(campaign_worker, &campaign_queue, &shutdown, options.grace),
        supervise(tracking_worker, &tracking_queue, &shutdown, options.grace),
    );
    email.context("the email worker")?;
    verification.context("the verification worker")?;
    event.context("the callback worker")?;
    webhook.context("the SendGrid event worker")?;
    campaign.context("the campaign worker")?;
    hits.context("the tracking worker")?;
    tracing::info!(worker = %name, "worker stopped");
    Ok(())
}

/// The campaign runner of a worker process, sharing the send worker's provider.
fn campaigner(
    settings: &Settings,
    conn: &mailroom_jobs::RedisConnection,
    mailer: &Mailer,
) -> anyhow::Result<Campaigner> {
    let prefix = &settings.redis_prefix;
    Ok(Campaigner {
        store: CampaignStore::new(conn.clone(), prefix, settings.campaign_retention_secs),
        lists: crate::lists::ListStore::new(conn.clone(), prefix),
        suppressions: Suppressions::new(conn.clone(), prefix),
        producer: Producer::new(conn.clone(), prefix.clone()),
        renderer: Arc::new(mailer.renderer.clone()),
        provider: mailer.provider.clone(),
        activity: mailer.activity.clone(),
        default_from: mailer.default_from.clone(),
        links: mailer.links.clone(),
        public_url: settings.public_url.clone(),
        unsubscribe_mailto: settings.unsubscribe_mailto.clone(),
        throttles: Throttles::new(
            conn.clone(),
            prefix,
            Some(settings.provider_rate),
            &settings.domain_rate_list()?,
            &settings.domain_connection_list()?,
        ),
        parallel_sends: settings.smtp_pool_size.max(1),
        events: mailer.events.clone(),
        tracker: mailer.tracker.clone(),
        tracking: mailer.tracking.clone(),
        unsubscribe_groups: mailer.unsubscribe_groups.clone(),
        prepared: std::sync::Mutex::default(),
    })
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
    queue: &RedisQueue<SendgridEvents>,
    store: EventStore,
    options: WorkerOptions,
    stop: StopSignal,
) -> WorkerRun {
    worker!(
        SendgridEvents,
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
