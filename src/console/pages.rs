//! The console's pages: each reads what it shows from the same stores the API uses and renders
//! one Askama template. Nothing here changes anything (that is [`super::actions`]).

use askama::Template;
use axum::{
    Extension,
    extract::{Path, Query, State},
    response::{Html, IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use mailroom_jobs::templates::TEMPLATE_NAMES;
use serde::{Deserialize, Serialize};

use super::{charts, notice, session::Session};
use crate::{
    http::{AppState, render as previews},
    queue::QueueAdmin,
    store::activity::Activity,
};
use mailroom_jobs::QUEUES;

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
}

/// One navigation link.
#[derive(Debug)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

const NAV: [(&str, &str); 8] = [
    ("/console", "Overview"),
    ("/console/dead", "Dead letters"),
    ("/console/messages", "Messages"),
    ("/console/campaigns", "Campaigns"),
    ("/console/lists", "Lists"),
    ("/console/suppressions", "Suppressions"),
    ("/console/stats", "Stats"),
    ("/console/templates", "Templates"),
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
        }
    }

    /// The navigation, with this page marked.
    pub fn nav(&self) -> Vec<NavItem> {
        NAV.iter()
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
    recent_errors: Vec<RecentError>,
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
    let minutes = Activity::new(state.producer.connection(), &state.prefix)
        .recent(60)
        .await?;
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
        if let Ok(id) = uuid::Uuid::parse_str(&q) {
            match state.status.get(&id.to_string()).await? {
                Some(record) => message = Some(message_view(record)),
                None => {
                    chrome.error = Some(format!("No message {id} (or its record has expired)."));
                }
            }
        } else if q.contains('@') {
            let ids = state.addresses.messages(&q).await?;
            for id in ids.iter().take(FOUND_SHOWN) {
                if let Some(record) = state.status.get(id).await? {
                    found.push(FoundRow {
                        id: record.id,
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
        id: record.id,
    }
}

// ---------------------------------------------------------------- Campaigns

struct CampaignRow {
    id: String,
    name: String,
    state: String,
    paused_reason: String,
    audience: u64,
    done: u64,
    percent: u64,
    sent: u64,
    failed: u64,
    skipped: u64,
    rate: String,
    eta: String,
}

#[derive(Template)]
#[template(path = "console/campaigns.html")]
struct CampaignsPage {
    chrome: Chrome,
    campaigns: Vec<CampaignRow>,
}

/// The campaigns a page lists, newest first.
const CAMPAIGNS_SHOWN: usize = 100;

/// `GET /console/campaigns`.
pub async fn campaigns(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(flash): Query<Flash>,
) -> Response {
    let chrome = Chrome::new(&session, "Campaigns", "/console/campaigns", &flash);
    match state.campaigns.list(0, CAMPAIGNS_SHOWN).await {
        Ok(list) => page(&CampaignsPage {
            chrome,
            campaigns: list
                .into_iter()
                .map(|c| {
                    let audience = c.audience.unwrap_or(0);
                    let done = c.sent + c.failed + c.skipped;
                    CampaignRow {
                        percent: (done * 100).checked_div(audience).unwrap_or(0),
                        rate: format!("{:.0}", c.rate),
                        eta: c
                            .eta_seconds
                            .map_or_else(|| "–".to_owned(), |s| age(s * 1000)),
                        state: word(&c.state),
                        paused_reason: c.paused_reason.unwrap_or_default(),
                        name: c.spec.name,
                        id: c.id,
                        audience: audience.max(done),
                        done,
                        sent: c.sent,
                        failed: c.failed,
                        skipped: c.skipped,
                    }
                })
                .collect(),
        }),
        Err(error) => redis_trouble(&error),
    }
}

// ---------------------------------------------------------------- Lists

struct ListRow {
    id: u64,
    name: String,
    optin: String,
    confirmed: u64,
    unconfirmed: u64,
    unsubscribed: u64,
}

struct ImportRow {
    started: String,
    list: u64,
    state: String,
    failure: String,
    rows: u64,
    imported: u64,
    updated: u64,
    skipped: u64,
    invalid: u64,
    error_count: u64,
    errors: Vec<crate::lists::imports::RowReport>,
}

#[derive(Template)]
#[template(path = "console/lists.html")]
struct ListsPage {
    chrome: Chrome,
    lists: Vec<ListRow>,
    imports: Vec<ImportRow>,
}

/// Imports the page lists, and reported rows shown per import.
const IMPORTS_SHOWN: usize = 20;
const REPORTS_SHOWN: usize = 50;

/// `GET /console/lists`.
pub async fn lists(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(flash): Query<Flash>,
) -> Response {
    let chrome = Chrome::new(&session, "Lists", "/console/lists", &flash);
    let read = async {
        let mut lists = Vec::new();
        for list in state.lists.lists().await? {
            let counts = state.lists.counts(list.id).await?;
            lists.push(ListRow {
                id: list.id.get(),
                name: list.name,
                optin: word(&list.optin),
                confirmed: counts.confirmed,
                unconfirmed: counts.unconfirmed,
                unsubscribed: counts.unsubscribed,
            });
        }
        let mut imports = Vec::new();
        for id in state.imports.recent(IMPORTS_SHOWN).await? {
            if let Some(import) = state.imports.get(id, 0, REPORTS_SHOWN).await? {
                imports.push(ImportRow {
                    started: when(import.started_at),
                    list: import.list.get(),
                    state: word(&import.state),
                    failure: import.failure.unwrap_or_default(),
                    rows: import.totals.rows,
                    imported: import.totals.imported,
                    updated: import.totals.updated,
                    skipped: import.totals.skipped,
                    invalid: import.totals.invalid,
                    error_count: import.error_count,
                    errors: import.errors,
                });
            }
        }
        Ok::<_, redis::RedisError>((lists, imports))
    };
    match read.await {
        Ok((lists, imports)) => page(&ListsPage {
            chrome,
            lists,
            imports,
        }),
        Err(error) => redis_trouble(&error),
    }
}

// ---------------------------------------------------------------- Suppressions

struct SuppressionRow {
    email: String,
    reason: String,
    source: String,
    detail: String,
    since: String,
}

#[derive(Template)]
#[template(path = "console/suppressions.html")]
struct SuppressionsPage {
    chrome: Chrome,
    query: String,
    suppressions: Vec<SuppressionRow>,
    next_cursor: Option<String>,
}

/// A search or a page of the list.
#[derive(Debug, Deserialize)]
pub struct SuppressionQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    cursor: Option<usize>,
    #[serde(flatten)]
    flash: Flash,
}

/// Suppressions per page.
const SUPPRESSIONS_SHOWN: usize = 100;

/// `GET /console/suppressions?q=ADDRESS|cursor=N`.
pub async fn suppressions(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(query): Query<SuppressionQuery>,
) -> Response {
    let chrome = Chrome::new(
        &session,
        "Suppressions",
        "/console/suppressions",
        &query.flash,
    );
    let q = query.q.unwrap_or_default().trim().to_owned();
    let read = async {
        if q.is_empty() {
            let listed = state
                .suppressions
                .list(None, query.cursor.unwrap_or(0), SUPPRESSIONS_SHOWN)
                .await?;
            Ok::<_, redis::RedisError>((listed.suppressions, listed.next_cursor))
        } else {
            Ok((
                state.suppressions.get(&q).await?.into_iter().collect(),
                None,
            ))
        }
    };
    match read.await {
        Ok((records, next_cursor)) => page(&SuppressionsPage {
            chrome,
            query: q,
            suppressions: records
                .into_iter()
                .map(|s| SuppressionRow {
                    reason: s.reason.as_str().to_owned(),
                    since: when(s.created_at),
                    email: s.email,
                    source: s.source,
                    detail: s.detail.unwrap_or_default(),
                })
                .collect(),
            next_cursor,
        }),
        Err(error) => redis_trouble(&error),
    }
}

// ---------------------------------------------------------------- Stats

struct CampaignStats {
    name: String,
    sent: u64,
    delivered: u64,
    opens: u64,
    clicks: u64,
    bounces: u64,
    complaints: u64,
    unsubscribes: u64,
}

#[derive(Template)]
#[template(path = "console/stats.html")]
struct StatsPage {
    chrome: Chrome,
    category: String,
    days: u32,
    tiles: Vec<(String, &'static str)>,
    volume_chart: String,
    volume_series: Vec<&'static str>,
    problem_chart: String,
    problem_series: Vec<&'static str>,
    campaign_chart: String,
    campaign_series: Vec<&'static str>,
    days_rows: Vec<crate::store::stats::Day>,
    campaigns: Vec<CampaignStats>,
}

/// Which stats.
#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    days: Option<u32>,
    #[serde(flatten)]
    flash: Flash,
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// `GET /console/stats?category=C&days=N`.
pub async fn stats(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(query): Query<StatsQuery>,
) -> Response {
    let chrome = Chrome::new(&session, "Stats", "/console/stats", &query.flash);
    let days = query
        .days
        .filter(|d| [7, 14, 30, 90].contains(d))
        .unwrap_or(14);
    let category = query
        .category
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty() && c.len() <= 100);
    let to = Utc::now().date_naive();
    let from = to - chrono::Duration::days(i64::from(days) - 1);
    let read = async {
        let stats = state.stats.read(category.as_deref(), from, to).await?;
        let campaigns = state.campaigns.list(0, 20).await?;
        Ok::<_, redis::RedisError>((stats, campaigns))
    };
    let (stats, campaigns) = match read.await {
        Ok(read) => read,
        Err(error) => return redis_trouble(&error),
    };
    let dates: Vec<String> = stats.days.iter().map(|d| d.date.clone()).collect();
    let series = |f: fn(&crate::store::stats::Counters) -> u64| -> Vec<u64> {
        stats.days.iter().map(|d| f(&d.counters)).collect()
    };
    let volume_series = vec!["delivered", "unique opens", "unique clicks"];
    let volume_chart = charts::per_day(
        "Delivered, unique opens and unique clicks per day",
        &dates,
        &[
            ("delivered", series(|c| c.delivered)),
            ("unique opens", series(|c| c.unique_opens)),
            ("unique clicks", series(|c| c.unique_clicks)),
        ],
    );
    let problem_series = vec!["bounced", "deferred", "complaints", "unsubscribes"];
    let problem_chart = charts::per_day(
        "Bounces, deferrals, complaints and unsubscribes per day",
        &dates,
        &[
            ("bounced", series(|c| c.bounced)),
            ("deferred", series(|c| c.deferred)),
            ("complaints", series(|c| c.spam_reports)),
            ("unsubscribes", series(|c| c.unsubscribes)),
        ],
    );
    let totals = &stats.totals;
    let tiles = vec![
        (totals.processed.to_string(), "processed"),
        (totals.delivered.to_string(), "delivered"),
        (percent(stats.rates.delivery), "delivery rate"),
        (percent(stats.rates.open), "unique open rate"),
        (percent(stats.rates.click), "unique click rate"),
        (percent(stats.rates.bounce), "bounce rate"),
        (percent(stats.rates.complaint), "complaint rate"),
    ];
    let campaign_series = vec!["opens", "clicks", "bounces", "complaints"];
    let campaign_chart = charts::rates(
        "Unique opens, clicks, bounces and complaints per delivered message of each campaign",
        &campaign_series,
        &campaigns
            .iter()
            .map(|c| {
                let e = &c.engagement;
                (
                    e.delivered,
                    vec![e.opens, e.clicks, e.bounces, e.complaints],
                )
            })
            .collect::<Vec<_>>(),
    );
    page(&StatsPage {
        campaign_chart,
        campaign_series,
        chrome,
        category: category.unwrap_or_default(),
        days,
        tiles,
        volume_chart,
        volume_series,
        problem_chart,
        problem_series,
        days_rows: stats.days,
        campaigns: campaigns
            .into_iter()
            .map(|c| CampaignStats {
                name: c.spec.name,
                sent: c.sent,
                delivered: c.engagement.delivered,
                opens: c.engagement.opens,
                clicks: c.engagement.clicks,
                bounces: c.engagement.bounces,
                complaints: c.engagement.complaints,
                unsubscribes: c.engagement.unsubscribes,
            })
            .collect(),
    })
}

// ---------------------------------------------------------------- Templates

struct TemplateRow {
    name: &'static str,
    about: &'static str,
}

#[derive(Template)]
#[template(path = "console/templates.html")]
struct TemplatesPage {
    chrome: Chrome,
    templates: Vec<TemplateRow>,
    locales: Vec<(String, &'static str)>,
}

fn locales() -> Vec<(String, &'static str)> {
    crate::render::locale::supported()
        .iter()
        .map(|l| {
            let tag = l.to_string();
            let name = previews::endonym(&tag);
            (tag, name)
        })
        .collect()
}

/// `GET /console/templates`: every template, every language.
pub async fn templates(Extension(session): Extension<Session>) -> Response {
    page(&TemplatesPage {
        chrome: Chrome::new(
            &session,
            "Templates",
            "/console/templates",
            &Flash::default(),
        ),
        templates: TEMPLATE_NAMES
            .iter()
            .map(|name| TemplateRow {
                name,
                about: previews::about(name),
            })
            .collect(),
        locales: locales(),
    })
}

#[derive(Template)]
#[template(path = "console/template.html")]
struct TemplatePage {
    chrome: Chrome,
    name: String,
    tag: String,
    subject: String,
    text: String,
    locales: Vec<(String, &'static str)>,
}

/// `GET /console/templates/{name}/{locale}`: the template at desktop and phone widths beside
/// its text part, with its sample data.
pub async fn template(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path((name, tag)): Path<(String, String)>,
) -> Response {
    match previews::preview_of(&state, name.clone(), Some(tag)) {
        Ok(rendered) => page(&TemplatePage {
            chrome: Chrome::new(
                &session,
                "Templates",
                "/console/templates",
                &Flash::default(),
            ),
            name,
            tag: rendered.locale,
            subject: rendered.subject,
            text: rendered.text,
            locales: locales(),
        }),
        Err(error) => error.into_response(),
    }
}

/// `GET /console/templates/{name}/{locale}/html`: the HTML part alone, for the frames.
pub async fn template_html(
    State(state): State<AppState>,
    Path((name, tag)): Path<(String, String)>,
) -> Response {
    match previews::preview_of(&state, name, Some(tag)) {
        // The email's own markup and styles, as a mail client shows them (no script in it).
        Ok(rendered) => (
            [(
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; frame-ancestors 'self'",
            )],
            Html(rendered.html),
        )
            .into_response(),
        Err(error) => error.into_response(),
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
