//! The notices stream `P:notices`: every event the services hear of besides the email events
//! of each message's timeline (an address verified, mail received, a subscriber subscribed,
//! a campaign started, an import finished, a message given up on), as the exact body a webhook
//! carries. Entries have the fields `type`, `id` (the `webhook-id`), `key` (the stored key
//! whose event it is, `""` for none) and `body`. Services on the same Redis read it with
//! `XREAD`; the webhook relay reads it as the consumer group [`GROUP`]. Trimmed to about
//! [`MAXLEN`] entries.

use mailroom_jobs::{Keys, RedisConnection};

use crate::domain::{EventType, Notice};

/// About how many entries the stream keeps.
pub const MAXLEN: usize = 100_000;
/// The consumer group of the webhook relay.
pub const GROUP: &str = "hooks";

/// One entry read from the stream: its stream id, and its notice unless the entry is not one
/// (written by something else): such an entry is acknowledged and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub stream_id: String,
    pub notice: Option<Notice>,
}

type RawEntry = (String, Vec<String>);

/// Writes and reads the stream.
#[derive(Debug, Clone)]
pub struct Notices {
    conn: RedisConnection,
    key: String,
}

impl Notices {
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            key: Keys::new(prefix).notices(),
        }
    }

    /// The stream's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Tells the services of a change already made: appends `notices`, and when Redis fails
    /// logs that they are lost instead of failing the change that was made.
    pub async fn tell(&self, notices: &[Notice]) {
        if let Err(error) = self.append(notices).await {
            let types: Vec<&str> = notices.iter().map(|n| n.kind.as_str()).collect();
            tracing::warn!(%error, ?types, "events could not be put on the notices stream: the services will not hear of them");
        }
    }

    /// Appends `notices`, in order, in one round trip.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn append(&self, notices: &[Notice]) -> redis::RedisResult<()> {
        if notices.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for notice in notices {
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(MAXLEN)
                .arg("*")
                .arg("type")
                .arg(notice.kind.as_str())
                .arg("id")
                .arg(&notice.id)
                .arg("key")
                .arg(notice.key.as_deref().unwrap_or(""))
                .arg("body")
                .arg(&notice.body)
                .ignore();
        }
        pipe.query_async(&mut self.conn.clone()).await
    }

    /// Makes the relay's group (reading from the stream's start) unless it exists.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn join(&self) -> redis::RedisResult<()> {
        let made: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn.clone())
            .await;
        match made {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Up to `count` entries no consumer of the group has read, waiting up to `block_ms` for
    /// one on `blocking` (a connection of its own).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn read(
        &self,
        blocking: &RedisConnection,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> redis::RedisResult<Vec<Entry>> {
        let reply: Option<Vec<(String, Vec<RawEntry>)>> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut blocking.clone())
            .await?;
        Ok((reply.into_iter().flatten())
            .flat_map(|(_, entries)| entries)
            .map(entry)
            .collect())
    }

    /// Takes over up to `count` entries another consumer read `idle_ms` ago or more without
    /// acknowledging them (it died): at least once.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn reclaim(
        &self,
        consumer: &str,
        idle_ms: u64,
        count: usize,
    ) -> redis::RedisResult<Vec<Entry>> {
        let (_, entries, _): (String, Vec<RawEntry>, Vec<String>) = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(GROUP)
            .arg(consumer)
            .arg(idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(entries.into_iter().map(entry).collect())
    }

    /// Acknowledges `entries` (their events are queued for the endpoints).
    ///
    /// # Errors
    /// When Redis fails (they are read again later).
    pub async fn ack(&self, entries: &[Entry]) -> redis::RedisResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.key).arg(GROUP);
        for entry in entries {
            cmd.arg(&entry.stream_id);
        }
        cmd.query_async::<()>(&mut self.conn.clone()).await
    }
}

fn entry((stream_id, fields): RawEntry) -> Entry {
    let field = |name: &str| {
        (fields.chunks_exact(2))
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].clone())
    };
    let notice = (|| {
        Some(Notice {
            kind: EventType::parse(&field("type")?)?,
            key: field("key").filter(|key| !key.is_empty()),
            id: field("id").filter(|id| !id.is_empty() && id.len() <= 64)?,
            body: field("body").filter(|b| b.len() <= mailroom_jobs::hooks::MAX_WEBHOOK_BODY)?,
        })
    })();
    Entry { stream_id, notice }
}
