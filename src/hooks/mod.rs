//! Webhooks to the services: endpoints a service registers through `/v1/webhooks`, each with
//! the event types it wants and a secret of its own to check the Standard Webhooks signature
//! of what it receives ([`secret`]). Where an endpoint may point is [`target`]'s rule.
//!
//! An endpoint belongs to the key that made it (a stored key's id; none for an operator key):
//! another stored key neither sees nor changes it. Endpoints live in `P:hook:{ID}` (a hash),
//! their ids in `P:hooks`; at most [`MAX_ENDPOINTS`].

pub mod deliver;
pub mod log;
pub mod publish;
pub mod relay;
pub mod replay;
pub mod secret;
pub mod slots;
pub mod store;
pub mod target;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::domain::{EventType, Notice};
pub use store::HookStore;

/// The most endpoints mailroom keeps.
pub const MAX_ENDPOINTS: usize = 100;
/// The longest description.
pub const MAX_DESCRIPTION: usize = 200;
/// How long a rotated secret keeps signing beside the new one.
pub const ROTATION_GRACE_SECS: i64 = 24 * 3600;

/// What an endpoint is made with, or changed to (`PATCH` names only what changes).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Where events are POSTed: `https://` (`http://` only where the operator allows it), no
    /// credentials, not a private address.
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    /// The event types it receives (at least one).
    #[schema(min_items = 1, max_items = 18)]
    pub events: Option<Vec<EventType>>,
    /// What it is for.
    #[schema(max_length = 200)]
    pub description: Option<String>,
    /// `true` stops deliveries; `false` starts them again (and forgets why it was disabled).
    pub disabled: Option<bool>,
}

/// An endpoint, as the API shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Endpoint {
    /// 16 hex digits.
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    /// The stored key it belongs to (`null`: an operator key's).
    pub owner: Option<String>,
    /// Who made it: a stored key's `mr_` id or an operator key's digest prefix.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Why deliveries stopped (`null`: they run).
    pub disabled: Option<String>,
    /// Until when the secret before the last rotation still signs beside the new one.
    pub previous_secret_until: Option<DateTime<Utc>>,
}

/// An endpoint just made or rotated, with its secret (shown only now).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WithSecret {
    /// `whsec_` + base64 of 32 bytes: the key of the signatures, for the receiver.
    pub secret: String,
    #[serde(flatten)]
    pub endpoint: Endpoint,
}

/// Why an endpoint operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no webhook endpoint {0}")]
    NotFound(String),
    #[error("there are already {MAX_ENDPOINTS} webhook endpoints: delete one first")]
    TooMany,
    #[error("webhooks need MAILROOM_WEBHOOK_SIGNING_KEY, which the operator has not set")]
    NoSigningKey,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl HookError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// The event types of a spec: at least one, each once, in the documentation's order.
fn check_events(events: Vec<EventType>) -> Result<Vec<EventType>, HookError> {
    if events.is_empty() {
        return Err(HookError::invalid("events", "at least one event type"));
    }
    let mut sorted = events;
    sorted.sort();
    sorted.dedup();
    Ok(sorted)
}

fn check_description(description: Option<String>) -> Result<Option<String>, HookError> {
    match description {
        Some(text)
            if text.chars().count() > MAX_DESCRIPTION || text.chars().any(char::is_control) =>
        {
            Err(HookError::invalid(
                "description",
                format!("at most {MAX_DESCRIPTION} characters, none of them control characters"),
            ))
        }
        Some(text) if text.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}
