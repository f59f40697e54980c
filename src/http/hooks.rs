//! `/v1/webhooks`: the endpoints a service registers to receive events, made, listed, changed,
//! rotated and deleted. An endpoint's secret is shown when it is made or rotated; a stored key
//! sees and changes only its own endpoints (an operator key, every one).

use axum::{Extension, Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::{
    hooks::{
        Endpoint, EndpointSpec, EventType, HookError, WithSecret,
        log::Delivery,
        replay::{self, ReplaySpec, Replayed, TestSent, TestSpec},
    },
    keys::Scope,
};

/// The endpoints the caller sees, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EndpointIndex {
    webhooks: Vec<Endpoint>,
}

fn refused(error: HookError) -> ApiError {
    match error {
        HookError::Invalid { field, message } => ApiError::validation(message).field(field),
        HookError::NotFound(id) => {
            ApiError::not_found(format!("no webhook endpoint {id}")).field("id")
        }
        HookError::TooMany => ApiError::conflict(HookError::TooMany.to_string()),
        HookError::NoSigningKey => ApiError::conflict(HookError::NoSigningKey.to_string()),
        HookError::Redis(error) => ApiError::from(error),
    }
}

/// The scope that reads what an event type tells of, beyond a key's own mail: mail received,
/// lists and imports, campaigns.
fn scope_to_hear(kind: EventType) -> Option<Scope> {
    match kind {
        EventType::InboundReceived => Some(Scope::EmailsReadAll),
        EventType::SubscriberSubscribed
        | EventType::SubscriberConfirmed
        | EventType::SubscriberUnsubscribed
        | EventType::ImportFinished => Some(Scope::ListsRead),
        EventType::CampaignStarted | EventType::CampaignPaused | EventType::CampaignFinished => {
            Some(Scope::Campaigns)
        }
        _ => None,
    }
}

/// An endpoint asks only for the events its key may read.
fn check_hearing(caller: &Caller, spec: &EndpointSpec) -> Result<(), ApiError> {
    let beyond = (spec.events.iter().flatten())
        .filter_map(|kind| scope_to_hear(*kind))
        .find(|scope| !caller.may(*scope));
    match beyond {
        Some(scope) => Err(ApiError::missing_scope(scope.as_str()).field("events")),
        None => Ok(()),
    }
}

#[utoipa::path(
    operation_id = "create_webhook",
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = EndpointSpec,
    responses(
        (status = 201, description = "Made: its secret is in `secret`, shown only now", body = WithSecret),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `webhooks` scope, or the scope that reads an event type it asks for (`emails:read_all` for `inbound.received`, `lists:read` for `subscriber.*` and `import.finished`, `campaigns` for `campaign.*`)", body = ErrorBody),
        (status = 409, description = "The most endpoints already exist, or the operator has not set MAILROOM_WEBHOOK_SIGNING_KEY", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A field missing or not allowed (named): a URL that is not https://, carries credentials or points at a private address", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(spec): ApiJson<EndpointSpec>,
) -> Result<(StatusCode, Json<WithSecret>), ApiError> {
    check_hearing(&caller, &spec)?;
    // An endpoint hears of the mail its key may read: its own, or every key's.
    let sees_all = caller.may(crate::keys::Scope::EmailsReadAll);
    let made = (state.hooks)
        .create(spec, caller.stored.as_deref(), sees_all, &caller.id)
        .await
        .map_err(refused)?;
    tracing::info!(webhook = %made.endpoint.id, by = %caller.id, "made a webhook endpoint");
    Ok((StatusCode::CREATED, Json(made)))
}

#[utoipa::path(
    operation_id = "list_webhooks",
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "The caller's endpoints (an operator key's: all), without secrets", body = EndpointIndex),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `webhooks` scope", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn index(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<EndpointIndex>, ApiError> {
    let webhooks = (state.hooks)
        .list(caller.stored.as_deref())
        .await
        .map_err(refused)?;
    Ok(Json(EndpointIndex { webhooks }))
}

#[utoipa::path(
    operation_id = "get_webhook",
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint, without its secret", body = Endpoint),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `webhooks` scope", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another key's)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Endpoint>, ApiError> {
    let stored = (state.hooks)
        .get(&id, caller.stored.as_deref())
        .await
        .map_err(refused)?;
    Ok(Json(stored.endpoint))
}

#[utoipa::path(
    operation_id = "update_webhook",
    patch,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = EndpointSpec,
    responses(
        (status = 200, description = "Changed", body = Endpoint),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `webhooks` scope, or the scope that reads an event type it asks for", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another key's)", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A field not allowed (named)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(spec): ApiJson<EndpointSpec>,
) -> Result<Json<Endpoint>, ApiError> {
    check_hearing(&caller, &spec)?;
    let endpoint = (state.hooks)
        .update(&id, caller.stored.as_deref(), spec)
        .await
        .map_err(refused)?;
    tracing::info!(webhook = %endpoint.id, by = %caller.id, "changed a webhook endpoint");
    Ok(Json(endpoint))
}

#[utoipa::path(
    operation_id = "delete_webhook",
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Deleted: nothing more is delivered to it"),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `webhooks` scope", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another key's)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    (state.hooks)
        .delete(&id, caller.stored.as_deref())
        .await
        .map_err(refused)?;
    tracing::info!(webhook = %id, by = %caller.id, "deleted a webhook endpoint");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    operation_id = "rotate_webhook",
    post,
    path = "/v1/webhooks/{id}/rotate",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "A new secret, shown only now; the one before keeps signing beside it for 24 hours", body = WithSecret),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `webhooks` scope", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another key's)", body = ErrorBody),
        (status = 409, description = "The operator has not set MAILROOM_WEBHOOK_SIGNING_KEY", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn rotate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WithSecret>, ApiError> {
    let rotated = (state.hooks)
        .rotate(&id, caller.stored.as_deref())
        .await
        .map_err(refused)?;
    tracing::info!(webhook = %id, by = %caller.id, "rotated a webhook endpoint's secret");
    Ok(Json(rotated))
}

/// An endpoint's newest delivery attempts.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeliveryIndex {
    deliveries: Vec<Delivery>,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeliveriesQuery {
    /// Attempts to show (1 to 1,000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[utoipa::path(
    operation_id = "webhook_deliveries",
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"), DeliveriesQuery),
    responses(
        (status = 200, description = "Its newest attempts, newest first: one per event and attempt, kept 7 days (the newest 1,000)", body = DeliveryIndex),
        (status = 400, description = "A limit that is not one", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `webhooks` scope", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another key's)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryIndex>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=crate::hooks::log::KEPT).contains(&limit) {
        return Err(ApiError::bad_request("limit is 1 to 1000").field("limit"));
    }
    let stored = (state.hooks)
        .get(&id, caller.stored.as_deref())
        .await
        .map_err(refused)?;
    let mut deliveries = state.hooks.log().recent(&stored.endpoint.id, limit).await?;
    for delivery in &mut deliveries {
        delivery.body = None;
    }
    Ok(Json(DeliveryIndex { deliveries }))
}

#[utoipa::path(
    operation_id = "replay_webhook",
    post,
    path = "/v1/webhooks/{id}/replay",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = ReplaySpec,
    responses(
        (status = 202, description = "Queued again, oldest first and each event once (same `webhook-id`): what its log holds for the window, delivered or failed", body = Replayed),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `webhooks` scope", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another key's)", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A window that is not one (named)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn replay(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(spec): ApiJson<ReplaySpec>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let stored = (state.hooks)
        .get(&id, caller.stored.as_deref())
        .await
        .map_err(refused)?;
    let replayed = replay::replay(&state.hooks.log(), &state.producer, &stored, &spec)
        .await
        .map_err(refused)?;
    tracing::info!(webhook = %id, by = %caller.id, queued = replayed.queued, "replayed a webhook endpoint's events");
    Ok((StatusCode::ACCEPTED, Json(replayed)))
}

#[utoipa::path(
    operation_id = "test_webhook",
    post,
    path = "/v1/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = TestSpec,
    responses(
        (status = 202, description = "A test event queued (`data.test` is true), signed and delivered like any other", body = TestSent),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `webhooks` scope", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another key's)", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A type the endpoint does not take", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn test(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(spec): ApiJson<TestSpec>,
) -> Result<(StatusCode, Json<TestSent>), ApiError> {
    let stored = (state.hooks)
        .get(&id, caller.stored.as_deref())
        .await
        .map_err(refused)?;
    let sent = replay::test(&state.producer, &stored, &spec)
        .await
        .map_err(refused)?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}
