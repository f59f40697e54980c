//! `bench campaign`: a newsletter in seven languages to a generated list, through one
//! `mailroom work` and the SendGrid provider, to a local stand-in that answers 202 and counts
//! the personalizations it is handed; or (`--via smtp`) one message per recipient to Postfix's
//! `smtp-sink`; or (`--via postmark`) Postmark's batch call, 500 filled messages a request, to
//! the stand-in, which answers each; or (`--via mailgun`) Mailgun's batch call, 1,000
//! recipients with their recipient variables a request. Measures the time from the start to the last recipient handed over, the
//! worker's peak RSS, and the Redis memory the campaign takes beyond its subscribers. With
//! `--primary-down`, SendGrid comes first on the campaign's route with its port closed: every
//! batch fails over, and the time to the first recipient through `--via` is the switch's.

use std::{
    fmt,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use axum::{Router, body::Bytes, http::StatusCode, routing::post};
use chrono::Utc;
use mailroom::{
    campaigns::{
        Campaign, CampaignStore, Content, Spec, State, TemplateContent,
        lifecycle::{self, Change},
    },
    config::Settings,
    domain::ListId,
};
use mailroom_jobs::{CampaignId, Producer};

use crate::{
    common::{bench_prefix, delete_prefix, peak_kib, smtp_sink},
    lists::{import_into, used_memory},
};

const KEYS: &str = "bench:bench-link-key-0123456789abcdef0123456789";

/// What `bench campaign` measured.
#[derive(Debug)]
pub(crate) struct CampaignReport {
    recipients: u64,
    provider: &'static str,
    elapsed: Duration,
    /// When the audience was fixed, from the start.
    fixed: Option<Duration>,
    requests: u64,
    worker_peak_kib: Option<u64>,
    redis_bytes: Option<u64>,
    possibly_duplicated: u64,
    /// With the primary down: when the first recipient reached the secondary, from the start.
    switched: Option<Duration>,
}

impl fmt::Display for CampaignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "campaign: the newsletter in 7 languages to {} subscribers through one `mailroom work` ({})",
            self.recipients, self.provider
        )?;
        writeln!(
            f,
            "time:     {:.2} s from the start to the last recipient handed over ({} requests)",
            self.elapsed.as_secs_f64(),
            self.requests
        )?;
        if let Some(fixed) = self.fixed {
            writeln!(
                f,
                "audience: fixed {:.2} s after the start",
                fixed.as_secs_f64()
            )?;
        }
        writeln!(
            f,
            "rate:     {:.0} recipients/s",
            self.recipients as f64 / self.elapsed.as_secs_f64()
        )?;
        if let Some(kib) = self.worker_peak_kib {
            writeln!(f, "worker:   {:.1} MB peak RSS", kib as f64 / 1024.0)?;
        }
        if let Some(bytes) = self.redis_bytes {
            writeln!(
                f,
                "redis:    {:.1} MB for the campaign (state, snapshot, bitmaps, batch jobs)",
                bytes as f64 / 1e6
            )?;
        }
        if let Some(switched) = self.switched {
            writeln!(
                f,
                "failover: SendGrid refusing connections; the first recipient through the secondary {:.2} s after the start",
                switched.as_secs_f64()
            )?;
        }
        write!(
            f,
            "repeats:  {} possibly duplicated",
            self.possibly_duplicated
        )
    }
}

/// Which provider the campaign goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Via {
    /// SendGrid, to the stand-in (personalizations).
    Sendgrid,
    /// SMTP, to Postfix's smtp-sink.
    Smtp,
    /// Postmark, to the stand-in (batch calls).
    Postmark,
    /// Mailgun, to the stand-in (batch calls with recipient variables).
    Mailgun,
}

impl Via {
    /// The worker's provider settings, and the smtp-sink when it needs one.
    async fn settings(
        self,
        stand_in: &str,
    ) -> anyhow::Result<(Option<tokio::process::Child>, Vec<(&'static str, String)>)> {
        Ok(match self {
            Self::Sendgrid => (
                None,
                vec![
                    ("MAILROOM_PROVIDER", "sendgrid".to_owned()),
                    ("SENDGRID_API_URL", stand_in.to_owned()),
                    ("SENDGRID_API_KEY", "SG.bench.key".to_owned()),
                ],
            ),
            Self::Smtp => {
                let (sink, url) = smtp_sink().await?;
                (
                    Some(sink),
                    vec![
                        ("MAILROOM_PROVIDER", "smtp".to_owned()),
                        ("SMTP_URL", url),
                        ("MAILROOM_SMTP_POOL_SIZE", "32".to_owned()),
                    ],
                )
            }
            Self::Postmark => (
                None,
                vec![
                    ("MAILROOM_PROVIDER", "postmark".to_owned()),
                    ("POSTMARK_API_URL", stand_in.to_owned()),
                    ("POSTMARK_SERVER_TOKEN", "bench-token".to_owned()),
                ],
            ),
            Self::Mailgun => (
                None,
                vec![
                    ("MAILROOM_PROVIDER", "mailgun".to_owned()),
                    ("MAILGUN_API_URL", stand_in.to_owned()),
                    ("MAILGUN_API_KEY", "bench-key".to_owned()),
                    ("MAILGUN_DOMAIN", "bench.example.com".to_owned()),
                ],
            ),
        })
    }

    /// Its name in `MAILROOM_ROUTES`.
    fn name(self) -> &'static str {
        match self {
            Self::Sendgrid => "sendgrid",
            Self::Smtp => "smtp",
            Self::Postmark => "postmark",
            Self::Mailgun => "mailgun",
        }
    }

    fn shown(self) -> &'static str {
        match self {
            Self::Sendgrid => "SendGrid provider, local stand-in answering 202",
            Self::Smtp => "SMTP provider, Postfix smtp-sink on loopback",
            Self::Postmark => "Postmark provider, local stand-in answering each message of a batch",
            Self::Mailgun => "Mailgun provider, local stand-in answering each batch call",
        }
    }
}

/// Postmark's answer to a batch of `n` messages, every one taken.
fn postmark_answer(n: usize) -> String {
    let one = r#"{"ErrorCode":0,"Message":"OK","MessageID":"bench","To":"bench@example.com"}"#;
    format!("[{}]", vec![one; n].join(","))
}

/// What the stand-in counts: requests, recipients, and when the first request came.
struct Counted {
    requests: Arc<AtomicU64>,
    recipients: Arc<AtomicU64>,
    first: Arc<std::sync::OnceLock<Instant>>,
}

/// A stand-in SendGrid and Postmark counting requests and the recipients in them.
async fn stand_in() -> anyhow::Result<(String, Counted)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (requests, recipients) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let first = Arc::new(std::sync::OnceLock::new());
    let (r, p, f) = (requests.clone(), recipients.clone(), first.clone());
    let (r2, p2, f2) = (requests.clone(), recipients.clone(), first.clone());
    let (r3, p3, f3) = (requests.clone(), recipients.clone(), first.clone());
    let accept = Router::new()
        .route(
            "/v3/mail/send",
            post(move |body: Bytes| {
                let (r, p, f) = (r.clone(), p.clone(), f.clone());
                async move {
                    f.get_or_init(Instant::now);
                    // Each personalization has one `"to":[` (the body's own fields have none).
                    let count = memchr::memmem::find_iter(&body, b"\"to\":[").count();
                    r.fetch_add(1, Ordering::Relaxed);
                    p.fetch_add(count as u64, Ordering::Relaxed);
                    (StatusCode::ACCEPTED, [("x-message-id", "bench")])
                }
            }),
        )
        .route(
            "/email/batch",
            post(move |body: Bytes| {
                let (r, p, f) = (r2.clone(), p2.clone(), f2.clone());
                async move {
                    f.get_or_init(Instant::now);
                    // Each message names its stream once.
                    let count = memchr::memmem::find_iter(&body, b"\"MessageStream\":").count();
                    r.fetch_add(1, Ordering::Relaxed);
                    p.fetch_add(count as u64, Ordering::Relaxed);
                    (
                        StatusCode::OK,
                        [("content-type", "application/json")],
                        postmark_answer(count),
                    )
                }
            }),
        );
    let accept = accept.route(
        "/v3/bench.example.com/messages",
        post(move |body: Bytes| {
            let (r, p, f) = (r3.clone(), p3.clone(), f3.clone());
            async move {
                f.get_or_init(Instant::now);
                // Each recipient is one `to` field; `from` always comes first.
                let count = memchr::memmem::find_iter(&body, b"&to=").count();
                r.fetch_add(1, Ordering::Relaxed);
                p.fetch_add(count as u64, Ordering::Relaxed);
                (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    r#"{"id":"<bench@bench.example.com>","message":"Queued. Thank you."}"#,
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, accept).await });
    let counted = Counted {
        requests,
        recipients,
        first,
    };
    Ok((format!("http://{address}"), counted))
}

/// `bench campaign`: `rows` subscribers, one campaign, one worker.
///
/// # Errors
/// When the import, the worker or the campaign fails.
pub(crate) async fn campaign(
    settings: &Settings,
    rows: usize,
    via: Via,
    concurrency: usize,
    primary_down: bool,
) -> anyhow::Result<CampaignReport> {
    if primary_down && via == Via::Sendgrid {
        bail!("--primary-down fails SendGrid over to --via smtp or postmark");
    }
    let prefix = bench_prefix(settings);
    let outcome = run(settings, &prefix, rows, (via, primary_down), concurrency).await;
    delete_prefix(settings.redis_connection().await?, &prefix).await?;
    outcome
}

/// The campaign: the `newsletter` with the subscriber's name and an attribute in it.
fn newsletter(list: ListId) -> Spec {
    Spec {
        name: "bench".to_owned(),
        lists: vec![list],
        segment: None,
        content: Content::Template(TemplateContent {
            name: "newsletter".to_owned(),
            data: serde_json::json!({
                "title": "News for {{name}}",
                "sections": [
                    {"heading": "This month", "body": "Dear {{name}}, here is what changed on your {{attributes.plan}} plan.", "link": "https://example.com/news"},
                    {"heading": "Coming up", "body": "More of what you asked for."}
                ]
            }),
        }),
        from: None,
        reply_to: None,
        categories: vec!["news".to_owned()],
        rate_limit: None,
        // As a campaign is by default: through SMTP and Postmark, mailroom rewrites each
        // message's links.
        tracking: mailroom::campaigns::model::tracked(),
    }
}

/// Polls until the campaign finishes: it, and how long after `started` its audience was fixed.
async fn finished(
    store: &CampaignStore,
    id: CampaignId,
    worker: &mut tokio::process::Child,
    started: Instant,
) -> anyhow::Result<(Campaign, Option<Duration>)> {
    let mut fixed = None;
    let campaign = loop {
        let c = store.get(id).await?.context("the campaign vanished")?;
        if fixed.is_none() && c.audience.is_some() {
            fixed = Some(started.elapsed());
        }
        if c.state == State::Finished {
            break c;
        }
        if c.state != State::Running && c.state != State::Scheduled {
            bail!("the campaign ended {:?}: {:?}", c.state, c.reasons);
        }
        if let Some(status) = worker.try_wait()? {
            bail!("the worker exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    Ok((campaign, fixed))
}

/// One `mailroom work` for the campaign: SendGrid at `url` unless `env` says otherwise.
fn spawn_worker(
    prefix: &str,
    concurrency: usize,
    env: &[(&str, String)],
) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new(crate::mailroom_exe()?)
        .args(["work", "--concurrency", "4"])
        .env("MAILROOM_REDIS_PREFIX", prefix)
        .env("MAILROOM_LINK_KEYS", KEYS)
        .env("MAILROOM_PUBLIC_URL", "https://mail.example.com")
        .env("MAILROOM_CAMPAIGN_CONCURRENCY", concurrency.to_string())
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start mailroom work")
}

/// SendGrid first on the campaign's route, at a port that refuses connections.
fn sendgrid_down(via: Via) -> anyhow::Result<Vec<(&'static str, String)>> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    Ok(vec![
        ("MAILROOM_ROUTES", format!("bulk=sendgrid>{}", via.name())),
        ("SENDGRID_API_URL", format!("http://{closed}")),
        ("SENDGRID_API_KEY", "SG.bench.key".to_owned()),
    ])
}

async fn run(
    settings: &Settings,
    prefix: &str,
    rows: usize,
    (via, primary_down): (Via, bool),
    concurrency: usize,
) -> anyhow::Result<CampaignReport> {
    let (list, _) = import_into(settings, prefix, rows).await?;
    let mut conn = settings.redis_connection().await?;
    let before = used_memory(&mut conn).await?;
    let store = CampaignStore::new(conn.clone(), prefix, 3600);
    let id = CampaignId::fresh();
    let spec = newsletter(list);
    store.create(id, &spec, None).await?;
    let (url, counted) = stand_in().await?;
    let (mut sink, mut env) = via.settings(&url).await?;
    if primary_down {
        env.extend(sendgrid_down(via)?);
    }
    let mut worker = spawn_worker(prefix, concurrency, &env)?;
    // Let the worker come up before the clock starts: the figure is the campaign's, not the
    // process start's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let producer = Producer::new(conn.clone(), prefix.to_owned());
    let started = Instant::now();
    lifecycle::change(&store, &producer, id, Change::Schedule(Utc::now())).await?;
    let (campaign, fixed) = finished(&store, id, &mut worker, started).await?;
    let elapsed = started.elapsed();
    let worker_peak_kib = worker.id().and_then(peak_kib);
    let _ = worker.start_kill();
    let _ = worker.wait().await;
    if let Some(sink) = sink.as_mut() {
        let _ = sink.start_kill();
    }
    let after = used_memory(&mut conn).await?;
    if campaign.sent != rows as u64 {
        bail!("{} of {rows} sent ({:?})", campaign.sent, campaign.reasons);
    }
    let recipients = counted.recipients.load(Ordering::Relaxed);
    if via != Via::Smtp && recipients < rows as u64 {
        bail!("the stand-in saw {recipients} recipients of {rows}");
    }
    Ok(CampaignReport {
        recipients: rows as u64,
        provider: via.shown(),
        elapsed,
        fixed,
        requests: counted.requests.load(Ordering::Relaxed),
        worker_peak_kib,
        redis_bytes: after.checked_sub(before),
        possibly_duplicated: campaign.possibly_duplicated,
        switched: (counted.first.get())
            .filter(|_| primary_down)
            .map(|first| first.saturating_duration_since(started)),
    })
}
