//! `/v1/lists`: create, read, change and delete lists, count their subscribers per state, and
//! page through their members.

use axum::{Json, extract::State, http::StatusCode};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::domain::{ListId, Locale};
use crate::lists::{
    Counts, List, Optin, Subscription, SubscriptionStatus, Visibility, model::MAX_LISTS,
};

/// The longest list name, in characters.
const MAX_LIST_NAME: usize = 200;
/// The longest description, in characters.
const MAX_DESCRIPTION: usize = 2000;
/// The largest page of members.
const MAX_PAGE: usize = 1000;

/// A new list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewList {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// `double`: subscribers confirm a link first.
    optin: Optin,
    /// `public`: anyone may sign up through the subscribe form.
    visibility: Visibility,
    /// The language of its emails for subscribers without one: a tag such as `fr-CA`
    /// (language, optional script and region); empty: none.
    #[serde(default)]
    #[schema(schema_with = super::schemas::optional_locale)]
    default_locale: Option<String>,
}

/// Changes to a list; what is absent stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListChanges {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: Option<String>,
    #[serde(default)]
    optin: Option<Optin>,
    #[serde(default)]
    visibility: Option<Visibility>,
    /// As in [`NewList`]; empty clears it.
    #[serde(default)]
    #[schema(schema_with = super::schemas::optional_locale)]
    default_locale: Option<String>,
}

/// A list with its subscription counts.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ListView {
    #[serde(flatten)]
    list: List,
    counts: Counts,
}

/// Every list.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ListIndex {
    lists: Vec<ListView>,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_LIST_NAME {
        return Err(
            ApiError::validation(format!("a name is 1 to {MAX_LIST_NAME} characters"))
                .field("name"),
        );
    }
    Ok(name.to_owned())
}

fn check_description(text: Option<String>) -> Result<Option<String>, ApiError> {
    match text {
        Some(t) if t.chars().count() > MAX_DESCRIPTION => Err(ApiError::validation(format!(
            "a description is at most {MAX_DESCRIPTION} characters"
        ))
        .field("description")),
        other => Ok(other.filter(|t| !t.trim().is_empty())),
    }
}

fn check_locale(tag: Option<String>) -> Result<Option<String>, ApiError> {
    tag.filter(|t| !t.is_empty())
        .map(|t| Locale::parse(&t).map(|l| l.as_str().to_owned()))
        .transpose()
        .map_err(|e| ApiError::validation(e.to_string()).field("default_locale"))
}

/// The list named by a path, or 404.
pub(super) async fn existing(state: &AppState, id: &str) -> Result<List, ApiError> {
    let not_found = || ApiError::not_found(format!("no list {id}")).field("id");
    let id = ListId::parse(id).ok_or_else(not_found)?;
    state.lists.list(id).await?.ok_or_else(not_found)
}

/// Create a list.
#[utoipa::path(
    operation_id = "create_list",
    post,
    path = "/v1/lists",
    tag = "lists",
    request_body = NewList,
    responses(
        (status = 201, description = "Created", body = ListView),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A field out of range (named), or the most lists already exist", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewList>,
) -> Result<(StatusCode, Json<ListView>), ApiError> {
    let name = check_name(&body.name)?;
    let description = check_description(body.description)?;
    let default_locale = check_locale(body.default_locale)?;
    if state.lists.lists().await?.len() >= MAX_LISTS {
        return Err(ApiError::validation(format!(
            "mailroom keeps at most {MAX_LISTS} lists; delete one first"
        )));
    }
    let now = Utc::now();
    let list = List {
        id: state.lists.next_list_id().await?,
        name,
        description,
        optin: body.optin,
        visibility: body.visibility,
        default_locale,
        created_at: now,
        updated_at: now,
    };
    state.lists.save_list(&list).await?;
    Ok((
        StatusCode::CREATED,
        Json(ListView {
            list,
            counts: Counts::default(),
        }),
    ))
}

/// Every list with its counts.
#[utoipa::path(
    operation_id = "list_lists",
    get,
    path = "/v1/lists",
    tag = "lists",
    responses(
        (status = 200, description = "Every list, by id", body = ListIndex),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn index(State(state): State<AppState>) -> Result<Json<ListIndex>, ApiError> {
    let mut lists = Vec::new();
    for list in state.lists.lists().await? {
        let counts = state.lists.counts(list.id).await?;
        lists.push(ListView { list, counts });
    }
    Ok(Json(ListIndex { lists }))
}

/// One list with its counts.
#[utoipa::path(
    operation_id = "get_list",
    get,
    path = "/v1/lists/{id}",
    tag = "lists",
    params(("id" = u64, Path, description = "The list's id")),
    responses(
        (status = 200, description = "The list", body = ListView),
        (status = 404, description = "No such list", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ListView>, ApiError> {
    let list = existing(&state, &id).await?;
    let counts = state.lists.counts(list.id).await?;
    Ok(Json(ListView { list, counts }))
}

/// Change a list.
#[utoipa::path(
    operation_id = "update_list",
    patch,
    path = "/v1/lists/{id}",
    tag = "lists",
    params(("id" = u64, Path, description = "The list's id")),
    request_body = ListChanges,
    responses(
        (status = 200, description = "The list as it is now", body = ListView),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 404, description = "No such list", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A field out of range (named)", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ListChanges>,
) -> Result<Json<ListView>, ApiError> {
    let mut list = existing(&state, &id).await?;
    if let Some(name) = body.name {
        list.name = check_name(&name)?;
    }
    if body.description.is_some() {
        list.description = check_description(body.description)?;
    }
    if let Some(optin) = body.optin {
        list.optin = optin;
    }
    if let Some(visibility) = body.visibility {
        list.visibility = visibility;
    }
    if body.default_locale.is_some() {
        list.default_locale = check_locale(body.default_locale)?;
    }
    list.updated_at = Utc::now();
    state.lists.save_list(&list).await?;
    let counts = state.lists.counts(list.id).await?;
    Ok(Json(ListView { list, counts }))
}

/// Delete a list and every subscription to it (subscribers stay).
#[utoipa::path(
    operation_id = "delete_list",
    delete,
    path = "/v1/lists/{id}",
    tag = "lists",
    params(("id" = u64, Path, description = "The list's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such list", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let list = existing(&state, &id).await?;
    state.lists.delete_list(list.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct MembersQuery {
    /// Only subscriptions in this state.
    status: Option<SubscriptionStatus>,
    /// The previous page's `next_cursor`.
    #[param(pattern = r"^[0-9]{1,5}\.[0-9]{1,19}\.[0-9]{1,9}$")]
    cursor: Option<String>,
    /// Members per page (1 to 1,000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// One member of a list.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Member {
    #[schema(value_type = u64)]
    subscriber: crate::domain::SubscriberId,
    #[serde(flatten)]
    subscription: Subscription,
}

/// A page of a list's members.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MemberPage {
    subscribers: Vec<Member>,
    /// Pass it as `cursor` for the next page; `null` at the end.
    next_cursor: Option<String>,
}

/// Page through a list's subscribers (in no particular order; each once while the list is not
/// changing).
#[utoipa::path(
    operation_id = "list_members",
    get,
    path = "/v1/lists/{id}/subscribers",
    tag = "lists",
    params(("id" = u64, Path, description = "The list's id"), MembersQuery),
    responses(
        (status = 200, description = "A page", body = MemberPage),
        (status = 400, description = "A bad query parameter (named)", body = ErrorBody),
        (status = 404, description = "No such list", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn members(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<MembersQuery>,
) -> Result<Json<MemberPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit is 1 to {MAX_PAGE}")).field("limit"));
    }
    let list = existing(&state, &id).await?;
    let page = state
        .lists
        .members(list.id, query.status, query.cursor.as_deref(), limit)
        .await
        .map_err(|e| match e {
            crate::lists::store::PageError::BadCursor => {
                ApiError::bad_request(e.to_string()).field("cursor")
            }
            crate::lists::store::PageError::Redis(e) => ApiError::from(e),
        })?;
    Ok(Json(MemberPage {
        subscribers: page
            .members
            .into_iter()
            .map(|(subscriber, subscription)| Member {
                subscriber,
                subscription,
            })
            .collect(),
        next_cursor: page.next,
    }))
}

/// A segment to count.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CountRequest {
    /// A filter over subscriber fields and attributes (see docs/lists.md, "Segments"); every
    /// member when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    filter: Option<serde_json::Value>,
    /// Only subscriptions in this state; every state when absent.
    #[serde(default)]
    status: Option<SubscriptionStatus>,
}

/// Count a list's subscribers that match a filter.
#[utoipa::path(
    operation_id = "count_segment",
    post,
    path = "/v1/lists/{id}/count",
    tag = "lists",
    params(("id" = u64, Path, description = "The list's id")),
    request_body = CountRequest,
    responses(
        (status = 200, description = "How many match", body = crate::lists::segment::SegmentCount),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 404, description = "No such list", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "An invalid filter (the part at fault named in `field`)", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn count(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CountRequest>,
) -> Result<Json<crate::lists::segment::SegmentCount>, ApiError> {
    let filter = body
        .filter
        .as_ref()
        .map(crate::lists::segment::Filter::parse)
        .transpose()
        .map_err(|e| {
            let field = if e.path.is_empty() {
                "filter".to_owned()
            } else {
                format!("filter.{}", e.path)
            };
            ApiError::validation(e.message).field(field)
        })?;
    let list = existing(&state, &id).await?;
    let counted =
        crate::lists::segment::count(&state.lists, list.id, body.status, filter.as_ref()).await?;
    Ok(Json(counted))
}
