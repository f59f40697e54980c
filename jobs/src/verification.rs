//! The verification job: email a single-use confirmation link to an address.
//!
//! The token is not in the payload: the worker draws it from the OS random source when it
//! sends the email, and Redis only ever keeps its SHA-256. A payload sits in Redis in clear, so
//! a token in it would be a token in Redis in clear.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{EnqueueOptions, Job, email::check_address};

/// Send the verification email for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendVerification {
    /// The request's id (also the job's).
    pub id: Uuid,
    /// The address to verify.
    pub email: String,
    /// The recipient's language (BCP 47).
    #[serde(default)]
    pub locale: Option<String>,
    /// Where to send the person after confirming (only if its origin is allowed).
    #[serde(default)]
    pub return_url: Option<String>,
    /// The caller's key/value pairs, handed back in the `email.verified` event.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// When the link stops working; the API states it in its answer.
    pub expires_at: DateTime<Utc>,
    /// Set for a double opt-in: the email is `subscription_confirm` for this list, and its link
    /// goes to `/subscribe/confirm`. Its list and subscriber also travel in `metadata`
    /// (`mailroom.list`, `mailroom.subscriber`), where the confirmation finds them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optin_list: Option<String>,
    /// The id of the API request that queued it (`X-Request-Id`), for the worker's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Job for SendVerification {
    const QUEUE: &'static str = "verification";

    fn validate(&self) -> Result<(), crate::Invalid> {
        crate::request_id::check_request_id(self.request_id.as_deref())?;
        check_address(&self.email)
    }

    fn enqueue_options(&self) -> EnqueueOptions {
        EnqueueOptions {
            id: Some(self.id),
            ..EnqueueOptions::default()
        }
    }
}

/// Deliver one event (`email.verified`) to the service's callback URL, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverEvent {
    /// The delivery's id.
    pub id: Uuid,
    /// The event, posted as the request body.
    pub event: serde_json::Value,
}

impl Job for DeliverEvent {
    const QUEUE: &'static str = "callbacks";

    fn enqueue_options(&self) -> EnqueueOptions {
        EnqueueOptions {
            id: Some(self.id),
            ..EnqueueOptions::default()
        }
    }
}
