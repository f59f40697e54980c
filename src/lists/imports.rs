//! Import records: an import's state and counts (`P:{import}:ID`, a hash) and its reported
//! rows (`P:{import}:ID:errors`, a list of `line\treason`, the first [`MAX_REPORTED`] kept),
//! both kept [`RETENTION_SECS`] after the import starts.

use chrono::{DateTime, TimeZone, Utc};
use mailroom_jobs::{Keys, RedisConnection};
use redis::AsyncCommands;
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

use super::SubscriptionStatus;
use crate::{
    domain::{EventType, ListId, Notice},
    store::notices::Notices,
};

static RECORD_BATCH: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("lua/record_batch.lua")));

/// How long an import's record is kept.
pub const RETENTION_SECS: i64 = 30 * 24 * 3600;
/// How many imports the recent index keeps.
pub const RECENT_KEPT: usize = 100;
/// How many reported rows an import keeps (all are counted).
pub const MAX_REPORTED: usize = 100_000;

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportState {
    Running,
    Done,
    Failed,
}

/// A row that went in not as given, or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RowReport {
    /// The line of the file where the row starts (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// Counts of an import so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Totals {
    /// Data rows read.
    pub rows: u64,
    /// Rows that created a subscriber or a subscription.
    pub imported: u64,
    /// Rows that changed an existing subscriber (`update`) or confirmed a subscription.
    pub updated: u64,
    /// Rows that changed nothing: already there, repeated in the file, unsubscribed from the
    /// list, or suppressed (the last two are reported).
    pub skipped: u64,
    /// Rows refused: not parseable, a bad address, locale or attributes (all reported).
    pub invalid: u64,
}

impl Totals {
    pub(crate) fn add(&mut self, other: &Self) {
        self.rows += other.rows;
        self.imported += other.imported;
        self.updated += other.updated;
        self.skipped += other.skipped;
        self.invalid += other.invalid;
    }
}

/// An import as `GET /v1/imports/{id}` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportStatus {
    pub id: Uuid,
    #[schema(value_type = u64)]
    pub list: ListId,
    /// What new subscriptions start as.
    pub status: SubscriptionStatus,
    pub state: ImportState,
    #[serde(flatten)]
    pub totals: Totals,
    /// How many rows are reported (`errors` is one page of them).
    pub error_count: u64,
    pub errors: Vec<RowReport>,
    /// Why the import stopped, when it failed.
    pub failure: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Import records in Redis.
#[derive(Debug, Clone)]
pub struct ImportStore {
    conn: RedisConnection,
    keys: Keys,
    notices: Notices,
}

impl ImportStore {
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            notices: Notices::new(conn.clone(), prefix),
            conn,
            keys: Keys::new(prefix),
        }
    }

    /// Records a new running import.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn start(
        &self,
        id: Uuid,
        list: ListId,
        status: SubscriptionStatus,
    ) -> redis::RedisResult<()> {
        let key = self.keys.import(&id.to_string());
        let recent = self.keys.recent_imports();
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("state", "running".to_owned()),
                    ("list", list.to_string()),
                    ("status", status.code().to_owned()),
                    ("started_at", Utc::now().timestamp_millis().to_string()),
                ],
            )
            .ignore()
            .expire(&key, RETENTION_SECS)
            .ignore()
            // The console lists the newest imports; older ones stay readable by id.
            .zadd(&recent, id.to_string(), Utc::now().timestamp_millis())
            .ignore()
            .zremrangebyrank(&recent, 0, -(RECENT_KEPT as isize) - 1)
            .ignore()
            .expire(&recent, RETENTION_SECS)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    /// The ids of the newest `limit` imports, newest first (at most [`RECENT_KEPT`]).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn recent(&self, limit: usize) -> redis::RedisResult<Vec<Uuid>> {
        let stop = isize::try_from(limit.min(RECENT_KEPT)).unwrap_or(1) - 1;
        let ids: Vec<String> = self
            .conn
            .clone()
            .zrevrange(self.keys.recent_imports(), 0, stop)
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect())
    }

    /// Adds batch number `batch`'s counts and reported rows (batches from 1, in order). Safe to
    /// call again after a lost answer: a batch is counted once.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn record(
        &self,
        id: Uuid,
        batch: u64,
        totals: &Totals,
        reports: &[RowReport],
    ) -> redis::RedisResult<()> {
        let mut invocation = RECORD_BATCH.prepare_invoke();
        invocation
            .key(self.keys.import(&id.to_string()))
            .key(self.keys.import_errors(&id.to_string()))
            .arg(batch)
            .arg(MAX_REPORTED)
            .arg(RETENTION_SECS)
            .arg(totals.rows)
            .arg(totals.imported)
            .arg(totals.updated)
            .arg(totals.skipped)
            .arg(totals.invalid);
        for r in reports {
            invocation.arg(format!("{}\t{}", r.line, r.reason));
        }
        invocation
            .invoke_async::<u64>(&mut self.conn.clone())
            .await
            .map(drop)
    }

    /// Marks the import finished: done, or failed with `failure`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn finish(&self, id: Uuid, failure: Option<&str>) -> redis::RedisResult<()> {
        let key = self.keys.import(&id.to_string());
        let mut fields = vec![
            (
                "state",
                if failure.is_some() { "failed" } else { "done" }.to_owned(),
            ),
            ("finished_at", Utc::now().timestamp_millis().to_string()),
        ];
        if let Some(failure) = failure {
            fields.push(("failure", failure.to_owned()));
        }
        self.conn
            .clone()
            .hset_multiple::<_, _, _, ()>(&key, &fields)
            .await?;
        if let Some(import) = self.get(id, 0, 1).await? {
            self.notices.tell(&[finished(&import)]).await;
        }
        Ok(())
    }

    /// Import `id` with up to `limit` reported rows from the `from`-th.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn get(
        &self,
        id: Uuid,
        from: usize,
        limit: usize,
    ) -> redis::RedisResult<Option<ImportStatus>> {
        let key = self.keys.import(&id.to_string());
        let errors = self.keys.import_errors(&id.to_string());
        let (fields, lines): (HashMap<String, String>, Vec<String>) = redis::pipe()
            .hgetall(&key)
            .lrange(&errors, from as isize, (from + limit) as isize - 1)
            .query_async(&mut self.conn.clone())
            .await?;
        let number = |name: &str| {
            fields
                .get(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let time = |name: &str| {
            fields
                .get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        };
        let (Some(list), Some(started_at)) = (
            fields.get("list").and_then(|l| ListId::parse(l)),
            time("started_at"),
        ) else {
            return Ok(None);
        };
        let state = match fields.get("state").map(String::as_str) {
            Some("done") => ImportState::Done,
            Some("failed") => ImportState::Failed,
            _ => ImportState::Running,
        };
        Ok(Some(ImportStatus {
            id,
            list,
            status: fields
                .get("status")
                .and_then(|s| SubscriptionStatus::from_code(s))
                .unwrap_or(SubscriptionStatus::Unconfirmed),
            state,
            totals: Totals {
                rows: number("rows"),
                imported: number("imported"),
                updated: number("updated"),
                skipped: number("skipped"),
                invalid: number("invalid"),
            },
            error_count: number("error_count"),
            errors: lines.iter().filter_map(|l| parse_report(l)).collect(),
            failure: fields.get("failure").cloned(),
            started_at,
            finished_at: time("finished_at"),
        }))
    }

    /// Every kept reported row of import `id`, in order.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn all_reports(&self, id: Uuid) -> redis::RedisResult<Vec<RowReport>> {
        let lines: Vec<String> = self
            .conn
            .clone()
            .lrange(self.keys.import_errors(&id.to_string()), 0, -1)
            .await?;
        Ok(lines.iter().filter_map(|l| parse_report(l)).collect())
    }
}

/// The `import.finished` event: the import's counts and how it ended, without its rows.
fn finished(import: &ImportStatus) -> Notice {
    let data = serde_json::json!({
        "import_id": import.id,
        "list_id": import.list.get(),
        "state": import.state,
        "rows": import.totals.rows,
        "imported": import.totals.imported,
        "updated": import.totals.updated,
        "skipped": import.totals.skipped,
        "invalid": import.totals.invalid,
        "error_count": import.error_count,
        "failure": import.failure,
    });
    let at = import.finished_at.unwrap_or_else(Utc::now);
    Notice::new(
        EventType::ImportFinished,
        &import.id.to_string(),
        at,
        None,
        data,
    )
}

fn parse_report(line: &str) -> Option<RowReport> {
    let (n, reason) = line.split_once('\t')?;
    Some(RowReport {
        line: n.parse().ok()?,
        reason: reason.to_owned(),
    })
}
