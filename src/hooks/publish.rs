//! Events to the endpoints that want them. As a follower of the event store, the publisher
//! turns each applied email event into a Standard Webhooks message and queues one delivery
//! job per endpoint that wants any of them, its events in the order they came.
//!
//! A batch of events delivered again (the provider's retry, or the batch's own) yields the
//! same messages with the same `webhook-id`s and the same job ids, which the queue answers for
//! once: at least once, and duplicates only as the scheme allows. Endpoints are read at most
//! once a second per process.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use mailroom_jobs::{DeliverWebhook, EnqueueOptions, Job as _, Producer, WebhookMessage};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::{EventType, HookError, HookStore, Notice, store::Stored};
use crate::events::{Event, EventKind, Follower};

/// How long this process trusts what it read of the endpoints.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// What this process last read of the endpoints, and when.
type Seen = Arc<Mutex<Option<(Instant, Arc<Vec<Stored>>)>>>;

/// Queues deliveries.
#[derive(Debug, Clone)]
pub struct Publisher {
    store: HookStore,
    producer: Producer,
    seen: Seen,
}

impl Publisher {
    pub fn new(store: HookStore, producer: Producer) -> Self {
        Self {
            store,
            producer,
            seen: Arc::default(),
        }
    }

    async fn endpoints(&self) -> Result<Arc<Vec<Stored>>, HookError> {
        if let Some((at, endpoints)) = self.seen.lock().expect("not poisoned").as_ref()
            && at.elapsed() < FRESH_FOR
        {
            return Ok(endpoints.clone());
        }
        let endpoints = Arc::new(self.store.all().await?);
        *self.seen.lock().expect("not poisoned") = Some((Instant::now(), endpoints.clone()));
        Ok(endpoints)
    }

    /// Queues `events` for the endpoints that want them: how many jobs.
    ///
    /// # Errors
    /// When Redis fails (the caller retries the whole batch).
    pub async fn publish(&self, events: &[Notice]) -> Result<usize, HookError> {
        if events.is_empty() {
            return Ok(0);
        }
        let endpoints = self.endpoints().await?;
        let mut queued = 0;
        for stored in endpoints.iter().filter(|s| s.endpoint.disabled.is_none()) {
            let wanted: Vec<WebhookMessage> = events
                .iter()
                .filter(|e| stored.endpoint.events.contains(&e.kind))
                .filter(|e| {
                    !e.kind.is_of_a_key() || stored.sees_all || stored.endpoint.owner == e.key
                })
                .map(|e| WebhookMessage {
                    id: e.id.clone(),
                    body: e.body.clone(),
                })
                .collect();
            for chunk in wanted.chunks(mailroom_jobs::hooks::MAX_WEBHOOK_EVENTS) {
                let id = job_id(&stored.endpoint.id, chunk);
                queue(&self.producer, &stored.endpoint.id, chunk.to_vec(), id).await?;
                queued += 1;
            }
        }
        Ok(queued)
    }
}

/// Queues `events` for `endpoint` as job `id`.
///
/// # Errors
/// When Redis fails.
pub(super) async fn queue(
    producer: &Producer,
    endpoint: &str,
    events: Vec<WebhookMessage>,
    id: uuid::Uuid,
) -> Result<(), HookError> {
    let job = DeliverWebhook {
        endpoint: endpoint.to_owned(),
        events,
    };
    let options = EnqueueOptions {
        id: Some(id),
        ..job.enqueue_options()
    };
    (producer.push_with(&job, options).await)
        .map(drop)
        .map_err(|e| match e {
            mailroom_jobs::PushError::Redis(e) => HookError::Redis(e),
            other => HookError::invalid("events", other.to_string()),
        })
}

/// The same job for the same endpoint and events, so that a batch delivered twice queues once.
fn job_id(endpoint: &str, events: &[WebhookMessage]) -> uuid::Uuid {
    let mut hash = Sha256::new();
    hash.update(endpoint.as_bytes());
    for event in events {
        hash.update(b"\0");
        hash.update(event.id.as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The webhook type of a provider's (or mailroom's own) event, if services hear of it.
fn kind_of(event: &Event) -> Option<EventType> {
    Some(match event.event {
        EventKind::Processed => EventType::EmailSent,
        EventKind::Delivered => EventType::EmailDelivered,
        EventKind::Deferred => EventType::EmailDeferred,
        EventKind::Bounce => EventType::EmailBounced,
        EventKind::Dropped => EventType::EmailSuppressed,
        EventKind::SpamReport => EventType::EmailComplained,
        EventKind::Open => EventType::EmailOpened,
        EventKind::Click => EventType::EmailClicked,
        _ => return None,
    })
}

/// An applied event as a notice: its identity is the provider's own id of the event, or what
/// makes the event itself, so a redelivered event keeps its `webhook-id`.
pub fn notice(event: &Event) -> Option<Notice> {
    let kind = kind_of(event)?;
    let identity = match &event.sg_event_id {
        Some(id) if !id.is_empty() => format!("{}|{id}", event.source.as_str()),
        _ => format!(
            "{}|{}|{}|{}",
            event.mailroom_id.as_deref().unwrap_or_default(),
            event.event.label(),
            event.timestamp,
            event.email
        ),
    };
    let at = chrono::DateTime::from_timestamp(event.timestamp, 0).unwrap_or_else(chrono::Utc::now);
    let data = json!({
        "message_id": event.mailroom_id,
        "email": event.email,
        "key": event.mailroom_key,
        "categories": event.category,
        "campaign_id": event.mailroom_campaign,
        "source": event.source.as_str(),
        "reason": event.reason,
        "status": event.status,
        "bounce_type": event.bounce_type,
        "url": event.url,
    });
    Some(Notice::new(
        kind,
        &identity,
        at,
        event.mailroom_key.clone(),
        data,
    ))
}

impl Follower for Publisher {
    fn follow<'a>(
        &'a self,
        seen: &'a [&'a Event],
        _fresh: &'a [(&'a Event, bool)],
    ) -> BoxFuture<'a, redis::RedisResult<()>> {
        Box::pin(async move {
            // Nothing is built for events no endpoint wants (most batches, most of the time).
            let endpoints = match self.endpoints().await {
                Ok(endpoints) => endpoints,
                Err(HookError::Redis(error)) => return Err(error),
                Err(_) => return Ok(()),
            };
            let wanted = |kind: EventType| {
                (endpoints.iter())
                    .any(|s| s.endpoint.disabled.is_none() && s.endpoint.events.contains(&kind))
            };
            let events: Vec<Notice> = (seen.iter())
                .filter(|e| kind_of(e).is_some_and(wanted))
                .filter_map(|e| notice(e))
                .collect();
            match self.publish(&events).await {
                Ok(_) => Ok(()),
                Err(HookError::Redis(error)) => Err(error),
                Err(error) => {
                    tracing::warn!(%error, "events could not be queued for the webhooks");
                    Ok(())
                }
            }
        })
    }
}
