//! The test harness: an isolated key prefix on the real Redis per test, cleaned up even when
//! the test fails, and polling with a deadline instead of sleeping.

#![allow(dead_code, unreachable_pub)]

pub mod app;
pub mod browser;
pub mod dns;
pub mod hooks;
pub mod moto;
pub mod redis_server;
pub mod sns;

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apalis::layers::WorkerBuilderExt;
use apalis_core::{
    error::{AbortError, BoxDynError, RetryAfterError},
    task::{attempt::Attempt, data::Data},
    worker::builder::WorkerBuilder,
};
use futures::FutureExt;
use mailroom::{
    queue::{Backoff, QueueConfig, RedisQueue},
    worker::{run_noop, supervise},
};
use mailroom_jobs::RedisConnection;
use mailroom_jobs::{Job, Noop, Producer, QueueKeys};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The Redis the tests use: `MAILROOM_TEST_REDIS_URL` (the test command, `scripts/test`, starts
/// one of its own and sets it, and runs the Redis-facing tests a second time with it naming
/// its Redis Cluster, `redis+cluster://…`), else the conventional local one.
pub fn redis_url() -> &'static str {
    static URL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::env::var("MAILROOM_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    });
    &URL
}

/// A test's own corner of Redis. Dropping it deletes every key under its prefix.
pub struct TestRedis {
    pub prefix: String,
    pub client: mailroom_jobs::RedisClient,
    pub conn: RedisConnection,
    /// Each server to scan for this test's keys: the one Redis, or every seed of a cluster.
    nodes: Vec<String>,
}

impl TestRedis {
    pub async fn new() -> Self {
        Self::at(redis_url()).await
    }

    /// A corner of the Redis at `url` (a test's own [`redis_server::RedisServer`]).
    pub async fn at(url: &str) -> Self {
        let prefix = format!("mrtest-{}", uuid::Uuid::now_v7().simple());
        let timeout = mailroom::config::REDIS_RESPONSE_TIMEOUT;
        let client = mailroom_jobs::RedisClient::open(url, timeout).expect("redis url");
        let conn = client
            .connect(timeout)
            .await
            .expect("the tests need Redis at MAILROOM_TEST_REDIS_URL or 127.0.0.1:6379 (scripts/test starts one)");
        Self {
            prefix,
            client,
            conn,
            nodes: nodes_of(url),
        }
    }

    /// Queue settings for tests: production defaults with a short lease and tiny backoff.
    pub fn config(&self) -> QueueConfig {
        QueueConfig {
            prefix: self.prefix.clone(),
            lease: Duration::from_secs(2),
            backoff: Backoff {
                base: Duration::from_millis(1),
                cap: Duration::from_millis(5),
            },
            ..QueueConfig::default()
        }
    }

    pub fn producer(&self) -> Producer {
        Producer::new(self.conn.clone(), self.prefix.clone())
    }

    pub fn keys(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(&self.prefix, queue)
    }

    pub fn conn(&self) -> RedisConnection {
        self.conn.clone()
    }

    /// Whether the tests run against a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.client.is_cluster()
    }

    /// Every key under this test's prefix, on every node.
    pub async fn all_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for node in &self.nodes {
            let client = redis::Client::open(node.as_str()).expect("node url");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("node");
            let mut iter: redis::AsyncIter<'_, String> = conn
                .scan_match(format!("{}:*", self.prefix))
                .await
                .expect("scan");
            while let Some(key) = iter.next_item().await {
                keys.push(key.expect("scan item"));
            }
        }
        keys.sort();
        keys
    }

    /// Every key under this test's prefix with its value, as text (`key = value`), for tests
    /// that prove something is stored nowhere (a token, an erased address).
    pub async fn dump(&self) -> Vec<String> {
        let mut dump = Vec::new();
        for key in self.all_keys().await {
            let mut conn = self.conn();
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("type");
            let text = |values: Vec<Vec<u8>>| {
                let values: Vec<String> = values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                format!("{values:?}")
            };
            let value = match kind.as_str() {
                "hash" => text(conn.hgetall(&key).await.expect("hgetall")),
                "string" => text(vec![conn.get(&key).await.expect("get")]),
                "list" => text(conn.lrange(&key, 0, -1).await.expect("lrange")),
                "zset" => text(conn.zrange(&key, 0, -1).await.expect("zrange")),
                "set" => text(conn.smembers(&key).await.expect("smembers")),
                "stream" => format!(
                    "{:?}",
                    redis::cmd("XRANGE")
                        .arg(&key)
                        .arg("-")
                        .arg("+")
                        .query_async::<Vec<(String, Vec<String>)>>(&mut conn)
                        .await
                        .expect("xrange")
                ),
                other => panic!("a {other} key: {key}"),
            };
            dump.push(format!("{key} = {value}"));
        }
        dump
    }

    pub async fn hget(&self, key: &str, field: &str) -> Option<String> {
        self.conn().hget(key, field).await.expect("hget")
    }

    pub async fn job_field(&self, queue: &str, id: &str, field: &str) -> Option<String> {
        self.hget(&self.keys(queue).job(id), field).await
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop cannot await, and this must run even after a panic.
        // Key by key, since on a cluster node the keys of one DEL must share a slot.
        for node in &self.nodes {
            let Ok(mut conn) = redis::Client::open(node.as_str()).and_then(|c| c.get_connection())
            else {
                continue;
            };
            let keys: Vec<String> =
                match redis::Commands::scan_match(&mut conn, format!("{}:*", self.prefix)) {
                    Ok(iter) => iter.filter_map(Result::ok).collect(),
                    Err(_) => continue,
                };
            for chunk in keys.chunks(1000) {
                let mut pipe = redis::pipe();
                for key in chunk {
                    pipe.del(key).ignore();
                }
                let _: redis::RedisResult<()> = pipe.query(&mut conn);
            }
        }
    }
}

/// The servers behind `url`: itself, or each seed node of a `redis+cluster://` URL (the test
/// command lists every master).
fn nodes_of(url: &str) -> Vec<String> {
    match url.strip_prefix(mailroom_jobs::connection::CLUSTER_SCHEME) {
        Some(seeds) => seeds
            .split(',')
            .map(|seed| format!("redis://{}", seed.trim().trim_end_matches('/')))
            .collect(),
        None => vec![url.to_owned()],
    }
}

/// A loopback port free right now, for a process the test starts, never handed out twice in
/// this test process.
///
/// Not the kernel's pick (`bind` to port 0): that port is free again once the probe closes, so
/// two tests running at once could be given the same one (two `mailroom dev` tests were, and
/// CI failed), and a child picking its own port the same way (`dev` starting a Redis) could
/// take the one a test chose for another child before that child binds it. Ports come instead
/// from a counter, below the range the kernel picks from, each checked to be free.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = test_port_range();
    let span = high - low;
    // Test binaries run one after another: each starts at its own place in the range, so a
    // port a finished binary's child still holds is seldom the first one tried.
    let start = std::process::id() % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(low + (start + n) % span).expect("the range is of ports");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}")
}

/// The ports [`free_port`] hands out: the 10,000 below the kernel's ephemeral range (Linux:
/// `ip_local_port_range`, 32768 by default), or 20000 – 30000 where that range starts too low.
fn test_port_range() -> (u32, u32) {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|low| *low >= 11_024)
        .unwrap_or(30_000);
    (low - 10_000, low)
}

/// Polls `check` every 5 ms until it yields a value; panics naming `what` after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A job for the queue's tests: it fails, asks for a delay, refuses or panics on demand.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Probe {
    pub n: u64,
    #[serde(default)]
    pub fail_times: u32,
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    #[serde(default)]
    pub abort: bool,
    #[serde(default)]
    pub panic: bool,
    #[serde(default)]
    pub sleep_ms: u64,
    /// Runs answered with a postponement (50 ms) before the job does anything.
    #[serde(default)]
    pub postpone_times: u32,
}

impl Job for Probe {
    const QUEUE: &'static str = "probe";
}

/// One run of a probe job as its handler saw it.
#[derive(Debug, Clone)]
pub struct Run {
    pub n: u64,
    pub attempt: usize,
    pub at: Instant,
    pub ok: bool,
}

/// What the probe handler saw, shared with the test.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Run>>>);

impl Recorder {
    pub fn runs(&self) -> Vec<Run> {
        self.0.lock().unwrap().clone()
    }

    pub fn runs_of(&self, n: u64) -> Vec<Run> {
        self.runs().into_iter().filter(|r| r.n == n).collect()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

async fn probe(job: Probe, attempt: Attempt, recorder: Data<Recorder>) -> Result<(), BoxDynError> {
    let attempt = attempt.current();
    let postponed = recorder.runs_of(job.n).len();
    if postponed < job.postpone_times as usize {
        recorder.0.0.lock().unwrap().push(Run {
            n: job.n,
            attempt,
            at: Instant::now(),
            ok: false,
        });
        return Err(mailroom::queue::Postpone(Duration::from_millis(50)).into());
    }
    let fails = job.abort || job.panic || attempt <= job.fail_times as usize;
    recorder.0.0.lock().unwrap().push(Run {
        n: job.n,
        attempt,
        at: Instant::now(),
        ok: !fails,
    });
    if job.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    }
    if job.panic {
        panic!("probe {} panicked", job.n);
    }
    if job.abort {
        return Err(AbortError::new(format!("probe {} refused", job.n)).into());
    }
    if attempt <= job.fail_times as usize {
        let error = format!("boom on attempt {attempt}");
        return Err(match job.retry_after_ms {
            Some(ms) => RetryAfterError::new(error, Duration::from_millis(ms)).into(),
            None => error.into(),
        });
    }
    Ok(())
}

/// An in-process worker, stopped gracefully with [`RunningWorker::stop`].
pub struct RunningWorker {
    pub name: String,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await.expect("worker task")
    }

    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// Starts a probe worker on `config`.
pub async fn start_probe_worker(
    redis: &TestRedis,
    config: QueueConfig,
    concurrency: usize,
    recorder: Recorder,
) -> RunningWorker {
    let name = unique_name("probe");
    let queue = RedisQueue::<Probe>::connect(redis.client.clone(), config, name.clone())
        .await
        .expect("connect");
    let worker = WorkerBuilder::new(name.as_str())
        .backend(queue.backend())
        .data(recorder)
        .concurrency(concurrency)
        .catch_panic()
        .build(probe);
    spawn(name, queue, move |stop| worker.run_until(stop).boxed())
}

/// Starts a worker running mailroom's own no-op handler on `config`.
pub async fn start_noop_worker(
    redis: &TestRedis,
    config: QueueConfig,
    concurrency: usize,
) -> RunningWorker {
    let name = unique_name("noop");
    let queue = RedisQueue::<Noop>::connect(redis.client.clone(), config, name.clone())
        .await
        .expect("connect");
    let worker = WorkerBuilder::new(name.as_str())
        .backend(queue.backend())
        .concurrency(concurrency)
        .catch_panic()
        .build(run_noop);
    spawn(name, queue, move |stop| worker.run_until(stop).boxed())
}

type StopSignal = futures::future::Map<
    tokio_util::sync::WaitForCancellationFutureOwned,
    fn(()) -> Result<(), std::io::Error>,
>;

fn spawn<J: Job>(
    name: String,
    queue: RedisQueue<J>,
    run: impl FnOnce(
        StopSignal,
    )
        -> futures::future::BoxFuture<'static, Result<(), apalis_core::error::WorkerError>>,
) -> RunningWorker {
    let shutdown = CancellationToken::new();
    let stop: StopSignal = shutdown.clone().cancelled_owned().map(Ok as fn(()) -> _);
    let worker = run(stop);
    let token = shutdown.clone();
    let handle =
        tokio::spawn(
            async move { supervise(worker, &queue, &token, Duration::from_secs(10)).await },
        );
    RunningWorker {
        name,
        shutdown,
        handle,
    }
}

/// Pushes a job the way a service in another language does: the raw Redis commands the
/// README documents, in one MULTI/EXEC transaction.
pub async fn push_raw(redis: &TestRedis, queue: &str, id: &str, payload: &str) {
    let keys = redis.keys(queue);
    let now = mailroom::queue::now_ms();
    let _: () = redis::pipe()
        .atomic()
        .hset_multiple(
            keys.job(id),
            &[
                ("payload", payload.to_owned()),
                ("attempts", "0".to_owned()),
                ("max_attempts", "0".to_owned()),
                ("enqueued_at", now.to_string()),
                ("run_at", now.to_string()),
                ("state", "queued".to_owned()),
            ],
        )
        .lpush(keys.ready(), id)
        .lpush(keys.signal(), "1")
        .ltrim(keys.signal(), 0, 63)
        .query_async(&mut redis.conn())
        .await
        .expect("raw push");
}

/// Asks the process `pid` to stop gracefully (SIGTERM), as an orchestrator does.
pub fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `mailroom serve` as a process of its own, on a free port, on `redis`'s prefix, with one API
/// key and `env` on top; answering `/healthz` when this returns. Killed when dropped.
pub struct ServeProcess {
    pub child: tokio::process::Child,
    pub base: String,
    /// Its stderr, read as it comes (a full pipe would stall the server), when asked for.
    log: Option<JoinHandle<Vec<u8>>>,
}

impl ServeProcess {
    /// Starts it; with `capture_log`, its log is kept for [`ServeProcess::stop`].
    pub async fn start(
        redis: &TestRedis,
        api_key: &str,
        env: &[(&str, &str)],
        capture_log: bool,
    ) -> Self {
        let port = free_port();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
            .arg("serve")
            .env("REDIS_URL", redis_url())
            .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
            .env("MAILROOM_LISTEN", format!("127.0.0.1:{port}"))
            .env("MAILROOM_API_KEYS", api_key)
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(if capture_log {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = child.stderr.take().map(|mut stderr| {
            tokio::spawn(async move {
                let mut all = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut all).await;
                all
            })
        });
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        eventually(Duration::from_secs(20), "serve to answer", || async {
            client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Self { child, base, log }
    }

    /// Asks it to stop, as an orchestrator does (SIGTERM).
    pub fn sigterm(&self) {
        sigterm(self.child.id().expect("serve is running"));
    }

    /// Its exit status, once it exits within `deadline`.
    pub async fn exit_within(&mut self, deadline: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(deadline, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("serve did not exit within {deadline:?}"))
            .unwrap()
    }

    /// Stops it and returns what it logged (empty unless captured).
    pub async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        match self.log.take() {
            Some(log) => String::from_utf8_lossy(&log.await.unwrap_or_default()).into_owned(),
            None => String::new(),
        }
    }
}
