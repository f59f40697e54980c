//! `/v1/subscribers`: one subscriber per address, with their subscriptions. `POST` creates or
//! updates and subscribes in one call; `GET`, `PATCH` and `DELETE` take an id or an address.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::request_id::RequestId;
use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, ApiPath},
};
use crate::domain::{ListId, Locale, MessageId, StartingStatus, SubscriberId};
use crate::lists::{
    Source, Subscriber, SubscriberStatus, Subscription, SubscriptionStatus,
    model::{encode_attributes, parse_name},
    signup::SignupError,
    store::{Row, Upsert},
    subscribe::Notice,
};

/// The most lists one request subscribes to.
const MAX_LISTS_PER_REQUEST: usize = 100;

/// A subscriber to create or update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSubscriber {
    #[schema(format = Email)]
    email: String,
    #[serde(default)]
    #[schema(schema_with = super::schemas::person_name)]
    name: Option<String>,
    /// A language tag such as `fr-CA` (language, optional script and region); empty: none.
    #[serde(default)]
    #[schema(schema_with = super::schemas::optional_locale)]
    locale: Option<String>,
    /// A JSON object of at most 4 KiB; replaces the stored one when given.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    attributes: Option<Map<String, Value>>,
    /// Lists to subscribe to (ids, at most 100).
    #[serde(default, deserialize_with = "mailroom_jobs::whole::vec")]
    #[schema(max_items = 100)]
    lists: Vec<u64>,
    /// `blocklisted` receives nothing from any list.
    #[serde(default)]
    status: Option<SubscriberStatus>,
    /// What new subscriptions start as. Default: `confirmed` on single opt-in lists;
    /// `unconfirmed` on double opt-in lists, which email the person a confirmation link. Say
    /// `confirmed` only when the person's consent was recorded elsewhere.
    #[serde(default)]
    subscription_status: Option<StartingStatus>,
}

/// Changes to a subscriber; what is absent stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SubscriberChanges {
    #[serde(default)]
    #[schema(schema_with = super::schemas::person_name)]
    name: Option<String>,
    /// As in [`NewSubscriber`]; empty clears it.
    #[serde(default)]
    #[schema(schema_with = super::schemas::optional_locale)]
    locale: Option<String>,
    /// Replaces the stored attributes.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    attributes: Option<Map<String, Value>>,
    #[serde(default)]
    status: Option<SubscriberStatus>,
}

/// A subscriber with their subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SubscriberView {
    #[serde(flatten)]
    subscriber: Subscriber,
    subscriptions: Vec<Subscription>,
    /// What was not done, and why (only on `POST`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notices: Vec<Notice>,
}

/// A subscriber's id or address, from a path.
pub(super) async fn find(state: &AppState, which: &str) -> Result<SubscriberId, ApiError> {
    let not_found = || ApiError::not_found(format!("no subscriber {which}")).field("id");
    let id = if which.contains('@') {
        let key = mailroom_jobs::address::case_key(which);
        state.lists.find(&key).await?
    } else {
        SubscriberId::parse(which)
    };
    id.ok_or_else(not_found)
}

async fn view(
    state: &AppState,
    id: SubscriberId,
    notices: Vec<Notice>,
) -> Result<SubscriberView, ApiError> {
    let subscriber = state
        .lists
        .subscriber(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no subscriber {id}")).field("id"))?;
    let lists: Vec<ListId> = state.lists.lists().await?.iter().map(|l| l.id).collect();
    let subscriptions = state.lists.subscriptions(id, &lists).await?;
    Ok(SubscriberView {
        subscriber,
        subscriptions,
        notices,
    })
}

/// The fields of a row, parsed, each naming its field when wrong.
fn fields(
    row: &mut Row,
    name: Option<String>,
    locale: Option<String>,
    attributes: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    row.name = name
        .map(|n| parse_name(&n))
        .transpose()
        .map_err(|e| ApiError::validation(e.to_string()).field("name"))?;
    row.locale = locale
        .filter(|l| !l.is_empty())
        .map(|l| Locale::parse(&l).map(|l| l.as_str().to_owned()))
        .transpose()
        .map_err(|e| ApiError::validation(e.to_string()).field("locale"))?;
    row.attributes = attributes
        .map(encode_attributes)
        .transpose()
        .map_err(|e| ApiError::validation(e.to_string()).field("attributes"))?;
    Ok(())
}

/// Create or update a subscriber and subscribe them to lists.
#[utoipa::path(
    operation_id = "upsert_subscriber",
    post,
    path = "/v1/subscribers",
    tag = "lists",
    request_body = NewSubscriber,
    responses(
        (status = 201, description = "Created", body = SubscriberView),
        (status = 200, description = "Updated (or unchanged)", body = SubscriberView),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 404, description = "A list it names does not exist (the field names it)", body = ErrorBody),
        (status = 422, description = "A field that is not valid (named)", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn upsert(
    State(state): State<AppState>,
    request_id: RequestId,
    ApiJson(body): ApiJson<NewSubscriber>,
) -> Result<(StatusCode, Json<SubscriberView>), ApiError> {
    let address = mailroom_jobs::address::parse(&body.email)
        .map_err(|e| ApiError::validation(e.message).field("email"))?;
    let mut row = Row::new(&address);
    fields(&mut row, body.name, body.locale, body.attributes.as_ref())?;
    row.status = body.status;
    if body.lists.len() > MAX_LISTS_PER_REQUEST {
        return Err(ApiError::validation(format!(
            "at most {MAX_LISTS_PER_REQUEST} lists per request"
        ))
        .field("lists"));
    }
    let mut lists = Vec::new();
    for (i, &n) in body.lists.iter().enumerate() {
        let list = match ListId::new(n) {
            Some(id) => state.lists.list(id).await?,
            None => None,
        };
        let list = list.ok_or_else(|| {
            ApiError::not_found(format!("no list {n}")).field(format!("lists[{i}]"))
        })?;
        if !lists.iter().any(|l: &crate::lists::List| l.id == list.id) {
            lists.push(list);
        }
    }
    let written = (state.signups)
        .subscribe(&row, lists, body.subscription_status, request_id.for_job())
        .await
        .map_err(|e| match e {
            SignupError::Push(e) => ApiError::from_push(e, "email"),
            SignupError::Redis(e) => ApiError::from(e),
            other => ApiError::internal(&other),
        })?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(view(&state, written.id, written.notices).await?),
    ))
}

/// One subscriber with their subscriptions.
#[utoipa::path(
    operation_id = "get_subscriber",
    get,
    path = "/v1/subscribers/{id}",
    tag = "lists",
    params(("id" = String, Path, description = "The subscriber's id or address")),
    responses(
        (status = 200, description = "The subscriber", body = SubscriberView),
        (status = 404, description = "No such subscriber", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    ApiPath(which): ApiPath<String>,
) -> Result<Json<SubscriberView>, ApiError> {
    let id = find(&state, &which).await?;
    Ok(Json(view(&state, id, Vec::new()).await?))
}

/// Change a subscriber.
#[utoipa::path(
    operation_id = "update_subscriber",
    patch,
    path = "/v1/subscribers/{id}",
    tag = "lists",
    params(("id" = String, Path, description = "The subscriber's id or address")),
    request_body = SubscriberChanges,
    responses(
        (status = 200, description = "The subscriber as they are now", body = SubscriberView),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 404, description = "No such subscriber", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A field that is not valid (named)", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn update(
    State(state): State<AppState>,
    ApiPath(which): ApiPath<String>,
    ApiJson(body): ApiJson<SubscriberChanges>,
) -> Result<Json<SubscriberView>, ApiError> {
    let id = find(&state, &which).await?;
    let current = state
        .lists
        .subscriber(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no subscriber {which}")).field("id"))?;
    let address = mailroom_jobs::address::parse(&current.email)
        .map_err(|e| ApiError::internal(&e.message))?;
    let mut row = Row::new(&address);
    fields(&mut row, body.name, body.locale, body.attributes.as_ref())?;
    row.status = body.status;
    let how = Upsert {
        lists: Vec::new(),
        status: SubscriptionStatus::Unconfirmed,
        source: Source::Api,
        update: true,
    };
    state.lists.upsert(std::slice::from_ref(&row), &how).await?;
    Ok(Json(view(&state, id, Vec::new()).await?))
}

/// A subscription's new state.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SubscriptionChangeRequest {
    status: SubscriptionStatus,
}

/// Set one subscription's state (unsubscribe, confirm, subscribe again).
#[utoipa::path(
    operation_id = "set_subscription",
    put,
    path = "/v1/subscribers/{id}/lists/{list}",
    tag = "lists",
    params(("id" = String, Path, description = "The subscriber's id or address"), ("list" = u64, Path, description = "The list's id")),
    request_body = SubscriptionChangeRequest,
    responses(
        (status = 200, description = "The subscriber as they are now", body = SubscriberView),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 404, description = "No such subscriber or list", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Not a state", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn set_subscription(
    State(state): State<AppState>,
    ApiPath((which, list)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SubscriptionChangeRequest>,
) -> Result<Json<SubscriberView>, ApiError> {
    let id = find(&state, &which).await?;
    let list = super::lists::existing(&state, &list).await?;
    state
        .lists
        .set_subscription(id, list.id, body.status, Source::Api)
        .await?
        .map_err(|_| ApiError::not_found(format!("no subscriber {which}")).field("id"))?;
    Ok(Json(view(&state, id, Vec::new()).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteQuery {
    /// Erase everything mailroom holds about the person (see the export), keeping only a hash
    /// of the address on the suppression list if they unsubscribed or complained.
    #[serde(default)]
    erase: bool,
}

/// Delete a subscriber and their subscriptions; with `erase=true`, everything about them.
#[utoipa::path(
    operation_id = "delete_subscriber",
    delete,
    path = "/v1/subscribers/{id}",
    tag = "lists",
    params(("id" = String, Path, description = "The subscriber's id or address"), DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 404, description = "No such subscriber", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<super::auth::Caller>,
    ApiPath(which): ApiPath<String>,
    super::extract::ApiQuery(query): super::extract::ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    use crate::store::suppressions::Reason;
    let id = find(&state, &which).await?;
    let Some(subscriber) = state.lists.subscriber(id).await? else {
        return Err(ApiError::not_found(format!("no subscriber {which}")).field("id"));
    };
    let lists: Vec<ListId> = state.lists.lists().await?.iter().map(|l| l.id).collect();
    let email = subscriber.email;
    let key = mailroom_jobs::address::case_key(&email);
    state.lists.delete_subscriber(id, &key, &lists).await?;
    if query.erase {
        match state.suppressions.get(&email).await? {
            Some(s)
                if matches!(
                    s.reason,
                    Reason::Unsubscribe | Reason::GroupUnsubscribe | Reason::SpamReport
                ) =>
            {
                state.suppressions.keep_only_hash(&s).await?;
            }
            Some(_) => {
                state.suppressions.delete(&email).await?;
            }
            None => {}
        }
        state.verifications.invalidate(&email).await?;
        state.verifications.clear(&email).await?;
        state
            .addresses
            .erase(
                &email,
                <mailroom_jobs::SendEmail as mailroom_jobs::Job>::QUEUE,
            )
            .await?;
        state.addresses.erase_stream_entries(&email).await?;
        state.addresses.erase_notices(&email).await?;
        let endpoints: Vec<String> = (state.hooks.all().await.map_err(hook_error)?)
            .into_iter()
            .map(|s| s.endpoint.id)
            .collect();
        let mentions = crate::lists::privacy::mentions(&email);
        (state.hooks.log()).erase(&endpoints, mentions).await?;
        tracing::info!(subscriber = %id, "subscriber erased");
        // The subscriber's id only: the address is what was erased.
        let erased = crate::store::audit::Action::SubscriberErased;
        state
            .audit
            .record(&caller.id, erased, &id.to_string())
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn hook_error(error: crate::hooks::HookError) -> ApiError {
    match error {
        crate::hooks::HookError::Redis(error) => ApiError::from(error),
        other => ApiError::internal(&other),
    }
}

/// Everything mailroom holds about one person.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Export {
    exported_at: chrono::DateTime<chrono::Utc>,
    subscriber: Subscriber,
    subscriptions: Vec<Subscription>,
    /// Superseded subscription states, newest first.
    subscription_history: Vec<Subscription>,
    suppression: Option<crate::store::Suppression>,
    verification: crate::verification::AddressStatus,
    /// The messages sent to the address that are still kept, newest first.
    messages: Vec<crate::store::StatusRecord>,
}

/// Export everything mailroom holds about a subscriber, as one JSON document.
#[utoipa::path(
    operation_id = "export_subscriber",
    get,
    path = "/v1/subscribers/{id}/export",
    tag = "lists",
    params(("id" = String, Path, description = "The subscriber's id or address")),
    responses(
        (status = 200, description = "The person's data", body = Export),
        (status = 404, description = "No such subscriber", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn export(
    State(state): State<AppState>,
    ApiPath(which): ApiPath<String>,
) -> Result<Json<Export>, ApiError> {
    let id = find(&state, &which).await?;
    let view = view(&state, id, Vec::new()).await?;
    let email = view.subscriber.email.clone();
    let mut messages = Vec::new();
    let ids = state.addresses.messages(&email).await?;
    for message in ids.iter().filter_map(|id| MessageId::parse(id)) {
        if let Some(record) = state.status.get(message).await? {
            messages.push(record);
        }
    }
    Ok(Json(Export {
        exported_at: chrono::Utc::now(),
        subscription_history: state.lists.history(id).await?,
        suppression: state.suppressions.get(&email).await?,
        verification: state.verifications.address(&email).await?,
        subscriptions: view.subscriptions,
        subscriber: view.subscriber,
        messages,
    }))
}
