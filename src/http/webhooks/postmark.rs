//! `POST /webhooks/postmark`: Postmark's webhooks (Delivery, Bounce, SpamComplaint, Open,
//! Click, SubscriptionChange), one record a POST. Postmark signs nothing: its webhook URL
//! carries basic-auth credentials, checked before the body is read.

use axum::{
    Json,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use mailroom_jobs::EventSource;

use super::{EventsAccepted, admit, basic_auth_is, store, text};
use crate::events::providers::postmark;
use crate::http::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::RawBody,
    request_id::RequestId,
};

/// The largest POST read: a bounce record carries the bounce's first part in `Content`.
pub(in crate::http) const MAX_BYTES: usize = 1024 * 1024;

/// Refuses a POST without the configured credentials before its body is read.
pub(in crate::http) async fn require_credentials(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let refused = match &state.webhooks.postmark {
        Some(credentials) if basic_auth_is(request.headers(), credentials) => None,
        Some(_) => Some("wrong or missing basic-auth credentials"),
        None => Some(
            "Postmark's webhooks are not configured \
             (MAILROOM_POSTMARK_WEBHOOK_USER and MAILROOM_POSTMARK_WEBHOOK_PASSWORD)",
        ),
    };
    admit(refused.map(str::to_owned), "postmark", request, next).await
}

/// Postmark's webhooks.
#[utoipa::path(
    post,
    path = "/webhooks/postmark",
    operation_id = "postmark_events",
    tag = "webhooks",
    security(("postmark_basic" = [])),
    request_body(content = serde_json::Value, content_type = "application/json", description = "One Postmark webhook record (`RecordType` Delivery, Bounce, SpamComplaint, Open, Click or SubscriptionChange), exactly as Postmark sent it"),
    responses(
        (status = 200, description = "Stored", body = EventsAccepted),
        (status = 400, description = "Not a Postmark record", body = ErrorBody),
        (status = 401, description = "Wrong or missing credentials", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; Postmark retries", body = ErrorBody),
    ),
)]
pub(in crate::http) async fn receive(
    State(state): State<AppState>,
    request_id: RequestId,
    RawBody(body): RawBody,
) -> Result<Json<EventsAccepted>, ApiError> {
    let body = text(&body, "postmark")?;
    postmark::parse(&body, chrono::Utc::now()).map_err(|reason| {
        tracing::warn!(%reason, "refused a Postmark webhook POST");
        ApiError::bad_request(reason.to_string())
    })?;
    store(&state, EventSource::Postmark, body, &request_id, 1).await
}
