//! mailroom's own open and click tracking, for the mail it writes itself (SMTP and the outbox):
//! what a message asks for, and the job that carries tracking hits from the API to a worker.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Job;

/// Which engagement to track in one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tracking {
    /// Add a 1×1 image that reports the first time the message is shown.
    #[serde(default)]
    pub opens: bool,
    /// Send links through mailroom, which records each click and redirects at once.
    #[serde(default)]
    pub clicks: bool,
}

impl Tracking {
    /// Whether anything is tracked.
    pub fn any(self) -> bool {
        self.opens || self.clicks
    }
}

/// The most hits one job carries.
pub const MAX_HITS: usize = 1000;

/// What a hit was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// The open image was fetched by a person's mail client.
    Open,
    /// A tracked link was followed.
    Click,
    /// The open image was fetched by a proxy or prefetcher (Apple Mail Privacy Protection,
    /// image caches), not a person reading.
    MachineOpen,
    /// A link was fetched by a scanner (a security gateway checking links, a HEAD request,
    /// seconds after delivery), not a person clicking.
    ScannerClick,
}

/// One tracking request, verified by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hit {
    /// The hit's own id (a UUID v7, given when it arrived): a batch recorded twice counts
    /// each hit once, and two hits in one second are two.
    pub id: String,
    /// What it was.
    pub kind: HitKind,
    /// The message (its id), for transactional mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<crate::MessageId>,
    /// The campaign, for campaign mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<crate::CampaignId>,
    /// The subscriber, for campaign mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<u64>,
    /// The link followed (clicks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Unix seconds of the hit.
    pub at: i64,
    /// Why it was judged a machine's, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Hits gathered by one API process, applied together by a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackingHits {
    pub hits: Vec<Hit>,
}

impl Job for TrackingHits {
    const QUEUE: &'static str = "tracking";

    fn validate(&self) -> Result<(), crate::Invalid> {
        if self.hits.is_empty() || self.hits.len() > MAX_HITS {
            return Err(crate::Invalid(format!(
                "1 to {MAX_HITS} hits, not {}",
                self.hits.len()
            )));
        }
        for hit in &self.hits {
            if hit.message.is_none() && (hit.campaign.is_none() || hit.subscriber.is_none()) {
                return Err(crate::Invalid(
                    "a hit names a message, or a campaign and a subscriber".to_owned(),
                ));
            }
            if hit.url.as_ref().is_some_and(|u| u.len() > 4096) {
                return Err(crate::Invalid(
                    "a hit's url is at most 4096 bytes".to_owned(),
                ));
            }
        }
        Ok(())
    }
}
