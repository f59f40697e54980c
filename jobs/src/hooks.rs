//! Deliveries of events to the services' webhook endpoints (queue `hooks`): one job per
//! endpoint and batch of events, sent in order.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{EnqueueOptions, Job};

/// The most events one delivery job carries.
pub const MAX_WEBHOOK_EVENTS: usize = 1000;
/// The largest body of one event.
pub const MAX_WEBHOOK_BODY: usize = 256 * 1024;

/// Events for one endpoint, POSTed one after the other in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverWebhook {
    /// The endpoint's id (16 hex digits).
    pub endpoint: String,
    /// The events (1 to 1,000).
    pub events: Vec<WebhookMessage>,
}

/// One event as it is sent on every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookMessage {
    /// Its `webhook-id` (`msg_` and a UUID), the same on every attempt.
    pub id: String,
    /// The JSON body, the exact bytes signed and sent (at most 256 KiB).
    pub body: String,
}

impl Job for DeliverWebhook {
    const QUEUE: &'static str = "hooks";

    fn validate(&self) -> Result<(), crate::Invalid> {
        let hex16 = self.endpoint.len() == 16
            && self
                .endpoint
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex16 {
            return Err(crate::Invalid("endpoint is not an endpoint id".to_owned()));
        }
        if self.events.is_empty() || self.events.len() > MAX_WEBHOOK_EVENTS {
            return Err(crate::Invalid(format!(
                "1 to {MAX_WEBHOOK_EVENTS} events, not {}",
                self.events.len()
            )));
        }
        match self
            .events
            .iter()
            .find(|e| e.id.is_empty() || e.id.len() > 64 || e.body.len() > MAX_WEBHOOK_BODY)
        {
            Some(_) => Err(crate::Invalid(format!(
                "an event's id is 1 to 64 characters and its body at most {MAX_WEBHOOK_BODY} bytes"
            ))),
            None => Ok(()),
        }
    }

    fn enqueue_options(&self) -> EnqueueOptions {
        // Immediately, then Svix's schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
        EnqueueOptions {
            max_attempts: Some(8),
            ..EnqueueOptions::default()
        }
    }
}
