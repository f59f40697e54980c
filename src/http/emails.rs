//! `POST /v1/emails` and `GET /v1/emails/{id}`.

use axum::{Extension, Json, extract::State, http::StatusCode};
use mailroom_jobs::{EmailMessage, EnqueueOptions, Job, PushError, Pushed, SendEmail, Valid};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::request_id::RequestId;
use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorBody, ErrorDetail},
    extract::{ApiJson, ApiPath, ApiQuery, IdempotencyKeyHeader},
};
use crate::domain::MessageId;
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
    .ok_or_else(|| ApiError::not_found(format!("no list {list}")).field("list_id"))?;
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
        (status = 404, description = "Its `list_id` names no list", body = ErrorBody),
        (status = 422, description = "Invalid message, or an Idempotency-Key reused for another one", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn send(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request_id: RequestId,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    ApiJson(mut message): ApiJson<EmailMessage>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if let Some(key) = key {
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
    let (job, options) = checked(&state, &caller, &request_id, message).await?;
    let (pushed, suppressed) = state
        .coalescer
        .push(job, options)
        .await
        .map_err(push_refused)?;
    let accepted = answer(&state, pushed, suppressed, caller.limits).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// The job that sends `message`, if it may be sent (its own checks, and list mail's), with its
/// idempotency key scoped to `caller` and the request's id for the worker's logs.
async fn checked(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    mut message: EmailMessage,
) -> Result<(Valid<SendEmail>, EnqueueOptions), ApiError> {
    own_message(caller, &mut message)?;
    let job = SendEmail::new(message)
        .with_request_id(request_id.for_job())
        .checked()
        .map_err(|e| ApiError::validation(e.message).field(e.field))?;
    let message = &job.message;
    if let Some(list) = message.list_id {
        check_list_mail(state, list, &message.to[0].email).await?;
    }
    if message.tracking.is_some_and(mailroom_jobs::Tracking::any) {
        if state.own_tracking && state.links.is_none() {
            return Err(ApiError::validation(
                "tracking needs signed links: the operator must set MAILROOM_LINK_KEYS",
            )
            .field("tracking"));
        }
        if let Some(category) = message
            .categories
            .iter()
            .find(|c| state.transactional.contains(c))
        {
            return Err(ApiError::validation(format!(
                "{category} is a transactional category (MAILROOM_TRANSACTIONAL_CATEGORIES): its mail is never tracked"
            ))
            .field("tracking"));
        }
    }
    check_sender(state, caller, message.from.as_ref())?;
    let mut options = job.enqueue_options();
    options.idempotency_key = options.idempotency_key.map(|key| caller.scoped(&key));
    options.owner.clone_from(&caller.stored);
    options.limits = caller.limits;
    Ok((job, options))
}

/// Names the stored key that queues `message` in its metadata, which the providers hand back on
/// its events (the key's stats); a caller may not name one itself.
fn own_message(caller: &Caller, message: &mut EmailMessage) -> Result<(), ApiError> {
    let name = mailroom_jobs::KEY_METADATA;
    if message.metadata.contains_key(name) {
        return Err(ApiError::validation(format!(
            "{name} is reserved: mailroom sets it to the key that queued the message"
        ))
        .field(format!("metadata.{name}")));
    }
    if let Some(id) = &caller.stored {
        message.metadata.insert(name.to_owned(), id.clone());
    }
    Ok(())
}

/// A key with sender domains sends only from them; without a `from`, the operator's default
/// sender counts only when its domain is one of them.
fn check_sender(
    state: &AppState,
    caller: &Caller,
    from: Option<&mailroom_jobs::Mailbox>,
) -> Result<(), ApiError> {
    let Some(domains) = &caller.from_domains else {
        return Ok(());
    };
    let address = from.map_or(state.default_from.as_str(), |m| m.email.as_str());
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase());
    if domain.is_some_and(|d| domains.contains(&d)) {
        return Ok(());
    }
    let shown = if from.is_some() {
        address
    } else {
        "the default sender (MAILROOM_FROM)"
    };
    Err(ApiError::validation(format!(
        "this key sends only from {}: not from {shown}",
        domains.join(", ")
    ))
    .field("from"))
}

fn push_refused(error: PushError) -> ApiError {
    match error {
        PushError::Invalid { reason, .. } => ApiError::validation(reason),
        PushError::Serialize(e) => ApiError::validation(e.to_string()),
        PushError::Redis(e) => ApiError::from(e),
    }
}

/// The answer to a push: its id and where the message stands (an idempotent repeat answers
/// the first message's status), or 422 for a key reused for another message.
async fn answer(
    state: &AppState,
    pushed: Pushed,
    suppressed: Vec<String>,
    limits: mailroom_jobs::OwnerLimits,
) -> Result<Accepted, ApiError> {
    if pushed.conflict {
        return Err(ApiError::idempotency_conflict());
    }
    if let Some(limited) = pushed.limited {
        return Err(limited_by(limited, limits));
    }
    let status = match MessageId::parse(&pushed.id).filter(|_| pushed.duplicate) {
        Some(first) => (state.status.get(first).await?).map_or(MessageStatus::Queued, |r| r.status),
        None => MessageStatus::Queued,
    };
    Ok(Accepted {
        id: pushed.id,
        status,
        suppressed,
    })
}

/// The 429 of a push its key's limits refused.
fn limited_by(limited: mailroom_jobs::Limited, limits: mailroom_jobs::OwnerLimits) -> ApiError {
    let seconds = |wait: std::time::Duration| wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    match limited {
        mailroom_jobs::Limited::PerSecond(wait) => {
            let quota = u64::from(limits.per_second.unwrap_or_default());
            ApiError::key_limited("per-second", quota, 1, seconds(wait).max(1))
        }
        mailroom_jobs::Limited::PerDay(wait) => {
            let quota = limits.per_day.unwrap_or_default();
            ApiError::key_limited("daily", quota, 86_400, seconds(wait).max(1))
        }
    }
}

/// The most messages one batch takes.
pub(super) const MAX_BATCH: usize = 1000;

/// Up to 1,000 messages to queue in one request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EmailBatch {
    /// The messages (1 to 1,000), each what `POST /v1/emails` takes; each may carry its own
    /// `idempotency_key`.
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<EmailMessage>)]
    messages: Vec<Box<serde_json::value::RawValue>>,
}

/// Each message's outcome, in the order sent.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct BatchAccepted {
    /// How many were queued (or answered for by an earlier push with their idempotency key).
    accepted: usize,
    /// How many were refused.
    rejected: usize,
    results: Vec<BatchItem>,
}

/// One message's outcome: `id` and `status` (and `suppressed`) when queued, `error` when
/// refused.
// One flat object rather than a oneOf merged in with allOf: client generators drop the fields
// of such a merge.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct BatchItem {
    /// Its place in `messages`, from 0.
    index: usize,
    /// When queued: the message id, as `POST /v1/emails` answers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// When queued: `queued`.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<MessageStatus>,
    /// When queued: recipients on the suppression list (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    suppressed: Vec<String>,
    /// When refused: what was wrong; `field` is within the message (`to[0].email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
}

impl BatchItem {
    /// Message `index`'s item for its `outcome`.
    fn new(index: usize, outcome: Result<Accepted, ErrorDetail>) -> Self {
        match outcome {
            Ok(accepted) => Self {
                index,
                id: Some(accepted.id),
                status: Some(accepted.status),
                suppressed: accepted.suppressed,
                error: None,
            },
            Err(error) => Self {
                index,
                id: None,
                status: None,
                suppressed: Vec::new(),
                error: Some(error),
            },
        }
    }
}

/// Queue up to 1,000 emails in one request. Each message is checked on its own and answered by
/// its index; the valid ones are queued in pipelined pushes (one Redis round trip per 1,000).
/// An invalid message does not hold up the others. Retrying a batch is safe for the messages
/// that carry an `idempotency_key`.
#[utoipa::path(
    post,
    path = "/v1/emails/batch",
    tag = "emails",
    request_body = EmailBatch,
    responses(
        (status = 200, description = "Each message's outcome, by index", body = BatchAccepted),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Not a batch: no messages, more than 1,000, or an Idempotency-Key header (put the key on each message)", body = ErrorBody),
        (status = 503, description = "Redis unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn send_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request_id: RequestId,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    ApiJson(batch): ApiJson<EmailBatch>,
) -> Result<Json<BatchAccepted>, ApiError> {
    if key.is_some() {
        return Err(ApiError::validation(
            "a batch takes no Idempotency-Key header: set idempotency_key on each message",
        )
        .field("Idempotency-Key"));
    }
    if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH {
        return Err(ApiError::validation(format!(
            "a batch holds 1 to {MAX_BATCH} messages, not {}",
            batch.messages.len()
        ))
        .field("messages"));
    }
    // Checked concurrently (list mail looks its list and subscriber up).
    let checked = futures::future::join_all(batch.messages.iter().map(|raw| async {
        let message: EmailMessage = super::extract::parse_json(raw.get().as_bytes())?;
        checked(&state, &caller, &request_id, message).await
    }))
    .await;
    let mut valid = Vec::new();
    let mut outcomes: Vec<Option<Result<Accepted, ApiError>>> = Vec::with_capacity(checked.len());
    for item in checked {
        match item {
            Ok(job) => {
                valid.push(job);
                outcomes.push(None);
            }
            // Mailroom's own trouble (Redis) fails the batch before anything is queued.
            Err(error) if !error.is_client_error() => return Err(error),
            Err(error) => outcomes.push(Some(Err(error))),
        }
    }
    let mut pushed = super::coalesce::lookup_and_push(
        &state.producer,
        &state.suppressions,
        &state.transactional,
        &valid,
    )
    .await?
    .into_iter();
    for outcome in &mut outcomes {
        if outcome.is_none()
            && let Some((result, suppressed)) = pushed.next()
        {
            let accepted = match result {
                Ok(pushed) => answer(&state, pushed, suppressed, caller.limits).await,
                Err(refused) => Err(push_refused(refused)),
            };
            *outcome = Some(accepted);
        }
    }
    let results: Vec<BatchItem> = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| {
            let outcome = match outcome {
                Some(Ok(accepted)) => Ok(accepted),
                Some(Err(error)) => Err(error.detail()),
                None => Err(ApiError::internal(&"no answer for this message").detail()),
            };
            BatchItem::new(index, outcome)
        })
        .collect();
    let accepted = results.iter().filter(|r| r.error.is_none()).count();
    Ok(Json(BatchAccepted {
        accepted,
        rejected: results.len() - accepted,
        results,
    }))
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
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<StatusQuery>,
) -> Result<Json<StatusRecord>, ApiError> {
    let not_found = || ApiError::not_found(format!("no message {id}")).field("id");
    let id = MessageId::parse(&id).ok_or_else(not_found)?;
    let limit = query.recipients_limit.unwrap_or(DEFAULT_RECIPIENTS_PAGE);
    if !(1..=MAX_RECIPIENTS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "recipients_limit is 1 to {MAX_RECIPIENTS_PAGE}"
        ))
        .field("recipients_limit"));
    }
    let record = state.status.get(id).await?.ok_or_else(not_found)?;
    // Another service's message is not there, as far as this key can tell.
    if !caller.may_read(record.owner.as_deref()) {
        return Err(not_found());
    }
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
