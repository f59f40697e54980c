//! Where inbound mail is kept: `P:inbound:msg:{id}` (the [`InboundEmail`] as JSON),
//! `P:inbound:att:{id}:{n}` (attachment bodies, 1-based), both expiring after the retention, and
//! the stream `P:inbound` (one entry per message: `id`, `from`, `subject`, `received_at`,
//! trimmed to about `MAILROOM_INBOUND_STREAM_MAXLEN`) that consumer services read with consumer
//! groups. Everything of one message is written in one MULTI, so a message is in the stream
//! only when its record and attachments are stored.

use bytes::Bytes;
use redis::aio::ConnectionManager;
use serde::Serialize;
use utoipa::ToSchema;

use super::parse::{InboundEmail, Parsed};

/// One stream entry, as `GET /v1/inbound` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InboundSummary {
    /// The message id (`GET /v1/inbound/{id}`).
    pub id: String,
    /// The stream entry's id: the cursor for the next page.
    pub stream_id: String,
    pub from: String,
    pub subject: String,
    pub received_at: String,
}

/// A page of summaries, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InboundPage {
    pub messages: Vec<InboundSummary>,
    /// Pass it as `cursor` for older messages; `null` at the end.
    pub next_cursor: Option<String>,
}

/// The inbound store.
#[derive(Debug, Clone)]
pub struct InboundStore {
    conn: ConnectionManager,
    prefix: String,
    retention_secs: u64,
    maxlen: usize,
}

impl InboundStore {
    pub fn new(conn: ConnectionManager, prefix: &str, retention_secs: u64, maxlen: usize) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            retention_secs,
            maxlen,
        }
    }

    /// The stream's key.
    pub fn stream(&self) -> String {
        format!("{}:inbound", self.prefix)
    }

    fn message_key(&self, id: &str) -> String {
        format!("{}:inbound:msg:{id}", self.prefix)
    }

    fn attachment_key(&self, id: &str, n: usize) -> String {
        format!("{}:inbound:att:{id}:{n}", self.prefix)
    }

    /// Stores a parsed message and announces it on the stream.
    ///
    /// # Errors
    /// When Redis fails: nothing is announced then, and SendGrid retries on the 503.
    pub async fn store(&self, parsed: &Parsed) -> redis::RedisResult<()> {
        let email = &parsed.email;
        let json = serde_json::to_string(email).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set_ex(self.message_key(&email.id), json, self.retention_secs)
            .ignore();
        for (n, body) in parsed.bodies.iter().enumerate() {
            if let Some(body) = body {
                pipe.set_ex(
                    self.attachment_key(&email.id, n + 1),
                    body.as_ref(),
                    self.retention_secs,
                )
                .ignore();
            }
        }
        pipe.cmd("XADD")
            .arg(self.stream())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.maxlen)
            .arg("*")
            .arg("id")
            .arg(&email.id)
            .arg("from")
            .arg(&email.from)
            .arg("subject")
            .arg(&email.subject)
            .arg("received_at")
            .arg(email.received_at.to_rfc3339())
            .ignore();
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// The message `id`, if kept.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn get(&self, id: &str) -> redis::RedisResult<Option<InboundEmail>> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.message_key(id))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Attachment `n` (1-based) of message `id`, if kept.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn attachment(&self, id: &str, n: usize) -> redis::RedisResult<Option<Bytes>> {
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.attachment_key(id, n))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(raw.map(Bytes::from))
    }

    /// Up to `limit` summaries older than `cursor` (a stream id), newest first.
    ///
    /// # Errors
    /// When Redis fails or the cursor is not a stream id.
    pub async fn list(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> redis::RedisResult<InboundPage> {
        let end = cursor.map_or_else(|| "+".to_owned(), |c| format!("({c}"));
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(self.stream())
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?;
        let full = entries.len() == limit;
        let messages: Vec<InboundSummary> = entries
            .into_iter()
            .map(|(stream_id, fields)| {
                let get = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                InboundSummary {
                    id: get("id"),
                    from: get("from"),
                    subject: get("subject"),
                    received_at: get("received_at"),
                    stream_id,
                }
            })
            .collect();
        let next_cursor = full
            .then(|| messages.last().map(|m| m.stream_id.clone()))
            .flatten();
        Ok(InboundPage {
            messages,
            next_cursor,
        })
    }
}
