//! Campaigns in Redis (keys: [`mailroom_jobs::CampaignKeys`]): the spec and state in one hash,
//! the audience as a string of ids, and two bitmaps over the audience's ordinals: `try` (the
//! hand-over began) and `done` (sent, skipped or failed). Every change of state is one script,
//! so two workers, or a worker and the API, never disagree about where a campaign stands.

use std::{
    collections::{BTreeMap, HashMap},
    sync::LazyLock,
};

use chrono::Utc;
use mailroom_jobs::{CampaignKeys, Keys, RedisConnection};
use redis::{AsyncCommands, Script};

use super::model::{Campaign, Spec, State};
use crate::{
    domain::{CampaignId, EventType, Notice, SubscriberId},
    store::notices::Notices,
};

static TRANSITION: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/transition.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/claim.lua")));
static MARK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/mark.lua")));
static SEAL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/seal.lua")));
static ENGAGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/engage.lua")));

/// When a campaign pauses itself: complaints or bounces past these shares of its mail, once
/// `min_deliveries` were delivered (or delivered and bounced) to judge by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guards {
    /// Complaints per delivery (Gmail's line for bulk senders: 0.3 %).
    pub complaint_rate: f64,
    /// Bounces per attempted delivery.
    pub bounce_rate: f64,
    pub min_deliveries: u64,
}

impl Guards {
    /// The guards `settings` describe.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            complaint_rate: settings.guard_complaint_rate,
            bounce_rate: settings.guard_bounce_rate,
            min_deliveries: settings.guard_min_deliveries,
        }
    }
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            complaint_rate: 0.003,
            bounce_rate: 0.05,
            min_deliveries: 1000,
        }
    }
}

/// The most distinct skip and failure reasons a campaign counts; later ones count as `other`.
const MAX_REASONS: usize = 100;
/// The longest reason kept, in characters.
const MAX_REASON_CHARS: usize = 200;
/// How long a snapshot being written may live unsealed (a worker that died while writing it).
const UNSEALED_TTL_SECS: u64 = 24 * 3600;

/// How a state change went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Done: the state and run after it.
    Done(State, u32),
    /// Refused: the state the campaign is in.
    Refused(State),
    /// There is no such campaign.
    Missing,
}

/// How recipients ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Skipped,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

/// What the campaign's hash says about a run, for a batch about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub state: State,
    pub run: u32,
    /// The audience's size, once sealed.
    pub audience: Option<u64>,
}

/// Campaigns in Redis.
#[derive(Debug, Clone)]
pub struct CampaignStore {
    conn: RedisConnection,
    keys: Keys,
    retention_secs: u64,
    notices: Notices,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl CampaignStore {
    /// The store under `prefix`; campaigns that ended are kept `retention_secs`.
    pub fn new(conn: RedisConnection, prefix: &str, retention_secs: u64) -> Self {
        Self {
            notices: Notices::new(conn.clone(), prefix),
            conn,
            keys: Keys::new(prefix),
            retention_secs,
        }
    }

    /// Tells the services campaign `id` went `kind` (in run `run`, which names a start).
    async fn announce(
        &self,
        kind: EventType,
        id: CampaignId,
        run: Option<u32>,
        reason: Option<&str>,
    ) {
        let at = Utc::now();
        let identity = match (kind, run) {
            (EventType::CampaignPaused, _) => format!("{id}|{}", at.timestamp_millis()),
            (_, Some(run)) => format!("{id}|{run}"),
            (_, None) => id.to_string(),
        };
        let data = serde_json::json!({"campaign_id": id, "run": run, "reason": reason});
        let notice = Notice::new(kind, &identity, at, None, data);
        self.notices.tell(&[notice]).await;
    }

    fn keys_of(&self, id: CampaignId) -> CampaignKeys {
        self.keys.campaign(id)
    }

    /// Stores a new draft (to be sent at `send_at` when scheduled without a time).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn create(
        &self,
        id: CampaignId,
        spec: &Spec,
        send_at: Option<chrono::DateTime<Utc>>,
    ) -> redis::RedisResult<()> {
        let keys = self.keys_of(id);
        let now = now_ms();
        let spec = serde_json::to_string(spec).map_err(json_error)?;
        let mut conn = self.conn.clone();
        let mut set = redis::cmd("HSET");
        if let Some(at) = send_at {
            set.arg(keys.state())
                .arg("send_at")
                .arg(at.timestamp_millis());
        } else {
            set.arg(keys.state());
        }
        let () = set
            .arg("spec")
            .arg(spec)
            .arg("state")
            .arg(State::Draft.as_str())
            .arg("run")
            .arg(0)
            .arg("created_at")
            .arg(now)
            .arg("updated_at")
            .arg(now)
            .query_async(&mut conn)
            .await?;
        conn.zadd(self.keys.campaigns(), id, now).await
    }

    /// Campaign `id`, if it exists.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn get(&self, id: CampaignId) -> redis::RedisResult<Option<Campaign>> {
        let keys = self.keys_of(id);
        let (fields, reasons): (HashMap<String, String>, BTreeMap<String, u64>) = redis::pipe()
            .hgetall(keys.state())
            .hgetall(keys.reasons())
            .query_async(&mut self.conn.clone())
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        Ok(Campaign::from_fields(id, &fields, reasons))
    }

    /// The spec of campaign `id`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn spec(&self, id: CampaignId) -> redis::RedisResult<Option<Spec>> {
        let raw: Option<String> = self
            .conn
            .clone()
            .hget(self.keys_of(id).state(), "spec")
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Campaigns newest first: `limit` after the first `offset`. Ids whose campaign expired
    /// are dropped from the index on the way.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn list(&self, offset: usize, limit: usize) -> redis::RedisResult<Vec<Campaign>> {
        let mut conn = self.conn.clone();
        let stop = isize::try_from(offset + limit).unwrap_or(isize::MAX) - 1;
        let start = isize::try_from(offset).unwrap_or(isize::MAX);
        let ids: Vec<String> = conn.zrevrange(self.keys.campaigns(), start, stop).await?;
        let mut campaigns = Vec::with_capacity(ids.len());
        for text in ids {
            let found = match CampaignId::parse(&text) {
                Some(id) => self.get(id).await?,
                None => None,
            };
            match found {
                Some(campaign) => campaigns.push(campaign),
                None => {
                    let _: i64 = conn.zrem(self.keys.campaigns(), &text).await?;
                }
            }
        }
        Ok(campaigns)
    }

    /// How many campaigns are kept. Near `bound`, ids whose keys expired are first dropped
    /// from the index (oldest first, a hundred at a time).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn live_count(&self, bound: u64) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        let count: u64 = conn.zcard(self.keys.campaigns()).await?;
        if count < bound {
            return Ok(count);
        }
        let oldest: Vec<String> = conn.zrange(self.keys.campaigns(), 0, 99).await?;
        for text in oldest {
            let exists = match CampaignId::parse(&text) {
                Some(id) => conn.exists(self.keys_of(id).state()).await?,
                None => false,
            };
            if !exists {
                let _: i64 = conn.zrem(self.keys.campaigns(), &text).await?;
            }
        }
        conn.zcard(self.keys.campaigns()).await
    }

    /// Where campaign `id` stands.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn standing(&self, id: CampaignId) -> redis::RedisResult<Option<Standing>> {
        let (state, run, audience): (Option<String>, Option<u32>, Option<u64>) = self
            .conn
            .clone()
            .hmget(self.keys_of(id).state(), &["state", "run", "audience"])
            .await?;
        Ok(state.and_then(|s| State::parse(&s)).map(|state| Standing {
            state,
            run: run.unwrap_or(0),
            audience,
        }))
    }

    /// Runs one state change (see `lua/transition.lua`).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn transition(
        &self,
        id: CampaignId,
        action: &str,
        argument: &str,
    ) -> redis::RedisResult<Transition> {
        let keys = self.keys_of(id);
        let (ok, state, run): (u8, String, u32) = TRANSITION
            .key(keys.all().as_slice())
            .arg(action)
            .arg(now_ms())
            .arg(argument)
            .arg(self.retention_secs)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let kind = match action {
            "start" => Some(EventType::CampaignStarted),
            "pause" => Some(EventType::CampaignPaused),
            _ => None,
        };
        if let (1, Some(kind)) = (ok, kind) {
            let reason = (kind == EventType::CampaignPaused).then_some(argument);
            self.announce(kind, id, Some(run), reason).await;
        }
        Ok(match State::parse(&state) {
            None => Transition::Missing,
            Some(state) if ok == 1 => Transition::Done(state, run),
            Some(state) => Transition::Refused(state),
        })
    }

    /// Appends ids to an unsealed snapshot (`first`: replacing what a dead worker left).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn append_snapshot(
        &self,
        id: CampaignId,
        ids: &[SubscriberId],
        first: bool,
    ) -> redis::RedisResult<()> {
        let key = self.keys_of(id).snapshot();
        let mut pipe = redis::pipe();
        if first {
            pipe.del(&key).ignore();
        }
        for chunk in ids.chunks(16_384) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.get().to_le_bytes()).collect();
            pipe.append(&key, bytes).ignore();
        }
        pipe.expire(&key, i64::try_from(UNSEALED_TTL_SECS).unwrap_or(i64::MAX))
            .ignore();
        pipe.query_async(&mut self.conn.clone()).await
    }

    /// Fixes the audience at `size` recipients (see `lua/seal.lua`): `false` when the campaign
    /// stopped running meanwhile.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn seal(&self, id: CampaignId, run: u32, size: u64) -> redis::RedisResult<bool> {
        let keys = self.keys_of(id);
        let sealed: u8 = SEAL
            .key(keys.all().as_slice())
            .arg(run)
            .arg(size)
            .arg(now_ms())
            .arg(self.retention_secs)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if sealed == 1 && size == 0 {
            self.announce(EventType::CampaignFinished, id, None, None)
                .await;
        }
        Ok(sealed == 1)
    }

    /// How many recipients of each batch (of `batch` ordinals) are done, for `batches` batches.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn done_per_batch(
        &self,
        id: CampaignId,
        batch: u32,
        batches: u32,
    ) -> redis::RedisResult<Vec<u64>> {
        let key = self.keys_of(id).done();
        let mut counts = Vec::with_capacity(batches as usize);
        let mut conn = self.conn.clone();
        let bytes = u64::from(batch / 8);
        for chunk in (0..batches).collect::<Vec<_>>().chunks(1000) {
            let mut pipe = redis::pipe();
            for &b in chunk {
                let start = u64::from(b) * bytes;
                pipe.cmd("BITCOUNT")
                    .arg(&key)
                    .arg(start)
                    .arg(start + bytes - 1);
            }
            let part: Vec<u64> = pipe.query_async(&mut conn).await?;
            counts.extend(part);
        }
        Ok(counts)
    }

    /// The ids of ordinals `from..to` of the audience and which of them are done.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn slice(
        &self,
        id: CampaignId,
        from: u64,
        to: u64,
    ) -> redis::RedisResult<Vec<(u64, SubscriberId, bool)>> {
        let keys = self.keys_of(id);
        // Batches start at multiples of 8, so the done bits of a batch are whole bytes.
        let (ids, done): (Vec<u8>, Vec<u8>) = redis::pipe()
            .getrange(keys.snapshot(), (from * 8) as isize, (to * 8 - 1) as isize)
            .getrange(keys.done(), (from / 8) as isize, ((to - 1) / 8) as isize)
            .query_async(&mut self.conn.clone())
            .await?;
        let mut out = Vec::with_capacity(ids.len() / 8);
        for (i, bytes) in ids.chunks_exact(8).enumerate() {
            let ordinal = from + i as u64;
            let raw = u64::from_le_bytes(bytes.try_into().unwrap_or_default());
            let Ok(subscriber) = SubscriberId::try_from(raw) else {
                continue;
            };
            let bit = ordinal - (from / 8) * 8;
            let is_done = done
                .get((bit / 8) as usize)
                .is_some_and(|byte| byte & (0x80 >> (bit % 8)) != 0);
            out.push((ordinal, subscriber, is_done));
        }
        Ok(out)
    }

    /// Claims `ordinals` for a hand-over in run `run` (see `lua/claim.lua`): the state, and the
    /// ordinals claimed when it is running.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn claim(
        &self,
        id: CampaignId,
        run: u32,
        ordinals: &[u64],
    ) -> redis::RedisResult<(Option<State>, Vec<u64>)> {
        let keys = self.keys_of(id);
        let answer: Vec<redis::Value> = CLAIM
            .key(keys.state())
            .key(keys.done())
            .key(keys.tried())
            .arg(run)
            .arg(ordinals)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let mut answer = answer.into_iter();
        let state: Option<String> = answer.next().map(redis::from_redis_value).transpose()?;
        let claimed = answer
            .map(redis::from_redis_value::<u64>)
            .collect::<Result<_, _>>()?;
        Ok((state.and_then(|s| State::parse(&s)), claimed))
    }

    /// Records that `ordinals` ended with `outcome` (and `reason`): how many were newly
    /// recorded, and whether the campaign finished with them.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn mark(
        &self,
        id: CampaignId,
        outcome: Outcome,
        reason: &str,
        ordinals: &[u64],
    ) -> redis::RedisResult<(u64, bool)> {
        if ordinals.is_empty() {
            return Ok((0, false));
        }
        let reason: String = reason
            .chars()
            .take(MAX_REASON_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let (count, finished): (u64, u8) = self
            .mark_script(id, outcome.as_str(), &reason, ordinals)
            .await?;
        if finished == 1 {
            self.announce(EventType::CampaignFinished, id, None, None)
                .await;
        }
        Ok((count, finished == 1))
    }

    /// Gives claimed `ordinals` back untried: the provider refused them without sending.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn release(&self, id: CampaignId, ordinals: &[u64]) -> redis::RedisResult<()> {
        if ordinals.is_empty() {
            return Ok(());
        }
        let _: (u64, u8) = self.mark_script(id, "release", "", ordinals).await?;
        Ok(())
    }

    async fn mark_script<T: redis::FromRedisValue>(
        &self,
        id: CampaignId,
        outcome: &str,
        reason: &str,
        ordinals: &[u64],
    ) -> redis::RedisResult<T> {
        let keys = self.keys_of(id);
        MARK.key(keys.state())
            .key(keys.done())
            .key(keys.tried())
            .key(keys.reasons())
            .key(keys.snapshot())
            .arg(outcome)
            .arg(reason)
            .arg(now_ms())
            .arg(self.retention_secs)
            .arg(MAX_REASONS)
            .arg(ordinals)
            .invoke_async(&mut self.conn.clone())
            .await
    }

    /// Counts one provider event (`delivered`, `open`, `bounce`, `spamreport`, …) for campaign
    /// `id`, if it still exists, and pauses it when `guards` trip: `true` when this event
    /// paused it.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn engage(
        &self,
        id: CampaignId,
        event: &str,
        guards: &Guards,
    ) -> redis::RedisResult<bool> {
        let paused: u8 = ENGAGE
            .key(self.keys_of(id).state())
            .arg(format!("ev:{event}"))
            .arg(guards.complaint_rate)
            .arg(guards.bounce_rate)
            .arg(guards.min_deliveries)
            .arg(now_ms())
            .invoke_async(&mut self.conn.clone())
            .await?;
        if paused == 1 {
            let reason = Some("a guard tripped: too many bounces or complaints");
            (self.announce(EventType::CampaignPaused, id, None, reason)).await;
        }
        Ok(paused == 1)
    }
}

fn json_error(error: serde_json::Error) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "could not encode the campaign",
        error.to_string(),
    ))
}
