//! The public subscribe form: `GET /subscribe/{list}` (a small localized page a frontend may
//! link to or embed) and `POST /subscribe` (that form, or JSON `{email, name?, list, locale?}`),
//! open to anyone for `public` lists only. Rate-limited per address and per client IP; a
//! hidden `website` field is a honeypot (a bot that fills it is answered as a person would be,
//! and nothing is stored). Double opt-in lists email a confirmation link; single opt-in lists
//! subscribe at once. The answer never says whether the address was known or suppressed.

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::request_id::RequestId;
use super::{
    AppState,
    error::ApiError,
    extract::{ApiPath, RawBody},
    verify::{accepted_language, html, wants_json},
};
use crate::{
    domain::ListId,
    lists::{
        List, Optin, Visibility,
        signup::{Signup, SignupError},
    },
    render::pages::PageKind,
};

async fn public_list(state: &AppState, id: &str) -> Result<List, ApiError> {
    let not_found = || ApiError::not_found(format!("no public list {id}")).field("list");
    let id = ListId::parse(id).ok_or_else(not_found)?;
    state
        .lists
        .list(id)
        .await?
        .filter(|l| l.visibility == Visibility::Public)
        .ok_or_else(not_found)
}

/// `GET /subscribe/{list}`: the form.
pub(super) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(list): ApiPath<String>,
) -> Response {
    let list = match public_list(&state, &list).await {
        Ok(list) => list,
        Err(error) => return error.into_response(),
    };
    let locale = accepted_language(&headers).or_else(|| list.default_locale.clone());
    html(StatusCode::OK, |nonce| {
        state
            .renderer
            .subscribe_form(locale.as_deref(), list.id.get(), &list.name, nonce)
    })
}

/// The client's address for the per-IP limit: the last `X-Forwarded-For` hop (what the
/// nearest proxy saw), else the connection's peer.
pub(super) fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| peer.map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The connection's peer, when the server recorded it.
#[derive(Debug)]
pub(super) struct Peer(pub(super) Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| *peer),
        ))
    }
}

/// `POST /subscribe`.
pub(super) async fn subscribe(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
    Peer(peer): Peer,
    RawBody(body): RawBody,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let fields: Vec<(String, String)> = if json {
        match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body) {
            Ok(map) => map
                .into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, text)
                })
                .collect(),
            Err(e) => {
                return ApiError::invalid_json(format!("the body is not a JSON object: {e}"))
                    .into_response();
            }
        }
    } else {
        url::form_urlencoded::parse(&body).into_owned().collect()
    };
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let answer = |email: &str, list: &List| -> Response {
        if wants_json(&headers) || json {
            return (StatusCode::ACCEPTED, Json(serde_json::json!({"status": "accepted", "email": email, "list": list.id.get()})))
                .into_response();
        }
        let locale = accepted_language(&headers).or_else(|| list.default_locale.clone());
        let (title, body) = match list.optin {
            Optin::Double => ("form-check-title", "form-check-body"),
            Optin::Single => ("page-optin-done-title", "page-optin-done-body"),
        };
        html(StatusCode::OK, |nonce| {
            state.renderer.page(
                &PageKind::Notice {
                    title,
                    body,
                    email,
                    list: &list.name,
                },
                locale.as_deref(),
                nonce,
            )
        })
    };
    let list = match public_list(&state, get("list").unwrap_or_default()).await {
        Ok(list) => list,
        Err(error) => return error.into_response(),
    };
    let accepted = accepted_language(&headers);
    let signup = match Signup::read(get, accepted.as_deref()) {
        Ok(signup) => signup,
        Err(error) => return refused(error).into_response(),
    };
    let ip = client_ip(&headers, peer);
    match (state.signups)
        .sign_up(&list, &signup, &ip, request_id.for_job())
        .await
    {
        Ok(()) => answer(signup.email(), &list),
        Err(error) => refused(error).into_response(),
    }
}

/// The API's answer to a sign-up that was not taken.
fn refused(error: SignupError) -> ApiError {
    let field = error.field();
    let answer = match error {
        SignupError::RateLimited { what, retry_after } => {
            return ApiError::rate_limited(what, retry_after.as_secs().max(1));
        }
        SignupError::Redis(e) => return ApiError::from(e),
        SignupError::Push(e) => return ApiError::from_push(e, "email"),
        other => ApiError::validation(other.to_string()),
    };
    match field {
        Some(field) => answer.field(field),
        None => answer,
    }
}
