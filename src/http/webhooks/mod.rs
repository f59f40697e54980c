//! The providers' webhooks: each checks its provider's credentials over the raw request,
//! reads the body into typed events once (a body it cannot read is a 400), stores it verbatim
//! as a job on the `events` queue and answers 200; a worker applies it. Every provider retries
//! anything but a 2xx, so a storage failure answers 503.

pub(super) mod mailgun;
pub(super) mod postmark;
pub(super) mod sendgrid;
pub(super) mod ses;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use mailroom_jobs::{EventSource, ProviderEvents, PushError};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use utoipa::ToSchema;

use super::{AppState, error::ApiError, request_id::RequestId};

/// The answer to an accepted POST.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EventsAccepted {
    /// Events in the POST (processed by a worker, duplicates counted once).
    pub(super) accepted: usize,
}

/// Whether `a` and `b` are equal, in a time that says nothing about where they differ or
/// how long either is.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

/// Whether `headers` carry basic auth with exactly `credentials`.
pub(super) fn basic_auth_is(headers: &HeaderMap, credentials: &(String, SecretString)) -> bool {
    let (user, password) = credentials;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        });
    let expected = format!("{user}:{}", password.expose_secret());
    given.is_some_and(|g| same(&g, expected.as_bytes()))
}

/// Runs `request` unless `refused` says why not, answering 401 then (only a POST reads a
/// body: the router answers anything else with 405).
async fn admit(
    refused: Option<String>,
    provider: &str,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match refused {
        Some(reason) if request.method() == axum::http::Method::POST => {
            tracing::warn!(provider, %reason, "refused a webhook POST before reading it");
            ApiError::webhook_unauthorized(reason).into_response()
        }
        _ => next.run(request).await,
    }
}

/// The body as text, or a 400.
fn text(body: &[u8], provider: &str) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec()).map_err(|_| {
        tracing::warn!(provider, "refused a webhook POST: the body is not UTF-8");
        ApiError::bad_request("the body is not UTF-8")
    })
}

/// Stores a verified POST of `provider` for a worker; `accepted` is how many events it holds.
async fn store(
    state: &AppState,
    provider: EventSource,
    body: String,
    request_id: &RequestId,
    accepted: usize,
) -> Result<axum::Json<EventsAccepted>, ApiError> {
    let job = ProviderEvents {
        provider,
        received_at: chrono::Utc::now(),
        body,
        request_id: request_id.for_job(),
    };
    state.producer.push(&job).await.map_err(|e| match e {
        PushError::Invalid { reason, .. } => ApiError::bad_request(reason),
        PushError::Serialize(e) => ApiError::bad_request(e.to_string()),
        PushError::Redis(e) => {
            tracing::error!(
                ?provider,
                "could not store a webhook POST; the provider will retry"
            );
            ApiError::store_failed(&e)
        }
    })?;
    Ok(axum::Json(EventsAccepted { accepted }))
}
