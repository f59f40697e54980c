//! The webhooks page: every service's endpoint with its state and its newest delivery attempts,
//! and the operator's actions on it: disable, enable, replay the last day.
//!
//! It shows every key's endpoints, so besides `webhooks` (its route's rule) it needs
//! `emails:read_all`, as reading every key's mail does.

use askama::Template;
use axum::{
    Extension,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use chrono::Utc;

use super::{AppState, Chrome, Flash, Session, page, trouble, when};
use crate::{
    console::session::{Posted, Token},
    hooks::{EndpointSpec, HookError, log::Delivery, replay::ReplaySpec},
    keys::Scope,
};

/// The attempts shown per endpoint.
const SHOWN: usize = 10;
const PAGE: &str = "/console/webhooks";

struct AttemptRow {
    at: String,
    kind: String,
    attempt: u32,
    status: String,
    delivered: bool,
    duration_ms: u64,
}

struct EndpointRow {
    id: String,
    url: String,
    events: String,
    owner: String,
    disabled: Option<String>,
    failing_since: Option<String>,
    attempts: Vec<AttemptRow>,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct HooksPage {
    chrome: Chrome,
    endpoints: Vec<EndpointRow>,
}

fn attempt_row(d: Delivery) -> AttemptRow {
    AttemptRow {
        at: when(d.at),
        kind: d.kind.map_or_else(|| "?".to_owned(), |k| k.to_string()),
        attempt: d.attempt,
        status: d
            .status
            .map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
        delivered: d.delivered,
        duration_ms: d.duration_ms,
    }
}

fn forbidden() -> Response {
    let why = "this page shows every service's endpoints: it needs a key with emails:read_all";
    (StatusCode::FORBIDDEN, why).into_response()
}

/// `GET /console/webhooks`.
pub async fn hooks(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(flash): Query<Flash>,
) -> Response {
    if !session.scopes.allows(Scope::EmailsReadAll) {
        return forbidden();
    }
    let chrome = Chrome::new(&session, "Webhooks", PAGE, &flash);
    let Ok(all) = state.hooks.all().await else {
        return trouble("the webhook endpoints could not be read");
    };
    let log = state.hooks.log();
    let mut endpoints = Vec::with_capacity(all.len());
    for stored in all {
        let Ok(recent) = log.recent(&stored.endpoint.id, SHOWN).await else {
            return trouble("the deliveries could not be read");
        };
        let endpoint = stored.endpoint;
        endpoints.push(EndpointRow {
            events: (endpoint.events.iter())
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            owner: endpoint.owner.unwrap_or_else(|| "operator".to_owned()),
            failing_since: stored.failing_since.map(when),
            attempts: recent.into_iter().map(attempt_row).collect(),
            id: endpoint.id,
            url: endpoint.url,
            disabled: endpoint.disabled,
        });
    }
    page(&HooksPage { chrome, endpoints })
}

/// `POST /console/webhooks/{id}/{disable|enable|replay}`.
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    Posted { session, .. }: Posted<Token>,
) -> Response {
    if !session.scopes.allows(Scope::EmailsReadAll) {
        return forbidden();
    }
    let done = match action.as_str() {
        "disable" | "enable" => {
            let spec = EndpointSpec {
                disabled: Some(action == "disable"),
                ..EndpointSpec::default()
            };
            (state.hooks.update(&id, None, spec).await).map(|_| {
                if action == "disable" {
                    "hook-disabled"
                } else {
                    "hook-enabled"
                }
            })
        }
        "replay" => replay_day(&state, &id).await,
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    tracing::info!(webhook = %id, who = %session.who, %action, ok = done.is_ok(), "a webhook action from the console");
    let to = match done {
        Ok(code) => format!("{PAGE}?done={code}"),
        Err(HookError::NotFound(_)) => format!("{PAGE}?failed=gone"),
        Err(error) => {
            tracing::warn!(%error, "a console webhook action failed");
            format!("{PAGE}?failed=unavailable")
        }
    };
    Redirect::to(&to).into_response()
}

async fn replay_day(state: &AppState, id: &str) -> Result<&'static str, HookError> {
    let stored = state.hooks.get(id, None).await?;
    let spec = ReplaySpec {
        since: Utc::now() - chrono::Duration::days(1),
        until: None,
        types: None,
    };
    crate::hooks::replay::replay(&state.hooks.log(), &state.producer, &stored, &spec).await?;
    Ok("hook-replayed")
}
