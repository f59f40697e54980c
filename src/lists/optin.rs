//! Double opt-in, through the verification machinery: the confirmation email is a verification
//! whose metadata names the list and the subscriber (`mailroom.list`, `mailroom.subscriber`),
//! so its token is drawn by the worker, kept only as a digest, single-use and expiring
//! (`MAILROOM_OPTIN_TTL`), and confirming it also marks the address verified. The link goes to
//! `/subscribe/confirm`, whose page and answer speak of the subscription.
//!
//! An address has one live verification link at a time: asking to join a second list before
//! confirming the first replaces the first link (the newest email's link works).

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use mailroom_jobs::{Producer, PushError, SendVerification};
use uuid::Uuid;

use super::List;
use crate::domain::{ListId, SubscriberId};

/// The metadata key naming the list.
pub const LIST_KEY: &str = "mailroom.list";
/// The metadata key naming the subscriber.
pub const SUBSCRIBER_KEY: &str = "mailroom.subscriber";

/// The job that emails `subscriber` the confirmation link of their subscription to `list`.
pub fn job(
    ttl_secs: u64,
    email: &str,
    locale: Option<&str>,
    list: &List,
    subscriber: SubscriberId,
) -> SendVerification {
    let mut metadata = BTreeMap::new();
    metadata.insert(LIST_KEY.to_owned(), list.id.to_string());
    metadata.insert(SUBSCRIBER_KEY.to_owned(), subscriber.to_string());
    SendVerification {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        locale: locale
            .map(str::to_owned)
            .or_else(|| list.default_locale.clone()),
        return_url: None,
        metadata,
        expires_at: Utc::now() + Duration::seconds(i64::try_from(ttl_secs).unwrap_or(604_800)),
        optin_list: Some(list.name.clone()),
        request_id: None,
    }
}

/// Queues the confirmation email of `subscriber`'s subscription to `list`, carrying the id of
/// the request that asked for it (into the worker's log lines about it).
///
/// # Errors
/// When the job cannot be pushed.
pub async fn send(
    producer: &Producer,
    ttl_secs: u64,
    email: &str,
    locale: Option<&str>,
    list: &List,
    subscriber: SubscriberId,
    request_id: Option<String>,
) -> Result<(), PushError> {
    let job = SendVerification {
        request_id,
        ..job(ttl_secs, email, locale, list, subscriber)
    };
    producer.push(&job).await.map(|_| ())
}

/// The list and subscriber a verification's metadata names, when it is a double opt-in.
pub fn named_in(metadata: &BTreeMap<String, String>) -> Option<(ListId, SubscriberId)> {
    Some((
        ListId::parse(metadata.get(LIST_KEY)?)?,
        SubscriberId::parse(metadata.get(SUBSCRIBER_KEY)?)?,
    ))
}
