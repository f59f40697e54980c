//! `mailroom-bench restart`: emails sent while Redis is stopped and started again, twice, under
//! running mailroom processes.
//!
//! A Redis of the scenario's own (AOF, `appendfsync always`, as production should run it), a
//! SendGrid stand-in that counts each message id it is handed, one `mailroom work` and one
//! `mailroom serve`, both left running throughout. All emails are pushed, the worker starts,
//! and Redis is killed (SIGKILL: nothing but the AOF survives) twice while it sends. The report
//! says how many emails were lost (never handed to the stand-in), how many were handed over
//! twice (at most the jobs in flight at each restart), how long each process took to work
//! again, and whether `mailroom queue stats` agrees afterwards.

use std::{
    collections::HashMap,
    fmt,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use axum::{Router, body::Bytes, http::StatusCode, routing::post};
use mailroom_jobs::{EmailMessage, Job, Mailbox, Producer, SendEmail};
use tokio::process::{Child, Command};

/// What the run found.
#[derive(Debug)]
pub(crate) struct RestartReport {
    emails: usize,
    lost: usize,
    duplicated: usize,
    in_flight_at_restarts: Vec<u64>,
    worker_back_after: Vec<Duration>,
    api_back_after: Vec<Duration>,
    stats: String,
}

impl fmt::Display for RestartReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &[Duration]| {
            d.iter()
                .map(|d| format!("{} ms", d.as_millis()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "{} emails through two Redis restarts (AOF, appendfsync always)",
            self.emails
        )?;
        writeln!(f, "lost: {}", self.lost)?;
        writeln!(
            f,
            "handed over twice: {} (jobs in flight at the restarts: {:?})",
            self.duplicated, self.in_flight_at_restarts
        )?;
        writeln!(
            f,
            "worker sending again after: {}",
            ms(&self.worker_back_after)
        )?;
        writeln!(f, "API accepting again after: {}", ms(&self.api_back_after))?;
        write!(f, "mailroom queue stats afterwards:\n{}", self.stats)
    }
}

/// A private `redis-server` with AOF on.
struct Redis {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Redis {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start redis-server")?;
        self.child = Some(child);
        let client = redis::Client::open(self.url())?;
        let started = Instant::now();
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("redis-server did not come back");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

fn mailroom(redis: &Redis, prefix: &str, sendgrid: &str) -> anyhow::Result<Command> {
    let mut command = Command::new(crate::mailroom_exe()?);
    command
        .env("REDIS_URL", redis.url())
        .env("MAILROOM_REDIS_PREFIX", prefix)
        .env("MAILROOM_PROVIDER", "sendgrid")
        .env("SENDGRID_API_URL", sendgrid)
        .env("SENDGRID_API_KEY", "SG.bench.key")
        .env("MAILROOM_API_KEYS", "bench-key")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    Ok(command)
}

/// The stand-in: counts what it is handed, by mailroom id. Its URL, the counts, its task.
async fn counting_stand_in()
-> anyhow::Result<(String, Handed, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let handed: Handed = Arc::default();
    let counter = handed.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sendgrid = format!("http://{}", listener.local_addr()?);
    let app = Router::new().route(
        "/v3/mail/send",
        post(move |body: Bytes| {
            let counter = counter.clone();
            async move {
                let id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["custom_args"]["mailroom_id"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                if let Ok(mut seen) = counter.lock() {
                    *seen.entry(id).or_default() += 1;
                }
                (StatusCode::ACCEPTED, [("x-message-id", "restart-bench")])
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((sendgrid, handed, server))
}

/// What the stand-in was handed: how many times each mailroom id.
type Handed = Arc<Mutex<HashMap<String, u32>>>;

/// How many distinct messages the stand-in was handed.
fn handed_count(handed: &Handed) -> usize {
    handed.lock().map(|m| m.len()).unwrap_or(0)
}

/// Pushes `emails` receipts onto the queue of the Redis at `url`: their ids.
async fn push_emails(url: &str, prefix: &str, emails: usize) -> anyhow::Result<Vec<String>> {
    let timeout = mailroom::config::REDIS_RESPONSE_TIMEOUT;
    let conn = mailroom_jobs::RedisClient::open(url, timeout)?
        .connect(timeout)
        .await?;
    let producer = Producer::new(conn, prefix);
    let mut ids = Vec::with_capacity(emails);
    let mut pushed = 0;
    while pushed < emails {
        let round: Vec<SendEmail> = (pushed..emails.min(pushed + 5_000))
            .map(|i| {
                SendEmail::new(EmailMessage {
                    to: vec![Mailbox::new(format!("customer{i}@example.com"))],
                    subject: Some("Your receipt".to_owned()),
                    text: Some("Thank you for your order.".to_owned()),
                    ..EmailMessage::default()
                })
            })
            .collect();
        ids.extend(producer.push_many(&round).await?);
        pushed += round.len();
    }
    Ok(ids)
}

/// How many jobs of the email queue are in flight.
async fn in_flight(url: &str, prefix: &str) -> anyhow::Result<u64> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    Ok(redis::cmd("ZCARD")
        .arg(mailroom_jobs::QueueKeys::new(prefix, SendEmail::QUEUE).inflight())
        .query_async(&mut conn)
        .await?)
}

/// Waits until the worker hands over a message again (more than `before`) and the API
/// accepts one, after restart number `restart`: how long each took.
async fn until_back(
    client: &reqwest::Client,
    api: &str,
    handed: &Handed,
    before: usize,
    restart: usize,
) -> anyhow::Result<(Option<Duration>, Option<Duration>)> {
    let back = Instant::now();
    let mut worker_back = None;
    let mut api_back = None;
    while worker_back.is_none() || api_back.is_none() {
        if worker_back.is_none() && handed_count(handed) > before {
            worker_back = Some(back.elapsed());
        }
        if api_back.is_none() {
            let accepted = client
                .post(format!("{api}/v1/emails"))
                .bearer_auth("bench-key")
                .json(&serde_json::json!({"to": "probe@example.com", "subject": "probe", "text": "probe"}))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::ACCEPTED);
            if accepted {
                api_back = Some(back.elapsed());
            }
        }
        if back.elapsed() > Duration::from_secs(60) {
            bail!("a process did not come back after restart {restart}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((worker_back, api_back))
}

/// Waits, for up to two minutes, until every one of `ids` was handed over.
async fn until_all_handed(handed: &Handed, ids: &[String]) {
    let started = Instant::now();
    let all = |seen: &HashMap<String, u32>| ids.iter().all(|id| seen.contains_key(id));
    while !handed.lock().map(|m| all(&m)).unwrap_or(false) {
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many of `ids` were never handed over, and how many more than once.
fn lost_and_duplicated(handed: &Handed, ids: &[String]) -> (usize, usize) {
    let seen = handed.lock().map(|m| m.clone()).unwrap_or_default();
    let lost = ids.iter().filter(|id| !seen.contains_key(*id)).count();
    let duplicated = (ids.iter())
        .filter(|id| seen.get(*id).is_some_and(|n| *n > 1))
        .count();
    (lost, duplicated)
}

/// Runs the scenario with `emails` emails.
///
/// # Errors
/// When a process cannot start, or the emails are not all handed over within two minutes.
pub(crate) async fn restart(emails: usize) -> anyhow::Result<RestartReport> {
    let dir = std::env::temp_dir().join(format!("mailroom-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut redis = Redis {
        port,
        dir: dir.clone(),
        child: None,
    };
    redis.start().await?;

    let (sendgrid, handed, server) = counting_stand_in().await?;

    let prefix = "restart-bench";
    let ids = push_emails(&redis.url(), prefix, emails).await?;

    let api_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut api_process = mailroom(&redis, prefix, &sendgrid)?
        .arg("serve")
        .env("MAILROOM_LISTEN", format!("127.0.0.1:{api_port}"))
        .spawn()?;
    let mut worker = mailroom(&redis, prefix, &sendgrid)?
        .args(["work", "--concurrency", "32"])
        .spawn()?;
    let client = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{api_port}");

    let mut in_flight_at_restarts = Vec::new();
    let mut worker_back_after = Vec::new();
    let mut api_back_after = Vec::new();
    for restart in 1..=2 {
        // Let a share of the emails go first.
        let threshold = emails * restart / 3;
        let started = Instant::now();
        while handed_count(&handed) < threshold {
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the worker stalled before restart {restart}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let in_flight = in_flight(&redis.url(), prefix).await?;
        in_flight_at_restarts.push(in_flight);
        redis.kill().await;
        tokio::time::sleep(Duration::from_secs(2)).await; // the outage
        let before = handed_count(&handed);
        redis.start().await?;
        let (worker_back, api_back) = until_back(&client, &api, &handed, before, restart).await?;
        worker_back_after.extend(worker_back);
        api_back_after.extend(api_back);
    }

    until_all_handed(&handed, &ids).await;
    // Let the probes and any retry settle before reading the stats.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = mailroom(&redis, prefix, &sendgrid)?
        .args(["queue", "stats"])
        .stdout(Stdio::piped())
        .output()
        .await?;
    let (lost, duplicated) = lost_and_duplicated(&handed, &ids);
    let _ = worker.start_kill();
    let _ = api_process.start_kill();
    server.abort();
    redis.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RestartReport {
        emails,
        lost,
        duplicated,
        in_flight_at_restarts,
        worker_back_after,
        api_back_after,
        stats: String::from_utf8_lossy(&stats.stdout).into_owned(),
    })
}
