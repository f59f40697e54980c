//! `POST /webhooks/sendgrid/inbound` (HTTP basic auth) and
//! `POST /webhooks/sendgrid/inbound/{secret}` (a secret path segment): SendGrid's Inbound
//! Parse. Answered 2xx only once the message is stored (SendGrid retries a 5xx for three days
//! and may drop a 4xx): a malformed POST gets 400 and an error log line, a storage failure 503.
//! `GET /v1/inbound`, `/v1/inbound/{id}` and `/v1/inbound/{id}/attachments/{n}` read it back.

use axum::{
    Json,
    body::Bytes,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{ApiPath, ApiQuery, RawBody},
};
use crate::inbound::{
    InboundEmail, InboundStore, parse,
    store::{InboundPage, StoredAs},
};

/// The largest POST read: SendGrid's 30 MB message limit plus the form's overhead.
pub(super) const MAX_INBOUND_BYTES: usize = 32 * 1024 * 1024;

/// How inbound POSTs are accepted and where they go.
#[derive(Debug, Clone)]
pub struct InboundSettings {
    pub store: InboundStore,
    /// Basic-auth user and password.
    pub credentials: Option<(String, SecretString)>,
    /// The secret path segment.
    pub secret: Option<SecretString>,
    /// Accept POSTs without either (`mailroom dev` with nothing configured).
    pub open: bool,
    /// Attachments over this many bytes are described but not kept.
    pub max_attachment: usize,
}

impl InboundSettings {
    fn allows(&self, headers: &HeaderMap, path_secret: Option<&str>) -> bool {
        if let (Some(given), Some(secret)) = (path_secret, &self.secret) {
            return super::webhooks::same(given.as_bytes(), secret.expose_secret().as_bytes());
        }
        if path_secret.is_some() {
            return false;
        }
        if let Some(credentials) = &self.credentials {
            return super::webhooks::basic_auth_is(headers, credentials);
        }
        self.open && self.secret.is_none()
    }
}

/// The answer to a stored message.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct InboundAccepted {
    id: String,
}

/// Where the secret path segment begins.
const SECRET_PATH: &str = "/webhooks/sendgrid/inbound/";

/// Refuses a POST without the right credentials before a byte of its body is read: Inbound
/// Parse bodies reach 32 MB, and an unauthenticated sender must not make the API buffer them.
pub(super) async fn require_credentials(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != axum::http::Method::POST {
        // Only POST reads a body; the router answers anything else with 405.
        return next.run(request).await;
    }
    let secret = request
        .uri()
        .path()
        .strip_prefix(SECRET_PATH)
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy());
    if state.inbound.allows(request.headers(), secret.as_deref()) {
        next.run(request).await
    } else {
        tracing::warn!("refused an Inbound Parse POST: wrong or missing credentials");
        ApiError::webhook_unauthorized(
            "inbound parse needs the configured basic-auth credentials or secret path",
        )
        .into_response()
    }
}

/// Parses and stores a POST whose credentials [`require_credentials`] accepted.
async fn receive(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Json<InboundAccepted>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let parsed = parse::parse(
        content_type,
        body,
        chrono::Utc::now(),
        state.inbound.max_attachment,
    )
    .await
    .map_err(|reason| {
        tracing::error!(%reason, "refused a malformed Inbound Parse POST");
        ApiError::bad_request(reason.to_string())
    })?;
    let kept = state.inbound.store.store(&parsed).await.map_err(|e| {
        tracing::error!("could not store an inbound message; SendGrid will retry");
        ApiError::store_failed(&e)
    })?;
    if kept == StoredAs::Described {
        tracing::warn!(
            id = %parsed.email.id,
            "inbound budget (MAILROOM_INBOUND_MAX_BYTES) spent: message stored without its attachments, bodies cut"
        );
    }
    tracing::info!(id = %parsed.email.id, attachments = parsed.email.attachments.len(), "inbound message stored");
    record_report(state, &parsed).await?;
    Ok(Json(InboundAccepted {
        id: parsed.email.id,
    }))
}

/// A delivery or complaint report among the inbound mail (raw mode) becomes `bounce` or
/// `spam_report` events about the message it names ([`crate::bounces::reports`]). A Redis
/// failure answers 503 so SendGrid posts again; dedupe counts the report once.
async fn record_report(state: &AppState, parsed: &parse::Parsed) -> Result<(), ApiError> {
    let Some(raw) = &parsed.raw else {
        return Ok(());
    };
    let is_report = parsed.email.headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("content-type")
            && value.to_ascii_lowercase().contains("multipart/report")
    });
    if !is_report {
        return Ok(());
    }
    let to = parsed
        .email
        .envelope
        .as_ref()
        .map(|e| e.to.clone())
        .unwrap_or_default();
    let Some(read) = crate::bounces::reports::read(raw, &to) else {
        return Ok(());
    };
    let mut events = read.events(None);
    // A report names the message (VERP); its key, for the key's stats, is on the job's record.
    if let Some(crate::providers::bounce::Owner::Message(id)) = read.owner {
        let key = state.status.owner(id).await?;
        for event in &mut events {
            event.mailroom_key.clone_from(&key);
        }
    }
    if events.is_empty() {
        tracing::info!(id = %parsed.email.id, owner = ?read.owner, "a report about nothing mailroom can act on");
        return Ok(());
    }
    state
        .events
        .apply(&events, chrono::Utc::now())
        .await
        .map_err(|e| ApiError::store_failed(&e))?;
    tracing::info!(id = %parsed.email.id, events = events.len(), "a delivery or complaint report recorded");
    Ok(())
}

/// SendGrid's Inbound Parse, behind HTTP basic auth.
#[utoipa::path(
    operation_id = "inbound_parse",
    post,
    path = "/webhooks/sendgrid/inbound",
    tag = "webhooks",
    request_body(content = String, content_type = "multipart/form-data", description = "SendGrid's Inbound Parse form, parsed or raw mode"),
    responses(
        (status = 200, description = "Stored", body = InboundAccepted),
        (status = 400, description = "Not a form SendGrid sends", body = ErrorBody),
        (status = 401, description = "Wrong or missing credentials", body = ErrorBody),
        (status = 413, description = "Over the 32 MB limit", body = ErrorBody),
        (status = 503, description = "Storage failed; SendGrid retries", body = ErrorBody),
    ),
)]
pub(super) async fn receive_basic(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<InboundAccepted>, ApiError> {
    receive(&state, &headers, body).await
}

/// SendGrid's Inbound Parse, behind a secret path segment.
#[utoipa::path(
    operation_id = "inbound_parse_secret_path",
    post,
    path = "/webhooks/sendgrid/inbound/{secret}",
    tag = "webhooks",
    params(("secret" = String, Path, description = "MAILROOM_INBOUND_SECRET")),
    request_body(content = String, content_type = "multipart/form-data", description = "SendGrid's Inbound Parse form, parsed or raw mode"),
    responses(
        (status = 200, description = "Stored", body = InboundAccepted),
        (status = 400, description = "Not a form SendGrid sends", body = ErrorBody),
        (status = 401, description = "Wrong secret", body = ErrorBody),
        (status = 413, description = "Over the 32 MB limit", body = ErrorBody),
        (status = 503, description = "Storage failed; SendGrid retries", body = ErrorBody),
    ),
)]
pub(super) async fn receive_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<InboundAccepted>, ApiError> {
    // The secret in the path was checked by `require_credentials`.
    receive(&state, &headers, body).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// The previous page's `next_cursor` (a stream id, `1700000000000-0`).
    #[param(pattern = "^[0-9]+-[0-9]+$")]
    cursor: Option<String>,
    /// Messages per page (1 to 1,000; default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Inbound messages, newest first.
#[utoipa::path(
    operation_id = "list_inbound",
    get,
    path = "/v1/inbound",
    tag = "inbound",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = InboundPage),
        (status = 400, description = "A bad cursor or limit", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<InboundPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit is 1 to 1000").field("limit"));
    }
    // A stream id, written back in Redis's own form (`00-00` is `0-0`).
    let cursor = match query.cursor.as_deref() {
        None => None,
        Some(given) => Some(
            given
                .split_once('-')
                .and_then(|(ms, seq)| {
                    Some(format!(
                        "{}-{}",
                        ms.parse::<u64>().ok()?,
                        seq.parse::<u64>().ok()?
                    ))
                })
                .ok_or_else(|| {
                    ApiError::bad_request("cursor is not one this API gave").field("cursor")
                })?,
        ),
    };
    Ok(Json(
        state.inbound.store.list(cursor.as_deref(), limit).await?,
    ))
}

/// One inbound message.
#[utoipa::path(
    operation_id = "get_inbound",
    get,
    path = "/v1/inbound/{id}",
    tag = "inbound",
    params(("id" = String, Path, description = "The message id")),
    responses(
        (status = 200, description = "The message", body = InboundEmail),
        (status = 404, description = "Unknown or expired", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<InboundEmail>, ApiError> {
    state
        .inbound
        .store
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no inbound message {id}")))
}

/// An attachment's body, with its content type.
#[utoipa::path(
    operation_id = "get_inbound_attachment",
    get,
    path = "/v1/inbound/{id}/attachments/{n}",
    tag = "inbound",
    params(
        ("id" = String, Path, description = "The message id"),
        ("n" = u32, Path, minimum = 1, description = "The attachment's position, from 1"),
    ),
    responses(
        (status = 200, description = "The bytes", content_type = "application/octet-stream"),
        (status = 400, description = "An attachment position that is not a positive number", body = ErrorBody),
        (status = 404, description = "No such attachment, or its body was not kept (over the size limit)", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn attachment(
    State(state): State<AppState>,
    ApiPath((id, n)): ApiPath<(String, usize)>,
) -> Result<Response, ApiError> {
    let store = &state.inbound.store;
    let message = store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no inbound message {id}")))?;
    let info = n
        .checked_sub(1)
        .and_then(|i| message.attachments.get(i))
        .ok_or_else(|| ApiError::not_found(format!("message {id} has no attachment {n}")))?;
    let body = store.attachment(&id, n).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "attachment {n} of {id} was not kept (over the size limit)"
        ))
    })?;
    let content_type = HeaderValue::from_str(&info.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let filename = info
        .filename
        .as_deref()
        .unwrap_or("attachment")
        .replace(['"', '\\', '\r', '\n'], "_");
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response())
}
