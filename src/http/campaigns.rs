//! `/v1/campaigns`: create a campaign, read it, and move it through its life: schedule, pause,
//! resume, cancel; and send its copy to a few test addresses.

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use mailroom_jobs::{EmailMessage, Job, Mailbox, SendEmail};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::request_id::RequestId;
use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, ApiPath, ApiQuery, RawBody, parse_json},
};
use crate::{
    campaigns::{
        Campaign, Content, RawContent, Spec, State as CampaignState, TemplateContent, Transition,
        copy::{Field, UNSUBSCRIBE_MARK, render_copy},
        lifecycle::{self, Change, ChangeError},
        model::MAX_LISTS,
    },
    domain::ListId,
    lists::segment::Filter,
};

/// The longest campaign name, in characters.
const MAX_NAME: usize = 200;
/// The most addresses one test send goes to.
const MAX_TEST_RECIPIENTS: usize = 10;
/// The most campaigns kept at once (drafts do not expire; finished and cancelled ones do).
const MAX_CAMPAIGNS: u64 = 10_000;
/// The most campaigns one page lists.
const MAX_PAGE: usize = 100;

/// A template and the data every recipient shares.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CampaignTemplate {
    /// A template's name, e.g. `newsletter`.
    name: String,
    /// Its data; the campaign fills the per-recipient fields (the newsletter's
    /// `unsubscribe_link`). Strings may hold `{{name}}`, `{{email}}`, `{{unsubscribe_url}}` and
    /// `{{attributes.KEY}}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

/// A new campaign: a template, or a subject with an HTML and/or text body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCampaign {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// The lists whose confirmed subscribers it goes to (1 to 20).
    #[schema(min_items = 1, max_items = 20, value_type = std::collections::BTreeSet<u64>)]
    #[serde(deserialize_with = "mailroom_jobs::whole::vec")]
    lists: Vec<u64>,
    /// A segment filter (as `POST /v1/lists/{id}/count` takes) the subscribers must match.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    segment: Option<serde_json::Value>,
    #[serde(default)]
    template: Option<CampaignTemplate>,
    /// With `html` and/or `text`, instead of a template; may hold the per-recipient fields.
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    from: Option<Mailbox>,
    #[serde(default)]
    reply_to: Option<Mailbox>,
    #[serde(default)]
    #[schema(max_items = 10)]
    categories: Vec<String>,
    /// When `schedule` without a time starts it; absent: at once.
    #[serde(default)]
    send_at: Option<DateTime<Utc>>,
    /// Recipients per second at most for this campaign.
    #[serde(default, deserialize_with = "mailroom_jobs::whole::option")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    rate_limit: Option<u32>,
    /// Own open and click tracking for SMTP and outbox mail (SendGrid's for SendGrid); both
    /// on when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    tracking: Option<mailroom_jobs::Tracking>,
}

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

/// The spec a request describes, checked.
async fn spec_of(state: &AppState, body: NewCampaign) -> Result<Spec, ApiError> {
    if state.links.is_none() {
        return Err(ApiError::validation(
            "campaigns need signed unsubscribe links: the operator must set MAILROOM_LINK_KEYS",
        )
        .field("lists"));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(
            ApiError::validation(format!("a name is 1 to {MAX_NAME} characters")).field("name"),
        );
    }
    if body.lists.is_empty() || body.lists.len() > MAX_LISTS {
        return Err(
            ApiError::validation(format!("a campaign goes to 1 to {MAX_LISTS} lists"))
                .field("lists"),
        );
    }
    let mut lists = Vec::with_capacity(body.lists.len());
    for (i, &n) in body.lists.iter().enumerate() {
        let field = format!("lists[{i}]");
        let id = ListId::new(n)
            .ok_or_else(|| ApiError::not_found(format!("no list {n}")).field(&field))?;
        if lists.contains(&id) {
            return Err(ApiError::validation(format!("list {n} is named twice")).field(&field));
        }
        if state.lists.list(id).await?.is_none() {
            return Err(ApiError::not_found(format!("no list {n}")).field(&field));
        }
        lists.push(id);
    }
    if let Some(segment) = &body.segment {
        Filter::parse(segment).map_err(|e| {
            ApiError::validation(e.to_string()).field(format!("segment.{}", e.path))
        })?;
    }
    if body
        .rate_limit
        .is_some_and(|r| !(1..=1_000_000).contains(&r))
    {
        return Err(
            ApiError::validation("rate_limit is 1 to 1,000,000 recipients per second")
                .field("rate_limit"),
        );
    }
    let content = match (body.template, &body.subject) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "give a template or a subject with html/text, not both",
            )
            .field("subject"));
        }
        (None, None) => {
            return Err(ApiError::validation(
                "give a template, or a subject with html and/or text",
            )
            .field("template"));
        }
        (Some(template), None) => {
            if body.html.is_some() || body.text.is_some() {
                return Err(ApiError::validation(
                    "html and text come from the template; leave them out",
                )
                .field("html"));
            }
            if template.name == "newsletter" && template.data.get("unsubscribe_link").is_some() {
                return Err(ApiError::validation(
                    "the campaign fills each recipient's own unsubscribe link; leave it out",
                )
                .field("template.data.unsubscribe_link"));
            }
            Content::Template(TemplateContent {
                name: template.name,
                data: template.data,
            })
        }
        (None, Some(subject)) => Content::Raw(RawContent {
            subject: subject.clone(),
            html: body.html,
            text: body.text,
        }),
    };
    // The sender, reply-to, categories and body get the checks of `POST /v1/emails`.
    let probe = EmailMessage {
        from: body.from.clone(),
        reply_to: body.reply_to.clone(),
        categories: body.categories.clone(),
        ..probe_message(&content)
    };
    probe
        .check()
        .map_err(|e| ApiError::validation(e.message).field(e.field))?;
    let copy = render_copy(&state.renderer, &state.public_url, &content, "")
        .map_err(|e| ApiError::validation(e.to_string()).field(content_field(&content)))?;
    if copy.fields.contains(&Field::UnsubscribeToken) && content_is_raw(&content) {
        return Err(ApiError::validation(format!(
            "{UNSUBSCRIBE_MARK} is reserved; use {{{{unsubscribe_url}}}}"
        ))
        .field("html"));
    }
    // A visible way out in the body, not only the header: CAN-SPAM asks for it, and Gmail's
    // and Yahoo's bulk-sender rules expect it.
    if !copy
        .fields
        .iter()
        .any(|f| matches!(f, Field::UnsubscribeUrl | Field::UnsubscribeToken))
    {
        return Err(ApiError::validation(
            "a campaign's body carries each recipient's unsubscribe link: put {{unsubscribe_url}} in it (the newsletter template has it already)",
        )
        .field(match content {
            Content::Template(_) => "template",
            Content::Raw(_) if body_html_given(&content) => "html",
            Content::Raw(_) => "text",
        }));
    }
    Ok(Spec {
        name: name.to_owned(),
        lists,
        segment: body.segment,
        content,
        from: body.from,
        reply_to: body.reply_to,
        categories: body.categories,
        rate_limit: body.rate_limit,
        tracking: body
            .tracking
            .unwrap_or_else(crate::campaigns::model::tracked),
    })
}

fn body_html_given(content: &Content) -> bool {
    matches!(content, Content::Raw(RawContent { html: Some(_), .. }))
}

fn content_is_raw(content: &Content) -> bool {
    matches!(content, Content::Raw(_))
}

fn content_field(content: &Content) -> &'static str {
    match content {
        Content::Template(_) => "template",
        Content::Raw(_) => "subject",
    }
}

/// A message with `content` to a placeholder address: what `EmailMessage::check` needs.
fn probe_message(content: &Content) -> EmailMessage {
    let mut message = EmailMessage {
        to: vec![Mailbox::new("probe@example.com")],
        subject: Some("probe".to_owned()),
        text: Some("probe".to_owned()),
        ..EmailMessage::default()
    };
    match content {
        Content::Raw(RawContent {
            subject,
            html,
            text,
        }) => {
            message.subject = Some(subject.clone());
            message.html = html.clone();
            message.text = text.clone();
        }
        Content::Template(_) => {
            // The template is checked by rendering it.
        }
    }
    message
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
    let spec = spec_of(&state, body).await?;
    if state.campaigns.live_count(MAX_CAMPAIGNS).await? >= MAX_CAMPAIGNS {
        return Err(ApiError::validation(format!(
            "mailroom keeps at most {MAX_CAMPAIGNS} campaigns; cancel drafts you do not need (a cancelled or finished campaign is dropped after MAILROOM_CAMPAIGN_RETENTION_SECS)"
        )));
    }
    let id = Uuid::now_v7().to_string();
    state.campaigns.create(&id, &spec, send_at).await?;
    let campaign = state
        .campaigns
        .get(&id)
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
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    state
        .campaigns
        .get(&id.to_string())
        .await?
        .ok_or_else(not_found)
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
    let uuid = Uuid::parse_str(&campaign.id)
        .map_err(|_| ApiError::not_found(format!("no campaign {id}")))?;
    match lifecycle::change(&state.campaigns, &state.producer, uuid, change).await {
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
            ApiPath(id): ApiPath<String>,
        ) -> Result<Json<Campaign>, ApiError> {
            Ok(Json(act(&state, &id, $change).await?))
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
    if body.to.is_empty() || body.to.len() > MAX_TEST_RECIPIENTS {
        return Err(ApiError::validation(format!(
            "a test goes to 1 to {MAX_TEST_RECIPIENTS} addresses"
        ))
        .field("to"));
    }
    let mut jobs = Vec::with_capacity(body.to.len());
    for (i, to) in body.to.iter().enumerate() {
        mailroom_jobs::email::check_address(to)
            .map_err(|e| ApiError::validation(e).field(format!("to[{i}]")))?;
        let subscriber = match state
            .lists
            .find(&mailroom_jobs::address::case_key(to))
            .await?
        {
            Some(found) => state.lists.subscriber(found).await?,
            None => None,
        };
        let locale = subscriber.as_ref().and_then(|s| s.locale.clone());
        let locale = state.renderer.negotiate(locale.as_deref());
        let copy = render_copy(
            &state.renderer,
            &state.public_url,
            &campaign.spec.content,
            &locale,
        )
        .map_err(|e| ApiError::validation(e.to_string()).field("template"))?;
        // A test recipient may be no subscriber: the unsubscribe link is a sample that acts on
        // nobody.
        let sample = format!("{}/u/test", state.public_url.trim_end_matches('/'));
        let value = |field: &Field| -> String {
            match field {
                Field::Name => subscriber
                    .as_ref()
                    .and_then(|s| s.name.clone())
                    .unwrap_or_default(),
                Field::Email => to.clone(),
                Field::UnsubscribeUrl => sample.clone(),
                Field::UnsubscribeToken => "test".to_owned(),
                Field::Attribute(name) => subscriber
                    .as_ref()
                    .and_then(|s| s.attributes.get(name))
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default(),
            }
        };
        let filled = copy.fill(&value);
        let mut message = probe_message(&Content::Raw(RawContent {
            subject: format!("[Test] {}", filled.subject),
            html: filled.html,
            text: Some(filled.text),
        }));
        message.to = vec![Mailbox {
            email: to.clone(),
            name: None,
        }];
        message.from = campaign.spec.from.clone();
        message.reply_to = campaign.spec.reply_to.clone();
        message.categories = campaign.spec.categories.clone();
        message
            .metadata
            .insert("mailroom_campaign_test".to_owned(), campaign.id.clone());
        message
            .check()
            .map_err(|e| ApiError::validation(e.message).field(e.field))?;
        let job = SendEmail::new(message).with_request_id(request_id.for_job());
        let options = job.enqueue_options();
        jobs.push((job, options));
    }
    let mut ids = Vec::with_capacity(jobs.len());
    for pushed in state.producer.push_each(&jobs).await? {
        ids.push(pushed.map_err(|e| ApiError::from_push(e, "to"))?.id);
    }
    Ok((StatusCode::ACCEPTED, Json(TestQueued { ids })))
}
