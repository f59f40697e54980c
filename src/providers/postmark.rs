//! The Postmark provider: `POST {POSTMARK_API_URL}/email` for one message and `/email/batch`
//! for up to 500, authenticated with `X-Postmark-Server-Token`.
//!
//! Postmark answers 200 with `ErrorCode` 0 and a `MessageID` for a message it took; a refused
//! one is an HTTP 422 (a batch answers 200 with one result per message, each with its own
//! `ErrorCode`). Codes 300 (an invalid request: an address, an empty body) and 406 (an inactive
//! recipient: it bounced or complained before) are about the message; 10 (a bad token), 400 and
//! 401 (sender signature), 405, 412 and 413 (the account) refuse every message; 429 and 5xx,
//! timeouts and lost connections are transient. Single mail goes to the message stream,
//! campaigns to the broadcast stream. Postmark's own tracking stays off: mailroom tracks.

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine;
use lettre::message::Mailbox;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{
    Cause, Delivery, OutgoingEmail, ProviderError,
    batch::{self, Answer, Batch, PerMessage},
    bounce::{Bounce, Class},
    http::{self, unanswered, without_url},
};
use crate::{
    config::Settings,
    metrics::{self, SendResult},
};

/// Postmark's most messages in one batch call.
pub(super) const MAX_BATCH: usize = 500;

/// The Postmark client.
#[derive(Clone)]
pub struct Postmark {
    client: reqwest::Client,
    email_url: reqwest::Url,
    batch_url: reqwest::Url,
    token: SecretString,
    message_stream: String,
    broadcast_stream: String,
}

impl std::fmt::Debug for Postmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postmark")
            .field("email_url", &self.email_url.as_str())
            .finish_non_exhaustive()
    }
}

/// One message as Postmark's `/email` takes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Message<'a> {
    from: String,
    to: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    cc: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    bcc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<String>,
    subject: &'a str,
    text_body: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    html_body: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<Header<'a>>,
    /// Postmark keeps one tag a message: the first category.
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    metadata: BTreeMap<&'a str, String>,
    message_stream: &'a str,
    track_opens: bool,
    track_links: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Header<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Attachment<'a> {
    name: &'a str,
    content: String,
    content_type: &'a str,
    #[serde(rename = "ContentID", skip_serializing_if = "Option::is_none")]
    content_id: Option<String>,
}

/// Postmark's answer about one message (`/email`, each item of `/email/batch`, and errors).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Reply {
    #[serde(default)]
    error_code: u32,
    #[serde(default)]
    message: String,
    #[serde(rename = "MessageID", default)]
    message_id: Option<String>,
}

impl Postmark {
    /// The client for `POSTMARK_API_URL` with `POSTMARK_SERVER_TOKEN` and the two streams.
    ///
    /// # Errors
    /// When the token is missing, the URL is not one, or the client cannot be built.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let token = (settings.postmark_server_token.clone())
            .context("MAILROOM_PROVIDER=postmark needs POSTMARK_SERVER_TOKEN")?;
        let base = settings.postmark_api_url.trim_end_matches('/');
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{base}{path}"))
                .with_context(|| format!("POSTMARK_API_URL {base:?} is not a URL"))
        };
        Ok(Self {
            client: http::client()?,
            email_url: url("/email")?,
            batch_url: url("/email/batch")?,
            token,
            message_stream: settings.postmark_message_stream.clone(),
            broadcast_stream: settings.postmark_broadcast_stream.clone(),
        })
    }

    /// Sends `email` on the message stream.
    ///
    /// # Errors
    /// See the module documentation for which refusals are permanent.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, ProviderError> {
        let body = message(email, &self.message_stream);
        let result = self.post::<Reply>(&self.email_url, &body, 1).await?;
        answer_of(result, sole_recipient(email)).into()
    }

    /// Sends one message per recipient of `batch` on the broadcast stream, [`MAX_BATCH`] a
    /// call; each answered by its own result.
    pub async fn send_batch(&self, batch: &Batch<'_>, each: &dyn PerMessage) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(batch.recipients.len());
        let all: Vec<usize> = (0..batch.recipients.len()).collect();
        for chunk in all.chunks(MAX_BATCH) {
            let mut emails = Vec::with_capacity(chunk.len());
            let mut slots: Vec<Result<usize, Answer>> = Vec::with_capacity(chunk.len());
            for &n in chunk {
                match batch::message_for(batch, n, each) {
                    Ok(email) => {
                        slots.push(Ok(emails.len()));
                        emails.push(email);
                    }
                    Err(refused) => slots.push(Err(refused)),
                }
            }
            let results = self.send_many(&emails).await;
            answers.extend(slots.into_iter().map(|slot| match slot {
                Ok(i) => results[i].clone(),
                Err(refused) => refused,
            }));
        }
        answers
    }

    /// One batch call for `emails`: an answer for each, in order.
    async fn send_many(&self, emails: &[OutgoingEmail]) -> Vec<Answer> {
        if emails.is_empty() {
            return Vec::new();
        }
        let body: Vec<Message<'_>> = (emails.iter())
            .map(|e| message(e, &self.broadcast_stream))
            .collect();
        let count = emails.len() as u64;
        match self.post::<Vec<Reply>>(&self.batch_url, &body, count).await {
            Ok(results) if results.len() == emails.len() => (results.into_iter())
                .zip(emails)
                .map(|(result, email)| answer_of(result, sole_recipient(email)))
                .collect(),
            // Postmark answers every message of a batch: another shape is not knowable.
            Ok(_) => vec![
                Answer::Unknown {
                    reason: "Postmark answered a batch with another number of results".to_owned(),
                };
                emails.len()
            ],
            Err(failed) => vec![Answer::from(Err(failed)); emails.len()],
        }
    }

    /// POSTs `body` (for `messages` messages) and reads Postmark's answer as `T`.
    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        url: &reqwest::Url,
        body: &impl Serialize,
        messages: u64,
    ) -> Result<T, ProviderError> {
        let watch = metrics::Stopwatch::start();
        let response = (self.client.post(url.clone()))
            .header("X-Postmark-Server-Token", self.token.expose_secret())
            .header("Accept", "application/json")
            .json(body)
            .send()
            .await
            .map_err(|e| {
                unanswered("postmark", "Postmark", &e, messages, watch.elapsed()).into_error()
            })?;
        let status = response.status();
        let result = SendResult::of_status(status.as_u16());
        metrics::provider_send("postmark", result, messages, watch.elapsed());
        let retry_after = http::retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if status == StatusCode::OK {
            return serde_json::from_str(&text).map_err(|e| {
                ProviderError::unanswered(format!("Postmark's answer did not parse: {e}"))
            });
        }
        if status == StatusCode::UNPROCESSABLE_ENTITY
            && let Ok(single) = serde_json::from_str::<T>(&text)
        {
            // A refused single message: its result says which code.
            return Ok(single);
        }
        let message = format!("Postmark answered {status}: {}", words_of(&text));
        // 401 and 403: a bad token; a refused account is a 422 with its code, read above.
        Err(http::refused(status, message, retry_after, &[401, 403]))
    }
}

/// Why Postmark did not say which server a token belongs to (`mailroom doctor`).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("Postmark unreachable: {0}")]
    Unreachable(String),
    #[error("Postmark answered {0}: {1}")]
    Answered(StatusCode, String),
    #[error("Postmark's answer is not a server: {0}")]
    NotAServer(serde_json::Error),
}

impl Postmark {
    /// The name of the server the token belongs to (`GET /server`).
    ///
    /// # Errors
    /// See [`ServerError`].
    pub async fn server_name(&self) -> Result<String, ServerError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Server {
            name: String,
        }
        let mut url = self.email_url.clone();
        url.set_path("/server");
        let response = (self.client.get(url))
            .header("X-Postmark-Server-Token", self.token.expose_secret())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| ServerError::Unreachable(without_url(&e)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            return Err(ServerError::Answered(status, words_of(&text)));
        }
        (serde_json::from_str::<Server>(&text))
            .map(|s| s.name)
            .map_err(ServerError::NotAServer)
    }
}

/// What a result means for its message; `sole` is its one recipient, when it has one (a 406
/// is then that person's bounce).
fn answer_of(result: Reply, sole: Option<&str>) -> Answer {
    let reason = || {
        format!(
            "Postmark refused it ({}): {}",
            result.error_code, result.message
        )
    };
    match result.error_code {
        0 => Answer::Sent(Delivery {
            provider_message_id: result.message_id.clone(),
        }),
        406 => Answer::Refused {
            bounce: sole.map(|to| {
                Box::new(Bounce {
                    recipient: to.to_owned(),
                    code: 0,
                    status: None,
                    class: Class::Hard,
                    reply: reason(),
                })
            }),
            reason: reason(),
            account: false,
        },
        // Postmark's maintenance: nothing was taken.
        100 => Answer::NotSent {
            reason: reason(),
            retry_after: None,
            cause: Cause::Outage,
        },
        429 => Answer::NotSent {
            reason: reason(),
            retry_after: None,
            cause: Cause::Throttled,
        },
        // A bad token, a sender signature missing or unconfirmed, the account out of credits
        // or pending approval: every message would be refused.
        10 | 400 | 401 | 405 | 412 | 413 => Answer::Refused {
            reason: reason(),
            bounce: None,
            account: true,
        },
        _ => Answer::Refused {
            reason: reason(),
            bounce: None,
            account: false,
        },
    }
}

/// The message's one recipient, when it has exactly one.
fn sole_recipient(email: &OutgoingEmail) -> Option<&str> {
    match (
        email.to.as_slice(),
        email.cc.is_empty(),
        email.bcc.is_empty(),
    ) {
        ([only], true, true) => Some(only.email.as_ref()),
        _ => None,
    }
}

/// `email` as Postmark's message on `stream`.
fn message<'a>(email: &'a OutgoingEmail, stream: &'a str) -> Message<'a> {
    let list = |mailboxes: &[Mailbox]| {
        (mailboxes.iter())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut metadata: BTreeMap<&str, String> = (email.metadata.iter())
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    metadata.insert("mailroom_id", email.id.to_string());
    Message {
        from: email.from.to_string(),
        to: list(&email.to),
        cc: list(&email.cc),
        bcc: list(&email.bcc),
        reply_to: email.reply_to.as_ref().map(ToString::to_string),
        subject: &email.subject,
        text_body: &email.text,
        html_body: email.html.as_deref(),
        headers: (email.headers.iter())
            .map(|(name, value)| Header { name, value })
            .collect(),
        tag: email.categories.first().map(String::as_str),
        metadata,
        message_stream: stream,
        track_opens: false,
        track_links: "None",
        attachments: (email.attachments.iter())
            .map(|a| Attachment {
                name: &a.filename,
                content: base64::engine::general_purpose::STANDARD.encode(&a.bytes),
                content_type: &a.content_type,
                content_id: a.content_id.as_ref().map(|id| format!("cid:{id}")),
            })
            .collect(),
    }
}

/// Postmark's `Message` from an error body; the text itself (bounded) when it is not JSON.
fn words_of(body: &str) -> String {
    match serde_json::from_str::<Reply>(body) {
        Ok(result) if !result.message.is_empty() => {
            format!("{} ({})", result.message, result.error_code)
        }
        _ => body.chars().take(500).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u32) -> Reply {
        Reply {
            error_code: code,
            message: "words".to_owned(),
            message_id: (code == 0).then(|| "m-1".to_owned()),
        }
    }

    #[test]
    fn each_error_code_means_what_postmark_documents_for_its_message() {
        assert_eq!(
            answer_of(reply(0), None),
            Answer::Sent(Delivery {
                provider_message_id: Some("m-1".to_owned())
            })
        );
        // An inactive recipient: that person's bounce when the message had only them.
        let Answer::Refused { bounce, reason, .. } = answer_of(reply(406), Some("a@example.com"))
        else {
            panic!("406 is a refusal");
        };
        assert!(reason.contains("406"), "{reason}");
        let bounce = bounce.expect("a bounce");
        assert_eq!(
            (bounce.recipient.as_str(), bounce.class),
            ("a@example.com", Class::Hard)
        );
        assert!(matches!(
            answer_of(reply(406), None),
            Answer::Refused { bounce: None, .. }
        ));
        // An invalid request is that message's; the account's codes fail the provider over.
        let invalid = answer_of(reply(300), Some("a@example.com"));
        assert!(matches!(invalid, Answer::Refused { bounce: None, .. }));
        assert!(!invalid.provider_failed());
        for account in [10, 400, 401, 405, 412, 413] {
            assert!(
                answer_of(reply(account), None).provider_failed(),
                "{account}"
            );
        }
        assert!(answer_of(reply(100), None).provider_failed());
        let throttled = answer_of(reply(429), None);
        assert!(throttled.throttled() && !throttled.provider_failed());
    }
}
