//! The rules a campaign's spec follows, whoever writes it: a [`NewCampaign`] is checked into a
//! [`Spec`] or refused with a [`SpecError`] that names the field at fault.

use chrono::{DateTime, Utc};
use mailroom_jobs::{EmailMessage, Mailbox};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    copy::{Field, UNSUBSCRIBE_MARK, render_copy},
    model::{Content, MAX_LISTS, RawContent, Spec, TemplateContent, tracked},
};
use crate::{
    domain::ListId,
    lists::{ListStore, segment::Filter},
    render::Renderer,
};

/// The longest campaign name, in characters.
const MAX_NAME: usize = 200;

/// A template and the data every recipient shares.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignTemplate {
    /// A template's name, e.g. `newsletter`.
    pub name: String,
    /// Its data; the campaign fills the per-recipient fields (the newsletter's
    /// `unsubscribe_link`). Strings may hold `{{name}}`, `{{email}}`, `{{unsubscribe_url}}` and
    /// `{{attributes.KEY}}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A new campaign: a template, or a subject with an HTML and/or text body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The lists whose confirmed subscribers it goes to (1 to 20).
    #[schema(min_items = 1, max_items = 20, value_type = std::collections::BTreeSet<u64>)]
    #[serde(deserialize_with = "mailroom_jobs::whole::vec")]
    pub lists: Vec<u64>,
    /// A segment filter (as `POST /v1/lists/{id}/count` takes) the subscribers must match.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub segment: Option<serde_json::Value>,
    #[serde(default)]
    pub template: Option<CampaignTemplate>,
    /// With `html` and/or `text`, instead of a template; may hold the per-recipient fields.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub from: Option<Mailbox>,
    #[serde(default)]
    pub reply_to: Option<Mailbox>,
    #[serde(default)]
    #[schema(max_items = 10)]
    pub categories: Vec<String>,
    /// When `schedule` without a time starts it; absent: at once.
    #[serde(default)]
    pub send_at: Option<DateTime<Utc>>,
    /// Recipients per second at most for this campaign.
    #[serde(default, deserialize_with = "mailroom_jobs::whole::option")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub rate_limit: Option<u32>,
    /// Own open and click tracking for SMTP and outbox mail (SendGrid's for SendGrid); both
    /// on when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tracking: Option<mailroom_jobs::Tracking>,
}

/// Why a new campaign was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("campaigns need signed unsubscribe links: the operator must set MAILROOM_LINK_KEYS")]
    NoLinkKeys,
    /// A list it names does not exist; `field` says which (`lists[0]`).
    #[error("no list {list}")]
    NoList { list: u64, field: String },
    /// A field breaks a rule.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl SpecError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field at fault, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::NoLinkKeys => Some("lists"),
            Self::NoList { field, .. } | Self::Invalid { field, .. } => Some(field),
            Self::Redis(_) => None,
        }
    }
}

/// What checking a campaign reads: the lists, and how its copy renders.
#[derive(Debug, Clone, Copy)]
pub struct Checker<'a> {
    pub lists: &'a ListStore,
    pub renderer: &'a Renderer,
    pub public_url: &'a str,
    /// Whether the deployment signs unsubscribe links (a campaign cannot go without).
    pub link_keys: bool,
}

impl Checker<'_> {
    /// `draft`, checked into the spec it describes.
    ///
    /// # Errors
    /// See [`SpecError`].
    pub async fn check(&self, draft: NewCampaign) -> Result<Spec, SpecError> {
        if !self.link_keys {
            return Err(SpecError::NoLinkKeys);
        }
        let name = draft.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            let message = format!("a name is 1 to {MAX_NAME} characters");
            return Err(SpecError::invalid("name", message));
        }
        let lists = self.lists_of(&draft.lists).await?;
        if let Some(segment) = &draft.segment {
            Filter::parse(segment)
                .map_err(|e| SpecError::invalid(format!("segment.{}", e.path), e.to_string()))?;
        }
        if (draft.rate_limit).is_some_and(|r| !(1..=1_000_000).contains(&r)) {
            let message = "rate_limit is 1 to 1,000,000 recipients per second";
            return Err(SpecError::invalid("rate_limit", message));
        }
        let content = content_of(draft.template, draft.subject, draft.html, draft.text)?;
        // The sender, reply-to, categories and body get the checks of `POST /v1/emails`.
        let probe = EmailMessage {
            from: draft.from.clone(),
            reply_to: draft.reply_to.clone(),
            categories: draft.categories.clone(),
            ..probe_message(&content)
        };
        probe
            .check()
            .map_err(|e| SpecError::invalid(e.field, e.message))?;
        self.check_copy(&content)?;
        Ok(Spec {
            name: name.to_owned(),
            lists,
            segment: draft.segment,
            content,
            from: draft.from,
            reply_to: draft.reply_to,
            categories: draft.categories,
            rate_limit: draft.rate_limit,
            tracking: draft.tracking.unwrap_or_else(tracked),
        })
    }

    /// `lists`, each named once and existing.
    async fn lists_of(&self, lists: &[u64]) -> Result<Vec<ListId>, SpecError> {
        if lists.is_empty() || lists.len() > MAX_LISTS {
            let message = format!("a campaign goes to 1 to {MAX_LISTS} lists");
            return Err(SpecError::invalid("lists", message));
        }
        let mut ids = Vec::with_capacity(lists.len());
        for (i, &n) in lists.iter().enumerate() {
            let field = format!("lists[{i}]");
            let missing = || SpecError::NoList {
                list: n,
                field: field.clone(),
            };
            let id = ListId::new(n).ok_or_else(missing)?;
            if ids.contains(&id) {
                return Err(SpecError::invalid(
                    &field,
                    format!("list {n} is named twice"),
                ));
            }
            if self.lists.list(id).await?.is_none() {
                return Err(missing());
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// The copy renders, uses only fields a campaign fills, and carries a visible way out.
    fn check_copy(&self, content: &Content) -> Result<(), SpecError> {
        let (raw, where_) = match content {
            Content::Template(_) => (false, "template"),
            Content::Raw(RawContent { html: Some(_), .. }) => (true, "html"),
            Content::Raw(_) => (true, "text"),
        };
        let copy = render_copy(self.renderer, self.public_url, content, "").map_err(|e| {
            SpecError::invalid(if raw { "subject" } else { "template" }, e.to_string())
        })?;
        if raw && copy.fields.contains(&Field::UnsubscribeToken) {
            let message = format!("{UNSUBSCRIBE_MARK} is reserved; use {{{{unsubscribe_url}}}}");
            return Err(SpecError::invalid("html", message));
        }
        // A visible way out in the body, not only the header: CAN-SPAM asks for it, and Gmail's
        // and Yahoo's bulk-sender rules expect it.
        let way_out = (copy.fields.iter())
            .any(|f| matches!(f, Field::UnsubscribeUrl | Field::UnsubscribeToken));
        if !way_out {
            return Err(SpecError::invalid(
                where_,
                "a campaign's body carries each recipient's unsubscribe link: put {{unsubscribe_url}} in it (the newsletter template has it already)",
            ));
        }
        Ok(())
    }
}

/// The content a template, or a subject with html and/or text, describe.
fn content_of(
    template: Option<CampaignTemplate>,
    subject: Option<String>,
    html: Option<String>,
    text: Option<String>,
) -> Result<Content, SpecError> {
    match (template, subject) {
        (Some(_), Some(_)) => Err(SpecError::invalid(
            "subject",
            "give a template or a subject with html/text, not both",
        )),
        (None, None) => Err(SpecError::invalid(
            "template",
            "give a template, or a subject with html and/or text",
        )),
        (Some(template), None) => {
            if html.is_some() || text.is_some() {
                let message = "html and text come from the template; leave them out";
                return Err(SpecError::invalid("html", message));
            }
            if let Some(field) = mailroom_jobs::templates::unsubscribe_link_field(&template.name)
                && template.data.get(field).is_some()
            {
                return Err(SpecError::invalid(
                    format!("template.data.{field}"),
                    "the campaign fills each recipient's own unsubscribe link; leave it out",
                ));
            }
            Ok(Content::Template(TemplateContent {
                name: template.name,
                data: template.data,
            }))
        }
        (None, Some(subject)) => Ok(Content::Raw(RawContent {
            subject,
            html,
            text,
        })),
    }
}

/// A message with `content` to a placeholder address: what `EmailMessage::check` needs.
pub fn probe_message(content: &Content) -> EmailMessage {
    let mut message = EmailMessage {
        to: vec![Mailbox::new("probe@example.com")],
        subject: Some("probe".to_owned()),
        text: Some("probe".to_owned()),
        ..EmailMessage::default()
    };
    // A template is checked by rendering it.
    if let Content::Raw(RawContent {
        subject,
        html,
        text,
    }) = content
    {
        message.subject = Some(subject.clone());
        message.html = html.clone();
        message.text = text.clone();
    }
    message
}
