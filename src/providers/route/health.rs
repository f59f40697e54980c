//! Each provider's circuit, kept in Redis so that every worker sees the same
//! (`P:{provider:NAME}:health`, one script).
//!
//! Closed, a provider takes mail. Three provider failures in a row, or ten within ten seconds
//! whatever came between, open it: its mail goes to the next provider of its route at once.
//! Open, one real message every thirty seconds is let through as a probe; the first that is
//! taken closes it. A rate limit is not a failure until it has lasted longer than
//! `MAILROOM_FAILOVER_AFTER`; from then on each one counts as one.
//!
//! A process reads a circuit at most every [`FRESH_FOR`]; a healthy provider costs no Redis
//! call per message, and a report goes to Redis only when it changes something.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mailroom_jobs::{Keys, RedisConnection};
use redis::Script;

/// Failures in a row that open a circuit.
pub const FAILURES_IN_A_ROW: u32 = 3;
/// Failures within [`WINDOW`] that open a circuit, whatever came between.
pub const FAILURES_IN_WINDOW: u32 = 10;
/// The window of [`FAILURES_IN_WINDOW`].
pub const WINDOW: Duration = Duration::from_secs(10);
/// How often an open circuit lets one message through.
pub const PROBE_EVERY: Duration = Duration::from_secs(30);
/// How long a process trusts what it last read of a circuit.
const FRESH_FOR: Duration = Duration::from_millis(250);

/// Whether a message may go to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: it takes mail.
    Go,
    /// Open, and this message is the probe.
    Probe,
    /// Open: try the next provider; the next probe is due after this long.
    Skip(Duration),
}

/// What a provider's answer was, for its circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// It took the message (or refused the message itself: it is up).
    Ok,
    /// It failed as a provider: down, unreachable, refusing the account, no answer.
    Failed,
    /// It is over its rate.
    Throttled,
}

/// What a report means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Stay with this provider's answer.
    Stay,
    /// Try the next provider of the route.
    Next,
}

/// What a process last read of one circuit.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    open: bool,
    /// Something a success must clear (failures in a row, a rate limit's start).
    dirty: bool,
}

/// The circuits of every provider, as this process sees them.
#[derive(Clone)]
pub struct Health {
    conn: RedisConnection,
    keys: Keys,
    script: Arc<Script>,
    wait_for: Duration,
    seen: Arc<Mutex<HashMap<&'static str, Seen>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("wait_for", &self.wait_for)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Circuits under `prefix`; a rate limit counts as a failure after `wait_for`.
    pub fn new(conn: RedisConnection, prefix: &str, wait_for: Duration) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
            script: Arc::new(Script::new(include_str!("health.lua"))),
            wait_for,
            seen: Arc::default(),
        }
    }

    /// Whether a message may go to `provider` now. A Redis failure lets it go: the provider's
    /// own answer then decides.
    pub async fn admit(&self, provider: &'static str) -> Admit {
        if let Some(seen) = self.fresh(provider)
            && !seen.open
        {
            return Admit::Go;
        }
        match self.run(provider, "admit").await {
            Ok(Answered { verdict, next, .. }) if verdict == "skip" => {
                let next: u64 = next.parse().unwrap_or(0);
                Admit::Skip(Duration::from_millis(next.saturating_sub(now_ms())))
            }
            Ok(Answered { verdict, .. }) if verdict == "probe" => {
                tracing::info!(provider, "probing a provider whose circuit is open");
                Admit::Probe
            }
            Ok(_) => Admit::Go,
            Err(error) => {
                tracing::warn!(%error, provider, "could not read the provider's circuit");
                Admit::Go
            }
        }
    }

    /// Records `report` of `provider` and says whether its message goes on to the next.
    pub async fn report(&self, provider: &'static str, report: Report) -> Verdict {
        let seen = self.fresh(provider);
        if report == Report::Ok && seen.is_some_and(|s| !s.open && !s.dirty) {
            return Verdict::Stay;
        }
        let what = match report {
            Report::Ok => "ok",
            Report::Failed => "fail",
            Report::Throttled => "throttled",
        };
        match self.run(provider, what).await {
            Ok(Answered { verdict, .. }) => {
                if verdict == "next" {
                    Verdict::Next
                } else {
                    Verdict::Stay
                }
            }
            Err(error) => {
                tracing::warn!(%error, provider, "could not record the provider's answer");
                // Without the shared count, a failure still fails over; a rate limit waits.
                if report == Report::Failed {
                    Verdict::Next
                } else {
                    Verdict::Stay
                }
            }
        }
    }

    /// What this process read of `provider` within [`FRESH_FOR`].
    fn fresh(&self, provider: &'static str) -> Option<Seen> {
        let seen = self.seen.lock().ok()?;
        seen.get(provider)
            .copied()
            .filter(|s| s.at.elapsed() < FRESH_FOR)
    }

    /// Runs the script for `provider`; remembers the state it answered, and logs a transition.
    async fn run(&self, provider: &'static str, what: &str) -> redis::RedisResult<Answered> {
        let mut conn = self.conn.clone();
        let (verdict, next, state, dirty): (String, String, String, u8) = self
            .script
            .key(self.keys.provider_health(provider))
            .arg(what)
            .arg(now_ms())
            .arg(FAILURES_IN_A_ROW)
            .arg(WINDOW.as_millis() as u64)
            .arg(FAILURES_IN_WINDOW)
            .arg(PROBE_EVERY.as_millis() as u64)
            .arg(self.wait_for.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        let open = state == "open";
        match next.as_str() {
            "opened" => tracing::warn!(
                provider,
                "provider circuit opened: its mail goes to the next provider of its route"
            ),
            "closed" => tracing::info!(provider, "provider circuit closed: it takes mail again"),
            _ => {}
        }
        crate::metrics::provider_circuit(provider, open);
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(
                provider,
                Seen {
                    at: Instant::now(),
                    open,
                    dirty: dirty == 1,
                },
            );
        }
        Ok(Answered { verdict, next })
    }
}

/// The script's answer: its verdict, and the transition (or, for a skip, the next probe's time).
struct Answered {
    verdict: String,
    next: String,
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// A provider's circuit as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Circuit {
    /// It takes mail.
    Closed,
    /// Its mail goes to the next provider; the next probe is due after this long.
    Open { next_probe: Duration },
}

/// The circuit of each provider of `names` under `prefix`.
///
/// # Errors
/// When Redis does not answer.
pub async fn circuits(
    conn: &RedisConnection,
    prefix: &str,
    names: &[&str],
) -> redis::RedisResult<Vec<Circuit>> {
    let keys = Keys::new(prefix);
    let mut circuits = Vec::with_capacity(names.len());
    for name in names {
        let (state, probe_at): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(keys.provider_health(name))
            .arg("state")
            .arg("probe_at")
            .query_async(&mut conn.clone())
            .await?;
        circuits.push(match state.as_deref() {
            Some("open") => Circuit::Open {
                next_probe: Duration::from_millis(probe_at.unwrap_or(0).saturating_sub(now_ms())),
            },
            _ => Circuit::Closed,
        });
    }
    Ok(circuits)
}
