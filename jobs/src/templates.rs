//! The templates a message may name, and the data each one takes.
//!
//! The data types live here, with the payloads, so that every producer checks a template
//! reference the same way before it is queued: an unknown template or a missing or mistyped
//! field is refused naming the field (`template.data.link`), never a failed job later.
//! mailroom renders them (Askama + Fluent) in its worker.

use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};

use schemars::JsonSchema;

use crate::field::FieldError;

/// A template to render instead of `subject`/`html`/`text` (rendered by the templates feature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    /// The template's name, e.g. `welcome`.
    pub name: String,
    /// The recipient's language as a BCP 47 tag, e.g. `fr-CA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// The template's fields.
    #[serde(default)]
    pub data: serde_json::Value,
}

/// A link put in an email: only `http` and `https` URLs, so no `javascript:` or `data:` href
/// ever reaches a recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WebUrl(String);

impl WebUrl {
    /// Parses `value`, refusing anything but an absolute http or https URL.
    ///
    /// # Errors
    /// A message saying why.
    pub fn parse(value: &str) -> Result<Self, crate::Invalid> {
        let lower = value.trim().to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .ok_or_else(|| crate::Invalid(format!("{value:?} is not an http or https URL")))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(crate::Invalid(format!("{value:?} is not a valid URL")));
        }
        Ok(Self(value.trim().to_owned()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for WebUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        WebUrl::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// `verification`: confirm an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationData {
    /// The recipient's name, when known.
    #[serde(default)]
    pub name: Option<String>,
    /// The confirmation link.
    pub link: WebUrl,
    /// How long the link stays valid.
    pub expires_in_minutes: u32,
}

/// `welcome`: greet a new user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WelcomeData {
    /// The new user's name.
    pub name: String,
    /// Where to get started.
    pub link: WebUrl,
}

/// `password_reset`: a link to choose a new password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetData {
    /// The user's name, when known.
    #[serde(default)]
    pub name: Option<String>,
    /// The reset link.
    pub link: WebUrl,
    /// How long the link stays valid.
    pub expires_in_minutes: u32,
}

/// A call to action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    /// The button's text.
    pub label: String,
    /// Where it goes.
    pub link: WebUrl,
}

/// `notification`: a title, a paragraph, an optional button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationData {
    /// The title (also the subject).
    pub title: String,
    /// The message.
    pub body: String,
    /// An optional call to action.
    #[serde(default)]
    pub button: Option<Button>,
}

/// One section of a newsletter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The section's heading.
    pub heading: String,
    /// Its text.
    pub body: String,
    /// A "read more" link.
    #[serde(default)]
    pub link: Option<WebUrl>,
}

/// `newsletter`: a title, sections, and the unsubscribe link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsletterData {
    /// The title (also the subject).
    pub title: String,
    /// The sections, at least one.
    pub sections: Vec<Section>,
    /// The one-click unsubscribe link.
    pub unsubscribe_link: WebUrl,
}

/// `subscription_confirm`: the double opt-in email, with a link that confirms a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfirmData {
    /// The subscriber's name, when known.
    #[serde(default)]
    pub name: Option<String>,
    /// The list's name.
    pub list: String,
    /// The confirmation link.
    pub link: WebUrl,
    /// How many days the link stays valid.
    pub expires_in_days: u32,
}

/// A template with its data, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateData {
    /// `verification`.
    Verification(VerificationData),
    /// `welcome`.
    Welcome(WelcomeData),
    /// `password_reset`.
    PasswordReset(PasswordResetData),
    /// `notification`.
    Notification(NotificationData),
    /// `newsletter`.
    Newsletter(NewsletterData),
    /// `subscription_confirm`.
    SubscriptionConfirm(SubscriptionConfirmData),
}

/// A template's name, as the schemas describe it (the payloads carry it as a string, checked by
/// [`TemplateData::parse`]).
#[cfg(feature = "openapi")]
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum TemplateName {
    /// `verification`.
    Verification,
    /// `welcome`.
    Welcome,
    /// `password_reset`.
    PasswordReset,
    /// `notification`.
    Notification,
    /// `newsletter`.
    Newsletter,
    /// `subscription_confirm`.
    SubscriptionConfirm,
}

/// Every template's name.
pub const TEMPLATE_NAMES: &[&str] = &[
    "verification",
    "welcome",
    "password_reset",
    "notification",
    "newsletter",
    "subscription_confirm",
];

/// The templates whose links are secrets (a verification or reset token): their emails are
/// never click- or open-tracked, so the link is not rewritten by the provider nor reported back
/// in a `click` event. A new template with such a link adds its name here.
pub const SECRET_LINK_TEMPLATES: &[&str] =
    &["verification", "password_reset", "subscription_confirm"];

/// The field of template `name`'s data that list mail fills with each recipient's own
/// unsubscribe link (the `newsletter`'s `unsubscribe_link`), when it has one.
pub fn unsubscribe_link_field(name: &str) -> Option<&'static str> {
    (name == "newsletter").then_some("unsubscribe_link")
}

/// Whether template `name` carries a secret link ([`SECRET_LINK_TEMPLATES`]).
pub fn has_secret_link(name: &str) -> bool {
    SECRET_LINK_TEMPLATES.contains(&name)
}

fn data<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let mut field = if path == "." {
            "template.data".to_owned()
        } else {
            format!("template.data.{path}")
        };
        let message = error.into_inner().to_string();
        // serde names a missing field's parent as the path: the field is the missing key.
        if let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            field = format!("{field}.{missing}");
        }
        FieldError { field, message }
    })
}

impl TemplateData {
    /// Checks `template`: a known name, and data of that template's shape.
    ///
    /// # Errors
    /// A [`FieldError`] naming the field at fault.
    pub fn parse(template: &TemplateRef) -> Result<Self, FieldError> {
        let parsed = match template.name.as_str() {
            "verification" => TemplateData::Verification(data(&template.data)?),
            "welcome" => TemplateData::Welcome(data(&template.data)?),
            "password_reset" => TemplateData::PasswordReset(data(&template.data)?),
            "notification" => TemplateData::Notification(data(&template.data)?),
            "subscription_confirm" => TemplateData::SubscriptionConfirm(data(&template.data)?),
            "newsletter" => {
                let newsletter: NewsletterData = data(&template.data)?;
                if newsletter.sections.is_empty() {
                    return Err(FieldError {
                        field: "template.data.sections".to_owned(),
                        message: "a newsletter needs at least one section".to_owned(),
                    });
                }
                TemplateData::Newsletter(newsletter)
            }
            other => {
                return Err(FieldError {
                    field: "template.name".to_owned(),
                    message: format!(
                        "unknown template {other:?}; known: {}",
                        TEMPLATE_NAMES.join(", ")
                    ),
                });
            }
        };
        Ok(parsed)
    }
}
