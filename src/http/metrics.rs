//! `GET /metrics`: this process's metrics ([`crate::metrics`]: HTTP requests, Redis round
//! trips) followed by the deployment's state read from Redis at each scrape (queue depths and
//! the oldest ready job's age, workers, campaigns in progress, inbound storage), so every API
//! process reports the same deployment numbers whichever one is scraped.

use std::fmt::Write;

use axum::{extract::State, http::header, response::IntoResponse};

use super::{AppState, error::ApiError};
use crate::queue::QueueAdmin;
use mailroom_jobs::QUEUES;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The queues' gauges and counters.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text format: mailroom_http_requests_total{route,method,status}, mailroom_http_request_duration_seconds, mailroom_redis_roundtrip_seconds, mailroom_queue_jobs{queue,state}, mailroom_queue_oldest_ready_age_seconds{queue}, mailroom_queue_jobs_total{queue,outcome}, mailroom_queue_workers{queue}, mailroom_campaign_recipients{campaign,state}, mailroom_campaign_rate{campaign}, inbound storage", body = String, content_type = "text/plain"))
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let admin = QueueAdmin::new(state.producer.connection(), state.prefix.clone());
    let mut gauges = String::from(
        "# HELP mailroom_queue_jobs Jobs in each part of a queue.\n# TYPE mailroom_queue_jobs gauge\n",
    );
    let mut counters = String::from(
        "# HELP mailroom_queue_jobs_total Jobs that ended a run this way since the queue began.\n# TYPE mailroom_queue_jobs_total counter\n",
    );
    let mut workers = String::from(
        "# HELP mailroom_queue_workers Workers with a recent heartbeat.\n# TYPE mailroom_queue_workers gauge\n",
    );
    let mut ages = String::from(
        "# HELP mailroom_queue_oldest_ready_age_seconds How long the oldest ready job has waited for a worker (0: none waits).\n# TYPE mailroom_queue_oldest_ready_age_seconds gauge\n",
    );
    for queue in QUEUES {
        let stats = admin.stats(queue).await?;
        for (state, value) in [
            ("ready", stats.ready),
            ("delayed", stats.delayed),
            ("in_flight", stats.in_flight),
            ("dead", stats.dead),
        ] {
            let _ = writeln!(
                gauges,
                "mailroom_queue_jobs{{queue=\"{queue}\",state=\"{state}\"}} {value}"
            );
        }
        for (outcome, value) in [
            ("done", stats.done_total),
            ("retried", stats.retried_total),
            ("dead", stats.dead_total),
        ] {
            let _ = writeln!(
                counters,
                "mailroom_queue_jobs_total{{queue=\"{queue}\",outcome=\"{outcome}\"}} {value}"
            );
        }
        let _ = writeln!(
            workers,
            "mailroom_queue_workers{{queue=\"{queue}\"}} {}",
            stats.workers.len()
        );
        let _ = writeln!(
            ages,
            "mailroom_queue_oldest_ready_age_seconds{{queue=\"{queue}\"}} {:.3}",
            stats.oldest_ready_ms as f64 / 1000.0
        );
    }
    let campaigns = campaign_gauges(&state).await?;
    let inbound = state.inbound.store.usage().await?;
    let _ = write!(
        workers,
        "# HELP mailroom_inbound_stored_bytes Inbound mail kept now (records and attachments), about.\n\
         # TYPE mailroom_inbound_stored_bytes gauge\nmailroom_inbound_stored_bytes {}\n\
         # HELP mailroom_inbound_over_budget_total Inbound messages kept without their bodies: MAILROOM_INBOUND_MAX_BYTES was spent.\n\
         # TYPE mailroom_inbound_over_budget_total counter\nmailroom_inbound_over_budget_total {}\n",
        inbound.stored_bytes, inbound.over_budget_total
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render() + &gauges + &ages + &counters + &workers + &campaigns,
    ))
}

/// How many of the newest campaigns `/metrics` looks at for the ones in progress: the label
/// set stays bounded however many campaigns a deployment keeps.
const CAMPAIGNS_SCANNED: usize = 50;

/// Progress of the campaigns scheduled, running or paused, among the newest ones.
async fn campaign_gauges(state: &AppState) -> Result<String, ApiError> {
    use crate::campaigns::model::State;
    let mut out = String::from(
        "# HELP mailroom_campaign_recipients A live campaign's recipients by state (audience, sent, failed, skipped, possibly_duplicated).\n# TYPE mailroom_campaign_recipients gauge\n\
         # HELP mailroom_campaign_rate A live campaign's recipients sent per second since it started.\n# TYPE mailroom_campaign_rate gauge\n\
         # HELP mailroom_campaign_running 1 for a running campaign, 0 for one paused or scheduled.\n# TYPE mailroom_campaign_running gauge\n",
    );
    for campaign in state.campaigns.list(0, CAMPAIGNS_SCANNED).await? {
        if !matches!(
            campaign.state,
            State::Scheduled | State::Running | State::Paused
        ) {
            continue;
        }
        let id = &campaign.id;
        for (name, value) in [
            ("audience", campaign.audience.unwrap_or(0)),
            ("sent", campaign.sent),
            ("failed", campaign.failed),
            ("skipped", campaign.skipped),
            ("possibly_duplicated", campaign.possibly_duplicated),
        ] {
            let _ = writeln!(
                out,
                "mailroom_campaign_recipients{{campaign=\"{id}\",state=\"{name}\"}} {value}"
            );
        }
        let _ = writeln!(
            out,
            "mailroom_campaign_rate{{campaign=\"{id}\"}} {:.1}\nmailroom_campaign_running{{campaign=\"{id}\"}} {}",
            campaign.rate,
            u8::from(campaign.state == State::Running)
        );
    }
    Ok(out)
}

/// A worker's own listener (`MAILROOM_METRICS_LISTEN`): `GET /metrics` with this process's
/// metrics and `GET /healthz`, until `shutdown`. Bound before it returns, so a port in use
/// stops the worker at start-up instead of later.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve_listener(
    address: std::net::SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<std::net::SocketAddr> {
    use anyhow::Context as _;
    use axum::{Router, http::header, routing::get};
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("MAILROOM_METRICS_LISTEN: could not listen on {address}"))?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    crate::metrics::render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    // The API's own server: header and request time limits, a bounded number in flight.
    let limits = super::server::RequestLimits::new(Duration::from_secs(10), 64);
    tokio::spawn(async move {
        if let Err(error) = super::server::serve_on(listener, router, &limits, shutdown).await {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    tracing::info!(address = %bound, "worker metrics listening");
    Ok(bound)
}
