//! Rate limits shared by every API process: a fixed window counter per scope and subject in
//! Redis (`P:rl:SCOPE:DIGEST`), so limits hold however many processes serve the API. Subjects
//! are hashed: an address never appears in a key name.

use std::time::Duration;

use mailroom_jobs::RedisConnection;
use redis::Script;
use sha2::{Digest, Sha256};

const HIT: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('PTTL', KEYS[1])}";

/// Whether a request may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Under the limit.
    Allowed,
    /// Over it; the window ends after this long.
    Exceeded {
        /// When to try again.
        retry_after: Duration,
    },
}

/// Counts requests per subject and window.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    conn: RedisConnection,
    keys: mailroom_jobs::Keys,
    script: Script,
}

impl RateLimiter {
    /// Limits under `prefix`.
    pub fn new(conn: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            keys: mailroom_jobs::Keys::new(&prefix.into()),
            script: Script::new(HIT),
        }
    }

    /// Counts one request of `subject` in `scope`; at most `limit` per `window`.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn hit(
        &self,
        scope: mailroom_jobs::RateScope,
        subject: &str,
        limit: u64,
        window: Duration,
    ) -> redis::RedisResult<Limit> {
        let digest = base16ct::lower::encode_string(&Sha256::digest(subject.as_bytes()));
        let key = self.keys.rate_limit(scope, &digest[..32]);
        let (count, ttl_ms): (u64, i64) = self
            .script
            .key(key)
            .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut self.conn.clone())
            .await?;
        if count <= limit {
            return Ok(Limit::Allowed);
        }
        let ttl = u64::try_from(ttl_ms).unwrap_or(0).max(1000);
        Ok(Limit::Exceeded {
            retry_after: Duration::from_millis(ttl),
        })
    }
}
