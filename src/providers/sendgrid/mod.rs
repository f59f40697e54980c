//! The SendGrid provider: `POST {SENDGRID_API_URL}/v3/mail/send`, as `tests/data/sendgrid/
//! REFERENCE.md` §1 documents it.
//!
//! One reqwest client per process (a keep-alive connection pool, HTTP/1.1 or HTTP/2 by ALPN).
//! 202 means accepted and carries `X-Message-Id`. 429 and 5xx, timeouts and connection errors
//! are transient (429's `Retry-After` or `X-RateLimit-Reset` is handed to the queue); 400 and
//! 413 refuse the message, 401 and 403 the account (a wrong or revoked key), with SendGrid's own
//! error messages kept.

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine;
use lettre::message::Mailbox;
use reqwest::StatusCode;

use crate::metrics::{self, SendResult};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

mod bulk;

pub(super) use bulk::MAX_PERSONALIZATIONS;

use super::{
    Delivery, OutgoingEmail, ProviderError,
    http::{self, unanswered, without_url},
};
use crate::config::Settings;

/// The SendGrid v3 client.
#[derive(Clone)]
pub struct SendGrid {
    client: reqwest::Client,
    // Parsed once: parsing the URL for every request showed in profiles.
    endpoint: reqwest::Url,
    api_key: SecretString,
}

impl std::fmt::Debug for SendGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGrid")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl SendGrid {
    /// The client for `SENDGRID_API_URL` with `SENDGRID_API_KEY`.
    ///
    /// # Errors
    /// When the key is missing or the client cannot be built.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let api_key = settings
            .sendgrid_api_key
            .clone()
            .context("MAILROOM_PROVIDER=sendgrid needs SENDGRID_API_KEY")?;
        Self::new(&settings.sendgrid_api_url, api_key)
    }

    /// A client for the API at `base_url` (no trailing `/v3`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base_url: &str, api_key: SecretString) -> anyhow::Result<Self> {
        let client = http::client()?;
        let endpoint = format!("{}/v3/mail/send", base_url.trim_end_matches('/'));
        let endpoint = reqwest::Url::parse(&endpoint)
            .with_context(|| format!("SENDGRID_API_URL {base_url:?} is not a URL"))?;
        Ok(Self {
            client,
            endpoint,
            api_key,
        })
    }

    /// Sends `email` through Mail Send.
    ///
    /// # Errors
    /// See the module documentation for which failures are transient.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, ProviderError> {
        self.post(&MailSend::from(email), 1).await
    }
}

/// Why SendGrid did not say what a key may do.
#[derive(Debug, thiserror::Error)]
pub enum ScopesError {
    #[error("SendGrid unreachable: {0}")]
    Unreachable(String),
    #[error("SendGrid answered {0}: {1}")]
    Answered(StatusCode, String),
    #[error("SendGrid's answer is not a scope list: {0}")]
    NotScopes(serde_json::Error),
}

impl SendGrid {
    /// The key's scopes (`GET /v3/scopes`), for `mailroom doctor`: whether it may send.
    ///
    /// # Errors
    /// SendGrid unreachable, or its answer when not 200 (401: the key is wrong or revoked).
    pub async fn scopes(&self) -> Result<Vec<String>, ScopesError> {
        #[derive(serde::Deserialize)]
        struct Scopes {
            scopes: Vec<String>,
        }
        let mut url = self.endpoint.clone();
        url.set_path("/v3/scopes");
        let response = self
            .client
            .get(url)
            .bearer_auth(self.api_key.expose_secret())
            .send()
            .await
            .map_err(|e| ScopesError::Unreachable(without_url(&e)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            return Err(ScopesError::Answered(status, error_messages(&text)));
        }
        serde_json::from_str::<Scopes>(&text)
            .map(|s| s.scopes)
            .map_err(ScopesError::NotScopes)
    }

    /// POSTs `body` (for `messages` recipients) to Mail Send and reads SendGrid's answer.
    async fn post<B: Serialize>(&self, body: &B, messages: u64) -> Result<Delivery, ProviderError> {
        let watch = metrics::Stopwatch::start();
        let response = self
            .client
            .post(self.endpoint.clone())
            .bearer_auth(self.api_key.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|e| {
                unanswered("sendgrid", "SendGrid", &e, messages, watch.elapsed()).into_error()
            })?;
        let status = response.status();
        metrics::provider_send(
            "sendgrid",
            SendResult::of_status(status.as_u16()),
            messages,
            watch.elapsed(),
        );
        if status == StatusCode::ACCEPTED || status == StatusCode::OK {
            let id = response
                .headers()
                .get("x-message-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Ok(Delivery {
                provider_message_id: id,
            });
        }
        let retry_after = http::retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let message = format!("SendGrid answered {status}: {}", error_messages(&text));
        // 401 and 403: a wrong or revoked key.
        Err(http::refused(status, message, retry_after, &[401, 403]))
    }
}

/// SendGrid's `{"errors":[{"message","field"}]}`, joined; the raw text when it is not that.
fn error_messages(body: &str) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        message: String,
        field: Option<String>,
    }
    match serde_json::from_str::<Errors>(body) {
        Ok(parsed) if !parsed.errors.is_empty() => parsed
            .errors
            .into_iter()
            .map(|e| match e.field {
                Some(field) if field != "null" => format!("{} (field {field})", e.message),
                _ => e.message,
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.chars().take(500).collect(),
    }
}

/// The Mail Send request body (REFERENCE §1.2).
#[derive(Debug, Serialize)]
struct MailSend<'a> {
    personalizations: [Personalization; 1],
    from: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<Address>,
    subject: &'a str,
    content: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<SgAttachment<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    categories: &'a [String],
    custom_args: BTreeMap<&'a str, String>,
    tracking_settings: TrackingSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    asm: Option<Asm>,
}

/// The unsubscribe group a message is sent under (REFERENCE §1.2 `asm`): SendGrid drops it
/// for people who left that group, and reports their `group_unsubscribe`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Asm {
    pub(super) group_id: u32,
}

/// Click and open tracking for one message (REFERENCE §1.2 `tracking_settings`), set on every
/// request so the account's defaults never decide: off for mail with a secret link (SendGrid
/// then neither rewrites the link nor reports it back in a `click` event) and for messages
/// that did not ask; what a campaign or a message asked for otherwise.
#[derive(Debug, Clone, Serialize)]
pub(super) struct TrackingSettings {
    click_tracking: Switch,
    open_tracking: Switch,
}

#[derive(Debug, Clone, Serialize)]
struct Switch {
    enable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    enable_text: Option<bool>,
}

impl TrackingSettings {
    /// The settings for `tracking` (links in the text part are never rewritten).
    pub(super) fn of(tracking: mailroom_jobs::Tracking) -> Self {
        Self {
            click_tracking: Switch {
                enable: tracking.clicks,
                enable_text: Some(false),
            },
            open_tracking: Switch {
                enable: tracking.opens,
                enable_text: None,
            },
        }
    }
}

#[derive(Debug, Serialize)]
struct Personalization {
    to: Vec<Address>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cc: Vec<Address>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bcc: Vec<Address>,
}

#[derive(Debug, Serialize)]
struct Address {
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl From<&Mailbox> for Address {
    fn from(mailbox: &Mailbox) -> Self {
        Self {
            email: mailbox.email.to_string(),
            name: mailbox.name.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Content<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    value: &'a str,
}

#[derive(Debug, Serialize)]
struct SgAttachment<'a> {
    content: String,
    filename: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    disposition: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_id: Option<&'a str>,
}

impl<'a> From<&'a OutgoingEmail> for MailSend<'a> {
    fn from(email: &'a OutgoingEmail) -> Self {
        let addresses = |list: &[Mailbox]| list.iter().map(Address::from).collect();
        // text/plain must come before text/html (REFERENCE §1.2, content ordering rule).
        let mut content = vec![Content {
            kind: "text/plain",
            value: &email.text,
        }];
        if let Some(html) = &email.html {
            content.push(Content {
                kind: "text/html",
                value: html,
            });
        }
        let mut custom_args: BTreeMap<&str, String> = email
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        custom_args.insert("mailroom_id", email.id.to_string());
        Self {
            personalizations: [Personalization {
                to: addresses(&email.to),
                cc: addresses(&email.cc),
                bcc: addresses(&email.bcc),
            }],
            from: Address::from(&email.from),
            reply_to: email.reply_to.as_ref().map(Address::from),
            subject: &email.subject,
            content,
            attachments: email
                .attachments
                .iter()
                .map(|a| SgAttachment {
                    content: base64::engine::general_purpose::STANDARD.encode(&a.bytes),
                    filename: &a.filename,
                    kind: &a.content_type,
                    disposition: if a.content_id.is_some() {
                        "inline"
                    } else {
                        "attachment"
                    },
                    content_id: a.content_id.as_deref(),
                })
                .collect(),
            headers: &email.headers,
            categories: &email.categories,
            custom_args,
            tracking_settings: TrackingSettings::of(email.tracking),
            asm: email.unsubscribe_group.map(|group_id| Asm { group_id }),
        }
    }
}
