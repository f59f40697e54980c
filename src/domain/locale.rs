//! A subscriber's locale: a well-formed BCP 47 tag, kept in its canonical form. Whether
//! mailroom has copy for it is decided when a message is rendered (a fallback, never an error).

use fluent_templates::LanguageIdentifier;

/// A well-formed language tag such as `fr-CA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locale(String);

impl Locale {
    /// The tags taken, as the OpenAPI document states them: a language, an optional script
    /// and an optional region (`fr`, `pt-BR`, `zh-Hant-TW`, `es-419`), letters in any case.
    pub const PATTERN: &str = "^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?$";
    /// [`Locale::PATTERN`] or the empty string (a field that may be cleared).
    pub const OPTIONAL_PATTERN: &str =
        "^([A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?)?$";

    /// Parses `text` (any case: `pt-br` becomes `pt-BR`), as [`Locale::PATTERN`] says.
    ///
    /// # Errors
    /// A reason when it is not such a language tag.
    pub fn parse(text: &str) -> Result<Self, NotALocale> {
        let refused = || NotALocale(text.to_owned());
        let mut subtags = text.split('-');
        let language = subtags.next().unwrap_or_default();
        if !(2..=3).contains(&language.len()) || !is_alpha(language) {
            return Err(refused());
        }
        let mut rest: Vec<&str> = subtags.collect();
        if rest.first().is_some_and(|s| s.len() == 4 && is_alpha(s)) {
            rest.remove(0);
        }
        let region = |s: &str| {
            (s.len() == 2 && is_alpha(s)) || (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        };
        match rest.as_slice() {
            [] => {}
            [one] if region(one) => {}
            _ => return Err(refused()),
        }
        text.parse::<LanguageIdentifier>()
            .map(|id| Self(id.to_string()))
            .map_err(|_| refused())
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Text that is not a language tag [`Locale::parse`] takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a language tag such as fr-CA")]
pub struct NotALocale(pub String);

/// ASCII letters only.
fn is_alpha(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_canonical_and_junk_is_refused() {
        assert_eq!(Locale::parse("pt-br").unwrap().as_str(), "pt-BR");
        assert_eq!(Locale::parse("zh-hant-tw").unwrap().as_str(), "zh-Hant-TW");
        assert_eq!(Locale::parse("es-419").unwrap().as_str(), "es-419");
        assert!(Locale::parse(" fr ").is_err(), "the pattern has no spaces");
        assert!(Locale::parse("de-DE-1996").is_err(), "no variants");
        assert!(Locale::parse("not a tag").is_err());
        assert!(Locale::parse("").is_err());
    }

    #[test]
    fn the_pattern_is_the_parser() {
        let pattern = regex::Regex::new(Locale::PATTERN).unwrap();
        let optional = regex::Regex::new(Locale::OPTIONAL_PATTERN).unwrap();
        for text in [
            "",
            "fr",
            "FR",
            "pt-br",
            "zh-Hant",
            "zh-Hant-TW",
            "es-419",
            "ast",
            "f",
            "fran",
            "fr-",
            "fr_CA",
            " fr",
            "de-DE-1996",
            "en-US-x-a",
            "12",
            "fr-1",
            "fr-Latn-",
            "é",
        ] {
            assert_eq!(
                pattern.is_match(text),
                Locale::parse(text).is_ok(),
                "{text:?}"
            );
            assert_eq!(
                optional.is_match(text),
                text.is_empty() || Locale::parse(text).is_ok(),
                "{text:?}"
            );
        }
    }
}
