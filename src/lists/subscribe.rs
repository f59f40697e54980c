//! A subscriber written by a service (`POST /v1/subscribers`): their fields, and a subscription
//! to each list asked for, each starting as the caller said or as the list's opt-in decides.
//!
//! A suppressed address is subscribed to nothing, and the answer says so per list. A person who
//! left a list stays unsubscribed (only they can rejoin), and the answer says that too. A new
//! unconfirmed subscription to a double opt-in list emails its confirmation link.

use serde::Serialize;
use utoipa::ToSchema;

use super::{
    List, Optin, Source, SubscriptionStatus,
    signup::{SignupError, Signups},
    store::{RecordChange, Row, SubscriptionChange, Upsert},
};
use crate::domain::{ListId, StartingStatus, SubscriberId};

/// Something the caller should know about a request that succeeded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Notice {
    #[schema(value_type = u64)]
    pub list: ListId,
    /// `suppressed` (not subscribed: the address is on the suppression list) or
    /// `unsubscribed` (left as it is: the person left this list, and only they can rejoin).
    pub code: &'static str,
    pub message: String,
}

/// What writing a subscriber did.
#[derive(Debug)]
pub struct Written {
    pub id: SubscriberId,
    /// The record is new.
    pub created: bool,
    pub notices: Vec<Notice>,
}

impl Signups {
    /// Writes `row` and subscribes it to `lists` (each once), starting as `starting` says.
    ///
    /// # Errors
    /// Redis failed, or a confirmation email could not be queued.
    pub async fn subscribe(
        &self,
        row: &Row,
        mut lists: Vec<List>,
        starting: Option<StartingStatus>,
        request_id: Option<String>,
    ) -> Result<Written, SignupError> {
        let mut notices = Vec::new();
        if !lists.is_empty()
            && let Some(suppressed) = self.suppressions.get(&row.email).await?
        {
            let message = format!(
                "not subscribed: the address is suppressed ({})",
                suppressed.reason.as_str()
            );
            notices.extend(lists.drain(..).map(|list| Notice {
                list: list.id,
                code: "suppressed",
                message: message.clone(),
            }));
        }
        let mut written = None;
        for (i, (status, ids)) in groups(&lists, starting).into_iter().enumerate() {
            let how = Upsert {
                lists: ids.clone(),
                status,
                source: Source::Api,
                update: i == 0,
            };
            let outcome = self
                .lists
                .upsert(std::slice::from_ref(row), &how)
                .await?
                .remove(0);
            let created = written.as_ref().is_some_and(|w: &Written| w.created);
            for (list, change) in ids.iter().zip(&outcome.subscriptions) {
                let double = (lists.iter()).find(|l| {
                    l.id == *list
                        && l.optin == Optin::Double
                        && status == SubscriptionStatus::Unconfirmed
                });
                if let (Some(list), SubscriptionChange::Added) = (double, change) {
                    (self.send_optin(row, list, outcome.id, request_id.clone())).await?;
                }
                if *change == SubscriptionChange::RefusedUnsubscribed {
                    notices.push(Notice {
                        list: *list,
                        code: "unsubscribed",
                        message: "left unsubscribed: the person left this list; only they can rejoin (through the preference page or the subscribe form)".to_owned(),
                    });
                }
            }
            written = Some(Written {
                id: outcome.id,
                created: created || outcome.record == RecordChange::Created,
                notices: Vec::new(),
            });
        }
        let mut written = written.ok_or(SignupError::NothingWritten)?;
        written.notices = notices;
        Ok(written)
    }
}

/// One upsert per starting status (the first also writes the subscriber's fields); one with
/// no lists when there are none, to write the fields alone.
fn groups(
    lists: &[List],
    starting: Option<StartingStatus>,
) -> Vec<(SubscriptionStatus, Vec<ListId>)> {
    let mut groups: Vec<(SubscriptionStatus, Vec<ListId>)> = Vec::new();
    for list in lists {
        let by_optin = match list.optin {
            Optin::Single => SubscriptionStatus::Confirmed,
            Optin::Double => SubscriptionStatus::Unconfirmed,
        };
        let status = starting.map_or(by_optin, SubscriptionStatus::from);
        match groups.iter_mut().find(|(s, _)| *s == status) {
            Some((_, ids)) => ids.push(list.id),
            None => groups.push((status, vec![list.id])),
        }
    }
    if groups.is_empty() {
        groups.push((SubscriptionStatus::Unconfirmed, Vec::new()));
    }
    groups
}
