//! What the HTTP providers (SendGrid, Postmark) share: how a request that got no answer reads.

use std::time::Duration;

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
    pub(super) fn into_error(self) -> super::ProviderError {
        if self.never_sent {
            super::ProviderError::outage(self.message)
        } else {
            super::ProviderError::unanswered(self.message)
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
