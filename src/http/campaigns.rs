//! `/v1/campaigns`: create a campaign, read it, and move it through its life: schedule, pause,
//! resume, cancel; and send its copy to a few test addresses.

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use mailroom_jobs::{Job, SendEmail};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::request_id::RequestId;
use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, ApiPath, ApiQuery, RawBody, parse_json},
};
use crate::campaigns::{
    Campaign, State as CampaignState, Transition,
    check::{Checker, NewCampaign, SpecError},
    lifecycle::{self, Change, ChangeError},
    proof::{self, ProofError},
};
use crate::domain::CampaignId;

/// The most campaigns kept at once (drafts do not expire; finished and cancelled ones do).
const MAX_CAMPAIGNS: u64 = 10_000;
/// The most campaigns one page lists.
const MAX_PAGE: usize = 100;

/// When to start.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleRequest {
    /// Any time ahead; absent: the campaign's `send_at`, else now.
    #[serde(default)]
    send_at: Option<DateTime<Utc>>,
}

/// Addresses to send the campaign's copy to, marked as a test.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TestRequest {
    /// 1 to 10 addresses.
    #[schema(min_items = 1, max_items = 10)]
    to: Vec<String>,
}

/// The test emails queued.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TestQueued {
    /// The message ids, one per address (`GET /v1/emails/{id}`).
    ids: Vec<String>,
}

/// A page of campaigns, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CampaignPage {
    campaigns: Vec<Campaign>,
}

/// Which page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    /// Campaigns to skip.
    #[serde(default)]
    #[param(minimum = 0, maximum = 1_000_000)]
    offset: Option<usize>,
    /// Campaigns per page (1 to 100, 20 by default).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// The API's answer to a campaign that was refused.
fn spec_refused(error: SpecError) -> ApiError {
    let answer = match &error {
        SpecError::Redis(e) => return ApiError::from(e.clone()),
        SpecError::NoList { .. } => ApiError::not_found(error.to_string()),
        _ => ApiError::validation(error.to_string()),
    };
    match error.field() {
        Some(field) => answer.field(field),
        None => answer,
    }
}

/// Create a campaign (a draft).
#[utoipa::path(
    post,
    path = "/v1/campaigns",
    tag = "campaigns",
    request_body = NewCampaign,
    responses(
        (status = 201, description = "Created, as a draft", body = Campaign),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 404, description = "A list it names does not exist (the field names it)", body = ErrorBody),
        (status = 422, description = "A field out of range, an unknown template or per-recipient field (named), no link keys, or the most campaigns already kept", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewCampaign>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    let send_at = body.send_at;
    let checker = Checker {
        lists: &state.lists,
        renderer: &state.renderer,
        public_url: &state.public_url,
        link_keys: state.links.is_some(),
    };
    let spec = checker.check(body).await.map_err(spec_refused)?;
    if state.campaigns.live_count(MAX_CAMPAIGNS).await? >= MAX_CAMPAIGNS {
        return Err(ApiError::validation(format!(
            "mailroom keeps at most {MAX_CAMPAIGNS} campaigns; cancel drafts you do not need (a cancelled or finished campaign is dropped after MAILROOM_CAMPAIGN_RETENTION_SECS)"
        )));
    }
    let id = CampaignId::fresh();
    state.campaigns.create(id, &spec, send_at).await?;
    let campaign = state
        .campaigns
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id}")))?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

/// List campaigns, newest first.
#[utoipa::path(
    get,
    path = "/v1/campaigns",
    tag = "campaigns",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of campaigns", body = CampaignPage),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 422, description = "A limit or offset out of range", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn index(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<CampaignPage>, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation(format!("limit is 1 to {MAX_PAGE}")).field("limit"));
    }
    let offset = query.offset.unwrap_or(0);
    if offset > 1_000_000 {
        return Err(ApiError::validation("offset is 0 to 1,000,000").field("offset"));
    }
    let campaigns = state.campaigns.list(offset, limit).await?;
    Ok(Json(CampaignPage { campaigns }))
}

/// The campaign named by a path, or 404.
async fn existing(state: &AppState, id: &str) -> Result<Campaign, ApiError> {
    let not_found = || ApiError::not_found(format!("no campaign {id}")).field("id");
    let id = CampaignId::parse(id).ok_or_else(not_found)?;
    state.campaigns.get(id).await?.ok_or_else(not_found)
}

/// A campaign: its state, progress and engagement.
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign", body = Campaign),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Campaign>, ApiError> {
    Ok(Json(existing(&state, &id).await?))
}

/// 409 for a change the campaign's state does not allow.
fn refused(action: &str, state: CampaignState) -> ApiError {
    ApiError::conflict(format!("a {} campaign cannot {action}", state.as_str())).field("state")
}

/// Makes `change` to campaign `id` and answers the campaign as it is then.
async fn act(state: &AppState, id: &str, change: Change) -> Result<Campaign, ApiError> {
    let campaign = existing(state, id).await?;
    match lifecycle::change(&state.campaigns, &state.producer, campaign.id, change).await {
        Ok(Transition::Missing) => {
            return Err(ApiError::not_found(format!("no campaign {id}")).field("id"));
        }
        Ok(Transition::Refused(now)) => return Err(refused(change.action(), now)),
        Ok(Transition::Done(..)) => {}
        Err(ChangeError::Redis(e)) => return Err(e.into()),
        // Asking again queues it: the campaign stays where it is until then.
        Err(ChangeError::Push(e)) => return Err(ApiError::from_push(e, "id")),
    }
    existing(state, id).await
}

/// Schedule a draft (or move a scheduled campaign): it starts at `send_at`, else now.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/schedule",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    request_body(content = Option<ScheduleRequest>, description = "When; an empty body or `null` means the campaign's send_at, else now"),
    responses(
        (status = 200, description = "Scheduled", body = Campaign),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "It is past scheduling (running, paused, over)", body = ErrorBody),
        (status = 422, description = "A malformed time", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn schedule(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Json<Campaign>, ApiError> {
    // No body, or JSON `null` (what the document's optional body allows): no time asked.
    let asked = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        parse_json::<Option<ScheduleRequest>>(&body)?.and_then(|r| r.send_at)
    };
    let campaign = existing(&state, &id).await?;
    let now = Utc::now();
    let send_at = asked
        .or(campaign.send_at)
        .filter(|t| *t > now)
        .unwrap_or(now);
    Ok(Json(act(&state, &id, Change::Schedule(send_at)).await?))
}

macro_rules! lifecycle_route {
    ($name:ident, $change:expr, $path:literal, $summary:literal, $refused:literal) => {
        #[doc = $summary]
        #[utoipa::path(
                    post,
                    path = $path,
                    tag = "campaigns",
                    params(("id" = String, Path, description = "The campaign's id")),
                    responses(
                        (status = 200, description = "Done", body = Campaign),
                        (status = 401, description = "No or wrong API key", body = ErrorBody),
                        (status = 404, description = "No such campaign", body = ErrorBody),
                        (status = 409, description = $refused, body = ErrorBody),
                    ),
                    security(("api_key" = []))
                )]
        pub(super) async fn $name(
            State(state): State<AppState>,
            axum::Extension(caller): axum::Extension<super::auth::Caller>,
            ApiPath(id): ApiPath<String>,
        ) -> Result<Json<Campaign>, ApiError> {
            let campaign = act(&state, &id, $change).await?;
            if matches!($change, Change::Cancel) {
                let cancelled = crate::store::audit::Action::CampaignCancelled;
                state.audit.record(&caller.id, cancelled, &id).await;
            }
            Ok(Json(campaign))
        }
    };
}

lifecycle_route!(
    pause,
    Change::Pause,
    "/v1/campaigns/{id}/pause",
    "Pause a running campaign: batches stop between two hand-overs.",
    "It is not running"
);
lifecycle_route!(
    resume,
    Change::Resume,
    "/v1/campaigns/{id}/resume",
    "Resume a paused campaign: it sends to those not sent yet.",
    "It is not paused"
);
lifecycle_route!(
    cancel,
    Change::Cancel,
    "/v1/campaigns/{id}/cancel",
    "Cancel a campaign: nothing more is sent.",
    "It is already over"
);

/// Send the campaign's copy to a few addresses, marked `[Test]`.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/test",
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    request_body = TestRequest,
    responses(
        (status = 202, description = "Queued on the email queue", body = TestQueued),
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 422, description = "No addresses, too many, or a malformed one", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn test(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    request_id: RequestId,
    ApiJson(body): ApiJson<TestRequest>,
) -> Result<(StatusCode, Json<TestQueued>), ApiError> {
    let campaign = existing(&state, &id).await?;
    let messages = proof::proofs(
        &campaign,
        &body.to,
        &state.lists,
        &state.renderer,
        &state.public_url,
    )
    .await
    .map_err(|e| match e {
        ProofError::Invalid { field, message } => ApiError::validation(message).field(field),
        ProofError::Redis(e) => ApiError::from(e),
    })?;
    let jobs: Vec<_> = (messages.into_iter())
        .map(|message| {
            let job = SendEmail::new(message).with_request_id(request_id.for_job());
            let options = job.enqueue_options();
            (job, options)
        })
        .collect();
    let mut ids = Vec::with_capacity(jobs.len());
    for pushed in state.producer.push_each(&jobs).await? {
        ids.push(pushed.map_err(|e| ApiError::from_push(e, "to"))?.id);
    }
    Ok((StatusCode::ACCEPTED, Json(TestQueued { ids })))
}
