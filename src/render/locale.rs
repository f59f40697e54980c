//! Which locale a message is rendered in.
//!
//! The job's locale (BCP 47, e.g. `fr-CA`) → its fallback chain (`fr-CA` → `fr` → any `fr-*`
//! we have) → `MAILROOM_DEFAULT_LOCALE`. An unknown or malformed tag falls back; it never
//! fails a job.

use fluent_templates::{LanguageIdentifier, Loader};
use unic_langid::CharacterDirection;

use super::i18n::LOCALES;

/// The locales mailroom has copy for.
pub fn supported() -> Vec<LanguageIdentifier> {
    let mut locales: Vec<_> = LOCALES.locales().cloned().collect();
    locales.sort_by_key(ToString::to_string);
    locales
}

/// The supported locale to render `requested` in, else `default`.
pub fn negotiate(requested: Option<&str>, default: &LanguageIdentifier) -> LanguageIdentifier {
    let Some(wanted) = requested.and_then(|tag| tag.parse::<LanguageIdentifier>().ok()) else {
        return default.clone();
    };
    let supported = supported();
    if let Some(exact) = supported.iter().find(|l| **l == wanted) {
        return exact.clone();
    }
    let same_language = |l: &&LanguageIdentifier| l.language == wanted.language;
    supported
        .iter()
        .filter(same_language)
        .min_by_key(|l| (l.region.is_some(), l.to_string()))
        .cloned()
        .unwrap_or_else(|| default.clone())
}

/// `rtl` for right-to-left scripts (Arabic), else `ltr`.
pub fn direction(locale: &LanguageIdentifier) -> &'static str {
    match locale.character_direction() {
        CharacterDirection::RTL => "rtl",
        _ => "ltr",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn en() -> LanguageIdentifier {
        "en".parse().unwrap()
    }

    #[test]
    fn tags_fall_back_along_their_chain_then_to_the_default() {
        let pick = |tag: Option<&str>| negotiate(tag, &en()).to_string();
        assert_eq!(pick(Some("fr-CA")), "fr");
        assert_eq!(pick(Some("fr")), "fr");
        assert_eq!(pick(Some("pt-BR")), "pt-BR");
        assert_eq!(pick(Some("pt-PT")), "pt-BR", "the only Portuguese we have");
        assert_eq!(pick(Some("pt")), "pt-BR");
        assert_eq!(pick(Some("ar-EG")), "ar");
        assert_eq!(pick(Some("ja-JP")), "ja");
        assert_eq!(
            pick(Some("sw")),
            "en",
            "an unknown language gets the default"
        );
        assert_eq!(
            pick(Some("not a tag!")),
            "en",
            "a malformed tag gets the default"
        );
        assert_eq!(pick(None), "en");
        let german: LanguageIdentifier = "de".parse().unwrap();
        assert_eq!(negotiate(Some("xx"), &german).to_string(), "de");
    }

    #[test]
    fn arabic_is_right_to_left() {
        assert_eq!(direction(&"ar".parse().unwrap()), "rtl");
        assert_eq!(direction(&"fr".parse().unwrap()), "ltr");
    }
}
