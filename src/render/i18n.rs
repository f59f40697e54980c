//! Copy in every language: the Fluent files in `locales/`, compiled into the binary.
//!
//! Lookups are strict: a key missing in the chosen locale is an error, never the placeholder
//! text fluent-templates would otherwise return; a test proves every key exists everywhere.

use std::{borrow::Cow, collections::HashMap};

use fluent_templates::{LanguageIdentifier, fluent_bundle::FluentValue, static_loader};

static_loader! {
    pub(crate) static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        // Unicode isolation marks around arguments would end up in subjects and text parts.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// A key the chosen locale lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no {key:?} in locale {locale}")]
pub struct MissingKey {
    /// The locale.
    pub locale: String,
    /// The key.
    pub key: String,
}

/// Looks up copy in one locale.
#[derive(Debug, Clone, Copy)]
pub(super) struct Translator<'a> {
    locale: &'a LanguageIdentifier,
}

impl<'a> Translator<'a> {
    /// Copy in `locale`.
    pub(super) fn new(locale: &'a LanguageIdentifier) -> Self {
        Self { locale }
    }

    /// The text of `key` with `args`.
    ///
    /// # Errors
    /// When the locale lacks the key.
    pub(super) fn text(
        &self,
        key: &str,
        args: &[(&'static str, FluentValue<'static>)],
    ) -> Result<String, MissingKey> {
        let args: HashMap<Cow<'static, str>, FluentValue<'static>> = args
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
            .collect();
        let args = (!args.is_empty()).then_some(&args);
        LOCALES
            .lookup_single_language(self.locale, key, args)
            .map_err(|_| MissingKey {
                locale: self.locale.to_string(),
                key: key.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluent_templates::Loader;

    /// Every message id of a Fluent file.
    fn keys(source: &str) -> Vec<String> {
        source
            .lines()
            .filter_map(|line| line.split_once(" ="))
            .map(|(key, _)| key.trim().to_owned())
            .filter(|key| {
                !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            })
            .collect()
    }

    #[test]
    fn every_key_exists_in_every_locale_and_no_locale_has_extra_keys() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/locales");
        let english = keys(&std::fs::read_to_string(format!("{dir}/en/mailroom.ftl")).unwrap());
        assert!(english.len() > 20, "{english:?}");
        let locales: Vec<LanguageIdentifier> = LOCALES.locales().cloned().collect();
        assert_eq!(locales.len(), 7, "{locales:?}");
        for locale in &locales {
            let file = format!("{dir}/{locale}/mailroom.ftl");
            let own = keys(&std::fs::read_to_string(&file).unwrap());
            assert_eq!(own, english, "{file} has other keys than en");
            let t = Translator::new(locale);
            for key in &english {
                let args = [
                    ("brand", FluentValue::from("mailroom")),
                    ("name", FluentValue::from("Ada")),
                    ("title", FluentValue::from("T")),
                    ("minutes", FluentValue::from(5)),
                    ("email", FluentValue::from("ada@example.com")),
                    ("list", FluentValue::from("News")),
                    ("days", FluentValue::from(7)),
                ];
                let text = t.text(key, &args).unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    !text.is_empty() && !text.contains('\u{2068}'),
                    "{locale} {key}: {text:?}"
                );
            }
        }
    }

    #[test]
    fn a_missing_key_is_an_error_not_placeholder_text() {
        let en: LanguageIdentifier = "en".parse().unwrap();
        let error = Translator::new(&en).text("no-such-key", &[]).unwrap_err();
        assert_eq!(error.key, "no-such-key");
    }
}
