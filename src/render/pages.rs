//! The confirmation pages of the verification flow: one Askama layout, the brand from config,
//! copy from the same Fluent files as the emails, no external assets. The page's only style
//! carries the response's CSP nonce; pages run no script.

use askama::Template;
use fluent_templates::fluent_bundle::FluentValue;

use super::{RenderError, Renderer, i18n::Translator, locale};

/// Which page.
#[derive(Debug)]
pub enum PageKind<'a> {
    /// "Confirm that … is your address", with the form that confirms by itself.
    Confirm {
        /// The address.
        email: &'a str,
        /// The token, posted back by the form.
        token: &'a str,
    },
    /// "Your address is verified", with a link onwards when the return URL is allowed.
    Verified {
        /// The address.
        email: &'a str,
        /// Where to continue.
        continue_to: Option<&'a str>,
    },
    /// The link was used already: the address is confirmed, with a way back when allowed.
    AlreadyConfirmed {
        /// The return URL's origin, when allowed.
        back: Option<&'a str>,
    },
    /// The token is unknown or expired (410), with a way back when one is known.
    Expired {
        /// The return URL's origin, when allowed.
        back: Option<&'a str>,
    },
    /// The link is malformed (400).
    Invalid,
}

#[derive(Debug, Template)]
#[template(path = "pages/page.html")]
struct Page<'a> {
    lang: String,
    dir: &'static str,
    brand: &'a str,
    title: String,
    body: String,
    button: String,
    token: Option<&'a str>,
    link: Option<&'a str>,
    nonce: &'a str,
}

impl Renderer {
    /// Renders `kind` in the locale negotiated from `locale`, with `nonce` on its style.
    ///
    /// # Errors
    /// When a locale lacks a key or Askama fails (both bugs).
    pub fn page(
        &self,
        kind: &PageKind<'_>,
        locale: Option<&str>,
        nonce: &str,
    ) -> Result<String, RenderError> {
        let locale = locale::negotiate(locale, &self.default_locale);
        let t = Translator::new(&locale);
        let email = |e: &str| [("email", FluentValue::from(e.to_owned()))];
        let (title, body, button, token, link) = match kind {
            PageKind::Confirm { email: e, token } => (
                t.text("page-confirm-title", &[])?,
                t.text("page-confirm-intro", &email(e))?,
                t.text("page-confirm-button", &[])?,
                Some(*token),
                None,
            ),
            PageKind::Verified {
                email: e,
                continue_to,
            } => (
                t.text("page-verified-title", &[])?,
                t.text("page-verified-body", &email(e))?,
                t.text("page-continue", &[])?,
                None,
                *continue_to,
            ),
            PageKind::AlreadyConfirmed { back } => (
                t.text("page-used-title", &[])?,
                t.text("page-used-body", &[])?,
                t.text("page-back", &[])?,
                None,
                *back,
            ),
            PageKind::Expired { back } => (
                t.text("page-expired-title", &[])?,
                t.text("page-expired-body", &[])?,
                t.text("page-back", &[])?,
                None,
                *back,
            ),
            PageKind::Invalid => (
                t.text("page-invalid-title", &[])?,
                t.text("page-invalid-body", &[])?,
                String::new(),
                None,
                None,
            ),
        };
        let page = Page {
            lang: locale.to_string(),
            dir: locale::direction(&locale),
            brand: &self.brand.name,
            title,
            body,
            button,
            token,
            link,
            nonce,
        };
        Ok(page.render()?)
    }
}
