//! What the HTTP providers (SendGrid, Postmark, Mailgun) share: one kind of client, and how an
//! answer that is not a yes, or no answer at all, reads.

use std::time::Duration;

use anyhow::Context;
use reqwest::{StatusCode, header::HeaderMap};

use super::{Cause, ProviderError};

/// A provider's HTTP client: a keep-alive pool, bounded connects and requests.
///
/// # Errors
/// When the client cannot be built.
pub(super) fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("mailroom/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("could not build the HTTP client")
}

/// What a refusal with `status` means: a 429 spends the rate, a 5xx is an outage, a status of
/// `account` refuses the account (a wrong key, a suspended account), anything else the message.
pub(super) fn refused(
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
    account: &[u16],
) -> ProviderError {
    let cause = match status.as_u16() {
        429 => Cause::Throttled,
        500.. => Cause::Outage,
        code if account.contains(&code) => {
            return ProviderError::Permanent {
                message,
                bounce: None,
                account: true,
            };
        }
        _ => return ProviderError::permanent(message),
    };
    ProviderError::Transient {
        message,
        retry_after,
        cause,
    }
}

/// `Retry-After` in seconds (or an HTTP date), else `X-RateLimit-Reset` (unix seconds).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(value) = header("retry-after") {
        if let Ok(seconds) = value.trim().parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(when) = chrono::DateTime::parse_from_rfc2822(value.trim()) {
            return std::time::SystemTime::from(when)
                .duration_since(std::time::SystemTime::now())
                .ok();
        }
    }
    let reset: u64 = header("x-ratelimit-reset")?.trim().parse().ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

use crate::metrics::{self, SendResult};

/// A request that got no answer, counted in the metrics.
#[derive(Debug)]
pub(super) struct Unanswered {
    /// What happened, without the URL: "SendGrid unreachable: timed out: …".
    pub(super) message: String,
    /// No connection was made, so the provider surely has nothing; otherwise it may have
    /// taken the request before the answer was lost.
    pub(super) never_sent: bool,
}

impl Unanswered {
    /// The error it is: an outage when nothing was sent, else no answer.
    pub(super) fn into_error(self) -> ProviderError {
        if self.never_sent {
            ProviderError::outage(self.message)
        } else {
            ProviderError::unanswered(self.message)
        }
    }
}

/// `error` of a request to `provider` (shown as `shown`) for `messages` messages, after
/// `took`: counted, and described.
pub(super) fn unanswered(
    provider: &'static str,
    shown: &str,
    error: &reqwest::Error,
    messages: u64,
    took: Duration,
) -> Unanswered {
    let result = if error.is_timeout() {
        SendResult::Timeout
    } else {
        SendResult::Error
    };
    metrics::provider_send(provider, result, messages, took);
    Unanswered {
        message: format!("{shown} unreachable: {}", without_url(error)),
        never_sent: error.is_connect(),
    }
}

/// reqwest's error text without the URL (it is not secret, but it is noise in every record).
pub(super) fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let source = std::error::Error::source(error).map(ToString::to_string);
    match source {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_owned(),
    }
}
