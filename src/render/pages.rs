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
    /// "Confirm your subscription to …", with the form that confirms (double opt-in).
    OptinConfirm {
        email: &'a str,
        list: &'a str,
        token: &'a str,
    },
    /// A title and a body from the locale files, with the address and the list's name.
    Notice {
        title: &'static str,
        body: &'static str,
        email: &'a str,
        list: &'a str,
    },
}

/// One list on a preference page.
#[derive(Debug)]
pub struct PreferenceRow<'a> {
    pub list: u64,
    pub name: &'a str,
    pub status: crate::domain::SubscriptionStatus,
}

struct Row {
    list: u64,
    name: String,
    state: String,
    action: &'static str,
    button: String,
}

#[derive(Template)]
#[template(path = "pages/preferences.html")]
struct Preferences<'a> {
    lang: String,
    dir: &'static str,
    brand: &'a str,
    title: String,
    nonce: &'a str,
    notice: Option<String>,
    intro: String,
    rows: Vec<Row>,
    token: &'a str,
    form_token: &'a str,
    any_subscribed: bool,
    all_button: String,
}

/// A public subscribe form.
#[derive(Template)]
#[template(path = "pages/subscribe.html")]
struct SubscribeForm<'a> {
    lang: String,
    dir: &'static str,
    brand: &'a str,
    title: String,
    nonce: &'a str,
    list: u64,
    email_label: String,
    name_label: String,
    button: String,
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
    /// Where the form posts.
    action: &'a str,
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
        let (title, body, button, token, link) = words(&t, kind)?;
        let page = Page {
            action: if matches!(kind, PageKind::OptinConfirm { .. }) {
                "/subscribe/confirm"
            } else {
                "/verify"
            },
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

/// What the preference page reports having just done.
#[derive(Debug, Clone, Copy)]
pub enum PreferenceNotice<'a> {
    Unsubscribed(&'a str),
    Resubscribed(&'a str),
    All,
}

impl Renderer {
    /// The preference page of `email` (in `locale`) for the link `token`, listing `rows`.
    ///
    /// # Errors
    /// When a locale lacks a key or Askama fails (both bugs).
    #[allow(clippy::too_many_arguments)]
    pub fn preferences(
        &self,
        locale: Option<&str>,
        email: &str,
        token: &str,
        form_token: &str,
        rows: &[PreferenceRow<'_>],
        notice: Option<PreferenceNotice<'_>>,
        nonce: &str,
    ) -> Result<String, RenderError> {
        use crate::domain::SubscriptionStatus as S;
        let locale = locale::negotiate(locale, &self.default_locale);
        let t = Translator::new(&locale);
        let list_arg = |l: &str| [("list", FluentValue::from(l.to_owned()))];
        let notice = match notice {
            Some(PreferenceNotice::Unsubscribed(l)) => {
                Some(t.text("prefs-done-one", &list_arg(l))?)
            }
            Some(PreferenceNotice::Resubscribed(l)) => {
                Some(t.text("prefs-done-again", &list_arg(l))?)
            }
            Some(PreferenceNotice::All) => Some(t.text("prefs-done-all", &[])?),
            None => None,
        };
        let mut out = Vec::new();
        for row in rows {
            let (state, action, button) = match row.status {
                S::Confirmed => ("prefs-state-confirmed", "unsubscribe", "prefs-unsubscribe"),
                S::Unconfirmed => (
                    "prefs-state-unconfirmed",
                    "unsubscribe",
                    "prefs-unsubscribe",
                ),
                S::Unsubscribed => (
                    "prefs-state-unsubscribed",
                    "resubscribe",
                    "prefs-resubscribe",
                ),
            };
            out.push(Row {
                list: row.list,
                name: row.name.to_owned(),
                state: t.text(state, &[])?,
                action,
                button: t.text(button, &[])?,
            });
        }
        let page = Preferences {
            lang: locale.to_string(),
            dir: locale::direction(&locale),
            brand: &self.brand.name,
            title: t.text("prefs-title", &[])?,
            nonce,
            notice,
            intro: t.text(
                "prefs-intro",
                &[("email", FluentValue::from(email.to_owned()))],
            )?,
            any_subscribed: rows.iter().any(|r| r.status != S::Unsubscribed),
            rows: out,
            token,
            form_token,
            all_button: t.text("prefs-unsubscribe-all", &[])?,
        };
        Ok(page.render()?)
    }

    /// The subscribe form of list `list` named `name`, in `locale`.
    ///
    /// # Errors
    /// When a locale lacks a key or Askama fails (both bugs).
    pub fn subscribe_form(
        &self,
        locale: Option<&str>,
        list: u64,
        name: &str,
        nonce: &str,
    ) -> Result<String, RenderError> {
        let locale = locale::negotiate(locale, &self.default_locale);
        let t = Translator::new(&locale);
        let page = SubscribeForm {
            lang: locale.to_string(),
            dir: locale::direction(&locale),
            brand: &self.brand.name,
            title: t.text(
                "form-title",
                &[("list", FluentValue::from(name.to_owned()))],
            )?,
            nonce,
            list,
            email_label: t.text("form-email", &[])?,
            name_label: t.text("form-name", &[])?,
            button: t.text("form-button", &[])?,
        };
        Ok(page.render()?)
    }
}

/// A page's title, body and button, and the token or link it carries.
type Words<'a> = (String, String, String, Option<&'a str>, Option<&'a str>);

/// The [`Words`] of `kind`, in `t`'s language.
fn words<'a>(t: &Translator, kind: &PageKind<'a>) -> Result<Words<'a>, RenderError> {
    let email = |e: &str| [("email", FluentValue::from(e.to_owned()))];
    let both = |e: &str, l: &str| {
        [
            ("email", FluentValue::from(e.to_owned())),
            ("list", FluentValue::from(l.to_owned())),
        ]
    };
    Ok(match kind {
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
        PageKind::OptinConfirm {
            email: e,
            list,
            token,
        } => (
            t.text("page-optin-title", &[])?,
            t.text("page-optin-intro", &both(e, list))?,
            t.text("page-optin-button", &[])?,
            Some(*token),
            None,
        ),
        PageKind::Notice {
            title,
            body,
            email: e,
            list,
        } => (
            t.text(title, &both(e, list))?,
            t.text(body, &both(e, list))?,
            String::new(),
            None,
            None,
        ),
        PageKind::Invalid => (
            t.text("page-invalid-title", &[])?,
            t.text("page-invalid-body", &[])?,
            String::new(),
            None,
            None,
        ),
    })
}
