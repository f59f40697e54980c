//! Every API error has one JSON shape, made here: `{"error":{"code","message","field"}}`.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::Failure;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
    /// `RateLimit-Policy` and `RateLimit` (the IETF draft's headers), on a key's limit.
    rate_limit: Option<Box<(String, String)>>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code, e.g. `validation_failed`.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault, e.g. `to[0].email`, when there is one.
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            rate_limit: None,
        }
    }

    /// Names the request field at fault.
    #[must_use]
    pub fn field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    /// 400: the body is not JSON.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// 422: JSON that is not an object where the request must be one.
    pub fn invalid_json_shape() -> Self {
        Self::validation("the body must be a JSON object")
    }

    /// 401: a missing or wrong API key.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required: Authorization: Bearer <key>",
        )
    }

    /// 401: a webhook POST whose signature or credentials do not check out. The reason is
    /// logged by the caller; the answer says only what kind of failure it was.
    pub fn webhook_unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "webhook_unauthorized", message)
    }

    /// 403: the key lacks the scope the route needs.
    pub fn missing_scope(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this key lacks the scope this route needs: {scope}"),
        )
    }

    /// 400: a body that is not what the route takes (beyond JSON syntax).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 403: a form posted from somewhere it may not come from.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the resource's state does not allow the change.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is over the limit of {limit} bytes"),
        )
    }

    /// 413 for a body read by a route of its own limit (the webhooks).
    pub fn body_over_route_limit() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is over this route's size limit",
        )
    }

    /// 408: the request (its body included) took longer than `limit`.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request took longer than {} s to send and handle",
                limit.as_secs()
            ),
        )
    }

    /// 503: every request permit is taken; retry in a moment.
    pub fn overloaded() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "mailroom is handling as many requests as it is allowed to; retry in a moment",
            )
        }
    }

    /// 503: a service mailroom needs to answer could not be reached (SNS's certificate);
    /// the caller retries.
    pub fn upstream_unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// 415: not `application/json`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        )
    }

    /// 415: a body of another type than the route's `wanted`.
    pub fn unsupported_media_type_of(wanted: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the body as Content-Type: {wanted}"),
        )
    }

    /// 422: well-formed JSON that does not describe a valid request.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }

    /// 422: an idempotency key reused for a different request.
    pub fn idempotency_conflict() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_conflict",
            "this Idempotency-Key was used for a different request in the last 24 hours",
        )
        .field("Idempotency-Key")
    }

    /// 400: a verification link's token is missing or malformed.
    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "the link's token is missing or malformed",
        )
        .field("token")
    }

    /// 410: a verification link's token is unknown, expired or already used.
    pub fn token_gone() -> Self {
        Self::new(
            StatusCode::GONE,
            "token_expired_or_used",
            "the link has expired or was already used",
        )
        .field("token")
    }

    /// 429: over a rate limit; try again after `retry_after` seconds.
    pub fn rate_limited(what: &str, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests {what}; retry after {retry_after} s"),
            )
        }
    }

    /// 429: a key's own limit (`policy`, a second or a day, of `quota` messages) is spent
    /// until `retry_after`; with `RateLimit-Policy` and `RateLimit` as the IETF draft
    /// (draft-ietf-httpapi-ratelimit-headers) writes them.
    pub fn key_limited(policy: &str, quota: u64, window_secs: u64, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            rate_limit: Some(Box::new((
                format!("\"{policy}\";q={quota};w={window_secs}"),
                format!("\"{policy}\";r=0;t={retry_after}"),
            ))),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this key's {policy} limit of {quota} messages is spent; retry after {retry_after} s"
                ),
            )
        }
    }

    /// 500: a bug (never bad input). Logged in full here; the caller sees no internals.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed: internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "mailroom failed to handle this request; the error is logged",
        )
    }

    /// 503 for a Redis failure, saying which kind ([`Failure`]): full (nothing was stored), no
    /// answer in time (it may have been stored: the same Idempotency-Key answers with the first
    /// id), or unreachable. Logged in full here; the caller sees no internals. Every kind carries
    /// `Retry-After`.
    pub fn store_failed(error: &redis::RedisError) -> Self {
        let (code, message, retry_after) = match Failure::of(error) {
            Failure::Full => {
                tracing::error!(%error, "request failed: Redis is full (maxmemory reached); nothing was stored");
                (
                    "store_full",
                    "mailroom's Redis is full and refuses writes: nothing was stored; retry later \
                     (with the same Idempotency-Key)",
                    30,
                )
            }
            Failure::TimedOut => {
                tracing::error!(%error, "request failed: Redis did not answer in time");
                (
                    "store_timeout",
                    "mailroom's Redis did not answer in time: the request may or may not have been \
                     stored; retry with the same Idempotency-Key, which answers with the first \
                     message's id if it was",
                    1,
                )
            }
            Failure::Unreachable | Failure::Other => {
                tracing::error!(%error, "request failed: Redis unavailable");
                (
                    "unavailable",
                    "mailroom cannot reach its store right now; retry with the same Idempotency-Key",
                    5,
                )
            }
        };
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 503: Redis's policy may evict what it is given, so nothing is accepted.
    pub fn store_evicts(policy: &str) -> Self {
        Self {
            retry_after: Some(30),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_evicts",
                format!(
                    "mailroom's Redis runs maxmemory-policy {policy}, which may delete queued mail: \
                     nothing is accepted until it is noeviction"
                ),
            )
        }
    }
}

impl ApiError {
    /// Whether the request (rather than mailroom or its store) was at fault: a 4xx.
    pub fn is_client_error(&self) -> bool {
        self.status.is_client_error()
    }

    /// What went wrong, for an answer that reports several errors (a batch's items).
    pub fn detail(self) -> ErrorDetail {
        ErrorDetail {
            code: self.code,
            message: self.message,
            field: self.field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, retry_after) = (self.status, self.retry_after);
        let rate_limit = self.rate_limit.clone();
        let body = ErrorBody {
            error: self.detail(),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        if let Some(limit) = rate_limit {
            let (policy, state) = *limit;
            for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
                if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
        }
        response
    }
}

impl ApiError {
    /// A push refused: Redis's failure as [`ApiError::store_failed`], a job that does not pass
    /// its own checks as 422 (naming `field` when given).
    pub fn from_push(error: mailroom_jobs::PushError, field: &str) -> Self {
        match error {
            mailroom_jobs::PushError::Redis(e) => Self::store_failed(&e),
            other => Self::validation(other.to_string()).field(field),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        Self::store_failed(&error)
    }
}
