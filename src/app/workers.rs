//! A worker process's parts: the provider, the renderer and every store the job handlers use,
//! built once and shared by the workers of every queue.

use std::{sync::Arc, time::Duration};

use mailroom_jobs::{Keys, Producer, RedisConnection};
use tokio_util::sync::CancellationToken;

use crate::{
    campaigns::{CampaignStore, Campaigner, Throttles},
    config::{MailKind, Settings},
    events::{EventStore, MessageIndex},
    lists::{ListStore, links::LinkKeys, privacy::AddressIndex},
    providers::{
        Provider, Routes,
        route::{TryLog, providers_track},
    },
    queue::QueueConfig,
    render::Renderer,
    store::{RedisGuard, Suppressions, activity::Activity},
    tracking::{Policy, Tracker},
    verification::Verifications,
    worker::{self, Callbacks, Handlers, Mailer, Queues, WorkerOptions, tracking::HitStore},
};

/// Runs a worker process (every queue) until `shutdown` is cancelled and the stop has
/// completed.
///
/// # Errors
/// When Redis cannot be reached at start-up, the provider is misconfigured, or a worker's
/// runtime fails.
pub async fn work(
    settings: &Settings,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    super::check_sending(settings)?;
    crate::metrics::handle();
    let client = settings.redis_client()?;
    let conn = settings.redis_connection().await?;
    let guard = RedisGuard::new(conn.clone(), settings.allow_evicting_redis);
    super::prepare_redis(settings, &conn, guard, &shutdown).await?;
    if let Some(address) = settings.metrics_address()? {
        crate::http::metrics::serve_listener(address, shutdown.clone()).await?;
    }
    let activity = Activity::new(conn.clone(), &settings.redis_prefix);
    crate::metrics::spawn_upkeep(conn.clone(), Some(activity.clone()), shutdown.clone());
    let events = super::event_store(settings, &conn)?;
    let mailer = Arc::new(mailer(settings, &conn, activity, events.clone(), options)?);
    let rate = provider_rate(settings, &mailer.routes).await;
    let campaigner = Arc::new(campaigner(settings, &conn, &mailer, rate)?);
    let handlers = Handlers {
        hits: HitStore {
            events: events.clone(),
            campaigns: CampaignStore::new(
                conn.clone(),
                &settings.redis_prefix,
                settings.campaign_retention_secs,
            ),
            lists: ListStore::new(conn.clone(), &settings.redis_prefix),
            conn: conn.clone(),
            keys: Keys::new(&settings.redis_prefix),
        },
        mailer,
        campaigner,
        callbacks: Arc::new(Callbacks::from_settings(settings)?),
        events,
        hooks: Arc::new(crate::hooks::deliver::Deliverer::new(
            super::hook_store(settings, &conn)?,
            super::webhook_reach(settings),
        )?),
    };
    let config = QueueConfig::from_settings(settings);
    // A sent message's job record is its status (`GET /v1/emails/{id}`): it is kept as long as
    // the timeline its events build, not only the other queues' retention. Once done, it holds
    // no payload: a few hundred bytes of state, times and the provider's answer.
    let email_config = QueueConfig {
        retention: config
            .retention
            .max(Duration::from_secs(settings.event_retention_secs)),
        on_dead: Some(worker::dead_mail::tell_services(
            conn.clone(),
            &settings.redis_prefix,
        )),
        ..config.clone()
    };
    let relaying = relay(settings, &conn, &client, &shutdown)?;
    let queues = Queues {
        client,
        config,
        email_config,
    };
    let campaigns = settings.campaign_concurrency;
    let ran = worker::run(queues, handlers, options, campaigns, shutdown.clone()).await;
    // The workers have stopped, however they ended: so does the relay.
    shutdown.cancel();
    relaying.await?;
    ran
}

/// Starts relaying the notices stream's events to the webhook endpoints, until `shutdown`.
fn relay(
    settings: &Settings,
    conn: &RedisConnection,
    client: &mailroom_jobs::RedisClient,
    shutdown: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let relay = crate::hooks::relay::Relay::new(
        crate::store::notices::Notices::new(conn.clone(), &settings.redis_prefix),
        super::publisher(settings, conn)?,
    );
    let consumer = worker::worker_name();
    Ok(tokio::spawn(relay.run(
        client.clone(),
        consumer,
        shutdown.clone(),
    )))
}

/// The sender of single emails and verification emails.
fn mailer(
    settings: &Settings,
    conn: &RedisConnection,
    activity: Activity,
    events: EventStore,
    options: WorkerOptions,
) -> anyhow::Result<Mailer> {
    let prefix = &settings.redis_prefix;
    let routes = Routes::from_settings(settings, Some(conn))?.with_activity(&activity);
    // SendGrid tracks its own mail; mailroom tracks what it writes.
    let tracker = match providers_track(settings) {
        true => None,
        false => Tracker::from_settings(settings, conn)?,
    };
    Ok(Mailer {
        activity,
        tracker,
        tracking: Policy::from_settings(settings),
        unsubscribe_groups: settings.sendgrid_group_map()?,
        events,
        routes,
        tries: TryLog::new(conn.clone(), prefix, settings.event_retention_secs),
        default_from: settings.default_from()?,
        renderer: Renderer::from_settings(settings)?,
        verifications: Verifications::new(conn.clone(), prefix.clone()),
        public_url: settings.public_url.clone(),
        suppressions: Suppressions::new(conn.clone(), prefix),
        transactional: settings.transactional_category_list(),
        announce: options.announce,
        lists: ListStore::new(conn.clone(), prefix),
        links: LinkKeys::from_settings(settings)?,
        unsubscribe_mailto: settings.unsubscribe_mailto.clone(),
        addresses: AddressIndex::new(conn.clone(), prefix, settings.event_retention_secs),
        message_index: MessageIndex::new(conn.clone(), prefix, settings.event_retention_secs),
    })
}

/// Campaign recipients a second across every worker: `MAILROOM_PROVIDER_RATE`, else, when
/// the bulk route starts with Amazon SES, the account's maximum send rate (`GetAccount`), so
/// campaigns do not run into SES's throttling (0: no limit of mailroom's own).
async fn provider_rate(settings: &Settings, routes: &Routes) -> u32 {
    if settings.provider_rate > 0 {
        return settings.provider_rate;
    }
    let no_categories: [String; 0] = [];
    let Some(Provider::Ses(ses)) = routes.route(MailKind::Bulk, &no_categories).first() else {
        return 0;
    };
    match tokio::time::timeout(Duration::from_secs(5), ses.account()).await {
        Ok(Ok(account)) => {
            let rate = account.send_quota.map_or(0.0, |q| q.max_send_rate);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let rate = rate.floor().clamp(0.0, f64::from(u32::MAX)) as u32;
            tracing::info!(rate, "campaigns paced at Amazon SES's maximum send rate");
            rate
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not read Amazon SES's send rate; campaigns unpaced");
            0
        }
        Err(_) => {
            tracing::warn!("Amazon SES did not say its send rate within 5 s; campaigns unpaced");
            0
        }
    }
}

/// The campaign runner of a worker process, sharing the send worker's provider, pacing
/// campaigns at `rate` recipients a second (0: unpaced).
fn campaigner(
    settings: &Settings,
    conn: &RedisConnection,
    mailer: &Mailer,
    rate: u32,
) -> anyhow::Result<Campaigner> {
    let prefix = &settings.redis_prefix;
    let (rates, connections) = crate::campaigns::throttle::domain_limits(settings)?;
    Ok(Campaigner {
        store: CampaignStore::new(conn.clone(), prefix, settings.campaign_retention_secs),
        lists: ListStore::new(conn.clone(), prefix),
        suppressions: Suppressions::new(conn.clone(), prefix),
        producer: Producer::new(conn.clone(), prefix.clone()),
        renderer: Arc::new(mailer.renderer.clone()),
        routes: mailer.routes.clone(),
        activity: mailer.activity.clone(),
        default_from: mailer.default_from.clone(),
        links: mailer.links.clone(),
        public_url: settings.public_url.clone(),
        unsubscribe_mailto: settings.unsubscribe_mailto.clone(),
        throttles: Throttles::new(conn.clone(), prefix, Some(rate), &rates, &connections),
        parallel_sends: settings.smtp_pool_size.max(1),
        events: mailer.events.clone(),
        tracker: mailer.tracker.clone(),
        tracking: mailer.tracking.clone(),
        unsubscribe_groups: mailer.unsubscribe_groups.clone(),
        prepared: std::sync::Mutex::default(),
    })
}
