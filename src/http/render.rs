//! `POST /v1/render` (a rendering without sending) and, in `mailroom dev`, the previews at
//! `/dev/preview`: every template × locale with its sample data, for designers.

use axum::{
    Json,
    extract::{Query, State},
    response::Html,
};
use mailroom_jobs::{TemplateRef, templates::TEMPLATE_NAMES};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, ApiPath},
};
use crate::render::{RenderError, Rendered, locale, samples};

/// What to render.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RenderRequest {
    /// The template's name: `verification`, `welcome`, `password_reset`, `notification`, `newsletter`.
    #[schema(value_type = mailroom_jobs::templates::TemplateName)]
    template: String,
    /// The recipient's language (BCP 47); unknown or malformed tags fall back.
    #[serde(default)]
    locale: Option<String>,
    /// The template's fields.
    #[serde(default)]
    data: serde_json::Value,
}

fn failure(error: RenderError) -> ApiError {
    match error {
        RenderError::Invalid(field) => ApiError::validation(field.message).field(field.field),
        bug => ApiError::internal(&bug),
    }
}

/// Render a template without sending it.
#[utoipa::path(
    post,
    path = "/v1/render",
    tag = "templates",
    request_body = RenderRequest,
    responses(
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 200, description = "The subject, HTML (CSS inlined) and text", body = Rendered),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 422, description = "Unknown template, or data missing or mistyped (the field is named)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn render(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RenderRequest>,
) -> Result<Json<Rendered>, ApiError> {
    let template = TemplateRef {
        name: request.template,
        locale: request.locale,
        data: request.data,
    };
    state.renderer.render(&template).map(Json).map_err(failure)
}

/// The preview index: every template in every locale.
pub(super) async fn preview_index() -> Html<String> {
    let mut page = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mailroom previews</title></head><body><h1>Templates</h1><ul>",
    );
    let locales = locale::supported();
    for name in TEMPLATE_NAMES {
        page.push_str(&format!("<li>{name}:"));
        for locale in &locales {
            page.push_str(&format!(
                " <a href=\"/dev/preview/{name}?locale={locale}\">{locale}</a>"
            ));
        }
        page.push_str("</li>");
    }
    page.push_str("</ul></body></html>");
    Html(page)
}

/// Query of a preview.
#[derive(Debug, Deserialize)]
pub(super) struct PreviewQuery {
    locale: Option<String>,
}

/// One template in one locale, with its sample data, as the recipient sees it.
pub(super) async fn preview(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    Query(query): Query<PreviewQuery>,
) -> Result<Html<String>, ApiError> {
    let data =
        samples::of(&name).ok_or_else(|| ApiError::not_found(format!("no template {name}")))?;
    let template = TemplateRef {
        name,
        locale: query.locale,
        data,
    };
    let rendered = state.renderer.render(&template).map_err(failure)?;
    Ok(Html(rendered.html))
}
