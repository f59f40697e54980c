//! The `subscriber.*` events: a subscription made, confirmed or ended by a person, a service or
//! a provider's report. Imports tell of themselves once (`import.finished`), not per row.

use chrono::Utc;

use super::{Source, SubscriptionStatus, store::SubscriptionChange};
use crate::domain::{EventType, ListId, Notice, SubscriberId};

/// One subscription's change, as the services hear of it (none when nothing changed).
pub(super) fn changed(
    subscriber: SubscriberId,
    email: &str,
    list: ListId,
    before: Option<SubscriptionStatus>,
    after: SubscriptionStatus,
    source: Source,
) -> Option<Notice> {
    let kind = match (before, after) {
        (Some(before), after) if before == after => return None,
        (_, SubscriptionStatus::Unsubscribed) => EventType::SubscriberUnsubscribed,
        (Some(SubscriptionStatus::Unconfirmed), SubscriptionStatus::Confirmed) => {
            EventType::SubscriberConfirmed
        }
        (_, SubscriptionStatus::Confirmed | SubscriptionStatus::Unconfirmed) => {
            EventType::SubscriberSubscribed
        }
    };
    let at = Utc::now();
    let data = serde_json::json!({
        "subscriber_id": subscriber.get(),
        "email": email,
        "list_id": list.get(),
        "status": after,
        "previous_status": before,
        "source": source.as_str(),
    });
    let identity = format!(
        "{subscriber}|{list}|{}|{}",
        after.code(),
        at.timestamp_nanos_opt().unwrap_or_default()
    );
    Some(Notice::new(kind, &identity, at, None, data))
}

/// What an upsert's change of one list means for the services, given the status it wrote.
pub(super) fn of_upsert(
    change: SubscriptionChange,
    status: SubscriptionStatus,
) -> Option<(Option<SubscriptionStatus>, SubscriptionStatus)> {
    match change {
        SubscriptionChange::Added => Some((None, status)),
        SubscriptionChange::Confirmed => Some((
            Some(SubscriptionStatus::Unconfirmed),
            SubscriptionStatus::Confirmed,
        )),
        SubscriptionChange::Unchanged | SubscriptionChange::RefusedUnsubscribed => None,
    }
}
