//! SendGrid events, parsed tolerantly: the fields mailroom acts on are typed, every other field
//! is ignored (the raw batch stays in the queue record), unknown event types are kept as
//! [`EventKind::Other`], and one malformed event never sinks its batch.

use serde::{Deserialize, Deserializer, de};
use serde_json::value::RawValue;

/// The `event` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Processed,
    Dropped,
    Delivered,
    Deferred,
    Bounce,
    Open,
    Click,
    SpamReport,
    Unsubscribe,
    GroupUnsubscribe,
    GroupResubscribe,
    /// A type this version does not know (kept on the timeline, nothing else).
    Other(String),
}

impl EventKind {
    fn parse(text: &str) -> Self {
        // SendGrid's own documentation shows "Processed" once: compare without case.
        match text.to_ascii_lowercase().as_str() {
            "processed" => Self::Processed,
            "dropped" => Self::Dropped,
            "delivered" => Self::Delivered,
            "deferred" => Self::Deferred,
            "bounce" => Self::Bounce,
            "open" => Self::Open,
            "click" => Self::Click,
            "spamreport" => Self::SpamReport,
            "unsubscribe" => Self::Unsubscribe,
            "group_unsubscribe" => Self::GroupUnsubscribe,
            "group_resubscribe" => Self::GroupResubscribe,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The event's name as SendGrid spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(name) => name,
            known => known.label(),
        }
    }

    /// A bounded label for metrics: a type this version does not know is `other` (a webhook
    /// body must not be able to mint labels).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Dropped => "dropped",
            Self::Delivered => "delivered",
            Self::Deferred => "deferred",
            Self::Bounce => "bounce",
            Self::Open => "open",
            Self::Click => "click",
            Self::SpamReport => "spamreport",
            Self::Unsubscribe => "unsubscribe",
            Self::GroupUnsubscribe => "group_unsubscribe",
            Self::GroupResubscribe => "group_resubscribe",
            Self::Other(_) => "other",
        }
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::parse(&text))
    }
}

/// Who reported an event: a provider's webhook, or mailroom itself (an SMTP refusal at send
/// time, a delivery or complaint report mailed back, a tracking hit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    #[default]
    Sendgrid,
    Postmark,
    Mailgun,
    Ses,
    /// The SMTP relay refused a recipient while mailroom handed the message over.
    Smtp,
    /// A delivery status notification (RFC 3464) or complaint report (RFC 5965) received.
    Report,
    /// mailroom's own open pixel or click redirect.
    Tracking,
}

impl From<mailroom_jobs::EventSource> for Source {
    fn from(source: mailroom_jobs::EventSource) -> Self {
        match source {
            mailroom_jobs::EventSource::Sendgrid => Self::Sendgrid,
            mailroom_jobs::EventSource::Postmark => Self::Postmark,
            mailroom_jobs::EventSource::Mailgun => Self::Mailgun,
            mailroom_jobs::EventSource::Ses => Self::Ses,
        }
    }
}

impl Source {
    /// The name on suppression records and timelines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sendgrid => "sendgrid",
            Self::Postmark => "postmark",
            Self::Mailgun => "mailgun",
            Self::Ses => "ses",
            Self::Smtp => "smtp",
            Self::Report => "report",
            Self::Tracking => "tracking",
        }
    }
}

/// One event, with the fields mailroom uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    /// Who reported it (never read from a webhook body: SendGrid's are SendGrid's).
    #[serde(skip)]
    pub source: Source,
    pub email: String,
    pub event: EventKind,
    /// Unix seconds (milliseconds, which Marketing events use, are converted).
    #[serde(deserialize_with = "seconds")]
    pub timestamp: i64,
    #[serde(default)]
    pub sg_event_id: Option<String>,
    #[serde(default)]
    pub sg_message_id: Option<String>,
    /// mailroom's message id, sent as `custom_args.mailroom_id` and merged in by SendGrid.
    #[serde(default, deserialize_with = "lenient_string")]
    pub mailroom_id: Option<String>,
    /// A string or an array of strings: whatever shape was sent.
    #[serde(default, deserialize_with = "categories")]
    pub category: Vec<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub response: Option<String>,
    /// `bounce` or `blocked`, on bounce events.
    #[serde(default, rename = "type", deserialize_with = "lenient_string")]
    pub bounce_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub attempt: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub asm_group_id: Option<String>,
    /// The list of list mail, sent as `custom_args.mailroom_list`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub mailroom_list: Option<String>,
    /// The campaign of campaign mail, sent as `custom_args.mailroom_campaign`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub mailroom_campaign: Option<String>,
    /// The stored API key that queued the message, sent as `custom_args.mailroom_key`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub mailroom_key: Option<String>,
}

impl Event {
    /// An event mailroom reports itself, about `email` at Unix second `timestamp`; the caller
    /// fills what else it knows (the message, the reason, the campaign).
    pub fn own(source: Source, event: EventKind, email: &str, timestamp: i64) -> Self {
        Self {
            source,
            email: email.to_owned(),
            event,
            timestamp,
            sg_event_id: None,
            sg_message_id: None,
            mailroom_id: None,
            category: Vec::new(),
            reason: None,
            status: None,
            response: None,
            bounce_type: None,
            url: None,
            attempt: None,
            asm_group_id: None,
            mailroom_list: None,
            mailroom_campaign: None,
            mailroom_key: None,
        }
    }
}

/// What [`parse_batch`] made of a body.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    /// Events that could not be read (each logged with its reason).
    pub skipped: usize,
}

/// Whether `body` is a JSON array, without building its values: the API's check before it
/// stores a batch.
pub fn is_event_array(body: &[u8]) -> Result<usize, NotEvents> {
    serde_json::from_slice::<Vec<&RawValue>>(body)
        .map(|events| events.len())
        .map_err(NotEvents::Array)
}

/// A body that is not what its webhook posts, with serde's words for where.
#[derive(Debug, thiserror::Error)]
pub enum NotEvents {
    #[error("the body is not a JSON array of events: {0}")]
    Array(#[source] serde_json::Error),
    #[error("the body is not a {provider} event: {error}")]
    Provider {
        provider: &'static str,
        #[source]
        error: serde_json::Error,
    },
    #[error("the {provider} event has no {missing}")]
    Missing {
        provider: &'static str,
        missing: &'static str,
    },
}

/// Parses a batch, skipping (and logging) events that lack `email`, `event` or `timestamp` or
/// carry them in a wrong type.
///
/// # Errors
/// When the body is not a JSON array at all.
pub fn parse_batch(body: &str) -> Result<Batch, NotEvents> {
    let raw: Vec<&RawValue> = serde_json::from_str(body).map_err(NotEvents::Array)?;
    let mut batch = Batch {
        events: Vec::with_capacity(raw.len()),
        skipped: 0,
    };
    for (index, event) in raw.iter().enumerate() {
        match serde_json::from_str::<Event>(event.get()) {
            Ok(event) => batch.events.push(event),
            Err(error) => {
                tracing::warn!(index, %error, "skipped an event mailroom cannot read");
                batch.skipped += 1;
            }
        }
    }
    Ok(batch)
}

fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Float(f64),
        Text(String),
    }
    let value = match Raw::deserialize(deserializer)? {
        Raw::Int(i) => i,
        #[allow(clippy::cast_possible_truncation)]
        Raw::Float(f) if f.is_finite() => f as i64,
        Raw::Float(_) => return Err(de::Error::custom("timestamp is not a finite number")),
        Raw::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| de::Error::custom("timestamp is not a number"))?,
    };
    // Seconds stay below 10^11 until the year 5138; milliseconds are above it since 1973.
    Ok(if value > 100_000_000_000 {
        value / 1000
    } else {
        value
    })
}

/// A string, or a number or boolean written as one; anything else is treated as absent.
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

fn categories<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::String(s) => vec![s],
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    })
}
