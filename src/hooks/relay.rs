//! The relay: takes the notices stream's events (as the consumer group `hooks`) and queues
//! them for the endpoints that want them, acknowledging each batch once it is queued. Entries a
//! worker read and never acknowledged (it died) are taken over after a minute: at least once,
//! and the deliveries' stable job ids keep a batch queued twice from being sent twice.

use std::time::{Duration, Instant};

use mailroom_jobs::{RedisClient, RedisConnection};
use tokio_util::sync::CancellationToken;

use super::publish::Publisher;
use crate::store::notices::{Entry, Notices};

/// The most entries read at once.
const BATCH: usize = 500;
/// How long a read waits for a new entry.
const BLOCK_MS: u64 = 1000;
/// How long an entry stays with a consumer that does not acknowledge it.
const TAKE_OVER_AFTER_MS: u64 = 60_000;
/// How often unacknowledged entries are looked for.
const LOOK_EVERY: Duration = Duration::from_secs(15);

/// Reads the stream for one worker process.
#[derive(Debug, Clone)]
pub struct Relay {
    notices: Notices,
    publisher: Publisher,
}

impl Relay {
    pub fn new(notices: Notices, publisher: Publisher) -> Self {
        Self { notices, publisher }
    }

    /// Relays until `shutdown`, waiting for new entries on a connection of its own from
    /// `client`; errors are logged and tried again a second later.
    pub async fn run(self, client: RedisClient, consumer: String, shutdown: CancellationToken) {
        let mut looked = None::<Instant>;
        let mut blocking: Option<RedisConnection> = None;
        while !shutdown.is_cancelled() {
            let step = async {
                // Again after a failure: the connection may be gone (a restarted Redis), and
                // the stream with its group (deleted).
                if blocking.is_none() {
                    blocking = Some(client.blocking().await?);
                    self.notices.join().await?;
                }
                let blocking = blocking.as_ref().expect("connected just above");
                let mut entries = Vec::new();
                if looked.is_none_or(|at| at.elapsed() >= LOOK_EVERY) {
                    entries = (self.notices)
                        .reclaim(&consumer, TAKE_OVER_AFTER_MS, BATCH)
                        .await?;
                    looked = Some(Instant::now());
                }
                if entries.is_empty() {
                    entries = (self.notices)
                        .read(blocking, &consumer, BATCH, BLOCK_MS)
                        .await?;
                }
                self.relay(&entries).await
            };
            let failed = tokio::select! {
                () = shutdown.cancelled() => return,
                result = step => result.err(),
            };
            if let Some(error) = failed {
                blocking = None;
                tracing::warn!(%error, "the webhook relay could not read or queue events; trying again");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    /// Queues `entries`' events, then acknowledges them.
    async fn relay(&self, entries: &[Entry]) -> anyhow::Result<()> {
        let notices: Vec<_> = (entries.iter())
            .filter_map(|entry| entry.notice.clone())
            .collect();
        if notices.len() < entries.len() {
            tracing::warn!(
                skipped = entries.len() - notices.len(),
                "entries of the notices stream that are not events were skipped"
            );
        }
        self.publisher.publish(&notices).await?;
        self.notices.ack(entries).await?;
        Ok(())
    }
}
