//! The deployment's own parts: Redis, the API's keys and public URL, the provider, the
//! webhooks and link keys. Each check is bounded in time, so a firewall that drops packets
//! makes a failed line, not a hung command.

use std::time::Duration;

use mailroom_jobs::{Producer, RedisConnection};

use super::{Check, Verdict, check};
use crate::{
    config::{ProviderKind, Settings},
    providers::{Mailgun, Postmark, SendGrid, Ses, Smtp},
    store::RedisFacts,
};

/// How long one network check may take.
const LIMIT: Duration = Duration::from_secs(5);

/// The oldest Redis mailroom's scripts run on (`GETDEL`, `ZRANGE … REV`).
const MIN_REDIS: (u32, u32) = (6, 2);

/// The deployment checks for `settings`, in order.
pub async fn checks(settings: &Settings) -> Vec<Check> {
    let mut report = redis(settings).await;
    report.extend(api(settings).await);
    // Every provider a route names (`MAILROOM_ROUTES`, else `MAILROOM_PROVIDER`), once each.
    for kind in crate::providers::route::configured_providers(settings) {
        report.push(provider(settings, kind).await);
    }
    report.extend(webhooks(settings));
    report
}

/// A warning for each variable that looks like a setting and is not one (a typo is ignored
/// silently otherwise).
pub fn unknown_variables() -> Vec<Check> {
    Settings::unknown_environment()
        .into_iter()
        .map(|(name, closest)| {
            let detail = match closest {
                Some(meant) => format!("not a mailroom setting, ignored: did you mean {meant}?"),
                None => "not a mailroom setting, ignored".to_owned(),
            };
            check(Verdict::Warn, format!("settings {name}"), detail)
        })
        .collect()
}

async fn redis(settings: &Settings) -> Vec<Check> {
    let what = || "redis".to_owned();
    // The error never quotes REDIS_URL: it may hold a password.
    let conn = match tokio::time::timeout(LIMIT, settings.redis_connection()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => return vec![check(Verdict::Fail, what(), format!("{error:#}"))],
        Err(_) => {
            return vec![check(
                Verdict::Fail,
                what(),
                "no answer within 5 s: is REDIS_URL right, and is Redis running?",
            )];
        }
    };
    let mut report = Vec::new();
    match tokio::time::timeout(LIMIT, version(&conn)).await {
        Ok(Ok(version)) => report.push(version),
        Ok(Err(error)) => {
            return vec![check(
                Verdict::Fail,
                what(),
                format!("INFO failed: {error}"),
            )];
        }
        Err(_) => return vec![check(Verdict::Fail, what(), "INFO timed out")],
    }
    report.push(topology(&conn).await);
    match tokio::time::timeout(LIMIT, RedisFacts::read(&mut conn.clone())).await {
        Ok(Ok(facts)) => report.extend(facts_checks(&facts, settings.allow_evicting_redis)),
        Ok(Err(error)) => report.push(check(
            Verdict::Fail,
            "redis memory".to_owned(),
            format!("INFO memory failed: {error}"),
        )),
        Err(_) => report.push(check(Verdict::Fail, "redis memory".to_owned(), "timed out")),
    }
    let producer = Producer::new(conn, settings.redis_prefix.clone());
    report.push(match tokio::time::timeout(LIMIT, producer.ready()).await {
        Ok(Ok(())) => check(Verdict::Pass, "redis push script".to_owned(), "loads"),
        Ok(Err(error)) => check(
            Verdict::Fail,
            "redis push script".to_owned(),
            format!("does not load: {error} (is scripting disabled, or a command renamed?)"),
        ),
        Err(_) => check(Verdict::Fail, "redis push script".to_owned(), "timed out"),
    });
    report
}

/// The oldest `redis_version` among the masters.
async fn version(conn: &RedisConnection) -> redis::RedisResult<Check> {
    let infos = conn
        .clone()
        .on_every_master(redis::cmd("INFO").arg("server"))
        .await?;
    let mut oldest: Option<(u32, u32, String)> = None;
    for (_, value) in infos {
        let info: String = redis::from_redis_value(value)?;
        let Some(text) = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(str::trim)
        else {
            continue;
        };
        let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if oldest
            .as_ref()
            .is_none_or(|(a, b, _)| (major, minor) < (*a, *b))
        {
            oldest = Some((major, minor, text.to_owned()));
        }
    }
    let what = "redis version".to_owned();
    Ok(match oldest {
        Some((major, minor, text)) if (major, minor) >= MIN_REDIS => {
            check(Verdict::Pass, what, text)
        }
        Some((_, _, text)) => check(
            Verdict::Fail,
            what,
            format!(
                "{text}: mailroom needs Redis {}.{} or newer",
                MIN_REDIS.0, MIN_REDIS.1
            ),
        ),
        None => check(Verdict::Warn, what, "INFO did not name a version"),
    })
}

/// One node, or a cluster and its state.
async fn topology(conn: &RedisConnection) -> Check {
    let what = "redis mode".to_owned();
    if !conn.is_cluster() {
        return check(Verdict::Pass, what, "one node");
    }
    let info = tokio::time::timeout(
        LIMIT,
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async::<String>(&mut conn.clone()),
    )
    .await;
    let Ok(Ok(info)) = info else {
        return check(Verdict::Fail, what, "CLUSTER INFO did not answer");
    };
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or("?")
            .to_owned()
    };
    let (state, size) = (field("cluster_state"), field("cluster_size"));
    if state == "ok" {
        check(
            Verdict::Pass,
            what,
            format!("cluster, state ok, {size} masters"),
        )
    } else {
        check(
            Verdict::Fail,
            what,
            format!(
                "cluster state is {state}: some slots are not served (redis-cli --cluster check)"
            ),
        )
    }
}

fn facts_checks(facts: &RedisFacts, allow_evicting: bool) -> Vec<Check> {
    let policy = if !facts.evicts() {
        check(
            Verdict::Pass,
            "redis maxmemory-policy".to_owned(),
            facts.policy.clone(),
        )
    } else {
        check(
            if allow_evicting {
                Verdict::Warn
            } else {
                Verdict::Fail
            },
            "redis maxmemory-policy".to_owned(),
            format!(
                "{}: Redis may delete queued mail when full; set maxmemory-policy noeviction",
                facts.policy
            ),
        )
    };
    let persistence = match (facts.aof, facts.rdb) {
        (true, _) => check(Verdict::Pass, "redis persistence".to_owned(), "AOF on"),
        (false, Some(true)) => check(
            Verdict::Warn,
            "redis persistence".to_owned(),
            "RDB snapshots only: a crash loses what was queued since the last one; set appendonly yes",
        ),
        (false, Some(false)) => check(
            Verdict::Warn,
            "redis persistence".to_owned(),
            "none: a restart loses every queued job; set appendonly yes",
        ),
        (false, None) => check(
            Verdict::Warn,
            "redis persistence".to_owned(),
            "AOF off, and CONFIG is refused so snapshots cannot be seen: make sure the service persists",
        ),
    };
    let mib = |bytes: u64| bytes / (1024 * 1024);
    let memory = if facts.full() {
        check(
            Verdict::Fail,
            "redis memory".to_owned(),
            format!(
                "full: {} of {} MiB used, writes are refused; raise maxmemory or free space",
                mib(facts.used_memory),
                mib(facts.max_memory)
            ),
        )
    } else if facts.max_memory == 0 {
        check(
            Verdict::Pass,
            "redis memory".to_owned(),
            format!(
                "{} MiB used, no maxmemory (the host's memory is the limit)",
                mib(facts.used_memory)
            ),
        )
    } else {
        check(
            Verdict::Pass,
            "redis memory".to_owned(),
            format!(
                "{} of {} MiB used",
                mib(facts.used_memory),
                mib(facts.max_memory)
            ),
        )
    };
    vec![policy, persistence, memory]
}

async fn api(settings: &Settings) -> Vec<Check> {
    let keys = settings.api_key_list().len();
    let keys = match (keys, settings.insecure_no_auth) {
        (0, true) => check(
            Verdict::Warn,
            "api keys".to_owned(),
            "none, and MAILROOM_INSECURE_NO_AUTH=1: anyone who reaches the API can send",
        ),
        (0, false) => check(
            Verdict::Fail,
            "api keys".to_owned(),
            "none: `mailroom serve` refuses to start; set MAILROOM_API_KEYS (comma-separated)",
        ),
        (n, _) => check(
            Verdict::Pass,
            "api keys".to_owned(),
            format!("{n} configured"),
        ),
    };
    vec![keys, public_url(&settings.public_url).await]
}

/// The links in mail point at `MAILROOM_PUBLIC_URL`: it must reach a `mailroom serve`.
async fn public_url(base: &str) -> Check {
    let what = "public url".to_owned();
    let url = format!("{}/healthz", base.trim_end_matches('/'));
    let client = match reqwest::Client::builder().timeout(LIMIT).build() {
        Ok(client) => client,
        Err(error) => return check(Verdict::Fail, what, error.to_string()),
    };
    let answer = client.get(&url).send().await;
    let fix = "set MAILROOM_PUBLIC_URL to the address people reach `mailroom serve` at";
    match answer {
        Ok(response) if response.status().is_success() => {
            let secure = base.starts_with("https://");
            let local = url::Url::parse(base)
                .ok()
                .is_some_and(|u| matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")));
            if secure || local {
                check(Verdict::Pass, what, format!("{url} answers"))
            } else {
                check(
                    Verdict::Warn,
                    what,
                    format!(
                        "{url} answers, over plain HTTP: links in mail (unsubscribe, confirmation) should be https"
                    ),
                )
            }
        }
        Ok(response) => check(
            Verdict::Fail,
            what,
            format!("{url} answers {}: {fix}", response.status()),
        ),
        Err(error) => check(
            Verdict::Fail,
            what,
            format!(
                "{url} does not answer ({}): {fix}",
                if error.is_timeout() {
                    "timed out"
                } else {
                    "no connection"
                }
            ),
        ),
    }
}

async fn provider(settings: &Settings, kind: ProviderKind) -> Check {
    match kind {
        ProviderKind::Sendgrid => sendgrid(settings).await,
        ProviderKind::Postmark => postmark(settings).await,
        ProviderKind::Mailgun => mailgun(settings).await,
        ProviderKind::Ses => ses(settings).await,
        ProviderKind::Smtp => smtp(settings).await,
        ProviderKind::Outbox => outbox(settings).await,
    }
}

async fn sendgrid(settings: &Settings) -> Check {
    let what = "provider sendgrid".to_owned();
    let client = match SendGrid::from_settings(settings) {
        Ok(client) => client,
        Err(error) => return check(Verdict::Fail, what, format!("{error:#}")),
    };
    match tokio::time::timeout(LIMIT * 2, client.scopes()).await {
        Ok(Ok(scopes)) if scopes.iter().any(|s| s == "mail.send") => check(
            Verdict::Pass,
            what,
            format!("the key is valid and may send ({} scopes)", scopes.len()),
        ),
        Ok(Ok(_)) => check(
            Verdict::Fail,
            what,
            "the key is valid but may not send: give it the Mail Send permission (scope mail.send)",
        ),
        Ok(Err(error)) => check(
            Verdict::Fail,
            what,
            format!("{error}: check SENDGRID_API_KEY (a 401 means wrong or revoked)"),
        ),
        Err(_) => check(Verdict::Fail, what, "SendGrid did not answer within 10 s"),
    }
}

async fn postmark(settings: &Settings) -> Check {
    let what = "provider postmark".to_owned();
    let client = match Postmark::from_settings(settings) {
        Ok(client) => client,
        Err(error) => return check(Verdict::Fail, what, format!("{error:#}")),
    };
    match tokio::time::timeout(LIMIT * 2, client.server_name()).await {
        Ok(Ok(name)) => check(
            Verdict::Pass,
            what,
            format!("the token is valid: server {name:?}"),
        ),
        Ok(Err(error)) => check(
            Verdict::Fail,
            what,
            format!("{error}: check POSTMARK_SERVER_TOKEN (a 401 means wrong)"),
        ),
        Err(_) => check(Verdict::Fail, what, "Postmark did not answer within 10 s"),
    }
}

async fn mailgun(settings: &Settings) -> Check {
    let what = "provider mailgun".to_owned();
    let client = match Mailgun::from_settings(settings) {
        Ok(client) => client,
        Err(error) => return check(Verdict::Fail, what, format!("{error:#}")),
    };
    match tokio::time::timeout(LIMIT * 2, client.domain_state()).await {
        Ok(Ok(state)) if state == "active" => check(
            Verdict::Pass,
            what,
            format!("the key is valid and {} is active", client.domain()),
        ),
        Ok(Ok(state)) => check(
            Verdict::Fail,
            what,
            format!(
                "{} is {state}: verify its DNS records in Mailgun before sending",
                client.domain()
            ),
        ),
        Ok(Err(error)) => check(
            Verdict::Fail,
            what,
            format!(
                "{error}: check MAILGUN_API_KEY, MAILGUN_DOMAIN and MAILGUN_API_URL (EU domains: https://api.eu.mailgun.net)"
            ),
        ),
        Err(_) => check(Verdict::Fail, what, "Mailgun did not answer within 10 s"),
    }
}

async fn ses(settings: &Settings) -> Check {
    let what = "provider ses".to_owned();
    let client = match Ses::from_settings(settings) {
        Ok(client) => client,
        Err(error) => return check(Verdict::Fail, what, format!("{error:#}")),
    };
    let account = match tokio::time::timeout(LIMIT * 2, client.account()).await {
        Ok(Ok(account)) => account,
        Ok(Err(error)) => {
            return check(
                Verdict::Fail,
                what,
                format!(
                    "{error}: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION (a 403 means wrong or without ses:GetAccount)"
                ),
            );
        }
        Err(_) => return check(Verdict::Fail, what, "Amazon SES did not answer within 10 s"),
    };
    let quota = account.send_quota.as_ref().map_or_else(String::new, |q| {
        format!(
            "; {} a second, {} of {} sent in the last 24 h",
            q.max_send_rate, q.sent_last24_hours, q.max24_hour_send
        )
    });
    let region = client.region();
    if !account.sending_enabled {
        check(
            Verdict::Fail,
            what,
            format!("sending is paused for the account in {region}: see the SES console{quota}"),
        )
    } else if !account.production_access_enabled {
        check(
            Verdict::Warn,
            what,
            format!(
                "the account in {region} is in the sandbox: it sends only to verified addresses; ask AWS for production access{quota}"
            ),
        )
    } else {
        check(
            Verdict::Pass,
            what,
            format!("the credentials are valid and the account in {region} may send{quota}"),
        )
    }
}

async fn smtp(settings: &Settings) -> Check {
    let what = "provider smtp".to_owned();
    let client = match Smtp::from_settings(settings) {
        Ok(client) => client,
        Err(error) => return check(Verdict::Fail, what, format!("{error:#}")),
    };
    match tokio::time::timeout(LIMIT * 6, client.probe()).await {
        Ok(Ok(detail)) => check(Verdict::Pass, what, detail),
        Ok(Err(error)) => check(
            Verdict::Fail,
            what,
            format!("{error}: check SMTP_URL (host, port, scheme, user and password)"),
        ),
        Err(_) => check(Verdict::Fail, what, "the relay did not answer within 30 s"),
    }
}

async fn outbox(settings: &Settings) -> Check {
    let what = "provider outbox".to_owned();
    let dir = &settings.outbox_dir;
    let probe = dir.join(format!(".doctor-{}", uuid::Uuid::now_v7()));
    let written = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(&probe, b"").await?;
        tokio::fs::remove_file(&probe).await
    }
    .await;
    match written {
        Ok(()) => check(
            Verdict::Warn,
            what,
            format!(
                "mail is written to {} and not delivered (development); set MAILROOM_PROVIDER=sendgrid or smtp to send",
                dir.display()
            ),
        ),
        Err(error) => check(
            Verdict::Fail,
            what,
            format!("cannot write to {}: {error}", dir.display()),
        ),
    }
}

fn webhooks(settings: &Settings) -> Vec<Check> {
    let events = match crate::events::WebhookKey::from_settings(settings) {
        Ok(Some(_)) => check(
            Verdict::Pass,
            "webhook events".to_owned(),
            "the verification key parses: signed POSTs are checked",
        ),
        Ok(None) if settings.insecure_unsigned_webhooks => check(
            Verdict::Warn,
            "webhook events".to_owned(),
            "unsigned POSTs are accepted: anyone can post events; set MAILROOM_SENDGRID_WEBHOOK_KEY",
        ),
        Ok(None) => check(
            Verdict::Warn,
            "webhook events".to_owned(),
            "no MAILROOM_SENDGRID_WEBHOOK_KEY: SendGrid's events are refused (turn on Signed Event Webhook and copy its key)",
        ),
        Err(error) => check(
            Verdict::Fail,
            "webhook events".to_owned(),
            format!("{error:#}"),
        ),
    };
    let protected = settings.inbound_user.is_some()
        || settings
            .inbound_secret
            .as_ref()
            .is_some_and(|s| !secrecy::ExposeSecret::expose_secret(s).is_empty());
    let inbound = if protected {
        check(
            Verdict::Pass,
            "webhook inbound".to_owned(),
            "Inbound Parse posts need basic auth or the secret path",
        )
    } else {
        check(
            Verdict::Warn,
            "webhook inbound".to_owned(),
            "Inbound Parse posts are refused: set MAILROOM_INBOUND_USER/PASSWORD or MAILROOM_INBOUND_SECRET to receive mail and reports",
        )
    };
    let links = match crate::lists::links::LinkKeys::from_settings(settings) {
        Ok(Some(_)) => check(
            Verdict::Pass,
            "link keys".to_owned(),
            "unsubscribe, opt-in and tracking links are signed",
        ),
        Ok(None) => check(
            Verdict::Warn,
            "link keys".to_owned(),
            "no MAILROOM_LINK_KEYS: list mail, campaigns and tracking are refused",
        ),
        Err(error) => check(Verdict::Fail, "link keys".to_owned(), format!("{error:#}")),
    };
    let mut report = vec![events, inbound, links];
    report.extend(provider_webhooks(settings));
    report
}

/// For each provider of the routes with a webhook of its own: whether it is set, since without
/// it that provider's bounces and complaints never reach the suppressions.
fn provider_webhooks(settings: &Settings) -> Vec<Check> {
    let set = |value: Option<&secrecy::SecretString>| {
        value.is_some_and(|v| !secrecy::ExposeSecret::expose_secret(v).is_empty())
    };
    let providers = crate::providers::route::configured_providers(settings);
    let mut report = Vec::new();
    for provider in providers {
        let (what, configured, fix) = match provider {
            ProviderKind::Postmark => (
                "webhook postmark",
                settings.postmark_webhook_user.is_some()
                    && set(settings.postmark_webhook_password.as_ref()),
                "set MAILROOM_POSTMARK_WEBHOOK_USER and MAILROOM_POSTMARK_WEBHOOK_PASSWORD and add the webhook in Postmark",
            ),
            ProviderKind::Mailgun => (
                "webhook mailgun",
                set(settings.mailgun_webhook_signing_key.as_ref()),
                "set MAILGUN_WEBHOOK_SIGNING_KEY and add the webhooks in Mailgun",
            ),
            ProviderKind::Ses => (
                "webhook ses",
                !settings.ses_topic_arns.trim().is_empty(),
                "publish the configuration set's events to an SNS topic subscribed to /webhooks/ses and name it in MAILROOM_SES_TOPIC_ARNS",
            ),
            _ => continue,
        };
        report.push(if configured {
            check(
                Verdict::Pass,
                what.to_owned(),
                "its POSTs are checked and applied",
            )
        } else {
            check(
                Verdict::Warn,
                what.to_owned(),
                format!("its bounces and complaints do not reach the suppressions: {fix}"),
            )
        });
    }
    report
}
