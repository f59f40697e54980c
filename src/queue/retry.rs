//! The retry-delay schedule: exponential backoff with full jitter, capped, and a handler's
//! Retry-After honoured when it asks for longer.
//!
//! Full jitter (a uniform delay between zero and the exponential ceiling) spreads the retries
//! of many jobs that failed together, for example during a provider outage, instead of sending
//! them back in synchronized waves.

use std::time::Duration;

/// The backoff policy of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry's delay; each later attempt doubles it.
    pub base: Duration,
    /// No delay exceeds this, whatever the attempt (a Retry-After may).
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The largest delay full jitter may pick after the `attempt`-th run (1-based) failed:
    /// `min(cap, base × 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(63);
        let factor = 1u64 << doublings;
        let base_ms = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX);
        let ceiling = Duration::from_millis(base_ms.saturating_mul(factor));
        ceiling.min(self.cap)
    }

    /// The delay before the next run after the `attempt`-th run failed: uniform in
    /// `[0, ceiling(attempt)]`, drawn from `rng`, or `retry_after` when that is longer.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        let ceiling_ms = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(rng.u64(0..=ceiling_ms));
        match retry_after {
            Some(asked) if asked > jittered => asked,
            _ => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_ceiling_doubles_per_attempt_until_the_cap() {
        let backoff = policy();
        assert_eq!(backoff.ceiling(1), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(2), Duration::from_secs(2));
        assert_eq!(backoff.ceiling(5), Duration::from_secs(16));
        assert_eq!(backoff.ceiling(12), Duration::from_secs(2048));
        assert_eq!(backoff.ceiling(13), Duration::from_secs(3600));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn delays_are_jittered_over_the_whole_range_and_never_exceed_the_ceiling() {
        let backoff = policy();
        let mut rng = fastrand::Rng::with_seed(7);
        for attempt in 1..=20 {
            let ceiling = backoff.ceiling(attempt);
            let delays: Vec<_> = (0..500)
                .map(|_| backoff.delay(attempt, None, &mut rng))
                .collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            // Full jitter: both halves of the range are used.
            assert!(delays.iter().any(|d| *d < ceiling / 2), "attempt {attempt}");
            assert!(delays.iter().any(|d| *d > ceiling / 2), "attempt {attempt}");
        }
    }

    #[test]
    fn a_longer_retry_after_wins_and_a_shorter_one_does_not_shorten_the_backoff() {
        let backoff = policy();
        let mut rng = fastrand::Rng::with_seed(1);
        let asked = Duration::from_secs(90);
        for attempt in 1..=6 {
            // Every ceiling up to attempt 6 (32 s) is below 90 s: the handler's wish wins.
            assert_eq!(backoff.delay(attempt, Some(asked), &mut rng), asked);
        }
        let tiny = Duration::from_millis(1);
        let mut seeded = fastrand::Rng::with_seed(3);
        let mut same_seed = fastrand::Rng::with_seed(3);
        for attempt in 10..=14 {
            let without = backoff.delay(attempt, None, &mut seeded);
            let with = backoff.delay(attempt, Some(tiny), &mut same_seed);
            assert_eq!(with, without.max(tiny));
        }
    }
}
