//! `GET /t/o/{token}` (the open image) and `GET /t/c/{token}` (a tracked link): checked
//! without Redis, answered at once (the image; a 302 to the link the token carries), and the
//! hit handed to a recorder task that pushes hits in batches as one job each for a worker to
//! record (`worker::tracking`). A token that is not whole and signed is a 404, never a
//! redirect. Links keep working whatever the tracking settings are now: only new mail changes.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use mailroom_jobs::{
    Producer,
    tracking::{Hit, HitKind, MAX_HITS, TrackingHits},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    AppState,
    coalesce::Lane,
    error::ApiError,
    subscribe::{Peer, client_ip},
};
use crate::tracking::{
    machines,
    token::{Scope, Target},
};

/// The smallest transparent GIF (1×1, 43 bytes).
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Hits waiting for the recorder at most; past it a request waits to hand its hit over.
const QUEUE: usize = 8192;
/// Pushes at once.
const IN_FLIGHT: usize = 4;
/// How long the recorder keeps trying to push a batch while Redis is away.
const PUSH_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Gathers hits and pushes them in batches: started with the first hit.
#[derive(Debug)]
pub struct HitRecorder {
    producer: Producer,
    lane: Lane<Hit>,
}

impl HitRecorder {
    /// Pushes through `producer`.
    pub fn new(producer: Producer) -> Self {
        Self {
            producer,
            lane: Lane::new(),
        }
    }

    /// Hands `hit` over without waiting for Redis (only for room, when Redis is slow).
    async fn record(&self, hit: Hit) {
        let sender = self.lane.sender(QUEUE, |receiver, stop| {
            run(self.producer.clone(), receiver, stop)
        });
        let refused = match sender.try_send(hit) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(hit)) => match sender.send(hit).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(hit)) => hit,
            },
            Err(mpsc::error::TrySendError::Closed(hit)) => hit,
        };
        // The recorder has stopped (the process is stopping): this hit goes alone.
        push_with_retries(
            &self.producer,
            TrackingHits {
                hits: vec![refused],
            },
        )
        .await;
    }

    /// Pushes every hit handed over and returns when they are in Redis (or given up).
    pub async fn finish(&self) {
        self.lane.finish().await;
    }
}

/// The recorder: every waiting hit (up to a job's worth) pushed as one job.
async fn run(producer: Producer, receiver: mpsc::Receiver<Hit>, stop: CancellationToken) {
    super::coalesce::gather(receiver, MAX_HITS, IN_FLIGHT, stop, move |hits| {
        let producer = producer.clone();
        async move { push_with_retries(&producer, TrackingHits { hits }).await }
    })
    .await;
}

/// Pushes `job`, retrying with backoff for [`PUSH_RETRY_FOR`] (a Redis restart); after that
/// the hits are given up, and the error says how many.
async fn push_with_retries(producer: &Producer, job: TrackingHits) {
    let pushed = crate::store::retry_for(
        "storing tracking hits",
        PUSH_RETRY_FOR,
        std::time::Duration::from_secs(5),
        || producer.push(&job),
    )
    .await;
    if let Err(error) = pushed {
        tracing::error!(%error, hits = job.hits.len(), "tracking hits lost: Redis stayed unavailable");
    }
}

fn unknown() -> Response {
    ApiError::not_found("no such tracking link").into_response()
}

/// A hit on `target` now.
fn hit(target: &Target, kind: HitKind, why: Option<String>) -> Hit {
    let (message, campaign, subscriber) = match target.scope {
        Scope::Message(id) => (Some(id), None, None),
        Scope::Campaign {
            campaign,
            subscriber,
        } => (None, Some(campaign), Some(subscriber)),
    };
    Hit {
        id: uuid::Uuid::now_v7().to_string(),
        kind,
        message,
        campaign,
        subscriber,
        url: target.url.clone(),
        at: chrono::Utc::now().timestamp(),
        why,
    }
}

/// The open image: always the same 43 bytes, never cached.
pub(super) async fn open(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    peer: Peer,
    Path(token): Path<String>,
) -> Response {
    let Some(target) = state
        .links
        .as_deref()
        .and_then(|keys| Target::verify(keys, &token, false))
    else {
        return unknown();
    };
    let ip = client_ip(&headers, peer.0).parse().ok();
    let why = if method == Method::HEAD {
        Some("HEAD request".to_owned())
    } else {
        machines::machine_open(&headers, ip)
    };
    let kind = if why.is_some() {
        HitKind::MachineOpen
    } else {
        HitKind::Open
    };
    crate::metrics::tracking_hit(kind);
    state.hits.record(hit(&target, kind, why)).await;
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/gif"),
            (
                header::CACHE_CONTROL,
                "no-store, no-cache, must-revalidate, private",
            ),
        ],
        PIXEL,
    )
        .into_response()
}

/// A tracked link: a 302 to the URL the signed token carries.
pub(super) async fn click(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let Some(target) = state
        .links
        .as_deref()
        .and_then(|keys| Target::verify(keys, &token, true))
    else {
        return unknown();
    };
    let Some(url) = target.url.clone() else {
        return unknown();
    };
    let age = chrono::Utc::now().timestamp() - i64::from(target.sent_at);
    let why = machines::scanner_click(&method, &headers, age);
    let kind = if why.is_some() {
        HitKind::ScannerClick
    } else {
        HitKind::Click
    };
    crate::metrics::tracking_hit(kind);
    state.hits.record(hit(&target, kind, why)).await;
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, url),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
    )
        .into_response()
}
