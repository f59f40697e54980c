//! Rendering templated email: Askama templates (`templates/`), copy from Fluent (`locales/`),
//! CSS inlined once ([`styles`]), a text part from each template's `.txt` twin.
//!
//! A message names a template, a locale and data; [`Renderer::render`] checks the data
//! (the same check the API and the Producer run before enqueueing), negotiates the locale,
//! and returns the subject, the HTML and the text.

mod i18n;
pub mod locale;
pub mod samples;
mod styles;
mod templates;

use askama::Template;
use fluent_templates::{LanguageIdentifier, fluent_bundle::FluentValue};
use mailroom_jobs::{FieldError, TemplateData, TemplateRef};
use serde::Serialize;
use utoipa::ToSchema;

pub use i18n::MissingKey;
pub use styles::Styles;

use i18n::Translator;
use templates::*;

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Rendered {
    /// The subject, in the recipient's language.
    pub subject: String,
    /// The HTML part, CSS inlined.
    pub html: String,
    /// The plain-text part.
    pub text: String,
    /// The locale it was rendered in, after negotiation (e.g. `fr` for `fr-CA`).
    pub locale: String,
}

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template or its data is not valid: the caller's mistake (422).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A locale lacks a key: a bug that the locale tests catch.
    #[error(transparent)]
    MissingKey(#[from] MissingKey),
    /// Askama failed: a bug.
    #[error("rendering failed: {0}")]
    Template(#[from] askama::Error),
}

/// Brand details every email shows.
#[derive(Debug, Clone, Default)]
pub struct Brand {
    /// The brand's name, in the header and footer.
    pub name: String,
    /// A logo for the header (http or https); the name is shown when absent.
    pub logo_url: Option<String>,
    /// The sender's postal address, in the footer.
    pub postal_address: String,
}

/// Renders every template in every locale. Built once per process.
#[derive(Debug, Clone)]
pub struct Renderer {
    styles: Styles,
    brand: Brand,
    default_locale: LanguageIdentifier,
}

impl Renderer {
    /// A renderer for `brand`, falling back to `default_locale`.
    ///
    /// # Errors
    /// When the stylesheet cannot be inlined or the default locale is not one mailroom has.
    pub fn new(brand: Brand, default_locale: &str) -> anyhow::Result<Self> {
        let default_locale: LanguageIdentifier = default_locale.parse().map_err(|_| {
            anyhow::anyhow!("default_locale {default_locale:?} is not a BCP 47 tag")
        })?;
        if !locale::supported().contains(&default_locale) {
            anyhow::bail!(
                "default_locale {default_locale} is not one of the locales mailroom has: {}",
                locale::supported()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(Self {
            styles: Styles::compute()?,
            brand,
            default_locale,
        })
    }

    /// Renders `template`.
    ///
    /// # Errors
    /// [`RenderError::Invalid`] for an unknown template or bad data; the others are bugs.
    pub fn render(&self, template: &TemplateRef) -> Result<Rendered, RenderError> {
        let data = TemplateData::parse(template)?;
        self.render_data(&data, template.locale.as_deref())
    }

    /// Renders checked template data in the locale negotiated from `locale`.
    ///
    /// # Errors
    /// When a locale lacks a key or Askama fails (both bugs).
    pub fn render_data(
        &self,
        data: &TemplateData,
        locale: Option<&str>,
    ) -> Result<Rendered, RenderError> {
        let locale = locale::negotiate(locale, &self.default_locale);
        let t = Translator::new(&locale);
        let brand = || ("brand", FluentValue::from(self.brand.name.clone()));
        let minutes = |m: u32| ("minutes", FluentValue::from(m));
        let greeting = |name: &Option<String>| match name {
            Some(name) => t.text(
                "greeting-name",
                &[("name", FluentValue::from(name.clone()))],
            ),
            None => t.text("greeting", &[]),
        };
        let link_copy = |prefix: &str, name: &Option<String>, minutes_left: u32, ignore: &str| {
            Ok::<_, MissingKey>(LinkCopy {
                heading: t.text(&format!("{prefix}-heading"), &[])?,
                greeting: greeting(name)?,
                body: t.text(&format!("{prefix}-body"), &[])?,
                button: t.text(&format!("{prefix}-button"), &[])?,
                expiry: t.text(&format!("{prefix}-expiry"), &[minutes(minutes_left)])?,
                ignore: if ignore.is_empty() {
                    String::new()
                } else {
                    t.text(ignore, &[])?
                },
                not_you: if ignore.is_empty() {
                    t.text(&format!("{prefix}-not-you"), &[])?
                } else {
                    String::new()
                },
            })
        };
        let (subject, preheader, unsubscribe_link) = match data {
            TemplateData::Verification(_) => (
                t.text("verification-subject", &[])?,
                t.text("verification-preheader", &[])?,
                None,
            ),
            TemplateData::Welcome(d) => (
                t.text(
                    "welcome-subject",
                    &[brand(), ("name", FluentValue::from(d.name.clone()))],
                )?,
                t.text("welcome-preheader", &[])?,
                None,
            ),
            TemplateData::PasswordReset(_) => (
                t.text("password-reset-subject", &[])?,
                t.text("password-reset-preheader", &[])?,
                None,
            ),
            TemplateData::Notification(d) => (
                t.text(
                    "notification-subject",
                    &[("title", FluentValue::from(d.title.clone()))],
                )?,
                d.body.chars().take(90).collect(),
                None,
            ),
            TemplateData::Newsletter(d) => (
                t.text(
                    "newsletter-subject",
                    &[("title", FluentValue::from(d.title.clone()))],
                )?,
                d.sections[0].heading.clone(),
                Some(d.unsubscribe_link.as_str()),
            ),
        };
        let layout = Layout {
            lang: locale.to_string(),
            dir: locale::direction(&locale),
            align: if locale::direction(&locale) == "rtl" {
                "right"
            } else {
                "left"
            },
            brand: &self.brand.name,
            logo_url: self.brand.logo_url.as_deref(),
            postal_address: &self.brand.postal_address,
            subject: &subject,
            preheader,
            footer_sent_by: t.text("footer-sent-by", &[brand()])?,
            link_fallback: t.text("link-fallback", &[])?,
            unsubscribe: match unsubscribe_link {
                Some(link) => Some(Unsubscribe {
                    link,
                    label: t.text("newsletter-unsubscribe", &[])?,
                }),
                None => None,
            },
            styles: &self.styles,
        };
        let l = &layout;
        let (html, text) = match data {
            TemplateData::Verification(d) => {
                let c = &link_copy(
                    "verification",
                    &d.name,
                    d.expires_in_minutes,
                    "verification-ignore",
                )?;
                (
                    VerificationHtml { l, data: d, c }.render()?,
                    VerificationText { l, data: d, c }.render()?,
                )
            }
            TemplateData::PasswordReset(d) => {
                let c = &link_copy("password-reset", &d.name, d.expires_in_minutes, "")?;
                (
                    PasswordResetHtml { l, data: d, c }.render()?,
                    PasswordResetText { l, data: d, c }.render()?,
                )
            }
            TemplateData::Welcome(d) => {
                let c = &WelcomeCopy {
                    heading: t.text(
                        "welcome-heading",
                        &[("name", FluentValue::from(d.name.clone()))],
                    )?,
                    body: t.text("welcome-body", &[])?,
                    button: t.text("welcome-button", &[])?,
                };
                (
                    WelcomeHtml { l, data: d, c }.render()?,
                    WelcomeText { l, data: d, c }.render()?,
                )
            }
            TemplateData::Notification(d) => (
                NotificationHtml {
                    l,
                    data: d,
                    c: &NoCopy,
                }
                .render()?,
                NotificationText {
                    l,
                    data: d,
                    c: &NoCopy,
                }
                .render()?,
            ),
            TemplateData::Newsletter(d) => {
                let c = &NewsletterCopy {
                    read_more: t.text("newsletter-read-more", &[])?,
                };
                (
                    NewsletterHtml { l, data: d, c }.render()?,
                    NewsletterText { l, data: d, c }.render()?,
                )
            }
        };
        Ok(Rendered {
            subject,
            html,
            text,
            locale: locale.to_string(),
        })
    }
}
