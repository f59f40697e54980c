//! The API's state: every capability the HTTP edge and the console call, built once.

use std::{sync::Arc, time::Duration};

use mailroom_jobs::{Producer, RedisConnection};
use secrecy::ExposeSecret;
use tokio_util::task::TaskTracker;

use crate::{
    campaigns::CampaignStore,
    config::{Misconfigured, Settings},
    events::{
        WebhookKey,
        providers::{mailgun::Tokens, sns::Verifier},
    },
    http::{
        AppState, Auth, MailgunHooks, Shared, WebhookSettings, auth::ApiKeys, coalesce::Coalescer,
        inbound::InboundSettings, server::RequestLimits, tracking::HitRecorder,
    },
    inbound::InboundStore,
    lists::{
        ListStore, imports::ImportStore, links::LinkKeys, privacy::AddressIndex, signup::Signups,
    },
    render::Renderer,
    store::{RateLimiter, RedisGuard, StatsStore, StatusStore, Suppressions},
    validation::{DnsSettings, DomainChecker, Validator},
    verification::Verifications,
};

/// The API's keys, or none when `auth` is off or the operator chose to run without.
fn api_keys(settings: &Settings, auth: Auth) -> Result<Option<ApiKeys>, Misconfigured> {
    let keys = settings.api_key_list();
    match auth {
        Auth::Off => Ok(None),
        Auth::Required if !keys.is_empty() => Ok(Some(ApiKeys::new(&keys))),
        Auth::Required if settings.insecure_no_auth => {
            tracing::warn!("MAILROOM_INSECURE_NO_AUTH=1: the API accepts requests without a key");
            Ok(None)
        }
        Auth::Required => Err(Misconfigured::new(
            "no API keys: set MAILROOM_API_KEYS (comma-separated), or MAILROOM_INSECURE_NO_AUTH=1 to run without",
        )),
    }
}

fn inbound(settings: &Settings, conn: &RedisConnection, auth: Auth) -> InboundSettings {
    InboundSettings {
        store: InboundStore::new(
            conn.clone(),
            &settings.redis_prefix,
            settings.inbound_retention_secs,
            settings.inbound_stream_maxlen,
            settings.inbound_max_bytes,
        ),
        credentials: settings
            .inbound_user
            .clone()
            .zip(settings.inbound_password.clone()),
        secret: settings
            .inbound_secret
            .clone()
            .filter(|s| !s.expose_secret().is_empty()),
        open: auth == Auth::Off,
        max_attachment: settings.inbound_max_attachment_bytes,
    }
}

fn webhooks(settings: &Settings, conn: &RedisConnection) -> anyhow::Result<WebhookSettings> {
    let postmark_password =
        (settings.postmark_webhook_password.clone()).filter(|p| !p.expose_secret().is_empty());
    Ok(WebhookSettings {
        key: WebhookKey::from_settings(settings)?,
        tolerance_secs: i64::try_from(settings.webhook_tolerance_secs).unwrap_or(600),
        insecure_unsigned: settings.insecure_unsigned_webhooks,
        postmark: settings
            .postmark_webhook_user
            .clone()
            .zip(postmark_password),
        mailgun: (settings.mailgun_webhook_signing_key.clone())
            .filter(|k| !k.expose_secret().is_empty())
            .map(|key| MailgunHooks {
                key,
                tokens: Tokens::new(conn.clone(), &settings.redis_prefix),
            }),
        ses: ses_verifier(settings)?,
    })
}

/// The checker of SNS messages, when topics are named.
fn ses_verifier(settings: &Settings) -> anyhow::Result<Option<Arc<Verifier>>> {
    let topics: Vec<String> = (settings.ses_topic_arns.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if topics.is_empty() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Verifier::new(
        topics,
        settings.sns_cert_host.clone(),
    )?)))
}

/// The state for `settings` on `conn`, with whole-list reads (segment counts) spread over
/// `bulk` (none: on `conn`).
///
/// # Errors
/// When keys are required and none are configured, or a setting does not parse.
pub fn state(
    settings: &Settings,
    conn: RedisConnection,
    bulk: Vec<RedisConnection>,
    auth: Auth,
) -> anyhow::Result<AppState> {
    let prefix = &settings.redis_prefix;
    let producer = Producer::new(conn.clone(), prefix.clone())
        .with_idempotency_window(Duration::from_secs(settings.idempotency_window_secs));
    let transactional = Arc::new(settings.transactional_category_list());
    let suppressions = Suppressions::new(conn.clone(), prefix);
    let lists = ListStore::new(conn.clone(), prefix).with_bulk_reads(bulk);
    let limits = RateLimiter::new(conn.clone(), prefix.clone());
    let signups = Signups {
        lists: lists.clone(),
        suppressions: suppressions.clone(),
        limits: limits.clone(),
        producer: producer.clone(),
        optin_ttl: settings.optin_ttl,
        per_address: settings.subscribe_rate_per_address,
        per_ip: settings.subscribe_rate_per_ip,
    };
    let coalescer = Coalescer::new(
        producer.clone(),
        suppressions.clone(),
        transactional.clone(),
    );
    // The recorder first, so that no request's numbers go to the no-op one.
    crate::metrics::handle();
    Ok(AppState::new(Shared {
        api_keys: api_keys(settings, auth)?,
        stored_keys: crate::keys::ApiKeyStore::new(conn.clone(), prefix),
        audit: crate::store::audit::AuditLog::new(conn.clone(), prefix),
        hooks: super::hook_store(settings, &conn)?,
        default_from: settings.default_from()?.email.to_string(),
        hits: HitRecorder::new(producer.clone()),
        background: TaskTracker::new(),
        own_tracking: !crate::providers::route::providers_track(settings),
        providers: crate::providers::route::provider_names(settings),
        events: super::event_store(settings, &conn)?,
        coalescer,
        producer,
        status: StatusStore::new(conn.clone(), prefix, settings.timeline_max_events),
        body_limit: settings.body_limit_bytes,
        renderer: Arc::new(Renderer::from_settings(settings)?),
        previews: auth == Auth::Off,
        prefix: prefix.clone(),
        verifications: Verifications::new(conn.clone(), prefix.clone()),
        verify_ttl: settings.verify_ttl,
        redirect_origins: settings.redirect_origins(),
        limits,
        verify_rates: (
            settings.verify_rate_per_address,
            settings.verify_rate_per_key,
        ),
        callbacks: (settings.verify_callback_url.as_deref()).is_some_and(|u| !u.is_empty()),
        validator: Arc::new(Validator::from_settings(settings)),
        domains: DomainChecker::new(DnsSettings::from_settings(settings)?, conn.clone(), prefix)?,
        webhooks: webhooks(settings, &conn)?,
        suppressions,
        lists,
        imports: ImportStore::new(conn.clone(), prefix),
        campaigns: CampaignStore::new(conn.clone(), prefix, settings.campaign_retention_secs),
        import_max_bytes: settings.import_max_bytes,
        links: LinkKeys::from_settings(settings)?.map(Arc::new),
        public_url: settings.public_url.clone(),
        optin_ttl: settings.optin_ttl,
        addresses: AddressIndex::new(conn.clone(), prefix, settings.event_retention_secs),
        signups,
        transactional,
        stats: StatsStore::new(conn.clone(), prefix),
        inbound: inbound(settings, &conn, auth),
        guard: RedisGuard::new(conn, settings.allow_evicting_redis),
        request_limits: RequestLimits::new(
            Duration::from_secs(settings.request_timeout_secs),
            settings.max_requests_in_flight,
        ),
    }))
}
