//! Mailgun's webhooks: one event a POST, signed with the webhook signing key
//! (<https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/#securing-webhooks>):
//! HMAC-SHA256 over `timestamp` followed by `token`, in hex. The HTTP edge checks the
//! signature, the time and that the token was never seen before; this module reads the event.
//!
//! A `failed` event is permanent (a bounce, suppressing) or temporary (a deferral); one failed
//! because Mailgun's own suppression list holds the address is a drop with SendGrid's reason,
//! so it suppresses the same way.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::events::parse::{Event, EventKind, NotEvents, Source};

/// One POST.
#[derive(Debug, Deserialize)]
pub struct Post {
    pub signature: Signature,
    #[serde(rename = "event-data")]
    pub event_data: EventData,
}

/// The signature block.
#[derive(Debug, Deserialize)]
pub struct Signature {
    /// Unix seconds, as text.
    pub timestamp: String,
    /// 50 random characters, never to be accepted twice.
    pub token: String,
    /// Hex HMAC-SHA256.
    pub signature: String,
}

/// The fields of an event mailroom reads.
#[derive(Debug, Deserialize)]
pub struct EventData {
    pub event: String,
    /// Unix seconds with a fraction.
    pub timestamp: f64,
    #[serde(default)]
    pub id: Option<String>,
    pub recipient: String,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, rename = "delivery-status")]
    pub delivery_status: Option<DeliveryStatus>,
    #[serde(default, rename = "user-variables")]
    pub user_variables: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub message: Option<Message>,
}

/// What the receiving server said.
#[derive(Debug, Default, Deserialize)]
pub struct DeliveryStatus {
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "attempt-no")]
    pub attempt_no: Option<u32>,
}

/// The message the event is about.
#[derive(Debug, Default, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub headers: BTreeMap<String, serde_json::Value>,
}

/// Reads one POST.
///
/// # Errors
/// When the body is not a Mailgun webhook POST.
pub fn parse(body: &str) -> Result<Post, NotEvents> {
    let post: Post = serde_json::from_str(body).map_err(|error| NotEvents::Provider {
        provider: "Mailgun",
        error,
    })?;
    if post.event_data.recipient.is_empty() {
        return Err(NotEvents::Missing {
            provider: "Mailgun",
            missing: "recipient",
        });
    }
    Ok(post)
}

/// Why a POST's signature is not Mailgun's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is not Mailgun's")]
    Mismatch,
    #[error("the timestamp is not a number")]
    BadTimestamp,
    #[error("the timestamp is more than {0} s from now")]
    Stale(i64),
}

impl Signature {
    /// Checks the HMAC with `key` and the time against `now` within `tolerance_secs` (the
    /// token's freshness is the caller's: it needs Redis).
    ///
    /// # Errors
    /// When the signature does not match or the time is out of the window.
    pub fn verify(&self, key: &[u8], now: i64, tolerance_secs: i64) -> Result<(), SignatureError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| SignatureError::Mismatch)?;
        mac.update(self.timestamp.as_bytes());
        mac.update(self.token.as_bytes());
        let given =
            base16ct::mixed::decode_vec(&self.signature).map_err(|_| SignatureError::Mismatch)?;
        mac.verify_slice(&given)
            .map_err(|_| SignatureError::Mismatch)?;
        let at: i64 = self
            .timestamp
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        if (now - at).abs() > tolerance_secs {
            return Err(SignatureError::Stale(tolerance_secs));
        }
        Ok(())
    }
}

impl Post {
    /// The event as mailroom's.
    pub fn event(&self) -> Event {
        let data = &self.event_data;
        #[allow(clippy::cast_possible_truncation)]
        let at = data.timestamp as i64;
        let mut event = Event::own(Source::Mailgun, kind(data), &data.recipient, at);
        super::carry_metadata(&mut event, &data.user_variables);
        let status = data.delivery_status.as_ref();
        event.sg_event_id = data.id.clone();
        event.sg_message_id = (data.message.as_ref())
            .and_then(|m| m.headers.get("message-id"))
            .and_then(|id| id.as_str().map(str::to_owned));
        event.category.clone_from(&data.tags);
        event.reason = (status.and_then(|s| s.description.clone()))
            .filter(|d| !d.is_empty())
            .or_else(|| data.reason.clone());
        event.response = status.and_then(|s| s.message.clone());
        event.status = status.and_then(|s| match &s.code {
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            _ => None,
        });
        event.attempt = status.and_then(|s| s.attempt_no).map(|n| n.to_string());
        event.url.clone_from(&data.url);
        if let Some(reason) = dropped_reason(data) {
            event.reason = Some(reason.to_owned());
        }
        event
    }
}

/// The SendGrid kind of an event.
fn kind(data: &EventData) -> EventKind {
    match data.event.as_str() {
        "accepted" => EventKind::Processed,
        "delivered" => EventKind::Delivered,
        "opened" => EventKind::Open,
        "clicked" => EventKind::Click,
        "complained" => EventKind::SpamReport,
        "unsubscribed" => EventKind::Unsubscribe,
        "rejected" => EventKind::Dropped,
        "failed" if dropped_reason(data).is_some() => EventKind::Dropped,
        "failed" if data.severity.as_deref() == Some("permanent") => EventKind::Bounce,
        "failed" => EventKind::Deferred,
        other => EventKind::Other(other.to_owned()),
    }
}

/// SendGrid's drop reason for a message Mailgun did not send because its own suppression
/// list holds the address.
fn dropped_reason(data: &EventData) -> Option<&'static str> {
    if data.event != "failed" {
        return None;
    }
    match data.reason.as_deref() {
        Some("suppress-bounce") => Some("Bounced Address"),
        Some("suppress-unsubscribe") => Some("Unsubscribed Address"),
        Some("suppress-complaint") => Some("Spam Reporting Address"),
        _ => None,
    }
}

/// The tokens of accepted POSTs, each kept as long as its timestamp could still pass, so a
/// POST replayed inside the window is refused.
#[derive(Debug, Clone)]
pub struct Tokens {
    conn: mailroom_jobs::RedisConnection,
    keys: mailroom_jobs::Keys,
}

impl Tokens {
    pub fn new(conn: mailroom_jobs::RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            keys: mailroom_jobs::Keys::new(prefix),
        }
    }

    /// Marks `token` used; whether this was its first use.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn first_use(&self, token: &str, keep_secs: u64) -> redis::RedisResult<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(token))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(keep_secs.max(1))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(set.is_some())
    }

    /// Forgets `token`: its POST was not stored, and the provider's retry must be taken.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn release(&self, token: &str) -> redis::RedisResult<()> {
        redis::cmd("DEL")
            .arg(self.key(token))
            .query_async(&mut self.conn.clone())
            .await
    }

    fn key(&self, token: &str) -> String {
        use sha2::Digest as _;
        let digest = base16ct::lower::encode_string(&Sha256::digest(token.as_bytes()));
        self.keys.webhook_token("mailgun", &digest)
    }
}
