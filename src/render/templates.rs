//! The Askama structs: one HTML and one text template per email, each with typed fields.
//!
//! Both halves of a pair share the layout context `l`, the template's data `data` and its
//! localized copy `c`, so the text part always says what the HTML part says.

use askama::Template;
use mailroom_jobs::templates::{
    NewsletterData, NotificationData, PasswordResetData, SubscriptionConfirmData, VerificationData,
    WelcomeData,
};

use super::styles::Styles;

/// What the layout shows around every template.
#[derive(Debug)]
pub(crate) struct Layout<'a> {
    pub(crate) lang: String,
    pub(crate) dir: &'static str,
    pub(crate) align: &'static str,
    pub(crate) brand: &'a str,
    pub(crate) logo_url: Option<&'a str>,
    pub(crate) postal_address: &'a str,
    pub(crate) subject: &'a str,
    pub(crate) preheader: String,
    pub(crate) footer_sent_by: String,
    pub(crate) link_fallback: String,
    /// What separates a label from its link in the text part: `:`, or the locale's own
    /// (French puts a no-break space before it, Japanese a full-width colon).
    pub(crate) colon: String,
    pub(crate) unsubscribe: Option<Unsubscribe<'a>>,
    pub(crate) styles: &'a Styles,
}

/// The footer's unsubscribe link (bulk mail).
#[derive(Debug)]
pub(crate) struct Unsubscribe<'a> {
    pub(crate) link: &'a str,
    pub(crate) label: String,
}

/// Copy of `verification`, `password_reset` and `subscription_confirm`: each sends a link that
/// expires, so they share
/// one pair of templates (`link.html`, `link.txt`) and differ only in their copy.
#[derive(Debug)]
pub(crate) struct LinkCopy {
    pub(crate) heading: String,
    pub(crate) greeting: String,
    pub(crate) body: String,
    pub(crate) button: String,
    pub(crate) expiry: String,
    /// The last sentence: "if you did not sign up…" or "if this wasn't you…".
    pub(crate) closing: String,
}

/// Copy of `welcome`.
#[derive(Debug)]
pub(crate) struct WelcomeCopy {
    pub(crate) heading: String,
    pub(crate) body: String,
    pub(crate) button: String,
}

/// Copy of `newsletter`.
#[derive(Debug)]
pub(crate) struct NewsletterCopy {
    pub(crate) read_more: String,
}

/// `notification` has no copy of its own: the caller writes it.
#[derive(Debug)]
pub(crate) struct NoCopy;

macro_rules! pair {
    ($html:ident, $text:ident, $html_path:literal, $text_path:literal, $data:ty, $copy:ty) => {
        #[derive(Debug, Template)]
        #[template(path = $html_path)]
        pub(crate) struct $html<'a> {
            pub(crate) l: &'a Layout<'a>,
            pub(crate) data: &'a $data,
            // `notification` has no copy of its own, so its templates never read `c`.
            #[allow(dead_code)]
            pub(crate) c: &'a $copy,
        }

        #[derive(Debug, Template)]
        #[template(path = $text_path)]
        pub(crate) struct $text<'a> {
            pub(crate) l: &'a Layout<'a>,
            pub(crate) data: &'a $data,
            #[allow(dead_code)]
            pub(crate) c: &'a $copy,
        }
    };
}

pair!(
    VerificationHtml,
    VerificationText,
    "link.html",
    "link.txt",
    VerificationData,
    LinkCopy
);
pair!(
    WelcomeHtml,
    WelcomeText,
    "welcome.html",
    "welcome.txt",
    WelcomeData,
    WelcomeCopy
);
pair!(
    PasswordResetHtml,
    PasswordResetText,
    "link.html",
    "link.txt",
    PasswordResetData,
    LinkCopy
);
pair!(
    NotificationHtml,
    NotificationText,
    "notification.html",
    "notification.txt",
    NotificationData,
    NoCopy
);
pair!(
    NewsletterHtml,
    NewsletterText,
    "newsletter.html",
    "newsletter.txt",
    NewsletterData,
    NewsletterCopy
);
pair!(
    SubscriptionConfirmHtml,
    SubscriptionConfirmText,
    "link.html",
    "link.txt",
    SubscriptionConfirmData,
    LinkCopy
);
