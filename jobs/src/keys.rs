//! The Redis key schema of one queue.
//!
//! Every key of a queue carries the hash tag `{queue}` so that, on Redis Cluster, all of them
//! live in one slot and each Lua script touches a single slot. Everything sits under the
//! deployment's prefix, so several deployments (or parallel tests) can share one server:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{Q}:job:ID` | hash | one job: `payload`, `attempts`, `max_attempts`, `state`, times, errors, the handler's `output` |
//! | `P:{Q}:ready` | list | ids ready to run; producers `LPUSH`, workers pop from the right |
//! | `P:{Q}:delayed` | sorted set | ids waiting for a run-at time or a retry, scored by due time (ms) |
//! | `P:{Q}:inflight` | sorted set | ids leased to a worker, scored by lease deadline (ms) |
//! | `P:{Q}:dead` | sorted set | dead-lettered ids, scored by when they died (ms) |
//! | `P:{Q}:signal` | list | wake-up tokens that idle workers block on (at most 64) |
//! | `P:{Q}:idem:KEY` | string | first job id pushed with an idempotency key, expiring with its window |
//! | `P:{Q}:workers` | sorted set | live worker names, scored by last heartbeat (ms) |
//! | `P:{Q}:counts` | hash | running totals: `done`, `retried`, `dead` |

/// Key names for one queue under one prefix.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    base: String,
    queue: String,
}

impl QueueKeys {
    /// Keys of `queue` under `prefix` (for example `mailroom` and `noop`).
    pub fn new(prefix: &str, queue: &str) -> Self {
        Self {
            base: format!("{prefix}:{{{queue}}}"),
            queue: queue.to_owned(),
        }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The common beginning of every key of this queue, `P:{Q}`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The hash holding job `id`.
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.base)
    }

    /// What [`QueueKeys::job`] puts before the id; scripts build job keys from it.
    pub fn job_prefix(&self) -> String {
        format!("{}:job:", self.base)
    }

    /// The list of ids ready to run.
    pub fn ready(&self) -> String {
        format!("{}:ready", self.base)
    }

    /// The sorted set of ids waiting for their due time.
    pub fn delayed(&self) -> String {
        format!("{}:delayed", self.base)
    }

    /// The sorted set of leased ids, by lease deadline.
    pub fn inflight(&self) -> String {
        format!("{}:inflight", self.base)
    }

    /// The sorted set of dead-lettered ids, by time of death.
    pub fn dead(&self) -> String {
        format!("{}:dead", self.base)
    }

    /// The wake-up list idle workers block on.
    pub fn signal(&self) -> String {
        format!("{}:signal", self.base)
    }

    /// The key remembering the first job pushed with idempotency key `key`.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.base)
    }

    /// The sorted set of live workers, by last heartbeat.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.base)
    }

    /// The hash of running totals.
    pub fn counts(&self) -> String {
        format!("{}:counts", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_queue_hash_tag_and_prefix() {
        let keys = QueueKeys::new("mr-test", "email");
        for key in [
            keys.job("0190"),
            keys.ready(),
            keys.delayed(),
            keys.inflight(),
            keys.dead(),
            keys.signal(),
            keys.idempotency("k"),
            keys.workers(),
            keys.counts(),
        ] {
            assert!(key.starts_with("mr-test:{email}:"), "{key}");
        }
    }
}
