//! Each endpoint's concurrency limit, shared by every worker: `P:hook:{ID}:busy`, a sorted set
//! of the deliveries under way (a run's token → when its hold lapses, ms). A delivery holds a
//! slot while it sends, renewing the hold before each event; a worker that dies frees its slot
//! when the hold lapses. A job that finds every slot taken is postponed without counting as an
//! attempt, so a hanging endpoint holds at most [`PER_ENDPOINT`] worker slots.

use mailroom_jobs::{Keys, RedisConnection};
use redis::Script;

/// Deliveries to one endpoint at once, across every worker.
pub const PER_ENDPOINT: usize = 8;
/// How long a hold lasts without renewal: the longest an event may take, and a margin.
const HOLD_MS: i64 = 20_000;

/// Takes (or renews) a slot: 1, or 0 when every slot is taken by others.
/// KEYS[1] the busy set; ARGV: 1 now (ms), 2 hold until (ms), 3 token, 4 slots.
const TAKE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// The slots of every endpoint.
#[derive(Debug, Clone)]
pub struct Slots {
    conn: RedisConnection,
    keys: Keys,
    take: Script,
}

impl Slots {
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
            take: Script::new(TAKE),
        }
    }

    /// Takes a slot of endpoint `id` for `token`, or renews the one it holds: whether it holds
    /// one now.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn take(&self, id: &str, token: &str) -> redis::RedisResult<bool> {
        let now = chrono::Utc::now().timestamp_millis();
        let taken: u8 = (self.take.key(self.keys.hook_busy(id)))
            .arg(now)
            .arg(now + HOLD_MS)
            .arg(token)
            .arg(PER_ENDPOINT)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(taken == 1)
    }

    /// Gives `token`'s slot of endpoint `id` back.
    ///
    /// # Errors
    /// When Redis fails (the hold lapses by itself).
    pub async fn give_back(&self, id: &str, token: &str) -> redis::RedisResult<()> {
        redis::cmd("ZREM")
            .arg(self.keys.hook_busy(id))
            .arg(token)
            .query_async(&mut self.conn.clone())
            .await
    }
}
