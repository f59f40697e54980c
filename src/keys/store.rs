//! Stored keys in Redis: one hash a key (`P:apikey:{ID}`) and the set of their ids
//! (`P:apikeys`). The secret is never stored: its SHA-256, and after a rotation the previous
//! one's with the time it stops working.

use std::{collections::HashMap, sync::LazyLock};

use chrono::{DateTime, Utc};
use mailroom_jobs::RedisConnection;
use redis::AsyncCommands as _;

use super::{KeyError, KeyRecord, MAX_KEYS, Principal, Scopes, token};
use crate::keys::KeyId;

/// Notes a key's last use only while it exists: a revoked key must not come back as a stub.
static TOUCH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 1 then \
         redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1]) end",
    )
});

/// A key as stored.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) id: KeyId,
    pub(super) name: String,
    pub(super) scopes: Scopes,
    pub(super) from_domains: Option<Vec<String>>,
    pub(super) rate_per_second: Option<u32>,
    pub(super) daily_quota: Option<u64>,
    pub(super) expires_at: Option<DateTime<Utc>>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) created_by: String,
    pub(super) last_used_at: Option<DateTime<Utc>>,
    pub(super) digest: String,
    pub(super) previous_digest: Option<String>,
    pub(super) previous_until: Option<DateTime<Utc>>,
}

impl Default for Stored {
    fn default() -> Self {
        Self {
            id: KeyId::parse("0000000000000000").expect("an id"),
            name: String::new(),
            scopes: Scopes::default(),
            from_domains: None,
            rate_per_second: None,
            daily_quota: None,
            expires_at: None,
            created_at: DateTime::UNIX_EPOCH,
            created_by: String::new(),
            last_used_at: None,
            digest: String::new(),
            previous_digest: None,
            previous_until: None,
        }
    }
}

impl Stored {
    /// Whether `secret` opens this key at `now`: its secret, or the previous one in its grace.
    pub(super) fn admits(&self, secret: &str, now: DateTime<Utc>) -> bool {
        if self.expires_at.is_some_and(|at| at <= now) {
            return false;
        }
        let current = token::matches(secret, &self.digest);
        let previous = match (&self.previous_digest, self.previous_until) {
            (Some(digest), Some(until)) => token::matches(secret, digest) && now < until,
            _ => false,
        };
        current | previous
    }

    pub(super) fn principal(&self) -> Principal {
        Principal {
            id: self.id.clone(),
            scopes: self.scopes,
            from_domains: self.from_domains.clone(),
            rate_per_second: self.rate_per_second,
            daily_quota: self.daily_quota,
        }
    }

    pub(super) fn record(&self) -> KeyRecord {
        KeyRecord {
            id: self.id.to_string(),
            name: self.name.clone(),
            scopes: self.scopes.to_vec(),
            from_domains: self.from_domains.clone(),
            rate_per_second: self.rate_per_second,
            daily_quota: self.daily_quota,
            expires_at: self.expires_at,
            created_at: self.created_at,
            created_by: self.created_by.clone(),
            last_used_at: self.last_used_at,
            previous_secret_until: self.previous_until.filter(|until| *until > Utc::now()),
        }
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        let time =
            |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp().to_string()).unwrap_or_default();
        vec![
            ("name", self.name.clone()),
            ("scopes", self.scopes.to_text()),
            (
                "from_domains",
                self.from_domains
                    .as_ref()
                    .map(|d| d.join(","))
                    .unwrap_or_default(),
            ),
            (
                "rate_per_second",
                self.rate_per_second
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
            ),
            (
                "daily_quota",
                self.daily_quota.map(|q| q.to_string()).unwrap_or_default(),
            ),
            ("expires_at", time(self.expires_at)),
            ("created_at", self.created_at.timestamp().to_string()),
            ("created_by", self.created_by.clone()),
            ("digest", self.digest.clone()),
            (
                "previous_digest",
                self.previous_digest.clone().unwrap_or_default(),
            ),
            ("previous_until", time(self.previous_until)),
        ]
    }

    fn from_fields(id: KeyId, fields: &HashMap<String, String>) -> Option<Self> {
        let text = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
        let time = |name: &str| {
            text(name)
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(|s| DateTime::from_timestamp(s, 0))
        };
        Some(Self {
            id,
            name: text("name")?,
            scopes: Scopes::from_text(&text("scopes").unwrap_or_default()),
            from_domains: text("from_domains").map(|d| d.split(',').map(str::to_owned).collect()),
            rate_per_second: text("rate_per_second").and_then(|r| r.parse().ok()),
            daily_quota: text("daily_quota").and_then(|q| q.parse().ok()),
            expires_at: time("expires_at"),
            created_at: time("created_at").unwrap_or(DateTime::UNIX_EPOCH),
            created_by: text("created_by").unwrap_or_default(),
            last_used_at: time("last_used_at"),
            digest: text("digest")?,
            previous_digest: text("previous_digest"),
            previous_until: time("previous_until"),
        })
    }
}

#[derive(Debug, Clone)]
pub(super) struct Store {
    conn: RedisConnection,
    keys: mailroom_jobs::Keys,
}

impl Store {
    pub(super) fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            keys: mailroom_jobs::Keys::new(prefix),
        }
    }

    pub(super) async fn create(&self, stored: &Stored) -> Result<(), KeyError> {
        let mut conn = self.conn.clone();
        let count: usize = conn.scard(self.keys.api_keys()).await?;
        if count >= MAX_KEYS {
            return Err(KeyError::TooMany);
        }
        self.save(stored).await?;
        let _: () = conn.sadd(self.keys.api_keys(), stored.id.as_str()).await?;
        Ok(())
    }

    pub(super) async fn save(&self, stored: &Stored) -> Result<(), KeyError> {
        let _: () = (self.conn.clone())
            .hset_multiple(self.keys.api_key(stored.id.as_str()), &stored.fields())
            .await?;
        Ok(())
    }

    pub(super) async fn read(&self, id: &KeyId) -> Result<Option<Stored>, KeyError> {
        let fields: HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(self.keys.api_key(id.as_str()))
            .await?;
        Ok(Stored::from_fields(id.clone(), &fields))
    }

    /// Whether there was such a key.
    pub(super) async fn delete(&self, id: &KeyId) -> Result<bool, KeyError> {
        let mut conn = self.conn.clone();
        let removed: u32 = conn.del(self.keys.api_key(id.as_str())).await?;
        let _: () = conn.srem(self.keys.api_keys(), id.as_str()).await?;
        Ok(removed > 0)
    }

    pub(super) async fn all(&self) -> Result<Vec<Stored>, KeyError> {
        let ids: Vec<String> = self.conn.clone().smembers(self.keys.api_keys()).await?;
        let mut all = Vec::with_capacity(ids.len());
        for id in ids.iter().filter_map(|id| KeyId::parse(id)) {
            if let Some(stored) = self.read(&id).await? {
                all.push(stored);
            }
        }
        Ok(all)
    }

    /// Notes that `stored` was used now, at most once a minute (a failure is only logged).
    pub(super) async fn touch(&self, stored: &Stored) {
        let now = Utc::now();
        if stored
            .last_used_at
            .is_some_and(|at| now - at < chrono::Duration::minutes(1))
        {
            return;
        }
        let key = self.keys.api_key(stored.id.as_str());
        let result: redis::RedisResult<()> = TOUCH
            .key(&key)
            .arg(now.timestamp())
            .invoke_async(&mut self.conn.clone())
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, key = %stored.id, "could not note a key's last use");
        }
    }
}
