//! Daily counters per category and per stored API key, written by the event script
//! (`P:stats:{YYYY-MM-DD}`, fields `{counter}|` for all mail, `{counter}|{category}`, and
//! `{counter}#{key id}|…` the same for one key's mail), read here with their rates.

use chrono::NaiveDate;
use mailroom_jobs::RedisConnection;
use serde::Serialize;
use utoipa::ToSchema;

/// The counters, in the order they are read.
pub const COUNTERS: [&str; 11] = [
    "processed",
    "delivered",
    "deferred",
    "bounced",
    "dropped",
    "opened",
    "unique_opens",
    "clicked",
    "unique_clicks",
    "spam_reports",
    "unsubscribes",
];

/// One day's (or a period's) counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counters {
    pub processed: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub dropped: u64,
    pub opened: u64,
    pub unique_opens: u64,
    pub clicked: u64,
    pub unique_clicks: u64,
    pub spam_reports: u64,
    pub unsubscribes: u64,
}

impl Counters {
    fn from_values(values: &[u64; 11]) -> Self {
        let [
            processed,
            delivered,
            deferred,
            bounced,
            dropped,
            opened,
            unique_opens,
            clicked,
            unique_clicks,
            spam_reports,
            unsubscribes,
        ] = *values;
        Self {
            processed,
            delivered,
            deferred,
            bounced,
            dropped,
            opened,
            unique_opens,
            clicked,
            unique_clicks,
            spam_reports,
            unsubscribes,
        }
    }

    fn add(&mut self, other: &Self) {
        self.processed += other.processed;
        self.delivered += other.delivered;
        self.deferred += other.deferred;
        self.bounced += other.bounced;
        self.dropped += other.dropped;
        self.opened += other.opened;
        self.unique_opens += other.unique_opens;
        self.clicked += other.clicked;
        self.unique_clicks += other.unique_clicks;
        self.spam_reports += other.spam_reports;
        self.unsubscribes += other.unsubscribes;
    }
}

/// Rates over a period, from 0 to 1 (`null` when the denominator is 0).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Rates {
    /// delivered / processed
    pub delivery: Option<f64>,
    /// unique opens / delivered
    pub open: Option<f64>,
    /// unique clicks / delivered
    pub click: Option<f64>,
    /// bounced / processed
    pub bounce: Option<f64>,
    /// spam reports / delivered
    pub complaint: Option<f64>,
}

impl Rates {
    #[allow(clippy::cast_precision_loss)]
    fn of(c: &Counters) -> Self {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        Self {
            delivery: ratio(c.delivered, c.processed),
            open: ratio(c.unique_opens, c.delivered),
            click: ratio(c.unique_clicks, c.delivered),
            bounce: ratio(c.bounced, c.processed),
            complaint: ratio(c.spam_reports, c.delivered),
        }
    }
}

/// One day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Day {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    #[serde(flatten)]
    pub counters: Counters,
}

/// Which of the day's counters to read: all mail, or one category's, or one stored API key's
/// (by its public id), or one category of one key's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter<'a> {
    pub category: Option<&'a str>,
    pub key: Option<&'a str>,
}

impl Filter<'_> {
    fn field(self, counter: &str) -> String {
        let category = self.category.unwrap_or_default();
        match self.key {
            Some(key) => format!("{counter}#{key}|{category}"),
            None => format!("{counter}|{category}"),
        }
    }
}

/// The answer of `GET /v1/stats`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stats {
    /// The category, or `null`.
    pub category: Option<String>,
    /// The stored API key (its public id), or `null`.
    pub key: Option<String>,
    pub from: String,
    pub to: String,
    pub days: Vec<Day>,
    pub totals: Counters,
    pub rates: Rates,
}

/// The longest period one request may cover.
pub const MAX_DAYS: i64 = 366;

/// Reads the counters.
#[derive(Debug, Clone)]
pub struct StatsStore {
    conn: RedisConnection,
    keys: mailroom_jobs::Keys,
}

impl StatsStore {
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            keys: mailroom_jobs::Keys::new(prefix),
        }
    }

    /// The counters of each day from `from` to `to` (inclusive; the caller checks the span).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn read(
        &self,
        filter: Filter<'_>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> redis::RedisResult<Stats> {
        let fields: Vec<String> = COUNTERS.iter().map(|c| filter.field(c)).collect();
        let dates: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
        let keys: Vec<String> = dates
            .iter()
            .map(|d| self.keys.stats(&d.format("%Y-%m-%d").to_string()))
            .collect();
        // One pipeline per slot (each day is a slot of its own on a cluster), side by side.
        let groups = self
            .conn
            .slot_groups(keys.iter().enumerate().collect(), |(_, key)| key);
        let reads = groups.into_iter().map(|group| {
            let mut pipe = redis::pipe();
            for (_, key) in &group {
                pipe.cmd("HMGET").arg(key).arg(&fields);
            }
            let mut conn = self.conn.clone();
            async move {
                let rows: Vec<Vec<Option<u64>>> = pipe.query_async(&mut conn).await?;
                Ok::<_, redis::RedisError>(group.into_iter().map(|(i, _)| i).zip(rows))
            }
        });
        let mut rows: Vec<Vec<Option<u64>>> = vec![Vec::new(); dates.len()];
        for group in futures::future::try_join_all(reads).await? {
            for (i, row) in group {
                rows[i] = row;
            }
        }
        let mut totals = Counters::default();
        let mut days = Vec::with_capacity(dates.len());
        for (date, row) in dates.iter().zip(rows) {
            let mut values = [0u64; 11];
            for (slot, value) in values.iter_mut().zip(row) {
                *slot = value.unwrap_or(0);
            }
            let counters = Counters::from_values(&values);
            totals.add(&counters);
            days.push(Day {
                date: date.format("%Y-%m-%d").to_string(),
                counters,
            });
        }
        Ok(Stats {
            category: filter.category.map(str::to_owned),
            key: filter.key.map(str::to_owned),
            from: from.format("%Y-%m-%d").to_string(),
            to: to.format("%Y-%m-%d").to_string(),
            days,
            rates: Rates::of(&totals),
            totals,
        })
    }
}
