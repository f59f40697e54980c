//! `/u/{token}`: unsubscribing the way Gmail and Yahoo require it (RFC 8058), and the
//! preference page behind the same link.
//!
//! - `POST /u/{token}` with the body `List-Unsubscribe=One-Click` (what a mailbox provider
//!   sends: no cookies, no authentication) unsubscribes from the link's list at once and
//!   answers 200, without a redirect. Repeating it changes nothing.
//! - `GET /u/{token}` shows the subscriber's lists (the link's and their public ones) with a
//!   button each, and "unsubscribe from everything"; it changes nothing. Its forms post back
//!   with a form token derived from the link (and are refused from another site), so only the
//!   page itself can post them.
//! - A token that does not verify gets 400 and changes nothing; a subscriber erased since, 410.
//!
//! Unsubscribing from everything also puts the address on the suppression list (reason
//! `unsubscribe`); subscribing again to a list lifts such a suppression (not a bounce's or a
//! complaint's).

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{
    AppState,
    error::ApiError,
    extract::{ApiPath, RawBody},
    verify::{accepted_language, html, wants_json},
};
use crate::{
    domain::ListId,
    lists::{
        List, Source, Subscriber, SubscriptionStatus, Visibility,
        links::{LinkKeys, ListLink},
    },
    render::pages::{PageKind, PreferenceNotice, PreferenceRow},
    store::{Suppression, suppressions::Reason},
};

/// The largest body these routes read.
pub(super) const MAX_BODY: usize = 8 * 1024;

/// What a link resolved to.
struct Resolved {
    token: String,
    link: ListLink,
    subscriber: Subscriber,
    lists: Vec<List>,
}

fn refuse(
    headers: &HeaderMap,
    status: StatusCode,
    error: ApiError,
    page: PageKind<'_>,
    state: &AppState,
) -> Response {
    if wants_json(headers) {
        return (status, error).into_response();
    }
    let locale = accepted_language(headers);
    html(status, |nonce| {
        state.renderer.page(&page, locale.as_deref(), nonce)
    })
}

/// A link that does not verify: 400, nothing changed.
fn invalid_token(state: &AppState, headers: &HeaderMap) -> Response {
    refuse(
        headers,
        StatusCode::BAD_REQUEST,
        ApiError::invalid_token(),
        PageKind::Invalid,
        state,
    )
}

/// A link whose subscriber was erased since: 410.
fn gone(state: &AppState, headers: &HeaderMap) -> Response {
    refuse(
        headers,
        StatusCode::GONE,
        ApiError::token_gone(),
        PageKind::Notice {
            title: "prefs-gone-title",
            body: "prefs-gone-body",
            email: "",
            list: "",
        },
        state,
    )
}

async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    token: String,
) -> Result<Resolved, Response> {
    let Some(link) = state.links.as_deref().and_then(|keys| keys.verify(&token)) else {
        return Err(invalid_token(state, headers));
    };
    let subscriber = match state.lists.subscriber(link.subscriber).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(gone(state, headers)),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let lists = match state.lists.lists().await {
        Ok(lists) => lists,
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    Ok(Resolved {
        token,
        link,
        subscriber,
        lists,
    })
}

impl Resolved {
    /// The lists the page shows: the link's, and public lists with a subscription.
    async fn rows(&self, state: &AppState) -> Result<Vec<(List, SubscriptionStatus)>, ApiError> {
        let ids: Vec<ListId> = self.lists.iter().map(|l| l.id).collect();
        let subscriptions = state.lists.subscriptions(self.subscriber.id, &ids).await?;
        let mut rows = Vec::new();
        for list in &self.lists {
            let status = subscriptions
                .iter()
                .find(|s| s.list == list.id)
                .map(|s| s.status);
            let shown = list.id == self.link.list
                || (list.visibility == Visibility::Public && status.is_some());
            if shown {
                rows.push((
                    list.clone(),
                    status.unwrap_or(SubscriptionStatus::Unsubscribed),
                ));
            }
        }
        Ok(rows)
    }

    async fn page(&self, state: &AppState, notice: Option<PreferenceNotice<'_>>) -> Response {
        let rows = match self.rows(state).await {
            Ok(rows) => rows,
            Err(e) => return e.into_response(),
        };
        let locale = self.subscriber.locale.clone().or_else(|| {
            self.lists
                .iter()
                .find(|l| l.id == self.link.list)
                .and_then(|l| l.default_locale.clone())
        });
        let shown: Vec<PreferenceRow<'_>> = rows
            .iter()
            .map(|(list, status)| PreferenceRow {
                list: list.id.get(),
                name: &list.name,
                status: *status,
            })
            .collect();
        let form_token = state
            .links
            .as_deref()
            .map(|k| k.form_token(&self.token))
            .unwrap_or_default();
        html(StatusCode::OK, |nonce| {
            state.renderer.preferences(
                locale.as_deref(),
                &self.subscriber.email,
                &self.token,
                &form_token,
                &shown,
                notice,
                nonce,
            )
        })
    }

    fn list_name(&self, list: ListId) -> String {
        self.lists
            .iter()
            .find(|l| l.id == list)
            .map_or_else(|| list.to_string(), |l| l.name.clone())
    }
}

/// The preference page (changes nothing).
pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(token): ApiPath<String>,
) -> Response {
    match resolve(&state, &headers, token).await {
        Ok(resolved) => resolved.page(&state, None).await,
        Err(response) => response,
    }
}

/// One-click unsubscribe, or a preference form's action.
pub(super) async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(token): ApiPath<String>,
    RawBody(body): RawBody,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("action").is_none() && get("List-Unsubscribe") == Some("One-Click") {
        return one_click(&state, &headers, &token).await;
    }
    let resolved = match resolve(&state, &headers, token).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let outcome = match get("action") {
        None => Err(ApiError::bad_request(
            "post List-Unsubscribe=One-Click, or use the preference page's buttons",
        )),
        Some(action) => {
            if let Err(e) = check_form(&state, &headers, &resolved, get("form")) {
                return e.into_response();
            }
            preference(&state, &resolved, action, get("list")).await
        }
    };
    match outcome {
        Ok(notice) => {
            let notice = match &notice {
                Some(Notice::One(name)) => Some(PreferenceNotice::Unsubscribed(name)),
                Some(Notice::Again(name)) => Some(PreferenceNotice::Resubscribed(name)),
                Some(Notice::All) => Some(PreferenceNotice::All),
                None => None,
            };
            resolved.page(&state, notice).await
        }
        Err(error) => error.into_response(),
    }
}

/// What a mailbox provider posts (RFC 8058): unsubscribe from the link's list at once and
/// answer shortly (nobody reads it). The subscriber comes back from the unsubscribing script
/// itself and the list's name from a short-lived cache, so this costs one Redis round trip:
/// providers post these in bursts when a campaign lands.
async fn one_click(state: &AppState, headers: &HeaderMap, token: &str) -> Response {
    let Some(link) = state.links.as_deref().and_then(|keys| keys.verify(token)) else {
        return invalid_token(state, headers);
    };
    let subscriber = match state
        .lists
        .set_subscription_of(
            link.subscriber,
            link.list,
            SubscriptionStatus::Unsubscribed,
            Source::Link,
        )
        .await
    {
        Ok(Ok(subscriber)) => subscriber,
        Ok(Err(_)) => return gone(state, headers),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let name = match state.lists.list_name(link.list).await {
        Ok(name) => name.map_or_else(|| link.list.to_string(), |n| n.to_string()),
        Err(e) => return ApiError::from(e).into_response(),
    };
    html(StatusCode::OK, |nonce| {
        state.renderer.page(
            &PageKind::Notice {
                title: "prefs-title",
                body: "prefs-done-one",
                email: &subscriber.email,
                list: &name,
            },
            subscriber.locale.as_deref(),
            nonce,
        )
    })
}

enum Notice {
    One(String),
    Again(String),
    All,
}

/// The form must carry the page's form token, and not come from another site.
fn check_form(
    state: &AppState,
    headers: &HeaderMap,
    resolved: &Resolved,
    form_token: Option<&str>,
) -> Result<(), ApiError> {
    let forbidden = || ApiError::forbidden("this form is posted only from its own page");
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site");
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| !same_origin(origin, &state.public_url));
    let keys: Option<&LinkKeys> = state.links.as_deref();
    let valid = form_token
        .zip(keys)
        .is_some_and(|(value, keys)| keys.check_form_token(&resolved.token, value));
    if cross_site || foreign_origin || !valid {
        return Err(forbidden());
    }
    Ok(())
}

fn same_origin(origin: &str, public_url: &str) -> bool {
    match (url::Url::parse(origin), url::Url::parse(public_url)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

async fn unsubscribe(
    state: &AppState,
    resolved: &Resolved,
    list: ListId,
) -> Result<String, ApiError> {
    state
        .lists
        .set_subscription(
            resolved.subscriber.id,
            list,
            SubscriptionStatus::Unsubscribed,
            Source::Link,
        )
        .await?
        .map_err(|_| ApiError::not_found("no such subscriber"))?;
    Ok(resolved.list_name(list))
}

async fn preference(
    state: &AppState,
    resolved: &Resolved,
    action: &str,
    list: Option<&str>,
) -> Result<Option<Notice>, ApiError> {
    let rows = resolved.rows(state).await?;
    let target = match list {
        Some(text) => {
            let id = ListId::parse(text)
                .ok_or_else(|| ApiError::bad_request("no such list").field("list"))?;
            // Only what the page shows may be changed through it.
            rows.iter()
                .find(|(l, _)| l.id == id)
                .map(|(l, _)| l.id)
                .ok_or_else(|| ApiError::bad_request("no such list on this page").field("list"))?
        }
        None => resolved.link.list,
    };
    match action {
        "unsubscribe" => Ok(Some(Notice::One(
            unsubscribe(state, resolved, target).await?,
        ))),
        "resubscribe" => {
            state
                .lists
                .set_subscription(
                    resolved.subscriber.id,
                    target,
                    SubscriptionStatus::Confirmed,
                    Source::Link,
                )
                .await?
                .map_err(|_| ApiError::not_found("no such subscriber"))?;
            if let Some(s) = state.suppressions.get(&resolved.subscriber.email).await?
                && matches!(s.reason, Reason::Unsubscribe | Reason::GroupUnsubscribe)
            {
                state
                    .suppressions
                    .delete(&resolved.subscriber.email)
                    .await?;
            }
            Ok(Some(Notice::Again(resolved.list_name(target))))
        }
        "unsubscribe_all" => {
            for (list, status) in &rows {
                if *status != SubscriptionStatus::Unsubscribed {
                    unsubscribe(state, resolved, list.id).await?;
                }
            }
            // Lists the page does not show (private ones) go too: "everything" means it.
            let ids: Vec<ListId> = resolved.lists.iter().map(|l| l.id).collect();
            for subscription in state
                .lists
                .subscriptions(resolved.subscriber.id, &ids)
                .await?
            {
                if subscription.status != SubscriptionStatus::Unsubscribed {
                    unsubscribe(state, resolved, subscription.list).await?;
                }
            }
            state
                .suppressions
                .put(&Suppression {
                    email: resolved.subscriber.email.clone(),
                    reason: Reason::Unsubscribe,
                    source: "link".to_owned(),
                    detail: Some("unsubscribed from everything on the preference page".to_owned()),
                    created_at: chrono::Utc::now(),
                })
                .await?;
            Ok(Some(Notice::All))
        }
        _ => Err(ApiError::bad_request(
            "the action is unsubscribe, resubscribe or unsubscribe_all",
        )
        .field("action")),
    }
}
