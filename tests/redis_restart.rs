//! Redis restarting under a running worker (AOF on, as in production): a job that finished
//! while Redis was away is settled when it comes back, and is not run again.

mod common;

use std::time::Duration;

use common::{
    Probe, Recorder, TestRedis, eventually, redis_server::RedisServer, start_probe_worker,
};

#[tokio::test]
async fn a_job_that_finishes_during_an_outage_longer_than_five_seconds_is_settled_once() {
    let mut server = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let redis = TestRedis::at(&server.url()).await;
    let recorder = Recorder::default();
    let mut config = redis.config();
    config.lease = Duration::from_secs(20);
    let worker = start_probe_worker(&redis, config, 1, recorder.clone()).await;
    let pushed = redis
        .producer()
        .push(&Probe {
            n: 1,
            sleep_ms: 1_000,
            ..Probe::default()
        })
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the job to start", || async {
        (recorder.len() == 1).then_some(())
    })
    .await;

    // Redis goes away while the job runs, and stays away past the old five-second give-up.
    server.kill();
    tokio::time::sleep(Duration::from_secs(7)).await; // the outage itself, not a wait for a result
    server.restart();

    eventually(
        Duration::from_secs(8),
        "the job to be settled done once Redis is back",
        || async {
            // The test's own connection reconnects too: an error is "not yet".
            let state: Option<String> = redis::AsyncCommands::hget(
                &mut redis.conn(),
                redis.keys("probe").job(&pushed.id),
                "state",
            )
            .await
            .ok()
            .flatten();
            (state.as_deref() == Some("done")).then_some(())
        },
    )
    .await;
    assert_eq!(recorder.runs_of(1).len(), 1, "the job ran once");
    assert_eq!(
        redis
            .job_field("probe", &pushed.id, "attempts")
            .await
            .as_deref(),
        Some("1")
    );
    worker.stop().await.unwrap();
}
