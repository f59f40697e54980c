//! The statistics page: the event counters of a period, and each campaign's engagement.

use askama::Template;
use axum::{
    Extension,
    extract::{Query, State},
    response::Response,
};
use chrono::Utc;
use serde::Deserialize;

use super::{AppState, Chrome, Flash, Session, charts, page, redis_trouble};
use crate::{
    campaigns::Campaign,
    domain::KeyId,
    store::stats::{Filter, Stats},
};

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
    /// The chosen stored key's id ('' for all mail), and every stored key: (id, name).
    key: String,
    keys: Vec<(String, String)>,
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
    key: Option<String>,
    #[serde(default)]
    days: Option<u32>,
    #[serde(flatten)]
    flash: Flash,
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// The series of the delivery chart.
const VOLUME: [&str; 3] = ["delivered", "unique opens", "unique clicks"];
/// The series of the problems chart.
const PROBLEMS: [&str; 4] = ["bounced", "deferred", "complaints", "unsubscribes"];

/// The two charts per day: what was delivered and read, and what went wrong.
fn day_charts(stats: &Stats) -> (String, String) {
    let dates: Vec<String> = stats.days.iter().map(|d| d.date.clone()).collect();
    let series = |f: fn(&crate::store::stats::Counters) -> u64| -> Vec<u64> {
        stats.days.iter().map(|d| f(&d.counters)).collect()
    };
    let volume_chart = charts::per_day(
        "Delivered, unique opens and unique clicks per day",
        &dates,
        &[
            ("delivered", series(|c| c.delivered)),
            ("unique opens", series(|c| c.unique_opens)),
            ("unique clicks", series(|c| c.unique_clicks)),
        ],
    );
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
    (volume_chart, problem_chart)
}

/// The tiles over the charts: totals and rates of the period.
fn tiles(stats: &Stats) -> Vec<(String, &'static str)> {
    let totals = &stats.totals;
    vec![
        (totals.processed.to_string(), "processed"),
        (totals.delivered.to_string(), "delivered"),
        (percent(stats.rates.delivery), "delivery rate"),
        (percent(stats.rates.open), "unique open rate"),
        (percent(stats.rates.click), "unique click rate"),
        (percent(stats.rates.bounce), "bounce rate"),
        (percent(stats.rates.complaint), "complaint rate"),
    ]
}

/// Engagement per delivered message of each campaign.
fn campaign_chart(series: &[&str], campaigns: &[Campaign]) -> String {
    charts::rates(
        "Unique opens, clicks, bounces and complaints per delivered message of each campaign",
        series,
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
    )
}

/// `GET /console/stats?category=C&key=K&days=N`.
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
    let key = query.key.as_deref().and_then(KeyId::parse);
    let filter = Filter {
        category: category.as_deref(),
        key: key.as_ref().map(KeyId::as_str),
    };
    let to = Utc::now().date_naive();
    let from = to - chrono::Duration::days(i64::from(days) - 1);
    let read = async {
        let stats = state.stats.read(filter, from, to).await?;
        let campaigns = state.campaigns.list(0, 20).await?;
        Ok::<_, redis::RedisError>((stats, campaigns))
    };
    let ((stats, campaigns), keys) = match (read.await, state.stored_keys.list().await) {
        (Ok(read), Ok(keys)) => (read, keys),
        (Err(error), _) => return redis_trouble(&error),
        (_, Err(_)) => return super::trouble("the keys could not be read"),
    };
    let (volume_chart, problem_chart) = day_charts(&stats);
    let tiles = tiles(&stats);
    let campaign_series = vec!["opens", "clicks", "bounces", "complaints"];
    let campaign_chart = campaign_chart(&campaign_series, &campaigns);
    page(&StatsPage {
        campaign_chart,
        campaign_series,
        chrome,
        category: category.unwrap_or_default(),
        key: key.map(|k| k.to_string()).unwrap_or_default(),
        keys: keys.into_iter().map(|k| (k.id, k.name)).collect(),
        days,
        tiles,
        volume_chart,
        volume_series: VOLUME.to_vec(),
        problem_chart,
        problem_series: PROBLEMS.to_vec(),
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
