//! SendGrid Inbound Parse POSTs into [`InboundEmail`]: both modes.
//!
//! - **Parsed** (the default): form fields `headers`, `from`, `to`, `cc`, `subject`, `text`,
//!   `html`, `envelope`, `attachment-info`, `attachmentN` files and so on, the text fields in the
//!   charsets named by the `charsets` field (SendGrid passes `text` and `html` on in their
//!   original charset).
//! - **Raw** ("Send Raw"): the whole MIME message in the `email` field, parsed with mail-parser.
//!
//! The form is read with multer; bodies whose lines end in a bare LF (copies normalized by git)
//! are accepted as well as the CRLF of the wire format.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// A received message, normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InboundEmail {
    pub id: String,
    /// The From header, decoded.
    pub from: String,
    /// The To header, decoded.
    pub to: String,
    /// The Cc header, decoded (empty when absent).
    pub cc: String,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// Every header, in order, each a pair `[name, value]`.
    // Described as arrays of strings: generators do not read the tuple's `items: false`.
    #[schema(value_type = Vec<Vec<String>>)]
    pub headers: Vec<(String, String)>,
    /// The SMTP envelope: `{to: [...], from}`.
    pub envelope: Option<Envelope>,
    /// SpamAssassin's score, when SendGrid's spam check is on.
    pub spam_score: Option<f64>,
    /// The SPF result (`pass`, `softfail`, …).
    pub spf: Option<String>,
    /// The DKIM results, as SendGrid writes them (`{@example.com : pass}`).
    pub dkim: Option<String>,
    /// The connecting server's IP.
    pub sender_ip: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
    pub received_at: DateTime<Utc>,
    /// The inbound byte budget (`MAILROOM_INBOUND_MAX_BYTES`) was spent when this message came:
    /// its attachments are described but their bodies not kept, and `text` and `html` are cut
    /// to their first 64 KiB.
    #[serde(default)]
    pub over_budget: bool,
}

/// The envelope SendGrid saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Envelope {
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub from: Option<String>,
}

/// One attachment's description; its body is stored apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentInfo {
    pub filename: Option<String>,
    pub content_type: String,
    pub size: usize,
    pub content_id: Option<String>,
    /// Hex SHA-256 of the body.
    pub sha256: String,
    /// Whether the body is kept (it is not when over `MAILROOM_INBOUND_MAX_ATTACHMENT_BYTES`).
    pub stored: bool,
}

/// A parsed POST: the message and its attachment bodies (same order as `attachments`).
#[derive(Debug)]
pub struct Parsed {
    pub email: InboundEmail,
    pub bodies: Vec<Option<Bytes>>,
    /// The raw message, in raw mode: delivery and complaint reports are read from it
    /// (`bounces::reports`).
    pub raw: Option<Bytes>,
}

/// Why a POST could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("not multipart/form-data: {0}")]
    NotMultipart(String),
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    #[error("the raw message in `email` could not be parsed as MIME")]
    BadMime,
    #[error("neither `email` (raw mode) nor `from` (parsed mode) is present")]
    Empty,
}

/// One form part.
struct Part {
    filename: Option<String>,
    content_type: Option<String>,
    data: Bytes,
}

/// Reads the multipart body of `content_type` into its parts.
async fn read_form(content_type: &str, body: Bytes) -> Result<HashMap<String, Part>, InboundError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| InboundError::NotMultipart(e.to_string()))?;
    let body = with_crlf(body, &boundary);
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut parts = HashMap::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| InboundError::Malformed(e.to_string()))?
    {
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(ToString::to_string);
        let data = field
            .bytes()
            .await
            .map_err(|e| InboundError::Malformed(e.to_string()))?;
        parts.insert(
            name,
            Part {
                filename,
                content_type,
                data,
            },
        );
    }
    if parts.is_empty() {
        return Err(InboundError::Malformed("no form fields".to_owned()));
    }
    Ok(parts)
}

/// multer expects CRLF before each boundary. A body that uses bare LF throughout (a sample
/// copied through git) gets CRLF; a body with CRLF boundaries is left byte for byte.
fn with_crlf(body: Bytes, boundary: &str) -> Bytes {
    let crlf_delimiter = format!("\r\n--{boundary}");
    let starts_crlf = body.starts_with(format!("--{boundary}\r\n").as_bytes());
    if starts_crlf || find(&body, crlf_delimiter.as_bytes()) {
        return body;
    }
    let mut out = Vec::with_capacity(body.len() + body.len() / 20);
    let mut previous = 0u8;
    for &byte in body.iter() {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        previous = byte;
    }
    Bytes::from(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Decodes `bytes` in `charset` (a WHATWG label), UTF-8 when unknown or absent; a UTF-8 BOM is
/// dropped.
fn decode(bytes: &[u8], charset: Option<&str>) -> String {
    let encoding = charset
        .and_then(|c| encoding_rs::Encoding::for_label(c.trim().as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    let (text, _, _) = encoding.decode(bytes);
    text.into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A form's parts, and the charsets SendGrid says its text fields are in.
struct Form {
    parts: HashMap<String, Part>,
    charsets: HashMap<String, String>,
}

impl Form {
    /// Text field `name`, decoded.
    fn field(&self, name: &str) -> Option<String> {
        (self.parts.get(name)).map(|p| decode(&p.data, self.charsets.get(name).map(String::as_str)))
    }

    /// Text field `name`, decoded and trimmed.
    fn trimmed(&self, name: &str) -> Option<String> {
        self.field(name).map(|s| s.trim().to_owned())
    }
}

/// Parses a POST with `content_type` and `body`, received at `received_at`, keeping
/// attachment bodies up to `max_attachment` bytes.
///
/// # Errors
/// When the body is not a form SendGrid could have sent.
pub async fn parse(
    content_type: &str,
    body: Bytes,
    received_at: DateTime<Utc>,
    max_attachment: usize,
) -> Result<Parsed, InboundError> {
    let parts = read_form(content_type, body).await?;
    let charsets: HashMap<String, String> = parts
        .get("charsets")
        .and_then(|p| serde_json::from_slice(&p.data).ok())
        .unwrap_or_default();
    let mut form = Form { parts, charsets };
    let email = InboundEmail {
        id: uuid::Uuid::now_v7().to_string(),
        from: String::new(),
        to: String::new(),
        cc: String::new(),
        subject: String::new(),
        text: None,
        html: None,
        headers: Vec::new(),
        envelope: (form.parts.get("envelope"))
            .and_then(|p| serde_json::from_slice::<Envelope>(&p.data).ok()),
        spam_score: form.field("spam_score").and_then(|s| s.trim().parse().ok()),
        spf: form.trimmed("SPF"),
        dkim: form.trimmed("dkim"),
        sender_ip: form.trimmed("sender_ip"),
        attachments: Vec::new(),
        received_at,
        over_budget: false,
    };
    match form.parts.remove("email") {
        Some(raw) => from_raw(email, raw.data, &form, max_attachment),
        None => from_fields(email, form, max_attachment),
    }
}

/// Raw mode: the message itself, parsed here; the form's copies fill what it lacks.
fn from_raw(
    mut email: InboundEmail,
    whole: Bytes,
    form: &Form,
    max_attachment: usize,
) -> Result<Parsed, InboundError> {
    // A UTF-8 BOM before the headers (the C# samples have one) is not part of the message.
    let raw = whole.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&whole);
    let message = MessageParser::default()
        .parse(raw)
        .filter(|m| !m.headers().is_empty())
        .ok_or(InboundError::BadMime)?;
    email.from = addresses(message.from());
    email.to = addresses(message.to());
    email.cc = addresses(message.cc());
    email.subject = message.subject().unwrap_or_default().to_owned();
    email.text = message.body_text(0).map(|t| t.into_owned());
    email.html = message.body_html(0).map(|h| h.into_owned());
    let raw_bytes = message.raw_message();
    email.headers = message
        .headers()
        .iter()
        .map(|h| {
            let start = h.offset_start as usize;
            let end = (h.offset_end as usize).min(raw_bytes.len());
            let value = String::from_utf8_lossy(raw_bytes.get(start..end).unwrap_or_default());
            (h.name.as_str().to_owned(), unfold(&value))
        })
        .collect();
    let mut bodies = Vec::new();
    for part in message.attachments() {
        let (info, body) = attachment_of(part, max_attachment);
        email.attachments.push(info);
        bodies.push(body);
    }
    for (name, slot) in [
        ("from", &mut email.from),
        ("to", &mut email.to),
        ("cc", &mut email.cc),
        ("subject", &mut email.subject),
    ] {
        if slot.is_empty() {
            *slot = form.field(name).unwrap_or_default();
        }
    }
    Ok(Parsed {
        email,
        bodies,
        raw: Some(whole.clone()),
    })
}

/// Addresses as one line: `Name <address>, address`.
fn addresses(a: Option<&mail_parser::Address<'_>>) -> String {
    a.map(|a| {
        a.iter()
            .map(|addr| match (addr.name(), addr.address()) {
                (Some(name), Some(address)) => format!("{name} <{address}>"),
                (None, Some(address)) => address.to_owned(),
                (Some(name), None) => name.to_owned(),
                (None, None) => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

/// What is kept of an attachment of a raw message: its description, and its body when it is
/// at most `max_attachment` bytes.
fn attachment_of(
    part: &mail_parser::MessagePart<'_>,
    max_attachment: usize,
) -> (AttachmentInfo, Option<Bytes>) {
    let data = part.contents();
    let content_type = part.content_type().map_or_else(
        || "application/octet-stream".to_owned(),
        |t| match t.subtype() {
            Some(sub) => format!("{}/{sub}", t.ctype()),
            None => t.ctype().to_owned(),
        },
    );
    let stored = data.len() <= max_attachment;
    let info = AttachmentInfo {
        filename: part.attachment_name().map(str::to_owned),
        content_type,
        size: data.len(),
        content_id: part
            .content_id()
            .map(|c| c.trim_matches(['<', '>']).to_owned()),
        sha256: sha256_hex(data),
        stored,
    };
    (info, stored.then(|| Bytes::copy_from_slice(data)))
}

/// Parsed mode: SendGrid's fields, and the attachments as numbered file parts.
fn from_fields(
    mut email: InboundEmail,
    mut form: Form,
    max_attachment: usize,
) -> Result<Parsed, InboundError> {
    let Some(from) = form.field("from") else {
        return Err(InboundError::Empty);
    };
    email.from = from;
    email.to = form.field("to").unwrap_or_default();
    email.cc = form.field("cc").unwrap_or_default();
    email.subject = form.field("subject").unwrap_or_default();
    email.text = form.field("text");
    email.html = form.field("html");
    email.headers = (form.field("headers"))
        .map(|block| header_lines(&block))
        .unwrap_or_default();
    let info: HashMap<String, AttachmentMeta> = (form.parts.get("attachment-info"))
        .and_then(|p| serde_json::from_slice(&p.data).ok())
        .unwrap_or_default();
    // The file parts present, in number order: the `attachments` count is only a claim.
    let mut numbered: Vec<(usize, String)> = (form.parts.keys())
        .filter_map(|name| {
            let n = name.strip_prefix("attachment")?.parse::<usize>().ok()?;
            Some((n, name.clone()))
        })
        .collect();
    numbered.sort_unstable();
    let mut bodies = Vec::new();
    for (_, name) in numbered {
        let Some(part) = form.parts.remove(&name) else {
            continue;
        };
        let meta = info.get(&name);
        let stored = part.data.len() <= max_attachment;
        email.attachments.push(AttachmentInfo {
            filename: meta.and_then(|m| m.filename.clone()).or(part.filename),
            content_type: meta
                .and_then(|m| m.content_type.clone())
                .or(part.content_type)
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            size: part.data.len(),
            content_id: meta.and_then(|m| m.content_id.clone()),
            sha256: sha256_hex(&part.data),
            stored,
        });
        bodies.push(stored.then_some(part.data));
    }
    Ok(Parsed {
        email,
        bodies,
        raw: None,
    })
}

/// One entry of `attachment-info`.
#[derive(Debug, Deserialize)]
struct AttachmentMeta {
    filename: Option<String>,
    #[serde(rename = "type")]
    content_type: Option<String>,
    #[serde(rename = "content-id")]
    content_id: Option<String>,
}

/// Joins folded header lines (RFC 5322 §2.2.3) and trims.
fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A raw header block (the parsed mode's `headers` field) as `[name, value]` pairs.
fn header_lines(block: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    headers
}
