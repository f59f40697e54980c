//! SendGrid's signed Event Webhook: ECDSA P-256 with SHA-256 over the timestamp header's bytes
//! followed by the raw body's bytes, the signature DER-encoded and base64'd in
//! `X-Twilio-Email-Event-Webhook-Signature`.
//!
//! SendGrid's real signatures are "high-S"; p256 verifies them as they are (it does not demand
//! low-S normalization), which a test checks against SendGrid's own vectors.

use base64::Engine as _;
use p256::{
    ecdsa::{Signature, VerifyingKey, signature::MultipartVerifier},
    pkcs8::DecodePublicKey,
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

/// Strict base64 after dropping ASCII white space: keys pasted from a dashboard (and PHP's
/// test literals) wrap lines, which changes no byte; any other stray character is an error.
fn decode(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

/// The public key from SendGrid's webhook settings.
#[derive(Clone, Debug)]
pub struct WebhookKey(VerifyingKey);

impl WebhookKey {
    /// `MAILROOM_SENDGRID_WEBHOOK_KEY`, parsed; `None` when unset.
    ///
    /// # Errors
    /// When it is set but not base64 of a P-256 public key.
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Option<Self>> {
        settings
            .sendgrid_webhook_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                Self::from_base64(k)
                    .map_err(|e| anyhow::anyhow!("MAILROOM_SENDGRID_WEBHOOK_KEY: {e}"))
            })
            .transpose()
    }

    /// Parses the key as SendGrid shows it: base64 of a DER SubjectPublicKeyInfo.
    ///
    /// # Errors
    /// When it is not base64 or not a P-256 public key.
    pub fn from_base64(text: &str) -> Result<Self, BadKey> {
        let der = decode(text).ok_or(BadKey::NotBase64)?;
        VerifyingKey::from_public_key_der(&der)
            .map(Self)
            .map_err(|e| BadKey::NotP256(e.to_string()))
    }
}

/// Why a webhook verification key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadKey {
    #[error("not base64")]
    NotBase64,
    #[error("not a P-256 public key in DER form: {0}")]
    NotP256(String),
}

/// Why a POST was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the timestamp header is not unix seconds")]
    BadTimestamp,
    #[error("the signature header is not base64 of a DER ECDSA signature")]
    Malformed,
    #[error("the signature does not match the timestamp and body")]
    Mismatch,
    #[error("the timestamp is {age} s away from now; at most {tolerance} s are accepted (replay)")]
    Stale { age: i64, tolerance: i64 },
}

/// What can be checked before the body is read: both headers present, the signature shaped
/// like one, the timestamp fresh. A POST that fails here is refused without buffering its body.
///
/// # Errors
/// [`SignatureError::Missing`], [`SignatureError::Malformed`], [`SignatureError::BadTimestamp`]
/// or [`SignatureError::Stale`].
pub fn precheck(
    signature: Option<&str>,
    timestamp: Option<&str>,
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing("signature"))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing("timestamp"))?;
    let der = decode(signature).ok_or(SignatureError::Malformed)?;
    Signature::from_der(&der).map_err(|_| SignatureError::Malformed)?;
    fresh(timestamp, now, tolerance)
}

/// The timestamp header is unix seconds within `tolerance` of `now`.
fn fresh(timestamp: &str, now: i64, tolerance: i64) -> Result<(), SignatureError> {
    let signed_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let age = now - signed_at;
    if age.abs() > tolerance {
        return Err(SignatureError::Stale { age, tolerance });
    }
    Ok(())
}

/// Checks the signature over `timestamp` followed by `body`, exactly as received.
///
/// # Errors
/// [`SignatureError::Malformed`] or [`SignatureError::Mismatch`].
pub fn verify_signature(
    key: &WebhookKey,
    signature: &str,
    timestamp: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    let der = decode(signature).ok_or(SignatureError::Malformed)?;
    let signature = Signature::from_der(&der).map_err(|_| SignatureError::Malformed)?;
    key.0
        .multipart_verify(&[timestamp.as_bytes(), body], &signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// Checks both headers: present, signed, and fresh (`now` ± `tolerance` seconds).
///
/// # Errors
/// The first reason the POST must be refused.
pub fn verify(
    key: &WebhookKey,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing("signature"))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing("timestamp"))?;
    verify_signature(key, signature, timestamp, body)?;
    // Only a signed timestamp is worth judging: checked after the signature.
    fresh(timestamp, now, tolerance)
}
