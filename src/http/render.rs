//! `POST /v1/render` (a rendering without sending) and, in `mailroom dev`, the previews at
//! `/dev/preview`: every template × locale with its sample data, for designers.

use askama::Template;
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
    /// The template's name: `verification`, `welcome`, `password_reset`, `notification`, `newsletter`, `subscription_confirm`.
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

/// One template on the preview index.
struct TemplateEntry {
    name: &'static str,
    about: &'static str,
}

/// One locale on the preview index.
struct LocaleEntry {
    tag: String,
    name: &'static str,
}

#[derive(Template)]
#[template(path = "pages/preview_index.html")]
struct PreviewIndex {
    templates: Vec<TemplateEntry>,
    locales: Vec<LocaleEntry>,
}

#[derive(Template)]
#[template(path = "pages/preview_frame.html")]
struct PreviewFrame<'a> {
    name: &'a str,
    tag: &'a str,
    subject: &'a str,
    text: &'a str,
}

/// What a template is for, in a line.
pub(crate) fn about(template: &str) -> &'static str {
    match template {
        "verification" => "A single-use link that confirms an address, with its expiry.",
        "welcome" => "Greets a new user, with a link to start.",
        "password_reset" => "A single-use link to choose a new password, with its expiry.",
        "notification" => "The caller's title and message, with an optional button.",
        "newsletter" => "Sections with headings and links, and an unsubscribe link.",
        "subscription_confirm" => {
            "The double opt-in email: a link that confirms a subscription to a list."
        }
        _ => "",
    }
}

/// A locale's name in its own language.
pub(crate) fn endonym(tag: &str) -> &'static str {
    match tag {
        "en" => "English",
        "de" => "Deutsch",
        "es" => "Español",
        "fr" => "Français",
        "pt-BR" => "Português (Brasil)",
        "ar" => "العربية",
        "ja" => "日本語",
        _ => "",
    }
}

/// The preview index: every template in every locale.
pub(super) async fn preview_index() -> Result<Html<String>, ApiError> {
    let page = PreviewIndex {
        templates: TEMPLATE_NAMES
            .iter()
            .map(|name| TemplateEntry {
                name,
                about: about(name),
            })
            .collect(),
        locales: locale::supported()
            .iter()
            .map(|l| {
                let tag = l.to_string();
                let name = endonym(&tag);
                LocaleEntry { tag, name }
            })
            .collect(),
    };
    page.render().map(Html).map_err(|e| ApiError::internal(&e))
}

/// One template in one locale at desktop and phone widths, beside its subject and text part.
pub(super) async fn preview_frame(
    State(state): State<AppState>,
    ApiPath((name, tag)): ApiPath<(String, String)>,
) -> Result<Html<String>, ApiError> {
    let rendered = preview_of(&state, name.clone(), Some(tag))?;
    let page = PreviewFrame {
        name: &name,
        tag: &rendered.locale,
        subject: &rendered.subject,
        text: &rendered.text,
    };
    page.render().map(Html).map_err(|e| ApiError::internal(&e))
}

/// `name` rendered with its sample data in `locale`'s words.
pub(crate) fn preview_of(
    state: &AppState,
    name: String,
    locale: Option<String>,
) -> Result<Rendered, ApiError> {
    let words = locale.as_deref().unwrap_or("en");
    let data = samples::of_in(&name, words)
        .ok_or_else(|| ApiError::not_found(format!("no template {name}")))?;
    let template = TemplateRef { name, locale, data };
    state.renderer.render(&template).map_err(failure)
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
    Ok(Html(preview_of(&state, name, query.locale)?.html))
}
