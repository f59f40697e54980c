//! Typed settings: compiled defaults, then an optional TOML file (`--config`), then the
//! environment (`REDIS_URL` and `MAILROOM_*`, named as the file's keys in upper case).
//!
//! Everything is checked here, at start-up, so that a bad value stops the process with a
//! message naming the setting rather than surfacing later as a failed job.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::queue::{Backoff, QueueConfig};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Every setting mailroom reads. See the README's configuration table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `REDIS_URL`: the Redis to use. May hold a password, so it is kept secret.
    pub redis_url: SecretString,
    /// `MAILROOM_REDIS_PREFIX`: the prefix of every key mailroom stores.
    pub redis_prefix: String,
    /// `MAILROOM_CONCURRENCY`: jobs in flight per worker process.
    pub concurrency: usize,
    /// `MAILROOM_LOG_FORMAT`: `human` or `json`.
    pub log_format: LogFormat,
    /// `MAILROOM_LEASE_SECS`: how soon the jobs of a killed worker are taken over.
    pub lease_secs: u64,
    /// `MAILROOM_FETCH_BATCH`: jobs leased per fetch.
    pub fetch_batch: usize,
    /// `MAILROOM_MAX_ATTEMPTS`: runs before a failing job is dead-lettered (a job may set its own).
    pub max_attempts: u32,
    /// `MAILROOM_BACKOFF_BASE_MS`: the first retry's delay ceiling; doubles per attempt.
    pub backoff_base_ms: u64,
    /// `MAILROOM_BACKOFF_CAP_SECS`: the longest retry delay.
    pub backoff_cap_secs: u64,
    /// `MAILROOM_RETENTION_SECS`: how long finished jobs' records are kept.
    pub retention_secs: u64,
    /// `MAILROOM_DEAD_RETENTION_SECS`: how long dead letters are kept.
    pub dead_retention_secs: u64,
    /// `MAILROOM_IDEMPOTENCY_WINDOW_SECS`: how long an idempotency key answers for later pushes.
    pub idempotency_window_secs: u64,
    /// `MAILROOM_JOB_TIMEOUT_SECS`: a run taking longer fails (and is retried).
    pub job_timeout_secs: u64,
    /// `MAILROOM_SHUTDOWN_GRACE_SECS`: how long a stopping worker lets running jobs finish.
    pub shutdown_grace_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        let queue = QueueConfig::default();
        Self {
            redis_url: SecretString::from("redis://127.0.0.1:6379"),
            redis_prefix: queue.prefix,
            // Sending email is I/O-bound: most of a job is spent waiting on the provider.
            concurrency: 32,
            log_format: LogFormat::Human,
            lease_secs: queue.lease.as_secs(),
            fetch_batch: queue.fetch_batch,
            max_attempts: queue.max_attempts,
            backoff_base_ms: u64::try_from(queue.backoff.base.as_millis()).unwrap_or(1000),
            backoff_cap_secs: queue.backoff.cap.as_secs(),
            retention_secs: queue.retention.as_secs(),
            dead_retention_secs: queue.dead_retention.as_secs(),
            idempotency_window_secs: 24 * 3600,
            job_timeout_secs: 120,
            shutdown_grace_secs: 30,
        }
    }
}

impl Settings {
    /// Loads the settings: defaults, then `file` if given, then the environment.
    ///
    /// # Errors
    /// When the file cannot be read, a value has the wrong type, or a value is out of range;
    /// the message names the setting.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.is_file() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let settings: Settings = figment
            .merge(Env::prefixed("MAILROOM_"))
            .merge(Env::raw().only(&["REDIS_URL"]))
            .extract()
            .context("invalid configuration")?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> anyhow::Result<()> {
        let ranges: [(&str, u64, u64, u64); 7] = [
            ("concurrency", self.concurrency as u64, 1, 10_000),
            ("lease_secs", self.lease_secs, 1, 3600),
            ("fetch_batch", self.fetch_batch as u64, 1, 1000),
            ("max_attempts", u64::from(self.max_attempts), 1, 1000),
            ("backoff_cap_secs", self.backoff_cap_secs, 1, 7 * 24 * 3600),
            ("retention_secs", self.retention_secs, 1, 365 * 24 * 3600),
            ("job_timeout_secs", self.job_timeout_secs, 1, 24 * 3600),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                bail!("{name} must be between {min} and {max}, not {value}");
            }
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(['{', '}']) {
            bail!(
                "redis_prefix must be non-empty and must not contain braces (they are hash tags)"
            );
        }
        redis::Client::open(self.redis_url.expose_secret())
            // The parse error never quotes the URL, which may hold a password.
            .map_err(|e| anyhow::anyhow!("redis_url is not a valid Redis URL: {:?}", e.kind()))?;
        Ok(())
    }

    /// The Redis client for [`Settings::redis_url`].
    ///
    /// # Errors
    /// When the URL is invalid (already checked by [`Settings::load`]).
    pub fn redis_client(&self) -> anyhow::Result<redis::Client> {
        redis::Client::open(self.redis_url.expose_secret())
            .map_err(|e| anyhow::anyhow!("invalid redis_url: {:?}", e.kind()))
    }

    /// The queue behaviour these settings describe.
    pub fn queue_config(&self) -> QueueConfig {
        QueueConfig {
            prefix: self.redis_prefix.clone(),
            lease: Duration::from_secs(self.lease_secs),
            fetch_batch: self.fetch_batch,
            max_attempts: self.max_attempts,
            backoff: Backoff {
                base: Duration::from_millis(self.backoff_base_ms),
                cap: Duration::from_secs(self.backoff_cap_secs),
            },
            retention: Duration::from_secs(self.retention_secs),
            dead_retention: Duration::from_secs(self.dead_retention_secs),
            ..QueueConfig::default()
        }
    }
}
