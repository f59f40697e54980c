//! Retrying a Redis write that must not be lost for a short outage (a restart, a failover),
//! where the caller has nowhere to hand the failure: a message already sent, a tracking hit
//! already answered. Backoff doubles from 50 ms up to a ceiling until the time limit.

use std::{future::Future, time::Duration};

/// Runs `op` until it succeeds or `limit` has passed (backoff from 50 ms, doubling, at most
/// `ceiling`); the last error when it gives up. Each failure before that is logged at debug
/// with `what`.
///
/// # Errors
/// The last error, once `limit` is spent.
pub async fn retry_for<T, E, F, Fut>(
    what: &str,
    limit: Duration,
    ceiling: Duration,
    mut op: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) if started.elapsed() + pause >= limit => return Err(error),
            Err(error) => {
                tracing::debug!(%error, "{what} failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ceiling);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn it_retries_until_success_and_gives_up_after_the_limit() {
        let calls = AtomicU32::new(0);
        let third = retry_for(
            "op",
            Duration::from_secs(10),
            Duration::from_secs(1),
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 3 {
                    Err(format!("failure {n}"))
                } else {
                    Ok(n)
                }
            },
        )
        .await;
        assert_eq!(third, Ok(3));
        let started = tokio::time::Instant::now();
        let never: Result<(), String> = retry_for(
            "op",
            Duration::from_secs(5),
            Duration::from_secs(1),
            || async { Err("down".to_owned()) },
        )
        .await;
        assert_eq!(never, Err("down".to_owned()));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
