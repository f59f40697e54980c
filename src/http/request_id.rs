//! Request ids: every request gets one (the caller's `X-Request-Id` when it is a sane one, else
//! a fresh UUID v7), it is in the span of every log line the request causes, it goes back in
//! the answer's `X-Request-Id`, and the jobs the request queues carry it so that the worker's
//! log lines for them share it.

use axum::{
    extract::FromRequestParts,
    http::{HeaderName, HeaderValue, request::Parts},
};

/// The header, in and out.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// One request's id, in the request's extensions (put there by the edge layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The caller's id when it is one mailroom carries ([`mailroom_jobs::is_valid_request_id`]:
    /// nothing a log line could be forged with), else a new one.
    pub fn of(presented: Option<&HeaderValue>) -> Self {
        match presented.and_then(|v| v.to_str().ok()) {
            Some(id) if mailroom_jobs::is_valid_request_id(id) => Self(id.to_owned()),
            _ => Self(uuid::Uuid::now_v7().to_string()),
        }
    }

    /// For a job's payload.
    pub fn for_job(&self) -> Option<String> {
        Some(self.0.clone())
    }

    /// As a header value (always valid: checked or generated).
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::of(parts.headers.get(HEADER))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_id_is_kept_and_anything_else_replaced() {
        let kept = RequestId::of(Some(&HeaderValue::from_static("trace-42")));
        assert_eq!(kept.0, "trace-42");
        let forged = RequestId::of(Some(&HeaderValue::from_static("x level=error")));
        assert_ne!(forged.0, "x level=error");
        assert!(uuid::Uuid::parse_str(&forged.0).is_ok());
        assert!(uuid::Uuid::parse_str(&RequestId::of(None).0).is_ok());
    }
}
