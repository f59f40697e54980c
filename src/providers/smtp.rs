//! The SMTP provider: lettre over rustls, with a connection pool.
//!
//! `SMTP_URL` picks the connection: `smtp://host:port` (plain, for local relays),
//! `smtp+starttls://host:587` (STARTTLS required) or `smtps://host:465` (implicit TLS), with
//! credentials in the URL (SendGrid: `smtps://apikey:KEY@smtp.sendgrid.net:465`). SMTP 4xx
//! replies and connection errors are transient; 5xx replies are permanent.

use std::time::Duration;

use anyhow::{Context, bail};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor,
    transport::smtp::{PoolConfig, authentication::Credentials},
};
use secrecy::ExposeSecret;

use super::{Delivery, OutgoingEmail, ProviderError};
use crate::config::Settings;

/// A pooled SMTP transport.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    relay: String,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl Smtp {
    /// The transport `SMTP_URL` describes.
    ///
    /// # Errors
    /// When `SMTP_URL` is missing or malformed; the message never repeats the password.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let url = settings
            .smtp_url
            .as_ref()
            .context("MAILROOM_PROVIDER=smtp needs SMTP_URL")?;
        Self::from_url(url.expose_secret())
    }

    /// The transport for `url`.
    ///
    /// # Errors
    /// When the URL is malformed or names an unknown scheme.
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        let url =
            url::Url::parse(url).map_err(|e| anyhow::anyhow!("SMTP_URL is not a URL: {e}"))?;
        let host = url.host_str().context("SMTP_URL has no host")?.to_owned();
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8_lossy()
                .into_owned()
        };
        let (builder, default_port) = match url.scheme() {
            "smtp" => (
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
                25,
            ),
            "smtp+starttls" => (
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                    .context("SMTP_URL: could not set up STARTTLS")?,
                587,
            ),
            "smtps" => (
                AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                    .context("SMTP_URL: could not set up TLS")?,
                465,
            ),
            other => bail!("SMTP_URL scheme {other:?} is not smtp, smtp+starttls or smtps"),
        };
        let mut builder = builder
            .port(url.port().unwrap_or(default_port))
            .timeout(Some(Duration::from_secs(30)))
            .pool_config(PoolConfig::new().max_size(16));
        if !url.username().is_empty() {
            let password = url.password().map(decode).unwrap_or_default();
            builder = builder.credentials(Credentials::new(decode(url.username()), password));
        }
        Ok(Self {
            transport: builder.build(),
            relay: format!(
                "{}://{host}:{}",
                url.scheme(),
                url.port().unwrap_or(default_port)
            ),
        })
    }

    /// Sends `email` through the relay.
    ///
    /// # Errors
    /// 4xx replies and connection trouble are transient, 5xx replies permanent.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, ProviderError> {
        let message = email
            .to_mime()
            .map_err(|e| ProviderError::permanent(e.to_string()))?;
        match self.transport.send(message).await {
            Ok(response) => Ok(Delivery {
                provider_message_id: response.message().next().map(str::to_owned),
            }),
            Err(error) if error.is_permanent() => Err(ProviderError::permanent(format!(
                "SMTP relay {} refused the message: {error}",
                self.relay
            ))),
            Err(error) => Err(ProviderError::transient(format!(
                "SMTP relay {}: {error}",
                self.relay
            ))),
        }
    }
}
