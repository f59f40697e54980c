//! `GET /healthz` (the process is up) and `GET /readyz` (Redis answers, has room, keeps what it
//! is given, and the queue's push script is loaded, so a push will work). Writes refused while
//! Redis's policy may evict them: [`super::server::Edge`].

use axum::{extract::State, http::StatusCode};

use super::AppState;
use crate::store::RedisFacts;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Up", body = String)))]
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// Ready to take requests.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Redis answers, has room and evicts nothing; the push script is loaded", body = String),
        (status = 503, description = "Not ready, and why: `redis unavailable`, `redis full: …`, `redis evicts: …`", body = String)
    )
)]
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let not_ready = |why: String| {
        tracing::warn!(reason = %why, "not ready");
        (StatusCode::SERVICE_UNAVAILABLE, why)
    };
    if let Some(policy) = state.guard.refusing() {
        return not_ready(format!(
            "redis evicts: maxmemory-policy is {policy}, which may delete queued mail"
        ));
    }
    if let Err(error) = state.producer.ready().await {
        tracing::warn!(%error, "Redis did not answer the readiness check");
        return not_ready("redis unavailable".to_owned());
    }
    match RedisFacts::read(&mut state.producer.connection()).await {
        Ok(facts) if facts.full() => not_ready(format!(
            "redis full: {} of {} bytes used (maxmemory); writes are refused",
            facts.used_memory, facts.max_memory
        )),
        Ok(_) => (StatusCode::OK, "ready".to_owned()),
        Err(error) => {
            tracing::warn!(%error, "Redis did not answer INFO");
            not_ready("redis unavailable".to_owned())
        }
    }
}
