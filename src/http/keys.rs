//! `/v1/keys`: the stored API keys, made, listed, changed, rotated and revoked. A key is shown
//! once, when it is made or rotated. A key with the `keys` scope cannot give a key a scope it
//! does not have itself.

use axum::{Extension, Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, ApiPath, RawBody, parse_json},
};
use crate::keys::{DEFAULT_GRACE_SECS, Issued, KeyError, KeyRecord, KeySpec};
use crate::store::audit::{Action, AuditEntry};

/// Every stored key, oldest first (the operator keys of `MAILROOM_API_KEYS` are not listed).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyIndex {
    keys: Vec<KeyRecord>,
}

/// How a rotation goes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Rotation {
    /// Seconds the old secret keeps working (default a day, at most 30 days).
    #[serde(default, deserialize_with = "mailroom_jobs::whole::option")]
    #[schema(minimum = 0, maximum = 2592000)]
    grace_secs: Option<u64>,
}

fn refused(error: KeyError) -> ApiError {
    match error {
        KeyError::Invalid { field, message } => ApiError::validation(message).field(field),
        KeyError::NotFound(id) => ApiError::not_found(format!("no key {id}")).field("id"),
        KeyError::TooMany => ApiError::conflict(KeyError::TooMany.to_string()),
        KeyError::Redis(error) => ApiError::from(error),
    }
}

/// A key may give no more than it has.
fn within(caller: &Caller, spec: &KeySpec) -> Result<(), ApiError> {
    match caller
        .scopes
        .first_beyond(spec.scopes.as_deref().unwrap_or_default())
    {
        Some(scope) => Err(ApiError::forbidden(format!(
            "a key cannot give a scope it does not have: {scope}"
        ))
        .field("scopes")),
        None => Ok(()),
    }
}

#[utoipa::path(
    operation_id = "create_key",
    post,
    path = "/v1/keys",
    tag = "keys",
    request_body = KeySpec,
    responses(
        (status = 201, description = "Made: the key is in `key`, shown only now", body = Issued),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `keys` scope, or a scope it would give", body = ErrorBody),
        (status = 409, description = "The most keys already exist", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A field missing or out of range (named)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(spec): ApiJson<KeySpec>,
) -> Result<(StatusCode, Json<Issued>), ApiError> {
    within(&caller, &spec)?;
    let issued = state
        .stored_keys
        .create(spec, &caller.id)
        .await
        .map_err(refused)?;
    tracing::info!(key = %issued.record.id, by = %caller.id, "made an API key");
    (state.audit)
        .record(&caller.id, Action::KeyCreated, &issued.record.id)
        .await;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[utoipa::path(
    operation_id = "list_keys",
    get,
    path = "/v1/keys",
    tag = "keys",
    responses(
        (status = 200, description = "Every stored key, without secrets", body = KeyIndex),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `keys` scope", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn index(State(state): State<AppState>) -> Result<Json<KeyIndex>, ApiError> {
    let keys = state.stored_keys.list().await.map_err(refused)?;
    Ok(Json(KeyIndex { keys }))
}

#[utoipa::path(
    operation_id = "get_key",
    get,
    path = "/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "The key's public id")),
    responses(
        (status = 200, description = "The key, without its secret", body = KeyRecord),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `keys` scope", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<KeyRecord>, ApiError> {
    Ok(Json(state.stored_keys.get(&id).await.map_err(refused)?))
}

#[utoipa::path(
    operation_id = "update_key",
    patch,
    path = "/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "The key's public id")),
    request_body = KeySpec,
    responses(
        (status = 200, description = "Changed (in every process within a second)", body = KeyRecord),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `keys` scope, or a scope it would give", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A field out of range (named)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiJson(spec): ApiJson<KeySpec>,
) -> Result<Json<KeyRecord>, ApiError> {
    within(&caller, &spec)?;
    let record = state.stored_keys.update(&id, spec).await.map_err(refused)?;
    tracing::info!(key = %record.id, by = %caller.id, "changed an API key");
    (state.audit)
        .record(&caller.id, Action::KeyChanged, &record.id)
        .await;
    Ok(Json(record))
}

#[utoipa::path(
    operation_id = "revoke_key",
    delete,
    path = "/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "The key's public id")),
    responses(
        (status = 204, description = "Revoked: refused by every process within a second"),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `keys` scope", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.stored_keys.revoke(&id).await.map_err(refused)?;
    tracing::info!(key = %id, by = %caller.id, "revoked an API key");
    state
        .audit
        .record(&caller.id, Action::KeyRevoked, &id)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    operation_id = "rotate_key",
    post,
    path = "/v1/keys/{id}/rotate",
    tag = "keys",
    params(("id" = String, Path, description = "The key's public id")),
    request_body(content = Option<Rotation>, description = "How long the old secret keeps working; an empty body or `null` means a day"),
    responses(
        (status = 200, description = "A new secret in `key`, shown only now; the old one works until `previous_secret_until`", body = Issued),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `keys` scope", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A grace over 30 days", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn rotate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Json<Issued>, ApiError> {
    let asked = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        parse_json::<Option<Rotation>>(&body)?.and_then(|r| r.grace_secs)
    };
    let grace = asked.unwrap_or(DEFAULT_GRACE_SECS);
    let issued = state
        .stored_keys
        .rotate(&id, grace)
        .await
        .map_err(refused)?;
    tracing::info!(key = %id, by = %caller.id, grace, "rotated an API key");
    state
        .audit
        .record(&caller.id, Action::KeyRotated, &id)
        .await;
    Ok(Json(issued))
}

/// The most audit entries one page holds.
const MAX_AUDIT_PAGE: usize = 1000;

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass it as `cursor` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Which page of the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// An entry's id: the page starts after it.
    #[param(pattern = "^[0-9]{1,19}-[0-9]{1,19}$")]
    cursor: Option<String>,
    /// Entries per page (1 to 1,000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[utoipa::path(
    operation_id = "audit_log",
    get,
    path = "/v1/audit",
    tag = "keys",
    params(AuditQuery),
    responses(
        (status = 200, description = "Who made, changed, rotated or revoked keys, erased subscribers, cancelled campaigns, retried dead letters, changed suppressions: newest first, kept a year", body = AuditPage),
        (status = 400, description = "A cursor or limit that is not one", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `keys` scope", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn audit(
    State(state): State<AppState>,
    super::extract::ApiQuery(query): super::extract::ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(
            ApiError::bad_request(format!("limit is 1 to {MAX_AUDIT_PAGE}")).field("limit"),
        );
    }
    let number = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| p.parse::<u64>().ok())
            .flatten()
    };
    let cursor = match &query.cursor {
        None => None,
        Some(text) => Some(
            (text.split_once('-'))
                .and_then(|(ms, seq)| Some((number(ms)?, number(seq)?)))
                .ok_or_else(|| {
                    ApiError::bad_request("cursor is an entry's id, as next_cursor gives it")
                        .field("cursor")
                })?,
        ),
    };
    let (entries, next_cursor) = state.audit.page(cursor, limit).await?;
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}
