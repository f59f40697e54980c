//! `POST /webhooks/sendgrid/events`: SendGrid's signed Event Webhook. Verified over the raw
//! bytes, stored verbatim as a job on the `events` queue, answered 200; a worker applies it.
//! SendGrid retries anything but a 2xx for 24 hours, so a storage failure answers 503.

use axum::{
    Json,
    extract::{Request, State},
    http::HeaderMap,
    middleware::Next,
    response::Response,
};
use mailroom_jobs::EventSource;

use super::{EventsAccepted, admit, store, text};
use crate::events::{
    parse::is_event_array,
    signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER},
};
use crate::http::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::RawBody,
    request_id::RequestId,
};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses, before a byte of the body is read, a POST that cannot be genuine: no key
/// configured (and unsigned POSTs not allowed), or signature headers missing, malformed or
/// stale. The signature itself is checked over the body in [`events`].
pub(in crate::http) async fn precheck(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let refused = match &state.webhooks.key {
        Some(_) => signature::precheck(
            header(request.headers(), SIGNATURE_HEADER),
            header(request.headers(), TIMESTAMP_HEADER),
            chrono::Utc::now().timestamp(),
            state.webhooks.tolerance_secs,
        )
        .err()
        .map(|reason| format!("signature check failed: {reason}")),
        None if state.webhooks.insecure_unsigned => None,
        None => {
            Some("event webhooks are not configured (MAILROOM_SENDGRID_WEBHOOK_KEY)".to_owned())
        }
    };
    admit(refused, "sendgrid", request, next).await
}

/// SendGrid's Event Webhook.
#[utoipa::path(
    post,
    path = "/webhooks/sendgrid/events",
    tag = "webhooks",
    request_body(content = Vec<serde_json::Value>, content_type = "application/json", description = "A JSON array of events, exactly as SendGrid signed it. Entries that are not events are skipped with a warning (SendGrid may add kinds), never refused"),
    responses(
        (status = 200, description = "Verified and stored", body = EventsAccepted),
        (status = 400, description = "Not a JSON array", body = ErrorBody),
        (status = 401, description = "Missing, invalid or stale signature", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; SendGrid retries", body = ErrorBody),
    ),
)]
pub(in crate::http) async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    request_id: RequestId,
    RawBody(body): RawBody,
) -> Result<Json<EventsAccepted>, ApiError> {
    match &state.webhooks.key {
        Some(key) => {
            let now = chrono::Utc::now().timestamp();
            signature::verify(
                key,
                header(&headers, SIGNATURE_HEADER),
                header(&headers, TIMESTAMP_HEADER),
                &body,
                now,
                state.webhooks.tolerance_secs,
            )
            .map_err(|reason| {
                tracing::warn!(%reason, "refused an Event Webhook POST");
                ApiError::webhook_unauthorized(format!("signature check failed: {reason}"))
            })?;
        }
        None if state.webhooks.insecure_unsigned => {}
        None => {
            tracing::warn!(
                "refused an Event Webhook POST: no MAILROOM_SENDGRID_WEBHOOK_KEY is set"
            );
            return Err(ApiError::webhook_unauthorized(
                "event webhooks are not configured (MAILROOM_SENDGRID_WEBHOOK_KEY)",
            ));
        }
    }
    let accepted = is_event_array(&body).map_err(|reason| {
        tracing::error!(%reason, "refused an Event Webhook POST");
        ApiError::bad_request(reason.to_string())
    })?;
    store(
        &state,
        EventSource::Sendgrid,
        text(&body, "sendgrid")?,
        &request_id,
        accepted,
    )
    .await
}
