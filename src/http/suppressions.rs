//! `/v1/suppressions`: the list of addresses mailroom will not send to, and `/v1/stats`: the
//! daily counters SendGrid's events feed.

use axum::{Json, extract::State, http::StatusCode};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::store::{
    Suppression,
    stats::{Filter, MAX_DAYS, Stats},
    suppressions::{ManualError, Reason, SuppressionPage},
};

/// The largest page.
const MAX_PAGE: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only this reason.
    reason: Option<Reason>,
    /// From the previous page's `next_cursor`.
    cursor: Option<usize>,
    /// Records per page (1 to 1,000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// List suppressed addresses, newest first.
#[utoipa::path(
    operation_id = "list_suppressions",
    get,
    path = "/v1/suppressions",
    tag = "suppressions",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the list", body = SuppressionPage),
        (status = 400, description = "A bad query parameter (named)", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<SuppressionPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit is 1 to {MAX_PAGE}")).field("limit"));
    }
    let page = state
        .suppressions
        .list(query.reason, query.cursor.unwrap_or(0), limit)
        .await?;
    Ok(Json(page))
}

/// One suppressed address.
#[utoipa::path(
    operation_id = "get_suppression",
    get,
    path = "/v1/suppressions/{email}",
    tag = "suppressions",
    params(("email" = String, Path, description = "The address (any case)")),
    responses(
        (status = 200, description = "Why and since when", body = Suppression),
        (status = 404, description = "Not suppressed", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    ApiPath(email): ApiPath<String>,
) -> Result<Json<Suppression>, ApiError> {
    state
        .suppressions
        .get(&email)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("{email} is not suppressed")).field("email"))
}

/// What an operator says when suppressing an address.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PutSuppression {
    /// Default `manual`.
    #[serde(default)]
    reason: Option<Reason>,
    /// A note (at most 200 characters; spaces around it are dropped).
    #[serde(default)]
    #[schema(max_length = 200)]
    detail: Option<String>,
}

/// Suppress an address (or replace its record).
#[utoipa::path(
    operation_id = "put_suppression",
    put,
    path = "/v1/suppressions/{email}",
    tag = "suppressions",
    params(("email" = String, Path, format = Email, description = "The address")),
    request_body = PutSuppression,
    responses(
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 200, description = "The record", body = Suppression),
        (status = 422, description = "Not an address mailroom could send to, or a note over 200 characters", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn put(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<super::auth::Caller>,
    ApiPath(email): ApiPath<String>,
    ApiJson(body): ApiJson<PutSuppression>,
) -> Result<Json<Suppression>, ApiError> {
    let reason = body.reason.unwrap_or(Reason::Manual);
    let record =
        Suppression::by_operator(&email, reason, "api", body.detail.as_deref()).map_err(|e| {
            let field = match e {
                ManualError::Address(_) => "email",
                ManualError::Detail => "detail",
            };
            ApiError::validation(e.to_string()).field(field)
        })?;
    state.suppressions.put(&record).await?;
    let added = crate::store::audit::Action::SuppressionAdded;
    (state.audit)
        .record(
            &caller.id,
            added,
            &crate::store::audit::address(&record.email),
        )
        .await;
    Ok(Json(record))
}

/// Lift a suppression.
#[utoipa::path(
    operation_id = "delete_suppression",
    delete,
    path = "/v1/suppressions/{email}",
    tag = "suppressions",
    params(("email" = String, Path, description = "The address")),
    responses(
        (status = 204, description = "Lifted"),
        (status = 404, description = "Not suppressed", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<super::auth::Caller>,
    ApiPath(email): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.suppressions.delete(&email).await? {
        let lifted = crate::store::audit::Action::SuppressionLifted;
        (state.audit)
            .record(&caller.id, lifted, &crate::store::audit::address(&email))
            .await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{email} is not suppressed")).field("email"))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StatsQuery {
    /// One category; all mail when absent.
    category: Option<String>,
    /// Only the mail one stored API key queued, by its public id (as `GET /v1/keys` lists
    /// it); with `category`, that category of its mail.
    #[param(pattern = "^[0-9a-f]{16}$")]
    key: Option<String>,
    /// First day, `YYYY-MM-DD` (UTC); default 30 days before `to`. At most the 366 days ending
    /// at `to` are answered (daily counters are kept 400 days); a `from` after `to` is an
    /// empty period.
    from: Option<NaiveDate>,
    /// Last day, inclusive; default today.
    to: Option<NaiveDate>,
}

/// Daily delivery and engagement counters with their rates.
#[utoipa::path(
    operation_id = "get_stats",
    get,
    path = "/v1/stats",
    tag = "stats",
    params(StatsQuery),
    responses(
        (status = 200, description = "Counters per day, totals and rates", body = Stats),
        (status = 400, description = "A date that is not `YYYY-MM-DD` or out of range, or a key that is not a key id", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn stats(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    let to = query.to.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let from = match query.from {
        Some(from) => from,
        None => to
            .checked_sub_signed(chrono::Duration::days(29))
            .ok_or_else(|| ApiError::bad_request("to is out of range").field("to"))?,
    };
    // A period longer than the counters are kept reads the days that can hold any; the
    // answer's `days` say which days were read.
    let earliest = to
        .checked_sub_signed(chrono::Duration::days(MAX_DAYS - 1))
        .unwrap_or(to);
    let from = from.max(earliest);
    let category = query.category.as_deref().filter(|c| !c.is_empty());
    let key = match query.key.as_deref() {
        Some(text) => Some(crate::domain::KeyId::parse(text).ok_or_else(|| {
            ApiError::bad_request("a key is its public id: 16 hex digits").field("key")
        })?),
        None => None,
    };
    let filter = Filter {
        category,
        key: key.as_ref().map(crate::domain::KeyId::as_str),
    };
    Ok(Json(state.stats.read(filter, from, to).await?))
}
