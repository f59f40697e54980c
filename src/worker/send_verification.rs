//! The verification job's handler: draw a token, keep its digest, email the link.
//!
//! The token is drawn here, not at the API, so that it never sits in a queue payload: it
//! exists in clear only in this function and in the email itself.

use std::sync::Arc;

use apalis_core::{
    error::{AbortError, BoxDynError},
    task::data::Data,
};
use chrono::Utc;
use mailroom_jobs::{EmailMessage, Mailbox, SendEmail, SendVerification, TemplateRef};

use super::send_email::{Mailer, Sent, deliver};
use crate::verification::Token;

/// The least life a link must have left to be worth sending. `MAILROOM_VERIFY_TTL` starts at
/// 300 s, so at the shortest setting a request waiting up to four minutes in the queue is still
/// sent (the floor was once 60 s, which this rule made unsendable).
const MIN_LINK_LIFE_SECS: i64 = 60;

/// The minutes a reader is told the link has left: rounded to the nearest minute, since the
/// link was issued a moment before the email is written (a one-hour link reads "60 minutes",
/// not "59"), and at least one.
fn minutes_left(left: chrono::TimeDelta) -> u32 {
    let minutes = (left.num_milliseconds().max(0) + 30_000) / 60_000;
    u32::try_from(minutes.max(1)).unwrap_or(u32::MAX)
}

/// The whole days a reader is told an opt-in link has left, rounded to the nearest (at least 1).
fn days_left(left: chrono::TimeDelta) -> u32 {
    let days = (left.num_seconds().max(0) + 43_200) / 86_400;
    u32::try_from(days.max(1)).unwrap_or(u32::MAX)
}

/// Sends one verification email.
///
/// # Errors
/// A transient failure (Redis, the provider) is retried; a request whose link expired before
/// it could be sent is dead-lettered.
#[tracing::instrument(skip_all, fields(verification_id = %job.id, request_id = job.request_id.as_deref()))]
pub async fn send_verification(
    job: SendVerification,
    run: Data<crate::queue::JobRun>,
    mailer: Data<Arc<Mailer>>,
) -> Result<Sent, BoxDynError> {
    let left = job.expires_at - Utc::now();
    if left.num_seconds() < MIN_LINK_LIFE_SECS {
        return Err(AbortError::new("the link would expire before it arrives; ask again").into());
    }
    let token = Token::generate().map_err(|e| format!("no randomness from the OS: {e}"))?;
    let owner = mailer.verifications.requester(&run.id).await?;
    mailer
        .verifications
        .issue(&token, &job, owner.as_deref())
        .await?;
    let base = mailer.public_url.trim_end_matches('/');
    let template = match &job.optin_list {
        Some(list) => TemplateRef {
            name: "subscription_confirm".to_owned(),
            locale: job.locale,
            data: serde_json::json!({
                "list": list,
                "link": format!("{base}/subscribe/confirm?token={}", token.expose()),
                "expires_in_days": days_left(left),
            }),
        },
        None => TemplateRef {
            name: "verification".to_owned(),
            locale: job.locale,
            data: serde_json::json!({
                "link": format!("{base}/verify?token={}", token.expose()),
                "expires_in_minutes": minutes_left(left),
            }),
        },
    };
    let email = SendEmail {
        id: job.id.into(),
        message: EmailMessage {
            to: vec![Mailbox::new(job.email)],
            template: Some(template),
            ..EmailMessage::default()
        },
        request_id: job.request_id,
    };
    deliver(email, &mailer, run.attempt).await
}

#[cfg(test)]
mod tests {
    use super::minutes_left;
    use chrono::TimeDelta;

    #[test]
    fn the_minutes_left_round_as_a_reader_expects() {
        let ms = TimeDelta::milliseconds;
        assert_eq!(minutes_left(ms(3_600_000 - 40)), 60);
        assert_eq!(minutes_left(ms(3_600_000)), 60);
        assert_eq!(minutes_left(ms(3_600_000 - 4 * 60_000 - 5)), 56);
        assert_eq!(minutes_left(ms(89_000)), 1);
        assert_eq!(minutes_left(ms(91_000)), 2);
        assert_eq!(minutes_left(ms(10_000)), 1);
    }
}
