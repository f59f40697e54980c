//! The send job: one email, with everything a provider needs, checked before it is queued.
//!
//! [`EmailMessage`] is what a service asks for (the HTTP API's request body); [`SendEmail`] is
//! the job, the message plus the id mailroom assigns at enqueue. [`EmailMessage::check`] is the
//! one validation both the API and the [`Producer`](crate::Producer) run before enqueueing, and
//! the worker runs again on every payload it pulls off the queue.

use std::collections::{BTreeMap, HashSet};

use base64::Engine;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{EnqueueOptions, Job, field::FieldError, templates::TemplateRef};

/// At most this many recipients (to + cc + bcc), as SendGrid allows per request.
pub const MAX_RECIPIENTS: usize = 1000;
/// At most this many categories, as SendGrid allows.
pub const MAX_CATEGORIES: usize = 10;
/// A whole message, attachments included, stays under SendGrid's 30 MB.
pub const MAX_MESSAGE_BYTES: usize = 30 * 1024 * 1024;
/// The metadata entry naming the stored API key that queued a message (its public id): every
/// provider hands metadata back on its events, which counts them in that key's stats. Only
/// mailroom's HTTP edge writes it.
pub const KEY_METADATA: &str = "mailroom_key";
/// SendGrid's limit on `custom_args`, where metadata travels.
pub const MAX_METADATA_BYTES: usize = 10_000;

/// Headers a caller may not set: SendGrid's reserved list, plus the ones mailroom writes itself.
pub const RESERVED_HEADERS: &[&str] = &[
    "x-sg-id",
    "x-sg-eid",
    "received",
    "dkim-signature",
    "content-type",
    "content-transfer-encoding",
    "to",
    "from",
    "subject",
    "reply-to",
    "cc",
    "bcc",
    "message-id",
    "date",
    "mime-version",
];

/// A mailbox: an address and an optional display name. Read from an object
/// (`{"email": "ada@example.com", "name": "Ada"}`) or a string (`"ada@example.com"`,
/// `"Ada Lovelace <ada@example.com>"`), as other email APIs take it; always written as an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(with = "MailboxInput")]
pub struct Mailbox {
    /// The address, e.g. `ada@example.com`.
    pub email: String,
    /// The display name, e.g. `Ada Lovelace`; non-ASCII is fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

// The API reads a mailbox as `MailboxInput` does: its OpenAPI schema is that one's.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Mailbox {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <MailboxInput as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Mailbox {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <MailboxInput as utoipa::ToSchema>::schemas(schemas);
    }
}

/// A mailbox as given: an object, or a string with an optional display name (the shape the
/// schemas describe; [`Mailbox`] reads it).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum MailboxInput {
    /// `"ada@example.com"` or `"Ada Lovelace <ada@example.com>"`.
    Text(String),
    /// `{"email": "ada@example.com", "name": "Ada Lovelace"}`.
    Object(MailboxObject),
}

/// A mailbox as an object.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MailboxObject {
    /// The address, e.g. `ada@example.com`.
    pub email: String,
    /// The display name, e.g. `Ada Lovelace`; non-ASCII is fine.
    #[serde(default)]
    pub name: Option<String>,
}

// By hand rather than `untagged`: an error inside an object keeps its path (`to[0].name`).
impl<'de> Deserialize<'de> for Mailbox {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Mailbox;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mailbox: \"address\", \"Name <address>\" or {\"email\", \"name\"}")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Mailbox, E> {
                Mailbox::parse_text(text).map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Mailbox, A::Error> {
                let MailboxObject { email, name } =
                    MailboxObject::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Mailbox { email, name })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Mailbox {
    /// A mailbox without a display name.
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            name: None,
        }
    }

    /// `addr` or `Display Name <addr>` (the name may be quoted). The address itself is checked
    /// later with every other field, so a bad one is named by its place in the message.
    fn parse_text(text: &str) -> Result<Self, NotAMailbox> {
        let text = text.trim();
        let Some(open) = text.rfind('<') else {
            return Ok(Self::new(text));
        };
        let email = text[open + 1..]
            .strip_suffix('>')
            .ok_or_else(|| NotAMailbox(text.to_owned()))?;
        let name = text[..open].trim();
        let name = name
            .strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
            .unwrap_or(name);
        Ok(Self {
            email: email.trim().to_owned(),
            name: (!name.is_empty()).then(|| name.to_owned()),
        })
    }
}

/// Text that opens a `<` it does not close as its last character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: a mailbox is `address` or `Name <address>`")]
pub struct NotAMailbox(String);

/// One recipient or a list of them, as given (the shape the schemas describe).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Recipients {
    /// A single mailbox (`"to": "ada@example.com"`).
    One(Mailbox),
    /// A list of mailboxes, each an object or a string.
    Many(Vec<Mailbox>),
}

/// The schema of `to`: one recipient, or a list of 1 to [`MAX_RECIPIENTS`].
#[cfg(feature = "openapi")]
fn to_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::{
        Ref,
        schema::{ArrayBuilder, OneOfBuilder},
    };
    OneOfBuilder::new()
        .item(Ref::from_schema_name("Mailbox"))
        .item(
            ArrayBuilder::new()
                .items(Ref::from_schema_name("Mailbox"))
                .min_items(Some(1))
                .max_items(Some(MAX_RECIPIENTS)),
        )
        .description(Some(
            "Recipients; at least one. To, cc and bcc together: at most 1,000. Each a mailbox \
             object or string; one may be given without the list.",
        ))
        .build()
        .into()
}

fn recipients<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Mailbox>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<Mailbox>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a mailbox or a list of mailboxes")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Mailbox::parse_text(text)
                .map(|m| vec![m])
                .map_err(E::custom)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Mailbox::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(|m| vec![m])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1000));
            while let Some(mailbox) = seq.next_element()? {
                list.push(mailbox);
            }
            Ok(list)
        }
    }
    deserializer.deserialize_any(Visitor)
}

/// A file sent with the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// The file's name as the recipient sees it.
    pub filename: String,
    /// Its MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// The file, base64-encoded (standard alphabet, padded).
    pub content: String,
    /// Set to show the file inline: HTML refers to it as `cid:<content_id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

/// An email as a service asks for it: the body of `POST /v1/emails`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EmailMessage {
    /// Recipients; at least one. To, cc and bcc together: at most 1,000. Each a mailbox object
    /// or string; one may be given without the list.
    #[serde(deserialize_with = "recipients")]
    #[schemars(with = "Recipients")]
    #[cfg_attr(feature = "openapi", schema(schema_with = to_schema))]
    pub to: Vec<Mailbox>,
    /// Carbon-copy recipients.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "recipients"
    )]
    #[schemars(with = "Recipients")]
    #[cfg_attr(feature = "openapi", schema(value_type = Recipients))]
    pub cc: Vec<Mailbox>,
    /// Blind carbon-copy recipients.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "recipients"
    )]
    #[schemars(with = "Recipients")]
    #[cfg_attr(feature = "openapi", schema(value_type = Recipients))]
    pub bcc: Vec<Mailbox>,
    /// The sender; `MAILROOM_FROM` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Mailbox>,
    /// Where replies go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Mailbox>,
    /// The subject; required unless a template supplies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The HTML body. Without `text`, a text part is generated from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The plain-text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A template to render instead of subject and bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,
    /// Extra headers (not the reserved ones: `To`, `From`, `Subject`, `Content-Type`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Up to 10 categories, for statistics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Your own key/value pairs; they travel to SendGrid as `custom_args` and come back on events.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Files to attach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Send no earlier than this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<DateTime<Utc>>,
    /// The same key within 24 h returns the first message's id and sends nothing more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Mail to a subscriber of this list (its id): one recipient in `to`, a confirmed
    /// subscriber, and the message gets `List-Unsubscribe` (one-click, signed), its `-Post`
    /// and `List-Id` headers; a `newsletter` template's `unsubscribe_link` is filled in.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::option"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub list_id: Option<u64>,
    /// Own open and click tracking (SMTP and the outbox; SendGrid's own settings otherwise
    /// follow it too). Off unless asked for; never for a template with a secret link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<crate::Tracking>,
}

/// The send job: a message and the id mailroom gave it at enqueue (a UUID v7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    /// The message id: also the job's id and the key of its status record.
    pub id: crate::MessageId,
    /// What to send.
    pub message: EmailMessage,
    /// The id of the API request that queued it (`X-Request-Id`), for the worker's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl SendEmail {
    /// A job for `message` with a fresh id.
    pub fn new(message: EmailMessage) -> Self {
        Self {
            id: crate::MessageId::fresh(),
            message,
            request_id: None,
        }
    }

    /// The same job, carrying the id of the API request that queued it.
    #[must_use]
    pub fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    /// This job, if it may be pushed: the checks of [`Job::validate`], naming the field that
    /// is wrong, run once; the producer does not run them again.
    ///
    /// # Errors
    /// The first [`FieldError`].
    pub fn checked(self) -> Result<crate::Valid<Self>, FieldError> {
        crate::request_id::check_request_id(self.request_id.as_deref()).map_err(|invalid| {
            FieldError {
                field: "request_id".to_owned(),
                message: invalid.0,
            }
        })?;
        self.message.check()?;
        Ok(crate::Valid::checked_by_caller(self))
    }
}

impl Job for SendEmail {
    const QUEUE: &'static str = "email";

    fn validate(&self) -> Result<(), crate::Invalid> {
        crate::request_id::check_request_id(self.request_id.as_deref())?;
        self.message
            .check()
            .map_err(|e| crate::Invalid(e.to_string()))
    }

    fn fingerprint(&self) -> Option<String> {
        use sha2::Digest;
        // Struct fields serialize in declaration order and maps are BTreeMaps: stable bytes.
        let bytes = serde_json::to_vec(&self.message).ok()?;
        Some(format!("{:x}", sha2::Sha256::digest(bytes)))
    }

    fn enqueue_options(&self) -> EnqueueOptions {
        EnqueueOptions {
            id: Some(self.id.get()),
            run_at: self.message.send_at.map(std::time::SystemTime::from),
            max_attempts: None,
            idempotency_key: self.message.idempotency_key.clone(),
            ..EnqueueOptions::default()
        }
    }
}

fn fail(field: impl Into<String>, message: impl Into<String>) -> Result<(), FieldError> {
    Err(FieldError {
        field: field.into(),
        message: message.into(),
    })
}

/// Whether `address` is one mailroom can send to ([`crate::address::parse`]).
///
/// # Errors
/// A sentence naming the address and what is wrong with it.
pub fn check_address(address: &str) -> Result<(), crate::Invalid> {
    crate::address::parse(address).map(|_| ()).map_err(|e| {
        crate::Invalid(format!(
            "{address:?} is not an address mailroom can send to: {e}"
        ))
    })
}

fn has_line_break(value: &str) -> bool {
    value.contains(['\r', '\n'])
}

impl EmailMessage {
    /// Checks everything that can be checked before sending. Returns the first problem found,
    /// naming its field.
    ///
    /// # Errors
    /// The first [`FieldError`].
    pub fn check(&self) -> Result<(), FieldError> {
        self.check_people()?;
        self.check_content()?;
        self.check_extras()?;
        if self.size_estimate() > MAX_MESSAGE_BYTES {
            return fail("", "the message is over 30 MB, SendGrid's limit");
        }
        Ok(())
    }

    fn check_people(&self) -> Result<(), FieldError> {
        if self.to.is_empty() {
            return fail("to", "at least one recipient is required");
        }
        if self.list_id.is_some()
            && (self.to.len() != 1 || !self.cc.is_empty() || !self.bcc.is_empty())
        {
            return fail(
                "list_id",
                "list mail goes to one subscriber at a time (one `to`, no cc or bcc): each gets their own unsubscribe link",
            );
        }
        if self.list_id == Some(0) {
            return fail("list_id", "a list id is a positive number");
        }
        let total = self.to.len() + self.cc.len() + self.bcc.len();
        if total > MAX_RECIPIENTS {
            return fail(
                "to",
                format!("{total} recipients; at most {MAX_RECIPIENTS} (to, cc and bcc together)"),
            );
        }
        let lists = [("to", &self.to), ("cc", &self.cc), ("bcc", &self.bcc)];
        let mut seen = HashSet::new();
        for (list, mailboxes) in lists {
            for (index, mailbox) in mailboxes.iter().enumerate() {
                check_mailbox(&format!("{list}[{index}]"), mailbox)?;
                if !seen.insert(mailbox.email.to_lowercase()) {
                    return fail(
                        format!("{list}[{index}].email"),
                        format!(
                            "{} appears more than once among the recipients",
                            mailbox.email
                        ),
                    );
                }
            }
        }
        if let Some(from) = &self.from {
            check_mailbox("from", from)?;
        }
        if let Some(reply_to) = &self.reply_to {
            check_mailbox("reply_to", reply_to)?;
        }
        Ok(())
    }

    fn check_content(&self) -> Result<(), FieldError> {
        if let Some(template) = &self.template {
            crate::TemplateData::parse(template)?;
            // The template supplies the subject and both bodies.
            for (field, given) in [
                ("subject", self.subject.is_some()),
                ("html", self.html.is_some()),
                ("text", self.text.is_some()),
            ] {
                if given {
                    return fail(
                        field,
                        "give either a template or subject, html and text, not both",
                    );
                }
            }
            return Ok(());
        }
        match &self.subject {
            None => return fail("subject", "a subject is required"),
            Some(subject) if subject.trim().is_empty() => {
                return fail("subject", "the subject is empty");
            }
            Some(subject) if has_line_break(subject) => {
                return fail("subject", "the subject contains a line break");
            }
            Some(_) => {}
        }
        let blank = |part: &Option<String>| part.as_deref().is_none_or(|s| s.trim().is_empty());
        if blank(&self.html) && blank(&self.text) {
            return fail("text", "a text or html body is required");
        }
        Ok(())
    }

    fn check_extras(&self) -> Result<(), FieldError> {
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            let valid_name =
                !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
            if !valid_name {
                return fail(
                    field,
                    "a header name is printable ASCII without ':' or spaces",
                );
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return fail(
                    field,
                    format!("{name} is a reserved header; set it through its own field"),
                );
            }
            if has_line_break(value) {
                return fail(field, "a header value contains a line break");
            }
        }
        let secret = self
            .template
            .as_ref()
            .is_some_and(|t| crate::templates::has_secret_link(&t.name));
        let tracked = self.tracking.is_some_and(crate::Tracking::any);
        if tracked && (self.to.len() != 1 || !self.cc.is_empty() || !self.bcc.is_empty()) {
            return fail(
                "tracking",
                "tracking needs a message with one recipient (one `to`, no cc or bcc): one body cannot tell several readers apart",
            );
        }
        if secret && tracked {
            return fail(
                "tracking",
                "a template with a secret link (a verification or reset link) is never tracked: a tracked link would pass the secret through another URL",
            );
        }
        if self.categories.len() > MAX_CATEGORIES {
            return fail("categories", format!("at most {MAX_CATEGORIES} categories"));
        }
        let mut seen = HashSet::new();
        for (index, category) in self.categories.iter().enumerate() {
            let field = format!("categories[{index}]");
            if category.is_empty() || category.len() > 255 || !category.is_ascii() {
                return fail(field, "a category is 1 to 255 ASCII characters");
            }
            if !seen.insert(category) {
                return fail(field, format!("{category:?} appears twice"));
            }
        }
        let metadata_bytes: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if metadata_bytes + "mailroom_id".len() + 36 >= MAX_METADATA_BYTES {
            return fail("metadata", "metadata must stay under 10,000 bytes");
        }
        for key in self.metadata.keys() {
            if key.is_empty() || key == "mailroom_id" {
                return fail(
                    format!("metadata.{key}"),
                    "empty keys and mailroom_id are reserved",
                );
            }
        }
        for (index, attachment) in self.attachments.iter().enumerate() {
            check_attachment(&format!("attachments[{index}]"), attachment)?;
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > crate::MAX_IDEMPOTENCY_KEY_LEN)
        {
            return fail("idempotency_key", "an idempotency key is 1 to 255 bytes");
        }
        Ok(())
    }

    /// Roughly the size of the message on the wire (bodies, attachments, headers).
    fn size_estimate(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        text(&self.subject)
            + text(&self.html)
            + text(&self.text)
            + self
                .attachments
                .iter()
                .map(|a| a.content.len() + a.filename.len())
                .sum::<usize>()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
            + (self.to.len() + self.cc.len() + self.bcc.len()) * 80
    }
}

fn check_mailbox(field: &str, mailbox: &Mailbox) -> Result<(), FieldError> {
    if let Err(crate::Invalid(message)) = check_address(&mailbox.email) {
        return fail(format!("{field}.email"), message);
    }
    if let Some(name) = &mailbox.name
        && (has_line_break(name) || name.contains([';', ',']))
    {
        // SendGrid refuses ';' and ',' in names; line breaks would forge headers.
        return fail(
            format!("{field}.name"),
            "a name may not contain line breaks, ';' or ','",
        );
    }
    Ok(())
}

fn check_attachment(field: &str, attachment: &Attachment) -> Result<(), FieldError> {
    if attachment.filename.trim().is_empty() || has_line_break(&attachment.filename) {
        return fail(
            format!("{field}.filename"),
            "a file name is required, on one line",
        );
    }
    let mime_ok = attachment
        .content_type
        .split_once('/')
        .is_some_and(|(t, s)| {
            let token = |p: &str| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
            };
            token(t) && token(s.split(';').next().unwrap_or_default().trim())
        });
    if !mime_ok || has_line_break(&attachment.content_type) {
        return fail(
            format!("{field}.content_type"),
            "a MIME type such as application/pdf is required",
        );
    }
    if base64::engine::general_purpose::STANDARD
        .decode(&attachment.content)
        .is_err()
    {
        return fail(
            format!("{field}.content"),
            "the content is not valid base64",
        );
    }
    if let Some(id) = &attachment.content_id
        && (id.is_empty() || id.contains(['<', '>', '\r', '\n', ' ']))
    {
        return fail(
            format!("{field}.content_id"),
            "a content id has no spaces, angle brackets or line breaks",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> EmailMessage {
        EmailMessage {
            to: vec![Mailbox::new("ada@example.com")],
            subject: Some("Hello".to_owned()),
            text: Some("Hi".to_owned()),
            ..EmailMessage::default()
        }
    }

    fn field_of(message: EmailMessage) -> String {
        message.check().unwrap_err().field
    }

    #[test]
    fn a_plain_message_passes() {
        assert_eq!(valid().check(), Ok(()));
    }

    #[test]
    fn checked_refuses_what_validate_refuses_and_names_the_field() {
        let good = SendEmail::new(valid()).with_request_id(Some("req-1".to_owned()));
        assert!(good.validate().is_ok());
        assert_eq!(good.clone().checked().unwrap().id, good.id);

        let mut bad_address = valid();
        bad_address.to[0].email = "not an address".to_owned();
        let job = SendEmail::new(bad_address);
        assert!(job.validate().is_err());
        assert_eq!(job.checked().unwrap_err().field, "to[0].email");

        let forged = SendEmail::new(valid()).with_request_id(Some("a b\nlevel=error".to_owned()));
        assert!(forged.validate().is_err());
        assert_eq!(forged.checked().unwrap_err().field, "request_id");

        // `Valid::new` is `validate`.
        let mut empty = valid();
        empty.to.clear();
        assert!(crate::Valid::new(SendEmail::new(empty)).is_err());
        assert!(crate::Valid::new(SendEmail::new(valid())).is_ok());
    }

    #[test]
    fn each_refusal_names_its_field() {
        let mut m = valid();
        m.to[0].email = "not an address".to_owned();
        assert_eq!(field_of(m), "to[0].email");

        let mut m = valid();
        m.cc = vec![Mailbox::new("a@localhost")];
        assert_eq!(field_of(m), "cc[0].email", "a domain needs a TLD");

        let mut m = valid();
        m.headers.insert(
            "X-Trace".to_owned(),
            "a\r\nBcc: evil@example.com".to_owned(),
        );
        assert_eq!(field_of(m), "headers.X-Trace");

        let mut m = valid();
        m.headers
            .insert("Reply-To".to_owned(), "x@example.com".to_owned());
        assert_eq!(field_of(m), "headers.Reply-To");

        let mut m = valid();
        m.subject = Some("Hi\nBcc: x@example.com".to_owned());
        assert_eq!(field_of(m), "subject");

        let mut m = valid();
        m.bcc = (0..1000)
            .map(|i| Mailbox::new(format!("u{i}@example.com")))
            .collect();
        assert_eq!(field_of(m), "to");

        let mut m = valid();
        m.template = Some(TemplateRef {
            name: "invoice".to_owned(),
            locale: None,
            data: serde_json::json!({}),
        });
        let error = m.check().unwrap_err();
        assert_eq!(error.field, "template.name");
        assert!(error.message.contains("unknown template"));

        let mut m = valid();
        m.template = Some(TemplateRef {
            name: "welcome".to_owned(),
            locale: None,
            data: serde_json::json!({"name": "A"}),
        });
        assert_eq!(
            field_of(m),
            "template.data.link",
            "a missing field is named itself"
        );

        let mut m = valid();
        m.attachments = vec![Attachment {
            filename: "big.bin".to_owned(),
            content_type: "application/octet-stream".to_owned(),
            content: "A".repeat(MAX_MESSAGE_BYTES + 4),
            content_id: None,
        }];
        assert_eq!(field_of(m), "");

        let mut m = valid();
        m.categories = (0..11).map(|i| format!("c{i}")).collect();
        assert_eq!(field_of(m), "categories");
    }
}
