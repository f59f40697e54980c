//! The Mailgun provider: `POST {MAILGUN_API_URL}/v3/{MAILGUN_DOMAIN}/messages.mime` for one
//! message (mailroom writes and signs the MIME, as for SMTP) and `/messages` for a batch of up
//! to 1,000 recipients with `recipient-variables`, each recipient's slots, headers and metadata
//! filled by Mailgun's `%recipient.NAME%` substitution. Basic auth as `api` with
//! `MAILGUN_API_KEY`.
//!
//! Mailgun answers 200 with an `id` for mail it queued. 429 is its rate limit, 5xx an outage;
//! 401 and 403 (a wrong key, a disabled domain), 402 (the account's payment) and 404 (no such
//! domain) refuse the account; 400 and 413 refuse the message. Mailroom's ids travel as `v:`
//! variables (Mailgun hands them back on its events) and categories as `o:tag` (three at most).
//! Mailgun's own tracking stays off for single mail (mailroom tracks it); a batch asks Mailgun
//! to track as the campaign says, since one body cannot carry each recipient's links.

use std::collections::BTreeMap;

use anyhow::Context;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{
    Delivery, OutgoingEmail, ProviderError, Wire,
    batch::{Answer, Batch, BatchRecipient, escape_into},
    http::{self, unanswered, without_url},
};
use crate::{
    config::Settings,
    metrics::{self, SendResult},
};

/// Mailgun's most recipients in one batch call.
pub(super) const MAX_BATCH: usize = 1000;
/// The statuses that refuse the account: a wrong key, payment, a disabled or unknown domain.
const ACCOUNT: &[u16] = &[401, 402, 403, 404];
/// Mailgun keeps three tags a message.
const MAX_TAGS: usize = 3;

/// The Mailgun client for one sending domain.
#[derive(Clone)]
pub struct Mailgun {
    client: reqwest::Client,
    base: reqwest::Url,
    domain: String,
    key: SecretString,
    wire: Wire,
}

impl std::fmt::Debug for Mailgun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailgun")
            .field("base", &self.base.as_str())
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// Mailgun's answer: an id when it queued the message, its words otherwise.
#[derive(Debug, Default, Deserialize)]
struct Reply {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    message: String,
}

impl Mailgun {
    /// The client for `MAILGUN_API_URL`, `MAILGUN_DOMAIN` and `MAILGUN_API_KEY`, signing with
    /// mailroom's DKIM keys when there are any (Mailgun signs with its own as well).
    ///
    /// # Errors
    /// When the key or the domain is missing, the URL is not one, or the client cannot be built.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let key = (settings.mailgun_api_key.clone())
            .context("the mailgun provider needs MAILGUN_API_KEY")?;
        let domain = (settings.mailgun_domain.clone())
            .filter(|d| !d.trim().is_empty())
            .context("the mailgun provider needs MAILGUN_DOMAIN")?;
        let base = reqwest::Url::parse(settings.mailgun_api_url.trim_end_matches('/'))
            .with_context(|| {
                format!(
                    "MAILGUN_API_URL {:?} is not a URL",
                    settings.mailgun_api_url
                )
            })?;
        Ok(Self {
            client: http::client()?,
            base,
            domain: domain.trim().to_owned(),
            key,
            wire: Wire {
                dkim: Wire::from_settings(settings)?.dkim,
                // Mailgun writes its own Return-Path: no VERP.
                bounce_domain: None,
            },
        })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        url.set_path(&format!("/v3/{}/{path}", self.domain));
        url
    }

    /// Sends `email` as MIME through `messages.mime`.
    ///
    /// # Errors
    /// See the module documentation.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, ProviderError> {
        let (envelope, raw) = email.wire(&self.wire)?;
        let to: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
        let mut form = reqwest::multipart::Form::new().text("to", to.join(","));
        for (name, value) in options(&email.categories, false, false) {
            form = form.text(name, value);
        }
        for (name, value) in variables(email) {
            form = form.text(format!("v:{name}"), value);
        }
        let message = reqwest::multipart::Part::bytes(raw)
            .file_name("message.eml")
            .mime_str("message/rfc822")
            .map_err(|e| ProviderError::permanent(e.to_string()))?;
        let request = self
            .client
            .post(self.url("messages.mime"))
            .multipart(form.part("message", message));
        self.post(request, 1).await
    }

    /// Sends `batch` in calls of up to [`MAX_BATCH`] recipients, each call answered for all of
    /// its recipients alike; a recipient whose address does not parse is refused on its own.
    pub async fn send_batch(&self, batch: &Batch<'_>) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(batch.recipients.len());
        for chunk in batch.recipients.chunks(MAX_BATCH) {
            let to: Vec<Option<String>> = (chunk.iter())
                .map(|r| r.to.mailbox().ok().map(|m| m.to_string()))
                .collect();
            let sendable: Vec<(&BatchRecipient<'_>, &str)> = (chunk.iter().zip(&to))
                .filter_map(|(r, to)| Some((r, to.as_deref()?)))
                .collect();
            let mut answer = None;
            if !sendable.is_empty() {
                let request =
                    (self.client.post(self.url("messages"))).form(&batch_form(batch, &sendable));
                answer = Some(Answer::from(
                    self.post(request, sendable.len() as u64).await,
                ));
            }
            answers.extend(to.iter().map(|to| match (to, &answer) {
                (Some(_), Some(answer)) => answer.clone(),
                _ => Answer::Refused {
                    reason: "the address does not parse".to_owned(),
                    bounce: None,
                    account: false,
                },
            }));
        }
        answers
    }

    /// Sends `request` (for `messages` recipients) and reads Mailgun's answer.
    async fn post(
        &self,
        request: reqwest::RequestBuilder,
        messages: u64,
    ) -> Result<Delivery, ProviderError> {
        let watch = metrics::Stopwatch::start();
        let response = request
            .basic_auth("api", Some(self.key.expose_secret()))
            .send()
            .await
            .map_err(|e| {
                unanswered("mailgun", "Mailgun", &e, messages, watch.elapsed()).into_error()
            })?;
        let status = response.status();
        metrics::provider_send(
            "mailgun",
            SendResult::of_status(status.as_u16()),
            messages,
            watch.elapsed(),
        );
        let retry_after = http::retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let reply: Reply = serde_json::from_str(&text).unwrap_or_default();
        if status == StatusCode::OK {
            return Ok(Delivery {
                provider_message_id: reply.id,
            });
        }
        let words = match reply.message.is_empty() {
            true => text.chars().take(500).collect(),
            false => reply.message,
        };
        let message = format!("Mailgun answered {status}: {words}");
        Err(http::refused(status, message, retry_after, ACCOUNT))
    }

    /// The sending domain's state (`GET /v3/domains/{domain}`), for `mailroom doctor`.
    ///
    /// # Errors
    /// Mailgun unreachable, or its answer when not 200.
    pub async fn domain_state(&self) -> Result<String, DomainError> {
        #[derive(Deserialize)]
        struct Domain {
            state: String,
        }
        #[derive(Deserialize)]
        struct Answer {
            domain: Domain,
        }
        let mut url = self.base.clone();
        url.set_path(&format!("/v3/domains/{}", self.domain));
        let response = (self.client.get(url))
            .basic_auth("api", Some(self.key.expose_secret()))
            .send()
            .await
            .map_err(|e| DomainError::Unreachable(without_url(&e)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            let reply: Reply = serde_json::from_str(&text).unwrap_or_default();
            return Err(DomainError::Answered(status, reply.message));
        }
        (serde_json::from_str::<Answer>(&text))
            .map(|a| a.domain.state)
            .map_err(DomainError::NotADomain)
    }

    /// The sending domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

/// Why Mailgun did not say what state the domain is in.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("Mailgun unreachable: {0}")]
    Unreachable(String),
    #[error("Mailgun answered {0}: {1}")]
    Answered(StatusCode, String),
    #[error("Mailgun's answer is not a domain: {0}")]
    NotADomain(serde_json::Error),
}

/// The `o:` options: tags (the first three categories) and tracking.
fn options(categories: &[String], opens: bool, clicks: bool) -> Vec<(&'static str, String)> {
    let yes_no = |on: bool| if on { "yes" } else { "no" }.to_owned();
    let mut options: Vec<(&'static str, String)> = (categories.iter())
        .take(MAX_TAGS)
        .map(|c| ("o:tag", c.clone()))
        .collect();
    options.push(("o:tracking", yes_no(opens || clicks)));
    options.push(("o:tracking-opens", yes_no(opens)));
    options.push(("o:tracking-clicks", yes_no(clicks)));
    options
}

/// The `v:` variables of a single message: mailroom's id and the caller's metadata.
fn variables(email: &OutgoingEmail) -> BTreeMap<String, String> {
    let mut variables = email.metadata.clone();
    variables.insert("mailroom_id".to_owned(), email.id.to_string());
    variables
}

/// The form of one batch call for `recipients` of `batch`, each with its `To`. Slot `n` is
/// `%recipient.tN%` in the subject and text and `%recipient.hN%` (HTML-escaped) in the HTML;
/// headers and metadata that differ between recipients are `%recipient.xN%` and
/// `%recipient.mN%`.
fn batch_form(
    batch: &Batch<'_>,
    recipients: &[(&BatchRecipient<'_>, &str)],
) -> Vec<(String, String)> {
    let slot = |prefix: char| move |n: usize| format!("%recipient.{prefix}{n}%");
    let mut form: Vec<(String, String)> = vec![
        ("from".to_owned(), batch.from.to_string()),
        ("subject".to_owned(), batch.body.subject.tagged(&slot('t'))),
        ("text".to_owned(), batch.body.text.tagged(&slot('t'))),
    ];
    if let Some(html) = &batch.body.html {
        form.push(("html".to_owned(), html.tagged(&slot('h'))));
    }
    if let Some(reply_to) = batch.reply_to {
        form.push(("h:Reply-To".to_owned(), reply_to.to_string()));
    }
    let tracking = batch.tracking;
    for (name, value) in options(batch.categories, tracking.opens, tracking.clicks) {
        form.push((name.to_owned(), value));
    }
    for (name, value) in &batch.metadata {
        form.push((format!("v:{name}"), value.clone()));
    }
    let people: Vec<&BatchRecipient<'_>> = recipients.iter().map(|(r, _)| *r).collect();
    let headers = varying(&people, |r| &r.headers);
    let metadata = varying(&people, |r| &r.metadata);
    for (n, name) in headers.iter().enumerate() {
        form.push((format!("h:{name}"), format!("%recipient.x{n}%")));
    }
    for (n, name) in metadata.iter().enumerate() {
        form.push((format!("v:{name}"), format!("%recipient.m{n}%")));
    }
    if let Some(first) = people.first() {
        // Headers every recipient has alike go once, as they are.
        for (name, value) in &first.headers {
            if !headers.contains(name) {
                form.push((format!("h:{name}"), value.clone()));
            }
        }
    }
    let mut variables = serde_json::Map::with_capacity(recipients.len());
    for (recipient, to) in recipients {
        form.push(("to".to_owned(), (*to).to_owned()));
        variables.insert(
            recipient.to.email.to_owned(),
            recipient_variables(recipient, &headers, &metadata),
        );
    }
    form.push((
        "recipient-variables".to_owned(),
        serde_json::Value::Object(variables).to_string(),
    ));
    form
}

/// The names of the `(name, value)` pairs `of` gives that are not alike for every recipient.
fn varying<'a>(
    recipients: &[&'a BatchRecipient<'_>],
    of: impl Fn(&'a BatchRecipient<'_>) -> &'a Vec<(&'static str, String)>,
) -> Vec<&'static str> {
    let Some(first) = recipients.first() else {
        return Vec::new();
    };
    let mut names: Vec<&'static str> = Vec::new();
    for recipient in recipients {
        for (name, _) in of(recipient) {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    names.retain(|name| {
        let shared = of(first).iter().find(|(n, _)| n == name);
        !shared.is_some_and(|pair| recipients.iter().all(|r| of(r).contains(pair)))
    });
    names
}

/// One recipient's variables: their slots as text and as HTML, their varying headers and
/// metadata (empty where they have none).
fn recipient_variables(
    recipient: &BatchRecipient<'_>,
    headers: &[&'static str],
    metadata: &[&'static str],
) -> serde_json::Value {
    let mut variables = serde_json::Map::new();
    for (n, value) in recipient.values.iter().enumerate() {
        let mut html = String::with_capacity(value.len());
        escape_into(&mut html, value);
        variables.insert(format!("t{n}"), value.clone().into());
        variables.insert(format!("h{n}"), html.into());
    }
    let value_of = |pairs: &[(&'static str, String)], name: &str| {
        (pairs.iter())
            .find(|(n, _)| *n == name)
            .map_or_else(String::new, |(_, v)| v.clone())
    };
    for (n, name) in headers.iter().enumerate() {
        variables.insert(format!("x{n}"), value_of(&recipient.headers, name).into());
    }
    for (n, name) in metadata.iter().enumerate() {
        variables.insert(format!("m{n}"), value_of(&recipient.metadata, name).into());
    }
    serde_json::Value::Object(variables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Cause;

    #[test]
    fn each_status_means_what_mailgun_documents() {
        let failed = |code: u16| {
            http::refused(
                StatusCode::from_u16(code).unwrap(),
                String::new(),
                None,
                ACCOUNT,
            )
        };
        let cause = |code: u16| match failed(code) {
            ProviderError::Transient { cause, .. } => Some(cause),
            ProviderError::Permanent { .. } => None,
        };
        assert_eq!(cause(429), Some(Cause::Throttled));
        assert_eq!(cause(503), Some(Cause::Outage));
        for account in [401, 402, 403, 404] {
            let error = failed(account);
            assert!(
                matches!(error, ProviderError::Permanent { account: true, .. }),
                "{account}"
            );
        }
        for message in [400, 413] {
            let error = failed(message);
            assert!(
                matches!(error, ProviderError::Permanent { account: false, .. }),
                "{message}"
            );
        }
    }
}
