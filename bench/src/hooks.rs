//! `webhooks`: deliveries of events to the services' endpoints by one `mailroom work`, to a
//! receiver in this process that answers 200 to each (its endpoints all at the same port).
//! The jobs are queued before the worker starts, as the publisher queues them (one job per
//! endpoint and batch of events); the clock runs from the worker's start until the receiver has
//! every event.

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use mailroom::config::Settings;
use mailroom_jobs::{DeliverWebhook, EnqueueOptions, Job as _, Producer, WebhookMessage};

use crate::common::{BENCH_KEY, bench_prefix, delete_prefix, start_server};

const SIGNING_KEY: &str = "bench-webhook-signing-key-0123456789abcdef";

/// How big a `bench webhooks` run is.
#[derive(Debug, clap::Args)]
pub(crate) struct HooksRun {
    /// Events to deliver.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Events per delivery job (the publisher puts a provider batch's events for one endpoint
    /// in one job).
    #[arg(long, default_value_t = 100)]
    per_job: usize,
    /// Endpoints the events are spread over.
    #[arg(long, default_value_t = 4)]
    endpoints: usize,
}

/// What `bench webhooks` measured.
#[derive(Debug)]
pub(crate) struct HooksReport {
    endpoints: usize,
    events: usize,
    events_per_job: usize,
    seconds: f64,
    deliveries_per_second: f64,
}

impl std::fmt::Display for HooksReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events to {} endpoints, {} a job: {:.2} s, {:.0} deliveries/s from one worker",
            self.events,
            self.endpoints,
            self.events_per_job,
            self.seconds,
            self.deliveries_per_second
        )
    }
}

/// Receives POSTs and counts them.
async fn receiver(count: Arc<AtomicUsize>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_: axum::body::Bytes| {
            count.fetch_add(1, Ordering::Relaxed);
            async { "ok" }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Makes `endpoints` endpoints at `url` through the API: their ids.
async fn endpoints(
    base: &str,
    client: &reqwest::Client,
    url: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let made: serde_json::Value = (client.post(format!("{base}/v1/webhooks")))
            .bearer_auth(BENCH_KEY)
            .json(&serde_json::json!({"url": url, "events": ["email.delivered"]}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        ids.push(made["id"].as_str().context("an endpoint id")?.to_owned());
    }
    Ok(ids)
}

/// `events` delivery events for `endpoints`, `per_job` to a job, queued round-robin.
async fn queue(
    producer: &Producer,
    endpoints: &[String],
    events: usize,
    per_job: usize,
) -> anyhow::Result<()> {
    let body = |n: usize| {
        serde_json::json!({"type": "email.delivered", "timestamp": "2026-12-08T00:00:00Z",
            "data": {"message_id": format!("m-{n}"), "email": format!("p{n}@example.com"), "key": null,
                     "categories": ["receipts"], "source": "sendgrid"}})
        .to_string()
    };
    let mut batch = Vec::with_capacity(1000);
    for (j, start) in (0..events).step_by(per_job).enumerate() {
        let job = DeliverWebhook {
            endpoint: endpoints[j % endpoints.len()].clone(),
            events: (start..(start + per_job).min(events))
                .map(|n| WebhookMessage {
                    id: format!("msg_{n:032x}"),
                    body: body(n),
                })
                .collect(),
        };
        batch.push(job);
        if batch.len() == 1000 {
            push(producer, &mut batch).await?;
        }
    }
    push(producer, &mut batch).await
}

async fn push(producer: &Producer, batch: &mut Vec<DeliverWebhook>) -> anyhow::Result<()> {
    for job in batch.drain(..) {
        let options = EnqueueOptions {
            id: Some(uuid::Uuid::now_v7()),
            ..job.enqueue_options()
        };
        producer.push_with(&job, options).await?;
    }
    Ok(())
}

pub(crate) async fn webhooks(settings: &Settings, run: HooksRun) -> anyhow::Result<HooksReport> {
    let HooksRun {
        events,
        per_job,
        endpoints: endpoint_count,
    } = run;
    let prefix = bench_prefix(settings);
    let conn = settings.redis_connection().await?;
    let env = [
        ("MAILROOM_WEBHOOK_SIGNING_KEY", SIGNING_KEY),
        ("MAILROOM_WEBHOOKS_ALLOW_HTTP", "true"),
        ("MAILROOM_WEBHOOKS_ALLOW_PRIVATE", "true"),
    ];
    let (server, base, client) = start_server(&prefix, &env).await?;
    let count = Arc::new(AtomicUsize::new(0));
    let url = receiver(count.clone()).await?;
    let ids = endpoints(&base, &client, &url, endpoint_count).await?;
    queue(
        &Producer::new(conn.clone(), prefix.clone()),
        &ids,
        events,
        per_job,
    )
    .await?;
    let started = Instant::now();
    let mut worker = tokio::process::Command::new(crate::mailroom_exe()?)
        .args(["work", "--concurrency", "32"])
        .env("MAILROOM_REDIS_PREFIX", &prefix)
        .envs(env)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the worker process")?;
    while count.load(Ordering::Relaxed) < events {
        if let Some(status) = worker.try_wait()? {
            bail!("the worker exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(worker);
    drop(server);
    delete_prefix(conn, &prefix).await?;
    Ok(HooksReport {
        endpoints: endpoint_count,
        events,
        events_per_job: per_job,
        seconds,
        deliveries_per_second: events as f64 / seconds,
    })
}
