//! The outbox provider: each message as an RFC 5322 `.eml` file in a folder, for development.
//!
//! Files are written atomically: to a hidden temporary name first, then renamed, so a reader
//! watching the folder never sees half a message.

use std::path::PathBuf;

use super::{Delivery, OutgoingEmail, ProviderError, Wire};

/// Writes messages to `MAILROOM_OUTBOX_DIR`.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    /// DKIM signing and the VERP envelope sender.
    wire: Wire,
}

impl Outbox {
    /// An outbox writing into `dir` (created when missing).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            wire: Wire::default(),
        }
    }

    /// The same provider, signing and addressing as `wire` says ([`super::dkim`],
    /// `bounces::reports`).
    #[must_use]
    pub fn with_wire(mut self, wire: Wire) -> Self {
        self.wire = wire;
        self
    }

    /// Writes `email` as `<message id>.eml`.
    ///
    /// # Errors
    /// A file-system error is transient (a full disk can be emptied); a message lettre cannot
    /// build is permanent.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, ProviderError> {
        let watch = crate::metrics::Stopwatch::start();
        let written = self.write(email).await;
        let result = match &written {
            Ok(_) => crate::metrics::SendResult::Accepted,
            Err(_) => crate::metrics::SendResult::Error,
        };
        crate::metrics::provider_send("outbox", result, 1, watch.elapsed());
        written
    }

    async fn write(&self, email: &OutgoingEmail) -> Result<Delivery, ProviderError> {
        let (_, bytes) = email.wire(&self.wire)?;
        let name = format!("{}.eml", email.id);
        let temporary = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        let io = |e: std::io::Error| {
            ProviderError::outage(format!("outbox {}: {e}", self.dir.display()))
        };
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        tokio::fs::write(&temporary, bytes).await.map_err(io)?;
        tokio::fs::rename(&temporary, &path).await.map_err(io)?;
        Ok(Delivery {
            provider_message_id: Some(path.display().to_string()),
        })
    }
}
