//! A campaign's copy: the subject, HTML and text rendered once per language, cut into literal
//! text and per-recipient fields.
//!
//! The fields a campaign fills for each recipient are written `{{name}}`, `{{email}}`,
//! `{{unsubscribe_url}}` and `{{attributes.KEY}}` (spaces inside the braces allowed) in a raw
//! subject, HTML or text, or in any string of a template's data; the `newsletter` template's
//! unsubscribe link is filled the same way. Rendering once per language and filling fields per
//! recipient is what lets one SendGrid request carry a thousand personalized copies: the
//! fields become SendGrid substitutions. A field is HTML-escaped in the HTML part and left as it
//! is in the subject and the text part.

use mailroom_jobs::TemplateRef;

use super::model::{Content, RawContent, TemplateContent};
use crate::{
    providers::{
        Body,
        batch::{Piece as Slotted, Template},
        text_from_html,
    },
    render::Renderer,
};

/// What a campaign puts in place of the `newsletter` template's unsubscribe link while it
/// renders once per language; replaced per recipient by the signed link's token. Letters only,
/// so no escaping or CSS inlining can change it.
pub(crate) const UNSUBSCRIBE_MARK: &str = "MAILROOMUNSUBSCRIBETOKEN";

/// A field filled per recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// The subscriber's name (empty when unknown).
    Name,
    /// The subscriber's address.
    Email,
    /// The recipient's unsubscribe page, signed for them.
    UnsubscribeUrl,
    /// The token alone (the `newsletter` template builds the URL around it).
    UnsubscribeToken,
    /// One of the subscriber's attributes (empty when absent; numbers and booleans as JSON).
    Attribute(String),
}

impl Field {
    fn parse(inner: &str) -> Result<Self, CopyError> {
        let inner = inner.trim();
        match inner {
            "name" => Ok(Self::Name),
            "email" => Ok(Self::Email),
            "unsubscribe_url" => Ok(Self::UnsubscribeUrl),
            _ => match inner.strip_prefix("attributes.") {
                Some(key)
                    if !key.is_empty()
                        && key.len() <= 64
                        && key
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
                {
                    Ok(Self::Attribute(key.to_owned()))
                }
                _ => Err(CopyError::UnknownField(inner.to_owned())),
            },
        }
    }
}

/// Why a campaign's content cannot become its copy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error(
        "{{{{{0}}}}} is not a field a campaign fills: use {{{{name}}}}, {{{{email}}}}, {{{{unsubscribe_url}}}} or {{{{attributes.KEY}}}}"
    )]
    UnknownField(String),
    #[error("a {{{{ without its closing }}}}")]
    Unclosed,
    #[error("template {name}: {reason}")]
    Template { name: String, reason: String },
    /// A field problem in one part (`subject`, `html`, `text`).
    #[error("{part}: {source}")]
    InPart {
        part: &'static str,
        source: Box<CopyError>,
    },
    #[error("html or text: a campaign needs a body")]
    NoBody,
}

/// `text` cut into a [`Part`]; an error names `part`.
fn part(name: &'static str, text: &str) -> Result<Part, CopyError> {
    Part::parse(text).map_err(|e| CopyError::InPart {
        part: name,
        source: Box::new(e),
    })
}

/// Renders `content` in `locale` with each per-recipient field left as a field.
///
/// # Errors
/// When the content does not render or names an unknown field.
pub fn render_copy(
    renderer: &Renderer,
    public_url: &str,
    content: &Content,
    locale: &str,
) -> Result<Letter, CopyError> {
    match content {
        Content::Template(TemplateContent { name, data }) => {
            let mut data = data.clone();
            if let Some(field) = mailroom_jobs::templates::unsubscribe_link_field(name)
                && let Some(object) = data.as_object_mut()
            {
                object.insert(
                    field.to_owned(),
                    serde_json::Value::String(format!(
                        "{}/u/{UNSUBSCRIBE_MARK}",
                        public_url.trim_end_matches('/')
                    )),
                );
            }
            let rendered = renderer
                .render(&TemplateRef {
                    name: name.clone(),
                    locale: Some(locale.to_owned()).filter(|l| !l.is_empty()),
                    data,
                })
                .map_err(|e| CopyError::Template {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            Ok(Letter::new(
                rendered.locale,
                part("subject", &rendered.subject)?,
                Some(part("html", &rendered.html)?),
                part("text", &rendered.text)?,
            ))
        }
        Content::Raw(RawContent {
            subject,
            html,
            text,
        }) => {
            let html = html.as_deref().filter(|h| !h.trim().is_empty());
            let text = match (text.as_deref().filter(|t| !t.trim().is_empty()), html) {
                (Some(text), _) => text.to_owned(),
                (None, Some(html)) => text_from_html(html),
                (None, None) => return Err(CopyError::NoBody),
            };
            Ok(Letter::new(
                String::new(),
                part("subject", subject)?,
                html.map(|h| part("html", h)).transpose()?,
                part("text", &text)?,
            ))
        }
    }
}

/// Literal text or a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text as it is.
    Text(String),
    /// A per-recipient field.
    Field(Field),
}

/// One part (subject, HTML or text) cut into pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part(pub Vec<Piece>);

impl Part {
    /// Cuts `text` at its `{{…}}` fields and at [`UNSUBSCRIBE_MARK`].
    ///
    /// # Errors
    /// An unknown field or an unclosed `{{`, in words.
    pub fn parse(text: &str) -> Result<Self, CopyError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(open) = rest.find("{{") {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(CopyError::Unclosed)?;
            let field = Field::parse(&after[..close])?;
            push_text(&mut pieces, std::mem::take(&mut literal));
            pieces.push(Piece::Field(field));
            rest = &after[close + 2..];
        }
        literal.push_str(rest);
        push_text(&mut pieces, literal);
        Ok(Self(pieces))
    }

    /// The fields this part uses.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.0.iter().filter_map(|p| match p {
            Piece::Field(f) => Some(f),
            Piece::Text(_) => None,
        })
    }

    /// The part as a provider's template: field `fields[n]` is slot `n`.
    fn template(self, fields: &[Field]) -> Template {
        Template(
            self.0
                .into_iter()
                .map(|piece| match piece {
                    Piece::Text(text) => Slotted::Text(text),
                    Piece::Field(field) => {
                        Slotted::Slot(fields.iter().position(|f| *f == field).unwrap_or(0))
                    }
                })
                .collect(),
        )
    }
}

/// Adds `text` (split at [`UNSUBSCRIBE_MARK`]) to `pieces`.
fn push_text(pieces: &mut Vec<Piece>, text: String) {
    if text.is_empty() {
        return;
    }
    let mut parts = text.split(UNSUBSCRIBE_MARK).peekable();
    while let Some(part) = parts.next() {
        if !part.is_empty() {
            pieces.push(Piece::Text(part.to_owned()));
        }
        if parts.peek().is_some() {
            pieces.push(Piece::Field(Field::UnsubscribeToken));
        }
    }
}

/// The copy of one language: the fields it uses, and its parts with a slot for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The language it is in.
    pub locale: String,
    /// Every field the copy uses, each once; slot `n` of [`Letter::body`] is `fields[n]`.
    pub fields: Vec<Field>,
    pub body: Body,
}

impl Letter {
    /// The letter of `subject`, `html` and `text`, in `locale`.
    pub fn new(locale: String, subject: Part, html: Option<Part>, text: Part) -> Self {
        let mut fields: Vec<Field> = Vec::new();
        for field in subject
            .fields()
            .chain(html.iter().flat_map(Part::fields))
            .chain(text.fields())
        {
            if !fields.contains(field) {
                fields.push(field.clone());
            }
        }
        let body = Body {
            subject: subject.template(&fields),
            html: html.map(|h| h.template(&fields)),
            text: text.template(&fields),
            slots: fields.len(),
        };
        Self {
            locale,
            fields,
            body,
        }
    }

    /// Subject, HTML and text for one reader, each field's value from `value`.
    pub fn fill(&self, value: &dyn Fn(&Field) -> String) -> Filled {
        let values: Vec<String> = self.fields.iter().map(value).collect();
        Filled {
            subject: self.body.subject.fill(false, &values),
            html: self.body.html.as_ref().map(|h| h.fill(true, &values)),
            text: self.body.text.fill(false, &values),
        }
    }
}

/// A letter filled for one reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    pub subject: String,
    pub html: Option<String>,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_cut_out_and_become_slots_filled_escaped_only_in_html() {
        let subject = Part::parse("Hi {{ name }}, {{attributes.plan}}").unwrap();
        let html = Part::parse("<p>{{name}} — {{unsubscribe_url}}</p>").unwrap();
        assert_eq!(
            subject.fields().cloned().collect::<Vec<_>>(),
            [Field::Name, Field::Attribute("plan".into())]
        );
        let letter = Letter::new("en".into(), subject, Some(html), Part::parse("x").unwrap());
        assert_eq!(
            letter.fields,
            [
                Field::Name,
                Field::Attribute("plan".into()),
                Field::UnsubscribeUrl
            ]
        );
        assert_eq!(letter.body.slots, 3);
        let filled = letter.fill(&|f| match f {
            Field::Name => "A&B <x>".to_owned(),
            Field::Attribute(_) => "pro".to_owned(),
            _ => "https://x/u/t".to_owned(),
        });
        assert_eq!(filled.subject, "Hi A&B <x>, pro");
        assert_eq!(
            filled.html.as_deref(),
            Some("<p>A&amp;B &lt;x&gt; — https://x/u/t</p>")
        );
        assert_eq!(filled.text, "x");
    }

    #[test]
    fn the_unsubscribe_mark_becomes_the_token_field() {
        let part =
            Part::parse(&format!("<a href=\"https://m/u/{UNSUBSCRIBE_MARK}\">x</a>")).unwrap();
        assert_eq!(
            part.0,
            [
                Piece::Text("<a href=\"https://m/u/".into()),
                Piece::Field(Field::UnsubscribeToken),
                Piece::Text("\">x</a>".into()),
            ]
        );
    }

    #[test]
    fn unknown_fields_and_unclosed_braces_are_refused() {
        assert!(
            Part::parse("{{password}}")
                .unwrap_err()
                .to_string()
                .contains("{{password}}")
        );
        assert!(Part::parse("{{attributes.}}").is_err());
        assert!(
            Part::parse("Hi {{name")
                .unwrap_err()
                .to_string()
                .contains("closing")
        );
        assert_eq!(Part::parse("no fields }} here").unwrap().0.len(), 1);
    }
}
