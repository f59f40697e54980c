//! The public subscribe form: `GET /subscribe/{list}` (a small localized page a frontend may
//! link to or embed) and `POST /subscribe` (that form, or JSON `{email, name?, list, locale?}`),
//! open to anyone for `public` lists only. Rate-limited per address and per client IP; a
//! hidden `website` field is a honeypot (a bot that fills it is answered as a person would be,
//! and nothing is stored). Double opt-in lists email a confirmation link; single opt-in lists
//! subscribe at once. The answer never says whether the address was known or suppressed.

use std::net::SocketAddr;

use mailroom_jobs::RateScope;

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
    domain::{ListId, Locale},
    lists::{
        List, Optin, Source, SubscriptionStatus, Visibility,
        model::parse_name,
        store::{Row, SubscriptionChange, Upsert},
    },
    render::pages::PageKind,
    store::Limit,
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
    let Some(email) = get("email") else {
        return ApiError::validation("an email address is required")
            .field("email")
            .into_response();
    };
    let address = match mailroom_jobs::address::parse(email) {
        Ok(a) => a,
        Err(e) => {
            return ApiError::validation(e.message)
                .field("email")
                .into_response();
        }
    };
    let mut row = Row::new(&address);
    if let Some(name) = get("name") {
        match parse_name(name) {
            Ok(name) => row.name = Some(name),
            Err(e) => return ApiError::validation(e).field("name").into_response(),
        }
    }
    if let Some(locale) = get("locale").or(accepted_language(&headers).as_deref()) {
        row.locale = Locale::parse(locale).ok().map(|l| l.as_str().to_owned());
    }
    if get("website").is_some() {
        tracing::info!(list = %list.id, "subscribe form: honeypot filled; nothing stored");
        return answer(&row.email, &list);
    }
    let hour = std::time::Duration::from_secs(3600);
    let ip = client_ip(&headers, peer);
    let (per_address, per_ip) = state.subscribe_rates;
    for (scope, subject, limit, what) in [
        (
            RateScope::SubscribeIp,
            ip.as_str(),
            per_ip,
            "from this address",
        ),
        (
            RateScope::SubscribeAddress,
            row.key.as_str(),
            per_address,
            "for this email address",
        ),
    ] {
        match state.limits.hit(scope, subject, limit, hour).await {
            Ok(Limit::Exceeded { retry_after }) => {
                return ApiError::rate_limited(what, retry_after.as_secs().max(1)).into_response();
            }
            Ok(_) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    match state.suppressions.get(&row.email).await {
        // Suppressed addresses are not subscribed, and the answer does not tell.
        Ok(Some(_)) => return answer(&row.email, &list),
        Ok(None) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    let status = match list.optin {
        Optin::Single => SubscriptionStatus::Confirmed,
        Optin::Double => SubscriptionStatus::Unconfirmed,
    };
    let how = Upsert {
        lists: vec![list.id],
        status,
        source: Source::Form,
        update: false,
    };
    let outcome = match state.lists.upsert(std::slice::from_ref(&row), &how).await {
        Ok(mut o) => o.remove(0),
        Err(e) => return ApiError::from(e).into_response(),
    };
    // A person who left the list asks again here: that is their own act, so it stands.
    let again = outcome.subscriptions.first() == Some(&SubscriptionChange::RefusedUnsubscribed);
    if again
        && let Err(e) = state
            .lists
            .set_subscription(outcome.id, list.id, status, Source::Form)
            .await
    {
        return ApiError::from(e).into_response();
    }
    let added = again || outcome.subscriptions.first() == Some(&SubscriptionChange::Added);
    let pending = matches!(
        state.lists.subscriptions(outcome.id, &[list.id]).await.as_deref(),
        Ok([s]) if s.status == SubscriptionStatus::Unconfirmed
    );
    if list.optin == Optin::Double
        && (added || pending)
        && let Err(e) = crate::lists::optin::send(
            &state.producer,
            state.optin_ttl,
            &row.email,
            row.locale.as_deref(),
            &list,
            outcome.id,
            request_id.for_job(),
        )
        .await
    {
        return ApiError::from_push(e, "email").into_response();
    }
    answer(&row.email, &list)
}
