//! `POST /v1/emails` and `GET /v1/emails/{id}`.

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use mailroom_jobs::{EmailMessage, Job, PushError, SendEmail};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::store::{MessageStatus, StatusRecord};

/// The answer to an accepted message.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Accepted {
    /// The message id (a UUID v7): ask `GET /v1/emails/{id}` how it went.
    pub id: String,
    /// Where it stands now: `queued` for a new message.
    pub status: MessageStatus,
    /// Recipients on the suppression list: they will be skipped (unless a category is
    /// transactional). Absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<String>,
}

/// List mail needs the list, a confirmed subscriber to send to, and keys to sign the link.
async fn check_list_mail(state: &AppState, list: u64, email: &str) -> Result<(), ApiError> {
    if state.links.is_none() {
        return Err(ApiError::validation(
            "list mail needs signed unsubscribe links: the operator must set MAILROOM_LINK_KEYS",
        )
        .field("list_id"));
    }
    let list = match crate::domain::ListId::new(list) {
        Some(id) => state.lists.list(id).await?,
        None => None,
    }
    .ok_or_else(|| ApiError::validation(format!("no list {list}")).field("list_id"))?;
    let key = mailroom_jobs::address::case_key(email);
    let confirmed = match state.lists.find(&key).await? {
        Some(id) => state
            .lists
            .subscriptions(id, &[list.id])
            .await?
            .first()
            .is_some_and(|s| s.status == crate::lists::SubscriptionStatus::Confirmed),
        None => false,
    };
    if !confirmed {
        return Err(ApiError::validation(format!(
            "{email} is not a confirmed subscriber of list {}",
            list.id
        ))
        .field("to[0].email"));
    }
    Ok(())
}

/// Queue an email. It is validated, queued and answered with 202; a worker sends it.
#[utoipa::path(
    post,
    path = "/v1/emails",
    tag = "emails",
    request_body = EmailMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key within 24 h returns the first message's id and sends nothing more; with a different body it is refused (422).")),
    responses(
        (status = 202, description = "Queued", body = Accepted),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid message, or an Idempotency-Key reused for another one", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn send(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(mut message): ApiJson<EmailMessage>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if let Some(key) = headers.get("idempotency-key") {
        let key = key.to_str().map_err(|_| {
            ApiError::validation("the Idempotency-Key header is not text").field("Idempotency-Key")
        })?;
        match &message.idempotency_key {
            Some(body_key) if body_key != key => {
                return Err(ApiError::validation(
                    "the Idempotency-Key header and idempotency_key differ",
                )
                .field("idempotency_key"));
            }
            _ => message.idempotency_key = Some(key.to_owned()),
        }
    }
    message
        .check()
        .map_err(|e| ApiError::validation(e.message).field(e.field))?;
    if let Some(list) = message.list_id {
        check_list_mail(&state, list, &message.to[0].email).await?;
    }
    let suppressed = state
        .suppressions
        .suppressed_recipients(&message, &state.transactional)
        .await?;
    let job = SendEmail::new(message);
    let mut options = job.enqueue_options();
    options.idempotency_key = options.idempotency_key.map(|key| caller.scoped(&key));
    let pushed = state
        .producer
        .push_with(&job, options)
        .await
        .map_err(|e| match e {
            PushError::Invalid { reason, .. } => ApiError::validation(reason),
            PushError::Serialize(e) => ApiError::validation(e.to_string()),
            PushError::Redis(e) => ApiError::from(e),
        })?;
    if pushed.conflict {
        return Err(ApiError::idempotency_conflict());
    }
    let status = if pushed.duplicate {
        state
            .status
            .get(&pushed.id)
            .await?
            .map_or(MessageStatus::Queued, |r| r.status)
    } else {
        MessageStatus::Queued
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id: pushed.id,
            status,
            suppressed,
        }),
    ))
}

/// A message's status record.
#[utoipa::path(
    get,
    path = "/v1/emails/{id}",
    tag = "emails",
    params(
        ("id" = String, Path, description = "The message id returned when it was queued"),
        StatusQuery,
    ),
    responses(
        (status = 200, description = "The status record", body = StatusRecord),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 404, description = "No such message (or its record expired)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn status(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<StatusQuery>,
) -> Result<Json<StatusRecord>, ApiError> {
    let not_found = || ApiError::not_found(format!("no message {id}")).field("id");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?.to_string();
    let limit = query.recipients_limit.unwrap_or(DEFAULT_RECIPIENTS_PAGE);
    if !(1..=MAX_RECIPIENTS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "recipients_limit is 1 to {MAX_RECIPIENTS_PAGE}"
        ))
        .field("recipients_limit"));
    }
    let record = state.status.get(&id).await?.ok_or_else(not_found)?;
    Ok(Json(record.page_recipients(
        query.recipients_cursor.as_deref(),
        limit,
    )))
}

/// Recipients per page of a status record, unless asked otherwise.
const DEFAULT_RECIPIENTS_PAGE: usize = 100;
/// The most recipients one page shows (a message has at most 1,000).
const MAX_RECIPIENTS_PAGE: usize = 1000;

/// Which recipients a status record shows.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StatusQuery {
    /// Recipients per page (1 to 1,000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    recipients_limit: Option<usize>,
    /// The previous page's `recipients_next_cursor`.
    recipients_cursor: Option<String>,
}
