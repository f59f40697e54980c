//! Keys an older mailroom named differently, moved once at start-up.
//!
//! Cluster support gave some keys a hash tag (so that keys changed together share a slot):
//! the suppression list and its index, the `email.verified` stream, and the daily counters.
//! Losing the suppression list would mean mailing bounced and complaining addresses again, so
//! `serve`, `work` and `dev` move them under their new names (`RENAMENX`: never over a key
//! that exists, and a no-op once done; a stream keeps its consumer groups). Only a single Redis
//! can hold the old names: mailroom never ran on a cluster before. Timelines, delivery
//! statuses, dedupe marks and inbound messages were renamed too; they expire within days and
//! are not moved (a message's timeline restarts; its status is read from its job).

use chrono::{Duration, Utc};
use mailroom_jobs::{Keys, RedisConnection};

/// How many days of counters are looked for (they are kept about 13 months).
const STATS_DAYS: i64 = 400;

/// Moves the keys; returns how many moved.
///
/// # Errors
/// When Redis fails.
pub async fn rename_old_keys(conn: &RedisConnection, prefix: &str) -> redis::RedisResult<usize> {
    if conn.is_cluster() {
        return Ok(0);
    }
    let today = Utc::now().date_naive();
    let days: Vec<String> = (0..STATS_DAYS)
        .map(|back| {
            (today - Duration::days(back))
                .format("%Y-%m-%d")
                .to_string()
        })
        .collect();
    let moves = Keys::new(prefix).renamed_since_cluster_support(&days);
    let mut conn = conn.clone();
    let mut exists = redis::pipe();
    for (old, _) in &moves {
        exists.exists(old);
    }
    let present: Vec<bool> = exists.query_async(&mut conn).await?;
    let mut moved = 0;
    for ((old, new), present) in moves.iter().zip(present) {
        if present {
            let renamed: bool = redis::cmd("RENAMENX")
                .arg(old)
                .arg(new)
                .query_async(&mut conn)
                .await?;
            if renamed {
                moved += 1;
            } else {
                tracing::warn!(old = %old, new = %new, "both the old and the new key exist; the old one is left as it is");
            }
        }
    }
    if moved > 0 {
        tracing::info!(moved, "moved keys to the names cluster support gave them");
    }
    Ok(moved)
}
