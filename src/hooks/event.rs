//! The kinds of event an endpoint may ask for.

use serde::{Deserialize, Serialize};
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

#[cfg(test)]
mod tests {
    use super::*;

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
