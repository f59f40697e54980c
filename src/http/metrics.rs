//! `GET /metrics`: the queues in Prometheus' text format, read from Redis on each scrape, so
//! every API process reports the same numbers whichever one is scraped.

use std::fmt::Write;

use axum::{extract::State, http::header, response::IntoResponse};

use super::{AppState, error::ApiError};
use crate::{cli::QUEUES, queue::QueueAdmin};

/// The queues' gauges and counters.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text format: mailroom_queue_jobs{queue,state}, mailroom_queue_jobs_total{queue,outcome}, mailroom_queue_workers{queue}", body = String, content_type = "text/plain"))
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
    }
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
        gauges + &counters + &workers,
    ))
}
