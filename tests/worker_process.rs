//! `mailroom work` and `mailroom queue` as processes: a worker killed with SIGKILL mid-job, a
//! graceful stop on SIGTERM, and the operator commands. Jobs are emails sent through a SendGrid
//! stand-in that holds each answer as long as its subject says (`slow-1500`: 1.5 s), which is
//! how a job is made to take its time.

mod common;

use std::{
    process::{Output, Stdio},
    time::Duration,
};

use common::{TestRedis, eventually, push_raw};
use mailroom_jobs::{EmailMessage, EnqueueOptions, Job, Mailbox, SendEmail};
use redis::AsyncCommands;
use tokio::process::{Child, Command};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_string_contains, method, path},
};

const DEADLINE: Duration = Duration::from_secs(30);
const QUEUE: &str = SendEmail::QUEUE;

/// A SendGrid stand-in answering 202 after the delay a message's subject names.
async fn slow_sendgrid(delays_ms: &[u64]) -> MockServer {
    let server = MockServer::start().await;
    for ms in delays_ms {
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .and(body_string_contains(format!("\"subject\":\"slow-{ms}\"")))
            .respond_with(
                ResponseTemplate::new(202)
                    .insert_header("X-Message-Id", format!("sg-{ms}"))
                    .set_delay(Duration::from_millis(*ms)),
            )
            .mount(&server)
            .await;
    }
    server
}

/// An email that takes `ms` to send through [`slow_sendgrid`].
fn slow(ms: u64) -> SendEmail {
    SendEmail::new(EmailMessage {
        to: vec![Mailbox::new("ada@example.com")],
        subject: Some(format!("slow-{ms}")),
        text: Some("Hello".to_owned()),
        ..EmailMessage::default()
    })
}

fn mailroom(redis: &TestRedis) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailroom"));
    command
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
        .env("MAILROOM_LEASE_SECS", "2")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

fn start_worker(redis: &TestRedis, sendgrid: &MockServer, extra: &[(&str, &str)]) -> Child {
    let mut command = mailroom(redis);
    command
        .args(["work", "--concurrency", "2"])
        .env("MAILROOM_PROVIDER", "sendgrid")
        .env("SENDGRID_API_URL", sendgrid.uri())
        .env("SENDGRID_API_KEY", "SG.test-key")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in extra {
        command.env(name, value);
    }
    command.spawn().expect("start mailroom work")
}

async fn run(redis: &TestRedis, args: &[&str]) -> Output {
    mailroom(redis)
        .args(args)
        .output()
        .await
        .expect("run mailroom")
}

async fn state(redis: &TestRedis, id: &str) -> Option<String> {
    redis.job_field(QUEUE, id, "state").await
}

async fn wait_for_state(redis: &TestRedis, id: &str, wanted: &str) {
    eventually(DEADLINE, &format!("job {id} to be {wanted}"), || async {
        (state(redis, id).await.as_deref() == Some(wanted)).then_some(())
    })
    .await;
}

fn sigterm(child: &Child) {
    common::sigterm(child.id().expect("running child"));
}

#[tokio::test]
async fn a_job_of_a_worker_killed_mid_job_is_finished_by_another_worker() {
    let redis = TestRedis::new().await;
    let sendgrid = slow_sendgrid(&[1500]).await;
    let job = redis.producer().push(&slow(1500)).await.unwrap();
    let mut first = start_worker(&redis, &sendgrid, &[]);
    wait_for_state(&redis, &job.id, "running").await;
    first.start_kill().unwrap(); // SIGKILL: no chance to clean up
    first.wait().await.unwrap();

    let mut second = start_worker(&redis, &sendgrid, &[]);
    wait_for_state(&redis, &job.id, "done").await;
    assert_eq!(
        redis.job_field(QUEUE, &job.id, "attempts").await.as_deref(),
        Some("2")
    );
    let keys = redis.keys(QUEUE);
    let retried: u64 = redis.conn().hget(keys.counts(), "retried").await.unwrap();
    assert_eq!(retried, 1, "the killed run counts as an attempt");
    sigterm(&second);
    assert!(second.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_job_that_keeps_killing_its_worker_ends_dead_instead_of_looping() {
    let redis = TestRedis::new().await;
    let options = EnqueueOptions {
        max_attempts: Some(1),
        ..EnqueueOptions::default()
    };
    let sendgrid = slow_sendgrid(&[60_000]).await;
    let job = redis
        .producer()
        .push_with(&slow(60_000), options)
        .await
        .unwrap();
    let mut first = start_worker(&redis, &sendgrid, &[]);
    wait_for_state(&redis, &job.id, "running").await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let mut second = start_worker(&redis, &sendgrid, &[]);
    wait_for_state(&redis, &job.id, "dead").await;
    let reason = redis.job_field(QUEUE, &job.id, "reason").await.unwrap();
    let error = redis.job_field(QUEUE, &job.id, "last_error").await.unwrap();
    assert_eq!(reason, "attempts exhausted");
    assert!(error.starts_with("lease expired"), "{error}");
    sigterm(&second);
    assert!(second.wait().await.unwrap().success());
}

#[tokio::test]
async fn sigterm_lets_running_jobs_finish_and_returns_the_rest_at_once() {
    let redis = TestRedis::new().await;
    let producer = redis.producer();
    let sendgrid = slow_sendgrid(&[1000, 120_000, 1]).await;
    let short = producer.push(&slow(1000)).await.unwrap();
    let long = producer.push(&slow(120_000)).await.unwrap();
    let mut worker = start_worker(&redis, &sendgrid, &[("MAILROOM_SHUTDOWN_GRACE_SECS", "3")]);
    wait_for_state(&redis, &short.id, "running").await;
    wait_for_state(&redis, &long.id, "running").await;
    // Both slots are busy, so this one waits in the queue.
    let waiting = producer.push(&slow(1)).await.unwrap();

    sigterm(&worker);
    let status = tokio::time::timeout(Duration::from_secs(15), worker.wait())
        .await
        .expect("the worker stops within its grace period")
        .unwrap();
    assert!(status.success(), "{status}");

    assert_eq!(
        state(&redis, &short.id).await.as_deref(),
        Some("done"),
        "the short job finished"
    );
    assert_eq!(
        state(&redis, &long.id).await.as_deref(),
        Some("queued"),
        "the long job was handed back"
    );
    assert_eq!(
        redis
            .job_field(QUEUE, &long.id, "attempts")
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(state(&redis, &waiting.id).await.as_deref(), Some("queued"));
    let keys = redis.keys(QUEUE);
    let ready: Vec<String> = redis.conn().lrange(keys.ready(), 0, -1).await.unwrap();
    assert!(
        ready.contains(&long.id) && ready.contains(&waiting.id),
        "{ready:?}"
    );
    let in_flight: u64 = redis.conn().zcard(keys.inflight()).await.unwrap();
    assert_eq!(in_flight, 0);
    let workers: u64 = redis.conn().zcard(keys.workers()).await.unwrap();
    assert_eq!(workers, 0, "the worker deregistered");
}

#[tokio::test]
async fn operators_list_and_requeue_dead_letters_and_see_stats() {
    let redis = TestRedis::new().await;
    let sendgrid = slow_sendgrid(&[]).await;
    let mut worker = start_worker(&redis, &sendgrid, &[]);
    push_raw(&redis, QUEUE, "bad-1", "{oops").await;
    let no_recipient = r#"{"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","message":{"to":[],"subject":"x","text":"y"}}"#;
    push_raw(&redis, QUEUE, "bad-2", no_recipient).await;
    wait_for_state(&redis, "bad-1", "dead").await;
    wait_for_state(&redis, "bad-2", "dead").await;

    let stats = run(&redis, &["queue", "stats"]).await;
    assert!(stats.status.success());
    let text = String::from_utf8(stats.stdout).unwrap();
    assert!(
        text.contains("queue email: ready 0  delayed 0  in flight 0  dead 2"),
        "{text}"
    );
    assert!(
        text.contains("  worker "),
        "a live worker is listed: {text}"
    );

    sigterm(&worker);
    assert!(worker.wait().await.unwrap().success());

    let dead = run(&redis, &["queue", "dead", "--queue", "email"]).await;
    let text = String::from_utf8(dead.stdout).unwrap();
    assert!(
        text.contains("bad-1  reason: undecodable payload  attempts: 1"),
        "{text}"
    );
    assert!(
        text.contains("bad-2  reason: invalid payload  attempts: 1"),
        "{text}"
    );
    assert!(text.contains("last error: to: "), "{text}");

    let retried = run(&redis, &["queue", "retry", "bad-1", "--queue", "email"]).await;
    assert!(retried.status.success());
    assert_eq!(state(&redis, "bad-1").await.as_deref(), Some("queued"));
    assert_eq!(
        redis.job_field(QUEUE, "bad-1", "attempts").await.as_deref(),
        Some("0")
    );

    let missing = run(
        &redis,
        &["queue", "retry", "no-such-id", "--queue", "email"],
    )
    .await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no dead letter no-such-id"));

    let all = run(&redis, &["queue", "retry", "--all", "--queue", "email"]).await;
    assert!(
        String::from_utf8(all.stdout)
            .unwrap()
            .contains("requeued 1 dead letters")
    );
    let keys = redis.keys(QUEUE);
    let ready: u64 = redis.conn().llen(keys.ready()).await.unwrap();
    let dead: u64 = redis.conn().zcard(keys.dead()).await.unwrap();
    assert_eq!((ready, dead), (2, 0));
}

#[tokio::test]
async fn a_bad_setting_stops_the_process_with_a_message_naming_it() {
    let redis = TestRedis::new().await;
    let output = mailroom(&redis)
        .args(["queue", "stats"])
        .env("MAILROOM_CONCURRENCY", "lots")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(
        stderr.contains("concurrency") && stderr.contains("lots"),
        "{stderr}"
    );

    let output = mailroom(&redis)
        .args(["queue", "stats"])
        .env("MAILROOM_LEASE_SECS", "0")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("MAILROOM_LEASE_SECS must be between 1 and 3600")
    );
}

#[tokio::test]
async fn a_worker_that_cannot_reach_redis_exits_non_zero() {
    let redis = TestRedis::new().await;
    let output = mailroom(&redis)
        .args(["work"])
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("could not connect to Redis"));
}
