//! Campaigns as a follower of the event store: a campaign message's first delivery, unique
//! open or click, bounce, complaint or unsubscribe counts on its campaign, and the campaign's
//! guards may pause it.

use futures::future::BoxFuture;

use super::{CampaignStore, Guards};
use crate::domain::CampaignId;
use crate::events::{Event, EventKind, Follower};

/// Counts engagement on campaigns and pauses one whose guards trip.
#[derive(Debug, Clone)]
pub struct Engagement {
    pub store: CampaignStore,
    pub guards: Guards,
}

impl Engagement {
    async fn count(&self, fresh: &[(&Event, bool)]) -> redis::RedisResult<()> {
        for (event, unique) in fresh {
            let Some(campaign) = event
                .mailroom_campaign
                .as_deref()
                .and_then(CampaignId::parse)
            else {
                continue;
            };
            let counter = match &event.event {
                EventKind::Delivered => "delivered",
                EventKind::Open if *unique => "open",
                EventKind::Click if *unique => "click",
                EventKind::Bounce if event.bounce_type.as_deref() != Some("blocked") => "bounce",
                EventKind::SpamReport => "spamreport",
                EventKind::Unsubscribe | EventKind::GroupUnsubscribe => "unsubscribe",
                _ => continue,
            };
            if self.store.engage(campaign, counter, &self.guards).await? {
                tracing::warn!(%campaign, "a campaign paused itself: its guard tripped");
            }
        }
        Ok(())
    }
}

impl Follower for Engagement {
    fn follow<'a>(
        &'a self,
        _seen: &'a [&'a Event],
        fresh: &'a [(&'a Event, bool)],
    ) -> BoxFuture<'a, redis::RedisResult<()>> {
        Box::pin(self.count(fresh))
    }
}
