//! What services hear of: the kinds of event ([`EventType`]) and one event as it is sent
//! ([`Notice`]), the same bytes on the notices stream and in every webhook delivery.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

/// What happened, as the `type` of an event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum EventType {
    #[serde(rename = "email.sent")]
    EmailSent,
    #[serde(rename = "email.delivered")]
    EmailDelivered,
    #[serde(rename = "email.deferred")]
    EmailDeferred,
    #[serde(rename = "email.bounced")]
    EmailBounced,
    #[serde(rename = "email.complained")]
    EmailComplained,
    #[serde(rename = "email.opened")]
    EmailOpened,
    #[serde(rename = "email.clicked")]
    EmailClicked,
    #[serde(rename = "email.failed")]
    EmailFailed,
    #[serde(rename = "email.suppressed")]
    EmailSuppressed,
    #[serde(rename = "address.verified")]
    AddressVerified,
    #[serde(rename = "inbound.received")]
    InboundReceived,
    #[serde(rename = "subscriber.subscribed")]
    SubscriberSubscribed,
    #[serde(rename = "subscriber.confirmed")]
    SubscriberConfirmed,
    #[serde(rename = "subscriber.unsubscribed")]
    SubscriberUnsubscribed,
    #[serde(rename = "campaign.started")]
    CampaignStarted,
    #[serde(rename = "campaign.paused")]
    CampaignPaused,
    #[serde(rename = "campaign.finished")]
    CampaignFinished,
    #[serde(rename = "import.finished")]
    ImportFinished,
}

impl EventType {
    /// Every type, in the order the documentation lists them.
    pub const ALL: [EventType; 18] = [
        Self::EmailSent,
        Self::EmailDelivered,
        Self::EmailDeferred,
        Self::EmailBounced,
        Self::EmailComplained,
        Self::EmailOpened,
        Self::EmailClicked,
        Self::EmailFailed,
        Self::EmailSuppressed,
        Self::AddressVerified,
        Self::InboundReceived,
        Self::SubscriberSubscribed,
        Self::SubscriberConfirmed,
        Self::SubscriberUnsubscribed,
        Self::CampaignStarted,
        Self::CampaignPaused,
        Self::CampaignFinished,
        Self::ImportFinished,
    ];

    /// The type's name (`email.delivered`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailSent => "email.sent",
            Self::EmailDelivered => "email.delivered",
            Self::EmailDeferred => "email.deferred",
            Self::EmailBounced => "email.bounced",
            Self::EmailComplained => "email.complained",
            Self::EmailOpened => "email.opened",
            Self::EmailClicked => "email.clicked",
            Self::EmailFailed => "email.failed",
            Self::EmailSuppressed => "email.suppressed",
            Self::AddressVerified => "address.verified",
            Self::InboundReceived => "inbound.received",
            Self::SubscriberSubscribed => "subscriber.subscribed",
            Self::SubscriberConfirmed => "subscriber.confirmed",
            Self::SubscriberUnsubscribed => "subscriber.unsubscribed",
            Self::CampaignStarted => "campaign.started",
            Self::CampaignPaused => "campaign.paused",
            Self::CampaignFinished => "campaign.finished",
            Self::ImportFinished => "import.finished",
        }
    }

    /// Whether it tells of one key's mail (an email's fate, an address it asked to verify): an
    /// endpoint hears of those of its own key only, unless its key reads every key's mail.
    pub fn is_of_a_key(self) -> bool {
        matches!(
            self,
            Self::EmailSent
                | Self::EmailDelivered
                | Self::EmailDeferred
                | Self::EmailBounced
                | Self::EmailComplained
                | Self::EmailOpened
                | Self::EmailClicked
                | Self::EmailFailed
                | Self::EmailSuppressed
                | Self::AddressVerified
        )
    }

    /// The type named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event for the services: its type, the stored key whose mail it is about (none: an
/// operator key's, or nobody's), its `webhook-id` and its JSON body
/// (`{"type", "timestamp", "data"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: EventType,
    pub key: Option<String>,
    /// `msg_` and 32 hex digits naming the event itself: the same however often it is sent.
    pub id: String,
    pub body: String,
}

impl Notice {
    /// The event of `kind` that happened at `at`, whose `identity` names it among all events
    /// (the same text for the same event, so that an event told twice keeps its id).
    pub fn new(
        kind: EventType,
        identity: &str,
        at: DateTime<Utc>,
        key: Option<String>,
        data: serde_json::Value,
    ) -> Self {
        let digest = Sha256::digest(format!("{kind}|{identity}").as_bytes());
        let id = format!("msg_{}", base16ct::lower::encode_string(&digest[..16]));
        let body = serde_json::json!({
            "type": kind,
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "data": data,
        });
        Self {
            kind,
            key,
            id,
            body: body.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_named_by_its_type_and_identity_only() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let data = serde_json::json!({"list_id": "l1"});
        let one = Notice::new(EventType::ImportFinished, "i1", at, None, data.clone());
        let again = Notice::new(EventType::ImportFinished, "i1", Utc::now(), None, data);
        assert_eq!(one.id, again.id);
        assert!(
            one.id.starts_with("msg_") && one.id.len() == 36,
            "{}",
            one.id
        );
        let other = Notice::new(
            EventType::CampaignFinished,
            "i1",
            at,
            None,
            serde_json::json!({}),
        );
        assert_ne!(one.id, other.id);
        let body: serde_json::Value = serde_json::from_str(&one.body).unwrap();
        assert_eq!(body["type"], "import.finished");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(body["data"]["list_id"], "l1");
    }

    #[test]
    fn each_type_reads_back_from_its_name_and_serializes_as_it() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert_eq!(EventType::parse("email.unknown"), None);
    }
}
