//! The SMTP provider: lettre's SMTP client over sockets mailroom opens itself, with a pool of
//! its own.
//!
//! `SMTP_URL` picks the connection: `smtp://host:port` (plain, for local relays),
//! `smtp+starttls://host:587` (STARTTLS required) or `smtps://host:465` (implicit TLS), with
//! credentials in the URL (SendGrid: `smtps://apikey:KEY@smtp.sendgrid.net:465`). Connection
//! errors and refusals before a message is in flight (the greeting, TLS, AUTH) are the relay's
//! failure; a 4xx reply to a message is transient and a 5xx permanent, for that message; a
//! timeout while it is in flight leaves it unanswered.
//!
//! Why not lettre's own pooled transport: measured against Postfix's `smtp-sink`, it sent about
//! 720 emails/s at 12 % CPU, each message waiting ~22 ms. Its sockets keep Nagle's algorithm on,
//! and its client writes a message's body and the closing `\r\n.\r\n` as two flushed writes, so
//! the small terminator waited for the receiver's delayed ACK; its pool also sends `NOOP` before
//! every reuse, one more round trip per message. Here the socket has `TCP_NODELAY`, and the pool
//! hands out a connection without a `NOOP`: a connection idle longer than [`MAX_IDLE`] (well under
//! the minutes relays keep idle sessions) is closed instead of tested. A reused connection that
//! turns out dead fails that one send as transient, and the queue retries it.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use lettre::transport::smtp::{
    Error as SmtpError,
    authentication::{Credentials, DEFAULT_MECHANISMS},
    client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters},
    extension::ClientId,
};
use secrecy::ExposeSecret;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::Semaphore,
};

use super::{Cause, Delivery, OutgoingEmail, ProviderError, Wire};
use crate::{
    config::Settings,
    metrics::{self, SendResult},
};

/// How long a pooled connection may sit idle before it is closed rather than reused.
const MAX_IDLE: Duration = Duration::from_secs(30);

/// How long connecting, and each command, may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How the session is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Plain text (`smtp://`), for relays on a trusted network.
    Plain,
    /// STARTTLS, required (`smtp+starttls://`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Tls,
}

/// Where and how to connect.
struct Relay {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// For implicit TLS, mailroom's own handshake (rustls, web PKI roots).
    tls: Option<tokio_rustls::TlsConnector>,
}

/// Idle connections and the bound on open ones.
struct Pool {
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    open: Semaphore,
}

/// A pooled SMTP client.
#[derive(Clone)]
pub struct Smtp {
    relay: Arc<Relay>,
    pool: Arc<Pool>,
    name: String,
    /// DKIM signing and the VERP envelope sender.
    wire: Wire,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("relay", &self.name)
            .finish_non_exhaustive()
    }
}

impl Smtp {
    /// The client `SMTP_URL` describes, with at most `MAILROOM_SMTP_POOL_SIZE` connections.
    ///
    /// # Errors
    /// When `SMTP_URL` is missing or malformed; the message never repeats the password.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let url = settings
            .smtp_url
            .as_ref()
            .context("MAILROOM_PROVIDER=smtp needs SMTP_URL")?;
        Ok(
            Self::from_url(url.expose_secret(), settings.smtp_pool_size)?
                .with_wire(Wire::from_settings(settings)?),
        )
    }

    /// The same provider, signing and addressing as `wire` says ([`super::dkim`],
    /// `bounces::reports`).
    #[must_use]
    pub fn with_wire(mut self, wire: Wire) -> Self {
        self.wire = wire;
        self
    }

    /// The client for `url`, with at most `pool_size` connections open.
    ///
    /// # Errors
    /// When the URL is malformed or names an unknown scheme.
    pub fn from_url(url: &str, pool_size: usize) -> anyhow::Result<Self> {
        let url =
            url::Url::parse(url).map_err(|e| anyhow::anyhow!("SMTP_URL is not a URL: {e}"))?;
        let host = url.host_str().context("SMTP_URL has no host")?.to_owned();
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8_lossy()
                .into_owned()
        };
        let (security, default_port) = match url.scheme() {
            "smtp" => (Security::Plain, 25),
            "smtp+starttls" => (Security::StartTls, 587),
            "smtps" => (Security::Tls, 465),
            other => bail!("SMTP_URL scheme {other:?} is not smtp, smtp+starttls or smtps"),
        };
        let port = url.port().unwrap_or(default_port);
        let credentials = (!url.username().is_empty()).then(|| {
            let password = url.password().map(decode).unwrap_or_default();
            Credentials::new(decode(url.username()), password)
        });
        let tls = (security == Security::Tls)
            .then(tls_connector)
            .transpose()?;
        Ok(Self {
            name: format!("{}://{host}:{port}", url.scheme()),
            relay: Arc::new(Relay {
                host,
                port,
                security,
                credentials,
                hello: ClientId::default(),
                tls,
            }),
            pool: Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
                open: Semaphore::new(pool_size.max(1)),
            }),
            wire: Wire::default(),
        })
    }

    /// Sends `email` through the relay.
    ///
    /// # Errors
    /// 4xx replies and connection trouble are transient, 5xx replies permanent.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, ProviderError> {
        let (envelope, raw) = email.wire(&self.wire)?;
        let watch = metrics::Stopwatch::start();
        let sent = self.hand_over(&envelope, &raw).await;
        let result = match &sent {
            Ok(_) => SendResult::Accepted,
            Err(SmtpFailure::Timeout(_)) => SendResult::Timeout,
            Err(SmtpFailure::Reply(error)) if error.is_permanent() => SendResult::Refused,
            Err(SmtpFailure::Reply(error)) if error.status().is_some() => SendResult::ServerError,
            Err(SmtpFailure::Reply(_) | SmtpFailure::Connection(_)) => SendResult::Error,
        };
        metrics::provider_send("smtp", result, 1, watch.elapsed());
        sent.map_err(|failure| match failure {
            SmtpFailure::Reply(error) => self.refused(&error, &envelope),
            SmtpFailure::Timeout(error) | SmtpFailure::Connection(error) => error,
        })
    }

    /// One message over a pooled session, the failure kept as the relay gave it.
    async fn hand_over(
        &self,
        envelope: &lettre::address::Envelope,
        raw: &[u8],
    ) -> Result<Delivery, SmtpFailure> {
        let _permit = self.pool.open.acquire().await.map_err(|_| {
            SmtpFailure::Connection(ProviderError::outage("the SMTP pool is closed"))
        })?;
        let mut connection = match self.pool.take() {
            Some(connection) => connection,
            None => self.connect().await.map_err(SmtpFailure::Connection)?,
        };
        let sent = tokio::time::timeout(TIMEOUT, connection.send(envelope, raw)).await;
        match sent {
            Ok(Ok(response)) => {
                self.pool.give_back(connection);
                Ok(Delivery {
                    provider_message_id: response.message().next().map(str::to_owned),
                })
            }
            Ok(Err(error)) => {
                // A refused message leaves the session usable; anything else may not.
                if !connection.has_broken() && error.is_permanent() {
                    self.pool.give_back(connection);
                }
                Err(SmtpFailure::Reply(error))
            }
            Err(_) => Err(SmtpFailure::Timeout(ProviderError::unanswered(format!(
                "SMTP relay {} did not answer within {} s",
                self.name,
                TIMEOUT.as_secs()
            )))),
        }
    }

    /// Opens a session (socket, TLS, EHLO, AUTH when configured) and closes it, for
    /// `mailroom doctor`: the server's name and what was done.
    ///
    /// # Errors
    /// As a send's connection would fail.
    pub async fn probe(&self) -> Result<String, ProviderError> {
        let mut connection = self.connect().await?;
        let name = connection.server_info().name().to_owned();
        let _ = connection.quit().await;
        let auth = if self.relay.credentials.is_some() {
            ", AUTH accepted"
        } else {
            ""
        };
        let tls = match self.relay.security {
            Security::StartTls => ", STARTTLS",
            _ if self.relay.tls.is_some() => ", TLS",
            _ => "",
        };
        Ok(format!("{} answers EHLO as {name}{tls}{auth}", self.name))
    }

    /// A new session: socket, TLS, EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, ProviderError> {
        let relay = &self.relay;
        let unreachable = |e: &dyn std::fmt::Display| {
            ProviderError::outage(format!("SMTP relay {}: {e}", self.name))
        };
        let socket = tokio::time::timeout(
            TIMEOUT,
            TcpStream::connect((relay.host.as_str(), relay.port)),
        )
        .await
        .map_err(|_| unreachable(&"connecting timed out"))?
        .map_err(|e| unreachable(&e))?;
        // The point of opening the socket here: small writes (commands, the final "\r\n.\r\n")
        // leave at once instead of waiting for the peer's delayed ACK.
        socket.set_nodelay(true).map_err(|e| unreachable(&e))?;
        let stream: Box<dyn AsyncTokioStream> = match &relay.tls {
            Some(connector) => {
                let name = rustls_pki_types::ServerName::try_from(relay.host.clone())
                    .map_err(|e| ProviderError::permanent(format!("SMTP_URL host: {e}")))?;
                Box::new(TlsWire(
                    connector
                        .connect(name, socket)
                        .await
                        .map_err(|e| unreachable(&e))?,
                ))
            }
            None => Box::new(socket),
        };
        let session = async {
            let mut connection =
                AsyncSmtpConnection::connect_with_transport(stream, &relay.hello).await?;
            if relay.security == Security::StartTls {
                connection
                    .starttls(TlsParameters::new(relay.host.clone())?, &relay.hello)
                    .await?;
            }
            if let Some(credentials) = &relay.credentials {
                connection.auth(DEFAULT_MECHANISMS, credentials).await?;
            }
            Ok::<_, SmtpError>(connection)
        };
        // Whatever the relay answers before a message is in flight is about the relay: a
        // refused AUTH is its account refused, any other failure an outage.
        tokio::time::timeout(TIMEOUT, session)
            .await
            .map_err(|_| unreachable(&"the greeting, TLS or AUTH timed out"))?
            .map_err(|e| match self.classify(&e) {
                ProviderError::Permanent { message, .. } => ProviderError::Permanent {
                    message,
                    bounce: None,
                    account: true,
                },
                ProviderError::Transient { message, .. } => ProviderError::outage(message),
            })
    }

    /// [`Smtp::classify`], and a permanent refusal of a message with one recipient is that
    /// recipient's bounce (lettre stops at the first refused RCPT, so with more than one the
    /// refused address is not known). Only the replies that refuse a mailbox or a message
    /// (550 – 554) are bounces: a 530 or 535 (authentication) or a 500 – 504 (syntax) says the
    /// relay is misconfigured, and stays a failure the operator sees in the dead letters.
    fn refused(&self, error: &SmtpError, envelope: &lettre::address::Envelope) -> ProviderError {
        let classified = self.classify(error);
        let code: u16 = error
            .status()
            .and_then(|code| code.to_string().parse().ok())
            .unwrap_or(0);
        match (classified, envelope.to()) {
            (ProviderError::Permanent { message, .. }, [recipient])
                if (550..=554).contains(&code) =>
            {
                let bounce =
                    super::bounce::Bounce::new(recipient.as_ref(), code, &error.to_string());
                ProviderError::Permanent {
                    message,
                    bounce: Some(Box::new(bounce)),
                    account: false,
                }
            }
            // Authentication required or refused: the relay refuses the account, whoever the
            // message is for.
            (ProviderError::Permanent { message, .. }, _) if matches!(code, 530 | 534 | 535) => {
                ProviderError::Permanent {
                    message,
                    bounce: None,
                    account: true,
                }
            }
            (other, _) => other,
        }
    }

    fn classify(&self, error: &SmtpError) -> ProviderError {
        if error.is_permanent() {
            ProviderError::permanent(format!(
                "SMTP relay {} refused the message: {error}",
                self.name
            ))
        } else {
            let message = format!("SMTP relay {}: {error}", self.name);
            if error.status().is_none() {
                // Not a reply: the session broke (a reused connection the relay had closed).
                return ProviderError::outage(message);
            }
            // 421: the server closes the session for now; 4.7.x: a policy deferral (rate,
            // reputation). Both ask the sender to come back more slowly.
            let slow_down = error.status().is_some_and(|code| code.to_string() == "421")
                || error.to_string().contains(" 4.7.");
            ProviderError::Transient {
                message,
                retry_after: None,
                cause: Cause::Recipient { slow_down },
            }
        }
    }
}

/// How a hand-over failed, before it becomes a [`ProviderError`]: the metrics tell a reply
/// from a timeout from a lost connection.
enum SmtpFailure {
    /// The relay answered with an error reply.
    Reply(SmtpError),
    /// The relay did not answer in time.
    Timeout(ProviderError),
    /// No session: connecting, TLS, EHLO or AUTH failed (already classified).
    Connection(ProviderError),
}

impl Pool {
    /// The most recently used idle connection, closing those idle too long.
    fn take(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((connection, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE {
                return Some(connection);
            }
            // Older ones sit below it: they are staler still.
            drop(connection);
            idle.clear();
        }
        None
    }

    fn give_back(&self, connection: AsyncSmtpConnection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((connection, Instant::now()));
        }
    }
}

/// The rustls client for implicit TLS, with the web PKI's roots (the same trust as lettre's).
fn tls_connector() -> anyhow::Result<tokio_rustls::TlsConnector> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("SMTP_URL: TLS setup")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A TLS stream lettre can drive: mailroom's own handshake over its own socket.
#[derive(Debug)]
struct TlsWire(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsWire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsWire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsWire {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}
