//! The console's forms: each checks the session's token, makes one change through the same
//! stores and functions the API and the command line use, and sends the browser back to the
//! page with a notice (Post/Redirect/Get, so a reload never repeats an action).

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::session::{Posted, Token, Tokened};
use crate::{
    campaigns::{
        lifecycle::{self, Change},
        store::Transition,
    },
    http::AppState,
    queue::QueueAdmin,
    store::{
        Suppression,
        suppressions::{ManualError, Reason},
    },
};
use mailroom_jobs::{CampaignId, QUEUES};

fn back(page: &str, outcome: Result<&str, &str>) -> Response {
    let separator = if page.contains('?') { '&' } else { '?' };
    let to = match outcome {
        Ok(done) => format!("{page}{separator}done={done}"),
        Err(failed) => format!("{page}{separator}failed={failed}"),
    };
    Redirect::to(&to).into_response()
}

fn unavailable(error: &dyn std::fmt::Display, page: &str) -> Response {
    tracing::warn!(%error, "a console action could not reach Redis");
    back(page, Err("unavailable"))
}

/// A known queue's name, or none (a path the console never links to).
fn queue_named(name: &str) -> Option<&'static str> {
    QUEUES.iter().find(|q| **q == name).copied()
}

/// `POST /console/dead/{queue}/{id}/{retry|delete}`: one dead letter back in its queue (its
/// attempts reset), or gone with its record.
pub async fn letter(
    State(state): State<AppState>,
    Path((queue, id, action)): Path<(String, String, String)>,
    Posted { session, .. }: Posted<Token>,
) -> Response {
    let Some(queue) = queue_named(&queue) else {
        return back("/console/dead", Err("gone"));
    };
    let page = format!("/console/dead?queue={queue}");
    let admin = QueueAdmin::new(state.producer.connection(), state.prefix.clone());
    let (done, outcome) = match action.as_str() {
        "retry" => ("retried", admin.retry(queue, &id).await),
        "delete" => ("deleted", admin.delete(queue, &id).await),
        _ => return back(&page, Err("gone")),
    };
    match outcome {
        Ok(true) => {
            tracing::info!(%queue, job = %id, %action, who = %session.who, "dead letter handled from the console");
            if action == "retry" {
                let retried = crate::store::audit::Action::DeadLettersRetried;
                state
                    .audit
                    .record(&session.who, retried, &format!("{queue}/{id}"))
                    .await;
            }
            back(&page, Ok(done))
        }
        Ok(false) => back(&page, Err("gone")),
        Err(error) => unavailable(&error, &page),
    }
}

/// `POST /console/dead/{queue}/retry-all`.
pub async fn retry_all(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    Posted { session, .. }: Posted<Token>,
) -> Response {
    let Some(queue) = queue_named(&queue) else {
        return back("/console/dead", Err("gone"));
    };
    let page = format!("/console/dead?queue={queue}");
    let admin = QueueAdmin::new(state.producer.connection(), state.prefix.clone());
    match admin.retry_all(queue).await {
        Ok(count) => {
            tracing::info!(%queue, count, who = %session.who, "dead letters retried from the console");
            let retried = crate::store::audit::Action::DeadLettersRetried;
            state
                .audit
                .record(&session.who, retried, &format!("{queue}/*"))
                .await;
            back(&page, Ok("retried-all"))
        }
        Err(error) => unavailable(&error, &page),
    }
}

/// `POST /console/campaigns/{id}/{pause|resume|cancel}`.
pub async fn campaign(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    Posted { session, .. }: Posted<Token>,
) -> Response {
    const PAGE: &str = "/console/campaigns";
    let (change, done) = match action.as_str() {
        "pause" => (Change::Pause, "paused"),
        "resume" => (Change::Resume, "resumed"),
        "cancel" => (Change::Cancel, "cancelled"),
        _ => return back(PAGE, Err("gone")),
    };
    let Some(uuid) = CampaignId::parse(&id) else {
        return back(PAGE, Err("gone"));
    };
    match lifecycle::change(&state.campaigns, &state.producer, uuid, change).await {
        Ok(Transition::Done(..)) => {
            tracing::info!(campaign = %uuid, action = %action, who = %session.who, "campaign changed from the console");
            if change == Change::Cancel {
                let cancelled = crate::store::audit::Action::CampaignCancelled;
                state
                    .audit
                    .record(&session.who, cancelled, &uuid.to_string())
                    .await;
            }
            back(PAGE, Ok(done))
        }
        Ok(Transition::Missing) => back(PAGE, Err("gone")),
        Ok(Transition::Refused(_)) => back(PAGE, Err("state")),
        Err(error) => unavailable(&error, PAGE),
    }
}

/// The add-a-suppression form.
#[derive(Debug, Deserialize)]
pub struct NewSuppression {
    csrf: String,
    email: String,
    #[serde(default)]
    detail: String,
}

impl Tokened for NewSuppression {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/suppressions`.
pub async fn suppress(
    State(state): State<AppState>,
    Posted { session, form }: Posted<NewSuppression>,
) -> Response {
    const PAGE: &str = "/console/suppressions";
    let record = match Suppression::by_operator(
        form.email.trim(),
        Reason::Manual,
        "console",
        Some(&form.detail),
    ) {
        Ok(record) => record,
        Err(ManualError::Address(_)) => return back(PAGE, Err("address")),
        Err(ManualError::Detail) => return back(PAGE, Err("detail")),
    };
    match state.suppressions.put(&record).await {
        Ok(()) => {
            tracing::info!(who = %session.who, "address suppressed from the console");
            let added = crate::store::audit::Action::SuppressionAdded;
            let target = crate::store::audit::address(&record.email);
            state.audit.record(&session.who, added, &target).await;
            back(PAGE, Ok("suppressed"))
        }
        Err(error) => unavailable(&error, PAGE),
    }
}

/// The lift-a-suppression form.
#[derive(Debug, Deserialize)]
pub struct Lift {
    csrf: String,
    email: String,
}

impl Tokened for Lift {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/suppressions/remove`.
pub async fn lift(
    State(state): State<AppState>,
    Posted { session, form }: Posted<Lift>,
) -> Response {
    const PAGE: &str = "/console/suppressions";
    match state.suppressions.delete(form.email.trim()).await {
        Ok(true) => {
            tracing::info!(who = %session.who, "suppression lifted from the console");
            let lifted = crate::store::audit::Action::SuppressionLifted;
            state
                .audit
                .record(
                    &session.who,
                    lifted,
                    &crate::store::audit::address(&form.email),
                )
                .await;
            back(PAGE, Ok("lifted"))
        }
        Ok(false) => back(PAGE, Err("gone")),
        Err(error) => unavailable(&error, PAGE),
    }
}

/// `POST /console/keys/{id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { session, .. }: Posted<Token>,
) -> Response {
    const PAGE: &str = "/console/keys";
    match state.stored_keys.revoke(&id).await {
        Ok(()) => {
            tracing::info!(key = %id, who = %session.who, "key revoked from the console");
            let revoked = crate::store::audit::Action::KeyRevoked;
            state.audit.record(&session.who, revoked, &id).await;
            back(PAGE, Ok("revoked"))
        }
        Err(crate::keys::KeyError::NotFound(_)) => back(PAGE, Err("gone")),
        Err(error) => unavailable(&error, PAGE),
    }
}
