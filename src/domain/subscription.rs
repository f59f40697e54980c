//! A person's state on one list: the value every layer passes, from the HTTP edge to the
//! templates that show it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A subscription's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    /// Waiting for the person to confirm (double opt-in), or imported without consent recorded.
    Unconfirmed,
    /// Receives the list's mail.
    Confirmed,
    /// Asked to receive no more.
    Unsubscribed,
}

/// The state a new subscription may start in (the API's and an import's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartingStatus {
    /// Waiting for the person to confirm (double opt-in), or imported without consent recorded.
    Unconfirmed,
    /// Receives the list's mail: only when the person's consent was recorded elsewhere.
    Confirmed,
}

impl From<StartingStatus> for SubscriptionStatus {
    fn from(status: StartingStatus) -> Self {
        match status {
            StartingStatus::Unconfirmed => Self::Unconfirmed,
            StartingStatus::Confirmed => Self::Confirmed,
        }
    }
}

impl SubscriptionStatus {
    /// Every status.
    pub const ALL: [Self; 3] = [Self::Unconfirmed, Self::Confirmed, Self::Unsubscribed];

    /// Its one-letter form in Redis.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unconfirmed => "u",
            Self::Confirmed => "c",
            Self::Unsubscribed => "x",
        }
    }

    /// The status of a one-letter form.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "u" => Some(Self::Unconfirmed),
            "c" => Some(Self::Confirmed),
            "x" => Some(Self::Unsubscribed),
            _ => None,
        }
    }
}
