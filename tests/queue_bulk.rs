//! The queue under bulk: a backlog of 50,000 jobs due at once, and what is left in Redis after
//! 10,000 jobs and their retention. In a test binary of their own, so that their load does not
//! overlap the latency-sensitive tests in `queue.rs` (cargo runs test binaries one at a time).

mod common;

use std::{
    collections::HashSet,
    time::{Duration, SystemTime},
};

use common::{Probe, Recorder, TestRedis, eventually, start_noop_worker, start_probe_worker};
use mailroom::queue::QueueConfig;
use mailroom_jobs::{EnqueueOptions, Job, Noop};
use redis::AsyncCommands;

#[tokio::test]
async fn fifty_thousand_jobs_due_at_once_are_all_processed_without_a_worker_error() {
    const JOBS: u64 = 50_000;
    let redis = TestRedis::new().await;
    let producer = redis.producer();
    // Far enough ahead that every push lands in the delayed set even on a loaded machine.
    let due = SystemTime::now() + Duration::from_secs(8);
    let jobs: Vec<Probe> = (0..JOBS)
        .map(|n| Probe {
            n,
            ..Probe::default()
        })
        .collect();
    let options = EnqueueOptions {
        run_at: Some(due),
        ..EnqueueOptions::default()
    };
    for chunk in jobs.chunks(10_000) {
        producer.push_many_with(chunk, &options).await.unwrap();
    }
    let keys = redis.keys(Probe::QUEUE);
    let delayed: u64 = redis.conn().zcard(keys.delayed()).await.unwrap();
    assert_eq!(delayed, JOBS, "every job waits in the delayed set");

    let recorder = Recorder::default();
    let config = QueueConfig {
        fetch_batch: 64,
        ..redis.config()
    };
    let worker = start_probe_worker(&redis, config, 64, recorder.clone()).await;
    eventually(
        Duration::from_secs(180),
        "every job to be processed",
        || async {
            let done: Option<u64> = redis.conn().hget(keys.counts(), "done").await.unwrap();
            (done == Some(JOBS)).then_some(())
        },
    )
    .await;
    assert!(worker.is_running(), "the worker must survive the backlog");
    let seen: HashSet<u64> = recorder.runs().iter().map(|r| r.n).collect();
    assert_eq!(seen.len() as u64, JOBS);
    assert_eq!(recorder.len() as u64, JOBS, "each job ran once");
    let dead: u64 = redis.conn().zcard(keys.dead()).await.unwrap();
    assert_eq!(dead, 0);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn after_ten_thousand_jobs_and_their_retention_only_a_fixed_handful_of_keys_remain() {
    const JOBS: usize = 10_000;
    let redis = TestRedis::new().await;
    let config = QueueConfig {
        retention: Duration::from_millis(500),
        fetch_batch: 64,
        ..redis.config()
    };
    let jobs = vec![Noop::default(); JOBS];
    redis.producer().push_many(&jobs).await.unwrap();
    let keys = redis.keys(Noop::QUEUE);
    let worker = start_noop_worker(&redis, config, 32).await;
    eventually(Duration::from_secs(120), "every job to be done", || async {
        let done: Option<usize> = redis.conn().hget(keys.counts(), "done").await.unwrap();
        (done == Some(JOBS)).then_some(())
    })
    .await;
    worker.stop().await.unwrap();

    let allowed: HashSet<String> = [keys.counts(), keys.signal()].into_iter().collect();
    let left = eventually(
        Duration::from_secs(30),
        "finished records to expire",
        || async {
            let left = redis.all_keys().await;
            left.iter().all(|k| allowed.contains(k)).then_some(left)
        },
    )
    .await;
    assert!(left.len() <= 2, "{left:?}");
}
