//! The operator console at `/console`, served by `mailroom serve` (and `dev`) from the binary:
//! server-rendered pages (Askama, `templates/console/`), one stylesheet and one small script
//! (`assets/`), charts drawn as SVG here ([`charts`]); nothing is fetched from anywhere else.
//!
//! - [`session`]: sign-in with an API key, the signed session cookie, CSRF tokens; every page
//!   and action below needs a session (in `dev`, without API keys, the console is open).
//! - [`pages`]: Overview, Dead letters, Messages, Campaigns, Lists, Suppressions, Stats,
//!   Templates, Keys, Webhooks. Live parts (`data-live`) are refreshed by the script every few seconds.
//! - [`actions`]: the forms (retry, delete, pause, resume, cancel, suppress, lift), all POST,
//!   each answered with a redirect back to its page.

pub mod actions;
pub mod charts;
mod notice;
pub mod pages;
pub mod session;
mod summary;

use axum::{
    Router,
    http::header,
    response::IntoResponse,
    routing::{get, post},
};

use crate::http::AppState;
use crate::keys::Scope;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The scope each signed-in console route needs beyond `console` (`None`: `console` alone). A
/// route without a rule is refused to every key; a test holds the table to the router.
pub const RULES: &[(&str, Option<Scope>)] = &[
    ("/console", None),
    ("/console/dead", Some(Scope::EmailsReadAll)),
    (
        "/console/dead/{queue}/retry-all",
        Some(Scope::EmailsReadAll),
    ),
    (
        "/console/dead/{queue}/{id}/{action}",
        Some(Scope::EmailsReadAll),
    ),
    ("/console/messages", Some(Scope::EmailsReadAll)),
    ("/console/campaigns", Some(Scope::Campaigns)),
    ("/console/campaigns/{id}/{action}", Some(Scope::Campaigns)),
    ("/console/lists", Some(Scope::ListsRead)),
    ("/console/suppressions", Some(Scope::Suppressions)),
    ("/console/suppressions/remove", Some(Scope::Suppressions)),
    ("/console/stats", Some(Scope::EmailsReadAll)),
    ("/console/templates", None),
    ("/console/templates/{name}/{locale}", None),
    ("/console/templates/{name}/{locale}/html", None),
    ("/console/keys", Some(Scope::Keys)),
    ("/console/keys/{id}/revoke", Some(Scope::Keys)),
    ("/console/webhooks", Some(Scope::Webhooks)),
    ("/console/webhooks/{id}/{action}", Some(Scope::Webhooks)),
    ("/console/logout", None),
];

/// The rule of console `route`, if it has one.
fn required(route: &str) -> Option<Option<Scope>> {
    RULES
        .iter()
        .find(|(r, _)| *r == route)
        .map(|(_, scope)| *scope)
}

/// The console's routes: the sign-in and the assets open, everything else behind a session.
pub fn routes(state: &AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/console", get(pages::overview))
        .route("/console/dead", get(pages::dead))
        .route("/console/dead/{queue}/retry-all", post(actions::retry_all))
        .route("/console/dead/{queue}/{id}/{action}", post(actions::letter))
        .route("/console/messages", get(pages::messages))
        .route("/console/campaigns", get(pages::campaigns))
        .route("/console/campaigns/{id}/{action}", post(actions::campaign))
        .route("/console/lists", get(pages::lists))
        .route(
            "/console/suppressions",
            get(pages::suppressions).post(actions::suppress),
        )
        .route("/console/suppressions/remove", post(actions::lift))
        .route("/console/stats", get(pages::stats))
        .route("/console/templates", get(pages::templates))
        .route("/console/templates/{name}/{locale}", get(pages::template))
        .route(
            "/console/templates/{name}/{locale}/html",
            get(pages::template_html),
        )
        .route(
            "/console/keys",
            get(pages::keys::keys).post(pages::keys::create),
        )
        .route("/console/keys/{id}/revoke", post(actions::revoke_key))
        .route("/console/webhooks", get(pages::hooks::hooks))
        .route("/console/webhooks/{id}/{action}", post(pages::hooks::act))
        .route("/console/logout", post(session::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::require,
        ));
    Router::new()
        .route("/console/login", get(session::form).post(session::login))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .merge(signed_in)
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        JS,
    )
}
