//! What the list store holds, as types: lists, subscribers, subscriptions, and how a record is
//! laid out in Redis.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use crate::domain::SubscriptionStatus;
use crate::domain::{ListId, SubscriberId};

/// The largest attributes object, serialized.
pub const MAX_ATTRIBUTES_BYTES: usize = 4096;
/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The most lists mailroom keeps (each costs a key per shard and a lookup per subscriber read).
pub const MAX_LISTS: usize = 1000;
/// How many superseded subscription states a subscriber's history keeps.
pub const HISTORY_KEPT: usize = 50;

/// How people join a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Optin {
    /// Subscribed at once.
    Single,
    /// Subscribed once they confirm the link emailed to them.
    Double,
}

/// Who may join a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone, through the subscribe form; shown on preference pages.
    Public,
    /// Only through the API or an import.
    Private,
}

/// A list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct List {
    #[schema(value_type = u64)]
    pub id: ListId,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub optin: Optin,
    pub visibility: Visibility,
    /// The language of its emails for subscribers without one.
    #[serde(default)]
    pub default_locale: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A subscriber's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    /// Receives what their subscriptions send.
    Enabled,
    /// Receives nothing from any list.
    Blocklisted,
}

impl SubscriberStatus {
    pub(crate) fn code(self) -> char {
        match self {
            Self::Enabled => 'e',
            Self::Blocklisted => 'b',
        }
    }

    fn from_code(code: &str) -> Self {
        if code == "b" {
            Self::Blocklisted
        } else {
            Self::Enabled
        }
    }
}

/// How a subscription came to its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `POST /v1/subscribers` and friends.
    Api,
    /// A CSV import.
    Import,
    /// The public subscribe form or its confirmation link.
    Form,
    /// A link in an email (one-click unsubscribe, the preference page).
    Link,
    /// A SendGrid event (unsubscribe, group unsubscribe).
    Sendgrid,
    /// A Postmark event (a subscription change).
    Postmark,
    /// A Mailgun event (unsubscribed).
    Mailgun,
    /// An Amazon SES event (a subscription notification).
    Ses,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Import => "import",
            Self::Form => "form",
            Self::Link => "link",
            Self::Sendgrid => "sendgrid",
            Self::Postmark => "postmark",
            Self::Mailgun => "mailgun",
            Self::Ses => "ses",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "import" => Self::Import,
            "form" => Self::Form,
            "link" => Self::Link,
            "sendgrid" => Self::Sendgrid,
            "postmark" => Self::Postmark,
            "mailgun" => Self::Mailgun,
            "ses" => Self::Ses,
            _ => Self::Api,
        }
    }
}

/// A subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Subscriber {
    #[schema(value_type = u64)]
    pub id: SubscriberId,
    pub email: String,
    pub name: Option<String>,
    pub locale: Option<String>,
    /// Free-form fields for segments and templates (a JSON object).
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    pub status: SubscriberStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One subscription (or one superseded state of it, in a history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Subscription {
    #[schema(value_type = u64)]
    pub list: ListId,
    pub status: SubscriptionStatus,
    pub updated_at: DateTime<Utc>,
    pub source: Source,
}

/// The unit separator between a record's fields: kept out of every field at the edge (names
/// refuse control characters; JSON escapes them; addresses and locales cannot hold them).
pub(crate) const SEPARATOR: char = '\u{1f}';
/// [`SEPARATOR`] as a string, for joining.
pub(crate) const SEPARATOR_STR: &str = "\u{1f}";

/// The fields of a new subscriber's record (see [`encode_new_record`]).
pub(crate) struct NewRecord<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub locale: Option<&'a str>,
    /// Attributes JSON ([`encode_attributes`]).
    pub attributes: Option<&'a str>,
    pub status: SubscriberStatus,
    /// Unix seconds: when it is created and last updated.
    pub now: &'a str,
    /// Its subscriptions as `{list id}{status code}` joined by commas (`1c,7u`).
    pub memberships: &'a str,
}

/// A new subscriber's record as stored ([`decode_record`] reads it): the upsert script writes it
/// as it is for a subscriber it creates, so Redis builds no string per new row.
pub(crate) fn encode_new_record(r: &NewRecord<'_>) -> String {
    let mut code = [0; 4];
    [
        r.email,
        r.name.unwrap_or_default(),
        r.locale.unwrap_or_default(),
        r.attributes.unwrap_or_default(),
        r.status.code().encode_utf8(&mut code),
        r.now,
        r.now,
        r.memberships,
    ]
    .join(SEPARATOR_STR)
}

/// A subscriber as stored: address, name, locale, attributes JSON, status, created, updated and
/// memberships, joined by [`SEPARATOR`]. Compact, and the upsert script can merge it without a
/// JSON parser.
pub(crate) fn decode_record(id: SubscriberId, raw: &str) -> Option<Subscriber> {
    let mut fields = raw.split(SEPARATOR);
    let email = fields.next()?.to_owned();
    let name = fields.next()?;
    let locale = fields.next()?;
    let attributes = fields.next()?;
    let status = fields.next()?;
    let created: i64 = fields.next()?.parse().ok()?;
    let updated: i64 = fields.next()?.parse().ok()?;
    let attributes = if attributes.is_empty() {
        Map::new()
    } else {
        serde_json::from_str(attributes).ok()?
    };
    Some(Subscriber {
        id,
        email,
        name: (!name.is_empty()).then(|| name.to_owned()),
        locale: (!locale.is_empty()).then(|| locale.to_owned()),
        attributes,
        status: SubscriberStatus::from_code(status),
        created_at: Utc.timestamp_opt(created, 0).single()?,
        updated_at: Utc.timestamp_opt(updated, 0).single()?,
    })
}

/// A subscription as stored: `status|unix time|source`.
pub(crate) fn decode_membership(list: ListId, raw: &str) -> Option<Subscription> {
    let mut parts = raw.splitn(3, '|');
    let status = SubscriptionStatus::from_code(parts.next()?)?;
    let at: i64 = parts.next()?.parse().ok()?;
    Some(Subscription {
        list,
        status,
        updated_at: Utc.timestamp_opt(at, 0).single()?,
        source: Source::parse(parts.next()?),
    })
}

/// A name fit to store: trimmed, at most [`MAX_NAME_CHARS`], no control characters.
///
/// # Errors
/// A reason when it is not.
pub fn parse_name(text: &str) -> Result<String, FieldError> {
    // Checked as given, before the trim: what the OpenAPI document's pattern and length say.
    if text.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::NameTooLong);
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::NameControl);
    }
    Ok(text.trim().to_owned())
}

/// Why a subscriber's field cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("a name is at most {MAX_NAME_CHARS} characters")]
    NameTooLong,
    #[error("a name may not hold control characters")]
    NameControl,
    #[error("attributes are {0} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES}")]
    AttributesTooLarge(usize),
}

/// [`parse_name`]'s rule on control characters, as a JSON Schema pattern.
pub const NAME_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// Attributes fit to store, serialized: at most [`MAX_ATTRIBUTES_BYTES`].
///
/// # Errors
/// A reason when they are too large.
pub fn encode_attributes(attributes: &Map<String, Value>) -> Result<String, FieldError> {
    if attributes.is_empty() {
        return Ok(String::new());
    }
    // A map of JSON values always serializes.
    let json = serde_json::Value::Object(attributes.clone()).to_string();
    if json.len() > MAX_ATTRIBUTES_BYTES {
        return Err(FieldError::AttributesTooLarge(json.len()));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_pattern_is_the_parser() {
        let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
        for text in [
            "Ada", " Ada ", "", "a\u{7}b", "\tAda", "Ada\n", "x\u{85}", "x\u{ad}", "x\u{7f}",
        ] {
            assert_eq!(pattern.is_match(text), parse_name(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn a_record_round_trips_with_separator_free_fields() {
        let id = SubscriberId::new(3, 1);
        let raw = [
            "ada@example.com",
            "Ada",
            "fr",
            r#"{"plan":"pro"}"#,
            "e",
            "1700000000",
            "1700000100",
        ]
        .join(&SEPARATOR.to_string());
        let subscriber = decode_record(id, &raw).unwrap();
        assert_eq!(subscriber.name.as_deref(), Some("Ada"));
        assert_eq!(subscriber.attributes["plan"], "pro");
        assert_eq!(subscriber.status, SubscriberStatus::Enabled);
        assert!(parse_name("a\u{1f}b").is_err());
        // JSON escapes the separator, so attributes never carry it raw.
        let mut attributes = Map::new();
        attributes.insert("k".into(), Value::String("\u{1f}".into()));
        assert!(!encode_attributes(&attributes).unwrap().contains(SEPARATOR));
    }

    #[test]
    fn a_new_record_decodes_to_what_was_given() {
        let raw = encode_new_record(&NewRecord {
            email: "ada@example.com",
            name: None,
            locale: Some("pt-BR"),
            attributes: Some(r#"{"seats":3}"#),
            status: SubscriberStatus::Blocklisted,
            now: "1700000000",
            memberships: "1c,7u",
        });
        let subscriber = decode_record(SubscriberId::new(3, 1), &raw).unwrap();
        assert_eq!(subscriber.email, "ada@example.com");
        assert_eq!(subscriber.name, None);
        assert_eq!(subscriber.locale.as_deref(), Some("pt-BR"));
        assert_eq!(subscriber.attributes["seats"], 3);
        assert_eq!(subscriber.status, SubscriberStatus::Blocklisted);
        assert_eq!(subscriber.created_at.timestamp(), 1_700_000_000);
        assert_eq!(subscriber.updated_at, subscriber.created_at);
        assert_eq!(raw.rsplit(SEPARATOR).next(), Some("1c,7u"));
    }

    #[test]
    fn memberships_decode_and_junk_does_not() {
        let list = ListId::new(4).unwrap();
        let s = decode_membership(list, "c|1700000000|import").unwrap();
        assert_eq!(s.status, SubscriptionStatus::Confirmed);
        assert_eq!(s.source, Source::Import);
        assert!(decode_membership(list, "q|1|api").is_none());
    }
}
