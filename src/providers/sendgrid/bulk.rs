//! Many recipients of one message in one Mail Send request: a [`Batch`] as personalizations
//! (REFERENCE §1.2), at most 1,000 a request, each slot of the body a substitution tag.

use std::{borrow::Cow, sync::Arc};

use lettre::message::Mailbox;
use serde::Serialize;

use super::{Asm, SendGrid, TrackingSettings};
use crate::providers::{
    Delivery, ProviderError,
    batch::{Addressee, Answer, Batch, BatchRecipient, escape_into},
};

/// SendGrid's most personalizations in one request.
pub(crate) const MAX_PERSONALIZATIONS: usize = 1000;
/// SendGrid's limit on one personalization's substitutions, in bytes.
const MAX_SUBSTITUTION_BYTES: usize = 10_000;

/// One Mail Send request carrying many copies of one message (a campaign's recipients of one
/// language): the body once, with substitution tags that each personalization fills.
/// It borrows what it can from the batch: a campaign builds one for every 1,000 recipients.
#[derive(Debug, Serialize)]
pub(super) struct BulkMail<'a> {
    personalizations: Vec<BulkRecipient<'a>>,
    from: BulkAddress<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<BulkAddress<'a>>,
    subject: String,
    content: Vec<BulkContent>,
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "pairs")]
    headers: Vec<&'a (&'static str, String)>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    categories: &'a [String],
    #[serde(serialize_with = "pairs")]
    custom_args: &'a [(&'static str, String)],
    /// The campaign's tracking.
    tracking_settings: TrackingSettings,
    /// The unsubscribe group, when every list of the campaign maps to the same one.
    #[serde(skip_serializing_if = "Option::is_none")]
    asm: Option<Asm>,
}

/// An address in a [`BulkMail`].
#[derive(Debug, Clone, Serialize)]
pub(super) struct BulkAddress<'a> {
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

impl<'a> From<&'a Mailbox> for BulkAddress<'a> {
    fn from(mailbox: &'a Mailbox) -> Self {
        Self {
            email: mailbox.email.as_ref(),
            name: mailbox.name.as_deref(),
        }
    }
}

impl<'a> From<Addressee<'a>> for BulkAddress<'a> {
    fn from(to: Addressee<'a>) -> Self {
        Self {
            email: to.email,
            name: to.name,
        }
    }
}

/// One part of a [`BulkMail`] (`text/plain` first).
#[derive(Debug, Serialize)]
pub(super) struct BulkContent {
    #[serde(rename = "type")]
    kind: &'static str,
    value: String,
}

/// One recipient of a [`BulkMail`], with their own substitutions, headers and custom args.
#[derive(Debug, Serialize)]
pub(super) struct BulkRecipient<'a> {
    to: [BulkAddress<'a>; 1],
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "pairs")]
    substitutions: Vec<(Arc<str>, Cow<'a, str>)>,
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "pairs")]
    headers: Vec<&'a (&'static str, String)>,
    #[serde(serialize_with = "pairs")]
    custom_args: &'a [(&'static str, String)],
}

/// A list of pairs as a JSON object (no map built for every recipient).
fn pairs<S, P, K, V>(pairs: &[P], serializer: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    P: std::borrow::Borrow<(K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(pairs.len()))?;
    for pair in pairs {
        let (k, v) = pair.borrow();
        map.serialize_entry(k.as_ref(), v.as_ref())?;
    }
    map.end()
}

impl SendGrid {
    /// Sends one [`BulkMail`].
    ///
    /// # Errors
    /// As [`SendGrid::send`].
    async fn send_bulk(&self, mail: &BulkMail<'_>) -> Result<Delivery, ProviderError> {
        self.post(mail, mail.personalizations.len() as u64).await
    }

    /// Sends `batch` in requests of up to [`MAX_PERSONALIZATIONS`]; a recipient whose values
    /// pass SendGrid's 10,000 bytes is refused without a request.
    pub async fn send_batch(&self, batch: &Batch<'_>) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(batch.recipients.len());
        for recipients in batch.recipients.chunks(MAX_PERSONALIZATIONS) {
            let (mail, taken) = bulk_mail(batch, recipients);
            let mut answer = None;
            if !mail.personalizations.is_empty() {
                answer = Some(Answer::from(self.send_bulk(&mail).await));
            }
            answers.extend(taken.into_iter().map(|taken| match (taken, &answer) {
                (true, Some(answer)) => answer.clone(),
                _ => Answer::Refused {
                    reason: "personal fields over SendGrid's 10,000 bytes per recipient".to_owned(),
                    bounce: None,
                    account: false,
                },
            }));
        }
        answers
    }
}

/// The request for `recipients` of `batch`, and for each recipient whether it is in it.
fn bulk_mail<'a>(
    batch: &'a Batch<'_>,
    recipients: &'a [BatchRecipient<'_>],
) -> (BulkMail<'a>, Vec<bool>) {
    let tags: Vec<(Arc<str>, Arc<str>)> = (0..batch.body.slots)
        .map(|n| (Arc::from(tag(n, true)), Arc::from(tag(n, false))))
        .collect();
    let html = batch.body.html.is_some();
    // Headers every recipient has alike go once, at the top of the request.
    let shared: Vec<&(&'static str, String)> = recipients.first().map_or(Vec::new(), |first| {
        (first.headers.iter())
            .filter(|h| recipients.iter().all(|r| r.headers.contains(h)))
            .collect()
    });
    let mut personalizations = Vec::with_capacity(recipients.len());
    let mut taken = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let mut substitutions = Vec::with_capacity(tags.len() * 2);
        for ((html_tag, text_tag), value) in tags.iter().zip(recipient.values) {
            if html {
                let mut escaped = String::with_capacity(value.len());
                escape_into(&mut escaped, value);
                substitutions.push((html_tag.clone(), Cow::Owned(escaped)));
            }
            substitutions.push((text_tag.clone(), Cow::Borrowed(value.as_str())));
        }
        let bytes: usize = substitutions.iter().map(|(k, v)| k.len() + v.len()).sum();
        taken.push(bytes <= MAX_SUBSTITUTION_BYTES);
        if bytes > MAX_SUBSTITUTION_BYTES {
            continue;
        }
        personalizations.push(BulkRecipient {
            to: [BulkAddress::from(recipient.to)],
            substitutions,
            headers: (recipient.headers.iter())
                .filter(|h| !shared.contains(h))
                .collect(),
            custom_args: &recipient.metadata,
        });
    }
    let mut content = vec![BulkContent {
        kind: "text/plain",
        value: batch.body.text.tagged(&|n| tag(n, false)),
    }];
    if let Some(html) = &batch.body.html {
        content.push(BulkContent {
            kind: "text/html",
            value: html.tagged(&|n| tag(n, true)),
        });
    }
    let mail = BulkMail {
        personalizations,
        from: BulkAddress::from(batch.from),
        reply_to: batch.reply_to.map(BulkAddress::from),
        subject: batch.body.subject.tagged(&|n| tag(n, false)),
        content,
        headers: shared,
        categories: batch.categories,
        custom_args: &batch.metadata,
        tracking_settings: TrackingSettings::of(batch.tracking),
        asm: batch.unsubscribe_group.map(|group_id| Asm { group_id }),
    };
    (mail, taken)
}

/// The substitution tag of slot `n`, in its HTML (`html`) or plain form: short, and made of
/// characters no text around it would hold by chance.
fn tag(n: usize, html: bool) -> String {
    format!("-mr{}{n}-", if html { 'h' } else { 't' })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{
        Body,
        batch::{Piece, Template},
        bounce::Owner,
    };

    /// A recipient of the address and values `person` holds.
    fn recipient<'a>(person: &'a (&str, Vec<String>), list: &str) -> BatchRecipient<'a> {
        BatchRecipient {
            to: Addressee {
                email: person.0,
                name: None,
            },
            values: &person.1,
            headers: vec![
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into()),
                ("List-Id", list.to_owned()),
            ],
            metadata: vec![("mailroom_list", list.to_owned())],
            bounce_owner: Owner::Message(uuid::Uuid::nil().into()),
        }
    }

    #[test]
    fn a_request_carries_slots_as_tags_lifts_shared_headers_and_leaves_out_oversized_values() {
        let from: Mailbox = "news@example.com".parse().unwrap();
        let body = Body {
            subject: Template(vec![Piece::Text("Hi ".into()), Piece::Slot(0)]),
            text: Template(vec![Piece::Slot(0)]),
            html: Some(Template(vec![Piece::Slot(0)])),
            slots: 1,
        };
        let person = |email, value: &str| (email, vec![value.to_owned()]);
        let people = [
            person("a@example.com", "A & B"),
            person("b@example.com", &"x".repeat(MAX_SUBSTITUTION_BYTES)),
            person("c@example.com", "C"),
        ];
        let batch = Batch {
            from: &from,
            reply_to: None,
            body: &body,
            categories: &[],
            metadata: vec![("mailroom_campaign", "c1".into())],
            tracking: mailroom_jobs::Tracking::default(),
            unsubscribe_group: Some(7),
            recipients: vec![
                recipient(&people[0], "<1.lists>"),
                recipient(&people[1], "<1.lists>"),
                recipient(&people[2], "<2.lists>"),
            ],
        };
        let (mail, taken) = bulk_mail(&batch, &batch.recipients);
        assert_eq!(taken, [true, false, true]);
        let json = serde_json::to_value(&mail).unwrap();
        assert_eq!(json["subject"], "Hi -mrt0-");
        assert_eq!(json["content"][1]["value"], "-mrh0-");
        assert_eq!(json["personalizations"].as_array().unwrap().len(), 2);
        let first = &json["personalizations"][0];
        assert_eq!(first["substitutions"]["-mrh0-"], "A &amp; B");
        assert_eq!(first["substitutions"]["-mrt0-"], "A & B");
        // Alike for all: once at the top. Different: in each personalization.
        assert_eq!(
            json["headers"],
            serde_json::json!({"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
        );
        assert_eq!(first["headers"]["List-Id"], "<1.lists>");
        assert_eq!(
            json["personalizations"][1]["headers"]["List-Id"],
            "<2.lists>"
        );
        assert_eq!(json["custom_args"]["mailroom_campaign"], "c1");
        assert_eq!(first["custom_args"]["mailroom_list"], "<1.lists>");
        assert_eq!(json["asm"]["group_id"], 7);
    }
}
