//! `GET /healthz` (the process is up) and `GET /readyz` (Redis answers and the queue's push
//! script is loaded, so a push will work).

use axum::{extract::State, http::StatusCode};

use super::AppState;

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
        (status = 200, description = "Redis answers and the push script is loaded", body = String),
        (status = 503, description = "Not ready", body = String)
    )
)]
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.producer.ready().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable")
        }
    }
}
