//! Recording tracking hits: each becomes an event on the same store as SendGrid's
//! ([`crate::events::store`]): `open` and `click` for people (status, unique counts, daily
//! stats, campaign engagement), `machine_open` and `scanner_click` for machines (on the
//! timeline only, with the reason). The recipient is looked up: a message's from the record
//! its send wrote, a campaign's subscriber from the lists. A hit whose recipient is gone (the
//! record expired, the subscriber erased) is dropped: there is no one to attribute it to.

use apalis_core::{error::BoxDynError, task::data::Data};
use mailroom_jobs::{
    CampaignId,
    tracking::{Hit, HitKind, TrackingHits},
};

use std::collections::HashMap;

use crate::{
    domain::SubscriberId,
    events::{Event, EventKind, EventStore, Source},
    queue::JobOutput,
    tracking::TrackedRecipient,
};

/// What the worker records hits with.
#[derive(Debug, Clone)]
pub struct HitStore {
    pub events: EventStore,
    pub lists: crate::lists::ListStore,
    pub campaigns: crate::campaigns::CampaignStore,
    pub conn: mailroom_jobs::RedisConnection,
    pub keys: mailroom_jobs::Keys,
}

/// What a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub fresh: u64,
    pub duplicates: u64,
    pub unattributed: usize,
}

impl JobOutput for Recorded {
    fn to_output(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "fresh": self.fresh,
            "duplicates": self.duplicates,
            "unattributed": self.unattributed,
        }))
    }
}

impl HitStore {
    /// The recipient each hit is about, and the categories its mail was sent with (`None`:
    /// not known any more). Messages' records are read with one `MGET` (split by slot on a
    /// cluster by the client); a campaign's spec and a subscriber are read once per batch.
    async fn recipients(&self, hits: &[Hit]) -> redis::RedisResult<Vec<Option<TrackedRecipient>>> {
        let message_keys: Vec<String> = hits
            .iter()
            .filter_map(|hit| hit.message)
            .map(|message| self.keys.tracked_recipient(&message.to_string()))
            .collect();
        let mut records = if message_keys.is_empty() {
            Vec::new()
        } else {
            redis::cmd("MGET")
                .arg(&message_keys)
                .query_async::<Vec<Option<String>>>(&mut self.conn.clone())
                .await?
        }
        .into_iter();
        let mut campaigns: HashMap<CampaignId, Vec<String>> = HashMap::new();
        let mut subscribers: HashMap<u64, Option<String>> = HashMap::new();
        let mut found = Vec::with_capacity(hits.len());
        for hit in hits {
            let recipient = if hit.message.is_some() {
                records
                    .next()
                    .flatten()
                    .and_then(|raw| serde_json::from_str(&raw).ok())
            } else {
                match (hit.campaign, hit.subscriber) {
                    (Some(campaign), Some(subscriber)) => {
                        let categories = match campaigns.get(&campaign) {
                            Some(categories) => categories.clone(),
                            None => {
                                let categories = self
                                    .campaigns
                                    .spec(campaign)
                                    .await?
                                    .map(|s| s.categories)
                                    .unwrap_or_default();
                                campaigns.insert(campaign, categories.clone());
                                categories
                            }
                        };
                        let email = match subscribers.get(&subscriber) {
                            Some(email) => email.clone(),
                            None => {
                                let email = match SubscriberId::try_from(subscriber) {
                                    Ok(id) => self.lists.subscriber(id).await?.map(|s| s.email),
                                    Err(_) => None,
                                };
                                subscribers.insert(subscriber, email.clone());
                                email
                            }
                        };
                        email.map(|email| TrackedRecipient {
                            email,
                            categories,
                            key: None,
                        })
                    }
                    _ => None,
                }
            };
            found.push(recipient);
        }
        Ok(found)
    }
}

/// The event a hit is, about `recipient`.
fn event_of(hit: &Hit, recipient: &TrackedRecipient) -> Event {
    let kind = match hit.kind {
        HitKind::Open => EventKind::Open,
        HitKind::Click => EventKind::Click,
        HitKind::MachineOpen => EventKind::Other("machine_open".to_owned()),
        HitKind::ScannerClick => EventKind::Other("scanner_click".to_owned()),
    };
    let mut event = Event::own(Source::Tracking, kind, &recipient.email, hit.at);
    event.category = recipient.categories.clone();
    event.mailroom_id = hit.message.map(|id| id.to_string());
    event.mailroom_campaign = hit.campaign.map(|id| id.to_string());
    event.mailroom_key.clone_from(&recipient.key);
    event.url = hit.url.clone();
    event.reason = hit.why.clone();
    event.sg_event_id = Some(format!("mailroom-tracking-{}", hit.id));
    event
}

/// The `tracking` queue's handler.
///
/// # Errors
/// A Redis failure (retried; dedupe makes the retry count each hit once).
pub async fn record_hits(
    job: TrackingHits,
    store: Data<HitStore>,
) -> Result<Recorded, BoxDynError> {
    let recipients = store.recipients(&job.hits).await?;
    let events: Vec<Event> = job
        .hits
        .iter()
        .zip(&recipients)
        .filter_map(|(hit, recipient)| recipient.as_ref().map(|r| event_of(hit, r)))
        .collect();
    let unattributed = job.hits.len() - events.len();
    let applied = store.events.apply(&events, chrono::Utc::now()).await?;
    Ok(Recorded {
        fresh: applied.fresh,
        duplicates: applied.duplicates,
        unattributed,
    })
}
