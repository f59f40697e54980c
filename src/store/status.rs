//! A message's status, read from its send job's record in the queue (`P:{email}:job:ID`).
//!
//! The queue already keeps everything a status needs (state, attempts, last error, times) and
//! writes it atomically with each step, so mailroom keeps no second copy that could disagree:
//! this module only translates. queued → sending → sent | retrying | dead; the record expires
//! with the retention setting once the message is sent, with the dead-letter retention once
//! it is dead. After `sent`, SendGrid's events move it on (delivered, opened, bounced, …: see
//! `events::store`) and its timeline is shown with it; a message whose every
//! recipient was suppressed ends `suppressed`.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use mailroom_jobs::RedisConnection;
use mailroom_jobs::{Job, Keys, MessageId, QueueKeys, SendEmail};
use serde::Serialize;
use utoipa::ToSchema;

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Accepted and waiting for a worker (or for its `send_at`).
    Queued,
    /// A worker is handing it to the provider.
    Sending,
    /// The provider accepted it.
    Sent,
    /// The last attempt failed; another is scheduled.
    Retrying,
    /// It will not be sent; `last_error` says why.
    Dead,
    /// Every recipient is on the suppression list: nothing was sent.
    Suppressed,
    /// The receiving server deferred it; SendGrid keeps trying.
    Deferred,
    /// The receiving server accepted it.
    Delivered,
    /// A recipient opened it.
    Opened,
    /// A recipient clicked a link in it.
    Clicked,
    /// A recipient unsubscribed.
    Unsubscribed,
    /// A recipient reported it as spam.
    SpamReport,
    /// It bounced (or was blocked).
    Bounced,
    /// SendGrid dropped it without trying.
    Dropped,
}

impl MessageStatus {
    /// The status a queue job state stands for.
    fn from_job_state(state: &str) -> Option<Self> {
        Some(match state {
            "queued" | "delayed" => MessageStatus::Queued,
            "running" => MessageStatus::Sending,
            "retrying" => MessageStatus::Retrying,
            "done" => MessageStatus::Sent,
            "dead" => MessageStatus::Dead,
            _ => return None,
        })
    }

    /// The status an event's word stands for (`delivered`, `spam_report`, …).
    fn from_event(word: &str) -> Option<Self> {
        Some(match word {
            "deferred" => MessageStatus::Deferred,
            "delivered" => MessageStatus::Delivered,
            "opened" => MessageStatus::Opened,
            "clicked" => MessageStatus::Clicked,
            "unsubscribed" => MessageStatus::Unsubscribed,
            "spam_report" => MessageStatus::SpamReport,
            "bounced" => MessageStatus::Bounced,
            "dropped" => MessageStatus::Dropped,
            _ => return None,
        })
    }
}

/// A message's status as `GET /v1/emails/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusRecord {
    /// The message id (as the push answered it).
    #[schema(value_type = String)]
    pub id: MessageId,
    /// Where it stands.
    pub status: MessageStatus,
    /// Sending attempts made so far.
    pub attempts: u32,
    /// The provider that accepted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The provider's id for it (SendGrid's `X-Message-Id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// Every provider it was handed to, in order, with its answer (`accepted` or its words)
    /// and when; kept when a route failed over or an answer never came.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderTry>,
    /// An earlier try got no answer and another attempt was taken: the recipient may get it
    /// twice.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub possibly_duplicated: bool,
    /// The last failure, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Why it is dead, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_reason: Option<String>,
    /// When it was accepted (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<String>,
    /// When the record last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// When the provider accepted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    /// Recipients skipped because they are on the suppression list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<String>,
    /// Each recipient's delivery status, from SendGrid's events: one page of them, in address
    /// order (`recipients_limit`, `recipients_cursor`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub recipients: BTreeMap<String, MessageStatus>,
    /// Pass it as `recipients_cursor` for the next page of recipients; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients_next_cursor: Option<String>,
    /// The stored API key that queued it (none: an operator key, or a producer of its own).
    #[serde(skip)]
    pub owner: Option<String>,
    /// The providers' events for this message, oldest first: `{event, at, email, reason?,
    /// status?, response?, url?, type?, attempt?, sg_event_id?}`, and each provider tried as
    /// `{event: "tried", at, provider, response}` when `providers` lists them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub timeline: Vec<serde_json::Value>,
}

/// One provider a message was handed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ProviderTry {
    /// The provider (`sendgrid`, `postmark`, `smtp`, `outbox`).
    pub provider: String,
    /// `accepted`, or what went wrong in the provider's words.
    pub answer: String,
    /// When (RFC 3339).
    pub at: String,
    /// No answer came: it may have taken the message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unanswered: bool,
}

/// A message's delivery statuses by recipient, its timeline, and the providers tried.
type MessageEvents = (BTreeMap<String, String>, Vec<String>, Vec<String>);

/// Reads status records.
#[derive(Debug, Clone)]
pub struct StatusStore {
    conn: RedisConnection,
    queue: QueueKeys,
    keys: Keys,
    timeline_cap: usize,
}

/// The job-hash fields a status is made of, in the order they are read.
const FIELDS: [&str; 10] = [
    "state",
    "attempts",
    "output",
    "last_error",
    "reason",
    "enqueued_at",
    "started_at",
    "finished_at",
    "run_at",
    "owner",
];

fn rfc3339(ms: u64) -> Option<String> {
    let time = DateTime::<Utc>::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    Some(time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl StatusRecord {
    /// Keeps one page of recipients: at most `limit` after `cursor` (an address of the previous
    /// page), and the cursor of the next page when there is one.
    #[must_use]
    pub fn page_recipients(mut self, cursor: Option<&str>, limit: usize) -> Self {
        if let Some(cursor) = cursor {
            self.recipients = self.recipients.split_off(cursor);
            self.recipients.remove(cursor);
        }
        if self.recipients.len() > limit {
            let rest_from = self.recipients.keys().nth(limit).cloned();
            if let Some(first_left_out) = rest_from {
                self.recipients.split_off(&first_left_out);
            }
            self.recipients_next_cursor = self.recipients.keys().next_back().cloned();
        }
        self
    }
}

impl StatusStore {
    /// Statuses of the send jobs under `prefix`, with at most the newest `timeline_cap` events
    /// of a timeline read.
    pub fn new(conn: RedisConnection, prefix: &str, timeline_cap: usize) -> Self {
        Self {
            conn,
            queue: QueueKeys::new(prefix, SendEmail::QUEUE),
            keys: Keys::new(prefix),
            timeline_cap,
        }
    }

    /// The status of message `id`, if mailroom still has it.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn get(&self, id: MessageId) -> redis::RedisResult<Option<StatusRecord>> {
        let (values, (delivery, timeline, tries)) = self.read(&id.to_string()).await?;
        let [
            state,
            attempts,
            output,
            last_error,
            reason,
            enqueued,
            started,
            finished,
            run_at,
            owner,
        ]: [Option<String>; 10] = values.try_into().unwrap_or_default();
        let Some(status) = state.as_deref().and_then(MessageStatus::from_job_state) else {
            return Ok(None);
        };
        let output: serde_json::Value = output
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_default();
        let text = |name: &str| output.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let ms = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<u64>().ok());
        // A retry reschedules run_at, so it counts as a change too.
        let updated = [
            ms(&enqueued),
            ms(&started),
            ms(&finished),
            ms(&run_at).filter(|_| status == MessageStatus::Retrying),
        ]
        .into_iter()
        .flatten()
        .max();
        let (mut recipients, overall) = delivered(&delivery);
        let suppressed: Vec<String> = output
            .get("suppressed")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        for email in &suppressed {
            recipients.insert(email.clone(), MessageStatus::Suppressed);
        }
        let status = match status {
            MessageStatus::Sent if output.get("provider").is_some_and(|p| p == "none") => {
                MessageStatus::Suppressed
            }
            MessageStatus::Sent => overall.unwrap_or(MessageStatus::Sent),
            other => other,
        };
        let sent = handed_over(status);
        let providers: Vec<ProviderTry> = (tries.iter())
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        Ok(Some(StatusRecord {
            id,
            status,
            attempts: ms(&attempts).map_or(0, |a| u32::try_from(a).unwrap_or(u32::MAX)),
            provider: text("provider"),
            provider_message_id: text("provider_message_id"),
            timeline: with_tries(&timeline, &providers),
            providers,
            possibly_duplicated: output.get("possibly_duplicated").is_some_and(|v| v == true),
            last_error,
            dead_reason: reason.filter(|_| status == MessageStatus::Dead),
            queued_at: ms(&enqueued).and_then(rfc3339),
            updated_at: updated.and_then(rfc3339),
            sent_at: ms(&finished).filter(|_| sent).and_then(rfc3339),
            suppressed,
            recipients,
            recipients_next_cursor: None,
            owner,
        }))
    }

    /// The job's fields, and the message's delivery record, timeline and tries. Two slots on a
    /// cluster (the queue's, and the message's for the rest): read side by side rather than in
    /// one pipeline.
    /// The stored key that queued message `id` (`None`: an operator key, or gone).
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn owner(&self, id: MessageId) -> redis::RedisResult<Option<String>> {
        redis::cmd("HGET")
            .arg(self.queue.job(&id.to_string()))
            .arg("owner")
            .query_async(&mut self.conn.clone())
            .await
    }

    async fn read(&self, id: &str) -> redis::RedisResult<(Vec<Option<String>>, MessageEvents)> {
        let mut conn = self.conn.clone();
        let mut job_conn = self.conn.clone();
        let job = redis::cmd("HMGET")
            .arg(self.queue.job(id))
            .arg(&FIELDS)
            .to_owned();
        tokio::try_join!(job.query_async(&mut job_conn), async {
            redis::pipe()
                .hgetall(self.keys.delivery(id))
                // Bounded even when a timeline was written before its cap was lowered.
                .lrange(
                    self.keys.timeline(id),
                    -isize::try_from(self.timeline_cap).unwrap_or(isize::MAX),
                    -1,
                )
                .lrange(self.keys.tries(id), 0, -1)
                .query_async(&mut conn)
                .await
        })
    }
}

/// The timeline's events with the providers tried, each as a `tried` event (`provider`,
/// `response`), oldest first.
fn with_tries(timeline: &[String], tries: &[ProviderTry]) -> Vec<serde_json::Value> {
    let mut events: Vec<serde_json::Value> = (tries.iter())
        .map(|t| {
            serde_json::json!({
                "event": "tried",
                "at": t.at,
                "provider": t.provider,
                "response": t.answer,
            })
        })
        .chain((timeline.iter()).filter_map(|line| serde_json::from_str(line).ok()))
        .collect();
    // Stable: within one second the tries, which came first, stay first.
    events.sort_by(|a, b| a["at"].as_str().cmp(&b["at"].as_str()));
    events
}

/// Each recipient's status from the delivery record, and the message's own (the empty field);
/// each value is `rank:status`, as the event script writes it.
fn delivered(
    delivery: &BTreeMap<String, String>,
) -> (BTreeMap<String, MessageStatus>, Option<MessageStatus>) {
    let event_status = |value: &String| {
        value
            .split_once(':')
            .and_then(|(_, word)| MessageStatus::from_event(word))
    };
    let mut recipients = BTreeMap::new();
    let mut overall = None;
    for (email, value) in delivery {
        if email.is_empty() {
            overall = event_status(value);
        } else if let Some(status) = event_status(value) {
            recipients.insert(email.clone(), status);
        }
    }
    (recipients, overall)
}

/// Whether a message in `status` has been handed to a provider.
fn handed_over(status: MessageStatus) -> bool {
    !matches!(
        status,
        MessageStatus::Queued
            | MessageStatus::Sending
            | MessageStatus::Retrying
            | MessageStatus::Dead
            | MessageStatus::Suppressed
    )
}
