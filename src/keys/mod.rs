//! API keys as data: each service's own key, with the scopes it needs, the sender domains it may
//! use and its limits, made, changed, rotated and revoked without a restart. Only a digest of a
//! key's secret is stored (`P:apikey:{ID}`); a process keeps what it read for at most
//! [`FRESH_FOR`], so a revocation reaches every `serve` within a second. The operator keys of
//! `MAILROOM_API_KEYS` stay outside, with every scope.

pub mod command;
mod scope;
mod store;
mod token;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use mailroom_jobs::RedisConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::domain::KeyId;
pub use scope::{RULES, Scope, Scopes, required};
pub use token::PREFIX;

/// How long a process trusts what it read of a key.
pub const FRESH_FOR: Duration = Duration::from_millis(500);
/// The most keys kept.
pub const MAX_KEYS: usize = 1000;
/// How long a rotated key's old secret keeps working unless the rotation says otherwise.
pub const DEFAULT_GRACE_SECS: u64 = 24 * 3600;
/// The longest grace a rotation may give.
pub const MAX_GRACE_SECS: u64 = 30 * 24 * 3600;
const MAX_NAME: usize = 100;
const MAX_DOMAINS: usize = 50;

/// What a key may be made with or changed to.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// What the key is for (1 to 100 characters, not only spaces, no control characters).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: Option<String>,
    /// What it may do (at least one).
    pub scopes: Option<Vec<Scope>>,
    /// The only domains it may send from (none: any).
    #[schema(min_items = 1, max_items = 50)]
    pub from_domains: Option<Vec<SenderDomain>>,
    /// Messages a second it may queue.
    #[serde(default, deserialize_with = "mailroom_jobs::whole::option")]
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_per_second: Option<u32>,
    /// Messages a UTC day it may queue.
    #[serde(default, deserialize_with = "mailroom_jobs::whole::option")]
    #[schema(minimum = 1, maximum = 1000000000)]
    pub daily_quota: Option<u64>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A domain a key may send from: labels of letters, digits and hyphens, two at least.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct SenderDomain(pub String);

impl utoipa::PartialSchema for SenderDomain {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"))
            .max_length(Some(253))
            .description(Some(
                "A domain: labels of letters, digits and hyphens, two at least",
            ))
            .into()
    }
}

impl ToSchema for SenderDomain {}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct KeyRecord {
    /// Its public id (the part of the key after `mr_`).
    #[schema(value_type = String)]
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_domains: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_quota: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Who made it: a key's id, or `operator:` and a digest prefix for a key of
    /// `MAILROOM_API_KEYS`.
    pub created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Until when the secret it had before its last rotation still works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<DateTime<Utc>>,
}

/// A key made or rotated: its record and, this once, the key itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Issued {
    /// The key to give the service (`mr_…`); it is shown only now.
    pub key: String,
    #[serde(flatten)]
    pub record: KeyRecord,
}

/// Who a stored key is, as a request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: KeyId,
    pub scopes: Scopes,
    pub from_domains: Option<Vec<String>>,
    pub rate_per_second: Option<u32>,
    pub daily_quota: Option<u64>,
}

/// Why a key could not be made, changed or found.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no key {0}")]
    NotFound(String),
    #[error("there are already {MAX_KEYS} keys: revoke one first")]
    TooMany,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl KeyError {
    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// What this process last read of each key, and when (`None`: there was no such key).
type Seen = HashMap<KeyId, (Instant, Option<Arc<store::Stored>>)>;

/// The stored keys, and what this process last read of each.
#[derive(Debug, Clone)]
pub struct ApiKeyStore {
    store: store::Store,
    seen: Arc<Mutex<Seen>>,
}

impl ApiKeyStore {
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            store: store::Store::new(conn, prefix),
            seen: Arc::default(),
        }
    }

    /// Makes a key for `spec` on behalf of `by`.
    ///
    /// # Errors
    /// A spec that is not whole or valid, too many keys, or Redis failing.
    pub async fn create(&self, spec: KeySpec, by: &str) -> Result<Issued, KeyError> {
        let name = check_name(spec.name.as_deref())?
            .ok_or_else(|| KeyError::invalid("name", "a key needs a name"))?;
        let scopes = check_scopes(spec.scopes.as_deref())?
            .ok_or_else(|| KeyError::invalid("scopes", "a key needs at least one scope"))?;
        let mut stored = store::Stored {
            id: token::new_id(),
            name,
            scopes,
            from_domains: check_domains(spec.from_domains)?,
            rate_per_second: check_range("rate_per_second", spec.rate_per_second, 1, 100_000)?,
            daily_quota: check_range("daily_quota", spec.daily_quota, 1, 1_000_000_000)?,
            expires_at: check_expiry(spec.expires_at)?,
            created_at: Utc::now(),
            created_by: by.to_owned(),
            ..store::Stored::default()
        };
        let secret = token::new_secret();
        stored.digest = token::digest(&secret);
        self.store.create(&stored).await?;
        Ok(Issued {
            key: token::presented(&stored.id, &secret),
            record: stored.record(),
        })
    }

    /// Every key, oldest first.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let mut all = self.store.all().await?;
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(all.iter().map(store::Stored::record).collect())
    }

    /// Key `id`.
    ///
    /// # Errors
    /// No such key, or Redis failing.
    pub async fn get(&self, id: &str) -> Result<KeyRecord, KeyError> {
        Ok(self.stored(id).await?.record())
    }

    /// Changes what `spec` names of key `id`.
    ///
    /// # Errors
    /// No such key, a value that is not valid, or Redis failing.
    pub async fn update(&self, id: &str, spec: KeySpec) -> Result<KeyRecord, KeyError> {
        let mut stored = self.stored(id).await?;
        if let Some(name) = check_name(spec.name.as_deref())? {
            stored.name = name;
        }
        if let Some(scopes) = check_scopes(spec.scopes.as_deref())? {
            stored.scopes = scopes;
        }
        if spec.from_domains.is_some() {
            stored.from_domains = check_domains(spec.from_domains)?;
        }
        if let Some(rate) = check_range("rate_per_second", spec.rate_per_second, 1, 100_000)? {
            stored.rate_per_second = Some(rate);
        }
        if let Some(quota) = check_range("daily_quota", spec.daily_quota, 1, 1_000_000_000)? {
            stored.daily_quota = Some(quota);
        }
        if spec.expires_at.is_some() {
            stored.expires_at = check_expiry(spec.expires_at)?;
        }
        self.store.save(&stored).await?;
        self.forget(&stored.id);
        Ok(stored.record())
    }

    /// Revokes key `id`: it stops working in this process now and in every other within
    /// [`FRESH_FOR`].
    ///
    /// # Errors
    /// No such key, or Redis failing.
    pub async fn revoke(&self, id: &str) -> Result<(), KeyError> {
        let id = KeyId::parse(id).ok_or_else(|| KeyError::NotFound(id.to_owned()))?;
        if !self.store.delete(&id).await? {
            return Err(KeyError::NotFound(id.to_string()));
        }
        self.forget(&id);
        Ok(())
    }

    /// Gives key `id` a new secret; the old one keeps working for `grace_secs`.
    ///
    /// # Errors
    /// No such key, a grace over [`MAX_GRACE_SECS`], or Redis failing.
    pub async fn rotate(&self, id: &str, grace_secs: u64) -> Result<Issued, KeyError> {
        if grace_secs > MAX_GRACE_SECS {
            return Err(KeyError::invalid(
                "grace_secs",
                format!("at most {MAX_GRACE_SECS} (30 days)"),
            ));
        }
        let mut stored = self.stored(id).await?;
        let secret = token::new_secret();
        let grace = chrono::Duration::seconds(i64::try_from(grace_secs).unwrap_or(i64::MAX));
        stored.previous_digest = Some(std::mem::replace(
            &mut stored.digest,
            token::digest(&secret),
        ));
        stored.previous_until = Some(Utc::now() + grace);
        self.store.save(&stored).await?;
        self.forget(&stored.id);
        Ok(Issued {
            key: token::presented(&stored.id, &secret),
            record: stored.record(),
        })
    }

    /// Who `presented` is, if it is a stored key that works now.
    ///
    /// # Errors
    /// When Redis fails (the request is answered 503, not refused).
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Principal>, KeyError> {
        let Some((id, secret)) = token::split(presented) else {
            return Ok(None);
        };
        let stored = self.current(&id, true).await?;
        Ok(stored.and_then(|s| s.admits(secret, Utc::now()).then(|| s.principal())))
    }

    /// Key `id` as this process last read it, read again when that is older than
    /// [`FRESH_FOR`] (noting its use when `used`).
    async fn current(
        &self,
        id: &KeyId,
        used: bool,
    ) -> Result<Option<Arc<store::Stored>>, KeyError> {
        if let Some(stored) = self.recent(id) {
            return Ok(stored);
        }
        let stored = self.store.read(id).await?.map(Arc::new);
        self.remember(id, stored.clone());
        if let Some(stored) = stored.as_ref().filter(|_| used) {
            self.store.touch(stored).await;
        }
        Ok(stored)
    }

    /// The secret that signs stored key `id`'s console sessions, and its scopes, while it may
    /// sign in (`console`, not expired): a digest of its stored digest under another label, so
    /// a rotation or a revocation ends its sessions (within [`FRESH_FOR`]).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn console_secret(&self, id: &str) -> Result<Option<([u8; 32], Scopes)>, KeyError> {
        use sha2::Digest as _;
        let Some(id) = KeyId::parse(id) else {
            return Ok(None);
        };
        let stored = self.current(&id, false).await?;
        let usable = |s: &&Arc<store::Stored>| {
            s.scopes.contains(Scope::Console) && s.expires_at.is_none_or(|at| at > Utc::now())
        };
        Ok(stored.as_ref().filter(usable).map(|s| {
            let mut hash = sha2::Sha256::new();
            hash.update(b"mailroom console session\0");
            hash.update(s.digest.as_bytes());
            (hash.finalize().into(), s.scopes)
        }))
    }

    async fn stored(&self, id: &str) -> Result<store::Stored, KeyError> {
        let parsed = KeyId::parse(id).ok_or_else(|| KeyError::NotFound(id.to_owned()))?;
        self.store
            .read(&parsed)
            .await?
            .ok_or_else(|| KeyError::NotFound(id.to_owned()))
    }

    fn recent(&self, id: &KeyId) -> Option<Option<Arc<store::Stored>>> {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.get(id)
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, s)| s.clone())
    }

    fn remember(&self, id: &KeyId, stored: Option<Arc<store::Stored>>) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= 4 * MAX_KEYS {
            seen.retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
        }
        seen.insert(id.clone(), (Instant::now(), stored));
    }

    fn forget(&self, id: &KeyId) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.remove(id);
    }
}

fn check_name(name: Option<&str>) -> Result<Option<String>, KeyError> {
    let Some(name) = name.map(str::trim) else {
        return Ok(None);
    };
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(KeyError::invalid(
            "name",
            format!("1 to {MAX_NAME} characters, no control characters"),
        ));
    }
    Ok(Some(name.to_owned()))
}

fn check_scopes(scopes: Option<&[Scope]>) -> Result<Option<Scopes>, KeyError> {
    match scopes {
        None => Ok(None),
        Some([]) => Err(KeyError::invalid(
            "scopes",
            "a key needs at least one scope",
        )),
        Some(scopes) => Ok(Some(scopes.iter().copied().collect())),
    }
}

fn check_domains(domains: Option<Vec<SenderDomain>>) -> Result<Option<Vec<String>>, KeyError> {
    let Some(domains) = domains else {
        return Ok(None);
    };
    if domains.is_empty() || domains.len() > MAX_DOMAINS {
        return Err(KeyError::invalid(
            "from_domains",
            format!("1 to {MAX_DOMAINS} domains (leave it out for any)"),
        ));
    }
    let mut checked = Vec::with_capacity(domains.len());
    for SenderDomain(domain) in domains {
        let lower = domain.to_ascii_lowercase();
        let label =
            |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let ok = lower.len() <= 253 && lower.split('.').count() >= 2 && lower.split('.').all(label);
        if !ok {
            return Err(KeyError::invalid(
                "from_domains",
                format!("{domain:?} is not a domain name"),
            ));
        }
        if !checked.contains(&lower) {
            checked.push(lower);
        }
    }
    Ok(Some(checked))
}

fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &'static str,
    value: Option<T>,
    low: T,
    high: T,
) -> Result<Option<T>, KeyError> {
    match value {
        Some(v) if v < low || v > high => Err(KeyError::invalid(field, format!("{low} to {high}"))),
        other => Ok(other),
    }
}

fn check_expiry(at: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, KeyError> {
    match at {
        Some(at) if at <= Utc::now() => {
            Err(KeyError::invalid("expires_at", "a time in the future"))
        }
        other => Ok(other),
    }
}
