//! What mailroom needs of its Redis, checked when a process starts and again while it runs.
//!
//! - **No eviction.** Any `maxmemory-policy` but `noeviction` lets Redis delete keys when it is
//!   full, queued mail among them, without a word: tried on `allkeys-lru`, 20,000 emails were
//!   answered 202 and 17,843 of them vanished. `serve`, `work` and `dev` refuse to start on such
//!   a Redis (unless `MAILROOM_ALLOW_EVICTING_REDIS=1`), and a watch re-reads the policy every
//!   [`WATCH_EVERY`]: when it turns evicting under a running process, the API stops accepting
//!   writes (503) and `/readyz` says why, until it is put back.
//! - **Persistence.** Without AOF or RDB snapshots a restart loses every queued job: a warning,
//!   once, at start-up.
//! - **Full is not down.** Under `noeviction` a full Redis refuses writes with `OOM`; that is
//!   told apart from a Redis that cannot be reached or answered too late ([`Failure`]), in the
//!   answers, the log and `/readyz`.
//!
//! The policy is read from `INFO memory`, which managed services that rename `CONFIG` still
//! answer; the snapshot schedule needs `CONFIG GET save`, and is reported unknown without it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use mailroom_jobs::RedisConnection;
use redis::RedisError;
use tokio_util::sync::CancellationToken;

use crate::config::Misconfigured;

/// How often a running process re-reads the eviction policy.
pub const WATCH_EVERY: Duration = Duration::from_secs(30);

/// The variable that lets a process start on an evicting Redis anyway.
pub const OVERRIDE: &str = "MAILROOM_ALLOW_EVICTING_REDIS";

/// What kind of Redis failure an error is, for the answer a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Redis refused a write because it is full (`OOM`, maxmemory reached under `noeviction`):
    /// nothing of that write was stored.
    Full,
    /// No answer in time: the write may or may not have been applied.
    TimedOut,
    /// Redis could not be reached, or the connection broke.
    Unreachable,
    /// Any other error Redis answered with.
    Other,
}

impl Failure {
    /// The kind of `error`.
    pub fn of(error: &RedisError) -> Self {
        // A pipeline's failure carries its commands' own errors (a batch push is a pipeline).
        let full = error.code() == Some("OOM")
            || error
                .clone()
                .into_server_errors()
                .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "OOM"));
        if full {
            Self::Full
        } else if error.is_timeout() {
            Self::TimedOut
        } else if error.is_connection_refusal()
            || error.is_connection_dropped()
            || error.is_io_error()
        {
            Self::Unreachable
        } else {
            Self::Other
        }
    }
}

/// What a Redis says of its memory and persistence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisFacts {
    /// `maxmemory-policy`.
    pub policy: String,
    /// `maxmemory` in bytes (0: no limit).
    pub max_memory: u64,
    /// `used_memory` in bytes.
    pub used_memory: u64,
    /// AOF is on.
    pub aof: bool,
    /// RDB snapshots are scheduled (`save` is not empty); `None` when `CONFIG` is refused.
    pub rdb: Option<bool>,
}

impl RedisFacts {
    /// Whether the policy may delete keys mailroom holds.
    pub fn evicts(&self) -> bool {
        self.policy != "noeviction"
    }

    /// Whether Redis is at its memory limit (writes are refused under `noeviction`).
    pub fn full(&self) -> bool {
        self.max_memory > 0 && self.used_memory >= self.max_memory
    }

    /// Reads them from `conn`: on a cluster, from every master, reporting the one that is
    /// worst off (an evicting policy first, then the fullest) and persistence only when every
    /// master has it.
    ///
    /// # Errors
    /// When Redis does not answer `INFO`.
    pub async fn read(conn: &mut RedisConnection) -> redis::RedisResult<Self> {
        let infos = conn
            .on_every_master(redis::cmd("INFO").arg("memory").arg("persistence"))
            .await?;
        let saves = conn
            .on_every_master(redis::cmd("CONFIG").arg("GET").arg("save"))
            .await
            .ok();
        let rdb = saves.map(|saves| {
            saves.into_iter().all(|(_, value)| {
                redis::from_redis_value::<Vec<String>>(value)
                    .ok()
                    .and_then(|pair| pair.get(1).map(|s| !s.trim().is_empty()))
                    .unwrap_or(false)
            })
        });
        let mut worst: Option<Self> = None;
        let mut aof = true;
        for (_, value) in infos {
            let info: String = redis::from_redis_value(value)?;
            let node = Self::from_info(&info, rdb);
            aof &= node.aof;
            if worst.as_ref().is_none_or(|w| node.worse_than(w)) {
                worst = Some(node);
            }
        }
        let mut facts = worst.unwrap_or_else(|| Self::from_info("", rdb));
        facts.aof = aof;
        Ok(facts)
    }

    fn from_info(info: &str, rdb: Option<bool>) -> Self {
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
                .unwrap_or_default()
        };
        let number = |name: &str| field(name).parse::<u64>().unwrap_or(0);
        Self {
            policy: field("maxmemory_policy").to_owned(),
            max_memory: number("maxmemory"),
            used_memory: number("used_memory"),
            aof: field("aof_enabled") == "1",
            rdb,
        }
    }

    /// Whether this node is in more danger than `other`: evicting, then full, then fuller.
    fn worse_than(&self, other: &Self) -> bool {
        #[allow(clippy::cast_precision_loss)]
        let fill = |f: &Self| {
            if f.max_memory == 0 {
                0.0
            } else {
                f.used_memory as f64 / f.max_memory as f64
            }
        };
        (self.evicts(), self.full()) > (other.evicts(), other.full())
            || ((self.evicts(), self.full()) == (other.evicts(), other.full())
                && fill(self) > fill(other))
    }
}

/// Watches one Redis for a policy that may delete mail.
#[derive(Debug, Clone)]
pub struct RedisGuard {
    conn: RedisConnection,
    allow_evicting: bool,
    /// The evicting policy last seen, while it is refused.
    refused: Arc<Mutex<Option<String>>>,
    /// Whether `refused` holds one: read on every write request, so it is a plain flag.
    refusing: Arc<AtomicBool>,
}

impl RedisGuard {
    /// A guard over `conn`; `allow_evicting` is `MAILROOM_ALLOW_EVICTING_REDIS`.
    pub fn new(conn: RedisConnection, allow_evicting: bool) -> Self {
        Self {
            conn,
            allow_evicting,
            refused: Arc::default(),
            refusing: Arc::default(),
        }
    }

    /// The start-up check: refuses an evicting policy (unless allowed), warns once without
    /// persistence.
    ///
    /// # Errors
    /// When the policy evicts and that is not allowed, or Redis does not answer.
    pub async fn check_at_start(&self) -> anyhow::Result<RedisFacts> {
        let facts = RedisFacts::read(&mut self.conn.clone()).await?;
        if facts.evicts() {
            if !self.allow_evicting {
                return Err(Misconfigured::new(format!(
                    "Redis's maxmemory-policy is {}: when Redis fills up it deletes keys, queued mail \
                     among them, silently. Set `maxmemory-policy noeviction` (CONFIG SET \
                     maxmemory-policy noeviction, and in redis.conf), or {OVERRIDE}=1 if this Redis \
                     holds nothing you would miss",
                    facts.policy
                ))
                .into());
            }
            tracing::warn!(
                policy = %facts.policy,
                "{OVERRIDE}=1: running on a Redis that may evict queued mail when full"
            );
        }
        if !facts.aof && facts.rdb == Some(false) {
            tracing::warn!(
                "Redis keeps nothing on disk (no AOF, no RDB snapshots): a Redis restart loses every \
                 queued email; turn on `appendonly yes` for production"
            );
        } else if !facts.aof && facts.rdb.is_none() {
            tracing::warn!(
                "Redis has no AOF and refused CONFIG GET save: make sure it persists, or a restart \
                 loses queued email"
            );
        }
        Ok(facts)
    }

    /// The evicting policy that makes this process refuse writes now, if any.
    pub fn refusing(&self) -> Option<String> {
        if !self.refusing.load(Ordering::Relaxed) {
            return None;
        }
        self.refused.lock().ok().and_then(|r| r.clone())
    }

    /// Re-reads the policy once: records (and logs) a change to or from an evicting one.
    ///
    /// # Errors
    /// When Redis does not answer (the last verdict stands).
    pub async fn recheck(&self) -> redis::RedisResult<RedisFacts> {
        let facts = RedisFacts::read(&mut self.conn.clone()).await?;
        let now = (facts.evicts() && !self.allow_evicting).then(|| facts.policy.clone());
        if let Ok(mut refused) = self.refused.lock()
            && *refused != now
        {
            match &now {
                Some(policy) => tracing::error!(
                    %policy,
                    "Redis's maxmemory-policy changed to {policy}: it may delete queued mail; \
                     refusing writes until it is noeviction again"
                ),
                None => tracing::info!("Redis's maxmemory-policy is noeviction again"),
            }
            self.refusing.store(now.is_some(), Ordering::Relaxed);
            refused.clone_from(&now);
        }
        Ok(facts)
    }

    /// Re-checks every `every` until `shutdown`.
    pub fn watch(self, every: Duration, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(error) = self.recheck().await {
                            tracing::warn!(%error, "could not re-read Redis's maxmemory-policy");
                        }
                    }
                }
            }
        });
    }
}
