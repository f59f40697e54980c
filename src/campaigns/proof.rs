//! Proofs: a campaign's copy sent to a few addresses before the campaign, marked `[Test]`.
//!
//! Each proof is filled as its reader would get it: a subscriber's own name, language and
//! attributes when the address is one, the address alone otherwise. Its unsubscribe link is a
//! sample that acts on nobody.

use mailroom_jobs::{EmailMessage, Mailbox};

use super::{
    check::probe_message,
    copy::{Field, render_copy},
    model::{Campaign, Content, RawContent},
};
use crate::{lists::ListStore, render::Renderer};

/// The most addresses one proof goes to.
pub const MAX_PROOF_RECIPIENTS: usize = 10;

/// Why proofs could not be made; `field` names what was wrong (`to[1]`).
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The proof messages of `campaign` for the addresses `to`, one each.
///
/// # Errors
/// See [`ProofError`].
pub async fn proofs(
    campaign: &Campaign,
    to: &[String],
    lists: &ListStore,
    renderer: &Renderer,
    public_url: &str,
) -> Result<Vec<EmailMessage>, ProofError> {
    let invalid = |field: String, message: String| ProofError::Invalid { field, message };
    if to.is_empty() || to.len() > MAX_PROOF_RECIPIENTS {
        let message = format!("a test goes to 1 to {MAX_PROOF_RECIPIENTS} addresses");
        return Err(invalid("to".to_owned(), message));
    }
    let mut messages = Vec::with_capacity(to.len());
    for (i, address) in to.iter().enumerate() {
        mailroom_jobs::email::check_address(address)
            .map_err(|e| invalid(format!("to[{i}]"), e.0))?;
        let subscriber = match lists
            .find(&mailroom_jobs::address::case_key(address))
            .await?
        {
            Some(found) => lists.subscriber(found).await?,
            None => None,
        };
        let locale = subscriber.as_ref().and_then(|s| s.locale.clone());
        let locale = renderer.negotiate(locale.as_deref());
        let copy = render_copy(renderer, public_url, &campaign.spec.content, &locale)
            .map_err(|e| invalid("template".to_owned(), e.to_string()))?;
        let sample = format!("{}/u/test", public_url.trim_end_matches('/'));
        let filled = copy.fill(&|field: &Field| match field {
            Field::Name => (subscriber.as_ref())
                .and_then(|s| s.name.clone())
                .unwrap_or_default(),
            Field::Email => address.clone(),
            Field::UnsubscribeUrl => sample.clone(),
            Field::UnsubscribeToken => "test".to_owned(),
            Field::Attribute(name) => (subscriber.as_ref())
                .and_then(|s| s.attributes.get(name))
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default(),
        });
        let mut message = probe_message(&Content::Raw(RawContent {
            subject: format!("[Test] {}", filled.subject),
            html: filled.html,
            text: Some(filled.text),
        }));
        message.to = vec![Mailbox::new(address.as_str())];
        message.from = campaign.spec.from.clone();
        message.reply_to = campaign.spec.reply_to.clone();
        message.categories = campaign.spec.categories.clone();
        (message.metadata).insert("mailroom_campaign_test".to_owned(), campaign.id.to_string());
        message.check().map_err(|e| invalid(e.field, e.message))?;
        messages.push(message);
    }
    Ok(messages)
}
