//! A subscriber's locale: a well-formed BCP 47 tag, kept in its canonical form. Whether
//! mailroom has copy for it is decided when a message is rendered (a fallback, never an error).

use fluent_templates::LanguageIdentifier;

/// A well-formed language tag such as `fr-CA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locale(String);

impl Locale {
    /// The longest tag taken.
    pub const MAX_LEN: usize = 35;

    /// Parses `text` (any case: `pt-br` becomes `pt-BR`).
    ///
    /// # Errors
    /// A reason when it is not a language tag.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(format!(
                "a locale is a language tag of 2 to {} characters such as fr-CA",
                Self::MAX_LEN
            ));
        }
        text.parse::<LanguageIdentifier>()
            .map(|id| Self(id.to_string()))
            .map_err(|_| format!("{text:?} is not a language tag such as fr-CA"))
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_canonical_and_junk_is_refused() {
        assert_eq!(Locale::parse("pt-br").unwrap().as_str(), "pt-BR");
        assert_eq!(Locale::parse(" fr ").unwrap().as_str(), "fr");
        assert!(Locale::parse("not a tag").is_err());
        assert!(Locale::parse("").is_err());
    }
}
