//! The campaigns, lists and suppressions pages.

use askama::Template;
use axum::{
    Extension,
    extract::{Query, State},
    response::Response,
};
use serde::Deserialize;

use super::{AppState, Chrome, Flash, Session, age, page, redis_trouble, when, word};

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
                        id: c.id.to_string(),
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
