//! `ApiJson<T>`: the API's JSON body extractor. It reads the body within the size limit,
//! insists on `application/json`, and reports a type error with the path of the field at fault
//! (`to[0].email`), all in the API's one error shape.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderValue, header::CONTENT_TYPE, request::Parts},
};
use serde::de::DeserializeOwned;

use super::{AppState, error::ApiError};

/// A JSON body parsed into `T`.
#[derive(Debug)]
pub(super) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::too_large(state.body_limit))?;
        // Every request body is an object; serde would also read a struct from an array.
        if let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace())
            && *first != b'{'
        {
            return Err(ApiError::invalid_json_shape());
        }
        parse_json(&bytes).map(Self)
    }
}

/// The `Idempotency-Key` header, when given (taken alone: extracting the whole `HeaderMap`
/// would copy every header of every request).
#[derive(Debug)]
pub(super) struct IdempotencyKeyHeader(pub Option<HeaderValue>);

impl<S: Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get("idempotency-key").cloned()))
    }
}

/// `bytes` as a `T`: a syntax error is 400, a value of the wrong shape 422 naming the field.
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Most bodies are good: parse them without tracking the path (which allocates for every
    // key), and parse again with it only to say where a bad one went wrong.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid_json(format!("the body is not valid JSON: {inner}"))
        } else {
            let field = if path == "." { String::new() } else { path };
            ApiError::validation(inner.to_string()).field(field)
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Path parameters parsed into `T`; a bad one gets the API's 400 error shape naming the
/// parameter, instead of axum's plain-text rejection.
#[derive(Debug)]
pub(super) struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// A raw body within the route's limit: over it, 413 in the API's error shape (axum's own
/// rejection is plain text); a body that breaks off, 400.
#[derive(Debug)]
pub(super) struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::body_over_route_limit())
            }
            Err(rejection) => Err(ApiError::bad_request(format!(
                "the body could not be read: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// A query string parsed into `T`; a bad one gets the API's 400 error shape naming the
/// parameter, instead of axum's plain-text rejection.
#[derive(Debug)]
pub(super) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| {
                let field = e.path().to_string();
                ApiError::bad_request(format!("query parameter {field}: {}", e.inner()))
                    .field(field)
            })
    }
}
