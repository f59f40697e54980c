//! Process metrics for Prometheus: one recorder per process (`metrics` +
//! `metrics-exporter-prometheus`), every metric's name and labels in this module.
//!
//! Two kinds of numbers end up on a `/metrics` page:
//! - **this process's** work, recorded here as it happens: HTTP requests (`serve`), job runs,
//!   provider hand-overs, events applied and tracking hits (`work`), Redis round trips (both);
//! - **the deployment's** state, read from Redis at each scrape by `serve` (queue depths, the
//!   oldest ready job's age, campaign progress: see `http::metrics`), so every API process
//!   reports the same numbers whichever one is scraped.
//!
//! Labels are bounded on purpose: routes are templates (`/v1/emails/{id}`), never paths; a
//! status is its code; a provider's answer is a class. A label made from request data would
//! let a caller grow the recorder without bound.

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::OnceLock,
    time::{Duration, Instant},
};

use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// How often histograms are folded and Redis is pinged.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Bucket bounds for every `…_seconds` histogram: from half a millisecond (an enqueue) to half a
/// minute (a slow SMTP relay).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's recorder, installed on first use. Tests run many apps in one process: they
/// share it, so a test asserts on its own labels or on growth, never on a total.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        describe();
        // Fails only when another recorder was installed first (a test harness's): then this
        // handle renders nothing, and the process still runs.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "another metrics recorder is installed; /metrics shows Redis gauges only"
            );
        }
        handle
    })
}

/// This process's metrics in Prometheus' text format.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "mailroom_http_requests_total",
        "HTTP requests answered, by route template, method and status."
    );
    describe_histogram!(
        "mailroom_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by route template and method."
    );
    describe_counter!(
        "mailroom_jobs_total",
        "Job runs by queue and outcome (done, retried, dead, released)."
    );
    describe_histogram!(
        "mailroom_job_duration_seconds",
        metrics::Unit::Seconds,
        "Time a job's run took, by queue."
    );
    describe_counter!(
        "mailroom_provider_sends_total",
        "Hand-overs to the provider by provider and result (2xx, 429, 4xx, 5xx, timeout, error)."
    );
    describe_histogram!(
        "mailroom_provider_send_duration_seconds",
        metrics::Unit::Seconds,
        "Time a hand-over to the provider took, by provider."
    );
    describe_counter!(
        "mailroom_events_applied_total",
        "Delivery and engagement events recorded, by source and kind."
    );
    describe_counter!(
        "mailroom_tracking_hits_total",
        "Open and click hits answered, by kind (open, click, machine_open, scanner_click)."
    );
    describe_histogram!(
        "mailroom_redis_roundtrip_seconds",
        metrics::Unit::Seconds,
        "A PING to Redis and its answer, every few seconds."
    );
    describe_counter!(
        "mailroom_redis_ping_failures_total",
        "PINGs to Redis that failed or timed out."
    );
}

/// A request's counter and latency histogram, for one route, method and status.
type RequestHandles = (&'static str, u16, Counter, Histogram);

thread_local! {
    /// The handles each route, method and status has used on this thread, so that a request
    /// records without making and hashing its labels again (a few per cent of an enqueue's
    /// work). As bounded as the labels: routes are templates, statuses codes.
    static REQUEST_HANDLES: RefCell<HashMap<String, Vec<RequestHandles>>> =
        RefCell::new(HashMap::new());
}

/// One HTTP request answered: `route` is the matched template (`unmatched` for none).
pub fn http_request(route: &str, method: &axum::http::Method, status: u16, took: Duration) {
    // The recorder is installed before the first handle is kept: a handle taken before would
    // record nowhere for good.
    handle();
    let method = method_label(method);
    REQUEST_HANDLES.with_borrow_mut(|handles| {
        let for_route = match handles.get_mut(route) {
            Some(for_route) => for_route,
            None => handles.entry(route.to_owned()).or_default(),
        };
        let found = for_route
            .iter()
            .position(|(m, s, _, _)| *m == method && *s == status);
        let index = found.unwrap_or_else(|| {
            let route = route.to_owned();
            for_route.push((
                method,
                status,
                counter!("mailroom_http_requests_total", "route" => route.clone(), "method" => method, "status" => status_label(status)),
                histogram!("mailroom_http_request_duration_seconds", "route" => route, "method" => method),
            ));
            for_route.len() - 1
        });
        let (_, _, requests, latency) = &for_route[index];
        requests.increment(1);
        latency.record(took);
    });
}

/// A bounded label for a method: anything but the usual ones is `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status as its three digits, without a fresh string for the common ones.
fn status_label(status: u16) -> metrics::SharedString {
    const COMMON: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (302, "302"),
        (303, "303"),
        (400, "400"),
        (401, "401"),
        (404, "404"),
        (408, "408"),
        (409, "409"),
        (413, "413"),
        (422, "422"),
        (429, "429"),
        (503, "503"),
    ];
    COMMON
        .iter()
        .find(|(code, _)| *code == status)
        .map_or_else(|| status.to_string().into(), |(_, label)| (*label).into())
}

/// How a job's run ended, for [`job_run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Finished.
    Done,
    /// Failed; it runs again later.
    Retried,
    /// Dead-lettered.
    Dead,
    /// Handed back unstarted or cut off by a shutdown.
    Released,
}

impl JobOutcome {
    fn label(self) -> &'static str {
        match self {
            JobOutcome::Done => "done",
            JobOutcome::Retried => "retried",
            JobOutcome::Dead => "dead",
            JobOutcome::Released => "released",
        }
    }
}

/// One run of a job of `queue`.
pub fn job_run(queue: &str, outcome: JobOutcome, took: Duration) {
    let queue = queue.to_owned();
    counter!("mailroom_jobs_total", "queue" => queue.clone(), "outcome" => outcome.label())
        .increment(1);
    histogram!("mailroom_job_duration_seconds", "queue" => queue).record(took);
}

/// What a provider answered a hand-over, as a bounded class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendResult {
    /// Accepted (HTTP 2xx, SMTP 2xx, a file written).
    Accepted,
    /// Asked to slow down (HTTP 429).
    Throttled,
    /// Refused (HTTP 4xx, SMTP 5xx permanent replies are [`SendResult::Refused`] too).
    Refused,
    /// A server error or a temporary SMTP reply (HTTP 5xx, SMTP 4xx).
    ServerError,
    /// No answer in time.
    Timeout,
    /// No connection, TLS failure, a file that could not be written.
    Error,
}

impl SendResult {
    /// The label: HTTP-style classes, the same for every provider.
    pub fn label(self) -> &'static str {
        match self {
            SendResult::Accepted => "2xx",
            SendResult::Throttled => "429",
            SendResult::Refused => "4xx",
            SendResult::ServerError => "5xx",
            SendResult::Timeout => "timeout",
            SendResult::Error => "error",
        }
    }

    /// The class of an HTTP status.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => SendResult::Accepted,
            429 => SendResult::Throttled,
            400..=499 => SendResult::Refused,
            _ => SendResult::ServerError,
        }
    }
}

/// One hand-over of `messages` messages (a SendGrid request may carry a thousand) to `provider`.
pub fn provider_send(provider: &'static str, result: SendResult, messages: u64, took: Duration) {
    counter!("mailroom_provider_sends_total", "provider" => provider, "result" => result.label())
        .increment(messages);
    histogram!("mailroom_provider_send_duration_seconds", "provider" => provider).record(took);
}

/// Provider `provider`'s circuit as a worker last saw it: 1 open, 0 closed.
pub fn provider_circuit(provider: &'static str, open: bool) {
    gauge!("mailroom_provider_circuit_open", "provider" => provider).set(if open {
        1.0
    } else {
        0.0
    });
}

/// `messages` that `provider` failed for went on to the next provider of their route.
pub fn provider_failover(provider: &'static str, messages: u64) {
    counter!("mailroom_provider_failovers_total", "provider" => provider).increment(messages);
}

/// One event of `kind` from `source` recorded (not a repeat).
pub fn event_applied(source: &'static str, kind: &'static str) {
    counter!("mailroom_events_applied_total", "source" => source, "kind" => kind).increment(1);
}

/// One open or click hit answered, by what it was taken for.
pub fn tracking_hit(kind: mailroom_jobs::tracking::HitKind) {
    use mailroom_jobs::tracking::HitKind;
    let kind = match kind {
        HitKind::Open => "open",
        HitKind::Click => "click",
        HitKind::MachineOpen => "machine_open",
        HitKind::ScannerClick => "scanner_click",
    };
    counter!("mailroom_tracking_hits_total", "kind" => kind).increment(1);
}

/// Times `work`, for the metric functions above.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Started now.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Time since the start.
    pub fn elapsed(self) -> Duration {
        self.0.elapsed()
    }
}

/// Every few seconds until `shutdown`: folds histograms (the exporter keeps raw samples until
/// then), pings Redis for `mailroom_redis_roundtrip_seconds`, and writes a worker's
/// sends-per-minute counts (`activity`) to Redis for the console.
pub fn spawn_upkeep(
    conn: mailroom_jobs::RedisConnection,
    activity: Option<crate::store::activity::Activity>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut conn = conn;
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            handle().run_upkeep();
            let started = Instant::now();
            let ping = tokio::time::timeout(
                Duration::from_secs(2),
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await;
            match ping {
                Ok(Ok(_)) => {
                    histogram!("mailroom_redis_roundtrip_seconds").record(started.elapsed());
                }
                _ => counter!("mailroom_redis_ping_failures_total").increment(1),
            }
            if let Some(activity) = &activity
                && let Err(error) = activity.flush().await
            {
                tracing::debug!(%error, "could not write send counts for the console");
            }
        }
        // What was counted since the last tick.
        if let Some(activity) = &activity {
            let _ = activity.flush().await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_their_digits() {
        assert_eq!(status_label(202).as_ref(), "202");
        assert_eq!(status_label(418).as_ref(), "418");
    }

    #[test]
    fn provider_answers_fall_into_classes() {
        assert_eq!(SendResult::of_status(202).label(), "2xx");
        assert_eq!(SendResult::of_status(429).label(), "429");
        assert_eq!(SendResult::of_status(413).label(), "4xx");
        assert_eq!(SendResult::of_status(503).label(), "5xx");
    }
}
