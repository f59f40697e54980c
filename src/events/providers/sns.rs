//! Amazon SNS's HTTP(S) deliveries, which carry SES's events
//! (<https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html>): every
//! message is checked against its signing certificate, fetched once per URL and only from
//! `sns.{region}.amazonaws.com` over HTTPS (the region of the topic), and only topics the
//! operator names are taken: a signature proves that SNS sent a message, not whose topic it is.
//! A subscription confirmation is answered by visiting its `SubscribeURL`, under the same rules.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};
use base64::Engine as _;
use serde::Deserialize;
use x509_cert::{Certificate, der::DecodePem as _};

/// The most certificates kept (one per URL; SNS rotates them rarely).
const MAX_CERTIFICATES: usize = 32;
/// The largest certificate read.
const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;

/// One SNS POST.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope {
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub message_id: String,
    pub topic_arn: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: String,
    pub signature_version: String,
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    #[serde(default, rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

/// Why an SNS POST is not taken.
#[derive(Debug, thiserror::Error)]
pub enum SnsError {
    #[error("the body is not an SNS message: {0}")]
    NotSns(#[source] serde_json::Error),
    #[error("the topic {0} is not one of MAILROOM_SES_TOPIC_ARNS")]
    Topic(String),
    #[error("the message type {0} is not one SNS sends")]
    Kind(String),
    #[error("a {0} needs its {1}")]
    Missing(&'static str, &'static str),
    #[error("the URL {0} is not SNS's for the topic's region")]
    Host(String),
    #[error("signature version {0} is not 1 or 2")]
    Version(String),
    #[error("the signature does not match the message")]
    Mismatch,
    #[error("the signing certificate could not be read: {0}")]
    Certificate(String),
    #[error("SNS could not be reached: {0}")]
    Unreachable(#[source] reqwest::Error),
}

impl SnsError {
    /// Whether the fault is on mailroom's side (SNS should retry), not the message's.
    pub fn is_ours(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }
}

/// Reads an SNS POST.
///
/// # Errors
/// When it is not one.
pub fn parse(body: &str) -> Result<Envelope, SnsError> {
    serde_json::from_str(body).map_err(SnsError::NotSns)
}

impl Envelope {
    /// The region of the topic (`arn:aws:sns:REGION:ACCOUNT:NAME`).
    fn region(&self) -> Option<&str> {
        let mut parts = self.topic_arn.split(':');
        (parts.next() == Some("arn"))
            .then(|| parts.nth(2))
            .flatten()
            .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    }

    /// The text SNS signed: the fields of the type, by name, each followed by a newline.
    ///
    /// # Errors
    /// When a field the type signs is missing.
    pub fn string_to_sign(&self) -> Result<String, SnsError> {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind.as_str() {
            "Notification" => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let url = (self.subscribe_url.as_deref())
                    .ok_or(SnsError::Missing("confirmation", "SubscribeURL"))?;
                fields.push(("SubscribeURL", url));
            }
            other => return Err(SnsError::Kind(other.to_owned())),
        }
        fields.push(("Timestamp", &self.timestamp));
        if self.kind != "Notification" {
            let token =
                (self.token.as_deref()).ok_or(SnsError::Missing("confirmation", "Token"))?;
            fields.push(("Token", token));
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", &self.kind));
        Ok(fields
            .iter()
            .map(|(name, value)| format!("{name}\n{value}\n"))
            .collect())
    }
}

/// Checks SNS messages: the topics taken, where certificates may come from, and the
/// certificates' keys already fetched.
#[derive(Debug)]
pub struct Verifier {
    topics: Vec<String>,
    /// One more `host:port` allowed, over HTTP too (`MAILROOM_SNS_CERT_HOST`, for tests).
    extra_host: Option<String>,
    client: reqwest::Client,
    keys: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl Verifier {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(topics: Vec<String>, extra_host: Option<String>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mailroom/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            topics,
            extra_host: extra_host.filter(|h| !h.is_empty()),
            client,
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// Checks `envelope`: its topic, its certificate's origin and its signature.
    ///
    /// # Errors
    /// When any of them is not right, or the certificate cannot be fetched.
    pub async fn verify(&self, envelope: &Envelope) -> Result<(), SnsError> {
        if !self.topics.contains(&envelope.topic_arn) {
            return Err(SnsError::Topic(envelope.topic_arn.clone()));
        }
        let algorithm: &'static dyn VerificationAlgorithm =
            match envelope.signature_version.as_str() {
                "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                "2" => &RSA_PKCS1_2048_8192_SHA256,
                other => return Err(SnsError::Version(other.to_owned())),
            };
        let signed = envelope.string_to_sign()?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(envelope.signature.trim())
            .map_err(|_| SnsError::Mismatch)?;
        let key = self.key(envelope).await?;
        UnparsedPublicKey::new(algorithm, key.as_slice())
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| SnsError::Mismatch)
    }

    /// Confirms the subscription `envelope` asks for, by visiting its `SubscribeURL`.
    ///
    /// # Errors
    /// When the URL is not SNS's, or SNS does not answer 2xx.
    pub async fn confirm(&self, envelope: &Envelope) -> Result<(), SnsError> {
        let url = (envelope.subscribe_url.as_deref())
            .ok_or(SnsError::Missing("confirmation", "SubscribeURL"))?;
        let url = self.allowed(url, envelope)?;
        self.client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(SnsError::Unreachable)?;
        Ok(())
    }

    /// `url` if SNS of the topic's region serves it (or the extra host does).
    fn allowed(&self, url: &str, envelope: &Envelope) -> Result<url::Url, SnsError> {
        let refused = || SnsError::Host(url.to_owned());
        let parsed = url::Url::parse(url).map_err(|_| refused())?;
        let host = parsed.host_str().ok_or_else(refused)?;
        let authority = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        if self.extra_host.as_deref() == Some(authority.as_str())
            && matches!(parsed.scheme(), "http" | "https")
        {
            return Ok(parsed);
        }
        let region = envelope.region().ok_or_else(refused)?;
        let sns = [
            format!("sns.{region}.amazonaws.com"),
            format!("sns.{region}.amazonaws.com.cn"),
        ];
        let ok =
            parsed.scheme() == "https" && parsed.port().is_none() && sns.iter().any(|h| h == host);
        if ok { Ok(parsed) } else { Err(refused()) }
    }

    /// The public key of the envelope's certificate, fetched on first use.
    async fn key(&self, envelope: &Envelope) -> Result<Arc<Vec<u8>>, SnsError> {
        let url = self.allowed(&envelope.signing_cert_url, envelope)?;
        if !url.path().ends_with(".pem") {
            return Err(SnsError::Host(url.into()));
        }
        if let Some(key) = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(url.as_str())
        {
            return Ok(key.clone());
        }
        let pem = self.fetch(url.clone()).await?;
        let certificate =
            Certificate::from_pem(&pem).map_err(|e| SnsError::Certificate(e.to_string()))?;
        let key = (certificate
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key)
            .as_bytes()
            .ok_or_else(|| SnsError::Certificate("the key is not whole bytes".to_owned()))?
            .to_vec();
        let key = Arc::new(key);
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.len() >= MAX_CERTIFICATES {
            keys.clear();
        }
        keys.insert(url.into(), key.clone());
        Ok(key)
    }

    async fn fetch(&self, url: url::Url) -> Result<Vec<u8>, SnsError> {
        let mut response = (self.client.get(url).send().await)
            .and_then(reqwest::Response::error_for_status)
            .map_err(SnsError::Unreachable)?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(SnsError::Unreachable)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_CERTIFICATE_BYTES {
                return Err(SnsError::Certificate("larger than 16 KiB".to_owned()));
            }
        }
        Ok(body)
    }
}
