//! Signing in to the console with an API key, and what every console request checks.
//!
//! - `POST /console/login` with the form field `api_key`: when it is one of
//!   `MAILROOM_API_KEYS`, the answer sets the session cookie and sends the browser on.
//! - The cookie is `{expiry}.{key id}.{mac}`: the expiry (unix seconds, 12 hours on), which key
//!   signed in (the same id the API logs, never the key), and an HMAC-SHA256 of both under that
//!   key's session secret ([`ApiKeys::session_key`]). It is `HttpOnly`, `SameSite=Strict`,
//!   `Path=/console`, and `Secure` when `MAILROOM_PUBLIC_URL` is https. Nothing is stored: any
//!   `serve` process checks any session, and removing a key from `MAILROOM_API_KEYS` ends its
//!   sessions.
//! - Every form that changes something carries a CSRF token (an HMAC of the session under the
//!   same secret) that the action checks in constant time, and a request the browser marks
//!   `Sec-Fetch-Site: cross-site` is refused as well (with `SameSite=Strict`, three locks).
//! - Without keys (`mailroom dev`, or `MAILROOM_INSECURE_NO_AUTH=1`) the console is open, as the
//!   API is; its forms still carry a token, from a secret made for the process.
//! - Sign-in attempts are limited per client address (30 an hour), through the shared limiter.

use std::{sync::OnceLock, time::Duration};

use askama::Template;
use axum::{
    Form,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Redirect, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{http::AppState, store::Limit};

/// The cookie's name.
pub const COOKIE: &str = "mailroom_console";

/// How long a session lasts.
const LIFE_SECS: i64 = 12 * 3600;

/// Sign-in attempts per client address per hour.
const ATTEMPTS_PER_HOUR: u64 = 30;

/// Who is signed in, and the token their forms carry.
#[derive(Debug, Clone)]
pub struct Session {
    /// The key's id (`-` without keys).
    pub who: String,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    /// Signed in with a key (false: the console is open).
    pub signed_in: bool,
    /// What the key may do: every scope for an operator key (or an open console).
    pub scopes: crate::keys::Scopes,
}

fn mac(secret: &[u8], purpose: &str, expires: i64, who: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{purpose}|{expires}|{who}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The process's own secret for an open console's CSRF tokens.
fn open_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut secret = [0u8; 32];
        // From the OS random source: a process that cannot read it stops here rather than sign
        // with a guessable secret.
        getrandom::fill(&mut secret).expect("the OS random source");
        secret
    })
}

/// The secret that signs `who`'s sessions and its scopes: an operator key's, or a stored key's
/// while it may sign in.
async fn secret_of(state: &AppState, who: &str) -> Option<([u8; 32], crate::keys::Scopes)> {
    if let Some(id) = who.strip_prefix(crate::keys::PREFIX) {
        return state.stored_keys.console_secret(id).await.ok().flatten();
    }
    let keys = state.api_keys.as_ref()?;
    Some((*keys.session_key(who)?, crate::keys::Scopes::all()))
}

/// The session a `Cookie` header carries, when its signature holds and it has not expired.
async fn session_of(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    if state.api_keys.is_none() {
        return Some(Session {
            who: "-".to_owned(),
            csrf: URL_SAFE_NO_PAD.encode(mac(open_secret(), "csrf", 0, "-")),
            signed_in: false,
            scopes: crate::keys::Scopes::all(),
        });
    }
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    let mut parts = value.splitn(3, '.');
    let (expires, who, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let expires: i64 = expires.parse().ok()?;
    if expires <= chrono::Utc::now().timestamp() {
        return None;
    }
    let (secret, scopes) = secret_of(state, who).await?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let expected = mac(&secret, "session", expires, who);
    if !bool::from(expected.ct_eq(&signature)) {
        return None;
    }
    Some(Session {
        who: who.to_owned(),
        csrf: URL_SAFE_NO_PAD.encode(mac(&secret, "csrf", expires, who)),
        signed_in: true,
        scopes,
    })
}

/// A page or action the session's key lacks the scope for (403, in words).
fn lacking(scope: Option<crate::keys::Scope>) -> Response {
    let needs = scope.map_or(
        "(none: this page has no scope rule)",
        crate::keys::Scope::as_str,
    );
    let page = format!(
        "<!DOCTYPE html><title>Not for this key</title><p>The key you signed in with may not use this page: it needs the scope {needs}. <a href=\"/console\">Back to the overview</a>.</p>"
    );
    (StatusCode::FORBIDDEN, Html(page)).into_response()
}

/// Every console page and action: without a session, a page sends the browser to the sign-in
/// (and shows nothing), an action is refused.
pub async fn require(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if let Some(session) = session_of(&state, request.headers()).await {
        let route = request.extensions().get::<axum::extract::MatchedPath>();
        let needed = route.and_then(|r| super::required(r.as_str()));
        match needed {
            Some(None) => {}
            Some(Some(scope)) if session.scopes.contains(scope) => {}
            Some(scope) => return lacking(scope),
            None => return lacking(None),
        }
        request.extensions_mut().insert(session);
        let mut response = next.run(request).await;
        // Console pages hold operational data: never cached, never framed elsewhere.
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(CSP));
        headers.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
        return response;
    }
    let path = request.uri().path();
    let next = if path.starts_with("/console") && request.method() == axum::http::Method::GET {
        path
    } else {
        "/console"
    };
    let to = format!(
        "/console/login?next={}",
        percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
    );
    ([(header::CACHE_CONTROL, "no-store")], Redirect::to(&to)).into_response()
}

/// What the console's pages may load: their own stylesheet, script and frames, nothing else.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'";

/// The refusal (403, in words) of an action whose form token is not the session's, or that the
/// browser says comes from another site; `None` when the action may go ahead.
fn forged(session: &Session, cross_site: bool, token: &str) -> Option<Response> {
    let matches = bool::from(session.csrf.as_bytes().ct_eq(token.as_bytes()));
    if cross_site || !matches {
        return Some((
            StatusCode::FORBIDDEN,
            Html("<!DOCTYPE html><title>Refused</title><p>This form is stale or came from another site. Go back, reload the page and try again.</p>"),
        )
            .into_response());
    }
    None
}

/// What every console form carries: the session's CSRF token.
pub trait Tokened {
    /// The token the form was posted with.
    fn csrf(&self) -> &str;
}

/// A console form posted with its session's token: the extractor every action takes, so that
/// none can forget the check. Rejected with 403 when the token is missing or wrong or the
/// browser says the form came from another site; with the form's own 4xx when it does not parse.
#[derive(Debug)]
pub struct Posted<T> {
    /// Who posted it.
    pub session: Session,
    /// The form's fields.
    pub form: T,
}

impl<S, T> axum::extract::FromRequest<S> for Posted<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Tokened + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        // The session layer put it there; without it, nothing is posted.
        let Some(session) = request.extensions().get::<Session>().cloned() else {
            return Err(StatusCode::FORBIDDEN.into_response());
        };
        let cross_site = request
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        let Form(form) = Form::<T>::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match forged(&session, cross_site, form.csrf()) {
            Some(refused) => Err(refused),
            None => Ok(Self { session, form }),
        }
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    error: Option<&'a str>,
    next: &'a str,
}

/// The query of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Where to go after signing in: a console path, nothing else (no open redirect).
fn next_of(next: Option<&str>) -> &str {
    next.filter(|n| {
        n.starts_with("/console") && !n.starts_with("/console/login") && !n.contains("//")
    })
    .unwrap_or("/console")
}

fn login_page(status: StatusCode, error: Option<&str>, next: &str) -> Response {
    let page = LoginPage { error, next };
    match page.render() {
        Ok(html) => (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_SECURITY_POLICY, CSP),
            ],
            Html(html),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /console/login`: the form (the console itself when it needs no sign-in).
pub async fn form(
    State(state): State<AppState>,
    query: axum::extract::Query<LoginQuery>,
) -> Response {
    let next = next_of(query.next.as_deref());
    if state.api_keys.is_none() {
        return Redirect::to(next).into_response();
    }
    login_page(StatusCode::OK, None, next)
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct Credentials {
    api_key: String,
    #[serde(default)]
    next: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

/// Whose key `presented` is: an operator key's id, a stored key's `mr_` id, or none; `Err`
/// when Redis could not say.
async fn signer(
    state: &AppState,
    keys: &crate::http::auth::ApiKeys,
    presented: &str,
) -> Result<Option<String>, ()> {
    if let Some(caller) = keys.accepts(presented) {
        return Ok(Some(caller.id));
    }
    match state.stored_keys.authenticate(presented).await {
        Ok(principal) => Ok(principal.map(|p| format!("{}{}", crate::keys::PREFIX, p.id))),
        Err(error) => {
            tracing::warn!(%error, "could not look a console sign-in's key up");
            Err(())
        }
    }
}

/// `POST /console/login`: a session for one of `MAILROOM_API_KEYS`, or a stored key with the
/// `console` scope.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Form(credentials): Form<Credentials>,
) -> Response {
    let next = next_of(credentials.next.as_deref());
    let Some(keys) = &state.api_keys else {
        return Redirect::to(next).into_response();
    };
    let client = peer.ip().to_string();
    match state
        .limits
        .hit(
            mailroom_jobs::RateScope::ConsoleLogin,
            &client,
            ATTEMPTS_PER_HOUR,
            Duration::from_secs(3600),
        )
        .await
    {
        Ok(Limit::Allowed) => {}
        Ok(Limit::Exceeded { .. }) => {
            return login_page(
                StatusCode::TOO_MANY_REQUESTS,
                Some("Too many sign-in attempts from this address: try again in an hour."),
                next,
            );
        }
        Err(error) => {
            tracing::warn!(%error, "could not count a console sign-in attempt");
            return login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Redis is not answering; try again shortly."),
                next,
            );
        }
    }
    let who = match signer(&state, keys, credentials.api_key.trim()).await {
        Ok(who) => who,
        Err(()) => {
            return login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Redis is not answering; try again shortly."),
                next,
            );
        }
    };
    let Some(who) = who else {
        tracing::warn!(client = %client, "console sign-in with a key that is not configured");
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not one of this deployment's API keys."),
            next,
        );
    };
    let Some((secret, _)) = secret_of(&state, &who).await else {
        tracing::warn!(client = %client, key = %who, "console sign-in with a key without the console scope");
        return login_page(
            StatusCode::FORBIDDEN,
            Some("That key may not sign in to the console: it lacks the console scope."),
            next,
        );
    };
    tracing::info!(key = %who, "signed in to the console");
    with_session(&state, &who, &secret, next)
}

/// The answer that sets `who`'s session cookie, signed with `secret`, and goes on to `next`.
fn with_session(state: &AppState, who: &str, secret: &[u8], next: &str) -> Response {
    let expires = chrono::Utc::now().timestamp() + LIFE_SECS;
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, "session", expires, who));
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={expires}.{who}.{signature}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={LIFE_SECS}{secure}"
    );
    (
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Redirect::to(next),
    )
        .into_response()
}

/// A form with only its token (sign-out, retry, pause…).
#[derive(Debug, Deserialize)]
pub struct Token {
    csrf: String,
}

impl Tokened for Token {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/logout`: the cookie is cleared.
pub async fn logout(_: Posted<Token>) -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/console/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert_eq!(
            next_of(Some("/console/dead?queue=email")),
            "/console/dead?queue=email"
        );
        assert_eq!(next_of(Some("https://evil.example/")), "/console");
        assert_eq!(next_of(Some("/console//evil.example")), "/console");
        assert_eq!(next_of(Some("/console/login")), "/console");
        assert_eq!(next_of(None), "/console");
    }
}
