//! The HTTP API (`mailroom serve`): axum routes that validate, enqueue and answer. The API never
//! sends mail itself.
//!
//! - `/v1/*` needs a bearer API key ([`auth`]); errors have one JSON shape ([`error`]);
//!   bodies are parsed into typed values first ([`extract`]).
//! - `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and `/docs` are open; `mailroom dev` adds the
//!   template previews at `/dev/preview`.

pub mod auth;
mod campaigns;
pub mod coalesce;
mod emails;
pub mod error;
mod extract;
mod health;
mod hooks;
mod imports;
pub mod inbound;
mod keys;
mod lists;
pub mod metrics;
pub mod openapi;
mod openapi_hooks;
pub(crate) mod render;
pub mod request_id;
mod schemas;
pub mod server;
mod subscribe;
mod subscribers;
mod suppressions;
pub mod tracking;
mod unsubscribe;
mod validations;
mod verify;
mod webhooks;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use mailroom_jobs::Producer;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    events::WebhookKey,
    lists::{ListStore, imports::ImportStore, links::LinkKeys},
    render::Renderer,
    store::{RateLimiter, RedisGuard, StatsStore, StatusStore, Suppressions},
    validation::{DomainChecker, Validator},
    verification::Verifications,
};
use auth::ApiKeys;
use inbound::InboundSettings;
use server::RequestLimits;

/// What every handler shares: one allocation behind a counted pointer, because axum clones the
/// state for every request (cloning the fields themselves — connections, strings, key sets —
/// cost about a twentieth of a one-click unsubscribe's CPU).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// Pushes jobs.
    pub producer: Producer,
    /// Pushes single emails together with concurrent requests' (one Redis call for many).
    pub coalescer: coalesce::Coalescer,
    /// Pushes tracking hits in batches.
    pub hits: tracking::HitRecorder,
    /// mailroom tracks opens and clicks itself (SMTP and outbox); SendGrid tracks its own.
    pub own_tracking: bool,
    /// The providers the routes name, in order, once each; their circuits are kept when there
    /// are several.
    pub providers: Vec<&'static str>,
    /// Where delivery and complaint reports received by Inbound Parse are recorded.
    pub events: crate::events::EventStore,
    /// Message status records.
    pub status: StatusStore,
    /// The operator keys (`MAILROOM_API_KEYS`); `None` accepts every request (`dev`, or
    /// `MAILROOM_INSECURE_NO_AUTH`).
    pub api_keys: Option<ApiKeys>,
    /// The stored keys, each with its own scopes.
    pub stored_keys: crate::keys::ApiKeyStore,
    /// Who did what an operator must be able to trace.
    pub audit: crate::store::audit::AuditLog,
    /// The services' webhook endpoints.
    pub hooks: crate::hooks::HookStore,
    /// The address of `MAILROOM_FROM`, which mail without a `from` is sent from.
    pub default_from: String,
    /// The largest body read, in bytes.
    pub body_limit: usize,
    /// Renders templates (`/v1/render`, previews).
    pub renderer: Arc<Renderer>,
    /// Serve `/dev/preview` (only `mailroom dev`).
    pub previews: bool,
    /// The key prefix, for the operator views (`/metrics`).
    pub prefix: String,
    /// Verification tokens and verified addresses.
    pub verifications: Verifications,
    /// How long a verification link works, in seconds.
    pub verify_ttl: u64,
    /// Origins a confirmed person may be sent on to.
    pub redirect_origins: Vec<String>,
    /// Shared rate limits.
    pub limits: RateLimiter,
    /// Verification requests per address and per API key, per hour.
    pub verify_rates: (u64, u64),
    /// Whether `email.verified` events are also delivered to a callback URL.
    pub callbacks: bool,
    /// Address validation's offline checks.
    pub validator: Arc<Validator>,
    /// Address validation's DNS lookups and their Redis cache.
    pub domains: DomainChecker,
    /// How the providers' webhooks are checked.
    pub webhooks: WebhookSettings,
    /// The suppression list.
    pub suppressions: Suppressions,
    /// Lists, subscribers and subscriptions.
    pub lists: ListStore,
    /// Import records.
    pub imports: ImportStore,
    /// Campaigns.
    pub campaigns: crate::campaigns::CampaignStore,
    /// The largest CSV body an import reads.
    pub import_max_bytes: u64,
    /// The keys that sign unsubscribe links (`None`: no list mail, no `/u` links).
    pub links: Option<Arc<LinkKeys>>,
    /// `MAILROOM_PUBLIC_URL`.
    pub public_url: String,
    /// How long a double opt-in link works, in seconds.
    pub optin_ttl: u64,
    /// The messages sent to each address.
    pub addresses: crate::lists::privacy::AddressIndex,
    /// Public sign-ups through the subscribe form.
    pub signups: crate::lists::signup::Signups,
    /// Categories sent even to suppressed addresses.
    pub transactional: Arc<Vec<String>>,
    /// The daily event counters.
    pub stats: StatsStore,
    /// Inbound Parse: its store and how POSTs are authenticated.
    pub inbound: InboundSettings,
    /// Whether Redis is fit to take writes (no evicting policy).
    pub guard: RedisGuard,
    /// How long a request may take and how many run at once.
    pub request_limits: RequestLimits,
    /// Work a request leaves running after its answer (an import's last batches): a stopping
    /// `serve` waits for it.
    pub background: TaskTracker,
}

/// How the providers' event webhook POSTs are checked.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The public key; `None` refuses every POST unless `insecure_unsigned`.
    pub key: Option<WebhookKey>,
    /// How far a signed timestamp may be from now, in seconds.
    pub tolerance_secs: i64,
    /// Accept unsigned POSTs (only without a key).
    pub insecure_unsigned: bool,
    /// The basic auth of Postmark's webhook URL; `None` refuses every POST.
    pub postmark: Option<(String, secrecy::SecretString)>,
    /// How Mailgun's webhooks are checked; `None` refuses every POST.
    pub mailgun: Option<MailgunHooks>,
    /// How SNS messages of SES's events are checked; `None` refuses every POST.
    pub ses: Option<Arc<crate::events::providers::sns::Verifier>>,
}

/// Mailgun's webhook signing key and the tokens it has signed.
#[derive(Debug, Clone)]
pub struct MailgunHooks {
    pub key: secrecy::SecretString,
    pub tokens: crate::events::providers::mailgun::Tokens,
}

/// Whether the API demands keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `/v1` needs one of `MAILROOM_API_KEYS`; refuse to start without any unless
    /// `MAILROOM_INSECURE_NO_AUTH=1`.
    Required,
    /// Accept everything (`mailroom dev`).
    Off,
}

impl AppState {
    /// The state made of its parts (built by the composition root, `app`).
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

/// Every route.
///
/// Long on purpose: the route table, one line per route.
pub fn router(state: AppState, pages: Router<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/emails", post(emails::send))
        .route("/v1/emails/batch", post(emails::send_batch))
        .route("/v1/emails/{id}", get(emails::status))
        .route("/v1/render", post(render::render))
        .route("/v1/verifications", post(verify::issue))
        .route("/v1/validations/email", post(validations::one))
        .route("/v1/validations/batch", post(validations::batch))
        .route("/v1/suppressions", get(suppressions::list))
        .route(
            "/v1/suppressions/{email}",
            get(suppressions::get)
                .put(suppressions::put)
                .delete(suppressions::delete),
        )
        .route("/v1/stats", get(suppressions::stats))
        .route("/v1/lists", post(lists::create).get(lists::index))
        .route(
            "/v1/lists/{id}",
            get(lists::get).patch(lists::update).delete(lists::delete),
        )
        .route("/v1/lists/{id}/subscribers", get(lists::members))
        .route("/v1/lists/{id}/count", post(lists::count))
        .route("/v1/subscribers", post(subscribers::upsert))
        .route("/v1/imports", post(imports::create))
        .route("/v1/imports/{id}", get(imports::get))
        .route("/v1/imports/{id}/errors", get(imports::errors))
        .route(
            "/v1/subscribers/{id}",
            get(subscribers::get)
                .patch(subscribers::update)
                .delete(subscribers::delete),
        )
        .route("/v1/subscribers/{id}/export", get(subscribers::export))
        .route(
            "/v1/subscribers/{id}/lists/{list}",
            axum::routing::put(subscribers::set_subscription),
        )
        .route(
            "/v1/campaigns",
            post(campaigns::create).get(campaigns::index),
        )
        .route("/v1/campaigns/{id}", get(campaigns::get))
        .route("/v1/campaigns/{id}/schedule", post(campaigns::schedule))
        .route("/v1/campaigns/{id}/pause", post(campaigns::pause))
        .route("/v1/campaigns/{id}/resume", post(campaigns::resume))
        .route("/v1/campaigns/{id}/cancel", post(campaigns::cancel))
        .route("/v1/campaigns/{id}/test", post(campaigns::test))
        .route("/v1/inbound", get(inbound::list))
        .route("/v1/inbound/{id}", get(inbound::get))
        .route("/v1/inbound/{id}/attachments/{n}", get(inbound::attachment))
        .route(
            "/v1/addresses/{email}",
            get(verify::address).delete(verify::clear),
        )
        .route("/v1/keys", post(keys::create).get(keys::index))
        .route(
            "/v1/keys/{id}",
            get(keys::get).patch(keys::update).delete(keys::revoke),
        )
        .route("/v1/keys/{id}/rotate", post(keys::rotate))
        .route("/v1/audit", get(keys::audit))
        .route("/v1/webhooks", post(hooks::create).get(hooks::index))
        .route(
            "/v1/webhooks/{id}",
            get(hooks::get).patch(hooks::update).delete(hooks::delete),
        )
        .route("/v1/webhooks/{id}/rotate", post(hooks::rotate))
        .route("/v1/webhooks/{id}/test", post(hooks::test))
        .route("/v1/webhooks/{id}/replay", post(hooks::replay))
        .route("/v1/webhooks/{id}/deliveries", get(hooks::deliveries))
        .route_layer(auth::RequireKey::new(state.clone()));
    let mut router = Router::new().merge(v1);
    if state.previews {
        router = router
            .route("/dev/preview", get(render::preview_index))
            .route("/dev/preview/{template}", get(render::preview))
            .route(
                "/dev/preview/{template}/{locale}",
                get(render::preview_frame),
            );
    }
    router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/verify", get(verify::show).post(verify::confirm))
        .route(
            "/subscribe/confirm",
            get(verify::show).post(verify::confirm),
        )
        .merge(
            Router::new()
                .route("/subscribe", post(subscribe::subscribe))
                .route("/subscribe/{list}", get(subscribe::form))
                .route("/u/{token}", get(unsubscribe::show).post(unsubscribe::act))
                .route("/t/o/{token}", get(tracking::open))
                .route("/t/c/{token}", get(tracking::click))
                .route_layer(DefaultBodyLimit::max(unsubscribe::MAX_BODY)),
        )
        .merge(webhook_routes(&state))
        .merge(pages)
        .route(
            "/openapi.json",
            get(|| async { Json(openapi::ApiDoc::openapi()) }),
        )
        .merge(SwaggerUi::new("/docs").url("/docs/openapi.json", openapi::ApiDoc::openapi()))
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(state.body_limit))
        .layer(server::Edge {
            limits: state.request_limits.clone(),
            guard: state.guard.clone(),
        })
        .with_state(state)
}

/// The providers' webhooks: each with its body limit, and its credentials checked before the
/// body is read where they are outside it.
fn webhook_routes(state: &AppState) -> Router<AppState> {
    let inbound = Router::new()
        .route("/webhooks/sendgrid/inbound", post(inbound::receive_basic))
        .route(
            "/webhooks/sendgrid/inbound/{secret}",
            post(inbound::receive_secret),
        )
        .route_layer(DefaultBodyLimit::max(inbound::MAX_INBOUND_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            inbound::require_credentials,
        ));
    let events = Router::new()
        .route(
            "/webhooks/sendgrid/events",
            post(webhooks::sendgrid::events),
        )
        .route_layer(DefaultBodyLimit::max(
            mailroom_jobs::webhooks::MAX_EVENT_BATCH_BYTES,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            webhooks::sendgrid::precheck,
        ));
    let postmark = Router::new()
        .route("/webhooks/postmark", post(webhooks::postmark::receive))
        .route_layer(DefaultBodyLimit::max(webhooks::postmark::MAX_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            webhooks::postmark::require_credentials,
        ));
    let mailgun = Router::new()
        .route("/webhooks/mailgun", post(webhooks::mailgun::receive))
        .route_layer(DefaultBodyLimit::max(webhooks::mailgun::MAX_BYTES));
    let ses = Router::new()
        .route("/webhooks/ses", post(webhooks::ses::receive))
        .route_layer(DefaultBodyLimit::max(webhooks::ses::MAX_BYTES));
    inbound
        .merge(events)
        .merge(postmark)
        .merge(mailgun)
        .merge(ses)
}

/// Serves the API on `listener` until `shutdown` is cancelled, then lets requests in flight
/// finish.
///
/// # Errors
/// When the server fails.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    pages: Router<AppState>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "API listening");
    let limits = state.request_limits.clone();
    let after = state.clone();
    server::serve_on(listener, router(state, pages), &limits, shutdown)
        .await
        .context("the HTTP server failed")?;
    after.finish(FINISH_WITHIN).await;
    Ok(())
}

/// How long a stopping `serve` waits, once its last request is answered, for what those
/// requests handed over: under the 30 s an orchestrator usually allows between SIGTERM and
/// SIGKILL, and within the tracking recorder's own 30 s of retrying.
const FINISH_WITHIN: Duration = Duration::from_secs(25);

impl AppState {
    /// Pushes what requests have handed over (tracking hits, queued emails) and lets the work
    /// they left running (imports) finish, for at most `within`; says what it gave up on.
    async fn finish(&self, within: Duration) {
        self.background.close();
        let finished = tokio::time::timeout(within, async {
            tokio::join!(
                self.hits.finish(),
                self.coalescer.finish(),
                self.background.wait()
            )
        })
        .await;
        if finished.is_err() {
            tracing::error!(
                imports = self.background.len(),
                "stopped before everything accepted was stored: tracking hits not yet pushed are lost, and an unfinished import reads `running` (run its file again)"
            );
        } else {
            tracing::info!("everything accepted is stored");
        }
    }
}
