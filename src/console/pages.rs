//! The console's pages: each reads what it shows from the same stores the API uses and renders
//! one Askama template. Nothing here changes anything (that is [`super::actions`]).

use askama::Template;
use axum::{
    Extension,
    extract::{Query, State},
    response::{Html, IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{charts, notice, session::Session};
use crate::{
    http::{AppState, render as previews},
    queue::QueueAdmin,
    store::activity::Activity,
};
use mailroom_jobs::{MessageId, QUEUES};

mod audience;
pub mod hooks;
pub mod keys;
mod stats;
mod templates;

pub use audience::{SuppressionQuery, campaigns, lists, suppressions};
pub use stats::{StatsQuery, stats};
pub use templates::{template, template_html, templates};

/// What every page's frame shows: title, navigation, the session's form token, a notice.
#[derive(Debug)]
pub struct Chrome {
    pub title: &'static str,
    pub current: &'static str,
    pub csrf: String,
    pub who: String,
    pub signed_in: bool,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// What the session's key may open: the navigation lists only those pages.
    pub scopes: crate::keys::Scopes,
}

/// One navigation link.
#[derive(Debug)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

const NAV: [(&str, &str); 10] = [
    ("/console", "Overview"),
    ("/console/dead", "Dead letters"),
    ("/console/messages", "Messages"),
    ("/console/campaigns", "Campaigns"),
    ("/console/lists", "Lists"),
    ("/console/suppressions", "Suppressions"),
    ("/console/stats", "Stats"),
    ("/console/templates", "Templates"),
    ("/console/keys", "Keys"),
    ("/console/webhooks", "Webhooks"),
];

impl Chrome {
    fn new(session: &Session, title: &'static str, current: &'static str, flash: &Flash) -> Self {
        Self {
            title,
            current,
            csrf: session.csrf.clone(),
            who: session.who.clone(),
            signed_in: session.signed_in,
            notice: flash.done.as_deref().and_then(notice::of),
            error: flash.failed.as_deref().and_then(notice::failure),
            scopes: session.scopes,
        }
    }

    /// The navigation, with this page marked.
    pub fn nav(&self) -> Vec<NavItem> {
        let opens = |href: &str| match super::required(href) {
            Some(Some(scope)) => self.scopes.contains(scope),
            Some(None) => true,
            None => false,
        };
        NAV.iter()
            .filter(|(href, _)| opens(href))
            .map(|(href, label)| NavItem {
                href,
                label,
                current: *href == self.current,
            })
            .collect()
    }
}

/// What an action left to say, by code (never free text from a link: a crafted URL cannot put
/// words on the page).
#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    failed: Option<String>,
}

/// A page, or the error page when Redis fails.
fn page<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a console page did not render");
            trouble("the page could not be drawn")
        }
    }
}

/// What a Redis failure shows: a 503 page that says so (nothing is changed).
pub fn trouble(what: &str) -> Response {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        Html(format!(
            "<!DOCTYPE html><title>Unavailable</title><link rel=\"stylesheet\" href=\"/console/assets/console.css\"><main><h1>Unavailable</h1><p class=\"error\">{}: try again shortly.</p><p><a href=\"/console\">Overview</a></p></main>",
            askama::filters::escape(what, askama::filters::Html)
                .map(|e| e.to_string())
                .unwrap_or_default()
        )),
    )
        .into_response()
}

fn redis_trouble(error: &redis::RedisError) -> Response {
    tracing::warn!(%error, "a console page could not read Redis");
    trouble("Redis did not answer")
}

/// How long ago `ms` (since the epoch) was, in words.
fn ago_ms(ms: u64) -> String {
    let now = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    age(now.saturating_sub(ms))
}

/// A duration in ms, in words: `3 s`, `4 min`, `2 h 5 min`, `3 d`.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d", s / 86_400),
    }
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A serde enum as its word (`running`, `confirmed`).
fn word<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

// ---------------------------------------------------------------- Overview

struct QueueRow {
    queue: String,
    ready: u64,
    delayed: u64,
    in_flight: u64,
    dead: u64,
    oldest: String,
    done_total: u64,
    retried_total: u64,
}

/// A provider's line: its circuit and its last hour.
struct ProviderRow {
    name: &'static str,
    /// `closed`, `open`, or `–` when it has no circuit (a route of one provider).
    state: &'static str,
    detail: String,
    sent: u64,
    errors: u64,
    /// Errors per hand-over, in percent, one decimal.
    error_rate: String,
}

struct RecentError {
    when: String,
    queue: &'static str,
    reason: String,
    error: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    chrome: Chrome,
    queues: Vec<QueueRow>,
    workers: Vec<String>,
    dead_total: u64,
    oldest_ready: String,
    sent_last_hour: u64,
    errors_last_hour: u64,
    chart: String,
    providers: Vec<ProviderRow>,
    recent_errors: Vec<RecentError>,
}

/// Each configured provider with its circuit and its hand-overs of the last hour.
async fn provider_rows(
    state: &AppState,
    activity: &Activity,
) -> redis::RedisResult<Vec<ProviderRow>> {
    use crate::providers::route::health::{Circuit, circuits};
    let names = &state.providers;
    let circuits = circuits(&state.producer.connection(), &state.prefix, names).await?;
    let last_hour = activity.by_provider(60).await?;
    Ok((names.iter().zip(circuits))
        .map(|(name, circuit)| {
            let [sent, deferred, refused] = last_hour.get(*name).copied().unwrap_or_default();
            let errors = deferred + refused;
            let handed = sent + errors;
            let (state, detail) = match circuit {
                _ if names.len() < 2 => ("–", "the only provider".to_owned()),
                Circuit::Closed => ("closed", "takes mail".to_owned()),
                Circuit::Open { next_probe } => (
                    "open",
                    format!("failing over; next probe in {} s", next_probe.as_secs()),
                ),
            };
            ProviderRow {
                name,
                state,
                detail,
                sent,
                errors,
                error_rate: if handed == 0 {
                    "–".to_owned()
                } else {
                    format!("{:.1} %", errors as f64 * 100.0 / handed as f64)
                },
            }
        })
        .collect())
}

/// `GET /console`.
pub async fn overview(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(flash): Query<Flash>,
) -> Response {
    match overview_data(
        &state,
        Chrome::new(&session, "Overview", "/console", &flash),
    )
    .await
    {
        Ok(page_data) => page(&page_data),
        Err(error) => redis_trouble(&error),
    }
}

async fn overview_data(state: &AppState, chrome: Chrome) -> redis::RedisResult<Overview> {
    let admin = QueueAdmin::new(state.producer.connection(), state.prefix.clone());
    let mut queues = Vec::new();
    let mut workers = std::collections::BTreeSet::new();
    let mut recent = Vec::new();
    let mut oldest = 0;
    for queue in QUEUES {
        let stats = admin.stats(queue).await?;
        // A worker serves every queue: its name appears once.
        workers.extend(stats.workers.iter().map(|w| {
            w.rsplit_once('/')
                .map_or(w.as_str(), |(name, _)| name)
                .to_owned()
        }));
        oldest = oldest.max(stats.oldest_ready_ms);
        if stats.dead > 0 {
            for letter in admin.dead(queue, 5).await? {
                recent.push((letter.died_at_ms, queue, letter));
            }
        }
        queues.push(QueueRow {
            queue: stats.queue,
            ready: stats.ready,
            delayed: stats.delayed,
            in_flight: stats.in_flight,
            dead: stats.dead,
            oldest: if stats.oldest_ready_ms == 0 {
                "–".to_owned()
            } else {
                age(stats.oldest_ready_ms)
            },
            done_total: stats.done_total,
            retried_total: stats.retried_total,
        });
    }
    recent.sort_by_key(|letter| std::cmp::Reverse(letter.0));
    let activity = Activity::new(state.producer.connection(), &state.prefix);
    let minutes = activity.recent(60).await?;
    let providers = provider_rows(state, &activity).await?;
    Ok(Overview {
        chrome,
        dead_total: queues.iter().map(|q| q.dead).sum(),
        queues,
        workers: workers.into_iter().collect(),
        oldest_ready: if oldest == 0 {
            "none waiting".to_owned()
        } else {
            age(oldest)
        },
        sent_last_hour: minutes.iter().map(|m| m.sent).sum(),
        errors_last_hour: minutes.iter().map(|m| m.deferred + m.refused).sum(),
        chart: charts::sends_per_minute(&minutes),
        providers,
        recent_errors: recent
            .into_iter()
            .take(8)
            .map(|(died, queue, letter)| RecentError {
                when: format!("{} ago", ago_ms(died)),
                queue,
                reason: letter.reason,
                error: letter.last_error,
            })
            .collect(),
    })
}

// ---------------------------------------------------------------- Dead letters

struct LetterRow {
    id: String,
    when: String,
    reason: String,
    attempts: u32,
    error: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "console/dead.html")]
struct DeadPage {
    chrome: Chrome,
    queue: String,
    queues: Vec<(&'static str, u64)>,
    letters: Vec<LetterRow>,
}

/// Which queue's dead letters.
#[derive(Debug, Deserialize)]
pub struct DeadQuery {
    #[serde(default)]
    queue: Option<String>,
    #[serde(flatten)]
    flash: Flash,
}

/// The dead letters the page lists per queue.
const LETTERS_SHOWN: usize = 200;

/// `GET /console/dead?queue=Q`.
pub async fn dead(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(query): Query<DeadQuery>,
) -> Response {
    let chrome = Chrome::new(&session, "Dead letters", "/console/dead", &query.flash);
    let queue = query
        .queue
        .as_deref()
        .and_then(|q| QUEUES.iter().find(|known| **known == q))
        .copied()
        .unwrap_or(QUEUES[0]);
    let admin = QueueAdmin::new(state.producer.connection(), state.prefix.clone());
    let read = async {
        let mut queues = Vec::new();
        for q in QUEUES {
            queues.push((*q, admin.stats(q).await?.dead));
        }
        let letters = admin.dead(queue, LETTERS_SHOWN).await?;
        Ok::<_, redis::RedisError>((queues, letters))
    };
    match read.await {
        Ok((queues, letters)) => page(&DeadPage {
            chrome,
            queue: queue.to_owned(),
            queues,
            letters: letters
                .into_iter()
                .map(|l| LetterRow {
                    when: format!("{} ago", ago_ms(l.died_at_ms)),
                    summary: super::summary::of(queue, l.payload.as_deref()),
                    id: l.id,
                    reason: l.reason,
                    attempts: l.attempts,
                    error: l.last_error,
                })
                .collect(),
        }),
        Err(error) => redis_trouble(&error),
    }
}

// ---------------------------------------------------------------- Messages

struct TimelineRow {
    at: String,
    event: String,
    email: String,
    detail: String,
}

struct MessageView {
    id: String,
    status: String,
    attempts: u32,
    provider: String,
    queued_at: String,
    sent_at: String,
    last_error: String,
    recipients: Vec<(String, String)>,
    suppressed: Vec<String>,
    timeline: Vec<TimelineRow>,
}

struct FoundRow {
    id: String,
    status: String,
    queued_at: String,
}

#[derive(Template)]
#[template(path = "console/messages.html")]
struct MessagesPage {
    chrome: Chrome,
    query: String,
    message: Option<MessageView>,
    found: Vec<FoundRow>,
}

/// A search.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(flatten)]
    flash: Flash,
}

/// Messages to one address the page lists.
const FOUND_SHOWN: usize = 50;

/// `GET /console/messages?q=ID|ADDRESS`.
pub async fn messages(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(query): Query<SearchQuery>,
) -> Response {
    let mut chrome = Chrome::new(&session, "Messages", "/console/messages", &query.flash);
    let q = query.q.unwrap_or_default().trim().to_owned();
    let mut message = None;
    let mut found = Vec::new();
    let read = async {
        if let Some(id) = MessageId::parse(&q) {
            match state.status.get(id).await? {
                Some(record) => message = Some(message_view(record)),
                None => {
                    chrome.error = Some(format!("No message {id} (or its record has expired)."));
                }
            }
        } else if q.contains('@') {
            let ids = state.addresses.messages(&q).await?;
            for id in ids
                .iter()
                .filter_map(|id| MessageId::parse(id))
                .take(FOUND_SHOWN)
            {
                if let Some(record) = state.status.get(id).await? {
                    found.push(FoundRow {
                        id: record.id.to_string(),
                        status: word(&record.status),
                        queued_at: record.queued_at.unwrap_or_default(),
                    });
                }
            }
            if found.is_empty() {
                chrome.notice = Some(format!("No messages to {q} are on record."));
            }
        }
        Ok::<_, redis::RedisError>(())
    };
    match read.await {
        Ok(()) => page(&MessagesPage {
            chrome,
            query: q,
            message,
            found,
        }),
        Err(error) => redis_trouble(&error),
    }
}

fn message_view(record: crate::store::StatusRecord) -> MessageView {
    let text = |value: &serde_json::Value, name: &str| {
        value
            .get(name)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()
    };
    MessageView {
        status: word(&record.status),
        attempts: record.attempts,
        provider: record.provider.unwrap_or_default(),
        queued_at: record.queued_at.unwrap_or_default(),
        sent_at: record.sent_at.unwrap_or_default(),
        last_error: record.last_error.unwrap_or_default(),
        recipients: record
            .recipients
            .iter()
            .map(|(email, status)| (email.clone(), word(status)))
            .collect(),
        suppressed: record.suppressed,
        timeline: record
            .timeline
            .iter()
            .map(|event| TimelineRow {
                at: text(event, "at"),
                event: text(event, "event"),
                email: text(event, "email"),
                detail: ["reason", "status", "response", "url", "type", "source"]
                    .iter()
                    .filter_map(|name| {
                        let value = text(event, name);
                        (!value.is_empty()).then(|| format!("{name}: {value}"))
                    })
                    .collect::<Vec<_>>()
                    .join(" · "),
            })
            .collect(),
        id: record.id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_words() {
        assert_eq!(age(4_000), "4 s");
        assert_eq!(age(125_000), "2 min");
        assert_eq!(age(7_500_000), "2 h 5 min");
        assert_eq!(age(3 * 86_400_000), "3 d");
    }
}
