//! Leases this process holds, and the heartbeat that renews them.
//!
//! A fetched job is leased until a deadline. While this process is alive its heartbeat pushes
//! the deadline forward every third of the lease; when the process dies the deadline passes
//! and the next fetch by any worker reclaims the job.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::{Shared, ms, now_ms};

/// One leased run of a job. The token is the job's attempt counter at fetch time: only the
/// holder of the current token may settle or renew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lease {
    pub(super) id: String,
    pub(super) token: u32,
    pub(super) max_attempts: u32,
}

/// The leases held by one worker, by job id.
#[derive(Debug, Default)]
pub(super) struct Leases(Mutex<HashMap<String, Lease>>);

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        // A panic while holding this lock cannot leave the map half-updated: every
        // operation is a single insert, remove or clone.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn insert(&self, lease: Lease) {
        self.lock().insert(lease.id.clone(), lease);
    }

    pub(super) fn remove(&self, lease: &Lease) {
        let mut map = self.lock();
        if map.get(&lease.id) == Some(lease) {
            map.remove(&lease.id);
        }
    }

    pub(super) fn snapshot(&self) -> Vec<Lease> {
        self.lock().values().cloned().collect()
    }

    pub(super) fn drain(&self) -> Vec<Lease> {
        self.lock().drain().map(|(_, lease)| lease).collect()
    }
}

/// The heartbeat task of a worker, once started.
#[derive(Debug, Default)]
pub(super) struct HeartbeatHandle(Mutex<Option<tokio::task::JoinHandle<()>>>);

impl HeartbeatHandle {
    pub(super) fn set(&self, handle: tokio::task::JoinHandle<()>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    /// Waits for the heartbeat to finish (it deregisters the worker as it ends). Its stop token
    /// must already be cancelled.
    pub(super) async fn stopped(&self) {
        let handle = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

/// Renews leases and marks the worker alive until `stop` is cancelled, then deregisters it.
pub(super) async fn heartbeat(shared: Arc<Shared>, stop: CancellationToken) {
    let every = (shared.config.lease / 3).max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => break,
        }
        if let Err(error) = beat(&shared, every).await {
            tracing::warn!(%error, worker = %shared.worker, "heartbeat failed; retrying at the next beat");
        }
    }
    let mut conn = shared.conn.clone();
    let removed: redis::RedisResult<()> = redis::cmd("ZREM")
        .arg(shared.keys.workers())
        .arg(&shared.worker)
        .query_async(&mut conn)
        .await;
    if let Err(error) = removed {
        tracing::warn!(%error, "could not deregister the worker; it ages out of the list");
    }
}

async fn beat(shared: &Shared, every: Duration) -> redis::RedisResult<()> {
    let now = now_ms();
    let config = &shared.config;
    let mut invocation = shared.scripts.heartbeat.prepare_invoke();
    invocation
        .key(shared.keys.inflight())
        .key(shared.keys.workers())
        .key(shared.keys.dead())
        .arg(shared.keys.job_prefix())
        .arg(now)
        .arg(now + ms(config.lease))
        .arg(&shared.worker)
        .arg(now.saturating_sub(3 * ms(every).max(1000)))
        .arg(now.saturating_sub(ms(config.dead_retention)));
    for lease in shared.leases.snapshot() {
        invocation.arg(&lease.id).arg(lease.token);
    }
    let mut conn = shared.conn.clone();
    let _renewed: u64 = invocation.invoke_async(&mut conn).await?;
    Ok(())
}
