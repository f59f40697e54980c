//! Sending again on request: a replay of what an endpoint's log holds for a window of time,
//! and a test event. Both are queued as ordinary deliveries (the same signing, retries and
//! log), under job ids of their own: a replay asked for twice is sent twice.

use chrono::{DateTime, Utc};
use mailroom_jobs::{Producer, WebhookMessage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{EventType, HookError, Notice, log::DeliveryLog, publish::queue, store::Stored};

/// What to send again.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaySpec {
    /// From when (RFC 3339), at most 7 days back.
    pub since: DateTime<Utc>,
    /// Until when (RFC 3339; now when absent).
    pub until: Option<DateTime<Utc>>,
    /// Only these types (all when absent).
    #[schema(max_items = 18)]
    pub types: Option<Vec<EventType>>,
}

/// How many events were queued again.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Replayed {
    pub queued: usize,
}

/// A test event queued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestSent {
    /// Its `webhook-id`, to find it in the deliveries.
    pub webhook_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
}

/// What a test sends: `{type?}`, one of the endpoint's event types (its first when absent).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    #[serde(rename = "type")]
    pub kind: Option<EventType>,
}

/// Queues again, oldest first and each event once, what endpoint `stored`'s log holds for
/// `spec`'s window.
///
/// # Errors
/// A window that is not one, or Redis failing.
pub async fn replay(
    log: &DeliveryLog,
    producer: &Producer,
    stored: &Stored,
    spec: &ReplaySpec,
) -> Result<Replayed, HookError> {
    let until = spec.until.unwrap_or_else(Utc::now);
    if until < spec.since {
        return Err(HookError::invalid("until", "until comes before since"));
    }
    let id = &stored.endpoint.id;
    let mut seen = std::collections::HashSet::new();
    let mut messages: Vec<WebhookMessage> = (log.recent(id, super::log::KEPT).await?)
        .into_iter()
        .filter(|d| d.at >= spec.since && d.at <= until)
        .filter(|d| {
            (spec.types.as_ref()).is_none_or(|types| d.kind.is_some_and(|k| types.contains(&k)))
        })
        .filter(|d| seen.insert(d.webhook_id.clone()))
        .filter_map(|d| {
            Some(WebhookMessage {
                body: d.body?,
                id: d.webhook_id,
            })
        })
        .collect();
    messages.reverse();
    for chunk in messages.chunks(mailroom_jobs::hooks::MAX_WEBHOOK_EVENTS) {
        queue(producer, id, chunk.to_vec(), uuid::Uuid::now_v7()).await?;
    }
    Ok(Replayed {
        queued: messages.len(),
    })
}

/// Queues a test event of `spec`'s type for endpoint `stored`: `data` says it is a test.
///
/// # Errors
/// A type the endpoint does not take, or Redis failing.
pub async fn test(
    producer: &Producer,
    stored: &Stored,
    spec: &TestSpec,
) -> Result<TestSent, HookError> {
    let endpoint = &stored.endpoint;
    let kind = spec.kind.unwrap_or(endpoint.events[0]);
    if !endpoint.events.contains(&kind) {
        return Err(HookError::invalid(
            "type",
            format!("the endpoint does not take {kind}"),
        ));
    }
    let identity = format!("test|{}", uuid::Uuid::now_v7());
    let data = serde_json::json!({"test": true, "endpoint_id": endpoint.id});
    let notice = Notice::new(kind, &identity, Utc::now(), endpoint.owner.clone(), data);
    let message = WebhookMessage {
        id: notice.id.clone(),
        body: notice.body,
    };
    queue(producer, &endpoint.id, vec![message], uuid::Uuid::now_v7()).await?;
    Ok(TestSent {
        webhook_id: notice.id,
        kind,
    })
}
