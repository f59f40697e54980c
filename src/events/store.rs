//! What a batch of events does to Redis, in one script call per chunk
//! (`src/events/lua/apply.lua`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:evt:seen:{sg_event_id}`, `P:evt:seen:k:{mailroom_id}\|{event}\|{timestamp}\|{email}` | string | dedupe marks (3 days: SendGrid retries for 24 h) |
//! | `P:timeline:{mailroom_id}` | list | the message's events, oldest first, as JSON |
//! | `P:delivery:{mailroom_id}` | hash | recipient → `rank:status`; field `""` the message's |
//! | `P:stats:{YYYY-MM-DD}` | hash | `{counter}\|{category}` → count (`{counter}\|` for all) |
//! | `P:evt:uniq:{open\|click}:{message}:{email}` | string | first open/click marks |
//! | `P:suppressions` + `P:suppressions:index` | hash + zset | see [`crate::store::Suppressions`] |
//! | `P:sgmsg:{X-Message-Id}` | string | the mailroom id of a message SendGrid accepted ([`MessageIndex`]) |

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::{Script, aio::ConnectionManager};
use serde_json::json;

use super::parse::{Event, EventKind};
use crate::store::suppressions::{Reason, Suppression};

static APPLY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/apply.lua")));

/// Events per script call: bounds how long Redis is busy with one call.
const CHUNK: usize = 250;

/// Dedupe marks outlive SendGrid's 24-hour retry window with room to spare.
const DEDUPE_TTL_SECS: u64 = 3 * 24 * 3600;
/// Daily counters are kept for about 13 months.
const STATS_TTL_SECS: u64 = 400 * 24 * 3600;

/// How many events of a batch were new and how many were duplicates, and which could not be
/// applied (a stored record mailroom cannot read): their index in the batch and why. A refused
/// event is not marked seen, so a retry of the batch applies it and only it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub fresh: u64,
    pub duplicates: u64,
    pub refused: Vec<(usize, String)>,
}

/// The message status an event moves to, with its rank: a status only ever moves up, so
/// events arriving out of order (SendGrid does not promise an order) cannot move it back.
pub fn status_of(event: &Event) -> Option<(&'static str, u8)> {
    Some(match event.event {
        EventKind::Deferred => ("deferred", 1),
        EventKind::Delivered => ("delivered", 2),
        EventKind::Open => ("opened", 3),
        EventKind::Click => ("clicked", 4),
        EventKind::Unsubscribe | EventKind::GroupUnsubscribe => ("unsubscribed", 5),
        EventKind::SpamReport => ("spam_report", 6),
        EventKind::Bounce => ("bounced", 7),
        EventKind::Dropped => ("dropped", 7),
        _ => return None,
    })
}

/// The suppression an event puts in place, if any.
pub fn suppression_of(event: &Event) -> Option<Reason> {
    match event.event {
        EventKind::Bounce => {
            if event.bounce_type.as_deref() == Some("blocked") {
                // A block is usually temporary; only a permanent (5.x.x) one suppresses.
                let permanent = event.status.as_deref().is_some_and(|s| s.starts_with('5'));
                permanent.then_some(Reason::Block)
            } else {
                Some(Reason::Bounce)
            }
        }
        EventKind::Dropped => match event.reason.as_deref() {
            Some("Bounced Address") => Some(Reason::Bounce),
            Some("Invalid") => Some(Reason::Invalid),
            Some("Unsubscribed Address") => Some(Reason::Unsubscribe),
            Some("Spam Reporting Address") => Some(Reason::SpamReport),
            _ => None,
        },
        EventKind::SpamReport => Some(Reason::SpamReport),
        EventKind::Unsubscribe => Some(Reason::Unsubscribe),
        EventKind::GroupUnsubscribe => Some(Reason::GroupUnsubscribe),
        _ => None,
    }
}

/// The daily counter an event adds to, and its "unique" twin.
fn counters(event: &Event) -> Option<(&'static str, Option<(&'static str, &'static str)>)> {
    Some(match event.event {
        EventKind::Processed => ("processed", None),
        EventKind::Delivered => ("delivered", None),
        EventKind::Deferred => ("deferred", None),
        EventKind::Bounce => ("bounced", None),
        EventKind::Dropped => ("dropped", None),
        EventKind::Open => ("opened", Some(("unique_opens", "open"))),
        EventKind::Click => ("clicked", Some(("unique_clicks", "click"))),
        EventKind::SpamReport => ("spam_reports", None),
        EventKind::Unsubscribe | EventKind::GroupUnsubscribe => ("unsubscribes", None),
        _ => return None,
    })
}

/// A message id mailroom could have issued: anything else is not looked up.
fn message_id(event: &Event) -> Option<&str> {
    event.mailroom_id.as_deref().filter(|id| {
        !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// A clicked URL as a timeline keeps it: without its query and fragment, where links carry
/// their secrets (a verification token, a reset code, a session), since every API key can read
/// a timeline. What was clicked stays readable; a URL that does not parse is left out.
fn without_query(url: &str) -> Option<String> {
    let mut url = url::Url::parse(url).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    Some(url.into())
}

/// `P:timeline:{id}`: message `id`'s events (written by `apply.lua`, read by the status view).
pub fn timeline_key(prefix: &str, id: &str) -> String {
    format!("{prefix}:timeline:{id}")
}

/// `P:delivery:{id}`: message `id`'s delivery status per recipient (`""`: the message's).
pub fn delivery_key(prefix: &str, id: &str) -> String {
    format!("{prefix}:delivery:{id}")
}

/// Applies events to Redis under `prefix`.
#[derive(Debug, Clone)]
pub struct EventStore {
    conn: ConnectionManager,
    prefix: String,
    keep_secs: u64,
    timeline_cap: usize,
}

impl EventStore {
    /// Applies events under `prefix`, keeping timelines and statuses `keep_secs` and the newest
    /// `timeline_cap` events of each timeline.
    pub fn new(
        conn: ConnectionManager,
        prefix: impl Into<String>,
        keep_secs: u64,
        timeline_cap: usize,
    ) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            keep_secs,
            timeline_cap,
        }
    }

    /// Applies `events`, received at `received_at`.
    ///
    /// # Errors
    /// When Redis fails (the batch is then retried; dedupe makes that safe).
    pub async fn apply(
        &self,
        events: &[Event],
        received_at: DateTime<Utc>,
    ) -> redis::RedisResult<Applied> {
        let index = MessageIndex::new(self.conn.clone(), &self.prefix, self.keep_secs);
        let found = index.resolve(events).await?;
        let mut applied = Applied::default();
        for (number, chunk) in events.chunks(CHUNK).enumerate() {
            let mut invocation = APPLY.prepare_invoke();
            invocation
                .arg(&self.prefix)
                .arg(DEDUPE_TTL_SECS)
                .arg(self.keep_secs)
                .arg(STATS_TTL_SECS)
                .arg(received_at.timestamp_millis())
                .arg(self.timeline_cap);
            for event in chunk {
                let message = message_id(event).or_else(|| {
                    event
                        .sg_message_id
                        .as_ref()
                        .and_then(|m| found.get(m))
                        .map(String::as_str)
                });
                for arg in Self::arguments(event, message, received_at) {
                    invocation.arg(arg);
                }
            }
            let (fresh, duplicates, refused): (u64, u64, Vec<String>) =
                invocation.invoke_async(&mut self.conn.clone()).await?;
            applied.fresh += fresh;
            applied.duplicates += duplicates;
            for pair in refused.chunks_exact(2) {
                // The script counts from 1 within the chunk.
                let within: usize = pair[0].parse().unwrap_or(1);
                applied
                    .refused
                    .push((number * CHUNK + within - 1, pair[1].clone()));
            }
        }
        Ok(applied)
    }

    /// The 14 script arguments of one event (see `apply.lua`).
    fn arguments(event: &Event, message: Option<&str>, received_at: DateTime<Utc>) -> [String; 14] {
        let email = mailroom_jobs::address::case_key(&event.email);
        let message = message.unwrap_or_default();
        let kind = event.event.as_str();
        let composite = format!("{message}|{kind}|{}|{email}", event.timestamp);
        let (status, rank) = status_of(event).unwrap_or(("", 0));
        let day = DateTime::from_timestamp(event.timestamp, 0)
            .unwrap_or(received_at)
            .format("%Y-%m-%d")
            .to_string();
        let categories = event
            .category
            .iter()
            .map(|c| c.replace(['\n', '|'], " "))
            .collect::<Vec<_>>()
            .join("\n");
        let (counter, unique) = counters(event).unwrap_or(("", None));
        let (unique_counter, unique_key) = match unique {
            Some((counter, kind)) => {
                let reference = if message.is_empty() {
                    event.sg_message_id.as_deref().unwrap_or_default()
                } else {
                    message
                };
                (counter, format!("{kind}:{reference}:{email}"))
            }
            None => ("", String::new()),
        };
        let (suppress, suppression) = match (&event.event, suppression_of(event)) {
            (EventKind::GroupResubscribe, _) => {
                ("lift:group_unsubscribe".to_owned(), String::new())
            }
            (_, Some(reason)) => {
                let record = Suppression {
                    email: email.clone(),
                    reason,
                    source: format!("sendgrid:{kind}"),
                    detail: event.reason.clone().or_else(|| event.status.clone()),
                    created_at: DateTime::from_timestamp(event.timestamp, 0).unwrap_or(received_at),
                };
                (
                    reason.as_str().to_owned(),
                    serde_json::to_string(&record).unwrap_or_default(),
                )
            }
            (_, None) => (String::new(), String::new()),
        };
        let at = DateTime::from_timestamp(event.timestamp, 0).unwrap_or(received_at);
        let mut line = json!({
            "event": kind,
            "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "email": email,
        });
        let url = event.url.as_deref().and_then(without_query);
        for (name, value) in [
            ("type", &event.bounce_type),
            ("reason", &event.reason),
            ("status", &event.status),
            ("response", &event.response),
            ("url", &url),
            ("attempt", &event.attempt),
            ("sg_event_id", &event.sg_event_id),
        ] {
            if let Some(value) = value {
                line[name] = json!(value);
            }
        }
        [
            event.sg_event_id.clone().unwrap_or_default(),
            composite,
            message.to_owned(),
            email,
            status.to_owned(),
            rank.to_string(),
            day,
            categories,
            counter.to_owned(),
            unique_counter.to_owned(),
            unique_key,
            suppress,
            suppression,
            line.to_string(),
        ]
    }
}

/// From SendGrid's message id to mailroom's, for the events that arrive without
/// `custom_args.mailroom_id` (bounces that come back through the Return-Path lose it).
///
/// SendGrid answers a send with `X-Message-Id`; its events carry `sg_message_id`, that id
/// followed by `.` and a server suffix. The send worker records the first; an event's id is
/// found by trying each of its `.`-separated prefixes.
#[derive(Debug, Clone)]
pub struct MessageIndex {
    conn: ConnectionManager,
    prefix: String,
    keep_secs: u64,
}

/// How many `.`-separated prefixes of an `sg_message_id` are tried.
const MAX_PREFIXES: usize = 8;

impl MessageIndex {
    pub fn new(conn: ConnectionManager, prefix: &str, keep_secs: u64) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            keep_secs,
        }
    }

    fn key(&self, provider_id: &str) -> String {
        format!("{}:sgmsg:{provider_id}", self.prefix)
    }

    /// Records that SendGrid's `provider_id` is mailroom's `id`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn record(&self, provider_id: &str, id: &str) -> redis::RedisResult<()> {
        redis::cmd("SET")
            .arg(self.key(provider_id))
            .arg(id)
            .arg("EX")
            .arg(self.keep_secs)
            .query_async(&mut self.conn.clone())
            .await
    }

    /// mailroom ids for the `sg_message_id`s of `events` that lack `mailroom_id`, in one read.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn resolve(
        &self,
        events: &[Event],
    ) -> redis::RedisResult<std::collections::HashMap<String, String>> {
        let mut wanted: Vec<(&str, String)> = Vec::new();
        for event in events.iter().filter(|e| message_id(e).is_none()) {
            let Some(sg) = event.sg_message_id.as_deref().filter(|s| s.len() <= 200) else {
                continue;
            };
            let cuts = sg.match_indices('.').map(|(i, _)| i).chain([sg.len()]);
            for end in cuts.take(MAX_PREFIXES) {
                wanted.push((sg, self.key(&sg[..end])));
            }
        }
        let mut found = std::collections::HashMap::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        let keys: Vec<&String> = wanted.iter().map(|(_, k)| k).collect();
        let ids: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn.clone())
            .await?;
        for ((sg, _), id) in wanted.iter().zip(ids) {
            if let Some(id) = id {
                found.entry((*sg).to_owned()).or_insert(id);
            }
        }
        Ok(found)
    }
}
