//! The endpoints in Redis: `P:hook:{ID}` (url, events, description, owner, created_by,
//! created_at and previous_until in milliseconds, generation, disabled) and `P:hooks`, the ids.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::future::try_join_all;
use mailroom_jobs::{Keys, RedisConnection};
use redis::AsyncCommands as _;

use super::{
    Endpoint, EndpointSpec, EventType, HookError, MAX_ENDPOINTS, ROTATION_GRACE_SECS, WithSecret,
    check_description, check_events,
    log::DeliveryLog,
    secret::{Secret, SigningKey},
    target::{Reach, check_url},
};
use crate::domain::HookId;

/// An endpoint as stored: what the API shows, the generation of its secret, and since when
/// its deliveries fail (none: they do not).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub endpoint: Endpoint,
    pub generation: u32,
    pub failing_since: Option<DateTime<Utc>>,
    /// It hears of every key's mail (its owner reads all), not only its owner's.
    pub sees_all: bool,
}

/// The endpoints, and what makes their secrets.
#[derive(Debug, Clone)]
pub struct HookStore {
    conn: RedisConnection,
    keys: Keys,
    signing: Option<SigningKey>,
    reach: Reach,
}

impl HookStore {
    pub fn new(
        conn: RedisConnection,
        prefix: &str,
        signing: Option<SigningKey>,
        reach: Reach,
    ) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
            signing,
            reach,
        }
    }

    /// The endpoints' deliveries' logs.
    pub fn log(&self) -> DeliveryLog {
        DeliveryLog::new(self.conn.clone(), self.keys.prefix())
    }

    /// The endpoints' concurrency limits.
    pub fn slots(&self) -> super::slots::Slots {
        super::slots::Slots::new(self.conn.clone(), self.keys.prefix())
    }

    fn signing(&self) -> Result<&SigningKey, HookError> {
        self.signing.as_ref().ok_or(HookError::NoSigningKey)
    }

    /// Makes an endpoint for `spec`, belonging to stored key `owner` (`None`: an operator
    /// key's) and hearing of every key's mail when `sees_all`, on behalf of `by`.
    ///
    /// # Errors
    /// A spec that is not whole or valid, too many endpoints, no signing key, or Redis failing.
    pub async fn create(
        &self,
        spec: EndpointSpec,
        owner: Option<&str>,
        sees_all: bool,
        by: &str,
    ) -> Result<WithSecret, HookError> {
        let signing = self.signing()?;
        let url = spec
            .url
            .ok_or_else(|| HookError::invalid("url", "an endpoint needs a url"))?;
        let url = check_url(&url, self.reach).map_err(|e| HookError::invalid("url", e))?;
        let events = check_events(spec.events.unwrap_or_default())?;
        let count: usize = self.conn.clone().scard(self.keys.hooks()).await?;
        if count >= MAX_ENDPOINTS {
            return Err(HookError::TooMany);
        }
        let stored = Stored {
            endpoint: Endpoint {
                id: HookId::random().to_string(),
                url: url.to_string(),
                events,
                description: check_description(spec.description)?,
                owner: owner.map(str::to_owned),
                created_by: by.to_owned(),
                created_at: Utc::now(),
                disabled: spec
                    .disabled
                    .filter(|d| *d)
                    .map(|_| "disabled by its owner".to_owned()),
                previous_secret_until: None,
            },
            generation: 1,
            failing_since: None,
            sees_all,
        };
        self.save(&stored).await?;
        let _: () = self
            .conn
            .clone()
            .sadd(self.keys.hooks(), &stored.endpoint.id)
            .await?;
        Ok(WithSecret {
            secret: signing.secret(&stored.endpoint.id, 1).presented(),
            endpoint: stored.endpoint,
        })
    }

    /// Every endpoint, as stored.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn all(&self) -> Result<Vec<Stored>, HookError> {
        let ids: Vec<String> = self.conn.clone().smembers(self.keys.hooks()).await?;
        let reads = ids.iter().map(|id| self.read(id));
        Ok(try_join_all(reads).await?.into_iter().flatten().collect())
    }

    /// The endpoints `viewer` sees (a stored key: its own; `None`: all), oldest first.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn list(&self, viewer: Option<&str>) -> Result<Vec<Endpoint>, HookError> {
        let mut all: Vec<Endpoint> = (self.all().await?.into_iter())
            .map(|s| s.endpoint)
            .filter(|e| visible(e, viewer))
            .collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Endpoint `id`, if `viewer` sees it.
    ///
    /// # Errors
    /// Not found (or another key's), or Redis failing.
    pub async fn get(&self, id: &str, viewer: Option<&str>) -> Result<Stored, HookError> {
        let found = match HookId::parse(id) {
            Some(id) => self.read(id.as_str()).await?,
            None => None,
        };
        found
            .filter(|s| visible(&s.endpoint, viewer))
            .ok_or_else(|| HookError::NotFound(id.to_owned()))
    }

    /// Changes what `spec` names of endpoint `id`.
    ///
    /// # Errors
    /// Not found, a value that is not valid, or Redis failing.
    pub async fn update(
        &self,
        id: &str,
        viewer: Option<&str>,
        spec: EndpointSpec,
    ) -> Result<Endpoint, HookError> {
        let mut stored = self.get(id, viewer).await?;
        let endpoint = &mut stored.endpoint;
        if let Some(url) = spec.url {
            let url = check_url(&url, self.reach).map_err(|e| HookError::invalid("url", e))?;
            endpoint.url = url.to_string();
        }
        if let Some(events) = spec.events {
            endpoint.events = check_events(events)?;
        }
        if spec.description.is_some() {
            endpoint.description = check_description(spec.description)?;
        }
        match spec.disabled {
            Some(true) if endpoint.disabled.is_none() => {
                endpoint.disabled = Some("disabled by its owner".to_owned());
            }
            Some(false) => endpoint.disabled = None,
            _ => {}
        }
        self.save(&stored).await?;
        if spec.disabled == Some(false) {
            // Started again: its 5 days of failing count from its next failure.
            self.recovered(&stored.endpoint.id).await?;
        }
        Ok(stored.endpoint)
    }

    /// Deletes endpoint `id`.
    ///
    /// # Errors
    /// Not found, or Redis failing.
    pub async fn delete(&self, id: &str, viewer: Option<&str>) -> Result<(), HookError> {
        let stored = self.get(id, viewer).await?;
        let mut conn = self.conn.clone();
        let _: () = conn.del(self.keys.hook(&stored.endpoint.id)).await?;
        self.log().forget(&stored.endpoint.id).await?;
        let _: () = conn.srem(self.keys.hooks(), &stored.endpoint.id).await?;
        Ok(())
    }

    /// A new secret for endpoint `id`; the one before keeps signing beside it for a day.
    ///
    /// # Errors
    /// Not found, no signing key, or Redis failing.
    pub async fn rotate(&self, id: &str, viewer: Option<&str>) -> Result<WithSecret, HookError> {
        let signing = self.signing()?;
        let mut stored = self.get(id, viewer).await?;
        stored.generation += 1;
        stored.endpoint.previous_secret_until =
            Some(Utc::now() + chrono::Duration::seconds(ROTATION_GRACE_SECS));
        self.save(&stored).await?;
        Ok(WithSecret {
            secret: signing
                .secret(&stored.endpoint.id, stored.generation)
                .presented(),
            endpoint: stored.endpoint,
        })
    }

    /// The secrets that sign for `stored` at `now`: the current one, and the one before while
    /// its grace lasts.
    ///
    /// # Errors
    /// No signing key.
    pub fn secrets(&self, stored: &Stored, now: DateTime<Utc>) -> Result<Vec<Secret>, HookError> {
        let signing = self.signing()?;
        let id = &stored.endpoint.id;
        let mut secrets = vec![signing.secret(id, stored.generation)];
        let grace = stored
            .endpoint
            .previous_secret_until
            .is_some_and(|until| until > now);
        if grace && stored.generation > 1 {
            secrets.push(signing.secret(id, stored.generation - 1));
        }
        Ok(secrets)
    }

    /// Stops deliveries to endpoint `id`, saying `why`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn disable(&self, id: &str, why: &str) -> Result<(), HookError> {
        let key = self.keys.hook(id);
        let mut conn = self.conn.clone();
        // Not on an endpoint deleted meanwhile: that would leave half a record behind.
        if conn.exists(&key).await? {
            let _: () = conn.hset(&key, "disabled", why).await?;
        }
        Ok(())
    }

    /// Notes that a delivery to endpoint `id` failed at `now`: since when it fails.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn failing(&self, id: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, HookError> {
        let key = self.keys.hook(id);
        // One round trip: set if unset, then read what is there.
        let (_, since): (i64, Option<i64>) = redis::pipe()
            .hset_nx(&key, "failing_since", now.timestamp_millis())
            .hget(&key, "failing_since")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(since
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or(now))
    }

    /// Notes that endpoint `id` answers again.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn recovered(&self, id: &str) -> Result<(), HookError> {
        let _: () = (self.conn.clone())
            .hdel(self.keys.hook(id), "failing_since")
            .await?;
        Ok(())
    }

    async fn save(&self, stored: &Stored) -> Result<(), HookError> {
        let e = &stored.endpoint;
        let events: Vec<&str> = e.events.iter().map(|t| t.as_str()).collect();
        let millis = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis().to_string());
        let fields = [
            ("url", e.url.clone()),
            ("events", events.join(" ")),
            ("description", e.description.clone().unwrap_or_default()),
            ("owner", e.owner.clone().unwrap_or_default()),
            ("created_by", e.created_by.clone()),
            ("created_at", e.created_at.timestamp_millis().to_string()),
            ("generation", stored.generation.to_string()),
            (
                "previous_until",
                millis(e.previous_secret_until).unwrap_or_default(),
            ),
            ("disabled", e.disabled.clone().unwrap_or_default()),
            (
                "sees_all",
                if stored.sees_all { "1" } else { "" }.to_owned(),
            ),
        ];
        let _: () = self
            .conn
            .clone()
            .hset_multiple(self.keys.hook(&e.id), &fields)
            .await?;
        Ok(())
    }

    async fn read(&self, id: &str) -> Result<Option<Stored>, HookError> {
        let fields: HashMap<String, String> = self.conn.clone().hgetall(self.keys.hook(id)).await?;
        Ok(parse(id, &fields))
    }
}

/// Whether `viewer` (a stored key's id; `None`: an operator key) sees `endpoint`.
fn visible(endpoint: &Endpoint, viewer: Option<&str>) -> bool {
    viewer.is_none_or(|v| endpoint.owner.as_deref() == Some(v))
}

/// A stored endpoint, if the hash holds one mailroom wrote.
fn parse(id: &str, fields: &HashMap<String, String>) -> Option<Stored> {
    let text = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
    let time = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
    };
    Some(Stored {
        endpoint: Endpoint {
            id: id.to_owned(),
            url: text("url")?,
            events: fields
                .get("events")?
                .split_whitespace()
                .filter_map(EventType::parse)
                .collect(),
            description: text("description"),
            owner: text("owner"),
            created_by: text("created_by").unwrap_or_default(),
            created_at: time("created_at")?,
            disabled: text("disabled"),
            previous_secret_until: time("previous_until"),
        },
        generation: fields.get("generation")?.parse().ok()?,
        failing_since: time("failing_since"),
        sees_all: fields.get("sees_all").is_some_and(|v| v == "1"),
    })
}
