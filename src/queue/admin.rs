//! The operator's view of the queues: `mailroom queue stats | dead | retry`.

use std::collections::HashMap;

use mailroom_jobs::QueueKeys;
use mailroom_jobs::RedisConnection;

use super::{now_ms, scripts::Scripts};

/// How many dead letters `retry --all` requeues per script call.
const REQUEUE_CHUNK: usize = 500;

/// A worker counts as live while its last heartbeat is younger than this.
const LIVE_WORKER_MS: u64 = 60_000;

/// What the stats pipeline answers: lengths, counters, live workers, the oldest ready id.
type StatsReply = (
    u64,
    u64,
    u64,
    u64,
    HashMap<String, u64>,
    Vec<String>,
    Option<String>,
);

/// A dead letter's fields: reason, attempts, last error, payload.
type DeadFields = (Option<String>, Option<u32>, Option<String>, Option<String>);

/// Counts for one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue's name.
    pub queue: String,
    /// Jobs waiting for a worker.
    pub ready: u64,
    /// Jobs waiting for a run-at time or a retry.
    pub delayed: u64,
    /// Jobs leased to a worker right now.
    pub in_flight: u64,
    /// Dead letters kept.
    pub dead: u64,
    /// Jobs finished since the queue was created.
    pub done_total: u64,
    /// Retries scheduled since the queue was created.
    pub retried_total: u64,
    /// Jobs dead-lettered since the queue was created.
    pub dead_total: u64,
    /// Workers with a recent heartbeat.
    pub workers: Vec<String>,
    /// How long the oldest ready job has waited for a worker, in ms (0 when none waits): the
    /// number to alert on, since a deep queue that moves is fine and a shallow one that does
    /// not is not.
    pub oldest_ready_ms: u64,
}

/// One dead letter, as `mailroom queue dead` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The job's id.
    pub id: String,
    /// Why it was dead-lettered: "attempts exhausted", "permanent failure",
    /// "undecodable payload", "invalid payload".
    pub reason: String,
    /// Runs made.
    pub attempts: u32,
    /// The last run's error.
    pub last_error: String,
    /// When it died (ms since the epoch).
    pub died_at_ms: u64,
    /// The job's payload as pushed (JSON), when its record still holds it.
    pub payload: Option<String>,
}

/// Reads and repairs queues for an operator.
#[derive(Debug, Clone)]
pub struct QueueAdmin {
    conn: RedisConnection,
    prefix: String,
}

impl QueueAdmin {
    /// An admin for the queues under `prefix`.
    pub fn new(conn: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }

    fn keys(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(&self.prefix, queue)
    }

    /// Counts and live workers of `queue`.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn stats(&self, queue: &str) -> redis::RedisResult<QueueStats> {
        let keys = self.keys(queue);
        let since = now_ms().saturating_sub(LIVE_WORKER_MS);
        let mut conn = self.conn.clone();
        let (ready, delayed, in_flight, dead, counts, workers, oldest): StatsReply = redis::pipe()
            .llen(keys.ready())
            .zcard(keys.delayed())
            .zcard(keys.inflight())
            .zcard(keys.dead())
            .hgetall(keys.counts())
            .zrangebyscore(keys.workers(), since, "+inf")
            // Pushed on the left, fetched from the right: the right end has waited longest.
            .lindex(keys.ready(), -1)
            .query_async(&mut conn)
            .await?;
        let oldest_ready_ms = match oldest {
            Some(id) => {
                // Ready since its run-at time (a delayed job or a retry) or since it was pushed.
                let (run_at, enqueued_at): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
                    .arg(keys.job(&id))
                    .arg(&["run_at", "enqueued_at"])
                    .query_async(&mut conn)
                    .await?;
                let since = run_at.max(enqueued_at).unwrap_or(0);
                if since == 0 {
                    0
                } else {
                    now_ms().saturating_sub(since)
                }
            }
            None => 0,
        };
        let count = |name: &str| counts.get(name).copied().unwrap_or(0);
        Ok(QueueStats {
            queue: queue.to_owned(),
            ready,
            delayed,
            in_flight,
            dead,
            done_total: count("done"),
            retried_total: count("retried"),
            dead_total: count("dead"),
            workers,
            oldest_ready_ms,
        })
    }

    /// The newest `limit` dead letters of `queue`, newest first.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn dead(&self, queue: &str, limit: usize) -> redis::RedisResult<Vec<DeadLetter>> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        let stop = isize::try_from(limit)
            .unwrap_or(isize::MAX)
            .saturating_sub(1);
        let ids: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(keys.dead())
            .arg(0)
            .arg(stop)
            .arg("REV")
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            // redis-rs refuses to send an empty pipeline.
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, _) in &ids {
            pipe.cmd("HMGET").arg(keys.job(id)).arg(&[
                "reason",
                "attempts",
                "last_error",
                "payload",
            ]);
        }
        let fields: Vec<DeadFields> = pipe.query_async(&mut conn).await?;
        Ok(ids
            .into_iter()
            .zip(fields)
            .map(
                |((id, died), (reason, attempts, last_error, payload))| DeadLetter {
                    id,
                    reason: reason.unwrap_or_else(|| "unknown (record expired)".to_owned()),
                    attempts: attempts.unwrap_or(0),
                    last_error: last_error.unwrap_or_default(),
                    died_at_ms: died as u64,
                    payload,
                },
            )
            .collect())
    }

    /// Requeues dead letter `id` of `queue` with its attempts reset. Returns false when there
    /// is no such dead letter.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn retry(&self, queue: &str, id: &str) -> redis::RedisResult<bool> {
        let (_, requeued) = self.requeue(queue, id).await?;
        Ok(requeued == 1)
    }

    /// Deletes dead letter `id` of `queue` and its record. Returns false when there is no such
    /// dead letter (a job that is not dead is never deleted here).
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn delete(&self, queue: &str, id: &str) -> redis::RedisResult<bool> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        let removed: u64 = redis::cmd("ZREM")
            .arg(keys.dead())
            .arg(id)
            .query_async(&mut conn)
            .await?;
        if removed == 1 {
            redis::cmd("DEL")
                .arg(keys.job(id))
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(removed == 1)
    }

    /// Requeues every dead letter of `queue`, in chunks. Returns how many.
    ///
    /// # Errors
    /// When Redis does not answer; the letters requeued so far stay requeued.
    pub async fn retry_all(&self, queue: &str) -> redis::RedisResult<u64> {
        let mut total = 0;
        loop {
            let (seen, requeued) = self.requeue(queue, "").await?;
            if seen == 0 {
                return Ok(total);
            }
            total += requeued;
        }
    }

    async fn requeue(&self, queue: &str, id: &str) -> redis::RedisResult<(u64, u64)> {
        let keys = self.keys(queue);
        Scripts::default()
            .requeue_dead
            .key(keys.dead())
            .key(keys.ready())
            .key(keys.signal())
            .arg(keys.job_prefix())
            .arg(id)
            .arg(REQUEUE_CHUNK)
            .arg(now_ms())
            .invoke_async(&mut self.conn.clone())
            .await
    }
}
