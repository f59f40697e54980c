//! Signing up through the public form: the rules behind `POST /subscribe`, whatever shape the
//! request came in.
//!
//! Rate-limited per client IP and per address. A filled honeypot field is answered as a person
//! would be and nothing is stored; so is a suppressed address (the answer never tells). Double
//! opt-in lists email a confirmation link; single opt-in lists subscribe at once. A person who
//! left the list and asks again through the form is subscribed again: that is their own act.

use std::time::Duration;

use mailroom_jobs::{Producer, PushError, RateScope};

use super::{
    List, ListStore, Optin, Source, SubscriptionStatus,
    model::parse_name,
    optin,
    store::{Row, SubscriptionChange, Upsert},
};
use crate::{
    domain::Locale,
    store::{Limit, RateLimiter, Suppressions},
};

/// A sign-up as the form or its JSON gave it, checked.
#[derive(Debug)]
pub struct Signup {
    row: Row,
    /// The hidden `website` field was filled: a bot.
    honeypot: bool,
}

impl Signup {
    /// Reads the form's fields through `field` (trimmed, empty as absent); the locale is the
    /// form's, else `accepted` (the browser's), when it is a tag.
    ///
    /// # Errors
    /// No address, an address mailroom cannot send to, or a name that is not one.
    pub fn read<'a>(
        field: impl Fn(&str) -> Option<&'a str>,
        accepted: Option<&str>,
    ) -> Result<Self, SignupError> {
        let email = field("email").ok_or(SignupError::NoEmail)?;
        let address =
            mailroom_jobs::address::parse(email).map_err(|e| SignupError::Address(e.message))?;
        let mut row = Row::new(&address);
        if let Some(name) = field("name") {
            row.name = Some(parse_name(name).map_err(SignupError::Name)?);
        }
        if let Some(locale) = field("locale").or(accepted) {
            row.locale = Locale::parse(locale).ok().map(|l| l.as_str().to_owned());
        }
        Ok(Self {
            row,
            honeypot: field("website").is_some(),
        })
    }

    /// The address, in its canonical form.
    pub fn email(&self) -> &str {
        &self.row.email
    }
}

/// Why a sign-up was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("an email address is required")]
    NoEmail,
    #[error("{0}")]
    Address(String),
    #[error("{0}")]
    Name(crate::lists::model::FieldError),
    /// Too many sign-ups `what` (from this client, for this address) this hour.
    #[error("too many sign-ups {what}")]
    RateLimited {
        what: &'static str,
        retry_after: Duration,
    },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The confirmation email could not be queued.
    #[error("{0}")]
    Push(#[from] PushError),
    /// The store answered a write with nothing (a bug).
    #[error("the upsert answered nothing")]
    NothingWritten,
}

impl SignupError {
    /// The form field at fault, when one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::NoEmail | Self::Address(_) | Self::Push(_) => Some("email"),
            Self::Name(_) => Some("name"),
            Self::RateLimited { .. } | Self::Redis(_) | Self::NothingWritten => None,
        }
    }
}

/// What a sign-up needs, built once.
#[derive(Debug, Clone)]
pub struct Signups {
    pub lists: ListStore,
    pub suppressions: Suppressions,
    pub limits: RateLimiter,
    pub producer: Producer,
    /// How long a confirmation link works, in seconds.
    pub optin_ttl: u64,
    /// Sign-ups per address and per client IP, per hour.
    pub per_address: u64,
    pub per_ip: u64,
}

impl Signups {
    /// Signs `signup` up to the public `list` for the client at `ip`.
    ///
    /// # Errors
    /// See [`SignupError`].
    pub async fn sign_up(
        &self,
        list: &List,
        signup: &Signup,
        ip: &str,
        request_id: Option<String>,
    ) -> Result<(), SignupError> {
        let row = &signup.row;
        if signup.honeypot {
            tracing::info!(list = %list.id, "subscribe form: honeypot filled; nothing stored");
            return Ok(());
        }
        let hour = Duration::from_secs(3600);
        for (scope, subject, limit, what) in [
            (RateScope::SubscribeIp, ip, self.per_ip, "from this address"),
            (
                RateScope::SubscribeAddress,
                row.key.as_str(),
                self.per_address,
                "for this email address",
            ),
        ] {
            if let Limit::Exceeded { retry_after } =
                self.limits.hit(scope, subject, limit, hour).await?
            {
                return Err(SignupError::RateLimited { what, retry_after });
            }
        }
        if self.suppressions.get(&row.email).await?.is_some() {
            return Ok(());
        }
        let status = match list.optin {
            Optin::Single => SubscriptionStatus::Confirmed,
            Optin::Double => SubscriptionStatus::Unconfirmed,
        };
        let how = Upsert {
            lists: vec![list.id],
            status,
            source: Source::Form,
            update: false,
        };
        let outcome = self
            .lists
            .upsert(std::slice::from_ref(row), &how)
            .await?
            .remove(0);
        let first = outcome.subscriptions.first();
        let again = first == Some(&SubscriptionChange::RefusedUnsubscribed);
        if again {
            // The subscriber was written just above: it is not missing.
            let _ = (self.lists)
                .set_subscription(outcome.id, list.id, status, Source::Form)
                .await?;
        }
        let added = again || first == Some(&SubscriptionChange::Added);
        let pending = matches!(
            self.lists.subscriptions(outcome.id, &[list.id]).await.as_deref(),
            Ok([s]) if s.status == SubscriptionStatus::Unconfirmed
        );
        if list.optin == Optin::Double && (added || pending) {
            self.send_optin(row, list, outcome.id, request_id).await?;
        }
        Ok(())
    }

    /// Queues the double opt-in email of `row`, subscriber `id`, for `list`.
    pub(super) async fn send_optin(
        &self,
        row: &Row,
        list: &List,
        id: crate::domain::SubscriberId,
        request_id: Option<String>,
    ) -> Result<(), PushError> {
        let locale = row.locale.as_deref();
        let (producer, ttl) = (&self.producer, self.optin_ttl);
        optin::send(producer, ttl, &row.email, locale, list, id, request_id).await
    }
}
