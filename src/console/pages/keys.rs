//! The keys page: the stored keys (never a secret) with a revoke button, and the newest
//! entries of the audit log.

use askama::Template;
use axum::{
    Extension,
    extract::{Query, State},
    response::Response,
};

use super::{AppState, Chrome, Flash, Session, page, trouble, when};

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
    keys: Vec<KeyRow>,
    audit: Vec<AuditRow>,
}

/// `GET /console/keys`.
pub async fn keys(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(flash): Query<Flash>,
) -> Response {
    let chrome = Chrome::new(&session, "Keys", "/console/keys", &flash);
    let (keys, audit) = match (
        state.stored_keys.list().await,
        state.audit.page(None, AUDIT_SHOWN).await,
    ) {
        (Ok(keys), Ok((audit, _))) => (keys, audit),
        _ => return trouble("the keys could not be read"),
    };
    page(&KeysPage {
        chrome,
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
