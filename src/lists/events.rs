//! The providers' `unsubscribe` and `group_unsubscribe` events, applied to subscriptions: the list
//! the email was sent for (`custom_args.mailroom_list`, which list mail carries) is
//! unsubscribed; a global `unsubscribe` without a list unsubscribes every list. (The
//! suppression list takes the address as well, in the events' own step.) Setting a state a
//! subscription already has changes nothing, so a redelivered batch is harmless.

use super::{ListStore, Source, SubscriptionStatus};
use crate::domain::ListId;
use crate::events::{Event, EventKind, Follower};

/// Applies the unsubscribes among `events`; how many subscriptions it set.
///
/// # Errors
/// When Redis fails (the batch is retried).
pub async fn apply_unsubscribes(lists: &ListStore, events: &[&Event]) -> redis::RedisResult<usize> {
    let mut set = 0;
    let mut all: Option<Vec<ListId>> = None;
    for event in events {
        if !matches!(
            event.event,
            EventKind::Unsubscribe | EventKind::GroupUnsubscribe
        ) {
            continue;
        }
        let key = mailroom_jobs::address::case_key(&event.email);
        let Some(subscriber) = lists.find(&key).await? else {
            continue;
        };
        let targets = match event.mailroom_list.as_deref().and_then(ListId::parse) {
            Some(list) => vec![list],
            None if event.event == EventKind::Unsubscribe => {
                if all.is_none() {
                    all = Some(lists.lists().await?.iter().map(|l| l.id).collect());
                }
                let ids = all.clone().unwrap_or_default();
                lists
                    .subscriptions(subscriber, &ids)
                    .await?
                    .iter()
                    .map(|s| s.list)
                    .collect()
            }
            None => continue,
        };
        for list in targets {
            if lists
                .set_subscription(
                    subscriber,
                    list,
                    SubscriptionStatus::Unsubscribed,
                    reporter(event.source),
                )
                .await?
                .is_ok()
            {
                set += 1;
            }
        }
    }
    Ok(set)
}

/// The provider an unsubscribe came through, as a subscription's history names it.
fn reporter(source: crate::events::Source) -> Source {
    use crate::events::Source as Reported;
    match source {
        Reported::Postmark => Source::Postmark,
        Reported::Mailgun => Source::Mailgun,
        Reported::Ses => Source::Ses,
        Reported::Sendgrid | Reported::Smtp | Reported::Report | Reported::Tracking => {
            Source::Sendgrid
        }
    }
}

/// Lists as a follower of the event store: unsubscribes set subscriptions.
#[derive(Debug, Clone)]
pub struct Unsubscribes(pub ListStore);

impl Follower for Unsubscribes {
    fn follow<'a>(
        &'a self,
        seen: &'a [&'a Event],
        _fresh: &'a [(&'a Event, bool)],
    ) -> futures::future::BoxFuture<'a, redis::RedisResult<()>> {
        Box::pin(async move { apply_unsubscribes(&self.0, seen).await.map(|_| ()) })
    }
}
