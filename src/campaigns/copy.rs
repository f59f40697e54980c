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

use std::fmt::Write as _;

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
    fn parse(inner: &str) -> Result<Self, String> {
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
                _ => Err(format!(
                    "{{{{{inner}}}}} is not a field a campaign fills: use {{{{name}}}}, {{{{email}}}}, {{{{unsubscribe_url}}}} or {{{{attributes.KEY}}}}"
                )),
            },
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
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(open) = rest.find("{{") {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| "a {{ without its closing }}".to_owned())?;
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

    /// The part for one recipient: each field's value (`value`), HTML-escaped when `html`.
    pub fn fill(&self, html: bool, value: &dyn Fn(&Field) -> String) -> String {
        let mut out = String::with_capacity(self.len_hint());
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Field(field) if html => escape_into(&mut out, &value(field)),
                Piece::Field(field) => out.push_str(&value(field)),
            }
        }
        out
    }

    /// The part with each field written as `token(field)`: SendGrid's substitution tags.
    pub fn tagged(&self, token: &dyn Fn(&Field) -> String) -> String {
        let mut out = String::with_capacity(self.len_hint());
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Field(field) => out.push_str(&token(field)),
            }
        }
        out
    }

    fn len_hint(&self) -> usize {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Field(_) => 40,
            })
            .sum()
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

/// `text` with HTML's special characters escaped, appended to `out`.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The copy of one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The language it is in.
    pub locale: String,
    pub subject: Part,
    pub html: Option<Part>,
    pub text: Part,
}

impl Letter {
    /// Every field the copy uses, each once.
    pub fn fields(&self) -> Vec<Field> {
        let mut fields: Vec<Field> = Vec::new();
        for field in self
            .subject
            .fields()
            .chain(self.html.iter().flat_map(Part::fields))
            .chain(self.text.fields())
        {
            if !fields.contains(field) {
                fields.push(field.clone());
            }
        }
        fields
    }
}

/// A substitution tag for field number `n` of a copy, in its HTML (`html`) or plain form. Short
/// and made of characters no text around it would hold by chance.
pub fn tag(n: usize, html: bool) -> String {
    let mut tag = String::with_capacity(12);
    let _ = write!(tag, "-mr{}{n}-", if html { 'h' } else { 't' });
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_cut_out_and_filled_escaped_only_in_html() {
        let part = Part::parse("Hi {{ name }}, {{attributes.plan}} — {{unsubscribe_url}}").unwrap();
        assert_eq!(
            part.fields().cloned().collect::<Vec<_>>(),
            [
                Field::Name,
                Field::Attribute("plan".into()),
                Field::UnsubscribeUrl
            ]
        );
        let value = |f: &Field| match f {
            Field::Name => "A&B <x>".to_owned(),
            Field::Attribute(_) => "pro".to_owned(),
            _ => "https://x/u/t".to_owned(),
        };
        assert_eq!(part.fill(false, &value), "Hi A&B <x>, pro — https://x/u/t");
        assert_eq!(
            part.fill(true, &value),
            "Hi A&amp;B &lt;x&gt;, pro — https://x/u/t"
        );
        let tagged = part.tagged(&|f| match f {
            Field::Name => tag(0, true),
            _ => "T".to_owned(),
        });
        assert_eq!(tagged, "Hi -mrh0-, T — T");
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
                .contains("{{password}}")
        );
        assert!(Part::parse("{{attributes.}}").is_err());
        assert!(Part::parse("Hi {{name").unwrap_err().contains("closing"));
        assert_eq!(Part::parse("no fields }} here").unwrap().0.len(), 1);
    }
}
