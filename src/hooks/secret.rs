//! Endpoint secrets and signatures, by the Standard Webhooks specification.
//!
//! A secret is never stored: it is HMAC-SHA256 of the endpoint's id and generation under
//! `MAILROOM_WEBHOOK_SIGNING_KEY`, so Redis holds nothing that signs, and a rotation is a new
//! generation. A signature is `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`
//! under the secret's bytes; two secrets give two signatures, space-separated.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The shortest signing key accepted.
pub const MIN_KEY_LEN: usize = 32;

/// What every secret begins with.
const PREFIX: &str = "whsec_";

/// The key endpoint secrets are derived from.
#[derive(Clone)]
pub struct SigningKey(SecretString);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

/// An endpoint's secret: its bytes (never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl SigningKey {
    /// The key of the setting, if it is long enough.
    ///
    /// # Errors
    /// When it is shorter than [`MIN_KEY_LEN`].
    pub fn new(key: SecretString) -> Result<Self, String> {
        if key.expose_secret().len() < MIN_KEY_LEN {
            return Err(format!(
                "MAILROOM_WEBHOOK_SIGNING_KEY must be at least {MIN_KEY_LEN} characters"
            ));
        }
        Ok(Self(key))
    }

    /// The secret of generation `generation` of endpoint `id`.
    pub fn secret(&self, id: &str, generation: u32) -> Secret {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(format!("mailroom webhook endpoint\0{id}\0{generation}").as_bytes());
        Secret(mac.finalize().into_bytes().to_vec())
    }
}

impl Secret {
    /// As its holder sees it: `whsec_` + base64.
    pub fn presented(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// A secret as its holder sees it, if it is one.
    pub fn parse(presented: &str) -> Option<Self> {
        let bytes = STANDARD.decode(presented.strip_prefix(PREFIX)?).ok()?;
        (!bytes.is_empty()).then_some(Self(bytes))
    }

    /// The signature of one attempt: `v1,` + base64 HMAC over `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    let signatures: Vec<String> = secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect();
    signatures.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_example_signs_as_published() {
        // The example of the Standard Webhooks specification ("Signature scheme").
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                b"{\"test\": 2432232314}"
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(Secret::parse(&secret.presented()), Some(secret));
        assert_eq!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), None);
    }

    #[test]
    fn secrets_differ_by_endpoint_and_generation_and_key() {
        let key = SigningKey::new(SecretString::from("k".repeat(32))).unwrap();
        let other = SigningKey::new(SecretString::from("j".repeat(32))).unwrap();
        let first = key.secret("0123456789abcdef", 1);
        assert_eq!(first, key.secret("0123456789abcdef", 1));
        assert_ne!(first, key.secret("0123456789abcdef", 2));
        assert_ne!(first, key.secret("fedcba9876543210", 1));
        assert_ne!(first, other.secret("0123456789abcdef", 1));
        assert!(SigningKey::new(SecretString::from("short")).is_err());
        let two = header(
            &[first.clone(), key.secret("0123456789abcdef", 2)],
            "msg_1",
            1,
            b"{}",
        );
        assert_eq!(two.split(' ').count(), 2);
        assert!(two.starts_with(&first.sign("msg_1", 1, b"{}")));
    }
}
