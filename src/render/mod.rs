//! Rendering templated email: Askama templates (`templates/`), copy from Fluent (`locales/`),
//! CSS inlined once ([`styles`]), a text part from each template's `.txt` twin.
//!
//! A message names a template, a locale and data; [`Renderer::render`] checks the data
//! (the same check the API and the Producer run before enqueueing), negotiates the locale,
//! and returns the subject, the HTML and the text.

mod i18n;
pub mod locale;
pub mod pages;
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
    /// The renderer `settings` describe (brand, default locale).
    ///
    /// # Errors
    /// When the default locale is unknown or the logo URL is not http(s).
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        if let Some(logo) = &settings.brand_logo_url {
            mailroom_jobs::WebUrl::parse(logo)
                .map_err(|e| anyhow::anyhow!("MAILROOM_BRAND_LOGO_URL: {e}"))?;
        }
        let brand = Brand {
            name: settings.brand_name.clone(),
            logo_url: settings.brand_logo_url.clone(),
            postal_address: settings.postal_address.clone(),
        };
        Self::new(brand, &settings.default_locale)
    }

    /// A renderer for `brand`, falling back to `default_locale`.
    ///
    /// # Errors
    /// When the stylesheet cannot be inlined or the default locale is not one mailroom has.
    pub fn new(brand: Brand, default_locale: &str) -> anyhow::Result<Self> {
        let default_locale: LanguageIdentifier = default_locale.parse().map_err(|_| {
            anyhow::anyhow!(
                "default_locale (MAILROOM_DEFAULT_LOCALE) {default_locale:?} is not a BCP 47 tag"
            )
        })?;
        if !locale::supported().contains(&default_locale) {
            anyhow::bail!(
                "default_locale (MAILROOM_DEFAULT_LOCALE) {default_locale} is not one of the locales mailroom has: {}",
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

    /// The locale a message asked for in `locale` is rendered in (`fr-CA` → `fr`).
    pub fn negotiate(&self, locale: Option<&str>) -> String {
        locale::negotiate(locale, &self.default_locale).to_string()
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
        let headline = self.headline(data, t)?;
        let rtl = locale::direction(&locale) == "rtl";
        let layout = Layout {
            lang: locale.to_string(),
            dir: locale::direction(&locale),
            align: if rtl { "right" } else { "left" },
            brand: &self.brand.name,
            logo_url: self.brand.logo_url.as_deref(),
            postal_address: &self.brand.postal_address,
            subject: &headline.subject,
            preheader: headline.preheader,
            footer_sent_by: t.text("footer-sent-by", &[self.brand_arg()])?,
            link_fallback: t.text("link-fallback", &[])?,
            colon: t.text("text-link-colon", &[])?,
            unsubscribe: match headline.unsubscribe {
                Some(link) => Some(Unsubscribe {
                    link,
                    label: t.text("newsletter-unsubscribe", &[])?,
                }),
                None => None,
            },
            styles: &self.styles,
        };
        let (html, text) = render_pair(data, &layout, t)?;
        Ok(Rendered {
            subject: headline.subject,
            html,
            text,
            locale: locale.to_string(),
        })
    }

    fn brand_arg(&self) -> (&'static str, FluentValue<'static>) {
        ("brand", FluentValue::from(self.brand.name.clone()))
    }

    /// The subject, the preheader and the unsubscribe link of `data`.
    fn headline<'d>(
        &self,
        data: &'d TemplateData,
        t: Translator<'_>,
    ) -> Result<Headline<'d>, MissingKey> {
        let titled =
            |key: &str, title: &str| t.text(key, &[("title", FluentValue::from(title.to_owned()))]);
        Ok(match data {
            TemplateData::Verification(_) => Headline::new(
                t.text("verification-subject", &[])?,
                t.text("verification-preheader", &[])?,
            ),
            TemplateData::Welcome(d) => Headline::new(
                t.text("welcome-subject", &[self.brand_arg(), name_arg(&d.name)])?,
                t.text("welcome-preheader", &[])?,
            ),
            TemplateData::PasswordReset(_) => Headline::new(
                t.text("password-reset-subject", &[])?,
                t.text("password-reset-preheader", &[])?,
            ),
            TemplateData::Notification(d) => Headline::new(
                titled("notification-subject", &d.title)?,
                d.body.chars().take(90).collect(),
            ),
            TemplateData::SubscriptionConfirm(d) => Headline::new(
                t.text("optin-subject", &[list_arg(&d.list)])?,
                t.text("optin-preheader", &[])?,
            ),
            TemplateData::Newsletter(d) => Headline {
                unsubscribe: Some(d.unsubscribe_link.as_str()),
                ..Headline::new(
                    titled("newsletter-subject", &d.title)?,
                    d.sections[0].heading.clone(),
                )
            },
        })
    }
}

/// What the layout needs from a template before its body is rendered.
struct Headline<'d> {
    subject: String,
    preheader: String,
    unsubscribe: Option<&'d str>,
}

impl Headline<'_> {
    fn new(subject: String, preheader: String) -> Self {
        Self {
            subject,
            preheader,
            unsubscribe: None,
        }
    }
}

fn list_arg(list: &str) -> (&'static str, FluentValue<'static>) {
    ("list", FluentValue::from(list.to_owned()))
}

fn name_arg(name: &str) -> (&'static str, FluentValue<'static>) {
    ("name", FluentValue::from(name.to_owned()))
}

/// The copy of a template that sends a link that expires.
fn link_copy(
    t: Translator<'_>,
    prefix: &str,
    name: Option<&str>,
    minutes: u32,
    closing: &str,
) -> Result<LinkCopy, MissingKey> {
    let key = |part: &str| format!("{prefix}-{part}");
    Ok(LinkCopy {
        heading: t.text(&key("heading"), &[])?,
        greeting: match name {
            Some(name) => t.text("greeting-name", &[name_arg(name)])?,
            None => t.text("greeting", &[])?,
        },
        body: t.text(&key("body"), &[])?,
        button: t.text(&key("button"), &[])?,
        expiry: t.text(&key("expiry"), &[("minutes", FluentValue::from(minutes))])?,
        closing: t.text(closing, &[])?,
    })
}

/// The copy of the double opt-in email: its link expires in days, not minutes.
fn optin_copy(
    t: Translator<'_>,
    d: &mailroom_jobs::templates::SubscriptionConfirmData,
) -> Result<LinkCopy, RenderError> {
    Ok(LinkCopy {
        heading: t.text("optin-heading", &[])?,
        greeting: match d.name.as_deref() {
            Some(name) => t.text("greeting-name", &[name_arg(name)])?,
            None => t.text("greeting", &[])?,
        },
        body: t.text("optin-body", &[list_arg(&d.list)])?,
        button: t.text("optin-button", &[])?,
        expiry: t.text(
            "optin-expiry",
            &[("days", FluentValue::from(d.expires_in_days))],
        )?,
        closing: t.text("optin-ignore", &[])?,
    })
}

/// Renders the HTML and text templates of `data`, with the same layout and copy.
fn render_pair(
    data: &TemplateData,
    l: &Layout<'_>,
    t: Translator<'_>,
) -> Result<(String, String), RenderError> {
    Ok(match data {
        TemplateData::Verification(d) => {
            let c = &link_copy(
                t,
                "verification",
                d.name.as_deref(),
                d.expires_in_minutes,
                "verification-ignore",
            )?;
            (
                VerificationHtml { l, data: d, c }.render()?,
                VerificationText { l, data: d, c }.render()?,
            )
        }
        TemplateData::PasswordReset(d) => {
            let c = &link_copy(
                t,
                "password-reset",
                d.name.as_deref(),
                d.expires_in_minutes,
                "password-reset-not-you",
            )?;
            (
                PasswordResetHtml { l, data: d, c }.render()?,
                PasswordResetText { l, data: d, c }.render()?,
            )
        }
        TemplateData::SubscriptionConfirm(d) => {
            let c = &optin_copy(t, d)?;
            (
                SubscriptionConfirmHtml { l, data: d, c }.render()?,
                SubscriptionConfirmText { l, data: d, c }.render()?,
            )
        }
        TemplateData::Welcome(d) => {
            let c = &WelcomeCopy {
                heading: t.text("welcome-heading", &[name_arg(&d.name)])?,
                body: t.text("welcome-body", &[])?,
                button: t.text("welcome-button", &[])?,
            };
            (
                WelcomeHtml { l, data: d, c }.render()?,
                WelcomeText { l, data: d, c }.render()?,
            )
        }
        TemplateData::Notification(d) => {
            let c = &NoCopy;
            (
                NotificationHtml { l, data: d, c }.render()?,
                NotificationText { l, data: d, c }.render()?,
            )
        }
        TemplateData::Newsletter(d) => {
            let c = &NewsletterCopy {
                read_more: t.text("newsletter-read-more", &[])?,
            };
            (
                NewsletterHtml { l, data: d, c }.render()?,
                NewsletterText { l, data: d, c }.render()?,
            )
        }
    })
}
