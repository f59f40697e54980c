//! Amazon SES's events, as a configuration set's event destination publishes them to SNS
//! (<https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html>);
//! the older identity notifications (`notificationType`) read the same. One SES event names
//! one message and may name several recipients: it becomes one event each.
//!
//! mailroom's ids come back as the message's tags (`mail.tags.mailroom_id`). A permanent
//! bounce suppresses; a transient or undetermined one is a deferral, as is a delivery delay.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::seconds;
use crate::events::parse::{Event, EventKind, NotEvents, Source};

/// One SES event (the `Message` of an SNS notification).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesEvent {
    /// Set by event publishing; identity notifications say `notificationType` instead.
    #[serde(default, alias = "notificationType")]
    pub event_type: String,
    pub mail: Mail,
    #[serde(default)]
    pub bounce: Option<Bounce>,
    #[serde(default)]
    pub complaint: Option<Complaint>,
    #[serde(default)]
    pub delivery: Option<Delivery>,
    #[serde(default)]
    pub reject: Option<Reject>,
    #[serde(default)]
    pub open: Option<Engagement>,
    #[serde(default)]
    pub click: Option<Engagement>,
    #[serde(default)]
    pub delivery_delay: Option<DeliveryDelay>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mail {
    #[serde(default)]
    pub timestamp: Option<String>,
    pub message_id: String,
    #[serde(default)]
    pub destination: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bounce {
    pub bounce_type: String,
    #[serde(default)]
    pub bounce_sub_type: Option<String>,
    pub bounced_recipients: Vec<Recipient>,
    #[serde(default)]
    pub timestamp: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub diagnostic_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Complaint {
    pub complained_recipients: Vec<Recipient>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub complaint_feedback_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub smtp_response: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Reject {
    #[serde(default)]
    pub reason: Option<String>,
}

/// An open or a click.
#[derive(Debug, Deserialize)]
pub struct Engagement {
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDelay {
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub delay_type: Option<String>,
    #[serde(default)]
    pub delayed_recipients: Vec<Recipient>,
}

/// Reads one SES event.
///
/// # Errors
/// When `message` is not an SES event.
pub fn parse(message: &str) -> Result<SesEvent, NotEvents> {
    serde_json::from_str(message).map_err(|error| NotEvents::Provider {
        provider: "Amazon SES",
        error,
    })
}

/// Who an event is about, each with the kind, the time and what the server said.
struct Each<'a> {
    email: &'a str,
    kind: EventKind,
    time: Option<&'a str>,
    status: Option<&'a str>,
    reason: Option<&'a str>,
}

impl SesEvent {
    /// The events for mailroom, one per recipient; `id` names the notification (SNS's id)
    /// and `received_at` stands in for a time it lacks.
    pub fn events(&self, id: &str, received_at: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        for (n, each) in self.recipients().into_iter().enumerate() {
            let time = each.time.or(self.mail.timestamp.as_deref());
            let mut event = Event::own(
                Source::Ses,
                each.kind,
                each.email,
                seconds(time, received_at),
            );
            let tag = |name: &str| self.mail.tags.get(name).and_then(|v| v.first()).cloned();
            event.mailroom_id = tag("mailroom_id");
            event.mailroom_campaign = tag("mailroom_campaign");
            event.mailroom_list = tag("mailroom_list");
            event.mailroom_key = tag("mailroom_key");
            event.category = self
                .mail
                .tags
                .get("mailroom_category")
                .cloned()
                .unwrap_or_default();
            event.sg_event_id = Some(format!("{id}:{n}"));
            event.sg_message_id = Some(self.mail.message_id.clone());
            event.status = each.status.map(str::to_owned);
            event.reason = each.reason.map(str::to_owned);
            if let Some(bounce) = &self.bounce {
                event.bounce_type = Some(bounce.bounce_type.to_ascii_lowercase());
            }
            event.url = self.click.as_ref().and_then(|c| c.link.clone());
            events.push(event);
        }
        events
    }

    fn recipients(&self) -> Vec<Each<'_>> {
        match (self.event_type.as_str(), &self.bounce, &self.complaint) {
            ("Bounce", Some(b), _) => {
                let kind = match b.bounce_type.as_str() {
                    "Permanent" => EventKind::Bounce,
                    _ => EventKind::Deferred,
                };
                listed(&b.bounced_recipients, &kind, b.timestamp.as_deref())
            }
            ("Complaint", _, Some(c)) => listed(
                &c.complained_recipients,
                &EventKind::SpamReport,
                c.timestamp.as_deref(),
            ),
            ("DeliveryDelay", _, _) => self.delivery_delay.as_ref().map_or_else(Vec::new, |d| {
                listed(
                    &d.delayed_recipients,
                    &EventKind::Deferred,
                    d.timestamp.as_deref(),
                )
            }),
            ("Delivery", _, _) => self.delivery.as_ref().map_or_else(Vec::new, |d| {
                (d.recipients.iter())
                    .map(|email| Each {
                        email,
                        kind: EventKind::Delivered,
                        time: d.timestamp.as_deref(),
                        status: None,
                        reason: d.smtp_response.as_deref(),
                    })
                    .collect()
            }),
            ("Send", _, _) => self.everyone(EventKind::Processed, None, None),
            ("Reject", _, _) => self.everyone(
                EventKind::Dropped,
                None,
                self.reject.as_ref().and_then(|r| r.reason.as_deref()),
            ),
            ("Open", _, _) => self.everyone(EventKind::Open, at(self.open.as_ref()), None),
            ("Click", _, _) => self.everyone(EventKind::Click, at(self.click.as_ref()), None),
            (other, _, _) => {
                let kind = EventKind::Other(other.to_ascii_lowercase());
                self.everyone(kind, None, None)
            }
        }
    }

    /// Every recipient of the message, for events that name none of their own.
    fn everyone<'a>(
        &'a self,
        kind: EventKind,
        time: Option<&'a str>,
        reason: Option<&'a str>,
    ) -> Vec<Each<'a>> {
        (self.mail.destination.iter())
            .map(|email| Each {
                email,
                kind: kind.clone(),
                time,
                status: None,
                reason,
            })
            .collect()
    }
}

/// When an open or click happened.
fn at(engagement: Option<&Engagement>) -> Option<&str> {
    engagement.and_then(|e| e.timestamp.as_deref())
}

/// The listed recipients of a bounce, complaint or delay.
fn listed<'a>(people: &'a [Recipient], kind: &EventKind, time: Option<&'a str>) -> Vec<Each<'a>> {
    (people.iter())
        .map(|r| Each {
            email: &r.email_address,
            kind: kind.clone(),
            time,
            status: r.status.as_deref(),
            reason: r.diagnostic_code.as_deref(),
        })
        .collect()
}
