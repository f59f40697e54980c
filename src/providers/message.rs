//! An email ready to send: the job's message parsed into typed parts, with the defaults filled
//! in (the sender, a generated text part), and its RFC 5322 form for SMTP and the outbox.

use std::collections::BTreeMap;

use base64::Engine;
use lettre::message::{
    Attachment, Mailbox, Message, MultiPart, SinglePart,
    header::{ContentType, HeaderName, HeaderValue},
};
use mailroom_jobs::SendEmail;

/// Why a job's message cannot become an email. Permanent: the job carries it to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ComposeError(String);

/// A decoded attachment.
#[derive(Debug, Clone)]
pub struct FileAttachment {
    /// The file's name.
    pub filename: String,
    /// Its MIME type as given.
    pub content_type: String,
    /// The file itself.
    pub bytes: Vec<u8>,
    /// The inline content id, when it is shown inline.
    pub content_id: Option<String>,
}

/// One email with every part a provider needs.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    /// mailroom's message id.
    pub id: crate::domain::MessageId,
    /// The sender.
    pub from: Mailbox,
    /// Recipients.
    pub to: Vec<Mailbox>,
    /// Carbon-copy recipients.
    pub cc: Vec<Mailbox>,
    /// Blind carbon-copy recipients.
    pub bcc: Vec<Mailbox>,
    /// Where replies go.
    pub reply_to: Option<Mailbox>,
    /// The subject.
    pub subject: String,
    /// The plain-text part: given, or generated from the HTML.
    pub text: String,
    /// The HTML part, when given.
    pub html: Option<String>,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// Categories.
    pub categories: Vec<String>,
    /// The caller's metadata.
    pub metadata: BTreeMap<String, String>,
    /// Attachments.
    pub attachments: Vec<FileAttachment>,
    /// It carries a secret link (a verification or reset token): providers must not track it.
    pub secret_links: bool,
    /// Who bounces of it belong to ([`super::bounce::Owner`]): the VERP envelope
    /// sender names it when `MAILROOM_BOUNCE_DOMAIN` is set.
    pub bounce_owner: super::bounce::Owner,
    /// The SendGrid unsubscribe group (ASM) it is sent under, for list mail
    /// (`MAILROOM_SENDGRID_GROUPS`).
    pub unsubscribe_group: Option<u32>,
    /// The open and click tracking it asked for (SendGrid's `tracking_settings`; mailroom's
    /// own tracking has already rewritten the HTML of SMTP and outbox mail). Never any with a
    /// secret link.
    pub tracking: mailroom_jobs::Tracking,
}

fn mailbox(field: &str, value: &mailroom_jobs::Mailbox) -> Result<Mailbox, ComposeError> {
    let address = value
        .email
        .parse()
        .map_err(|e| ComposeError(format!("{field}: {:?} is not an address: {e}", value.email)))?;
    Ok(Mailbox::new(value.name.clone(), address))
}

fn mailboxes(field: &str, values: &[mailroom_jobs::Mailbox]) -> Result<Vec<Mailbox>, ComposeError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| mailbox(&format!("{field}[{i}]"), v))
        .collect()
}

impl OutgoingEmail {
    /// Composes the email of `job`, sent from `default_from` unless the job names a sender.
    ///
    /// # Errors
    /// When a part cannot be parsed (the job was checked at enqueue, so only a payload pushed
    /// around the checks gets here).
    pub fn compose(job: &SendEmail, default_from: &Mailbox) -> Result<Self, ComposeError> {
        let message = &job.message;
        let from = match &message.from {
            Some(from) => mailbox("from", from)?,
            None => default_from.clone(),
        };
        let subject = message
            .subject
            .clone()
            .ok_or_else(|| ComposeError("subject: missing".to_owned()))?;
        let html = message.html.clone().filter(|h| !h.trim().is_empty());
        let text = match (&message.text, &html) {
            (Some(text), _) if !text.trim().is_empty() => text.clone(),
            (_, Some(html)) => text_from_html(html),
            _ => return Err(ComposeError("text: no body".to_owned())),
        };
        let attachments = message
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&a.content)
                    .map_err(|e| ComposeError(format!("attachments[{i}].content: {e}")))?;
                Ok(FileAttachment {
                    filename: a.filename.clone(),
                    content_type: a.content_type.clone(),
                    bytes,
                    content_id: a.content_id.clone(),
                })
            })
            .collect::<Result<_, ComposeError>>()?;
        let secret_links = message
            .template
            .as_ref()
            .is_some_and(|t| mailroom_jobs::templates::has_secret_link(&t.name));
        Ok(Self {
            id: job.id,
            from,
            to: mailboxes("to", &message.to)?,
            cc: mailboxes("cc", &message.cc)?,
            bcc: mailboxes("bcc", &message.bcc)?,
            reply_to: message
                .reply_to
                .as_ref()
                .map(|r| mailbox("reply_to", r))
                .transpose()?,
            subject,
            text,
            html,
            headers: message.headers.clone(),
            categories: message.categories.clone(),
            metadata: message.metadata.clone(),
            attachments,
            secret_links,
            bounce_owner: super::bounce::Owner::Message(job.id),
            unsubscribe_group: None,
            tracking: if secret_links {
                mailroom_jobs::Tracking::default()
            } else {
                message.tracking.unwrap_or_default()
            },
        })
    }

    /// The `Message-ID` mailroom gives this email: its id at the sender's domain.
    pub fn message_id(&self) -> String {
        format!("<{}@{}>", self.id, self.from.email.domain())
    }

    /// The email as it goes on the wire: its envelope and its bytes, DKIM-signed when `dkim`
    /// has a key for the From address's domain.
    ///
    /// # Errors
    /// Permanent: a message lettre cannot build, or one the signer refuses.
    ///
    /// With a `bounce_domain`, the envelope sender is the VERP address naming the message's
    /// owner, and the bytes start with the `Return-Path` a receiving server would add (the
    /// outbox shows it; an SMTP relay replaces it).
    pub fn wire(
        &self,
        wire: &Wire,
    ) -> Result<(lettre::address::Envelope, Vec<u8>), super::ProviderError> {
        let message = self
            .to_mime()
            .map_err(|e| super::ProviderError::permanent(e.to_string()))?;
        let raw = match &wire.dkim {
            Some(keys) => keys
                .sign(self.from.email.domain(), message.formatted())
                .map_err(|e| super::ProviderError::permanent(e.to_string()))?,
            None => message.formatted(),
        };
        let Some(domain) = &wire.bounce_domain else {
            return Ok((message.envelope().clone(), raw));
        };
        let verp = format!("{}@{domain}", super::bounce::verp_local(&self.bounce_owner));
        let sender: lettre::Address = verp.parse().map_err(|e| {
            super::ProviderError::permanent(format!("the VERP address {verp}: {e}"))
        })?;
        let envelope =
            lettre::address::Envelope::new(Some(sender), message.envelope().to().to_vec())
                .map_err(|e| super::ProviderError::permanent(e.to_string()))?;
        // First, where a receiving server puts it (it is not signed: servers rewrite it).
        let mut with_path = format!("Return-Path: <{verp}>\r\n").into_bytes();
        with_path.extend_from_slice(&raw);
        Ok((envelope, with_path))
    }

    /// The email in RFC 5322 form: `Message-ID`, `Date`, RFC 2047-encoded non-ASCII headers,
    /// `multipart/alternative` text and HTML, then `multipart/mixed` or `related` attachments.
    ///
    /// # Errors
    /// When lettre refuses a part (a malformed content type that slipped past the checks).
    pub fn to_mime(&self) -> Result<Message, ComposeError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(self.subject.clone())
            .message_id(Some(self.message_id()));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        for cc in &self.cc {
            builder = builder.cc(cc.clone());
        }
        for bcc in &self.bcc {
            builder = builder.bcc(bcc.clone());
        }
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        for (name, value) in &self.headers {
            let name = HeaderName::new_from_ascii(name.clone())
                .map_err(|_| ComposeError(format!("headers.{name}: not a header name")))?;
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
        let alternative = self
            .html
            .as_ref()
            .map(|html| MultiPart::alternative_plain_html(self.text.clone(), html.clone()));
        if self.attachments.is_empty() {
            let built = match alternative {
                Some(alternative) => builder.multipart(alternative),
                None => builder.singlepart(SinglePart::plain(self.text.clone())),
            };
            return built.map_err(|e| ComposeError(format!("could not build the message: {e}")));
        }
        let mut mixed = match alternative {
            Some(alternative) => MultiPart::mixed().multipart(alternative),
            None => MultiPart::mixed().singlepart(SinglePart::plain(self.text.clone())),
        };
        for file in &self.attachments {
            let content_type = ContentType::parse(&file.content_type).map_err(|_| {
                ComposeError(format!("attachment {}: bad content type", file.filename))
            })?;
            let attachment = match &file.content_id {
                Some(id) => Attachment::new_inline_with_name(id.clone(), file.filename.clone()),
                None => Attachment::new(file.filename.clone()),
            };
            mixed = mixed.singlepart(attachment.body(file.bytes.clone(), content_type));
        }
        builder
            .multipart(mixed)
            .map_err(|e| ComposeError(format!("could not build the message: {e}")))
    }
}

/// What the providers that write MIME themselves (SMTP, the outbox) add on the wire.
#[derive(Debug, Clone, Default)]
pub struct Wire {
    /// DKIM keys by sending domain (`MAILROOM_DKIM_KEYS`).
    pub dkim: Option<std::sync::Arc<super::dkim::DkimKeys>>,
    /// The VERP envelope sender's domain (`MAILROOM_BOUNCE_DOMAIN`).
    pub bounce_domain: Option<String>,
}

impl Wire {
    /// What `settings` ask for.
    ///
    /// # Errors
    /// When a key cannot be read or the bounce domain is not a domain.
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        Ok(Self {
            dkim: super::dkim::DkimKeys::from_settings(settings)?,
            bounce_domain: settings.bounce_domain()?,
        })
    }
}

/// A plain-text version of `html` for mail clients that show no HTML: paragraphs kept, links
/// written out as footnotes with their full URLs.
pub fn text_from_html(html: &str) -> String {
    html2text::from_read(html.as_bytes(), 78).unwrap_or_else(|_| html.to_owned())
}
