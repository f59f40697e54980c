//! Postmark's webhooks: one record a POST, its kind in `RecordType`
//! (<https://postmarkapp.com/developer/webhooks/webhooks-overview>). A bounce's `Type` says
//! whether it is for good: hard bounces, bad addresses and manual deactivations suppress;
//! blocks fail the message without suppressing; soft bounces, DNS errors and transient
//! failures are deferrals; auto-replies and the like are kept on the timeline only.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{carry_metadata, seconds};
use crate::events::parse::{Event, EventKind, NotEvents, Source};

/// The fields of a record mailroom reads (Postmark sends more; they stay in the stored body).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    pub record_type: String,
    /// A bounce's or complaint's id.
    #[serde(default, rename = "ID")]
    pub id: Option<i64>,
    #[serde(default, rename = "Type")]
    pub bounce_type: Option<String>,
    #[serde(default, rename = "MessageID")]
    pub message_id: Option<String>,
    /// The address, on deliveries, opens, clicks and subscription changes.
    #[serde(default)]
    pub recipient: Option<String>,
    /// The address, on bounces and complaints.
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub delivered_at: Option<String>,
    #[serde(default)]
    pub bounced_at: Option<String>,
    #[serde(default)]
    pub received_at: Option<String>,
    #[serde(default)]
    pub changed_at: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub original_link: Option<String>,
    #[serde(default)]
    pub suppress_sending: Option<bool>,
    #[serde(default)]
    pub suppression_reason: Option<String>,
}

/// Reads one POST.
///
/// # Errors
/// When the body is not a record, or names no address.
pub fn parse(body: &str, received_at: DateTime<Utc>) -> Result<Event, NotEvents> {
    let record: Record = serde_json::from_str(body).map_err(|error| NotEvents::Provider {
        provider: "Postmark",
        error,
    })?;
    let email = (record.recipient.as_deref())
        .or(record.email.as_deref())
        .filter(|e| !e.is_empty())
        .ok_or(NotEvents::Missing {
            provider: "Postmark",
            missing: "Recipient or Email",
        })?;
    let time = (record.delivered_at.as_deref())
        .or(record.bounced_at.as_deref())
        .or(record.received_at.as_deref())
        .or(record.changed_at.as_deref());
    let mut event = Event::own(
        Source::Postmark,
        kind(&record),
        email,
        seconds(time, received_at),
    );
    carry_metadata(&mut event, &record.metadata);
    event.sg_event_id = record.id.map(|id| id.to_string());
    event.sg_message_id = record.message_id.clone();
    event.category = record.tag.iter().cloned().collect();
    // A block is the receiver's policy, not the address: the message failed, nobody is
    // suppressed (as with mailroom's own blocks).
    event.bounce_type = match record.bounce_type.as_deref() {
        Some("Blocked" | "DMARCPolicy") => Some("blocked".to_owned()),
        other => other.map(str::to_owned),
    };
    event.reason = record.description.clone().or(record.suppression_reason);
    event.response = record.details;
    event.url = record.original_link;
    Ok(event)
}

/// The SendGrid kind a record is.
fn kind(record: &Record) -> EventKind {
    match record.record_type.as_str() {
        "Delivery" => EventKind::Delivered,
        "Open" => EventKind::Open,
        "Click" => EventKind::Click,
        "SpamComplaint" => EventKind::SpamReport,
        "Bounce" => bounce_kind(record.bounce_type.as_deref().unwrap_or_default()),
        "SubscriptionChange" => match (
            record.suppress_sending,
            record.suppression_reason.as_deref(),
        ) {
            (Some(true), Some("HardBounce")) => EventKind::Bounce,
            (Some(true), Some("SpamComplaint")) => EventKind::SpamReport,
            (Some(true), _) => EventKind::Unsubscribe,
            // Postmark lifting its own suppression lifts none of mailroom's.
            _ => EventKind::Other("subscription_change".to_owned()),
        },
        other => EventKind::Other(other.to_ascii_lowercase()),
    }
}

/// A bounce by its `Type` (Postmark's bounce types: <https://postmarkapp.com/developer/api/bounce-api#bounce-types>).
fn bounce_kind(bounce_type: &str) -> EventKind {
    match bounce_type {
        "HardBounce" | "BadEmailAddress" | "ManuallyDeactivated" => EventKind::Bounce,
        "SpamComplaint" => EventKind::SpamReport,
        "Unsubscribe" => EventKind::Unsubscribe,
        "Blocked" | "DMARCPolicy" => EventKind::Bounce,
        "Transient" | "SoftBounce" | "DnsError" => EventKind::Deferred,
        other => EventKind::Other(format!("bounce:{}", other.to_ascii_lowercase())),
    }
}
