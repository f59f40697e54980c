//! The deliveries' log of each endpoint, `P:hook:{ID}:log` (a list, newest first): one entry
//! per event and attempt, with how it went and, for a replay, the event's body. The newest
//! [`KEPT`] entries are kept, each body at most [`MAX_KEPT_BODY`] bytes (a larger one is
//! logged without it, and cannot be replayed), and nothing older than [`KEPT_SECS`]: at most
//! about 8 MiB an endpoint.

use chrono::{DateTime, Utc};
use mailroom_jobs::{Keys, RedisConnection, WebhookMessage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::EventType;

/// Entries kept per endpoint.
pub const KEPT: usize = 1000;
/// How long entries are kept.
pub const KEPT_SECS: i64 = 7 * 24 * 3600;
/// The largest body kept for a replay.
pub const MAX_KEPT_BODY: usize = 8 * 1024;

/// One attempt to deliver one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// Its `webhook-id`.
    pub webhook_id: String,
    /// Its type (`null`: a body mailroom could not read a type from).
    #[serde(rename = "type")]
    pub kind: Option<EventType>,
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// The run of its delivery job (1 is the first).
    pub attempt: u32,
    /// The endpoint's HTTP status (`null`: no answer).
    pub status: Option<u16>,
    /// A 2xx came back.
    pub delivered: bool,
    /// How long the endpoint took, in milliseconds.
    pub duration_ms: u64,
    /// Why it failed (never the secret or the signature).
    pub error: Option<String>,
    /// The body, for a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub body: Option<String>,
}

impl Delivery {
    /// The attempt at `message`: its outcome and how long it took.
    pub fn of(
        message: &WebhookMessage,
        attempt: u32,
        status: Option<u16>,
        error: Option<String>,
        duration_ms: u64,
    ) -> Self {
        #[derive(Deserialize)]
        struct Typed {
            #[serde(rename = "type")]
            kind: Option<EventType>,
        }
        let kind = serde_json::from_str::<Typed>(&message.body)
            .ok()
            .and_then(|t| t.kind);
        Self {
            webhook_id: message.id.clone(),
            kind,
            at: Utc::now(),
            attempt,
            delivered: error.is_none(),
            status,
            duration_ms,
            error,
            body: (message.body.len() <= MAX_KEPT_BODY).then(|| message.body.clone()),
        }
    }
}

/// Reads and writes the logs.
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    conn: RedisConnection,
    keys: Keys,
}

impl DeliveryLog {
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
        }
    }

    /// Adds `deliveries` to endpoint `id`'s log, in one round trip.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn record(&self, id: &str, deliveries: &[Delivery]) -> redis::RedisResult<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let key = self.keys.hook_log(id);
        let entries: Vec<String> = (deliveries.iter())
            .filter_map(|d| serde_json::to_string(d).ok())
            .collect();
        redis::pipe()
            .lpush(&key, entries)
            .ignore()
            .ltrim(&key, 0, KEPT as isize - 1)
            .ignore()
            .expire(&key, KEPT_SECS)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Endpoint `id`'s newest `limit` attempts of the last [`KEPT_SECS`], newest first.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn recent(&self, id: &str, limit: usize) -> redis::RedisResult<Vec<Delivery>> {
        let stop = isize::try_from(limit.min(KEPT)).unwrap_or(1) - 1;
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.hook_log(id))
            .arg(0)
            .arg(stop)
            .query_async(&mut self.conn.clone())
            .await?;
        let since = Utc::now() - chrono::Duration::seconds(KEPT_SECS);
        Ok((raw.iter())
            .filter_map(|entry| serde_json::from_str::<Delivery>(entry).ok())
            .filter(|d| d.at >= since)
            .collect())
    }

    /// Deletes from the logs of endpoints `ids` every attempt whose event `mentions` an
    /// address (an erasure): how many.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn erase(
        &self,
        ids: &[String],
        mentions: impl Fn(&str) -> bool,
    ) -> redis::RedisResult<usize> {
        let mut removed = 0;
        for id in ids {
            let key = self.keys.hook_log(id);
            let entries: Vec<String> = redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut self.conn.clone())
                .await?;
            let named = |entry: &&String| {
                (serde_json::from_str::<Delivery>(entry).ok())
                    .and_then(|d| d.body)
                    .is_some_and(|body| mentions(&body))
            };
            for entry in entries.iter().filter(named) {
                let n: usize = redis::cmd("LREM")
                    .arg(&key)
                    .arg(0)
                    .arg(entry)
                    .query_async(&mut self.conn.clone())
                    .await?;
                removed += n;
            }
        }
        Ok(removed)
    }

    /// Forgets endpoint `id`'s log.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn forget(&self, id: &str) -> redis::RedisResult<()> {
        redis::cmd("DEL")
            .arg(self.keys.hook_log(id))
            .query_async(&mut self.conn.clone())
            .await
    }
}
