//! `POST /webhooks/sendgrid/events`: SendGrid's signed Event Webhook. Verified over the raw
//! bytes, stored verbatim as a job on the `events` queue, answered 200; a worker applies it.
//! SendGrid retries anything but a 2xx for 24 hours, so a storage failure answers 503.

use axum::{
    Json,
    extract::{Request, State},
    http::HeaderMap,
    middleware::Next,
    response::{IntoResponse, Response},
};
use mailroom_jobs::{PushError, SendgridEvents};
use serde::Serialize;
use utoipa::ToSchema;

use super::request_id::RequestId;
use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::RawBody,
};
use crate::events::{
    parse::is_event_array,
    signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER},
};

/// The answer to an accepted batch.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EventsAccepted {
    /// Events in the batch (processed by a worker, duplicates counted once).
    accepted: usize,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses, before a byte of the body is read, a POST that cannot be genuine: no key
/// configured (and unsigned POSTs not allowed), or signature headers missing, malformed or
/// stale. The signature itself is checked over the body in [`events`].
pub(super) async fn precheck(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != axum::http::Method::POST {
        // Only POST reads a body; the router answers anything else with 405.
        return next.run(request).await;
    }
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
    match refused {
        Some(reason) => {
            tracing::warn!(%reason, "refused an Event Webhook POST before reading it");
            ApiError::webhook_unauthorized(reason).into_response()
        }
        None => next.run(request).await,
    }
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
pub(super) async fn events(
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
    let text = std::str::from_utf8(&body).map_err(|_| {
        tracing::error!("refused an Event Webhook POST: the body is not UTF-8");
        ApiError::bad_request("the body is not UTF-8")
    })?;
    let accepted = is_event_array(&body).map_err(|reason| {
        tracing::error!(%reason, "refused an Event Webhook POST");
        ApiError::bad_request(reason.to_string())
    })?;
    let job = SendgridEvents {
        received_at: chrono::Utc::now(),
        body: text.to_owned(),
        request_id: request_id.for_job(),
    };
    state.producer.push(&job).await.map_err(|e| match e {
        PushError::Invalid { reason, .. } => ApiError::bad_request(reason),
        PushError::Serialize(e) => ApiError::bad_request(e.to_string()),
        PushError::Redis(e) => {
            tracing::error!("could not store an Event Webhook batch; SendGrid will retry");
            ApiError::store_failed(&e)
        }
    })?;
    Ok(Json(EventsAccepted { accepted }))
}
