//! The scenarios against a `mailroom serve` child, with a load generator in this process:
//! `bench verify` (tokens confirmed through `POST /verify`, 64 connections), `bench validate`,
//! `bench batch` (`POST /v1/emails/batch`) and `bench events` (SendGrid event POSTs).

use std::{
    fmt,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use mailroom_jobs::RedisConnection;
use mailroom_jobs::{Job, ProviderEvents};

use mailroom::{config::Settings, queue::QueueAdmin};

use crate::common::{BENCH_KEY, bench_prefix, delete_prefix, ms_f, start_server};

/// What `bench verify` measured.
#[derive(Debug, Clone)]
pub(crate) struct VerifyReport {
    /// Confirmations made.
    pub(crate) confirmations: usize,
    /// Confirmations per second through `POST /verify`.
    pub(crate) per_sec: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "confirmations: {} through POST /verify (one `mailroom serve`)",
            self.confirmations
        )?;
        writeln!(f, "rate:          {:.0} confirmations/s", self.per_sec)?;
        write!(
            f,
            "latency:       p50 {:.2} ms, p99 {:.2} ms",
            ms_f(self.p50),
            ms_f(self.p99)
        )
    }
}

/// Stops the server, deletes the run's keys, and returns the latencies' median and 99th
/// percentile (sorting them).
async fn wind_up(
    mut server: tokio::process::Child,
    conn: RedisConnection,
    prefix: &str,
    latencies: &mut [Duration],
) -> anyhow::Result<(Duration, Duration)> {
    let _ = server.start_kill();
    let _ = server.wait().await;
    delete_prefix(conn, prefix).await?;
    if latencies.is_empty() {
        bail!("nothing was measured");
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok((at(0.50), at(0.99)))
}

/// `bench verify`: issues `count` tokens, starts `mailroom serve`, and confirms each once with
/// `concurrency` connections, measuring the rate and the latency.
///
/// # Errors
/// When Redis fails, the server does not start, or a confirmation does not succeed.
pub(crate) async fn verify(
    settings: &Settings,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<VerifyReport> {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use mailroom::verification::{Token, Verifications};

    let prefix = bench_prefix(settings);
    let conn = settings.redis_connection().await?;
    let store = Verifications::new(conn.clone(), prefix.clone());
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut tokens = Vec::with_capacity(count);
    for i in 0..count {
        let token = Token::generate()?;
        store.issue(&token, &request(i, expires), None).await?;
        tokens.push(token.expose().to_owned());
    }
    let (server, base, client) = start_server(&prefix, &[]).await?;
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (tokens, next, client, url) = (
                tokens.clone(),
                next.clone(),
                client.clone(),
                format!("{base}/verify"),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else {
                        return Ok::<_, anyhow::Error>(latencies);
                    };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("accept", "application/json")
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(format!("token={token}"))
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        bail!("a confirmation answered {}", response.status());
                    }
                    response.bytes().await?;
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    let (p50, p99) = wind_up(server, conn, &prefix, &mut latencies).await?;
    Ok(VerifyReport {
        confirmations: latencies.len(),
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50,
        p99,
    })
}

/// What `bench validate` measured.
#[derive(Debug)]
pub(crate) struct ValidateReport {
    /// Addresses validated.
    pub(crate) addresses: usize,
    /// Addresses per second through `POST /v1/validations/batch`.
    pub(crate) per_sec: f64,
    /// Median latency of one 1,000-address batch.
    pub p50: Duration,
    /// 99th percentile latency of a batch.
    pub p99: Duration,
}

impl fmt::Display for ValidateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} addresses in batches of {}: {:.0} addresses/s, batch p50 {:.1} ms, p99 {:.1} ms",
            self.addresses,
            mailroom::validation::MAX_BATCH,
            self.per_sec,
            ms_f(self.p50),
            ms_f(self.p99)
        )
    }
}

/// `bench validate`: `batches` requests of 1,000 addresses over 200 domains whose DNS answers
/// are in the Redis cache, `concurrency` at once, against a `mailroom serve`. The server's
/// resolver points at a port nobody answers on, so a cache miss would show up as an unanswered
/// lookup, which fails the run.
///
/// # Errors
/// When Redis fails, the server does not start, or an answer is wrong.
pub(crate) async fn validate(
    settings: &Settings,
    batches: usize,
    concurrency: usize,
) -> anyhow::Result<ValidateReport> {
    use mailroom::validation::{DnsCheck, MAX_BATCH};

    let prefix = bench_prefix(settings);
    let mut conn = settings.redis_connection().await?;
    let domains: Vec<String> = (0..200)
        .map(|i| format!("company{i}.example.net"))
        .collect();
    let check = serde_json::to_string(&DnsCheck {
        mx: true,
        a: false,
        null_mx: false,
        exists: true,
    })?;
    let mut pipe = redis::pipe();
    for domain in &domains {
        pipe.set_ex(format!("{prefix}:dns:{domain}"), &check, 3600)
            .ignore();
    }
    pipe.query_async::<()>(&mut conn).await?;
    let body = serde_json::to_vec(&serde_json::json!({
        "emails": (0..MAX_BATCH)
            .map(|i| format!("person.{i}@{}", domains[i % domains.len()]))
            .collect::<Vec<_>>(),
    }))?;
    let (server, base, client) = start_server(
        &prefix,
        &[
            ("MAILROOM_DNS_RESOLVER", "127.0.0.1:9"),
            ("MAILROOM_DNS_TIMEOUT_MS", "50"),
        ],
    )
    .await?;
    let url = format!("{base}/v1/validations/batch");
    let (mut latencies, elapsed) =
        post_repeatedly(&client, &url, body, batches, concurrency, |answer| {
            let cached = answer["results"].as_array().is_some_and(|r| {
                r.len() == MAX_BATCH && r.iter().all(|v| v["checks"]["dns"]["mx"] == true)
            });
            if !cached {
                bail!("a batch came back without every DNS answer from the cache");
            }
            Ok(())
        })
        .await?;
    let (p50, p99) = wind_up(server, conn, &prefix, &mut latencies).await?;
    Ok(ValidateReport {
        addresses: latencies.len() * MAX_BATCH,
        per_sec: (latencies.len() * MAX_BATCH) as f64 / elapsed.as_secs_f64(),
        p50,
        p99,
    })
}

/// POSTs the JSON `body` to `url` `times` times, `concurrency` at once, each answer checked by
/// `check`: every request's latency, and the time it all took.
async fn post_repeatedly(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    times: usize,
    concurrency: usize,
    check: fn(&serde_json::Value) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let body = Arc::new(body);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (body, next, client, url) =
                (body.clone(), next.clone(), client.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < times {
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(BENCH_KEY)
                        .header("content-type", "application/json")
                        .body(body.as_ref().clone())
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        bail!("a request answered {}", response.status());
                    }
                    let answer: serde_json::Value = response.json().await?;
                    latencies.push(sent.elapsed());
                    check(&answer)?;
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(times);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok((latencies, started.elapsed()))
}

/// What `bench batch` measured.
#[derive(Debug)]
pub(crate) struct BatchReport {
    pub(crate) messages: usize,
    /// Messages accepted (queued) per second through `POST /v1/emails/batch`.
    pub(crate) per_sec: f64,
    /// Median latency of one batch.
    pub p50: Duration,
    /// 99th percentile latency of a batch.
    pub p99: Duration,
}

impl fmt::Display for BatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} messages in batches of {BATCH_MESSAGES} through POST /v1/emails/batch: {:.0} messages/s accepted, batch p50 {:.1} ms, p99 {:.1} ms",
            self.messages,
            self.per_sec,
            ms_f(self.p50),
            ms_f(self.p99)
        )
    }
}

/// Messages in each benchmark batch (the most one takes).
const BATCH_MESSAGES: usize = 1000;

/// `bench batch`: `batches` requests of 1,000 messages (each to its own recipient, ~250 bytes)
/// through `POST /v1/emails/batch`, `concurrency` at once, against a `mailroom serve`; every
/// message must be answered queued.
///
/// # Errors
/// When Redis fails, the server does not start, or a message is not accepted.
pub(crate) async fn batch(
    settings: &Settings,
    batches: usize,
    concurrency: usize,
) -> anyhow::Result<BatchReport> {
    let prefix = bench_prefix(settings);
    let conn = settings.redis_connection().await?;
    let body = serde_json::to_vec(&serde_json::json!({
        "messages": (0..BATCH_MESSAGES)
            .map(|i| serde_json::json!({
                "to": [{"email": format!("customer.{i}@example.com"), "name": format!("Customer {i}")}],
                "subject": "Your receipt",
                "text": "Thank you for your order. Your receipt is attached to your account.",
                "categories": ["receipts"],
            }))
            .collect::<Vec<_>>(),
    }))?;
    let (server, base, client) = start_server(&prefix, &[]).await?;
    let url = format!("{base}/v1/emails/batch");
    let (mut latencies, elapsed) =
        post_repeatedly(&client, &url, body, batches, concurrency, |answer| {
            if answer["accepted"].as_u64() != Some(BATCH_MESSAGES as u64) {
                bail!("a batch was not accepted whole: {}", answer["rejected"]);
            }
            Ok(())
        })
        .await?;
    let (p50, p99) = wind_up(server, conn, &prefix, &mut latencies).await?;
    Ok(BatchReport {
        messages: latencies.len() * BATCH_MESSAGES,
        per_sec: (latencies.len() * BATCH_MESSAGES) as f64 / elapsed.as_secs_f64(),
        p50,
        p99,
    })
}

/// What `bench events` measured.
#[derive(Debug)]
pub(crate) struct EventsReport {
    pub(crate) events: usize,
    pub(crate) batch: usize,
    /// Events per second from the first POST until the worker has applied the last batch.
    pub(crate) per_sec: f64,
    /// Median latency of one POST (verified and stored, not yet applied).
    pub post_p50: Duration,
    pub post_p99: Duration,
}

impl fmt::Display for EventsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events in signed batches of {}: {:.0} events/s verified, stored and applied; POST p50 {:.1} ms, p99 {:.1} ms",
            self.events,
            self.batch,
            self.per_sec,
            ms_f(self.post_p50),
            ms_f(self.post_p99)
        )
    }
}

/// One batch of `size` realistic events for 1,000 messages (mostly processed, delivered and
/// opens, some clicks, deferrals and bounces), each one new: a unique `sg_event_id`, and a
/// timestamp that moves on a second every 1,000 events, so that no two share mailroom's
/// identity (message, event, timestamp, address) and the benchmark measures events applied,
/// not duplicates recognised.
fn event_batch(batch: usize, size: usize, timestamp: i64) -> String {
    let kinds = [
        "processed",
        "delivered",
        "processed",
        "delivered",
        "open",
        "open",
        "click",
        "deferred",
        "processed",
        "delivered",
        "open",
        "bounce",
        "processed",
        "delivered",
        "open",
        "dropped",
    ];
    let events: Vec<serde_json::Value> = (0..size)
        .map(|i| {
            let n = batch * size + i;
            let kind = kinds[n % kinds.len()];
            let mut event = serde_json::json!({
                "email": format!("customer{}@example.com", n % 1000),
                "timestamp": timestamp + i64::try_from(n / 1000).unwrap_or(0),
                "smtp-id": format!("<{n}@ismtpd-1>"),
                "event": kind,
                "category": ["receipts"],
                "sg_event_id": format!("bench-{n:012}"),
                "sg_message_id": format!("msg{}.filter0001", n % 1000),
                "mailroom_id": format!("0190bench-0000-7000-8000-{:012}", n % 1000),
            });
            match kind {
                "bounce" => {
                    event["type"] = "bounce".into();
                    event["status"] = "5.1.1".into();
                    event["reason"] = "550 5.1.1 no such user".into();
                }
                "click" => event["url"] = "https://example.com/order".into(),
                "deferred" => event["response"] = "421 try again later".into(),
                "dropped" => event["reason"] = "Bounced Address".into(),
                _ => {}
            }
            event
        })
        .collect();
    let mut body = serde_json::to_string(&events).unwrap_or_default();
    body.push_str("\r\n");
    body
}

/// Event batches as SendGrid posts them.
struct Signed {
    /// The verification key (base64 DER).
    public: String,
    /// The timestamp header.
    stamp: String,
    /// Each body with its signature.
    batches: Vec<(String, String)>,
}

/// `batches` signed event batches of `size` events.
fn signed_batches(batches: usize, size: usize) -> anyhow::Result<Signed> {
    use base64::Engine as _;
    use p256::{
        ecdsa::{Signature, SigningKey, signature::Signer as _},
        pkcs8::EncodePublicKey,
    };

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let key = SigningKey::from_slice(&seed)?;
    let public = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let public = base64::engine::general_purpose::STANDARD.encode(public.as_bytes());
    let timestamp = chrono::Utc::now().timestamp();
    let stamp = timestamp.to_string();
    let signed: Vec<(String, String)> = (0..batches)
        .map(|b| {
            let body = event_batch(b, size, timestamp);
            let mut message = stamp.as_bytes().to_vec();
            message.extend_from_slice(body.as_bytes());
            let signature: Signature = key.sign(&message);
            let signature =
                base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
            (body, signature)
        })
        .collect();
    Ok(Signed {
        public,
        stamp,
        batches: signed,
    })
}

/// Posts the `signed` batches to `url`, `concurrency` at a time: each POST's latency.
async fn post_all(
    client: &reqwest::Client,
    url: &str,
    stamp: &str,
    signed: Vec<(String, String)>,
    concurrency: usize,
) -> anyhow::Result<Vec<Duration>> {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    let signed = Arc::new(signed);
    let next = Arc::new(AtomicUsize::new(0));
    let posters: Vec<_> = (0..concurrency)
        .map(|_| {
            let (signed, next, client, url, stamp) = (
                signed.clone(),
                next.clone(),
                client.clone(),
                url.to_owned(),
                stamp.to_owned(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((body, signature)) = signed.get(i) else {
                        return Ok::<_, anyhow::Error>(latencies);
                    };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header(mailroom::events::signature::SIGNATURE_HEADER, signature)
                        .header(mailroom::events::signature::TIMESTAMP_HEADER, &stamp)
                        .body(body.clone())
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        bail!("a batch was refused: {}", response.status());
                    }
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for poster in posters {
        latencies.extend(poster.await??);
    }
    Ok(latencies)
}

/// `bench events`: `batches` signed batches of `size` events POSTed to a `mailroom serve`
/// (`concurrency` at once) and applied by one `mailroom work`, measured from the first POST to
/// the last batch applied.
///
/// # Errors
/// When Redis fails, a process does not start, or a POST is refused.
pub(crate) async fn events(
    settings: &Settings,
    batches: usize,
    size: usize,
    concurrency: usize,
) -> anyhow::Result<EventsReport> {
    let prefix = bench_prefix(settings);
    let conn = settings.redis_connection().await?;
    // SendGrid's side of the work (building and signing) is done before the clock starts.
    let Signed {
        public,
        stamp,
        batches: signed,
    } = signed_batches(batches, size)?;
    let env = [("MAILROOM_SENDGRID_WEBHOOK_KEY", public.as_str())];
    let (server, base, client) = start_server(&prefix, &env).await?;
    let mut worker = tokio::process::Command::new(crate::mailroom_exe()?)
        .args(["work", "--concurrency", "8"])
        .env("MAILROOM_REDIS_PREFIX", &prefix)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the worker process")?;
    let url = format!("{base}/webhooks/sendgrid/events");
    let started = Instant::now();
    let mut latencies = post_all(&client, &url, &stamp, signed, concurrency).await?;
    let admin = QueueAdmin::new(conn.clone(), prefix.clone());
    loop {
        let stats = admin.stats(ProviderEvents::QUEUE).await?;
        if stats.done_total >= batches as u64 {
            break;
        }
        if stats.dead_total > 0 {
            bail!("{} batches were dead-lettered", stats.dead_total);
        }
        if let Some(status) = worker.try_wait()? {
            bail!("the worker exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let _ = worker.start_kill();
    let _ = worker.wait().await;
    let (post_p50, post_p99) = wind_up(server, conn, &prefix, &mut latencies).await?;
    Ok(EventsReport {
        events: batches * size,
        batch: size,
        per_sec: (batches * size) as f64 / elapsed.as_secs_f64(),
        post_p50,
        post_p99,
    })
}

/// A verification request for the `i`-th address, its link expiring at `expires_at`.
fn request(i: usize, expires_at: chrono::DateTime<chrono::Utc>) -> mailroom_jobs::SendVerification {
    mailroom_jobs::SendVerification {
        id: uuid::Uuid::now_v7(),
        email: format!("user{i}@example.com"),
        locale: None,
        return_url: None,
        metadata: Default::default(),
        expires_at,
        optin_list: None,
        request_id: None,
    }
}
