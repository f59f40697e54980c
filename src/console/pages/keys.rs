//! The keys page: a form that makes a key, the stored keys (never a secret) with a revoke
//! button, and the newest entries of the audit log.
//!
//! A key made here is shown once, on the page that answers the form (not after a redirect:
//! the secret never travels in a URL); the page is `no-store`, as every console page.

use askama::Template;
use axum::{
    Extension,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{NaiveDate, NaiveTime};

use super::{AppState, Chrome, Flash, Session, page, trouble, when};
use crate::{
    console::session::{Posted, Tokened},
    keys::{Issued, KeyError, KeySpec, Scope, SenderDomain},
    store::audit::Action,
};

/// The newest audit entries the page shows.
const AUDIT_SHOWN: usize = 50;

struct KeyRow {
    id: String,
    name: String,
    scopes: String,
    created: String,
    created_by: String,
    last_used: String,
}

struct AuditRow {
    at: String,
    who: String,
    action: &'static str,
    target: String,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    chrome: Chrome,
    /// The scopes the form offers: those the session's key has.
    offered: Vec<&'static str>,
    /// The key just made, shown once.
    made: Option<Issued>,
    /// Why the form was refused.
    problem: Option<String>,
    keys: Vec<KeyRow>,
    audit: Vec<AuditRow>,
}

/// `GET /console/keys`.
pub async fn keys(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(flash): Query<Flash>,
) -> Response {
    render(&state, &session, &flash, None, None).await
}

/// The form of `POST /console/keys`, as pairs: its scopes are one checkbox each.
#[derive(Debug, serde::Deserialize)]
#[serde(transparent)]
pub struct NewKey(Vec<(String, String)>);

impl Tokened for NewKey {
    fn csrf(&self) -> &str {
        self.value("csrf")
    }
}

impl NewKey {
    fn value(&self, name: &str) -> &str {
        (self.0.iter())
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// The key the form asks for; what the form cannot say is refused here (field, why), the
    /// rest by the store, as for the API.
    fn spec(&self) -> Result<KeySpec, String> {
        let scopes = (self.0.iter())
            .filter(|(n, _)| n == "scope")
            .map(|(_, v)| Scope::parse(v).ok_or_else(|| format!("scopes: no scope {v}")))
            .collect::<Result<Vec<_>, _>>()?;
        let domains: Vec<SenderDomain> = (self.value("from_domains"))
            .split([',', ' ', '\n', '\r', '\t'])
            .filter(|d| !d.is_empty())
            .map(|d| SenderDomain(d.to_owned()))
            .collect();
        let number = |name: &str| -> Result<Option<u64>, String> {
            match self.value(name) {
                "" => Ok(None),
                text => (text.parse().ok())
                    .map(Some)
                    .ok_or_else(|| format!("{name}: a whole number, or nothing")),
            }
        };
        let rate = (number("rate_per_second")?)
            .map(|n| u32::try_from(n).map_err(|_| "rate_per_second: too large".to_owned()))
            .transpose()?;
        let expires_at = match self.value("expires_on") {
            "" => None,
            text => Some(
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map_err(|_| "expires_on: a date, YYYY-MM-DD".to_owned())?
                    .and_time(NaiveTime::MIN)
                    .and_utc(),
            ),
        };
        Ok(KeySpec {
            name: Some(self.value("name").to_owned()),
            scopes: Some(scopes),
            from_domains: (!domains.is_empty()).then_some(domains),
            rate_per_second: rate,
            daily_quota: number("daily_quota")?,
            expires_at,
        })
    }
}

/// `POST /console/keys`: makes a key with no more scopes than the session's key has.
pub async fn create(
    State(state): State<AppState>,
    Posted { session, form }: Posted<NewKey>,
) -> Response {
    let flash = Flash::default();
    let spec = match form.spec() {
        Ok(spec) => spec,
        Err(problem) => return refused(&state, &session, problem).await,
    };
    let given = spec.scopes.as_deref().unwrap_or_default();
    if let Some(scope) = session.scopes.first_beyond(given) {
        let problem = format!("scopes: a key cannot give a scope it does not have: {scope}");
        return refused(&state, &session, problem).await;
    }
    match state.stored_keys.create(spec, &session.who).await {
        Ok(issued) => {
            tracing::info!(key = %issued.record.id, by = %session.who, "made an API key from the console");
            (state.audit)
                .record(&session.who, Action::KeyCreated, &issued.record.id)
                .await;
            render(&state, &session, &flash, Some(issued), None).await
        }
        Err(error @ (KeyError::Invalid { .. } | KeyError::TooMany)) => {
            refused(&state, &session, error.to_string()).await
        }
        Err(error) => {
            tracing::warn!(%error, "a key could not be made from the console");
            trouble("the key could not be made")
        }
    }
}

/// The page with the form's `problem`, as 422.
async fn refused(state: &AppState, session: &Session, problem: String) -> Response {
    let page = render(state, session, &Flash::default(), None, Some(problem)).await;
    if page.status() == StatusCode::OK {
        (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
    } else {
        page
    }
}

async fn render(
    state: &AppState,
    session: &Session,
    flash: &Flash,
    made: Option<Issued>,
    problem: Option<String>,
) -> Response {
    let chrome = Chrome::new(session, "Keys", "/console/keys", flash);
    let (keys, audit) = match (
        state.stored_keys.list().await,
        state.audit.page(None, AUDIT_SHOWN).await,
    ) {
        (Ok(keys), Ok((audit, _))) => (keys, audit),
        _ => return trouble("the keys could not be read"),
    };
    page(&KeysPage {
        chrome,
        offered: (Scope::ALL.into_iter())
            .filter(|s| session.scopes.allows(*s))
            .map(Scope::as_str)
            .collect(),
        made,
        problem,
        keys: (keys.into_iter())
            .map(|k| KeyRow {
                scopes: (k.scopes.iter())
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                created: when(k.created_at),
                last_used: k.last_used_at.map_or_else(|| "never".to_owned(), when),
                id: k.id,
                name: k.name,
                created_by: k.created_by,
            })
            .collect(),
        audit: (audit.into_iter())
            .map(|e| AuditRow {
                at: when(e.at),
                who: e.who,
                action: e.action.as_str(),
                target: e.target,
            })
            .collect(),
    })
}
