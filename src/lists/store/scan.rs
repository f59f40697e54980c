//! Reading many subscribers: a list's members page by page, and whole scans of a list or of
//! every record (segments, campaign audiences, exports), bucket by bucket across the shards.

use futures::future::try_join_all;
use mailroom_jobs::{RECORDS_PER_BUCKET, RedisConnection, SUBSCRIBER_SHARDS, bucket_of};

use super::{ListStore, MemberPage, all_shards, hscan, task_failed};
use crate::{
    domain::{ListId, SubscriberId},
    lists::model::{SubscriptionStatus, decode_membership},
};

impl ListStore {
    /// Up to `limit` of list `list`'s members (only those in `status` when given), from
    /// `cursor` (a previous page's `next`).
    ///
    /// # Errors
    /// When Redis fails; a malformed cursor is [`BadCursor`].
    pub async fn members(
        &self,
        list: ListId,
        status: Option<SubscriptionStatus>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<MemberPage, PageError> {
        let mut position = match cursor {
            Some(c) => Cursor::parse(c).ok_or(PageError::BadCursor)?,
            None => Cursor::default(),
        };
        let mut members = Vec::new();
        while position.shard < SUBSCRIBER_SHARDS {
            let key = self.keys.shard(position.shard).members(list.get());
            let (next, batch) =
                hscan(&mut self.conn.clone(), &key, position.scan, limit.max(10)).await?;
            let mut taken_here = 0;
            for (field, value) in batch.iter().skip(position.skip) {
                taken_here += 1;
                let (Some(id), Some(sub)) = (
                    field
                        .parse::<u64>()
                        .ok()
                        .and_then(|n| SubscriberId::try_from(n).ok()),
                    decode_membership(list, value),
                ) else {
                    continue;
                };
                if status.is_none_or(|s| s == sub.status) {
                    members.push((id, sub));
                    if members.len() == limit {
                        let skip = position.skip + taken_here;
                        let next = if skip < batch.len() {
                            Cursor { skip, ..position }
                        } else {
                            position.after(next)
                        };
                        let next = (next.shard < SUBSCRIBER_SHARDS).then(|| next.to_string());
                        return Ok(MemberPage { members, next });
                    }
                }
            }
            position = position.after(next);
        }
        Ok(MemberPage {
            members,
            next: None,
        })
    }

    /// Calls `visit` with every member of `list` (id, subscription, raw record) in batches of
    /// about `batch`, shard by shard, `parallel` shards at a time. Records stay raw so a visitor
    /// that reads a few fields ([`super::segment::RecordView`]) copies nothing.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn scan<F>(
        &self,
        list: ListId,
        batch: usize,
        parallel: usize,
        visit: F,
    ) -> redis::RedisResult<()>
    where
        F: Fn(&[RawMember]) + Sync,
    {
        use futures::StreamExt;
        let visit = &visit;
        let mut shards = futures::stream::iter(all_shards())
            .map(|s| async move { self.scan_shard(s, list, batch, visit).await })
            .buffer_unordered(parallel.max(1));
        while let Some(result) = shards.next().await {
            result?;
        }
        Ok(())
    }

    async fn scan_shard<F>(
        &self,
        shard: u16,
        list: ListId,
        batch: usize,
        visit: &F,
    ) -> redis::RedisResult<()>
    where
        F: Fn(&[RawMember]) + Sync,
    {
        let members = self.keys.shard(shard).members(list.get());
        let mut conn = self.conn.clone();
        let mut cursor = 0u64;
        loop {
            let (next, found) = hscan(&mut conn, &members, cursor, batch).await?;
            let ids: Vec<u64> = found
                .iter()
                .map(|(field, _)| field.parse().unwrap_or(0))
                .collect();
            let records = self.records(shard, &ids).await?;
            let rows: Vec<RawMember> = found
                .into_iter()
                .zip(ids)
                .zip(records)
                .filter_map(|(((_, membership), id), record)| {
                    Some(RawMember {
                        id: SubscriberId::try_from(id).ok()?,
                        membership,
                        record,
                    })
                })
                .collect();
            if !rows.is_empty() {
                visit(&rows);
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The raw records of subscribers `ids` (any shards), in order; `None` for one that is gone.
    /// One pipelined read per shard, the shards side by side.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn raw_records(
        &self,
        ids: &[SubscriberId],
    ) -> redis::RedisResult<Vec<Option<String>>> {
        let mut by_shard: std::collections::BTreeMap<u16, (Vec<usize>, Vec<u64>)> =
            Default::default();
        for (i, id) in ids.iter().enumerate() {
            let entry = by_shard.entry(id.shard()).or_default();
            entry.0.push(i);
            entry.1.push(id.get());
        }
        let answers = try_join_all(
            by_shard
                .iter()
                .map(|(&shard, (_, numbers))| self.records(shard, numbers)),
        )
        .await?;
        let mut records = vec![None; ids.len()];
        for ((indexes, _), answer) in by_shard.into_values().zip(answers) {
            for (i, record) in indexes.into_iter().zip(answer) {
                records[i] = record;
            }
        }
        Ok(records)
    }

    /// The records of subscribers `ids` of `shard`, in order: one `HMGET` per bucket, in one
    /// round trip.
    async fn records(&self, shard: u16, ids: &[u64]) -> redis::RedisResult<Vec<Option<String>>> {
        let keys = self.keys.shard(shard);
        let mut buckets: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
        for (i, &id) in ids.iter().enumerate() {
            buckets.entry(bucket_of(id)).or_default().push(i);
        }
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (&bucket, indexes) in &buckets {
            let get = pipe.cmd("HMGET").arg(keys.records(bucket));
            for &i in indexes {
                get.arg(ids[i]);
            }
        }
        let answers: Vec<Vec<Option<String>>> = pipe.query_async(&mut self.conn.clone()).await?;
        let mut records = vec![None; ids.len()];
        for (indexes, answer) in buckets.into_values().zip(answers) {
            for (i, record) in indexes.into_iter().zip(answer) {
                records[i] = record;
            }
        }
        Ok(records)
    }

    /// Calls `visit` with the raw records of every subscriber with a subscription to `list`, in
    /// any state (each record names its subscriptions: [`super::segment::RecordView`]), and
    /// perhaps with other subscribers' records too: where most of a shard's subscribers are
    /// members, reading its record buckets whole (`HVALS`) costs Redis and mailroom about half
    /// of finding the members first, so a visitor checks membership itself. `parallel` reads
    /// at a time, each a task of its own so that visits run on every core.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn scan_records<F>(
        &self,
        list: ListId,
        parallel: usize,
        visit: F,
    ) -> redis::RedisResult<()>
    where
        F: Fn(&[String]) + Send + Sync + 'static,
    {
        self.scan_buckets(list, parallel, false, move |found: Found| match found {
            Found::Records(records) => visit(&records),
            Found::Members(members) => {
                let records: Vec<String> = members
                    .into_iter()
                    .filter_map(|(_, record)| record)
                    .collect();
                visit(&records);
            }
        })
        .await
    }

    /// [`ListStore::scan_records`] with each record's subscriber id (bucket reads are `HGETALL`
    /// rather than `HVALS`): for a campaign's audience.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn scan_records_with_ids<F>(
        &self,
        list: ListId,
        parallel: usize,
        visit: F,
    ) -> redis::RedisResult<()>
    where
        F: Fn(&[(SubscriberId, String)]) + Send + Sync + 'static,
    {
        self.scan_buckets(list, parallel, true, move |found: Found| {
            let rows: Vec<(SubscriberId, String)> = match found {
                Found::Records(_) => Vec::new(),
                Found::Members(members) => members
                    .into_iter()
                    .filter_map(|(id, record)| Some((id?, record?)))
                    .collect(),
            };
            visit(&rows);
        })
        .await
    }

    /// The reads behind [`ListStore::scan_records`]: buckets whole where most of a shard is in
    /// the list, else the list's members; with ids (`HGETALL`) or without (`HVALS`).
    async fn scan_buckets<F>(
        &self,
        list: ListId,
        parallel: usize,
        with_ids: bool,
        visit: F,
    ) -> redis::RedisResult<()>
    where
        F: Fn(Found) + Send + Sync + 'static,
    {
        use futures::StreamExt;
        let reads = self.plan_reads(list).await?;
        let visit = std::sync::Arc::new(visit);
        let mut reads = futures::stream::iter(reads.into_iter().enumerate())
            .map(|(n, read)| {
                let (store, visit) = (self.clone(), visit.clone());
                tokio::spawn(async move {
                    match read {
                        Read::Bucket(shard, bucket) => {
                            let conn = store.bulk[n % store.bulk.len()].clone();
                            let key = store.keys.shard(shard).records(bucket);
                            visit(read_bucket(conn, key, with_ids).await?);
                            Ok(())
                        }
                        Read::Members(shard) => {
                            store
                                .scan_shard(shard, list, 2000, &|members: &[RawMember]| {
                                    visit(Found::Members(
                                        members
                                            .iter()
                                            .map(|m| (Some(m.id), m.record.clone()))
                                            .collect(),
                                    ));
                                })
                                .await
                        }
                    }
                })
            })
            .buffer_unordered(parallel.max(1));
        while let Some(result) = reads.next().await {
            result.map_err(task_failed)??;
        }
        Ok(())
    }

    /// How to read `list`'s records: whole buckets of a shard where the list holds at least
    /// half of its subscribers, else the list's members of it.
    async fn plan_reads(&self, list: ListId) -> redis::RedisResult<Vec<Read>> {
        let sizes = try_join_all(all_shards().map(|s| {
            let keys = self.keys.shard(s);
            let mut conn = self.conn.clone();
            async move {
                let (members, numbers): (u64, Option<u64>) = redis::pipe()
                    .hlen(keys.members(list.get()))
                    .get(keys.seq())
                    .query_async(&mut conn)
                    .await?;
                Ok::<_, redis::RedisError>((s, members, numbers.unwrap_or(0)))
            }
        }))
        .await?;
        let mut reads = Vec::new();
        for (shard, members, numbers) in sizes {
            if members == 0 {
                continue;
            }
            if members * 2 >= numbers {
                // Subscriber numbers start at 1; bucket b holds numbers b×128 … b×128+127.
                let last = numbers / RECORDS_PER_BUCKET;
                reads.extend((0..=last).map(|b| Read::Bucket(shard, b)));
            } else {
                reads.push(Read::Members(shard));
            }
        }
        Ok(reads)
    }
}

/// One read of a scan: a bucket of a shard's records, or the list's members in a shard.
#[derive(Debug, Clone, Copy)]
enum Read {
    Bucket(u16, u64),
    Members(u16),
}

/// The records of the bucket at `key`, with their subscriber ids when `with_ids`.
async fn read_bucket(
    mut conn: RedisConnection,
    key: String,
    with_ids: bool,
) -> redis::RedisResult<Found> {
    if with_ids {
        let rows: Vec<(u64, String)> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        Ok(Found::Members(
            (rows.into_iter())
                .map(|(id, r)| (SubscriberId::try_from(id).ok(), Some(r)))
                .collect(),
        ))
    } else {
        let records: Vec<String> = redis::cmd("HVALS").arg(key).query_async(&mut conn).await?;
        Ok(Found::Records(records))
    }
}

/// What one read of [`ListStore::scan_buckets`] found.
enum Found {
    /// Records without their ids.
    Records(Vec<String>),
    /// Subscribers with their records (`None` where one vanished meanwhile).
    Members(Vec<(Option<SubscriberId>, Option<String>)>),
}

/// One member of a list as stored.
#[derive(Debug, Clone)]
pub struct RawMember {
    pub id: SubscriberId,
    /// `status|unix time|source`.
    pub membership: String,
    /// The record ([`super::model`]); `None` if it vanished meanwhile.
    pub record: Option<String>,
}

impl RawMember {
    /// The subscription's state.
    pub fn status(&self) -> Option<SubscriptionStatus> {
        SubscriptionStatus::from_code(self.membership.get(..1)?)
    }
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("the cursor is not one this API handed out")]
    BadCursor,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// A position in a list: shard, its HSCAN cursor, and how many of that scan step's members a
/// page already took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cursor {
    shard: u16,
    scan: u64,
    skip: usize,
}

impl Cursor {
    /// A cursor's text; a shard past the last reads as the end of the list.
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let shard: u32 = parts.next()?.parse().ok()?;
        let cursor = Self {
            shard: u16::try_from(shard)
                .unwrap_or(SUBSCRIBER_SHARDS)
                .min(SUBSCRIBER_SHARDS),
            scan: parts.next()?.parse().ok()?,
            skip: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(cursor)
    }

    /// The position after a scan step that answered `next`.
    fn after(self, next: u64) -> Self {
        if next == 0 {
            Self {
                shard: self.shard + 1,
                scan: 0,
                skip: 0,
            }
        } else {
            Self {
                shard: self.shard,
                scan: next,
                skip: 0,
            }
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.shard, self.scan, self.skip)
    }
}
