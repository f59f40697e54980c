//! Bearer API keys on every `/v1` route, and the scope each route needs.
//!
//! Two kinds of key: the operator keys of `MAILROOM_API_KEYS`, with every scope, compared in
//! constant time (both the presented key and each configured key are hashed with SHA-256
//! first, so the comparison is over equal-length digests and reveals nothing about a key's
//! length or prefix through timing); and stored keys (`mr_…`, [`crate::keys`]), looked up by
//! their public id, with their own scopes. A route's scope comes from [`crate::keys::RULES`]
//! by the route the router matched; a route without a rule is refused to every key.

use std::task::{Context, Poll};

use axum::{
    extract::{MatchedPath, Request},
    http::header::AUTHORIZATION,
    response::{IntoResponse, Response},
};
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AppState, error::ApiError};
use crate::keys::{Principal, Scope, Scopes};

/// The accepted keys, kept only as digests.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
    /// Per key, the secret that signs its console sessions: a digest of the key under another
    /// label, so it is neither the key nor the digest that identifies it.
    session_keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.digests.len())
            .finish()
    }
}

impl ApiKeys {
    /// The digests of `keys`.
    pub fn new(keys: &[SecretString]) -> Self {
        Self {
            digests: keys
                .iter()
                .map(|k| Sha256::digest(k.expose_secret().as_bytes()).into())
                .collect(),
            session_keys: keys
                .iter()
                .map(|k| {
                    let mut hash = Sha256::new();
                    hash.update(b"mailroom console session\0");
                    hash.update(k.expose_secret().as_bytes());
                    hash.finalize().into()
                })
                .collect(),
        }
    }

    /// The secret that signs the console sessions of `caller` (a [`Caller`]'s id), while its
    /// key is configured: removing a key from `MAILROOM_API_KEYS` signs its sessions out.
    pub fn session_key(&self, caller: &str) -> Option<&[u8; 32]> {
        self.digests
            .iter()
            .position(|digest| hex(&digest[..8]) == caller)
            .map(|i| &self.session_keys[i])
    }

    /// The caller's identity when `presented` is one of the keys. Every key is compared,
    /// found or not.
    pub fn accepts(&self, presented: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let found = self
            .digests
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(&digest)
            });
        bool::from(found).then(|| Caller::operator(hex(&digest[..8])))
    }
}

/// Who called, as handlers read it from the request's extensions: an id that never is the
/// key (an operator key's first 8 bytes of SHA-256, hex; a stored key's `mr_` and public id),
/// what the key may do and where it may send from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: String,
    pub scopes: Scopes,
    /// The only sender domains it may use (`None`: any).
    pub from_domains: Option<Vec<String>>,
    /// The stored key's public id (`None`: an operator key, or no keys at all).
    pub stored: Option<String>,
    /// What it may queue a second and a day.
    pub limits: mailroom_jobs::OwnerLimits,
}

impl Caller {
    /// An operator key (or, without keys, anyone): every scope, any sender.
    pub fn operator(id: String) -> Self {
        Self {
            id,
            scopes: Scopes::all(),
            from_domains: None,
            stored: None,
            limits: mailroom_jobs::OwnerLimits::default(),
        }
    }

    fn stored(principal: Principal) -> Self {
        Self {
            id: format!("{}{}", crate::keys::PREFIX, principal.id),
            scopes: principal.scopes,
            from_domains: principal.from_domains,
            stored: Some(principal.id.to_string()),
            limits: mailroom_jobs::OwnerLimits {
                per_second: principal.rate_per_second,
                per_day: principal.daily_quota,
            },
        }
    }

    /// Whether the key has `scope` (`emails:read_all` includes `emails:read`).
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.allows(scope)
    }

    /// Whether it may read message `owner`'s status: its own, or every one with
    /// `emails:read_all`.
    pub fn may_read(&self, owner: Option<&str>) -> bool {
        self.may(Scope::EmailsReadAll) || (self.stored.is_some() && self.stored.as_deref() == owner)
    }

    /// `key` (an Idempotency-Key) in this caller's own namespace: one service can neither
    /// collide with another's keys nor probe them. Stored as a digest, so the key a caller
    /// chose is not kept in clear either.
    pub fn scoped(&self, key: &str) -> String {
        format!("api-{}-{}", self.id, hex(&Sha256::digest(key.as_bytes())))
    }
}

/// Lowercase hex (constant-time, as suits digests of keys).
fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

/// The layer on every `/v1` route: refuses a request with 401 unless it carries an accepted
/// key (or auth is off), with 403 when the key lacks the route's scope, and puts its
/// [`Caller`] in the request's extensions.
///
/// A tower layer of its own rather than `from_fn` middleware, which boxes a copy of the
/// route's service and a future for every request: here a request goes straight on to the
/// route, and a 401 is answered without an async block.
#[derive(Debug, Clone)]
pub struct RequireKey(AppState);

impl RequireKey {
    /// Checks keys against `state.api_keys`.
    pub fn new(state: AppState) -> Self {
        Self(state)
    }
}

impl<S> tower::Layer<S> for RequireKey {
    type Service = RequireKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireKeyService {
            state: self.0.clone(),
            inner,
        }
    }
}

/// [`RequireKey`] around one route.
#[derive(Debug, Clone)]
pub struct RequireKeyService<S> {
    state: AppState,
    inner: S,
}

impl<S> tower::Service<Request> for RequireKeyService<S>
where
    S: tower::Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future =
        futures::future::Either<S::Future, BoxFuture<'static, Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let refuse = |error: ApiError| {
            let answer: BoxFuture<'static, _> =
                Box::pin(std::future::ready(Ok(error.into_response())));
            futures::future::Either::Right(answer)
        };
        // A HEAD is the GET of the same route, as the router answers it.
        let method = match request.method() {
            &axum::http::Method::HEAD => "GET",
            other => other.as_str(),
        };
        let needed = (request.extensions().get::<MatchedPath>())
            .and_then(|route| crate::keys::required(method, route.as_str()));
        let presented = (request.headers().get(AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let operator = match &self.state.api_keys {
            None => Some(Caller::operator("anonymous".to_owned())),
            Some(keys) => presented.and_then(|key| keys.accepts(key)),
        };
        if let Some(caller) = operator {
            if let Err(refused) = admitted(&caller, needed) {
                return refuse(refused);
            }
            request.extensions_mut().insert(caller);
            return futures::future::Either::Left(self.inner.call(request));
        }
        let Some(presented) = presented.filter(|k| k.starts_with(crate::keys::PREFIX)) else {
            return refuse(ApiError::unauthorized());
        };
        // A stored key: looked up (at most once per key per process every half second).
        let presented = presented.to_owned();
        let store = self.state.stored_keys.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        futures::future::Either::Right(Box::pin(async move {
            let caller = match store.authenticate(&presented).await {
                Ok(Some(principal)) => Caller::stored(principal),
                Ok(None) => return Ok(ApiError::unauthorized().into_response()),
                Err(crate::keys::KeyError::Redis(error)) => {
                    return Ok(ApiError::store_failed(&error).into_response());
                }
                Err(error) => return Ok(ApiError::internal(&error).into_response()),
            };
            if let Err(refused) = admitted(&caller, needed) {
                return Ok(refused.into_response());
            }
            request.extensions_mut().insert(caller);
            inner.call(request).await
        }))
    }
}

/// Whether `caller` may use a route that needs `needed` (none: a route no rule names, which
/// nobody may use).
fn admitted(caller: &Caller, needed: Option<Scope>) -> Result<(), ApiError> {
    match needed {
        Some(scope) if caller.may(scope) => Ok(()),
        Some(scope) => Err(ApiError::missing_scope(scope.as_str())),
        None => Err(ApiError::missing_scope(
            "(none: this route has no scope rule)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn a_caller_is_the_first_eight_bytes_of_its_keys_digest() {
        let keys = ApiKeys::new(&[SecretString::from("bench-key")]);
        // `printf bench-key | sha256sum`, its first 16 hex digits.
        let expected = "b0962662e937d44c";
        assert_eq!(
            keys.accepts("bench-key"),
            Some(Caller::operator(expected.to_owned()))
        );
        assert_eq!(keys.accepts("other-key"), None);
    }
}
