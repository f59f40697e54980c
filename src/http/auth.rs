//! Bearer API keys on every `/v1` route.
//!
//! Keys are compared in constant time: both the presented key and each configured key are
//! hashed with SHA-256 first, so the comparison is over equal-length digests and reveals
//! nothing about a key's length or prefix through timing.

use std::task::{Context, Poll};

use axum::{
    extract::Request,
    http::header::AUTHORIZATION,
    response::{IntoResponse, Response},
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AppState, error::ApiError};

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
        bool::from(found).then(|| Caller(hex(&digest[..8])))
    }
}

/// Who called: the first 8 bytes of their key's SHA-256, hex (never the key). Handlers read
/// it from the request's extensions, for per-key rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

impl Caller {
    /// `key` (an Idempotency-Key) in this caller's own namespace: one service can neither
    /// collide with another's keys nor probe them. Stored as a digest, so the key a caller
    /// chose is not kept in clear either.
    pub fn scoped(&self, key: &str) -> String {
        format!("api-{}-{}", self.0, hex(&Sha256::digest(key.as_bytes())))
    }
}

/// Lowercase hex (constant-time, as suits digests of keys).
fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

/// The layer on every `/v1` route: refuses a request with 401 unless it carries an accepted
/// key (or auth is off), and puts its [`Caller`] in the request's extensions.
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
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future =
        futures::future::Either<S::Future, std::future::Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let caller = match &self.state.api_keys {
            None => Some(Caller("anonymous".to_owned())),
            Some(keys) => request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .and_then(|key| keys.accepts(key)),
        };
        let Some(caller) = caller else {
            let refused = ApiError::unauthorized().into_response();
            return futures::future::Either::Right(std::future::ready(Ok(refused)));
        };
        request.extensions_mut().insert(caller);
        futures::future::Either::Left(self.inner.call(request))
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
        assert_eq!(keys.accepts("bench-key"), Some(Caller(expected.to_owned())));
        assert_eq!(keys.accepts("other-key"), None);
    }
}
