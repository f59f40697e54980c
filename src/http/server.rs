//! The HTTP server under the router: mailroom's own accept loop over hyper, because
//! `axum::serve` gives hyper no timer, and without one hyper never times out a client that is
//! slow to send its headers (tried: 200 connections sending a header byte a second stayed open
//! for good). Here:
//!
//! - headers must arrive within [`HEADER_READ_TIMEOUT`] or the request limit, whichever is
//!   shorter (HTTP/1; then the connection is closed);
//! - a whole request, body and handler, within `MAILROOM_REQUEST_TIMEOUT_SECS` (408, in the
//!   API's error shape: [`limit_time`]);
//! - at most `MAILROOM_MAX_REQUESTS_IN_FLIGHT` requests are handled at once; past that a request
//!   is answered 503 with `Retry-After` at once rather than queued ([`limit_load`]);
//! - idle HTTP/2 connections are pinged, and dropped when they stop answering.
//!
//! On shutdown the listener closes, each connection finishes the request it is on, and
//! [`serve_on`] returns when the last one has.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    extract::{MatchedPath, Request},
    http::Method,
    response::{IntoResponse, Response},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt as _;
use tracing::Instrument as _;

use super::{
    error::ApiError,
    request_id::{self, RequestId},
};
use crate::store::RedisGuard;

/// How long a client has to send a request's headers (or the whole request's limit, when that
/// is shorter).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one request may take, and how many may run at once.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Headers, body and handler together.
    pub timeout: Duration,
    /// Permits for requests in flight.
    pub in_flight: Arc<Semaphore>,
}

impl RequestLimits {
    /// `timeout` per request, `in_flight` at once.
    pub fn new(timeout: Duration, in_flight: usize) -> Self {
        Self {
            timeout,
            in_flight: Arc::new(Semaphore::new(in_flight)),
        }
    }
}

/// How long `POST /v1/imports` may take to send its body.
const IMPORT_TIME_LIMIT: Duration = Duration::from_secs(3600);

/// What every request passes first, in one layer: a tower layer of its own rather than
/// `from_fn` middleware (each `from_fn` layer boxes a copy of the route's service and a future
/// for every request, a measurable share of a request that does little else).
///
/// 503 at once when every request permit is taken; 503 for a write while Redis's policy may
/// evict it ([`crate::store::health`]); 408 when the request (reading its body included) takes
/// longer than its limit.
///
/// Every request is counted here too (`mailroom_http_requests_total` and its latency), by the
/// route template it matched: these numbers include the 408s and 503s this layer answers.
///
/// And every request gets its id here ([`RequestId`]), so that the answers this layer gives
/// itself carry one too. A request let through runs in its span ([`request_span`]), where
/// everything it logs is written: "started" and "finished processing request" at debug,
/// "response failed" at error for a 5xx (tower-http's `TraceLayer` did this as a layer of its
/// own; here it costs the enqueue a few per cent less). The 503s this layer answers at once
/// under overload are counted, not logged: a flood of them must not flood the log too.
#[derive(Debug, Clone)]
pub(super) struct Edge {
    pub(super) limits: RequestLimits,
    pub(super) guard: RedisGuard,
}

impl<S> tower::Layer<S> for Edge {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeService {
            edge: self.clone(),
            inner,
        }
    }
}

/// [`Edge`] around one route.
#[derive(Debug, Clone)]
pub(super) struct EdgeService<S> {
    edge: Edge,
    inner: S,
}

impl<S> tower::Service<Request> for EdgeService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let watch = crate::metrics::Stopwatch::start();
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let id = RequestId::of(request.headers().get(request_id::HEADER));
        let value = id.header_value();
        // The trace span reads the header; handlers read the extension.
        request
            .headers_mut()
            .insert(request_id::HEADER, value.clone());
        request.extensions_mut().insert(id);
        let admitted = self.admit(&request).map(|(permit, limit)| {
            let span = request_span(&request);
            (permit, limit, span, self.inner.call(request))
        });
        Box::pin(async move {
            let mut response = match admitted {
                Ok((_permit, limit, span, handled)) => {
                    answer(handled, limit, watch).instrument(span).await
                }
                Err(refused) => refused.into_response(),
            };
            response.headers_mut().insert(request_id::HEADER, value);
            crate::metrics::http_request(
                route.as_ref().map_or("unmatched", MatchedPath::as_str),
                &method,
                response.status().as_u16(),
                watch.elapsed(),
            );
            Ok(response)
        })
    }
}

impl<S> EdgeService<S> {
    /// A request permit and the request's time limit, or the answer refusing it at once.
    fn admit(&self, request: &Request) -> Result<(OwnedSemaphorePermit, Duration), ApiError> {
        let Ok(permit) = Arc::clone(&self.edge.limits.in_flight).try_acquire_owned() else {
            return Err(ApiError::overloaded());
        };
        if !matches!(*request.method(), Method::GET | Method::HEAD)
            && let Some(policy) = self.edge.guard.refusing()
        {
            return Err(ApiError::store_evicts(&policy));
        }
        // An import streams a file of up to a gigabyte: it gets an hour, not the API's limit.
        let limit = if request.uri().path() == "/v1/imports" {
            IMPORT_TIME_LIMIT
        } else {
            self.edge.limits.timeout
        };
        Ok((permit, limit))
    }
}

/// The route's answer within `limit` (408 past it), logged in the request's span (the caller
/// holds the request's permit until this returns).
async fn answer(
    handled: impl Future<Output = Result<Response, Infallible>>,
    limit: Duration,
    watch: crate::metrics::Stopwatch,
) -> Response {
    tracing::debug!("started processing request");
    let response = match tokio::time::timeout(limit, handled).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => ApiError::request_timeout(limit).into_response(),
    };
    let (status, latency) = (response.status(), watch.elapsed());
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), ?latency, "response failed");
    } else {
        tracing::debug!(
            status = status.as_u16(),
            ?latency,
            "finished processing request"
        );
    }
    response
}

/// The span every request is traced in: its id, method and path, and nothing that may be a
/// secret.
/// The query string is left out (a verification link carries its token there), and so are the
/// Inbound Parse secret path segment and an unsubscribe link's token; headers (API keys, basic auth) never were in it.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    // Path segments that are secrets: the Inbound Parse secret, unsubscribe and tracking tokens.
    let path = if path.starts_with("/webhooks/sendgrid/inbound/") {
        "/webhooks/sendgrid/inbound/{secret}"
    } else if path.starts_with("/u/") {
        "/u/{token}"
    } else if path.starts_with("/t/o/") {
        "/t/o/{token}"
    } else if path.starts_with("/t/c/") {
        "/t/c/{token}"
    } else {
        path
    };
    let query = if request.uri().query().is_some() {
        "?…"
    } else {
        ""
    };
    // Checked or made by the edge layer, which runs first.
    let id = request
        .headers()
        .get(request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // At info, so that every line a request logs names its request id.
    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %format_args!("{path}{query}"))
}

/// Serves `router` on `listener` until `shutdown`, then lets the requests in flight finish.
///
/// # Errors
/// Never at present; accept errors (out of file descriptors) are logged and retried.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: &RequestLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let header_timeout = HEADER_READ_TIMEOUT.min(limits.timeout);
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually EMFILE: back off a moment instead of spinning.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Answers are small and written whole: Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        // The peer's address travels with each request (the public subscribe form's per-IP
        // limit reads it).
        let service = TowerToHyperService::new(router.clone().map_request(
            move |request: axum::http::Request<Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(10));
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let outcome = tokio::select! {
                outcome = connection.as_mut() => outcome,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = outcome {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}
