//! What a batch of events does to Redis. Each effect is one script, so that on Redis Cluster
//! each call stays in one slot (keys in [`mailroom_jobs::keys`]):
//!
//! 1. `lua/message.lua`, per message: dedupe (`P:evt:seen:{ID}:…`, 3 days: SendGrid retries
//!    for 24 h), timeline, delivery status, first-open and first-click marks. It decides whether
//!    an event is new and whether it is a unique open or click.
//! 2. `lua/stats.lua`, per day: the daily counters, with a mark per event and day, so that a
//!    batch retried after step 1 (the process stopped in between) counts each event once.
//! 3. `lua/suppress.lua`: suppressions (idempotent: added only when absent).
//!
//! Steps 2 and 3 run for events step 1 found new or already seen, never for one it refused:
//! a refused event (a stored record mailroom cannot read) is not marked, and a retry applies it
//! whole. On one Redis each step is one call per chunk of events; on a cluster, one per slot.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, try_join_all};
use mailroom_jobs::{Keys, RedisConnection};
use redis::Script;
use serde_json::json;

use super::parse::{Event, EventKind};
use crate::store::suppressions::{Reason, Suppression};

static MESSAGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/message.lua")));
static STATS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/stats.lua")));
static SUPPRESS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/suppress.lua")));

/// Events per chunk: bounds how long Redis is busy with one call.
const CHUNK: usize = 250;

/// Dedupe marks outlive SendGrid's 24-hour retry window with room to spare.
const DEDUPE_TTL_SECS: u64 = 3 * 24 * 3600;
/// Daily counters (and first-open marks) are kept for about 13 months.
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
                // A block is usually temporary; only a permanent (5.x.x) one suppresses, and
                // only SendGrid's (its blocks list). mailroom's own blocks (a policy refusal
                // of one message) are recorded without suppressing the address.
                let permanent = event.status.as_deref().is_some_and(|s| s.starts_with('5'));
                (permanent && event.source == super::Source::Sendgrid).then_some(Reason::Block)
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

/// One event, ready for the scripts.
struct Prepared {
    /// Whom its dedupe and unique marks belong to: the message, else SendGrid's message id,
    /// else `-` (one shared tag for the few events that name neither).
    owner: String,
    event_id: Option<String>,
    identity: String,
    message: String,
    email: String,
    status: &'static str,
    rank: u8,
    day: String,
    categories: String,
    /// The stored API key that queued the message ('' when unknown or not one).
    key: String,
    counter: &'static str,
    unique: Option<(&'static str, &'static str)>,
    suppress: String,
    suppression: String,
    line: String,
}

/// What step 1 said of an event: new or a duplicate, with whether it was a first open or
/// click and the counters' name of the event first applied (the duplicate's original).
enum Outcome {
    Fresh(Counted),
    Duplicate(Counted),
    Refused(String),
}

/// How the counters take an event step 1 did not refuse.
struct Counted {
    unique: bool,
    name: String,
}

/// Applies events to Redis under one prefix.
#[derive(Debug, Clone)]
pub struct EventStore {
    conn: RedisConnection,
    keys: Keys,
    keep_secs: u64,
    timeline_cap: usize,
    followers: Vec<Arc<dyn Follower>>,
}

/// A capability that hears of events once they are applied (lists take unsubscribes,
/// campaigns count engagement). Defined here so that those above implement it and events
/// know none of them; the composition root attaches them.
pub trait Follower: std::fmt::Debug + Send + Sync {
    /// `seen`: the events applied now or before (a redelivered batch: what the follower does
    /// must be idempotent); `fresh`: those applied for the first time, each with whether it
    /// was a unique open or click.
    ///
    /// # Errors
    /// When Redis fails (the batch is retried).
    fn follow<'a>(
        &'a self,
        seen: &'a [&'a Event],
        fresh: &'a [(&'a Event, bool)],
    ) -> BoxFuture<'a, redis::RedisResult<()>>;
}

impl EventStore {
    /// Applies events under `prefix`, keeping timelines and statuses `keep_secs` and the newest
    /// `timeline_cap` events of each timeline.
    pub fn new(conn: RedisConnection, prefix: &str, keep_secs: u64, timeline_cap: usize) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
            keep_secs,
            timeline_cap,
            followers: Vec::new(),
        }
    }

    /// The same store telling `follower` of what it applies, after the followers before it.
    #[must_use]
    pub fn with_follower(mut self, follower: Arc<dyn Follower>) -> Self {
        self.followers.push(follower);
        self
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
        let index = MessageIndex::new(self.conn.clone(), self.keys.prefix(), self.keep_secs);
        let found = index.resolve(events).await?;
        let mut applied = Applied::default();
        for (number, chunk) in events.chunks(CHUNK).enumerate() {
            let prepared: Vec<Prepared> = chunk
                .iter()
                .map(|event| {
                    let message = message_id(event).or_else(|| {
                        event
                            .sg_message_id
                            .as_ref()
                            .and_then(|m| found.get(m))
                            .map(String::as_str)
                    });
                    prepare(event, message, received_at)
                })
                .collect();
            let outcomes = self.messages(&prepared).await?;
            let mut refused: Vec<(usize, String)> = Vec::new();
            let mut go_on = Vec::new();
            let mut fresh = Vec::new();
            for (i, outcome) in outcomes.into_iter().enumerate() {
                match outcome {
                    Outcome::Fresh(counted) => {
                        applied.fresh += 1;
                        crate::metrics::event_applied(
                            chunk[i].source.as_str(),
                            chunk[i].event.label(),
                        );
                        fresh.push((&chunk[i], counted.unique));
                        go_on.push((i, counted));
                    }
                    Outcome::Duplicate(counted) => {
                        applied.duplicates += 1;
                        go_on.push((i, counted));
                    }
                    Outcome::Refused(why) => refused.push((i, why)),
                }
            }
            refused.extend(self.stats(&prepared, &go_on).await?);
            refused.extend(self.suppressions(&prepared, &go_on, received_at).await?);
            let seen: Vec<&Event> = go_on.iter().map(|(i, _)| &chunk[*i]).collect();
            for follower in &self.followers {
                follower.follow(&seen, &fresh).await?;
            }
            refused.sort_by_key(|(i, _)| *i);
            refused.dedup_by_key(|(i, _)| *i);
            applied.refused.extend(
                refused
                    .into_iter()
                    .map(|(i, why)| (number * CHUNK + i, why)),
            );
        }
        Ok(applied)
    }

    /// Step 1, per message (per slot on a cluster): one outcome per event, in order.
    async fn messages(&self, prepared: &[Prepared]) -> redis::RedisResult<Vec<Outcome>> {
        let indexed: Vec<(usize, String)> = prepared
            .iter()
            .enumerate()
            .map(|(i, p)| (i, self.keys.timeline(&p.owner)))
            .collect();
        let groups = self.conn.slot_groups(indexed, |(_, key)| key);
        let calls = groups.into_iter().map(|group| async move {
            let mut invocation = MESSAGE.prepare_invoke();
            invocation
                .arg(DEDUPE_TTL_SECS)
                .arg(self.keep_secs)
                .arg(STATS_TTL_SECS)
                .arg(self.timeline_cap);
            for (i, _) in &group {
                let p = &prepared[*i];
                // Without a SendGrid id the first key is a placeholder the script never reads.
                let event_key = p.event_id.as_deref().unwrap_or_default();
                let unique_kind = p.unique.map_or("-", |(_, kind)| kind);
                invocation
                    .key(self.keys.event_seen(&p.owner, "id", event_key))
                    .key(self.keys.event_seen(&p.owner, "k", &p.identity))
                    .key(self.keys.timeline(&p.owner))
                    .key(self.keys.delivery(&p.owner))
                    .key(self.keys.event_unique(&p.owner, unique_kind, &p.email))
                    .arg(if p.event_id.is_some() { "1" } else { "" })
                    .arg(&p.message)
                    .arg(&p.email)
                    .arg(p.status)
                    .arg(p.rank)
                    .arg(if p.unique.is_some() { "1" } else { "" })
                    .arg(&p.line)
                    .arg(p.stats_mark());
            }
            let answers: Vec<String> = invocation.invoke_async(&mut self.conn.clone()).await?;
            Ok::<_, redis::RedisError>((group, answers))
        });
        let mut outcomes: Vec<Option<Outcome>> = prepared.iter().map(|_| None).collect();
        for (group, answers) in try_join_all(calls).await? {
            for ((i, _), answer) in group.iter().zip(answers.chunks_exact(3)) {
                let counted = || Counted {
                    unique: answer[1] == "u",
                    name: answer[2].clone(),
                };
                outcomes[*i] = Some(match answer[0].as_str() {
                    "fresh" => Outcome::Fresh(counted()),
                    "duplicate" => Outcome::Duplicate(counted()),
                    _ => Outcome::Refused(answer[1].clone()),
                });
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Refused("no answer from Redis".to_owned())))
            .collect())
    }

    /// Step 2, per day: the counters of the events step 1 did not refuse. Returns refusals.
    async fn stats(
        &self,
        prepared: &[Prepared],
        go_on: &[(usize, Counted)],
    ) -> redis::RedisResult<Vec<(usize, String)>> {
        let counted: Vec<(usize, &Counted, String)> = go_on
            .iter()
            .filter(|(i, _)| !prepared[*i].counter.is_empty())
            .map(|(i, counted)| (*i, counted, self.keys.stats(&prepared[*i].day)))
            .collect();
        let groups = self.conn.slot_groups(counted, |(_, _, key)| key);
        let calls = groups.into_iter().map(|group| async move {
            let mut invocation = STATS.prepare_invoke();
            invocation.arg(STATS_TTL_SECS).arg(DEDUPE_TTL_SECS);
            for (i, counted, key) in &group {
                let p = &prepared[*i];
                let unique_counter = match p.unique {
                    Some((counter, _)) if counted.unique => counter,
                    _ => "",
                };
                // Marked by the name of the event first applied, so that a duplicate by
                // identity (another SendGrid id) is not counted a second time.
                invocation
                    .key(key)
                    .key(self.keys.stats_seen(&p.day, &counted.name))
                    .arg(&p.categories)
                    .arg(p.counter)
                    .arg(unique_counter)
                    .arg(&p.key);
            }
            let answers: Vec<String> = invocation.invoke_async(&mut self.conn.clone()).await?;
            Ok::<_, redis::RedisError>((group, answers))
        });
        let mut refused = Vec::new();
        for (group, answers) in try_join_all(calls).await? {
            for ((i, _, _), why) in group.iter().zip(answers) {
                if !why.is_empty() {
                    refused.push((*i, why));
                }
            }
        }
        Ok(refused)
    }

    /// Step 3: the suppressions of the events step 1 did not refuse. Returns refusals.
    ///
    /// A duplicate's suppression is put in place again (it may be the retry of a batch that
    /// stopped after step 1); one an operator removed in between comes back, as the event says.
    async fn suppressions(
        &self,
        prepared: &[Prepared],
        go_on: &[(usize, Counted)],
        received_at: DateTime<Utc>,
    ) -> redis::RedisResult<Vec<(usize, String)>> {
        let wanted: Vec<usize> = go_on
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| !prepared[*i].suppress.is_empty())
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = SUPPRESS.prepare_invoke();
        invocation
            .key(self.keys.suppressions())
            .key(self.keys.suppressions_index())
            .arg(received_at.timestamp_millis());
        for i in &wanted {
            let p = &prepared[*i];
            invocation
                .arg(&p.email)
                .arg(&p.suppress)
                .arg(&p.suppression);
        }
        let answers: Vec<String> = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(wanted
            .into_iter()
            .zip(answers)
            .filter(|(_, why)| !why.is_empty())
            .collect())
    }
}

impl Prepared {
    /// The event's mark in its day's counters: SendGrid's id, else its own identity.
    fn stats_mark(&self) -> String {
        match &self.event_id {
            Some(id) => format!("id:{id}"),
            None => format!("k:{}", self.identity),
        }
    }
}

/// An event as the scripts take it.
fn prepare(event: &Event, message: Option<&str>, received_at: DateTime<Utc>) -> Prepared {
    let email = mailroom_jobs::address::case_key(&event.email);
    let message = message.unwrap_or_default();
    let kind = event.event.as_str();
    // SendGrid may send one event twice under two ids: its identity is what it says. mailroom's
    // own events carry ids that name the occurrence (a hit, a refusal), so two hits in one
    // second are two.
    let identity = match (&event.sg_event_id, event.source) {
        (Some(id), source) if source != super::Source::Sendgrid => format!("{message}|{kind}|{id}"),
        _ => format!("{message}|{kind}|{}|{email}", event.timestamp),
    };
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
    let owner = if message.is_empty() {
        event
            .sg_message_id
            .as_deref()
            .filter(|m| !m.is_empty() && m.len() <= 200 && !m.contains(['{', '}']))
            .unwrap_or("-")
    } else {
        message
    };
    let (suppress, suppression) = suppression_fields(event, &email, received_at);
    let line = timeline_line(event, &email, received_at);
    Prepared {
        owner: owner.to_owned(),
        event_id: event.sg_event_id.clone().filter(|id| !id.is_empty()),
        identity,
        message: message.to_owned(),
        email,
        status,
        rank,
        day,
        categories,
        // Only the shape of a key id: bounds what a webhook can add to the day's counters.
        key: (event.mailroom_key.as_deref())
            .and_then(crate::domain::KeyId::parse)
            .map(|k| k.to_string())
            .unwrap_or_default(),
        counter,
        unique,
        suppress,
        suppression,
        line,
    }
}

/// What the event does to the suppression list: the action and the record (JSON) it writes.
fn suppression_fields(event: &Event, email: &str, received_at: DateTime<Utc>) -> (String, String) {
    let kind = event.event.as_str();
    match (&event.event, suppression_of(event)) {
        (EventKind::GroupResubscribe, _) => ("lift:group_unsubscribe".to_owned(), String::new()),
        (_, Some(reason)) => {
            let record = Suppression {
                email: email.to_owned(),
                reason,
                source: format!("{}:{kind}", event.source.as_str()),
                detail: event.reason.clone().or_else(|| event.status.clone()),
                created_at: DateTime::from_timestamp(event.timestamp, 0).unwrap_or(received_at),
            };
            (
                reason.as_str().to_owned(),
                serde_json::to_string(&record).unwrap_or_default(),
            )
        }
        (_, None) => (String::new(), String::new()),
    }
}

/// The event's line in its message's timeline (JSON).
fn timeline_line(event: &Event, email: &str, received_at: DateTime<Utc>) -> String {
    let kind = event.event.as_str();
    let at = DateTime::from_timestamp(event.timestamp, 0).unwrap_or(received_at);
    let mut line = json!({
        "event": kind,
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "email": email,
    });
    if event.source != super::Source::Sendgrid {
        line["source"] = json!(event.source.as_str());
    }
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
    line.to_string()
}

/// From SendGrid's message id to mailroom's, for the events that arrive without
/// `custom_args.mailroom_id` (bounces that come back through the Return-Path lose it).
///
/// SendGrid answers a send with `X-Message-Id`; its events carry `sg_message_id`, that id
/// followed by `.` and a server suffix. The send worker records the first; an event's id is
/// found by trying each of its `.`-separated prefixes.
#[derive(Debug, Clone)]
pub struct MessageIndex {
    conn: RedisConnection,
    keys: Keys,
    keep_secs: u64,
}

/// How many `.`-separated prefixes of an `sg_message_id` are tried.
const MAX_PREFIXES: usize = 8;

impl MessageIndex {
    pub fn new(conn: RedisConnection, prefix: &str, keep_secs: u64) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
            keep_secs,
        }
    }

    fn key(&self, provider_id: &str) -> String {
        self.keys.sendgrid_message(provider_id)
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
