//! `POST /webhooks/mailgun`: Mailgun's webhooks (delivered, failed, opened, clicked,
//! complained, unsubscribed), one event a POST, its signature inside the body: HMAC-SHA256 of
//! the timestamp and a token with the webhook signing key, the timestamp within
//! `MAILROOM_WEBHOOK_TOLERANCE_SECS` of now, and the token never accepted twice.

use axum::{Json, extract::State};
use mailroom_jobs::EventSource;
use secrecy::ExposeSecret as _;

use super::{EventsAccepted, store, text};
use crate::events::providers::mailgun;
use crate::http::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::RawBody,
    request_id::RequestId,
};

/// The largest POST read: an event is a few kilobytes.
pub(in crate::http) const MAX_BYTES: usize = 256 * 1024;

/// Mailgun's webhooks.
#[utoipa::path(
    post,
    path = "/webhooks/mailgun",
    operation_id = "mailgun_events",
    tag = "webhooks",
    request_body(content = serde_json::Value, content_type = "application/json", description = "One Mailgun webhook POST (`signature` and `event-data`), exactly as Mailgun sent it"),
    responses(
        (status = 200, description = "Verified and stored", body = EventsAccepted),
        (status = 400, description = "Not a Mailgun webhook POST", body = ErrorBody),
        (status = 401, description = "Missing, invalid or stale signature, or a token already used", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; Mailgun retries", body = ErrorBody),
    ),
)]
pub(in crate::http) async fn receive(
    State(state): State<AppState>,
    request_id: RequestId,
    RawBody(body): RawBody,
) -> Result<Json<EventsAccepted>, ApiError> {
    let Some(hooks) = &state.webhooks.mailgun else {
        tracing::warn!("refused a Mailgun webhook POST: no MAILGUN_WEBHOOK_SIGNING_KEY is set");
        return Err(ApiError::webhook_unauthorized(
            "Mailgun's webhooks are not configured (MAILGUN_WEBHOOK_SIGNING_KEY)",
        ));
    };
    let body = text(&body, "mailgun")?;
    let post = mailgun::parse(&body).map_err(|reason| {
        tracing::warn!(%reason, "refused a Mailgun webhook POST");
        ApiError::bad_request(reason.to_string())
    })?;
    let tolerance = state.webhooks.tolerance_secs;
    (post.signature)
        .verify(
            hooks.key.expose_secret().as_bytes(),
            chrono::Utc::now().timestamp(),
            tolerance,
        )
        .map_err(|reason| {
            tracing::warn!(%reason, "refused a Mailgun webhook POST");
            ApiError::webhook_unauthorized(format!("signature check failed: {reason}"))
        })?;
    // Kept for both sides of the window: a timestamp may be that far ahead or behind.
    let keep = u64::try_from(2 * tolerance).unwrap_or(u64::MAX);
    let first = (hooks.tokens.first_use(&post.signature.token, keep).await)
        .map_err(|e| ApiError::store_failed(&e))?;
    if !first {
        tracing::warn!("refused a Mailgun webhook POST: its token was used before");
        return Err(ApiError::webhook_unauthorized(
            "signature check failed: the token was used before",
        ));
    }
    let stored = store(&state, EventSource::Mailgun, body, &request_id, 1).await;
    if stored.is_err() {
        // Not stored: Mailgun's retry carries the same token and must be taken.
        let _ = hooks.tokens.release(&post.signature.token).await;
    }
    stored
}
