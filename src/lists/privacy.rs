//! A person's data: everything mailroom holds about one address, exported as one JSON document
//! (`GET /v1/subscribers/{id}/export`) or erased (`DELETE /v1/subscribers/{id}?erase=true`).
//!
//! What is kept about an address: the subscriber (record, subscriptions, their history), a
//! suppression, the verification state (verified mark, a live link, `email.verified` and
//! `subscription.confirmed` stream entries), and the messages sent to it (their status records
//! and timelines, found through [`AddressIndex`]: the newest [`MESSAGES_KEPT`] ids per address,
//! kept as long as timelines are). Erasing removes all of it. When the suppression was an
//! unsubscribe or a complaint, a one-way hash of the address stays on the suppression list
//! (`sha256:…`), so that a later import cannot add the person back unknowingly.

pub use crate::domain::address_digest;
use mailroom_jobs::{Keys, RedisConnection};

/// How many message ids are kept per address.
pub const MESSAGES_KEPT: isize = 200;

/// The messages sent to each address.
#[derive(Debug, Clone)]
pub struct AddressIndex {
    conn: RedisConnection,
    keys: Keys,
    keep_secs: u64,
}

impl AddressIndex {
    pub fn new(conn: RedisConnection, prefix: &str, keep_secs: u64) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
            keep_secs,
        }
    }

    /// Records that message `id` went to `emails`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn remember(&self, emails: &[&str], id: &str) -> redis::RedisResult<()> {
        let ttl = i64::try_from(self.keep_secs).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        for email in emails {
            let key = self.keys.address_messages(&address_digest(email));
            pipe.lpush(&key, id)
                .ignore()
                .ltrim(&key, 0, MESSAGES_KEPT - 1)
                .ignore()
                .expire(&key, ttl)
                .ignore();
            // Each address's key has a slot of its own: on a cluster, one pipeline per key.
            if self.conn.is_cluster() {
                pipe.query_async::<()>(&mut self.conn.clone()).await?;
                pipe = redis::pipe();
            }
        }
        if self.conn.is_cluster() {
            return Ok(());
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// The ids of the messages sent to `email`, newest first.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn messages(&self, email: &str) -> redis::RedisResult<Vec<String>> {
        redis::cmd("LRANGE")
            .arg(self.keys.address_messages(&address_digest(email)))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Forgets the messages sent to `email`: their timelines, delivery records, tracking
    /// records (the recipient of a tracked message) and status records, and the index itself.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn erase(&self, email: &str, email_queue: &str) -> redis::RedisResult<usize> {
        let ids = self.messages(email).await?;
        let queue = self.keys.queue(email_queue);
        for id in &ids {
            // Each message's keys share its tag; the job record is in its queue's slot.
            redis::cmd("DEL")
                .arg(self.keys.timeline(id))
                .arg(self.keys.delivery(id))
                .arg(self.keys.tracked_recipient(id))
                .query_async::<()>(&mut self.conn.clone())
                .await?;
            redis::cmd("DEL")
                .arg(queue.job(id))
                .query_async::<()>(&mut self.conn.clone())
                .await?;
        }
        redis::cmd("DEL")
            .arg(self.keys.address_messages(&address_digest(email)))
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(ids.len())
    }

    /// Deletes the entries of the verification events stream that name `email`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn erase_stream_entries(&self, email: &str) -> redis::RedisResult<usize> {
        let key = mailroom_jobs::address::case_key(email);
        let names = |fields: &[String]| {
            fields.chunks(2).any(|kv| {
                kv.len() == 2 && kv[0] == "email" && mailroom_jobs::address::case_key(&kv[1]) == key
            })
        };
        self.erase_entries(&self.keys.verify_events(), names).await
    }

    /// Deletes the entries of the notices stream whose event names `email` (as an address
    /// field, an element of one, or `Name <address>`).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn erase_notices(&self, email: &str) -> redis::RedisResult<usize> {
        let mentions = mentions(email);
        let names = |fields: &[String]| {
            (fields.chunks(2)).any(|kv| kv.len() == 2 && kv[0] == "body" && mentions(&kv[1]))
        };
        self.erase_entries(&self.keys.notices(), names).await
    }

    async fn erase_entries(
        &self,
        stream: &str,
        names: impl Fn(&[String]) -> bool,
    ) -> redis::RedisResult<usize> {
        let mut removed = 0;
        let mut start = "-".to_owned();
        loop {
            let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                .arg(stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.conn.clone())
                .await?;
            let Some((last, _)) = entries.last() else {
                return Ok(removed);
            };
            let last = last.clone();
            let named: Vec<&String> = (entries.iter())
                .filter(|(_, fields)| names(fields))
                .map(|(id, _)| id)
                .collect();
            if !named.is_empty() {
                let n: usize = redis::cmd("XDEL")
                    .arg(stream)
                    .arg(&named)
                    .query_async(&mut self.conn.clone())
                    .await?;
                removed += n;
            }
            if entries.len() < 1000 {
                return Ok(removed);
            }
            start = format!("({last}");
        }
    }
}

/// Whether an event's JSON body names `email`: as a whole string, or within `<…>`, in any case.
pub fn mentions(email: &str) -> impl Fn(&str) -> bool {
    let key = mailroom_jobs::address::case_key(email).to_lowercase();
    let (quoted, angled) = (format!("\"{key}\""), format!("<{key}>"));
    move |body: &str| {
        let body = body.to_lowercase();
        body.contains(&quoted) || body.contains(&angled)
    }
}
