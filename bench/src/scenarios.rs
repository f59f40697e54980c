//! The worker scenarios: how fast one `mailroom work` process moves jobs on this machine.
//!
//! - `bench queue`: N no-op jobs, pushed through the jobs crate's Producer (pipelined).
//! - `bench email`: N send jobs (one recipient, about 2 KB of HTML) sent through the SendGrid
//!   provider to a local HTTP server that answers 202 like SendGrid does; with `--templated`,
//!   `verification` jobs in five locales, rendered by the worker.
//! - `bench smtp`: the same through the SMTP provider to Postfix's `smtp-sink`.
//!
//! Each pushes everything first under a fresh key prefix, then starts one worker process on
//! that prefix and times it until every job is done. They report the push rate, the
//! processing rate and the worker's peak resident memory (VmHWM), and delete their keys. The
//! scenarios against `mailroom serve` are in [`crate::served`].

use std::{
    fmt,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use axum::{Router, http::StatusCode, routing::post};
use mailroom_jobs::RedisConnection;
use mailroom_jobs::{EmailMessage, Job, Mailbox, Noop, Producer, SendEmail, TemplateRef};

use mailroom::{config::Settings, queue::QueueAdmin};

use crate::common::{bench_prefix, delete_prefix, peak_kib};

/// What a run measured.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// What was measured.
    pub(crate) what: &'static str,
    /// Jobs pushed and processed.
    pub(crate) jobs: usize,
    /// Push rate, jobs per second.
    pub(crate) pushed_per_sec: f64,
    /// Processing rate of the one worker process, jobs per second.
    pub(crate) processed_per_sec: f64,
    /// The worker's peak resident set, in KiB.
    pub(crate) worker_peak_kib: Option<u64>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} jobs", self.what, self.jobs)?;
        writeln!(f, "pushed:    {:.0} jobs/s", self.pushed_per_sec)?;
        writeln!(
            f,
            "processed: {:.0} jobs/s (one worker process)",
            self.processed_per_sec
        )?;
        match self.worker_peak_kib {
            Some(kib) => write!(f, "worker peak memory: {:.1} MiB", kib as f64 / 1024.0),
            None => write!(f, "worker peak memory: unknown (no /proc)"),
        }
    }
}

/// `bench queue`: no-op jobs.
///
/// # Errors
/// When Redis fails, the worker cannot start, or it exits before finishing.
pub(crate) async fn queue(
    settings: &Settings,
    jobs: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    run(
        settings,
        "no-op jobs",
        |_| Noop::default(),
        jobs,
        concurrency,
        &[],
    )
    .await
}

/// `bench smtp`: send jobs through the SMTP provider to Postfix's `smtp-sink` on loopback (a
/// receiver that accepts and discards: `apt-get install postfix`), `pool` connections.
///
/// # Errors
/// When smtp-sink cannot start, Redis fails, or the worker exits before finishing.
pub(crate) async fn smtp(
    settings: &Settings,
    jobs: usize,
    concurrency: usize,
    pool: usize,
) -> anyhow::Result<Report> {
    let (mut sink, url) = crate::common::smtp_sink().await?;
    let html = format!(
        "<html><body><h1>Your receipt</h1>{}</body></html>",
        "<p>Thank you for your order. Here is what you bought and when it ships.</p>".repeat(26)
    );
    let make = |i: usize| {
        SendEmail::new(EmailMessage {
            to: vec![Mailbox::new(format!("customer{i}@example.com"))],
            subject: Some("Your receipt".to_owned()),
            html: Some(html.clone()),
            text: Some("Thank you for your order.".to_owned()),
            ..EmailMessage::default()
        })
    };
    let pool = pool.to_string();
    let env = [
        ("MAILROOM_PROVIDER", "smtp"),
        ("SMTP_URL", url.as_str()),
        ("MAILROOM_SMTP_POOL_SIZE", pool.as_str()),
    ];
    let report = run(
        settings,
        "send jobs (SMTP provider, Postfix smtp-sink on loopback)",
        make,
        jobs,
        concurrency,
        &env,
    )
    .await;
    let _ = sink.start_kill();
    report
}

/// `bench email`: send jobs through the SendGrid provider to a local server answering 202.
///
/// # Errors
/// When Redis fails, the worker cannot start, or it exits before finishing.
pub(crate) async fn email(
    settings: &Settings,
    jobs: usize,
    concurrency: usize,
    templated: bool,
) -> anyhow::Result<Report> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let accept = Router::new().route(
        "/v3/mail/send",
        post(|| async { (StatusCode::ACCEPTED, [("x-message-id", "bench")]) }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, accept).await });
    let html = format!(
        "<html><body><h1>Your receipt</h1>{}</body></html>",
        "<p>Thank you for your order. Here is what you bought and when it ships.</p>".repeat(26)
    );
    let make = |i: usize| {
        let to = vec![Mailbox::new(format!("customer{i}@example.com"))];
        SendEmail::new(if templated {
            EmailMessage {
                to,
                template: Some(TemplateRef {
                    name: "verification".to_owned(),
                    locale: Some(["en", "fr-CA", "de", "ar", "ja"][i % 5].to_owned()),
                    data: serde_json::json!({
                        "name": format!("Customer {i}"),
                        "link": format!("https://app.example.com/verify?token={i:016x}"),
                        "expires_in_minutes": 60,
                    }),
                }),
                ..EmailMessage::default()
            }
        } else {
            EmailMessage {
                to,
                subject: Some("Your receipt".to_owned()),
                html: Some(html.clone()),
                text: Some("Thank you for your order.".to_owned()),
                ..EmailMessage::default()
            }
        })
    };
    let url = format!("http://{address}");
    let env = [
        ("MAILROOM_PROVIDER", "sendgrid"),
        ("SENDGRID_API_URL", url.as_str()),
        ("SENDGRID_API_KEY", "SG.bench.key"),
    ];
    let what = if templated {
        "templated send jobs (verification in five locales, SendGrid provider, local 202 server)"
    } else {
        "send jobs (SendGrid provider, local 202 server)"
    };
    let report = run(settings, what, make, jobs, concurrency, &env).await;
    server.abort();
    report
}

async fn run<J: Job>(
    settings: &Settings,
    what: &'static str,
    make: impl Fn(usize) -> J,
    jobs: usize,
    concurrency: usize,
    env: &[(&str, &str)],
) -> anyhow::Result<Report> {
    let prefix = bench_prefix(settings);
    let conn = settings.redis_connection().await?;
    let producer = Producer::new(conn.clone(), prefix.clone());
    let result = measure(
        &producer,
        conn.clone(),
        &prefix,
        make,
        jobs,
        concurrency,
        env,
    )
    .await;
    delete_prefix(conn, &prefix).await?;
    result.map(
        |(pushed_per_sec, processed_per_sec, worker_peak_kib)| Report {
            what,
            jobs,
            pushed_per_sec,
            processed_per_sec,
            worker_peak_kib,
        },
    )
}

async fn measure<J: Job>(
    producer: &Producer,
    conn: RedisConnection,
    prefix: &str,
    make: impl Fn(usize) -> J,
    jobs: usize,
    concurrency: usize,
    env: &[(&str, &str)],
) -> anyhow::Result<(f64, f64, Option<u64>)> {
    let started = Instant::now();
    let mut pushed = 0;
    while pushed < jobs {
        let round: Vec<J> = (pushed..jobs.min(pushed + 10_000)).map(&make).collect();
        producer.push_many(&round).await?;
        pushed += round.len();
    }
    let pushed_per_sec = jobs as f64 / started.elapsed().as_secs_f64();

    let mut worker = tokio::process::Command::new(worker_exe::<J>()?)
        .args(["work", "--concurrency", &concurrency.to_string()])
        .env("MAILROOM_REDIS_PREFIX", prefix)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the worker process")?;
    let started = Instant::now();
    let admin = QueueAdmin::new(conn, prefix.to_owned());
    loop {
        let stats = admin.stats(J::QUEUE).await?;
        if stats.done_total >= jobs as u64 {
            break;
        }
        if stats.dead_total > 0 {
            bail!(
                "{} jobs were dead-lettered; see `mailroom queue dead`",
                stats.dead_total
            );
        }
        if let Some(status) = worker.try_wait()? {
            bail!("the worker exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let processed_per_sec = jobs as f64 / started.elapsed().as_secs_f64();
    let peak = worker.id().and_then(peak_kib);
    let _ = worker.start_kill();
    let _ = worker.wait().await;
    Ok((pushed_per_sec, processed_per_sec, peak))
}

/// The worker process for `J`: this binary's own no-op worker for the bench-only no-op queue,
/// `mailroom work` for everything mailroom itself runs.
fn worker_exe<J: Job>() -> anyhow::Result<std::path::PathBuf> {
    if J::QUEUE == Noop::QUEUE {
        std::env::current_exe().context("cannot find the mailroom-bench executable")
    } else {
        crate::mailroom_exe()
    }
}
