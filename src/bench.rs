//! `mailroom bench`: how fast the queue moves no-op jobs on this machine.
//!
//! Pushes N no-op jobs (pipelined, through the jobs crate's Producer) under a fresh key prefix,
//! then starts one `mailroom work` process on that prefix and times it until every job is done.
//! Reports pushes/s, jobs/s processed and the worker's peak resident memory (VmHWM). The keys
//! are deleted afterwards.

use std::{
    fmt,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use mailroom_jobs::{Job, Noop, Producer};
use redis::AsyncCommands;

use crate::{config::Settings, queue::QueueAdmin};

/// What a run measured.
#[derive(Debug, Clone)]
pub struct QueueReport {
    /// Jobs pushed and processed.
    pub jobs: usize,
    /// Push rate, jobs per second.
    pub pushed_per_sec: f64,
    /// Processing rate of the one worker process, jobs per second.
    pub processed_per_sec: f64,
    /// The worker's peak resident set, in KiB.
    pub worker_peak_kib: Option<u64>,
}

impl fmt::Display for QueueReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "jobs:      {}", self.jobs)?;
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

/// Runs the benchmark with `jobs` jobs and a worker of `concurrency`.
///
/// # Errors
/// When Redis fails, the worker cannot start, or it exits before finishing.
pub async fn queue(
    settings: &Settings,
    jobs: usize,
    concurrency: usize,
) -> anyhow::Result<QueueReport> {
    let prefix = format!(
        "{}-bench-{}",
        settings.redis_prefix,
        uuid::Uuid::now_v7().simple()
    );
    let client = settings.redis_client()?;
    let conn = redis::aio::ConnectionManager::new(client).await?;
    let producer = Producer::new(conn.clone(), prefix.clone());
    let result = measure(settings, &producer, &prefix, jobs, concurrency).await;
    delete_prefix(conn, &prefix).await?;
    result
}

async fn measure(
    settings: &Settings,
    producer: &Producer,
    prefix: &str,
    jobs: usize,
    concurrency: usize,
) -> anyhow::Result<QueueReport> {
    let batch = vec![Noop::default(); 10_000];
    let started = Instant::now();
    let mut pushed = 0;
    while pushed < jobs {
        let n = (jobs - pushed).min(batch.len());
        producer.push_many(&batch[..n]).await?;
        pushed += n;
    }
    let pushed_per_sec = jobs as f64 / started.elapsed().as_secs_f64();

    let exe = std::env::current_exe().context("cannot find the mailroom executable")?;
    let mut worker = tokio::process::Command::new(exe)
        .args(["work", "--concurrency", &concurrency.to_string()])
        .env("MAILROOM_REDIS_PREFIX", prefix)
        .env("RUST_LOG", "warn")
        .env("MAILROOM_LOG_FORMAT", "human")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the worker process")?;
    let started = Instant::now();
    let admin = QueueAdmin::new(producer_conn(settings).await?, prefix.to_owned());
    loop {
        let stats = admin.stats(Noop::QUEUE).await?;
        if stats.done_total >= jobs as u64 {
            break;
        }
        if let Some(status) = worker.try_wait()? {
            bail!("the worker exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let processed_per_sec = jobs as f64 / started.elapsed().as_secs_f64();
    let worker_peak_kib = worker.id().and_then(peak_kib);
    let _ = worker.start_kill();
    let _ = worker.wait().await;
    Ok(QueueReport {
        jobs,
        pushed_per_sec,
        processed_per_sec,
        worker_peak_kib,
    })
}

async fn producer_conn(settings: &Settings) -> anyhow::Result<redis::aio::ConnectionManager> {
    Ok(redis::aio::ConnectionManager::new(settings.redis_client()?).await?)
}

/// VmHWM (peak resident set) of process `pid`, from /proc.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn delete_prefix(
    mut conn: redis::aio::ConnectionManager,
    prefix: &str,
) -> anyhow::Result<()> {
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<'_, String> = conn.scan_match(format!("{prefix}:*")).await?;
        let mut keys = Vec::new();
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
        keys
    };
    for chunk in keys.chunks(1000) {
        let _: () = conn.del(chunk).await?;
    }
    Ok(())
}
