//! The composition root: the one module that knows every capability. It checks the settings
//! each capability parses, builds the capabilities once for `serve`, `work` and `dev`, and
//! hands them to the HTTP edge ([`crate::http`], [`crate::console`]) and the workers
//! ([`crate::worker`]). Nothing below imports it (`tests/layers.rs`).

mod api;
mod workers;

use std::sync::Arc;

use anyhow::Context;
use mailroom_jobs::RedisConnection;
use tokio_util::sync::CancellationToken;

use crate::{
    campaigns::{CampaignStore, Engagement, Guards},
    config::{Misconfigured, Settings},
    events::{EventStore, WebhookKey},
    http::{self, AppState, Auth},
    lists::{ListStore, events::Unsubscribes, links::LinkKeys},
    providers::{Routes, dkim::DkimKeys},
    render::Renderer,
    store::{RedisGuard, health::WATCH_EVERY},
    validation::DnsSettings,
};

pub use api::state;
pub use workers::work;

/// Parses every setting a capability reads beyond [`Settings::load`]'s own checks, so that a
/// bad value stops any command at start-up with exit code 2, naming the variable.
///
/// # Errors
/// [`Misconfigured`], naming the setting.
pub fn check(settings: &Settings) -> Result<(), Misconfigured> {
    DnsSettings::from_settings(settings)?;
    WebhookKey::from_settings(settings)?;
    LinkKeys::from_settings(settings)?;
    DkimKeys::from_settings(settings)?;
    crate::campaigns::throttle::domain_limits(settings)?;
    Ok(())
}

/// Checks what sending needs: the provider's settings and the templates (default locale, brand
/// logo). The workers send; `serve` checks it too, so that an API whose mail no worker could
/// send refuses to start instead of accepting it.
///
/// # Errors
/// [`Misconfigured`], naming the setting.
pub fn check_sending(settings: &Settings) -> Result<(), Misconfigured> {
    Routes::from_settings(settings, None)?;
    Renderer::from_settings(settings)?;
    Ok(())
}

/// Where provider events land: timelines, statuses, stats, suppressions, and, through the
/// followers, list unsubscribes, campaign engagement and the services' webhooks.
fn event_store(settings: &Settings, conn: &RedisConnection) -> anyhow::Result<EventStore> {
    let publisher = publisher(settings, conn)?;
    Ok(events(
        conn,
        &settings.redis_prefix,
        (settings.event_retention_secs, settings.timeline_max_events),
        Guards::from_settings(settings),
    )
    .with_follower(Arc::new(publisher)))
}

/// What queues events for the services' webhook endpoints.
fn publisher(
    settings: &Settings,
    conn: &RedisConnection,
) -> Result<crate::hooks::publish::Publisher, crate::config::Misconfigured> {
    Ok(crate::hooks::publish::Publisher::new(
        hook_store(settings, conn)?,
        mailroom_jobs::Producer::new(conn.clone(), settings.redis_prefix.clone()),
    ))
}

/// The services' webhook endpoints, their secrets derived from the signing key (if set).
fn hook_store(
    settings: &Settings,
    conn: &RedisConnection,
) -> Result<crate::hooks::HookStore, crate::config::Misconfigured> {
    let signing = (settings.webhook_signing_key.clone())
        .map(crate::hooks::secret::SigningKey::new)
        .transpose()
        .map_err(crate::config::Misconfigured::new)?;
    Ok(crate::hooks::HookStore::new(
        conn.clone(),
        &settings.redis_prefix,
        signing,
        webhook_reach(settings),
    ))
}

/// What the operator lets webhook endpoints reach.
fn webhook_reach(settings: &Settings) -> crate::hooks::target::Reach {
    crate::hooks::target::Reach {
        http: settings.webhooks_allow_http,
        private: settings.webhooks_allow_private,
    }
}

/// The event store under `prefix`, keeping timelines `keep.0` seconds and `keep.1` events,
/// followed by lists (unsubscribes) and campaigns (engagement, paused by `guards`).
pub fn events(
    conn: &RedisConnection,
    prefix: &str,
    keep: (u64, usize),
    guards: Guards,
) -> EventStore {
    let lists = ListStore::new(conn.clone(), prefix);
    // Engagement uses no retention of its own: it only counts on campaigns that exist.
    let campaigns = CampaignStore::new(conn.clone(), prefix, 0);
    EventStore::new(conn.clone(), prefix, keep.0, keep.1)
        .with_follower(Arc::new(Unsubscribes(lists)))
        .with_follower(Arc::new(Engagement {
            store: campaigns,
            guards,
        }))
}

/// Refuses a Redis that may evict, renames keys of older versions, and has `guard` watch the
/// policy from then on.
async fn prepare_redis(
    settings: &Settings,
    conn: &RedisConnection,
    guard: RedisGuard,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    guard.check_at_start().await?;
    crate::store::migrate::rename_old_keys(conn, &settings.redis_prefix).await?;
    guard.watch(WATCH_EVERY, shutdown.clone());
    Ok(())
}

/// Binds `settings.listen` and serves the API until `shutdown`.
///
/// # Errors
/// When the address cannot be bound, Redis cannot be reached, or keys are missing.
pub async fn serve(
    settings: &Settings,
    auth: Auth,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let address = settings.listen_address()?;
    check_sending(settings)?;
    let conn = settings.redis_connection().await?;
    let bulk = vec![
        settings.redis_connection().await?,
        settings.redis_connection().await?,
    ];
    let state = state(settings, conn.clone(), bulk, auth)?;
    prepare_redis(settings, &conn, state.guard.clone(), &shutdown).await?;
    crate::metrics::spawn_upkeep(conn, None, shutdown.clone());
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("could not listen on {address}"))?;
    serve_on(listener, state, shutdown).await
}

/// Serves the API and the console on `listener` until `shutdown`, then lets requests in
/// flight finish.
///
/// # Errors
/// When the server fails.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pages = crate::console::routes(&state);
    http::serve_on(listener, state, pages, shutdown).await
}
