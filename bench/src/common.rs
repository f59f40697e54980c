//! What the scenarios share: their key prefixes, the processes they start (`mailroom serve`,
//! Postfix's `smtp-sink`), and how they read memory and latency.

use std::{process::Stdio, time::Duration};

use anyhow::{Context, bail};
use mailroom::config::Settings;
use mailroom_jobs::RedisConnection;
use redis::AsyncCommands;

/// Starts Postfix's `smtp-sink` on a free port: the process and its `smtp://` URL.
pub(crate) async fn smtp_sink() -> anyhow::Result<(tokio::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let sink = tokio::process::Command::new("smtp-sink")
        .args(["-c", "-u", "nobody", &format!("127.0.0.1:{port}"), "256"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start smtp-sink (apt-get install postfix)")?;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok((sink, format!("smtp://127.0.0.1:{port}")));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("smtp-sink did not start listening")
}

/// VmHWM (peak resident set) of process `pid`, from /proc.
pub(crate) fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) async fn delete_prefix(mut conn: RedisConnection, prefix: &str) -> anyhow::Result<()> {
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

/// A fresh key prefix for one benchmark run, deleted at its end.
pub(crate) fn bench_prefix(settings: &Settings) -> String {
    format!(
        "{}-bench-{}",
        settings.redis_prefix,
        uuid::Uuid::now_v7().simple()
    )
}

pub(crate) fn ms_f(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Starts `mailroom serve` on a free port with `prefix` and the API key `bench-key` (plus
/// `env`), and waits until it answers.
pub(crate) async fn start_server(
    prefix: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<(tokio::process::Child, String, reqwest::Client)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let server = tokio::process::Command::new(crate::mailroom_exe()?)
        .arg("serve")
        .env("MAILROOM_REDIS_PREFIX", prefix)
        .env("MAILROOM_LISTEN", format!("127.0.0.1:{port}"))
        .env("MAILROOM_API_KEYS", BENCH_KEY)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start mailroom serve")?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return Ok((server, base, client));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("mailroom serve did not start")
}

pub(crate) const BENCH_KEY: &str = "bench-key";
