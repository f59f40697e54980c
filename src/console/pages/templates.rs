//! The templates pages: every template in every language, rendered with its sample data.

use askama::Template;
use axum::{
    Extension,
    extract::{Path, State},
    response::{Html, IntoResponse, Response},
};
use mailroom_jobs::templates::TEMPLATE_NAMES;

use super::{AppState, Chrome, Flash, Session, page, previews};

struct TemplateRow {
    name: &'static str,
    about: &'static str,
}

#[derive(Template)]
#[template(path = "console/templates.html")]
struct TemplatesPage {
    chrome: Chrome,
    templates: Vec<TemplateRow>,
    locales: Vec<(String, &'static str)>,
}

fn locales() -> Vec<(String, &'static str)> {
    crate::render::locale::supported()
        .iter()
        .map(|l| {
            let tag = l.to_string();
            let name = previews::endonym(&tag);
            (tag, name)
        })
        .collect()
}

/// `GET /console/templates`: every template, every language.
pub async fn templates(Extension(session): Extension<Session>) -> Response {
    page(&TemplatesPage {
        chrome: Chrome::new(
            &session,
            "Templates",
            "/console/templates",
            &Flash::default(),
        ),
        templates: TEMPLATE_NAMES
            .iter()
            .map(|name| TemplateRow {
                name,
                about: previews::about(name),
            })
            .collect(),
        locales: locales(),
    })
}

#[derive(Template)]
#[template(path = "console/template.html")]
struct TemplatePage {
    chrome: Chrome,
    name: String,
    tag: String,
    subject: String,
    text: String,
    locales: Vec<(String, &'static str)>,
}

/// `GET /console/templates/{name}/{locale}`: the template at desktop and phone widths beside
/// its text part, with its sample data.
pub async fn template(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path((name, tag)): Path<(String, String)>,
) -> Response {
    match previews::preview_of(&state, name.clone(), Some(tag)) {
        Ok(rendered) => page(&TemplatePage {
            chrome: Chrome::new(
                &session,
                "Templates",
                "/console/templates",
                &Flash::default(),
            ),
            name,
            tag: rendered.locale,
            subject: rendered.subject,
            text: rendered.text,
            locales: locales(),
        }),
        Err(error) => error.into_response(),
    }
}

/// `GET /console/templates/{name}/{locale}/html`: the HTML part alone, for the frames.
pub async fn template_html(
    State(state): State<AppState>,
    Path((name, tag)): Path<(String, String)>,
) -> Response {
    match previews::preview_of(&state, name, Some(tag)) {
        // The email's own markup and styles, as a mail client shows them (no script in it).
        Ok(rendered) => (
            [(
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; frame-ancestors 'self'",
            )],
            Html(rendered.html),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}
