//! Where email goes out: SendGrid's, Postmark's, Mailgun's or Amazon SES's API, any SMTP relay, or
//! `.eml` files in an outbox folder. Each [`Provider`] a route names ([`route`]) is built once
//! per process.
//!
//! Every provider answers the same way: [`Delivery`] when the message was accepted, or a
//! [`ProviderError`] that says whether trying again could help. The providers never retry
//! themselves; the queue does, so attempts never multiply.

pub mod batch;
pub mod bounce;
pub mod dkim;
mod http;
mod mailgun;
mod message;
mod outbox;
mod postmark;
pub mod route;
mod sendgrid;
mod ses;
mod smtp;

use std::time::Duration;

pub use batch::{Addressee, Answer, Batch, BatchRecipient, Body, PerMessage, SlowDown};
pub use mailgun::Mailgun;
pub use message::{ComposeError, OutgoingEmail, Wire, text_from_html};
pub use outbox::Outbox;
pub use postmark::Postmark;
pub use route::{Route, Routes, Try};
pub use sendgrid::SendGrid;
pub use ses::Ses;
pub use smtp::Smtp;

use crate::config::{ProviderKind, Settings};

/// What a provider said when it accepted a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's id for it (SendGrid's `X-Message-Id`, the SMTP queue id, the file name).
    pub provider_message_id: Option<String>,
}

/// Why a provider did not accept a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Trying again later may work: rate limits, server errors, timeouts, lost connections.
    #[error("{message}")]
    Transient {
        /// What happened, with the provider's own words where it gave any.
        message: String,
        /// How long the provider asked us to wait, when it did.
        retry_after: Option<Duration>,
        /// Whose side it is on, which decides whether another provider is tried.
        cause: Cause,
    },
    /// Trying again will not help: the request itself was refused.
    #[error("{message}")]
    Permanent {
        /// What happened, with the provider's own words where it gave any.
        message: String,
        /// The receiving side refused the message's one recipient (an SMTP 5xx to RCPT or
        /// DATA): a bounce to record, not a failure to dead-letter.
        bounce: Option<Box<bounce::Bounce>>,
        /// The provider refuses the account, not the message (a bad or revoked key, a
        /// suspended account): another provider may take it.
        account: bool,
    },
}

/// Why a provider did not take a message for now; it decides whether a route tries its next
/// provider ([`route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The provider is unreachable or failing (no connection, a 5xx, its outage answers).
    Outage,
    /// The provider's rate is spent (a 429, throttling): it is slowed, not failed.
    Throttled,
    /// The receiving side deferred it (an SMTP 4xx); `slow_down` when it asked for a slower
    /// pace (a 421 or a 4.7.x status), and a campaign backs off the recipient's domain.
    /// Another provider would be deferred alike.
    Recipient { slow_down: bool },
    /// The request went out and no answer came: the provider may have taken it.
    Unanswered,
}

impl Cause {
    /// Who asked for a slower pace, if anyone.
    pub fn slow_down(self) -> Option<SlowDown> {
        match self {
            Cause::Throttled => Some(SlowDown::Provider),
            Cause::Recipient { slow_down: true } => Some(SlowDown::Domain),
            _ => None,
        }
    }
}

impl ProviderError {
    /// The provider cannot take mail now: unreachable, or failing.
    pub(crate) fn outage(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
            cause: Cause::Outage,
        }
    }

    /// Held back on mailroom's side or the recipient's (a domain's connections all in use): not
    /// the provider's doing.
    pub(crate) fn deferred(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
            cause: Cause::Recipient { slow_down: false },
        }
    }

    /// No answer came after the request went out.
    pub(crate) fn unanswered(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
            cause: Cause::Unanswered,
        }
    }

    /// The message is refused: no provider would take it as it is.
    pub(crate) fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
            bounce: None,
            account: false,
        }
    }

    /// How the console's send chart counts a provider's answer.
    pub fn outcome<T>(result: &Result<T, Self>) -> crate::store::activity::Outcome {
        use crate::store::activity::Outcome;
        match result {
            Ok(_) => Outcome::Sent,
            Err(Self::Transient { .. }) => Outcome::Deferred,
            Err(Self::Permanent { .. }) => Outcome::Refused,
        }
    }
}

/// The configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// SendGrid's v3 Mail Send API.
    SendGrid(SendGrid),
    /// Postmark's email API.
    Postmark(Postmark),
    /// Mailgun's messages API.
    Mailgun(Mailgun),
    /// Amazon SES's API v2.
    Ses(Ses),
    /// An SMTP relay.
    Smtp(Smtp),
    /// `.eml` files in a folder, for development.
    Outbox(Outbox),
}

impl Provider {
    /// Builds provider `kind` from its settings, with its connection pool.
    ///
    /// # Errors
    /// When the provider's settings are missing or malformed (a SendGrid key, an SMTP URL).
    pub fn of_kind(kind: ProviderKind, settings: &Settings) -> anyhow::Result<Self> {
        Ok(match kind {
            ProviderKind::Sendgrid => Provider::SendGrid(SendGrid::from_settings(settings)?),
            ProviderKind::Postmark => Provider::Postmark(Postmark::from_settings(settings)?),
            ProviderKind::Mailgun => Provider::Mailgun(Mailgun::from_settings(settings)?),
            ProviderKind::Ses => Provider::Ses(Ses::from_settings(settings)?),
            ProviderKind::Smtp => Provider::Smtp(Smtp::from_settings(settings)?),
            ProviderKind::Outbox => Provider::Outbox(
                Outbox::new(settings.outbox_dir.clone()).with_wire(Wire::from_settings(settings)?),
            ),
        })
    }

    /// The provider's name, for logs and status records.
    pub fn name(&self) -> &'static str {
        Self::name_of(match self {
            Provider::SendGrid(_) => ProviderKind::Sendgrid,
            Provider::Postmark(_) => ProviderKind::Postmark,
            Provider::Mailgun(_) => ProviderKind::Mailgun,
            Provider::Ses(_) => ProviderKind::Ses,
            Provider::Smtp(_) => ProviderKind::Smtp,
            Provider::Outbox(_) => ProviderKind::Outbox,
        })
    }

    /// The name of providers of `kind`.
    pub fn name_of(kind: ProviderKind) -> &'static str {
        match kind {
            ProviderKind::Sendgrid => "sendgrid",
            ProviderKind::Postmark => "postmark",
            ProviderKind::Mailgun => "mailgun",
            ProviderKind::Ses => "ses",
            ProviderKind::Smtp => "smtp",
            ProviderKind::Outbox => "outbox",
        }
    }

    /// Hands `email` to the provider.
    ///
    /// # Errors
    /// See [`ProviderError`].
    pub async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, ProviderError> {
        match self {
            Provider::SendGrid(sendgrid) => sendgrid.send(email).await,
            Provider::Postmark(postmark) => postmark.send(email).await,
            Provider::Mailgun(mailgun) => mailgun.send(email).await,
            Provider::Ses(ses) => ses.send(email).await,
            Provider::Smtp(smtp) => smtp.send(email).await,
            Provider::Outbox(outbox) => outbox.send(email).await,
        }
    }

    /// The most recipients a campaign hands over in one [`Provider::send_batch`]: a request's
    /// worth for SendGrid; for the others a hundred messages, so a pause takes effect between
    /// them.
    pub fn batch_limit(&self) -> usize {
        match self {
            Provider::SendGrid(_) => sendgrid::MAX_PERSONALIZATIONS,
            Provider::Postmark(_) => postmark::MAX_BATCH,
            Provider::Mailgun(_) => mailgun::MAX_BATCH,
            Provider::Ses(_) | Provider::Smtp(_) | Provider::Outbox(_) => 100,
        }
    }

    /// Sends one message to every recipient of `batch` and answers for each, in order. SendGrid
    /// personalizes on its side; SES, SMTP and the outbox send one message each, through `each`
    /// (SMTP within the caller's connection limits).
    pub async fn send_batch(&self, batch: &Batch<'_>, each: &dyn PerMessage) -> Vec<Answer> {
        match self {
            Provider::SendGrid(sendgrid) => sendgrid.send_batch(batch).await,
            Provider::Postmark(postmark) => postmark.send_batch(batch, each).await,
            Provider::Mailgun(mailgun) => mailgun.send_batch(batch).await,
            Provider::Ses(ses) => {
                batch::one_by_one(batch, each, false, |email| {
                    Box::pin(async move { ses.send(&email).await })
                })
                .await
            }
            Provider::Smtp(smtp) => {
                batch::one_by_one(batch, each, true, |email| {
                    Box::pin(async move { smtp.send(&email).await })
                })
                .await
            }
            Provider::Outbox(outbox) => {
                batch::one_by_one(batch, each, false, |email| {
                    Box::pin(async move { outbox.send(&email).await })
                })
                .await
            }
        }
    }
}
