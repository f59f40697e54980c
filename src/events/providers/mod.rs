//! The other providers' webhooks, read into the same [`Event`]s as SendGrid's: each parser
//! maps its provider's words onto SendGrid's kinds, so the timeline, the suppressions, the
//! stats and the campaigns see no difference. mailroom's ids come back in each provider's
//! metadata (`mailroom_id`, `mailroom_campaign`, `mailroom_list`, `mailroom_key`), which every provider sends.
//!
//! A temporary failure (a soft bounce, a delay) is `deferred`: it never suppresses.

pub mod mailgun;
pub mod postmark;
pub mod ses;
pub mod sns;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mailroom_jobs::EventSource;

use super::parse::{Batch, Event, NotEvents, parse_batch};

/// Reads a stored body from `source`'s webhook; `received_at` stands in for a time it lacks.
///
/// # Errors
/// When the body is not what that webhook posts.
pub fn parse_from(
    source: EventSource,
    body: &str,
    received_at: DateTime<Utc>,
) -> Result<Batch, NotEvents> {
    let one = |event: Event| Batch {
        events: vec![event],
        skipped: 0,
    };
    match source {
        EventSource::Sendgrid => parse_batch(body),
        EventSource::Postmark => postmark::parse(body, received_at).map(one),
        EventSource::Mailgun => mailgun::parse(body).map(|post| one(post.event())),
        EventSource::Ses => {
            let envelope = sns::parse(body).map_err(|e| match e {
                sns::SnsError::NotSns(error) => NotEvents::Provider {
                    provider: "SNS",
                    error,
                },
                _ => NotEvents::Missing {
                    provider: "SNS",
                    missing: "notification",
                },
            })?;
            let event = ses::parse(&envelope.message)?;
            Ok(Batch {
                events: event.events(&envelope.message_id, received_at),
                skipped: 0,
            })
        }
    }
}

/// mailroom's own values among a provider's metadata, copied onto `event`.
fn carry_metadata(event: &mut Event, metadata: &BTreeMap<String, serde_json::Value>) {
    let text = |name: &str| match metadata.get(name) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    event.mailroom_id = text("mailroom_id");
    event.mailroom_campaign = text("mailroom_campaign");
    event.mailroom_list = text("mailroom_list");
    event.mailroom_key = text("mailroom_key");
}

/// An RFC 3339 time as Unix seconds, or `fallback` when it is absent or unreadable.
fn seconds(time: Option<&str>, fallback: DateTime<Utc>) -> i64 {
    time.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(fallback, |t| t.with_timezone(&Utc))
        .timestamp()
}
