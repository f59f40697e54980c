//! The send job's handler: compose, send through the provider, record the status.
//!
//! The provider classifies each failure; this handler only translates it for the queue: a
//! transient failure is an ordinary error (retried with backoff, or after the provider's
//! Retry-After), a permanent one an `AbortError` (dead-lettered at once). Nothing here retries.

use std::sync::Arc;

use apalis_core::{
    error::{AbortError, BoxDynError, RetryAfterError},
    task::data::Data,
};
use lettre::message::Mailbox;
use mailroom_jobs::SendEmail;

use crate::{
    providers::{OutgoingEmail, Provider, ProviderError},
    queue::JobRun,
    store::{MessageStatus, StatusStore},
};

/// What the send handler needs, built once per process.
#[derive(Debug)]
pub struct Mailer {
    /// The configured provider, with its connection pool.
    pub provider: Provider,
    /// Status records.
    pub status: StatusStore,
    /// `MAILROOM_FROM`.
    pub default_from: Mailbox,
}

/// Sends one email.
///
/// # Errors
/// A transient provider failure (retried by the queue) or a permanent one (`AbortError`).
#[tracing::instrument(skip_all, fields(message_id = %job.id, attempt = run.attempt))]
pub async fn send_email(
    job: SendEmail,
    run: Data<JobRun>,
    mailer: Data<Arc<Mailer>>,
) -> Result<(), BoxDynError> {
    let id = job.id.to_string();
    let status = &mailer.status;
    if let Some(record) = status.get(&id).await?
        && record.status == MessageStatus::Sent
    {
        // The provider already accepted this message: a lease was lost after sending.
        tracing::warn!("already sent; not sending again");
        return Ok(());
    }
    let provider = mailer.provider.name();
    status
        .update(
            &id,
            MessageStatus::Sending,
            run.attempt,
            &[("provider", provider)],
        )
        .await?;
    let outcome = match OutgoingEmail::compose(&job, &mailer.default_from) {
        Ok(email) => mailer.provider.send(&email).await,
        Err(error) => Err(ProviderError::permanent(error.to_string())),
    };
    match outcome {
        Ok(delivery) => {
            let provider_id = delivery.provider_message_id.unwrap_or_default();
            status
                .update(
                    &id,
                    MessageStatus::Sent,
                    run.attempt,
                    &[("provider_message_id", &provider_id)],
                )
                .await?;
            tracing::info!(provider, provider_message_id = %provider_id, "sent");
            Ok(())
        }
        Err(ProviderError::Permanent { message }) => {
            status
                .update(
                    &id,
                    MessageStatus::Dead,
                    run.attempt,
                    &[("last_error", &message)],
                )
                .await?;
            Err(AbortError::new(message).into())
        }
        Err(ProviderError::Transient {
            message,
            retry_after,
        }) => {
            let next = if run.is_last() {
                MessageStatus::Dead
            } else {
                MessageStatus::Retrying
            };
            status
                .update(&id, next, run.attempt, &[("last_error", &message)])
                .await?;
            Err(match retry_after {
                Some(delay) => RetryAfterError::new(message, delay).into(),
                None => message.into(),
            })
        }
    }
}
