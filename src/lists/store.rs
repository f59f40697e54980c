//! The list store in Redis: lists, subscribers (spread over [`SUBSCRIBER_SHARDS`] shards by
//! address) and their subscriptions. Key layout: [`mailroom_jobs::keys::ShardKeys`].
//!
//! Every change to a subscriber runs as one script in its shard, so records, the address
//! index, memberships, their per-status counts and the history change together, on one Redis
//! or a cluster. A batch of rows (an import) is cut by shard and the shards' scripts run side
//! by side on the multiplexed connection.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::Utc;
use futures::future::try_join_all;
use mailroom_jobs::{BUCKET_SPAN, Keys, RedisConnection, SUBSCRIBER_SHARDS, ShardKeys};
use redis::{AsyncCommands, Script};
use serde::Serialize;
use utoipa::ToSchema;

use super::model::{
    HISTORY_KEPT, List, NewRecord, Source, Subscriber, SubscriberStatus, Subscription,
    SubscriptionStatus, decode_membership, decode_record, encode_new_record,
};
use super::notices;
use crate::domain::{ListId, SubscriberId, shard_of};
use crate::store::notices::Notices;

mod scan;

pub use scan::{PageError, RawMember};

/// A script that rewrites records: the record helpers of `lua/record.lua`, then `$file`.
macro_rules! record_script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("lua/record.lua"), include_str!($file))))
    };
}

static UPSERT: LazyLock<Script> = record_script!("lua/upsert.lua");
static SET: LazyLock<Script> = record_script!("lua/set_subscription.lua");
static FORGET_LIST: LazyLock<Script> = record_script!("lua/forget_list.lua");
static DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/delete_subscriber.lua")));

/// How many subscriptions a list has in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counts {
    pub unconfirmed: u64,
    pub confirmed: u64,
    pub unsubscribed: u64,
}

/// One row to create or update: a subscriber's fields, parsed.
#[derive(Debug, Clone)]
pub struct Row {
    /// The address as stored (normalized).
    pub email: String,
    /// Its case key, which identifies the subscriber.
    pub key: String,
    /// `None`: not given (kept on update, empty on create).
    pub name: Option<String>,
    pub locale: Option<String>,
    /// Serialized attributes (see [`super::model::encode_attributes`]).
    pub attributes: Option<String>,
    pub status: Option<SubscriberStatus>,
}

impl Row {
    /// A row for `address` with nothing else given.
    pub fn new(address: &mailroom_jobs::address::Address) -> Self {
        let email = address.normalized();
        Self {
            key: mailroom_jobs::address::case_key(&email),
            email,
            name: None,
            locale: None,
            attributes: None,
            status: None,
        }
    }
}

/// What an upsert does to the lists it names.
#[derive(Debug, Clone)]
pub struct Upsert {
    pub lists: Vec<ListId>,
    /// `Unconfirmed` or `Confirmed`: what a new subscription starts as (an unconfirmed one is
    /// raised to confirmed; confirmed and unsubscribed ones are left alone).
    pub status: SubscriptionStatus,
    pub source: Source,
    /// Change existing subscribers' fields (else only new subscribers get them).
    pub update: bool,
}

/// What happened to a subscriber record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordChange {
    Created,
    Updated,
    Unchanged,
}

/// What happened to one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionChange {
    /// Subscribed now.
    Added,
    /// Raised from unconfirmed to confirmed.
    Confirmed,
    Unchanged,
    /// Left unsubscribed: the person asked to leave this list, and only they can rejoin.
    RefusedUnsubscribed,
}

/// The result for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: SubscriberId,
    pub record: RecordChange,
    /// One per list of the [`Upsert`], in its order.
    pub subscriptions: Vec<SubscriptionChange>,
}

/// A page of a list's members.
#[derive(Debug, Clone)]
pub struct MemberPage {
    pub members: Vec<(SubscriberId, Subscription)>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<String>,
}

/// Lists and subscribers in Redis.
#[derive(Debug, Clone)]
pub struct ListStore {
    conn: RedisConnection,
    /// Connections that whole-list reads (segment counts, campaign audiences) spread their
    /// bucket reads over. A multiplexed connection decodes every reply on one task, so one
    /// connection holds such a read to one core; and the main connection's short commands do
    /// not queue behind thousands of bucket replies.
    bulk: std::sync::Arc<[RedisConnection]>,
    /// List names read lately (see [`ListStore::list_name`]).
    names: std::sync::Arc<std::sync::Mutex<NameCache>>,
    keys: Keys,
    notices: Notices,
}

/// List names by id with the time each was read; cleared whole when full.
type NameCache = HashMap<ListId, (std::sync::Arc<str>, std::time::Instant)>;

/// How long a list name read for [`ListStore::list_name`] is used without reading it again.
const NAME_FRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// How many list names the cache holds before it starts over.
const NAMES_HELD: usize = 4096;

/// One `HSCAN` step of hash `key`: the next cursor and about `count` fields with their values.
async fn hscan(
    conn: &mut RedisConnection,
    key: &str,
    cursor: u64,
    count: usize,
) -> redis::RedisResult<(u64, Vec<(String, String)>)> {
    redis::cmd("HSCAN")
        .arg(key)
        .arg(cursor)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
}

/// A store task that panicked or was cancelled, as the store's error.
pub(super) fn task_failed(error: tokio::task::JoinError) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Io,
        "a list store task failed",
        error.to_string(),
    ))
}

fn all_shards() -> impl Iterator<Item = u16> {
    0..SUBSCRIBER_SHARDS
}

impl ListStore {
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            bulk: std::sync::Arc::new([conn.clone()]),
            names: std::sync::Arc::default(),
            notices: Notices::new(conn.clone(), prefix),
            conn,
            keys: Keys::new(prefix),
        }
    }

    /// This store, with whole-list reads spread over `bulk` (none: the main connection).
    #[must_use]
    pub fn with_bulk_reads(mut self, bulk: Vec<RedisConnection>) -> Self {
        if !bulk.is_empty() {
            self.bulk = bulk.into();
        }
        self
    }

    fn shard(&self, id: SubscriberId) -> ShardKeys {
        self.keys.shard(id.shard())
    }

    /// A new list id.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn next_list_id(&self) -> redis::RedisResult<ListId> {
        let n: u64 = self.conn.clone().incr(self.keys.lists_seq(), 1).await?;
        ListId::new(n).ok_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Parse, "the list sequence answered 0"))
        })
    }

    /// Stores `list` (new or changed).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn save_list(&self, list: &List) -> redis::RedisResult<()> {
        let json = serde_json::to_string(list).unwrap_or_default();
        self.conn
            .clone()
            .hset(self.keys.lists(), list.id.get(), json)
            .await
    }

    /// The list `id`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn list(&self, id: ListId) -> redis::RedisResult<Option<List>> {
        let raw: Option<String> = self.conn.clone().hget(self.keys.lists(), id.get()).await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// The name of list `id` for a page that only shows it, read at most [`NAME_FRESH`] ago
    /// (`None`: no such list). Mailbox providers post one-click unsubscribes in bursts when a
    /// campaign lands; answering each from this cache saves a Redis round trip, a tenth of the
    /// work. A renamed list's old name may show for that long; nothing is decided by it.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn list_name(&self, id: ListId) -> redis::RedisResult<Option<std::sync::Arc<str>>> {
        let now = std::time::Instant::now();
        if let Ok(names) = self.names.lock()
            && let Some((name, read)) = names.get(&id)
            && now.duration_since(*read) < NAME_FRESH
        {
            return Ok(Some(name.clone()));
        }
        let Some(list) = self.list(id).await? else {
            return Ok(None);
        };
        let name: std::sync::Arc<str> = list.name.into();
        if let Ok(mut names) = self.names.lock() {
            if names.len() >= NAMES_HELD {
                names.clear();
            }
            names.insert(id, (name.clone(), now));
        }
        Ok(Some(name))
    }

    /// Every list, by id.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn lists(&self) -> redis::RedisResult<Vec<List>> {
        let raw: HashMap<String, String> = self.conn.clone().hgetall(self.keys.lists()).await?;
        let mut lists: Vec<List> = raw
            .values()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect();
        lists.sort_by_key(|l| l.id);
        Ok(lists)
    }

    /// Deletes list `id` and every subscription to it; whether it existed.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn delete_list(&self, id: ListId) -> redis::RedisResult<bool> {
        let removed: u64 = self.conn.clone().hdel(self.keys.lists(), id.get()).await?;
        // A task of its own: a list of millions takes seconds to take out of its members'
        // records, and that should go on when the request that asked gives up waiting.
        let store = self.clone();
        tokio::spawn(
            async move { try_join_all(all_shards().map(|s| store.forget_list(s, id))).await },
        )
        .await
        .map_err(task_failed)??;
        Ok(removed > 0)
    }

    /// Takes deleted list `list` out of its members' records in `shard` (records carry their
    /// subscriptions), a scan step at a time, then drops its members and counts there.
    async fn forget_list(&self, shard: u16, list: ListId) -> redis::RedisResult<()> {
        let keys = self.keys.shard(shard);
        let members = keys.members(list.get());
        let mut conn = self.conn.clone();
        let mut cursor = 0u64;
        loop {
            let (next, found) = hscan(&mut conn, &members, cursor, 500).await?;
            if !found.is_empty() {
                let mut invocation = FORGET_LIST.prepare_invoke();
                invocation
                    .key(&members)
                    .arg(list.get())
                    .arg(keys.records_prefix())
                    .arg(BUCKET_SPAN);
                for (id, _) in &found {
                    invocation.arg(id);
                }
                invocation.invoke_async::<u64>(&mut conn).await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        redis::cmd("UNLINK")
            .arg(&members)
            .arg(keys.counts(list.get()))
            .query_async::<()>(&mut conn)
            .await
    }

    /// List `id`'s subscriptions counted per state.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn counts(&self, id: ListId) -> redis::RedisResult<Counts> {
        let per_shard = try_join_all(all_shards().map(|s| {
            let key = self.keys.shard(s).counts(id.get());
            let mut conn = self.conn.clone();
            async move { conn.hgetall::<_, HashMap<String, i64>>(key).await }
        }))
        .await?;
        let mut counts = Counts::default();
        for shard in per_shard {
            for (status, n) in shard {
                let n = u64::try_from(n).unwrap_or(0);
                match SubscriptionStatus::from_code(&status) {
                    Some(SubscriptionStatus::Unconfirmed) => counts.unconfirmed += n,
                    Some(SubscriptionStatus::Confirmed) => counts.confirmed += n,
                    Some(SubscriptionStatus::Unsubscribed) => counts.unsubscribed += n,
                    None => {}
                }
            }
        }
        Ok(counts)
    }

    /// Creates or updates `rows` and subscribes them as `how` says. Rows of one address in one
    /// call become one subscriber.
    ///
    /// # Errors
    /// When Redis fails (some shards' rows may then be stored: running the same rows again is
    /// safe).
    pub async fn upsert<R: std::borrow::Borrow<Row>>(
        &self,
        rows: &[R],
        how: &Upsert,
    ) -> redis::RedisResult<Vec<Outcome>> {
        let mut by_shard: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            by_shard
                .entry(shard_of(&row.borrow().key))
                .or_default()
                .push(i);
        }
        let lists: Vec<String> = how.lists.iter().map(ToString::to_string).collect();
        let lists = lists.join(",");
        let now = Utc::now().timestamp().to_string();
        // A new subscriber's memberships: every list, in the wanted status.
        let new_memberships: Vec<String> = how
            .lists
            .iter()
            .map(|l| format!("{l}{}", how.status.code()))
            .collect();
        let new_memberships = new_memberships.join(",");
        let answers = try_join_all(by_shard.into_iter().map(|(shard, indexes)| {
            let keys = self.keys.shard(shard);
            let mut invocation = UPSERT.prepare_invoke();
            invocation.key(keys.emails()).key(keys.seq());
            for list in &how.lists {
                invocation
                    .key(keys.members(list.get()))
                    .key(keys.counts(list.get()));
            }
            invocation
                .arg(shard)
                .arg(SUBSCRIBER_SHARDS)
                .arg(&lists)
                .arg(how.status.code())
                .arg(&now)
                .arg(how.source.as_str())
                .arg(if how.update { "1" } else { "0" })
                .arg(keys.history_prefix())
                .arg(HISTORY_KEPT)
                .arg(keys.records_prefix())
                .arg(BUCKET_SPAN);
            for &i in &indexes {
                let row = rows[i].borrow();
                let (record, mask) = row_args(row, &now, &new_memberships);
                invocation.arg(&row.key).arg(record).arg(mask);
            }
            let mut conn = self.conn.clone();
            async move {
                let answer: String = invocation.invoke_async(&mut conn).await?;
                Ok::<_, redis::RedisError>((indexes, answer))
            }
        }))
        .await?;
        let outcomes = in_row_order(rows.len(), answers)?;
        if how.source != Source::Import {
            let notices: Vec<_> = (rows.iter().zip(&outcomes))
                .flat_map(|(row, outcome)| {
                    (how.lists.iter().zip(&outcome.subscriptions)).filter_map(|(list, change)| {
                        let (before, after) = notices::of_upsert(*change, how.status)?;
                        let email = &row.borrow().email;
                        notices::changed(outcome.id, email, *list, before, after, how.source)
                    })
                })
                .collect();
            self.notices.tell(&notices).await;
        }
        Ok(outcomes)
    }

    /// The id of the subscriber with case key `key`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn find(&self, key: &str) -> redis::RedisResult<Option<SubscriberId>> {
        let raw: Option<u64> = self
            .conn
            .clone()
            .hget(self.keys.shard(shard_of(key)).emails(), key)
            .await?;
        Ok(raw.and_then(|n| SubscriberId::try_from(n).ok()))
    }

    /// Subscriber `id`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn subscriber(&self, id: SubscriberId) -> redis::RedisResult<Option<Subscriber>> {
        let raw: Option<String> = self
            .conn
            .clone()
            .hget(self.shard(id).records_of(id.get()), id.get())
            .await?;
        Ok(raw.and_then(|r| decode_record(id, &r)))
    }

    /// Subscriber `id`'s subscriptions among `lists`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn subscriptions(
        &self,
        id: SubscriberId,
        lists: &[ListId],
    ) -> redis::RedisResult<Vec<Subscription>> {
        if lists.is_empty() {
            return Ok(Vec::new());
        }
        let shard = self.shard(id);
        let mut pipe = redis::pipe();
        for list in lists {
            pipe.hget(shard.members(list.get()), id.get());
        }
        let raw: Vec<Option<String>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(lists
            .iter()
            .zip(raw)
            .filter_map(|(list, r)| r.and_then(|r| decode_membership(*list, &r)))
            .collect())
    }

    /// Subscriber `id`'s superseded subscription states, newest first.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn history(&self, id: SubscriberId) -> redis::RedisResult<Vec<Subscription>> {
        let raw: Vec<String> = self
            .conn
            .clone()
            .lrange(self.shard(id).history(id.get()), 0, -1)
            .await?;
        Ok(raw
            .iter()
            .filter_map(|r| {
                let (list, state) = r.split_once('|')?;
                decode_membership(ListId::parse(list)?, state)
            })
            .collect())
    }

    /// Sets subscriber `id`'s subscription to `list` to `status`; the state before (`None`
    /// when there was no subscription), or `Err(None)`-like [`Missing`] when no such subscriber
    /// exists. Idempotent.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn set_subscription(
        &self,
        id: SubscriberId,
        list: ListId,
        status: SubscriptionStatus,
        source: Source,
    ) -> redis::RedisResult<Result<Option<SubscriptionStatus>, Missing>> {
        let set = self.set(id, list, status, source).await?;
        Ok(set.map(|(before, _)| before))
    }

    /// Like [`Self::set_subscription`], but answers the subscriber as well, read in the same
    /// script: a one-click unsubscribe needs the address and locale for its answer.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn set_subscription_of(
        &self,
        id: SubscriberId,
        list: ListId,
        status: SubscriptionStatus,
        source: Source,
    ) -> redis::RedisResult<Result<Subscriber, Missing>> {
        let set = self.set(id, list, status, source).await?;
        Ok(set.map(|(_, subscriber)| subscriber))
    }

    /// Sets the subscription and tells the services of a change: the state before, and the
    /// subscriber after.
    async fn set(
        &self,
        id: SubscriberId,
        list: ListId,
        status: SubscriptionStatus,
        source: Source,
    ) -> redis::RedisResult<Result<(Option<SubscriptionStatus>, Subscriber), Missing>> {
        let (code, record): (String, String) = self
            .set_invocation(id, list, status, source)
            .arg("r")
            .invoke_async(&mut self.conn.clone())
            .await?;
        if code == "missing" {
            return Ok(Err(Missing));
        }
        let subscriber = decode_record(id, &record).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::Parse,
                "a subscriber record that does not decode",
            ))
        })?;
        let before = SubscriptionStatus::from_code(&code);
        let notice = notices::changed(id, &subscriber.email, list, before, status, source);
        self.notices.tell(notice.as_slice()).await;
        Ok(Ok((before, subscriber)))
    }

    fn set_invocation(
        &self,
        id: SubscriberId,
        list: ListId,
        status: SubscriptionStatus,
        source: Source,
    ) -> redis::ScriptInvocation<'static> {
        let shard = self.shard(id);
        let mut invocation = SET.prepare_invoke();
        invocation
            .key(shard.records_of(id.get()))
            .key(shard.members(list.get()))
            .key(shard.counts(list.get()))
            .key(shard.history(id.get()))
            .arg(id.get())
            .arg(status.code())
            .arg(Utc::now().timestamp())
            .arg(source.as_str())
            .arg(list.get())
            .arg(HISTORY_KEPT);
        invocation
    }

    /// Deletes subscriber `id` (case key `key`) and its subscriptions to `lists`; whether it
    /// existed.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn delete_subscriber(
        &self,
        id: SubscriberId,
        key: &str,
        lists: &[ListId],
    ) -> redis::RedisResult<bool> {
        let shard = self.shard(id);
        let mut invocation = DELETE.prepare_invoke();
        invocation
            .key(shard.records_of(id.get()))
            .key(shard.emails())
            .key(shard.history(id.get()));
        for list in lists {
            invocation
                .key(shard.members(list.get()))
                .key(shard.counts(list.get()));
        }
        let existed: u64 = invocation
            .arg(id.get())
            .arg(key)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(existed > 0)
    }
}

/// The subscriber does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing;

fn parse_outcome(line: &str) -> Option<Outcome> {
    let mut parts = line.split(':');
    let id = SubscriberId::try_from(parts.next()?.parse::<u64>().ok()?).ok()?;
    let record = match parts.next()? {
        "n" => RecordChange::Created,
        "u" => RecordChange::Updated,
        _ => RecordChange::Unchanged,
    };
    let subscriptions = parts
        .next()?
        .chars()
        .map(|c| match c {
            'n' => SubscriptionChange::Added,
            'c' => SubscriptionChange::Confirmed,
            'x' => SubscriptionChange::RefusedUnsubscribed,
            _ => SubscriptionChange::Unchanged,
        })
        .collect();
    Some(Outcome {
        id,
        record,
        subscriptions,
    })
}

/// What the upsert script takes for one row: its record as stored if the subscriber is new
/// (the script reads only its first four fields otherwise), and which of its fields the row
/// gives (`1`/`0` for name, locale and attributes, then the status code or `-`).
fn row_args(row: &Row, now: &str, memberships: &str) -> (String, String) {
    let mask: String = [
        if row.name.is_some() { '1' } else { '0' },
        if row.locale.is_some() { '1' } else { '0' },
        if row.attributes.is_some() { '1' } else { '0' },
        row.status.map_or('-', SubscriberStatus::code),
    ]
    .iter()
    .collect();
    let record = encode_new_record(&NewRecord {
        email: &row.email,
        name: row.name.as_deref(),
        locale: row.locale.as_deref(),
        attributes: row.attributes.as_deref(),
        status: row.status.unwrap_or(SubscriberStatus::Enabled),
        now,
        memberships,
    });
    (record, mask)
}

/// The outcomes of `rows` rows from each shard's answer (the rows it had, and one word each).
fn in_row_order(
    rows: usize,
    answers: Vec<(Vec<usize>, String)>,
) -> redis::RedisResult<Vec<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; rows];
    for (indexes, answer) in answers {
        for (i, line) in indexes.into_iter().zip(answer.split(' ')) {
            outcomes[i] = parse_outcome(line);
        }
    }
    (outcomes.into_iter())
        .map(|o| {
            o.ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::Parse,
                    "the upsert script answered in an unknown shape",
                ))
            })
        })
        .collect()
}
