//! Where inbound mail is kept: `P:inbound:msg:{ID}` (the [`InboundEmail`] as JSON),
//! `P:inbound:att:{ID}:{n}` (attachment bodies, 1-based), both expiring after the retention and
//! sharing the message's hash tag, and the stream `P:inbound` (one entry per message: `id`,
//! `from`, `subject`, `received_at`, trimmed to about `MAILROOM_INBOUND_STREAM_MAXLEN`) that
//! consumer services read with consumer groups. A message's record and attachments are written
//! in one MULTI, its usage counted, and only then is it announced on the stream, so an entry
//! always finds its message. (Separate steps because on a cluster each is a slot of its own; a
//! failure in between leaves an unannounced copy that expires, and SendGrid retries on the 503.)
//!
//! **The budget.** The bytes stored are counted in time buckets (`P:inbound:bytes:{n}`, each
//! [`InboundStore::bucket_secs`] long, expiring with the last message they count), so their
//! sum over the retention is what is kept now, give or take a bucket. A message that would take
//! the sum past `MAILROOM_INBOUND_MAX_BYTES` is still stored and announced, as
//! [`InboundEmail::over_budget`]: attachments described but not kept, text and HTML cut to
//! [`OVER_BUDGET_TEXT`] bytes; `P:inbound:over_budget` counts such messages (`/metrics`). The
//! check and the write are two steps, so parallel POSTs can pass the budget by what they carry
//! between them: the budget is a bound on growth, not an exact quota.

use bytes::Bytes;
use mailroom_jobs::RedisConnection;
use serde::Serialize;
use utoipa::ToSchema;

use super::parse::{InboundEmail, Parsed};
use crate::{
    domain::{EventType, Notice},
    store::notices::Notices,
};

/// How a message was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredAs {
    /// With its bodies and attachments.
    Whole,
    /// Over the budget: described, bodies cut, attachments not kept.
    Described,
}

/// What an over-budget message keeps: no attachment bodies, text and HTML cut.
/// The `inbound.received` event: who wrote to whom about what, and where to read the rest
/// (`GET /v1/inbound/{id}`), not the message itself.
fn received(email: &InboundEmail, described: bool) -> Notice {
    let data = serde_json::json!({
        "inbound_id": email.id,
        "from": email.from,
        "to": email.to,
        "subject": email.subject,
        "attachments": email.attachments.len(),
        "kept_whole": !described,
    });
    Notice::new(
        EventType::InboundReceived,
        &email.id,
        email.received_at,
        None,
        data,
    )
}

fn over_budget_copy(parsed: &Parsed) -> Parsed {
    let mut email = parsed.email.clone();
    email.over_budget = true;
    for text in [&mut email.text, &mut email.html].into_iter().flatten() {
        if text.len() > OVER_BUDGET_TEXT {
            let mut end = OVER_BUDGET_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
    }
    for attachment in &mut email.attachments {
        attachment.stored = false;
    }
    Parsed {
        bodies: vec![None; parsed.bodies.len()],
        email,
        raw: None,
    }
}

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

/// What an over-budget message keeps of its text and HTML bodies, each.
pub const OVER_BUDGET_TEXT: usize = 64 * 1024;

/// Buckets the usage is counted in over one retention period.
const BUCKETS: u64 = 24;

/// How much inbound mail is kept and how much may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundUsage {
    /// Bytes stored over the retention period (records and attachment bodies).
    pub stored_bytes: u64,
    /// Messages stored without their bodies because the budget was spent, ever.
    pub over_budget_total: u64,
}

/// The inbound store.
#[derive(Debug, Clone)]
pub struct InboundStore {
    conn: RedisConnection,
    keys: mailroom_jobs::Keys,
    retention_secs: u64,
    maxlen: usize,
    budget: u64,
    notices: Notices,
}

impl InboundStore {
    /// The store under `prefix`: messages kept `retention_secs`, the stream trimmed to about
    /// `maxlen`, at most about `budget` bytes kept in all.
    pub fn new(
        conn: RedisConnection,
        prefix: &str,
        retention_secs: u64,
        maxlen: usize,
        budget: u64,
    ) -> Self {
        Self {
            notices: Notices::new(conn.clone(), prefix),
            conn,
            keys: mailroom_jobs::Keys::new(prefix),
            retention_secs,
            maxlen,
            budget,
        }
    }

    /// The length of one usage bucket: a 24th of the retention, at least an hour.
    fn bucket_secs(&self) -> u64 {
        (self.retention_secs / BUCKETS).max(3600)
    }

    fn bucket_key(&self, n: u64) -> String {
        self.keys().inbound_bytes(n)
    }

    fn over_budget_key(&self) -> String {
        self.keys().inbound_over_budget()
    }

    fn keys(&self) -> &mailroom_jobs::Keys {
        &self.keys
    }

    /// The buckets that can still count kept messages, newest first.
    fn live_buckets(&self) -> Vec<String> {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        let current = now / self.bucket_secs();
        let span = self.retention_secs.div_ceil(self.bucket_secs()) + 1;
        (0..span)
            .map(|back| self.bucket_key(current.saturating_sub(back)))
            .collect()
    }

    /// How much is kept, and how often the budget was spent.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn usage(&self) -> redis::RedisResult<InboundUsage> {
        let mut keys = self.live_buckets();
        keys.push(self.over_budget_key());
        let values: Vec<Option<u64>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn.clone())
            .await?;
        let (buckets, over) = values.split_at(values.len() - 1);
        Ok(InboundUsage {
            stored_bytes: buckets.iter().flatten().sum(),
            over_budget_total: over[0].unwrap_or(0),
        })
    }

    /// The stream's key.
    pub fn stream(&self) -> String {
        self.keys().inbound_stream()
    }

    fn message_key(&self, id: &str) -> String {
        self.keys().inbound_message(id)
    }

    fn attachment_key(&self, id: &str, n: usize) -> String {
        self.keys().inbound_attachment(id, n)
    }

    /// Stores a parsed message and announces it on the stream.
    ///
    /// # Errors
    /// When Redis fails: nothing is announced then, and SendGrid retries on the 503.
    pub async fn store(&self, parsed: &Parsed) -> redis::RedisResult<StoredAs> {
        let mut json = serde_json::to_string(&parsed.email).unwrap_or_default();
        let mut size = json.len()
            + parsed
                .bodies
                .iter()
                .flatten()
                .map(Bytes::len)
                .sum::<usize>();
        let used = self.usage().await?.stored_bytes;
        let over_budget = used.saturating_add(size as u64) > self.budget;
        let described;
        let (email, bodies) = if over_budget {
            described = over_budget_copy(parsed);
            json = serde_json::to_string(&described.email).unwrap_or_default();
            size = json.len();
            (&described.email, &described.bodies)
        } else {
            (&parsed.email, &parsed.bodies)
        };
        let bucket = self.live_buckets().swap_remove(0);
        let mut conn = self.conn.clone();
        let mut message = redis::pipe();
        message
            .atomic()
            .set_ex(self.message_key(&email.id), json, self.retention_secs)
            .ignore();
        for (n, body) in bodies.iter().enumerate() {
            if let Some(body) = body {
                message
                    .set_ex(
                        self.attachment_key(&email.id, n + 1),
                        body.as_ref(),
                        self.retention_secs,
                    )
                    .ignore();
            }
        }
        message.query_async::<()>(&mut conn).await?;
        let mut usage = redis::pipe();
        usage
            .atomic()
            .incr(&bucket, size)
            .ignore()
            .expire(
                &bucket,
                i64::try_from(self.retention_secs + self.bucket_secs()).unwrap_or(i64::MAX),
            )
            .ignore();
        usage.query_async::<()>(&mut conn).await?;
        if over_budget {
            redis::cmd("INCR")
                .arg(self.over_budget_key())
                .query_async::<()>(&mut conn)
                .await?;
        }
        redis::cmd("XADD")
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
            .query_async::<()>(&mut conn)
            .await?;
        self.notices.tell(&[received(email, over_budget)]).await;
        Ok(if over_budget {
            StoredAs::Described
        } else {
            StoredAs::Whole
        })
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
        if cursor == Some("0-0") {
            // Nothing comes before the first possible id (Redis refuses the interval).
            return Ok(InboundPage {
                messages: Vec::new(),
                next_cursor: None,
            });
        }
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
