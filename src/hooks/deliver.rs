//! Delivering events to an endpoint: each event of a job POSTed in order, signed with every
//! secret that signs now. A 2xx within 15 s is delivered; a 410 disables the endpoint at once;
//! anything else fails the job, which the queue retries on Svix's schedule ([`retry_delay`]).
//! An endpoint failing for 5 days is disabled. No redirect is followed, an answer is read at
//! most 64 KiB, and names resolve only to addresses an endpoint may reach. At most
//! [`slots::PER_ENDPOINT`](super::slots::PER_ENDPOINT) deliveries to one endpoint run at once.

use std::time::{Duration, Instant};

use chrono::Utc;
use mailroom_jobs::{DeliverWebhook, WebhookMessage};

use super::{
    HookError, HookStore,
    log::{Delivery, DeliveryLog},
    secret,
    slots::Slots,
    store::Stored,
    target::{GuardedResolver, Reach},
};

/// How long an endpoint has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// How much of an answer is read.
pub const MAX_ANSWER: usize = 64 * 1024;
/// How long an endpoint may keep failing before it is disabled.
pub const DISABLE_AFTER_SECS: i64 = 5 * 24 * 3600;

/// The wait before the retry after the `attempt`-th run (1-based) failed: Svix's schedule
/// (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), each within ±10 % so that an endpoint's failed
/// deliveries do not come back all at once.
pub fn retry_delay(attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    const SCHEDULE: [u64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
    let base = SCHEDULE[index.min(SCHEDULE.len() - 1)] * 1000;
    Duration::from_millis(base - base / 10 + rng.u64(0..=base / 5))
}

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every event was answered with a 2xx.
    Delivered { events: usize },
    /// Nothing was sent: the endpoint is gone or disabled.
    Skipped(&'static str),
    /// The endpoint answered 410 Gone and is now disabled.
    Gone,
}

/// Why a job failed (the queue retries it).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the endpoint answered {status}: {answer}")]
    Refused { status: u16, answer: String },
    #[error("the endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the endpoint has as many deliveries under way as it may")]
    Busy,
    #[error(transparent)]
    Store(#[from] HookError),
}

/// Sends the `hooks` queue's jobs.
#[derive(Debug, Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    store: HookStore,
    log: DeliveryLog,
    slots: Slots,
}

impl Deliverer {
    /// A deliverer for `store`'s endpoints, reaching only what `reach` allows.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(store: HookStore, reach: Reach) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(GuardedResolver { reach })
            .user_agent(concat!("mailroom/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            log: store.log(),
            slots: store.slots(),
            store,
        })
    }

    /// Sends `job`'s events in order, on the `attempt`-th run of the job, and logs each.
    ///
    /// # Errors
    /// The first event not answered with a 2xx (those before it were delivered and are sent
    /// again on the retry, with the same ids), or Redis failing.
    pub async fn deliver(
        &self,
        job: &DeliverWebhook,
        attempt: u32,
    ) -> Result<Outcome, DeliveryError> {
        let stored = match self.store.get(&job.endpoint, None).await {
            Ok(stored) => stored,
            Err(HookError::NotFound(_)) => return Ok(Outcome::Skipped("the endpoint was deleted")),
            Err(error) => return Err(error.into()),
        };
        if stored.endpoint.disabled.is_some() {
            return Ok(Outcome::Skipped("the endpoint is disabled"));
        }
        let token = uuid::Uuid::now_v7().to_string();
        if !(self.slots.take(&job.endpoint, &token).await).map_err(HookError::from)? {
            return Err(DeliveryError::Busy);
        }
        let mut log = Vec::with_capacity(job.events.len());
        let sent = (self.send_all(&stored, &job.events, attempt, &token, &mut log)).await;
        let freed = self.slots.give_back(&job.endpoint, &token).await;
        self.log
            .record(&job.endpoint, &log)
            .await
            .map_err(HookError::from)?;
        freed.map_err(HookError::from)?;
        match sent {
            Ok(()) => {}
            Err(DeliveryError::Refused { status: 410, .. }) => {
                let why = "the endpoint answered 410 Gone";
                self.store.disable(&job.endpoint, why).await?;
                tracing::warn!(webhook = %job.endpoint, "{why}: disabled");
                return Ok(Outcome::Gone);
            }
            Err(error) => {
                let since = self.store.failing(&job.endpoint, Utc::now()).await?;
                if Utc::now().signed_duration_since(since).num_seconds() >= DISABLE_AFTER_SECS {
                    let why = "failing for 5 days";
                    self.store.disable(&job.endpoint, why).await?;
                    tracing::warn!(webhook = %job.endpoint, %error, "{why}: disabled");
                }
                return Err(error);
            }
        }
        if stored.failing_since.is_some() {
            self.store.recovered(&job.endpoint).await?;
        }
        Ok(Outcome::Delivered {
            events: job.events.len(),
        })
    }

    /// POSTs `events` one after the other until one fails, noting each attempt in `log`.
    async fn send_all(
        &self,
        stored: &Stored,
        events: &[WebhookMessage],
        attempt: u32,
        token: &str,
        log: &mut Vec<Delivery>,
    ) -> Result<(), DeliveryError> {
        let secrets = self.store.secrets(stored, Utc::now())?;
        for (n, event) in events.iter().enumerate() {
            if n > 0 {
                // Renewed, not re-checked: a job under way finishes what it started.
                let _held =
                    (self.slots.take(&stored.endpoint.id, token).await).map_err(HookError::from)?;
            }
            let started = Instant::now();
            let posted = self.post(&stored.endpoint.url, &secrets, event).await;
            let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let (status, error) = match &posted {
                Ok(status) => (Some(*status), None),
                Err(DeliveryError::Refused { status, .. }) => {
                    (Some(*status), Some(error_of(&posted)))
                }
                Err(_) => (None, Some(error_of(&posted))),
            };
            log.push(Delivery::of(event, attempt, status, error, took));
            posted?;
        }
        Ok(())
    }

    async fn post(
        &self,
        url: &str,
        secrets: &[secret::Secret],
        event: &WebhookMessage,
    ) -> Result<u16, DeliveryError> {
        let timestamp = Utc::now().timestamp();
        let signature = secret::header(secrets, &event.id, timestamp, event.body.as_bytes());
        let response = (self.client.post(url))
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(event.body.clone())
            .send()
            .await
            .map_err(|e| DeliveryError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let answer = read_some(response).await;
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            let answer = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
            Err(DeliveryError::Refused {
                status: status.as_u16(),
                answer,
            })
        }
    }
}

fn error_of(posted: &Result<u16, DeliveryError>) -> String {
    posted
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// At most [`MAX_ANSWER`] bytes of an answer (the rest is not read).
async fn read_some(mut response: reqwest::Response) -> Vec<u8> {
    let mut read = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER - read.len();
        read.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if read.len() >= MAX_ANSWER {
            break;
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_svixs_schedule_within_a_tenth() {
        let mut rng = fastrand::Rng::with_seed(7);
        for (attempt, seconds) in [
            (1, 5),
            (2, 300),
            (3, 1800),
            (4, 7200),
            (5, 18_000),
            (6, 36_000),
            (7, 36_000),
            (9, 36_000),
        ] {
            for _ in 0..100 {
                let delay = retry_delay(attempt, &mut rng).as_secs_f64();
                let base = f64::from(seconds);
                assert!(
                    (base * 0.9..=base * 1.1).contains(&delay),
                    "{attempt}: {delay}"
                );
            }
        }
    }
}
