//! The Amazon SES provider (API v2): `SendEmail` with mailroom's MIME as raw content (mailroom
//! writes it and signs with its DKIM keys when it has any; SES adds Easy DKIM), each request
//! signed with SigV4 (`aws-sigv4`). A campaign sends one message per recipient, many at once.
//!
//! SES answers 200 with a `MessageId`. Its errors name themselves (`x-amzn-ErrorType`):
//! `TooManyRequestsException` and `LimitExceededException` spend the rate; `MessageRejected` is
//! that message refused, unless it refuses the sender (not verified), which refuses everyone, as
//! do `AccountSuspendedException`, `SendingPausedException`,
//! `MailFromDomainNotVerifiedException`, a missing configuration set and any 401 or 403 (bad
//! credentials or signature); a 5xx is an outage. mailroom's ids travel as message tags, which
//! SES hands back on every event.

use std::time::SystemTime;

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{
    Delivery, OutgoingEmail, ProviderError, Wire,
    http::{self, unanswered, without_url},
};
use crate::{
    config::Settings,
    metrics::{self, SendResult},
};

/// The SES client for one region and one set of credentials.
#[derive(Clone)]
pub struct Ses {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    region: String,
    identity: Identity,
    configuration_set: Option<String>,
    wire: Wire,
}

impl std::fmt::Debug for Ses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ses")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// `SendEmail`'s request, raw content only.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SendEmail<'a> {
    from_email_address: String,
    destination: Destination,
    content: Content,
    #[serde(skip_serializing_if = "Option::is_none")]
    configuration_set_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    email_tags: Vec<Tag>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Destination {
    to_addresses: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Content {
    raw: Raw,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    data: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    name: String,
    value: String,
}

/// SES's answer: an id when it took the message, its words otherwise.
#[derive(Debug, Default, Deserialize)]
struct Reply {
    #[serde(default, rename = "MessageId")]
    message_id: Option<String>,
    #[serde(default, alias = "Message")]
    message: String,
    #[serde(default, rename = "__type")]
    kind: Option<String>,
}

/// The account's state, as `GetAccount` reports it (for `mailroom doctor` and the rate).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    #[serde(default)]
    pub sending_enabled: bool,
    #[serde(default)]
    pub production_access_enabled: bool,
    #[serde(default)]
    pub send_quota: Option<SendQuota>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendQuota {
    #[serde(default)]
    pub max24_hour_send: f64,
    #[serde(default)]
    pub max_send_rate: f64,
    #[serde(default)]
    pub sent_last24_hours: f64,
}

/// Why SES did not report the account.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("SES unreachable: {0}")]
    Unreachable(String),
    #[error("SES answered {0}: {1}")]
    Answered(StatusCode, String),
    #[error("SES's answer is not an account: {0}")]
    NotAnAccount(serde_json::Error),
    #[error("the request could not be signed: {0}")]
    Signing(String),
}

impl Ses {
    /// The client for `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`), at `SES_ENDPOINT_URL` or the region's endpoint.
    ///
    /// # Errors
    /// When the region or the credentials are missing, or the endpoint is not a URL.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let region = (settings.aws_region.clone())
            .filter(|r| !r.trim().is_empty())
            .context("the ses provider needs AWS_REGION")?;
        let key_id = (settings.aws_access_key_id.clone())
            .filter(|k| !k.is_empty())
            .context("the ses provider needs AWS_ACCESS_KEY_ID")?;
        let secret = (settings.aws_secret_access_key.as_ref())
            .context("the ses provider needs AWS_SECRET_ACCESS_KEY")?;
        let token = (settings.aws_session_token.as_ref())
            .map(|t| t.expose_secret().to_owned())
            .filter(|t| !t.is_empty());
        let identity: Identity = Credentials::new(
            key_id,
            secret.expose_secret().to_owned(),
            token,
            None,
            "mailroom-settings",
        )
        .into();
        let endpoint = match settings.ses_endpoint_url.as_deref() {
            Some(url) if !url.trim().is_empty() => url.trim_end_matches('/').to_owned(),
            _ => format!("https://email.{}.amazonaws.com", region.trim()),
        };
        let endpoint = reqwest::Url::parse(&endpoint)
            .with_context(|| format!("SES_ENDPOINT_URL {endpoint:?} is not a URL"))?;
        Ok(Self {
            client: http::client()?,
            endpoint,
            region: region.trim().to_owned(),
            identity,
            configuration_set: (settings.ses_configuration_set.clone()).filter(|c| !c.is_empty()),
            wire: Wire {
                dkim: Wire::from_settings(settings)?.dkim,
                // SES writes its own Return-Path (its MAIL FROM domain): no VERP.
                bounce_domain: None,
            },
        })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.endpoint.clone();
        url.set_path(path);
        url
    }

    /// `request` with SigV4's headers for `body`.
    fn signed(
        &self,
        method: &str,
        url: &reqwest::Url,
        body: &[u8],
    ) -> Result<reqwest::RequestBuilder, String> {
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("ses")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let headers = [("content-type", "application/json")];
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = (self.client.request(method, url.clone()))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        Ok(request)
    }

    /// Sends `email` as raw MIME.
    ///
    /// # Errors
    /// See the module documentation.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, ProviderError> {
        let (envelope, raw) = email.wire(&self.wire)?;
        let request = SendEmail {
            from_email_address: email.from.email.to_string(),
            destination: Destination {
                to_addresses: envelope.to().iter().map(ToString::to_string).collect(),
            },
            content: Content {
                raw: Raw {
                    data: base64::engine::general_purpose::STANDARD.encode(&raw),
                },
            },
            configuration_set_name: self.configuration_set.as_deref(),
            email_tags: tags(email),
        };
        let body =
            serde_json::to_vec(&request).map_err(|e| ProviderError::permanent(e.to_string()))?;
        let url = self.url("/v2/email/outbound-emails");
        let request = self
            .signed("POST", &url, &body)
            .map_err(ProviderError::permanent)?;
        let watch = metrics::Stopwatch::start();
        let response = request
            .send()
            .await
            .map_err(|e| unanswered("ses", "Amazon SES", &e, 1, watch.elapsed()).into_error())?;
        let status = response.status();
        metrics::provider_send(
            "ses",
            SendResult::of_status(status.as_u16()),
            1,
            watch.elapsed(),
        );
        let retry_after = http::retry_after(response.headers());
        let kind = error_type(response.headers());
        let text = response.text().await.unwrap_or_default();
        let reply: Reply = serde_json::from_str(&text).unwrap_or_default();
        if status == StatusCode::OK {
            return Ok(Delivery {
                provider_message_id: reply.message_id,
            });
        }
        let kind = kind
            .or_else(|| reply.kind.as_deref().map(short_type))
            .unwrap_or_default();
        let words = match reply.message.is_empty() {
            true => text.chars().take(500).collect(),
            false => reply.message,
        };
        Err(classify(
            status,
            &kind,
            format!("Amazon SES answered {status} {kind}: {words}"),
            retry_after,
        ))
    }

    /// The account's state (`GET /v2/email/account`), for `mailroom doctor`.
    ///
    /// # Errors
    /// SES unreachable, or its answer when not 200.
    pub async fn account(&self) -> Result<Account, AccountError> {
        let url = self.url("/v2/email/account");
        let request = self
            .signed("GET", &url, b"")
            .map_err(AccountError::Signing)?;
        let response = request
            .send()
            .await
            .map_err(|e| AccountError::Unreachable(without_url(&e)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            let reply: Reply = serde_json::from_str(&text).unwrap_or_default();
            return Err(AccountError::Answered(status, reply.message));
        }
        serde_json::from_str(&text).map_err(AccountError::NotAnAccount)
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }
}

/// The message's tags: mailroom's id and the metadata SES can carry (tag values take
/// letters, digits, `_`, `-`, `.` and `@`, 256 at most), and the first category.
fn tags(email: &OutgoingEmail) -> Vec<Tag> {
    let fits = |value: &str| {
        !value.is_empty()
            && value.len() <= 256
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
    };
    let mut tags = vec![Tag {
        name: "mailroom_id".to_owned(),
        value: email.id.to_string(),
    }];
    for (name, value) in &email.metadata {
        if name.starts_with("mailroom_") && fits(name) && fits(value) {
            tags.push(Tag {
                name: name.clone(),
                value: value.clone(),
            });
        }
    }
    if let Some(category) = email.categories.first().filter(|c| fits(c)) {
        tags.push(Tag {
            name: "mailroom_category".to_owned(),
            value: category.clone(),
        });
    }
    tags
}

/// The error's name from `x-amzn-ErrorType` (`Name:namespace-url`).
fn error_type(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get("x-amzn-errortype")?.to_str().ok()?;
    Some(short_type(value))
}

/// `aws.namespace#Name:url` → `Name`.
fn short_type(value: &str) -> String {
    let value = value.split(':').next().unwrap_or_default();
    value.rsplit('#').next().unwrap_or_default().to_owned()
}

/// Whether a rejection is of the sender, not the message: SES says its identity is not
/// verified (moto: that there is no authority to send from it).
fn sender_refused(message: &str) -> bool {
    message.contains("not verified") || message.contains("authority to send from")
}

/// What SES's refusal means (see the module documentation).
fn classify(
    status: StatusCode,
    kind: &str,
    message: String,
    retry_after: Option<std::time::Duration>,
) -> ProviderError {
    let account = |message| ProviderError::Permanent {
        message,
        bounce: None,
        account: true,
    };
    match kind {
        "TooManyRequestsException" | "LimitExceededException" | "ThrottlingException" => {
            ProviderError::Transient {
                message,
                retry_after,
                cause: super::Cause::Throttled,
            }
        }
        "AccountSuspendedException"
        | "SendingPausedException"
        | "MailFromDomainNotVerifiedException"
        | "NotFoundException" => account(message),
        "MessageRejected" if sender_refused(&message) => account(message),
        "MessageRejected" | "BadRequestException" => ProviderError::permanent(message),
        _ => http::refused(status, message, retry_after, &[401, 403]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_by_their_name_whoever_refuses() {
        let bad = StatusCode::BAD_REQUEST;
        let is_account =
            |e: &ProviderError| matches!(e, ProviderError::Permanent { account: true, .. });
        assert!(is_account(&classify(
            bad,
            "AccountSuspendedException",
            "x".into(),
            None
        )));
        assert!(is_account(&classify(
            bad,
            "SendingPausedException",
            "x".into(),
            None
        )));
        let unverified = "Email address is not verified. The following identities failed the check";
        assert!(is_account(&classify(
            bad,
            "MessageRejected",
            unverified.into(),
            None
        )));
        let rejected = classify(bad, "MessageRejected", "Illegal address".into(), None);
        assert!(matches!(
            rejected,
            ProviderError::Permanent { account: false, .. }
        ));
        let throttled = classify(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "x".into(),
            None,
        );
        assert!(matches!(
            throttled,
            ProviderError::Transient {
                cause: super::super::Cause::Throttled,
                ..
            }
        ));
        assert!(is_account(&classify(
            StatusCode::FORBIDDEN,
            "",
            "x".into(),
            None
        )));
        let outage = classify(StatusCode::SERVICE_UNAVAILABLE, "", "x".into(), None);
        assert!(matches!(
            outage,
            ProviderError::Transient {
                cause: super::super::Cause::Outage,
                ..
            }
        ));
        assert_eq!(
            short_type("MessageRejected:http://internal.amazon.com/coral/com.amazonaws.sesv2/"),
            "MessageRejected"
        );
        assert_eq!(
            short_type("com.amazonaws.sesv2#TooManyRequestsException"),
            "TooManyRequestsException"
        );
    }
}
