//! Typed settings: compiled defaults, then an optional TOML file (`--config`), then the
//! environment (`REDIS_URL` and `MAILROOM_*`, named as the file's keys in upper case).
//!
//! Everything is checked here, at start-up, so that a bad value stops the process with a
//! message naming the setting rather than surfacing later as a failed job.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use secrecy::SecretString;
use serde::Deserialize;

/// How long one Redis command may take before it counts as failed. redis-rs's default, 500 ms,
/// cut pushes that Redis went on to apply (seen with `appendfsync always` on a busy machine:
/// 2 of 76 such 503s were sent); two seconds makes that rarer, and the 503 that remains says the
/// email may be queued and that a retry with the same Idempotency-Key is safe.
pub const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A setting, or the Redis a setting points at, that a process refuses to start with. `main`
/// exits with code 2 for it, like for any other configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Misconfigured(String);

impl Misconfigured {
    /// The refusal, in words that name the setting.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<anyhow::Error> for Misconfigured {
    fn from(error: anyhow::Error) -> Self {
        Self(format!("{error:#}"))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Which provider sends email.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ProviderKind {
    /// SendGrid's v3 HTTP API.
    Sendgrid,
    /// Postmark's HTTP API.
    Postmark,
    /// Mailgun's HTTP API.
    Mailgun,
    /// Amazon SES's API v2.
    Ses,
    /// An SMTP relay.
    Smtp,
    /// `.eml` files in `MAILROOM_OUTBOX_DIR`.
    #[default]
    Outbox,
}

/// One of `choices` (names in lower case), whatever the case of `value`; else an error that
/// lists them.
fn one_of<T: Copy>(
    what: &'static str,
    value: &str,
    choices: &[(&str, T)],
) -> Result<T, NotAChoice> {
    let wanted = value.trim().to_ascii_lowercase();
    choices
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, choice)| *choice)
        .ok_or_else(|| NotAChoice {
            value: value.to_owned(),
            what,
            choices: choices
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A setting's value that is none of its choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not {what}: use one of {choices}")]
pub struct NotAChoice {
    value: String,
    what: &'static str,
    choices: String,
}

impl TryFrom<String> for LogFormat {
    type Error = NotAChoice;

    fn try_from(value: String) -> Result<Self, NotAChoice> {
        one_of(
            "a log format",
            &value,
            &[("human", Self::Human), ("json", Self::Json)],
        )
    }
}

impl TryFrom<String> for ProviderKind {
    type Error = NotAChoice;

    fn try_from(value: String) -> Result<Self, NotAChoice> {
        one_of(
            "a provider",
            &value,
            &[
                ("sendgrid", Self::Sendgrid),
                ("postmark", Self::Postmark),
                ("mailgun", Self::Mailgun),
                ("ses", Self::Ses),
                ("smtp", Self::Smtp),
                ("outbox", Self::Outbox),
            ],
        )
    }
}

/// Settings read from the environment without the `MAILROOM_` prefix.
const UNPREFIXED: [&str; 16] = [
    "REDIS_URL",
    "SENDGRID_API_KEY",
    "SENDGRID_API_URL",
    "POSTMARK_SERVER_TOKEN",
    "POSTMARK_API_URL",
    "MAILGUN_API_KEY",
    "MAILGUN_DOMAIN",
    "MAILGUN_API_URL",
    "MAILGUN_WEBHOOK_SIGNING_KEY",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "SES_ENDPOINT_URL",
    "SES_CONFIGURATION_SET",
    "SMTP_URL",
];

/// `MAILROOM_` variables that are not settings but are read elsewhere: the config file's path
/// (`--config`), and what the benchmarks and the tests read.
const NOT_SETTINGS: [&str; 3] = ["MAILROOM_CONFIG", "MAILROOM_BIN", "MAILROOM_TEST_REDIS_URL"];

/// The environment variable that sets `field`, as a person types it: `MAILROOM_PROVIDER`,
/// or `REDIS_URL` for the few read without the prefix.
pub fn env_name(field: &str) -> String {
    let upper = field.to_ascii_uppercase();
    if UNPREFIXED.contains(&upper.as_str()) {
        upper
    } else {
        format!("MAILROOM_{upper}")
    }
}

/// The URL a browser on this machine reaches a server listening on `listen` at (an address
/// of every interface is reached at the loopback one).
fn local_url_of(listen: &str) -> String {
    let local = match listen.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => listen.to_owned(),
    };
    format!("http://{local}")
}

/// A figment error in the user's words: each setting named as its environment variable (and
/// its key in a config file), with what is wrong with the value.
fn explain(error: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = error
        .into_iter()
        .map(|e| {
            let what = match &e.kind {
                figment::error::Kind::Message(message) => message.clone(),
                figment::error::Kind::InvalidType(actual, expected)
                | figment::error::Kind::InvalidValue(actual, expected) => {
                    format!("{actual} is not {expected}")
                }
                other => other.to_string(),
            };
            match e.path.first() {
                Some(field) => {
                    let field = field.to_ascii_lowercase();
                    let from_file = e.metadata.as_ref().is_some_and(|m| m.name.contains("TOML"));
                    if from_file {
                        format!("`{field}` in the config file: {what}")
                    } else {
                        format!("{}: {what}", env_name(&field))
                    }
                }
                None => what,
            }
        })
        .collect();
    anyhow::anyhow!("invalid configuration: {}", lines.join("; "))
}

/// Every setting mailroom reads. See docs/configuration.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `REDIS_URL`: the Redis to use. May hold a password, so it is kept secret.
    pub redis_url: SecretString,
    /// `MAILROOM_REDIS_PREFIX`: the prefix of every key mailroom stores.
    pub redis_prefix: String,
    /// `MAILROOM_CONCURRENCY`: jobs in flight per worker process.
    pub concurrency: usize,
    /// `MAILROOM_LOG_FORMAT`: `human` or `json`.
    pub log_format: LogFormat,
    /// `MAILROOM_LEASE_SECS`: how soon the jobs of a killed worker are taken over.
    pub lease_secs: u64,
    /// `MAILROOM_FETCH_BATCH`: jobs leased per fetch.
    pub fetch_batch: usize,
    /// `MAILROOM_MAX_ATTEMPTS`: runs before a failing job is dead-lettered (a job may set its own).
    pub max_attempts: u32,
    /// `MAILROOM_BACKOFF_BASE_MS`: the first retry's delay ceiling; doubles per attempt.
    pub backoff_base_ms: u64,
    /// `MAILROOM_BACKOFF_CAP_SECS`: the longest retry delay.
    pub backoff_cap_secs: u64,
    /// `MAILROOM_RETENTION_SECS`: how long finished jobs' records are kept.
    pub retention_secs: u64,
    /// `MAILROOM_DEAD_RETENTION_SECS`: how long dead letters are kept.
    pub dead_retention_secs: u64,
    /// `MAILROOM_IDEMPOTENCY_WINDOW_SECS`: how long an idempotency key answers for later pushes.
    pub idempotency_window_secs: u64,
    /// `MAILROOM_JOB_TIMEOUT_SECS`: a run taking longer fails (and is retried).
    pub job_timeout_secs: u64,
    /// `MAILROOM_SHUTDOWN_GRACE_SECS`: how long a stopping worker lets running jobs finish.
    pub shutdown_grace_secs: u64,
    /// `MAILROOM_LISTEN` (or `PORT`, as `0.0.0.0:PORT`): the HTTP listen address.
    pub listen: String,
    /// `MAILROOM_PUBLIC_URL`: the base of links put in emails; when not set, `http://` and the
    /// listen address (loopback for an address of every interface).
    pub public_url: String,
    /// `MAILROOM_API_KEYS`: comma-separated bearer keys accepted on `/v1`.
    pub api_keys: Option<SecretString>,
    /// `MAILROOM_INSECURE_NO_AUTH`: let `serve` run without API keys.
    #[serde(deserialize_with = "flag")]
    pub insecure_no_auth: bool,
    /// `MAILROOM_BODY_LIMIT_BYTES`: the largest request body the API reads.
    pub body_limit_bytes: usize,
    /// `MAILROOM_PROVIDER`: `sendgrid`, `postmark`, `mailgun`, `ses`, `smtp` or `outbox`.
    pub provider: ProviderKind,
    /// `MAILROOM_ROUTES`: each kind of mail's providers, tried in order.
    pub routes: RouteTable,
    /// `MAILROOM_ROUTE_CATEGORIES`: categories whose mail goes as another kind.
    pub route_categories: RouteCategories,
    /// `MAILROOM_FAILOVER_AFTER`: seconds a rate-limited provider is waited for before its mail
    /// goes to the next provider of its route.
    pub failover_after: u64,
    /// `MAILROOM_FROM`: the default sender, `Name <addr>`.
    pub from: String,
    /// `SENDGRID_API_KEY`.
    pub sendgrid_api_key: Option<SecretString>,
    /// `SENDGRID_API_URL`: the API's base.
    pub sendgrid_api_url: String,
    /// `POSTMARK_SERVER_TOKEN`: the token of the Postmark server that sends.
    pub postmark_server_token: Option<SecretString>,
    /// `POSTMARK_API_URL`: the API's base.
    pub postmark_api_url: String,
    /// `MAILROOM_POSTMARK_MESSAGE_STREAM`: the stream of single (transactional) mail.
    pub postmark_message_stream: String,
    /// `MAILROOM_POSTMARK_BROADCAST_STREAM`: the stream of campaign mail.
    pub postmark_broadcast_stream: String,
    /// `MAILGUN_API_KEY`: the Mailgun account's sending key.
    pub mailgun_api_key: Option<SecretString>,
    /// `MAILGUN_DOMAIN`: the Mailgun sending domain.
    pub mailgun_domain: Option<String>,
    /// `MAILGUN_API_URL`: the API's base (`https://api.eu.mailgun.net` for the EU region).
    pub mailgun_api_url: String,
    /// `MAILGUN_WEBHOOK_SIGNING_KEY`: checks the signature of `POST /webhooks/mailgun`.
    pub mailgun_webhook_signing_key: Option<SecretString>,
    /// `AWS_REGION`: the region of Amazon SES (`eu-west-1`).
    pub aws_region: Option<String>,
    /// `AWS_ACCESS_KEY_ID`: the key that signs requests to Amazon SES.
    pub aws_access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`: its secret.
    pub aws_secret_access_key: Option<SecretString>,
    /// `AWS_SESSION_TOKEN`: the session token of temporary credentials.
    pub aws_session_token: Option<SecretString>,
    /// `SES_ENDPOINT_URL`: the SES API's base; unset, `https://email.{region}.amazonaws.com`.
    pub ses_endpoint_url: Option<String>,
    /// `SES_CONFIGURATION_SET`: the configuration set every SES send names (its event
    /// destinations publish to the SNS topic of `POST /webhooks/ses`).
    pub ses_configuration_set: Option<String>,
    /// `MAILROOM_SES_TOPIC_ARNS`: comma-separated SNS topics `POST /webhooks/ses` accepts
    /// (a signature only proves that SNS sent it, not that the topic is yours).
    pub ses_topic_arns: String,
    /// `MAILROOM_SNS_CERT_HOST`: one more host (`host:port`) signing certificates and
    /// subscription confirmations may come from, over plain HTTP too: for tests only.
    pub sns_cert_host: Option<String>,
    /// `MAILROOM_POSTMARK_WEBHOOK_USER` / `MAILROOM_POSTMARK_WEBHOOK_PASSWORD`: the basic auth
    /// Postmark's webhook URL carries (`https://user:password@host/webhooks/postmark`).
    pub postmark_webhook_user: Option<String>,
    /// See `postmark_webhook_user`.
    pub postmark_webhook_password: Option<SecretString>,
    /// `SMTP_URL`: `smtp://`, `smtp+starttls://` or `smtps://`, credentials in the URL.
    pub smtp_url: Option<SecretString>,
    /// `MAILROOM_OUTBOX_DIR`: where the outbox provider writes `.eml` files.
    pub outbox_dir: PathBuf,
    /// `MAILROOM_DEFAULT_LOCALE`: the locale when a job names none or an unknown one.
    pub default_locale: String,
    /// `MAILROOM_BRAND_NAME`: the name in every email's header and footer.
    pub brand_name: String,
    /// `MAILROOM_BRAND_LOGO_URL`: a logo for the header (the name is shown without one).
    pub brand_logo_url: Option<String>,
    /// `MAILROOM_POSTAL_ADDRESS`: the sender's postal address, in every footer.
    pub postal_address: String,
    /// `MAILROOM_VERIFY_TTL`: how long a verification link works, in seconds.
    pub verify_ttl: u64,
    /// `MAILROOM_VERIFY_CALLBACK_URL`: where `email.verified` events are POSTed, signed.
    pub verify_callback_url: Option<String>,
    /// `MAILROOM_CALLBACK_SECRET`: the HMAC-SHA256 key of those POSTs.
    pub callback_secret: Option<SecretString>,
    /// `MAILROOM_WEBHOOK_SIGNING_KEY`: the key each webhook endpoint's secret is derived from
    /// (at least 32 characters); without it no endpoint can be made.
    pub webhook_signing_key: Option<SecretString>,
    /// `MAILROOM_WEBHOOKS_ALLOW_HTTP`: let webhook endpoints be `http://` URLs.
    #[serde(deserialize_with = "flag")]
    pub webhooks_allow_http: bool,
    /// `MAILROOM_WEBHOOKS_ALLOW_PRIVATE`: let webhook endpoints reach loopback, private and
    /// link-local addresses.
    #[serde(deserialize_with = "flag")]
    pub webhooks_allow_private: bool,
    /// `MAILROOM_VERIFY_RATE_PER_ADDRESS`: verification requests per address per hour.
    pub verify_rate_per_address: u64,
    /// `MAILROOM_VERIFY_RATE_PER_KEY`: verification requests per API key per hour.
    pub verify_rate_per_key: u64,
    /// `MAILROOM_ALLOWED_REDIRECT_ORIGINS`: comma-separated origins a confirmed person may be
    /// sent on to (`https://app.example.com`).
    pub allowed_redirect_origins: String,
    /// `MAILROOM_DNS_RESOLVER`: the DNS server address validation asks (`ip` or `ip:port`);
    /// unset, the system's (`/etc/resolv.conf`).
    pub dns_resolver: Option<String>,
    /// `MAILROOM_DNS_TIMEOUT_MS`: how long one DNS lookup may take before it counts as unanswered.
    pub dns_timeout_ms: u64,
    /// `MAILROOM_DNS_CACHE_SECS`: how long a domain that accepts mail stays cached in Redis.
    pub dns_cache_secs: u64,
    /// `MAILROOM_DNS_NEGATIVE_CACHE_SECS`: how long a domain that does not stays cached.
    pub dns_negative_cache_secs: u64,
    /// `MAILROOM_DISPOSABLE_ALLOW`: comma-separated domains never treated as disposable.
    pub disposable_allow: String,
    /// `MAILROOM_DISPOSABLE_DENY`: comma-separated domains treated as disposable, on top of the
    /// compiled-in list.
    pub disposable_deny: String,
    /// `MAILROOM_SENDGRID_WEBHOOK_KEY`: the Event Webhook's public key (base64 DER, from
    /// SendGrid's settings); POSTs must carry a valid signature.
    pub sendgrid_webhook_key: Option<String>,
    /// `MAILROOM_INSECURE_UNSIGNED_WEBHOOKS`: accept unsigned event POSTs when no key is set.
    #[serde(deserialize_with = "flag")]
    pub insecure_unsigned_webhooks: bool,
    /// `MAILROOM_WEBHOOK_TOLERANCE_SECS`: how far a signed timestamp may be from now.
    pub webhook_tolerance_secs: u64,
    /// `MAILROOM_EVENT_RETENTION_SECS`: how long timelines and delivery statuses are kept.
    pub event_retention_secs: u64,
    /// `MAILROOM_TRANSACTIONAL_CATEGORIES`: comma-separated categories sent even to suppressed
    /// addresses (password resets, security alerts).
    pub transactional_categories: String,
    /// `MAILROOM_INBOUND_USER` / `MAILROOM_INBOUND_PASSWORD`: basic auth of the Inbound Parse URL.
    pub inbound_user: Option<String>,
    /// See `inbound_user`.
    pub inbound_password: Option<SecretString>,
    /// `MAILROOM_INBOUND_SECRET`: a secret path segment (`/webhooks/sendgrid/inbound/{secret}`).
    pub inbound_secret: Option<SecretString>,
    /// `MAILROOM_INBOUND_MAX_ATTACHMENT_BYTES`: attachments larger than this are described but
    /// their bodies not stored.
    pub inbound_max_attachment_bytes: usize,
    /// `MAILROOM_INBOUND_STREAM_MAXLEN`: about how many messages `{prefix}:inbound` keeps.
    pub inbound_stream_maxlen: usize,
    /// `MAILROOM_INBOUND_RETENTION_SECS`: how long inbound messages and attachments are kept.
    pub inbound_retention_secs: u64,
    /// `MAILROOM_INBOUND_MAX_BYTES`: the total budget for stored inbound mail; past it,
    /// messages are still stored but their bodies and attachments are described, not kept.
    pub inbound_max_bytes: u64,
    /// `MAILROOM_TIMELINE_MAX_EVENTS`: the newest events kept on each message's timeline.
    pub timeline_max_events: usize,
    /// `MAILROOM_ALLOW_EVICTING_REDIS`: start even when Redis's `maxmemory-policy` may evict
    /// keys (it deletes queued mail silently; only for a Redis that holds nothing else of value).
    #[serde(deserialize_with = "flag")]
    pub allow_evicting_redis: bool,
    /// `MAILROOM_REQUEST_TIMEOUT_SECS`: the longest one request may take, headers, body and
    /// handler together (408 past it).
    pub request_timeout_secs: u64,
    /// `MAILROOM_MAX_REQUESTS_IN_FLIGHT`: requests handled at once; past it, 503 at once.
    pub max_requests_in_flight: usize,
    /// `MAILROOM_SMTP_POOL_SIZE`: SMTP connections a worker process keeps open at most.
    pub smtp_pool_size: usize,
    /// `MAILROOM_IMPORT_MAX_BYTES`: the largest CSV body `POST /v1/imports` reads.
    pub import_max_bytes: u64,
    /// `MAILROOM_OPTIN_TTL`: how long a double opt-in link works, in seconds.
    pub optin_ttl: u64,
    /// `MAILROOM_LINK_KEYS`: `id:secret[,id:secret…]`, the HMAC keys that sign unsubscribe
    /// links; the first signs, all verify (rotation). Secrets of at least 32 characters.
    /// Without it, `dev` makes a key for its own run and `serve` sends no list mail.
    pub link_keys: Option<SecretString>,
    /// `MAILROOM_UNSUBSCRIBE_MAILTO`: an address for `List-Unsubscribe`'s `mailto:` form.
    pub unsubscribe_mailto: Option<String>,
    /// `MAILROOM_TRACKED_CATEGORIES`: comma-separated categories whose messages are tracked
    /// (opens and clicks) unless a message says otherwise.
    pub tracked_categories: String,
    /// `MAILROOM_TRACKED_TEMPLATES`: comma-separated templates whose messages are tracked
    /// unless a message says otherwise (never one with a secret link).
    pub tracked_templates: String,
    /// `MAILROOM_SENDGRID_GROUPS`: `LIST=GROUP[,…]`, the SendGrid unsubscribe group (ASM) each
    /// list's mail is sent under through SendGrid.
    pub sendgrid_groups: String,
    /// `MAILROOM_BOUNCE_DOMAIN`: the domain of the VERP envelope sender of SMTP and outbox mail
    /// (`bounces+m-ID@DOMAIN`); point its MX at SendGrid's Inbound Parse (raw mode) and
    /// delivery and complaint reports come back as events.
    pub bounce_domain: Option<String>,
    /// `MAILROOM_METRICS_LISTEN`: where a worker process serves its own `/metrics` (and
    /// `/healthz`), e.g. `0.0.0.0:9090`; none when unset. `serve` has `/metrics` on its API.
    pub metrics_listen: Option<String>,
    /// `MAILROOM_TRACKING`: own open and click tracking of SMTP and outbox mail (campaigns by
    /// default, messages that ask); `false` turns it off everywhere. Needs link keys.
    pub tracking: bool,
    /// `MAILROOM_DKIM_KEYS`: `domain:selector:/path/key.pem[,…]` (or `domain:selector:$VAR`
    /// for a PEM in an environment variable): the keys that sign SMTP and outbox mail, the one
    /// whose domain is the From address's.
    pub dkim_keys: Option<String>,
    /// `MAILROOM_SUBSCRIBE_RATE_PER_ADDRESS`: public sign-ups per address per hour.
    pub subscribe_rate_per_address: u64,
    /// `MAILROOM_SUBSCRIBE_RATE_PER_IP`: public sign-ups per client IP per hour.
    pub subscribe_rate_per_ip: u64,
    /// `MAILROOM_CAMPAIGN_CONCURRENCY`: campaign jobs a worker process runs at once (its share
    /// for campaigns, apart from `MAILROOM_CONCURRENCY`, which serves transactional email).
    pub campaign_concurrency: usize,
    /// `MAILROOM_CAMPAIGN_RETENTION_SECS`: how long a campaign's state, audience and bitmaps
    /// are kept after it finishes or is cancelled.
    pub campaign_retention_secs: u64,
    /// `MAILROOM_PROVIDER_RATE`: campaign recipients per second across every worker (0: no
    /// limit of mailroom's own).
    pub provider_rate: u32,
    /// `MAILROOM_DOMAIN_RATES`: `domain=rate,…`, campaign recipients per second per receiving
    /// domain, over the defaults for the large mailbox providers (0 lifts one).
    pub domain_rates: String,
    /// `MAILROOM_DOMAIN_CONNECTIONS`: `domain=n,…`, SMTP connections (messages in flight) per
    /// receiving domain across every worker, over the defaults (0 lifts one).
    pub domain_connections: String,
    /// `MAILROOM_GUARD_COMPLAINT_RATE`: a campaign pauses itself when its spam reports pass this
    /// share of its deliveries (Gmail's line for bulk senders is 0.3 %).
    pub guard_complaint_rate: f64,
    /// `MAILROOM_GUARD_BOUNCE_RATE`: … or its bounces this share of its attempted deliveries.
    pub guard_bounce_rate: f64,
    /// `MAILROOM_GUARD_MIN_DELIVERIES`: the deliveries a campaign needs before its guards judge.
    pub guard_min_deliveries: u64,
}

/// A yes/no setting: `true`/`false`, `1`/`0`, `yes`/`no`.
fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Bool(b) => Ok(b),
        Raw::Int(i) => Ok(i != 0),
        Raw::Text(t) => match t.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            other => Err(serde::de::Error::custom(format!(
                "{other:?} is not a yes/no value"
            ))),
        },
    }
}

impl Default for Settings {
    /// Long on purpose: the table of defaults, one field per setting.
    fn default() -> Self {
        // The queue's settings default to `QueueConfig::default()` (a test in `queue` checks).
        Self {
            redis_url: SecretString::from("redis://127.0.0.1:6379"),
            redis_prefix: "mailroom".to_owned(),
            // Sending email is I/O-bound: most of a job is spent waiting on the provider.
            concurrency: 32,
            log_format: LogFormat::Human,
            lease_secs: 30,
            fetch_batch: 16,
            max_attempts: 10,
            backoff_base_ms: 1000,
            backoff_cap_secs: 3600,
            retention_secs: 24 * 3600,
            dead_retention_secs: 7 * 24 * 3600,
            idempotency_window_secs: 24 * 3600,
            job_timeout_secs: 120,
            shutdown_grace_secs: 30,
            listen: "127.0.0.1:8080".to_owned(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            api_keys: None,
            insecure_no_auth: false,
            body_limit_bytes: 10 * 1024 * 1024,
            provider: ProviderKind::Outbox,
            routes: RouteTable::default(),
            route_categories: RouteCategories::default(),
            failover_after: 60,
            from: "mailroom <noreply@localhost>".to_owned(),
            sendgrid_api_key: None,
            sendgrid_api_url: "https://api.sendgrid.com".to_owned(),
            postmark_server_token: None,
            postmark_api_url: "https://api.postmarkapp.com".to_owned(),
            postmark_message_stream: "outbound".to_owned(),
            postmark_broadcast_stream: "broadcast".to_owned(),
            mailgun_api_key: None,
            mailgun_domain: None,
            mailgun_api_url: "https://api.mailgun.net".to_owned(),
            mailgun_webhook_signing_key: None,
            aws_region: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_session_token: None,
            ses_endpoint_url: None,
            ses_configuration_set: None,
            ses_topic_arns: String::new(),
            sns_cert_host: None,
            postmark_webhook_user: None,
            postmark_webhook_password: None,
            smtp_url: None,
            outbox_dir: PathBuf::from("./outbox"),
            default_locale: "en".to_owned(),
            brand_name: "mailroom".to_owned(),
            brand_logo_url: None,
            postal_address: String::new(),
            verify_ttl: 3600,
            verify_callback_url: None,
            callback_secret: None,
            webhook_signing_key: None,
            webhooks_allow_http: false,
            webhooks_allow_private: false,
            verify_rate_per_address: 5,
            verify_rate_per_key: 10_000,
            allowed_redirect_origins: String::new(),
            dns_resolver: None,
            dns_timeout_ms: 2000,
            dns_cache_secs: 3600,
            dns_negative_cache_secs: 300,
            disposable_allow: String::new(),
            disposable_deny: String::new(),
            sendgrid_webhook_key: None,
            insecure_unsigned_webhooks: false,
            webhook_tolerance_secs: 600,
            event_retention_secs: 30 * 24 * 3600,
            transactional_categories: String::new(),
            inbound_user: None,
            inbound_password: None,
            inbound_secret: None,
            inbound_max_attachment_bytes: 10 * 1024 * 1024,
            inbound_stream_maxlen: 100_000,
            inbound_retention_secs: 7 * 24 * 3600,
            inbound_max_bytes: 1024 * 1024 * 1024,
            import_max_bytes: 1024 * 1024 * 1024,
            optin_ttl: 7 * 24 * 3600,
            link_keys: None,
            unsubscribe_mailto: None,
            dkim_keys: None,
            tracking: true,
            bounce_domain: None,
            metrics_listen: None,
            sendgrid_groups: String::new(),
            tracked_categories: String::new(),
            tracked_templates: String::new(),
            subscribe_rate_per_address: 5,
            subscribe_rate_per_ip: 30,
            campaign_concurrency: 4,
            campaign_retention_secs: 30 * 24 * 3600,
            provider_rate: 0,
            domain_rates: String::new(),
            domain_connections: String::new(),
            guard_complaint_rate: 0.003,
            guard_bounce_rate: 0.05,
            guard_min_deliveries: 1000,
            timeline_max_events: 1000,
            allow_evicting_redis: false,
            request_timeout_secs: 30,
            max_requests_in_flight: 1024,
            smtp_pool_size: 16,
        }
    }
}

impl Settings {
    /// The `MAILROOM_` variables in the environment that set nothing (a typo is otherwise
    /// silently ignored), each with the setting it probably meant, if one is close.
    pub fn unknown_environment() -> Vec<(String, Option<String>)> {
        Self::unknown_among(std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()))
    }

    /// [`Settings::unknown_environment`] over the variable names `names`.
    fn unknown_among(names: impl Iterator<Item = String>) -> Vec<(String, Option<String>)> {
        let fields = serde_aux::serde_introspection::serde_introspect::<Settings>();
        let known: Vec<String> = fields.iter().map(|f| env_name(f)).collect();
        let mut unknown: Vec<(String, Option<String>)> = names
            .filter(|name| name.starts_with("MAILROOM_"))
            .filter(|name| !known.contains(name) && !NOT_SETTINGS.contains(&name.as_str()))
            .map(|name| {
                let closest = known
                    .iter()
                    .filter(|k| k.starts_with("MAILROOM_"))
                    .map(|k| (strsim::damerau_levenshtein(k, &name), k))
                    .filter(|(distance, _)| *distance <= 3)
                    .min()
                    .map(|(_, k)| k.clone());
                (name, closest)
            })
            .collect();
        unknown.sort();
        unknown
    }

    /// Loads the settings: defaults, then `file` if given, then the environment.
    ///
    /// # Errors
    /// When the file cannot be read, a value has the wrong type, or a value is out of range;
    /// the message names the setting.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.is_file() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let figment = figment
            .merge(Env::prefixed("MAILROOM_").ignore(&["config"]))
            .merge(Env::raw().only(&UNPREFIXED));
        let public_url_given = figment.find_value("public_url").is_ok();
        let mut settings: Settings = figment.extract().map_err(explain)?;
        if std::env::var_os("MAILROOM_LISTEN").is_none()
            && let Ok(port) = std::env::var("PORT")
        {
            let port: u16 = port.parse().context("PORT is not a port number")?;
            settings.listen = format!("0.0.0.0:{port}");
        }
        if !public_url_given {
            // Links must reach this server: a `dev` on another port than 8080 sent
            // confirmation links to 8080.
            settings.public_url = local_url_of(&settings.listen);
        }
        settings.check()?;
        Ok(settings)
    }

    /// Each numeric setting, its value and the range it must be in: a table, one line each.
    #[rustfmt::skip]
    fn ranges(&self) -> [(&'static str, u64, u64, u64); 26] {
        [
            ("smtp_pool_size", self.smtp_pool_size as u64, 1, 1000),
            ("concurrency", self.concurrency as u64, 1, 10_000),
            ("lease_secs", self.lease_secs, 1, 3600),
            ("fetch_batch", self.fetch_batch as u64, 1, 1000),
            ("max_attempts", u64::from(self.max_attempts), 1, 1000),
            ("backoff_cap_secs", self.backoff_cap_secs, 1, 7 * 24 * 3600),
            ("retention_secs", self.retention_secs, 1, 365 * 24 * 3600),
            ("job_timeout_secs", self.job_timeout_secs, 1, 24 * 3600),
            ("verify_ttl", self.verify_ttl, 300, 7 * 24 * 3600),
            ("dns_timeout_ms", self.dns_timeout_ms, 10, 60_000),
            ("dns_cache_secs", self.dns_cache_secs, 1, 7 * 24 * 3600),
            ("dns_negative_cache_secs", self.dns_negative_cache_secs, 1, 24 * 3600),
            ("webhook_tolerance_secs", self.webhook_tolerance_secs, 1, 3 * 24 * 3600),
            ("event_retention_secs", self.event_retention_secs, 60, 400 * 24 * 3600),
            ("inbound_stream_maxlen", self.inbound_stream_maxlen as u64, 1, 100_000_000),
            ("inbound_retention_secs", self.inbound_retention_secs, 60, 400 * 24 * 3600),
            ("inbound_max_bytes", self.inbound_max_bytes, 0, 1 << 40),
            ("import_max_bytes", self.import_max_bytes, 1024, 1 << 40),
            ("optin_ttl", self.optin_ttl, 300, 90 * 24 * 3600),
            ("subscribe_rate_per_address", self.subscribe_rate_per_address, 1, 1_000_000),
            ("subscribe_rate_per_ip", self.subscribe_rate_per_ip, 1, 1_000_000),
            ("timeline_max_events", self.timeline_max_events as u64, 10, 100_000),
            ("request_timeout_secs", self.request_timeout_secs, 1, 3600),
            ("campaign_concurrency", self.campaign_concurrency as u64, 1, 1024),
            ("campaign_retention_secs", self.campaign_retention_secs, 60, 400 * 24 * 3600),
            ("max_requests_in_flight", self.max_requests_in_flight as u64, 1, 1_000_000),
        ]
    }

    fn check(&self) -> anyhow::Result<()> {
        for (name, value, min, max) in self.ranges() {
            if !(min..=max).contains(&value) {
                bail!(
                    "{} must be between {min} and {max}, not {value}",
                    env_name(name)
                );
            }
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(['{', '}']) {
            bail!(
                "MAILROOM_REDIS_PREFIX must be non-empty and must not contain braces (they are hash tags)"
            );
        }
        self.default_from()?;
        for (name, value) in [
            ("guard_complaint_rate", self.guard_complaint_rate),
            ("guard_bounce_rate", self.guard_bounce_rate),
        ] {
            if !(0.0..=1.0).contains(&value) || value.is_nan() {
                bail!(
                    "{} is a share between 0 and 1 (0.003 is 0.3 %), not {value}",
                    env_name(name)
                );
            }
        }
        self.bounce_domain()?;
        self.metrics_address()?;
        self.sendgrid_group_map()?;
        if self.inbound_user.is_some() != self.inbound_password.is_some() {
            bail!("MAILROOM_INBOUND_USER and MAILROOM_INBOUND_PASSWORD go together");
        }
        if self.body_limit_bytes < 1024 {
            bail!("MAILROOM_BODY_LIMIT_BYTES must be at least 1024");
        }
        // The error never quotes the URL, which may hold a password.
        self.redis_client()?;
        Ok(())
    }
}

mod routes;
mod values;

pub use routes::{MailKind, RouteCategories, RouteError, RouteTable};

#[cfg(test)]
mod tests;
