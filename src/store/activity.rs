//! Hand-overs per minute, for the console's "sends in the last hour" chart and its provider
//! errors: workers count in memory and write the counts every few seconds
//! (`metrics::spawn_upkeep`), one `HINCRBY` per (minute, provider, outcome) seen, so a
//! campaign sending a hundred thousand messages a second costs Redis a handful of writes.
//!
//! Counts still in memory when a worker is killed are lost: the chart is a picture of the
//! traffic, not an account (the daily stats and the queues' counters are those).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use mailroom_jobs::{Keys, RedisConnection};

/// How long a minute's counts are kept: the chart shows one hour, the hash per hour lives two.
const KEEP_SECS: i64 = 2 * 3600;

/// What became of a hand-over, as the console counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The provider took the message.
    Sent,
    /// A transient failure: it will be tried again.
    Deferred,
    /// A permanent refusal or a bounce.
    Refused,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Deferred => "deferred",
            Outcome::Refused => "refused",
        }
    }

    fn parse(label: &str) -> Option<Self> {
        match label {
            "sent" => Some(Outcome::Sent),
            "deferred" => Some(Outcome::Deferred),
            "refused" => Some(Outcome::Refused),
            _ => None,
        }
    }
}

type Tally = HashMap<(u64, &'static str, Outcome), u64>;

/// The counts of one process, and where they go.
#[derive(Debug, Clone)]
pub struct Activity {
    conn: RedisConnection,
    keys: Keys,
    pending: Arc<Mutex<Tally>>,
}

/// One minute of the chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Minutes since the epoch.
    pub minute: u64,
    /// Messages handed over.
    pub sent: u64,
    /// Transient failures.
    pub deferred: u64,
    /// Refusals and bounces.
    pub refused: u64,
}

fn now_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

impl Activity {
    /// Counts under `prefix`.
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
            pending: Arc::default(),
        }
    }

    /// `messages` hand-overs to `provider` ended as `outcome`, now.
    pub fn record(&self, provider: &'static str, outcome: Outcome, messages: u64) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending
                .entry((now_minute(), provider, outcome))
                .or_default() += messages;
        }
    }

    /// Writes the counts gathered since the last flush. Counts that could not be written are
    /// kept for the next try.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn flush(&self) -> redis::RedisResult<()> {
        let tally = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return Ok(()),
        };
        if tally.is_empty() {
            return Ok(());
        }
        // One hash per hour; each is its own slot on a cluster, so one pipeline per hour.
        let mut by_hour: HashMap<u64, Vec<(String, u64)>> = HashMap::new();
        for ((minute, provider, outcome), count) in &tally {
            by_hour
                .entry(minute / 60)
                .or_default()
                .push((format!("{minute}|{provider}|{}", outcome.label()), *count));
        }
        for (hour, fields) in by_hour {
            let key = self.keys.activity(hour);
            let mut pipe = redis::pipe();
            for (field, count) in &fields {
                pipe.hincr(&key, field, *count).ignore();
            }
            pipe.expire(&key, KEEP_SECS).ignore();
            if let Err(error) = pipe.query_async::<()>(&mut self.conn.clone()).await {
                // Put everything back: a retry writes it once (HINCRBY of a hash that failed as a
                // whole changed nothing; a partly applied pipeline is not possible on one slot).
                if let Ok(mut pending) = self.pending.lock() {
                    for (key, count) in tally {
                        *pending.entry(key).or_default() += count;
                    }
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// The last `minutes` minutes, oldest first, every provider together (minutes without
    /// traffic included, as zeros).
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn recent(&self, minutes: u64) -> redis::RedisResult<Vec<Minute>> {
        let now = now_minute();
        let first = now.saturating_sub(minutes.saturating_sub(1));
        let mut chart: Vec<Minute> = (first..=now)
            .map(|minute| Minute {
                minute,
                ..Minute::default()
            })
            .collect();
        for (minute, _provider, outcome, count) in self.fields(first, now).await? {
            let Some(slot) = minute
                .checked_sub(first)
                .and_then(|i| chart.get_mut(usize::try_from(i).ok()?))
            else {
                continue;
            };
            match outcome {
                Outcome::Sent => slot.sent += count,
                Outcome::Deferred => slot.deferred += count,
                Outcome::Refused => slot.refused += count,
            }
        }
        Ok(chart)
    }

    /// Each provider's hand-overs over the last `minutes` minutes: sent, deferred, refused.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn by_provider(
        &self,
        minutes: u64,
    ) -> redis::RedisResult<std::collections::BTreeMap<String, [u64; 3]>> {
        let now = now_minute();
        let first = now.saturating_sub(minutes.saturating_sub(1));
        let mut totals = std::collections::BTreeMap::<String, [u64; 3]>::new();
        for (minute, provider, outcome, count) in self.fields(first, now).await? {
            if minute < first {
                continue;
            }
            let total = totals.entry(provider).or_default();
            total[match outcome {
                Outcome::Sent => 0,
                Outcome::Deferred => 1,
                Outcome::Refused => 2,
            }] += count;
        }
        Ok(totals)
    }

    /// The counts recorded for the minutes `first` to `last`'s hours, as (minute, provider,
    /// outcome, count); fields that do not parse are left out.
    async fn fields(
        &self,
        first: u64,
        last: u64,
    ) -> redis::RedisResult<Vec<(u64, String, Outcome, u64)>> {
        let mut conn = self.conn.clone();
        let mut found = Vec::new();
        for hour in first / 60..=last / 60 {
            let fields: HashMap<String, u64> = redis::cmd("HGETALL")
                .arg(self.keys.activity(hour))
                .query_async(&mut conn)
                .await?;
            for (field, count) in fields {
                let mut parts = field.split('|');
                let (Some(minute), Some(provider), Some(outcome)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                if let (Ok(minute), Some(outcome)) =
                    (minute.parse::<u64>(), Outcome::parse(outcome))
                {
                    found.push((minute, provider.to_owned(), outcome, count));
                }
            }
        }
        Ok(found)
    }
}
