//! `POST /webhooks/ses`: Amazon SES's events through an SNS topic's HTTPS subscription. Each
//! message's signature is checked against SNS's certificate and its topic against
//! `MAILROOM_SES_TOPIC_ARNS`; a subscription confirmation is answered; a notification is
//! stored for a worker.

use axum::{Json, extract::State};
use mailroom_jobs::EventSource;

use super::{EventsAccepted, store, text};
use crate::events::providers::{ses, sns};
use crate::http::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::RawBody,
    request_id::RequestId,
};

/// The largest POST read: SNS messages are at most 256 KB.
pub(in crate::http) const MAX_BYTES: usize = 512 * 1024;

/// Amazon SES's events, as SNS delivers them.
#[utoipa::path(
    post,
    path = "/webhooks/ses",
    operation_id = "ses_events",
    tag = "webhooks",
    request_body(description = "One SNS message (`Notification` carrying an SES event, `SubscriptionConfirmation` or `UnsubscribeConfirmation`), exactly as SNS sent it: JSON, which SNS labels text/plain; the body is read whatever its label", content((serde_json::Value = "application/json"), (String = "text/plain"))),
    responses(
        (status = 200, description = "Verified: stored, or the subscription confirmed", body = EventsAccepted),
        (status = 400, description = "Not an SNS message, or not an SES event", body = ErrorBody),
        (status = 401, description = "Not configured, a topic not named, a certificate not SNS's, or a signature that does not match", body = ErrorBody),
        (status = 503, description = "Redis or SNS is unavailable; SNS retries", body = ErrorBody),
    ),
)]
pub(in crate::http) async fn receive(
    State(state): State<AppState>,
    request_id: RequestId,
    RawBody(body): RawBody,
) -> Result<Json<EventsAccepted>, ApiError> {
    let Some(verifier) = &state.webhooks.ses else {
        tracing::warn!("refused an SNS POST: no MAILROOM_SES_TOPIC_ARNS is set");
        return Err(ApiError::webhook_unauthorized(
            "Amazon SES's events are not configured (MAILROOM_SES_TOPIC_ARNS)",
        ));
    };
    let body = text(&body, "ses")?;
    let envelope = sns::parse(&body).map_err(refusal)?;
    verifier.verify(&envelope).await.map_err(refusal)?;
    match envelope.kind.as_str() {
        "SubscriptionConfirmation" => {
            verifier.confirm(&envelope).await.map_err(refusal)?;
            tracing::info!(topic = %envelope.topic_arn, "confirmed the SNS subscription");
            Ok(Json(EventsAccepted { accepted: 0 }))
        }
        "UnsubscribeConfirmation" => {
            tracing::warn!(topic = %envelope.topic_arn, "SNS says the subscription was removed");
            Ok(Json(EventsAccepted { accepted: 0 }))
        }
        _ => {
            let event = ses::parse(&envelope.message).map_err(|reason| {
                tracing::warn!(%reason, "refused an SNS notification");
                ApiError::bad_request(reason.to_string())
            })?;
            let accepted = event.events(&envelope.message_id, chrono::Utc::now()).len();
            store(&state, EventSource::Ses, body, &request_id, accepted).await
        }
    }
}

/// The answer to an SNS message not taken.
fn refusal(error: sns::SnsError) -> ApiError {
    tracing::warn!(%error, "refused an SNS POST");
    match error {
        sns::SnsError::NotSns(_) | sns::SnsError::Kind(_) | sns::SnsError::Missing(..) => {
            ApiError::bad_request(error.to_string())
        }
        sns::SnsError::Unreachable(_) => ApiError::upstream_unavailable(error.to_string()),
        _ => ApiError::webhook_unauthorized(error.to_string()),
    }
}
