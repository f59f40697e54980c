//! Many recipients of one message in one call: what a campaign hands a provider.
//!
//! The message is written once, with numbered slots each recipient fills with their own values.
//! A provider that personalizes on its side (SendGrid) sends the slots as substitutions, many
//! recipients a request; the others fill one message per recipient and send a few at a time.
//! Either way every recipient gets an [`Answer`] of their own, in the order they were given.

use std::{collections::BTreeMap, time::Duration};

use futures::{StreamExt, future::BoxFuture};
use lettre::message::Mailbox;

use super::{Cause, Delivery, OutgoingEmail, ProviderError, bounce};
use crate::domain::MessageId;

/// Literal text or a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text as it is.
    Text(String),
    /// The recipient's value number `n`.
    Slot(usize),
}

/// A subject, text or HTML part with slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template(pub Vec<Piece>);

impl Template {
    /// The part for one recipient; slot `n` holds `values[n]` (empty when missing), HTML-escaped
    /// when `html`.
    pub fn fill(&self, html: bool, values: &[String]) -> String {
        let mut out = String::with_capacity(self.len_hint());
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Slot(n) => {
                    let value = values.get(*n).map_or("", String::as_str);
                    if html {
                        escape_into(&mut out, value);
                    } else {
                        out.push_str(value);
                    }
                }
            }
        }
        out
    }

    /// The part with each slot written as `tag(n)` (a provider's substitution tags).
    pub fn tagged(&self, tag: &dyn Fn(usize) -> String) -> String {
        let mut out = String::with_capacity(self.len_hint());
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Slot(n) => out.push_str(&tag(*n)),
            }
        }
        out
    }

    fn len_hint(&self) -> usize {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Slot(_) => 40,
            })
            .sum()
    }
}

/// `text` with HTML's special characters escaped, appended to `out`.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The parts of a batch's message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    pub subject: Template,
    pub text: Template,
    pub html: Option<Template>,
    /// How many slots the parts use (each recipient has this many values).
    pub slots: usize,
}

/// One message for many recipients.
#[derive(Debug)]
pub struct Batch<'a> {
    pub from: &'a Mailbox,
    pub reply_to: Option<&'a Mailbox>,
    pub body: &'a Body,
    pub categories: &'a [String],
    /// Metadata every copy carries (SendGrid's custom args, SMTP's `X-Mailroom-…` headers).
    pub metadata: Vec<(&'static str, String)>,
    /// The open and click tracking a provider that tracks applies.
    pub tracking: mailroom_jobs::Tracking,
    /// The provider's unsubscribe group (SendGrid's ASM), when the whole batch has one.
    pub unsubscribe_group: Option<u32>,
    pub recipients: Vec<BatchRecipient<'a>>,
}

/// A recipient's address and name as their list holds them: checked when the list stored them,
/// so a provider that takes text (SendGrid) sends them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressee<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
}

impl Addressee<'_> {
    /// The mailbox, for a provider that writes the message itself.
    ///
    /// # Errors
    /// When the address does not parse.
    pub fn mailbox(&self) -> Result<Mailbox, lettre::address::AddressError> {
        Ok(Mailbox::new(
            self.name.map(str::to_owned),
            self.email.parse()?,
        ))
    }
}

/// One recipient of a [`Batch`].
#[derive(Debug, Clone)]
pub struct BatchRecipient<'a> {
    pub to: Addressee<'a>,
    /// The values of the body's slots, in slot order.
    pub values: &'a [String],
    /// Headers of this recipient's copy (headers every recipient has alike may be sent once).
    pub headers: Vec<(&'static str, String)>,
    /// Metadata of this recipient's copy.
    pub metadata: Vec<(&'static str, String)>,
    /// Who the bounces of this copy belong to.
    pub bounce_owner: bounce::Owner,
}

/// What a provider said about one recipient of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Taken.
    Sent(Delivery),
    /// Refused: sending it again will not help.
    Refused {
        reason: String,
        /// The receiving side refused the recipient (an SMTP 5xx): a bounce to record.
        bounce: Option<Box<bounce::Bounce>>,
        /// The provider refuses the account, not this recipient: another provider may take it.
        account: bool,
    },
    /// Not taken (a 429, a 5xx, a refused connection): nobody got it, try again later.
    NotSent {
        reason: String,
        retry_after: Option<Duration>,
        /// Whose side it is on.
        cause: Cause,
    },
    /// Maybe taken, maybe not (a timeout after the request was written).
    Unknown { reason: String },
}

impl Answer {
    /// The provider failed, not the recipient: a route tries its next provider for them.
    pub fn provider_failed(&self) -> bool {
        matches!(
            self,
            Answer::Refused { account: true, .. }
                | Answer::NotSent {
                    cause: Cause::Outage,
                    ..
                }
        )
    }

    /// The provider's rate was spent.
    pub fn throttled(&self) -> bool {
        matches!(
            self,
            Answer::NotSent {
                cause: Cause::Throttled,
                ..
            }
        )
    }

    /// How the console's send chart counts it.
    pub fn outcome(&self) -> crate::store::activity::Outcome {
        use crate::store::activity::Outcome;
        match self {
            Answer::Sent(_) => Outcome::Sent,
            Answer::Refused { .. } => Outcome::Refused,
            Answer::NotSent { .. } | Answer::Unknown { .. } => Outcome::Deferred,
        }
    }
}

/// Who asked for a slower pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowDown {
    /// The provider: its whole account is over its rate (a 429).
    Provider,
    /// The recipient's domain (an SMTP 421 or a 4.7.x status).
    Domain,
}

impl From<Result<Delivery, ProviderError>> for Answer {
    fn from(result: Result<Delivery, ProviderError>) -> Self {
        match result {
            Ok(delivery) => Self::Sent(delivery),
            Err(ProviderError::Permanent {
                message,
                bounce,
                account,
            }) => Self::Refused {
                reason: message,
                bounce,
                account,
            },
            Err(ProviderError::Transient {
                message,
                cause: Cause::Unanswered,
                ..
            }) => Self::Unknown { reason: message },
            Err(ProviderError::Transient {
                message,
                retry_after,
                cause,
            }) => Self::NotSent {
                reason: message,
                retry_after,
                cause,
            },
        }
    }
}

impl From<Answer> for Result<Delivery, ProviderError> {
    fn from(answer: Answer) -> Self {
        match answer {
            Answer::Sent(delivery) => Ok(delivery),
            Answer::Refused {
                reason,
                bounce,
                account,
            } => Err(ProviderError::Permanent {
                message: reason,
                bounce,
                account,
            }),
            Answer::NotSent {
                reason,
                retry_after,
                cause,
            } => Err(ProviderError::Transient {
                message: reason,
                retry_after,
                cause,
            }),
            Answer::Unknown { reason } => Err(ProviderError::unanswered(reason)),
        }
    }
}

/// What the caller adds when a provider sends a batch one message at a time.
pub trait PerMessage: Sync {
    /// How many messages go at once.
    fn parallel(&self) -> usize;

    /// Recipient `n`'s HTML once its slots are filled (mailroom's own open and click tracking).
    fn finish_html(&self, n: usize, html: String) -> String;

    /// Runs `send` within whatever limit on connections to `domain` the caller keeps.
    fn connect<'a>(
        &'a self,
        domain: &'a str,
        send: BoxFuture<'a, Result<Delivery, ProviderError>>,
    ) -> BoxFuture<'a, Result<Delivery, ProviderError>>;
}

/// The message of recipient `n` of `batch`, filled; refused when their address does not parse.
pub(super) fn message_for(
    batch: &Batch<'_>,
    n: usize,
    each: &dyn PerMessage,
) -> Result<OutgoingEmail, Answer> {
    let recipient = &batch.recipients[n];
    let to = recipient.to.mailbox().map_err(|e| Answer::Refused {
        reason: format!("the address: {e}"),
        bounce: None,
        account: false,
    })?;
    let values = recipient.values;
    let metadata = batch
        .metadata
        .iter()
        .chain(&recipient.metadata)
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Ok(OutgoingEmail {
        id: MessageId::fresh(),
        from: batch.from.clone(),
        to: vec![to],
        cc: Vec::new(),
        bcc: Vec::new(),
        reply_to: batch.reply_to.cloned(),
        subject: batch.body.subject.fill(false, values),
        text: batch.body.text.fill(false, values),
        html: (batch.body.html.as_ref()).map(|h| each.finish_html(n, h.fill(true, values))),
        headers: (recipient.headers.iter())
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        categories: batch.categories.to_vec(),
        metadata,
        attachments: Vec::new(),
        secret_links: false,
        unsubscribe_group: batch.unsubscribe_group,
        bounce_owner: recipient.bounce_owner.clone(),
        // Whatever tracking was asked for is in the HTML already (`finish_html`).
        tracking: mailroom_jobs::Tracking::default(),
    })
}

/// Sends `batch` one message per recipient through `send`, `each.parallel()` at a time; through
/// `each.connect` when `gated`.
pub(super) async fn one_by_one<'a, F>(
    batch: &'a Batch<'a>,
    each: &'a dyn PerMessage,
    gated: bool,
    send: F,
) -> Vec<Answer>
where
    F: Fn(OutgoingEmail) -> BoxFuture<'a, Result<Delivery, ProviderError>> + 'a,
{
    let send = &send;
    let mut answers: Vec<(usize, Answer)> = futures::stream::iter(0..batch.recipients.len())
        .map(|n| async move {
            let email = match message_for(batch, n, each) {
                Ok(email) => email,
                Err(refused) => return (n, refused),
            };
            let sent = if gated {
                let domain = email
                    .to
                    .first()
                    .map(|m| m.email.domain().to_ascii_lowercase())
                    .unwrap_or_default();
                each.connect(&domain, send(email)).await
            } else {
                send(email).await
            };
            (n, Answer::from(sent))
        })
        .buffer_unordered(each.parallel().max(1))
        .collect()
        .await;
    answers.sort_unstable_by_key(|(n, _)| *n);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_filled_escaped_only_in_html_and_tagged() {
        let part = Template(vec![
            Piece::Text("Hi ".into()),
            Piece::Slot(0),
            Piece::Text(", ".into()),
            Piece::Slot(1),
        ]);
        let values = ["A&B <x>".to_owned(), "pro".to_owned()];
        assert_eq!(part.fill(false, &values), "Hi A&B <x>, pro");
        assert_eq!(part.fill(true, &values), "Hi A&amp;B &lt;x&gt;, pro");
        assert_eq!(part.fill(false, &values[..1]), "Hi A&B <x>, ");
        assert_eq!(part.tagged(&|n| format!("-t{n}-")), "Hi -t0-, -t1-");
    }

    #[test]
    fn a_provider_error_becomes_the_answer_that_says_the_same() {
        let slow = ProviderError::Transient {
            message: "421 slow down".into(),
            retry_after: None,
            cause: Cause::Recipient { slow_down: true },
        };
        let answer = Answer::from(Err(slow.clone()));
        assert!(!answer.provider_failed());
        assert_eq!(Result::from(answer), Err::<Delivery, _>(slow));
        assert!(matches!(
            Answer::from(Err(ProviderError::unanswered("timed out"))),
            Answer::Unknown { .. }
        ));
        assert!(Answer::from(Err(ProviderError::outage("503"))).provider_failed());
        assert!(matches!(
            Answer::from(Err(ProviderError::permanent("550 no such user"))),
            Answer::Refused { bounce: None, .. }
        ));
        assert_eq!(
            Answer::from(Ok(Delivery::default())),
            Answer::Sent(Delivery::default())
        );
    }
}
