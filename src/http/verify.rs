//! The verification flow: `POST /v1/verifications` issues, `GET /verify` shows the
//! confirmation page, `POST /verify` confirms, `GET|DELETE /v1/addresses/{email}` reads and
//! clears the result.
//!
//! Mail scanners open links before people do, and some (Microsoft Safe Links among them) open
//! them in a real browser that runs scripts: so a GET never spends a token, and the page runs
//! no script that could. It shows one clear button; the person's press posts the form. Pages
//! carry a CSP that allows only their own inline style (by nonce) and no script at all, no
//! framing, no referrer (the token is in the URL), no caching.

use std::collections::{BTreeMap, HashMap};

use axum::{
    Json,
    body::Bytes,
    extract::{Extension, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use chrono::{Duration, SecondsFormat, Utc};
use mailroom_jobs::{DeliverEvent, RateScope, SendVerification, WebUrl, email::check_address};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::request_id::RequestId;
use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorBody},
    extract::{ApiJson, ApiPath},
};
use crate::{
    render::pages::PageKind,
    store::Limit,
    verification::{AddressStatus, Token},
};

/// A verification request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VerificationRequest {
    /// The address to verify.
    #[schema(format = Email)]
    email: String,
    /// The recipient's language (BCP 47), for the email and the pages.
    #[serde(default)]
    locale: Option<String>,
    /// Where to offer to send the person after confirming; only origins on
    /// `MAILROOM_ALLOWED_REDIRECT_ORIGINS` are ever used. An http(s) URL.
    #[serde(default)]
    #[schema(
        pattern = "^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,4})?([/?#][^\\s]*)?$"
    )]
    return_url: Option<String>,
    /// Your key/value pairs, handed back in the `email.verified` event.
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// The answer to a verification request. The token is never in it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct VerificationIssued {
    /// The request's id.
    id: String,
    /// The address the email goes to.
    email: String,
    /// When the link stops working (RFC 3339).
    expires_at: String,
}

/// Email a confirmation link.
#[utoipa::path(
    post,
    path = "/v1/verifications",
    tag = "verification",
    request_body = VerificationRequest,
    responses(
        (status = 400, description = "Not valid JSON", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 202, description = "The email is queued", body = VerificationIssued),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 422, description = "An invalid address or return URL", body = ErrorBody),
        (status = 429, description = "Over the per-address or per-key limit; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn issue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request_id: RequestId,
    ApiJson(request): ApiJson<VerificationRequest>,
) -> Result<(StatusCode, Json<VerificationIssued>), ApiError> {
    check_address(&request.email).map_err(|m| ApiError::validation(m.0).field("email"))?;
    if let Some(url) = &request.return_url {
        WebUrl::parse(url).map_err(|m| ApiError::validation(m.0).field("return_url"))?;
        if !named_host(url) {
            return Err(ApiError::validation(
                "return_url must name its host with letters, digits, dots and hyphens",
            )
            .field("return_url"));
        }
    }
    let (per_address, per_key) = state.verify_rates;
    let hour = std::time::Duration::from_secs(3600);
    let address = request.email.to_lowercase();
    for (scope, subject, limit, what) in [
        (
            RateScope::VerifyKey,
            caller.id.as_str(),
            per_key,
            "with this API key",
        ),
        (
            RateScope::VerifyAddress,
            address.as_str(),
            per_address,
            "for this address",
        ),
    ] {
        if let Limit::Exceeded { retry_after } =
            state.limits.hit(scope, subject, limit, hour).await?
        {
            return Err(ApiError::rate_limited(what, retry_after.as_secs().max(1)));
        }
    }
    let expires_at =
        Utc::now() + Duration::seconds(i64::try_from(state.verify_ttl).unwrap_or(3600));
    // A newer request replaces the older link at once, not only when its email goes out.
    state.verifications.invalidate(&request.email).await?;
    let job = SendVerification {
        id: Uuid::now_v7(),
        email: request.email,
        locale: request.locale,
        return_url: request.return_url,
        metadata: request.metadata,
        expires_at,
        optin_list: None,
        request_id: request_id.for_job(),
    };
    // Recorded with the key that asked, like its messages.
    let options = mailroom_jobs::EnqueueOptions {
        owner: caller.stored.clone(),
        ..mailroom_jobs::Job::enqueue_options(&job)
    };
    state
        .producer
        .push_with(&job, options)
        .await
        .map_err(|e| ApiError::from_push(e, ""))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(VerificationIssued {
            id: job.id.to_string(),
            email: job.email,
            expires_at: expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }),
    ))
}

/// Whether `url` (already an http(s) URL) names its host as the OpenAPI document says: letters,
/// digits, dots and hyphens, starting and ending with a letter or digit, an optional port of up
/// to four digits, then anything but white space.
fn named_host(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or_default();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    edge(host.chars().next())
        && edge(host.chars().last())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && (authority.len() == host.len()
            || (!port.is_empty() && port.len() <= 4 && port.bytes().all(|b| b.is_ascii_digit())))
        && !tail.chars().any(char::is_whitespace)
}

/// Whether an address is verified.
#[utoipa::path(
    get,
    path = "/v1/addresses/{email}",
    tag = "verification",
    params(("email" = String, Path, description = "The address")),
    responses((status = 200, description = "Its state", body = AddressStatus), (status = 401, description = "No or wrong API key", body = ErrorBody)),
    security(("api_key" = []))
)]
pub(super) async fn address(
    State(state): State<AppState>,
    ApiPath(email): ApiPath<String>,
) -> Result<Json<AddressStatus>, ApiError> {
    Ok(Json(state.verifications.address(&email).await?))
}

/// Forget that an address was verified.
#[utoipa::path(
    delete,
    path = "/v1/addresses/{email}",
    tag = "verification",
    params(("email" = String, Path, description = "The address")),
    responses((status = 204, description = "Cleared"), (status = 404, description = "It was not verified", body = ErrorBody), (status = 401, description = "No or wrong API key", body = ErrorBody)),
    security(("api_key" = []))
)]
pub(super) async fn clear(
    State(state): State<AppState>,
    ApiPath(email): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.verifications.clear(&email).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{email} is not verified")).field("email"))
    }
}

/// How the caller wants the answer.
pub(super) fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// The first language of `Accept-Language`, if any.
pub(super) fn accepted_language(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
    let first = value.split(',').next()?.split(';').next()?.trim();
    (!first.is_empty() && first != "*").then(|| first.to_owned())
}

/// A page with the headers every verification page carries.
fn page(
    state: &AppState,
    status: StatusCode,
    kind: &PageKind<'_>,
    locale: Option<&str>,
) -> Response {
    html(status, |nonce| state.renderer.page(kind, locale, nonce))
}

/// An HTML page rendered by `render` (given the CSP nonce for its style), with the headers
/// every public page carries: a CSP that allows only that style and posting to this origin, no
/// framing, no referrer, no caching (the URL may carry a token).
pub(super) fn html(
    status: StatusCode,
    render: impl FnOnce(&str) -> Result<String, crate::render::RenderError>,
) -> Response {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        return ApiError::internal(&"no randomness for the CSP nonce").into_response();
    }
    let nonce = base64::engine::general_purpose::STANDARD.encode(bytes);
    let html = match render(&nonce) {
        Ok(html) => html,
        Err(error) => return ApiError::internal(&error).into_response(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error answer in the API's one shape, never cached (the request carried a token).
fn json_error(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn invalid(state: &AppState, headers: &HeaderMap) -> Response {
    if wants_json(headers) {
        return json_error(ApiError::invalid_token());
    }
    page(
        state,
        StatusCode::BAD_REQUEST,
        &PageKind::Invalid,
        accepted_language(headers).as_deref(),
    )
}

/// The 410 answer. A link used before (not merely expired) still knows its return URL, whose
/// origin, when allowed, is offered as the way back.
async fn expired(state: &AppState, headers: &HeaderMap, token: &Token) -> Response {
    if wants_json(headers) {
        return json_error(ApiError::token_gone());
    }
    let spent = state.verifications.spent(token).await.ok().flatten();
    let back = spent
        .as_ref()
        .filter(|(url, _)| !url.is_empty() && allowed(&state.redirect_origins, url))
        .and_then(|(url, _)| url::Url::parse(url).ok())
        .map(|url| url.origin().ascii_serialization());
    let used = spent.is_some();
    let locale = spent
        .and_then(|(_, locale)| locale)
        .or_else(|| accepted_language(headers));
    // A link opened again after it worked is no error for the person holding it.
    let (status, kind) = if used {
        (
            StatusCode::OK,
            PageKind::AlreadyConfirmed {
                back: back.as_deref(),
            },
        )
    } else {
        (
            StatusCode::GONE,
            PageKind::Expired {
                back: back.as_deref(),
            },
        )
    };
    page(state, status, &kind, locale.as_deref())
}

/// `GET /verify?token=…`: the confirmation page. Spends nothing.
pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(token) = query.get("token").and_then(|t| Token::parse(t)) else {
        return invalid(&state, &headers);
    };
    let pending = match state.verifications.pending(&token).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return expired(&state, &headers, &token).await,
        Err(error) => return ApiError::from(error).into_response(),
    };
    if wants_json(&headers) {
        return Json(serde_json::json!({"email": pending.email, "verified": false}))
            .into_response();
    }
    let locale = pending
        .locale
        .clone()
        .or_else(|| accepted_language(&headers));
    let list = match crate::lists::optin::named_in(&pending.metadata) {
        Some((list, _)) => match state.lists.list(list).await {
            Ok(found) => found.map(|l| l.name),
            Err(error) => return ApiError::from(error).into_response(),
        },
        None => None,
    };
    let kind = match &list {
        Some(name) => PageKind::OptinConfirm {
            email: &pending.email,
            list: name,
            token: token.expose(),
        },
        None => PageKind::Confirm {
            email: &pending.email,
            token: token.expose(),
        },
    };
    page(&state, StatusCode::OK, &kind, locale.as_deref())
}

/// `POST /verify` (form field `token`): spends the token, once.
pub(super) async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = url::form_urlencoded::parse(&body)
        .find(|(name, _)| name == "token")
        .and_then(|(_, value)| Token::parse(&value));
    let Some(token) = token else {
        return invalid(&state, &headers);
    };
    let verified = match state.verifications.consume(&token).await {
        Ok(Some(verified)) => {
            tracing::info!(email = %verified.email, "address confirmed");
            verified
        }
        Ok(None) => return expired(&state, &headers, &token).await,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let subscribed = match confirm_subscription(&state, &verified).await {
        Ok(subscribed) => subscribed,
        Err(error) => return error.into_response(),
    };
    if state.callbacks {
        let event = DeliverEvent {
            id: Uuid::now_v7(),
            event: serde_json::json!({
                "type": "email.verified",
                "email": verified.email,
                "verified_at": verified.verified_at,
                "metadata": verified.metadata,
            }),
        };
        // The event is already on the stream; the callback is a convenience on top of it.
        if let Err(error) = state.producer.push(&event).await {
            tracing::error!(%error, "could not queue the email.verified callback; the event is on the stream");
        }
    }
    let continue_to = verified
        .return_url
        .as_deref()
        .filter(|url| allowed(&state.redirect_origins, url));
    if wants_json(&headers) {
        return Json(serde_json::json!({
            "email": verified.email,
            "verified": true,
            "verified_at": verified.verified_at,
            "return_url": continue_to,
        }))
        .into_response();
    }
    let locale = verified
        .locale
        .clone()
        .or_else(|| accepted_language(&headers));
    let kind = match &subscribed {
        Some(list) => PageKind::Notice {
            title: "page-optin-done-title",
            body: "page-optin-done-body",
            email: &verified.email,
            list,
        },
        None => PageKind::Verified {
            email: &verified.email,
            continue_to,
        },
    };
    page(&state, StatusCode::OK, &kind, locale.as_deref())
}

/// For a double opt-in's token: confirms the subscription, puts `subscription.confirmed` on the
/// events stream and queues its callback. The list's name, when it was one.
async fn confirm_subscription(
    state: &AppState,
    verified: &crate::verification::Verified,
) -> Result<Option<String>, ApiError> {
    use crate::lists::{Source, SubscriptionStatus, optin};
    let Some((list, subscriber)) = optin::named_in(&verified.metadata) else {
        return Ok(None);
    };
    let Some(found) = state.lists.list(list).await? else {
        return Ok(None);
    };
    if state
        .lists
        .set_subscription(
            subscriber,
            list,
            SubscriptionStatus::Confirmed,
            Source::Form,
        )
        .await?
        .is_err()
    {
        // Erased since the email was sent: the address is verified, nothing is subscribed.
        return Ok(None);
    }
    tracing::info!(list = %list, subscriber = %subscriber, "subscription confirmed");
    let confirmed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let (list_text, subscriber_text) = (list.to_string(), subscriber.to_string());
    state
        .verifications
        .append_event(
            "subscription.confirmed",
            &[
                ("email", &verified.email),
                ("list", &list_text),
                ("subscriber", &subscriber_text),
                ("confirmed_at", &confirmed_at),
            ],
        )
        .await?;
    if state.callbacks {
        let event = DeliverEvent {
            id: Uuid::now_v7(),
            event: serde_json::json!({
                "type": "subscription.confirmed",
                "email": verified.email,
                "list": list.get(),
                "subscriber": subscriber.get(),
                "confirmed_at": confirmed_at,
            }),
        };
        if let Err(error) = state.producer.push(&event).await {
            tracing::error!(%error, "could not queue the subscription.confirmed callback; the event is on the stream");
        }
    }
    Ok(Some(found.name))
}

/// True when `url`'s origin is on the allow-list: never an open redirect.
fn allowed(origins: &[String], url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .is_some_and(|u| origins.contains(&u.origin().ascii_serialization().to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn only_allowed_origins_are_offered() {
        let origins = vec![
            "https://app.example.com".to_owned(),
            "http://localhost:3000".to_owned(),
        ];
        assert!(allowed(&origins, "https://app.example.com/welcome?x=1"));
        assert!(allowed(&origins, "https://APP.example.com/"));
        assert!(allowed(&origins, "http://localhost:3000/done"));
        assert!(!allowed(&origins, "https://app.example.com.evil.test/"));
        assert!(
            !allowed(&origins, "http://app.example.com/"),
            "the scheme is part of the origin"
        );
        assert!(!allowed(
            &origins,
            "https://evil.test/?next=https://app.example.com"
        ));
        assert!(!allowed(&origins, "javascript:alert(1)"));
        assert!(!allowed(&[], "https://app.example.com/"));
    }
}
