//! Payloads that carry what the providers post to mailroom (their delivery events), from the
//! API (which verified and stored it) to the workers (which process it).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Job;

/// The most bytes one event batch may hold (SendGrid posts at most 768 KB; the margin allows
/// for a larger setting on their side).
pub const MAX_EVENT_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The provider whose webhook posted a batch: it says how the body reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// SendGrid's Event Webhook: a JSON array of events.
    #[default]
    Sendgrid,
    /// One Postmark webhook POST: a JSON object with a `RecordType`.
    Postmark,
    /// One Mailgun webhook POST: a JSON object with `signature` and `event-data`.
    Mailgun,
    /// One SNS notification of an Amazon SES event: its `Message` is the event.
    Ses,
}

impl EventSource {
    fn is_sendgrid(&self) -> bool {
        *self == Self::Sendgrid
    }
}

/// One verified webhook POST, stored verbatim: the body exactly as the provider sent it, so
/// that nothing is lost to a parser that did not know a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderEvents {
    /// Whose webhook it came from (absent: SendGrid's, as before there were others).
    #[serde(default, skip_serializing_if = "EventSource::is_sendgrid")]
    pub provider: EventSource,
    /// When mailroom received the POST.
    pub received_at: DateTime<Utc>,
    /// The raw body.
    pub body: String,
    /// The id of the API request that queued it (`X-Request-Id`), for the worker's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Job for ProviderEvents {
    const QUEUE: &'static str = "events";

    fn validate(&self) -> Result<(), crate::Invalid> {
        crate::request_id::check_request_id(self.request_id.as_deref())?;
        if self.body.len() > MAX_EVENT_BATCH_BYTES {
            return Err(crate::Invalid(format!(
                "the batch is {} bytes; at most {MAX_EVENT_BATCH_BYTES}",
                self.body.len()
            )));
        }
        Ok(())
    }
}
