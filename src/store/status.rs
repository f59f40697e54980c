//! Each message's status record: `P:status:ID`, a hash that expires with the retention setting.
//!
//! queued → sending → sent | retrying | dead (and `suppressed` later). The API writes `queued`
//! only when no record exists yet, so a fast worker's `sending` is never set back; the worker
//! writes every later state. A message already `sent` is not sent again when its job runs a
//! second time (a lost lease, a crash after the provider accepted it).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::Serialize;
use utoipa::ToSchema;

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Accepted and waiting for a worker.
    Queued,
    /// A worker is handing it to the provider.
    Sending,
    /// The provider accepted it.
    Sent,
    /// The last attempt failed; another is scheduled.
    Retrying,
    /// It will not be sent; `last_error` says why.
    Dead,
}

impl MessageStatus {
    fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Retrying => "retrying",
            MessageStatus::Dead => "dead",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "queued" => MessageStatus::Queued,
            "sending" => MessageStatus::Sending,
            "sent" => MessageStatus::Sent,
            "retrying" => MessageStatus::Retrying,
            "dead" => MessageStatus::Dead,
            _ => return None,
        })
    }
}

/// A message's status as `GET /v1/emails/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusRecord {
    /// The message id.
    pub id: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// Sending attempts made so far.
    pub attempts: u32,
    /// The provider that sent (or tried to send) it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The provider's id for it (SendGrid's `X-Message-Id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// The last failure, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it was accepted (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<String>,
    /// When the record last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// When the provider accepted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
}

/// Reads and writes status records.
#[derive(Debug, Clone)]
pub struct StatusStore {
    conn: ConnectionManager,
    prefix: String,
    retention: Duration,
}

fn now() -> String {
    DateTime::<Utc>::from(std::time::SystemTime::now()).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Writes the `queued` record unless one exists.
const QUEUED: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'queued_at', ARGV[1], 'updated_at', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1";

impl StatusStore {
    /// A store for records under `prefix`, kept for `retention` after their last change.
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>, retention: Duration) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            retention,
        }
    }

    fn key(&self, id: &str) -> String {
        format!("{}:status:{id}", self.prefix)
    }

    /// Records that message `id` was accepted, unless a worker already wrote a later state.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn queued(&self, id: &str) -> redis::RedisResult<()> {
        let _: i64 = redis::Script::new(QUEUED)
            .key(self.key(id))
            .arg(now())
            .arg(self.retention.as_secs().max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Moves message `id` to `status` after `attempts` attempts, with the other fields given.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn update(
        &self,
        id: &str,
        status: MessageStatus,
        attempts: u32,
        fields: &[(&str, &str)],
    ) -> redis::RedisResult<()> {
        let key = self.key(id);
        let now = now();
        let mut values: Vec<(&str, &str)> = vec![("status", status.as_str()), ("updated_at", &now)];
        values.extend_from_slice(fields);
        if status == MessageStatus::Sent {
            values.push(("sent_at", &now));
        }
        let attempts = attempts.to_string();
        values.push(("attempts", &attempts));
        let _: () = redis::pipe()
            .hset_multiple(&key, &values)
            .ignore()
            .expire(
                &key,
                i64::try_from(self.retention.as_secs())
                    .unwrap_or(i64::MAX)
                    .max(1),
            )
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The record of message `id`, if it exists.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn get(&self, id: &str) -> redis::RedisResult<Option<StatusRecord>> {
        let fields: std::collections::HashMap<String, String> =
            self.conn.clone().hgetall(self.key(id)).await?;
        let Some(status) = fields.get("status").and_then(|s| MessageStatus::parse(s)) else {
            return Ok(None);
        };
        let field = |name: &str| fields.get(name).cloned();
        Ok(Some(StatusRecord {
            id: id.to_owned(),
            status,
            attempts: fields
                .get("attempts")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            provider: field("provider"),
            provider_message_id: field("provider_message_id"),
            last_error: field("last_error"),
            queued_at: field("queued_at"),
            updated_at: field("updated_at"),
            sent_at: field("sent_at"),
        }))
    }
}
