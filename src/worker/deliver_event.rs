//! Delivering events to the service that asked for them: a POST of the event's JSON to
//! `MAILROOM_VERIFY_CALLBACK_URL`, signed with HMAC-SHA256 (`MAILROOM_CALLBACK_SECRET`).
//!
//! Headers: `X-Mailroom-Timestamp` (unix seconds) and `X-Mailroom-Signature: v1=<hex>`, the HMAC
//! of `<timestamp>.<body>`. A receiver recomputes it over the raw body and refuses stale
//! timestamps. Anything but a 2xx is retried through the queue (backoff, then a dead letter).

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use apalis_core::{error::BoxDynError, task::data::Data};
use hmac::{Hmac, Mac};
use mailroom_jobs::DeliverEvent;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::{config::Settings, queue::JobOutput};

/// Where events go, and the secret that signs them.
#[derive(Debug)]
pub struct Callbacks {
    client: reqwest::Client,
    url: Option<reqwest::Url>,
    secret: Option<SecretString>,
}

/// The receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    status: u16,
}

impl JobOutput for Delivered {
    fn to_output(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "status": self.status }))
    }
}

impl Callbacks {
    /// The callback configuration of `settings` (none when no URL is set).
    ///
    /// # Errors
    /// When the URL is malformed or set without a secret.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let url = settings
            .verify_callback_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(reqwest::Url::parse)
            .transpose()
            .context("verify_callback_url is not a URL")?;
        if url.is_some() && settings.callback_secret.is_none() {
            anyhow::bail!(
                "verify_callback_url needs callback_secret (MAILROOM_CALLBACK_SECRET) to sign events"
            );
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("mailroom/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            url,
            secret: settings.callback_secret.clone(),
        })
    }

    /// True when events are delivered anywhere.
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }
}

/// `v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "v1={}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Posts one event.
///
/// # Errors
/// Anything but a 2xx, or no answer: the queue retries.
#[tracing::instrument(skip_all, fields(delivery_id = %job.id))]
pub async fn deliver_event(
    job: DeliverEvent,
    callbacks: Data<Arc<Callbacks>>,
) -> Result<Delivered, BoxDynError> {
    let (Some(url), Some(secret)) = (&callbacks.url, &callbacks.secret) else {
        return Err(apalis_core::error::AbortError::new("no callback URL is configured").into());
    };
    let body = serde_json::to_vec(&job.event)?;
    let timestamp = chrono::Utc::now().timestamp();
    let response = callbacks
        .client
        .post(url.clone())
        .header("content-type", "application/json")
        .header("x-mailroom-timestamp", timestamp.to_string())
        .header(
            "x-mailroom-signature",
            signature(secret.expose_secret(), timestamp, &body),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("callback unreachable: {}", e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        Ok(Delivered {
            status: status.as_u16(),
        })
    } else {
        Err(format!("callback answered {status}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 does not cover this framing; the value is checked independently in the
        // integration test with Python's hmac module.
        let a = signature("secret", 1_700_000_000, b"{\"a\":1}");
        let b = signature("secret", 1_700_000_001, b"{\"a\":1}");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64);
        assert_ne!(a, b);
        assert_ne!(a, signature("other", 1_700_000_000, b"{\"a\":1}"));
    }
}
