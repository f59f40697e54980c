//! The queue against the real Redis: pickup latency, retries, dead letters, poison input,
//! idempotency, scheduling, lost leases, supervision. Bulk runs are in `queue_bulk.rs`.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{
    Probe, Recorder, TestRedis, eventually, push_raw, start_noop_worker, start_probe_worker,
};
use mailroom::queue::{QueueAdmin, now_ms};
use mailroom_jobs::{EnqueueOptions, Job, Noop};
use redis::AsyncCommands;

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_job_pushed_to_an_idle_worker_starts_within_50_ms() {
    let redis = TestRedis::new().await;
    let recorder = Recorder::default();
    let worker = start_probe_worker(&redis, redis.config(), 4, recorder.clone()).await;
    let producer = redis.producer();

    for n in 0..6u64 {
        let pushed_at = Instant::now();
        producer
            .push(&Probe {
                n,
                ..Probe::default()
            })
            .await
            .unwrap();
        let run = eventually(DEADLINE, "the job to start", || async {
            recorder.runs_of(n).first().cloned()
        })
        .await;
        let latency = run.at - pushed_at;
        // The first push may race the worker's start-up; every later one finds it idle.
        if n > 0 {
            assert!(
                latency < Duration::from_millis(50),
                "job {n} started after {latency:?}"
            );
        }
    }
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_job_is_retried_with_backoff_until_it_succeeds() {
    let redis = TestRedis::new().await;
    let recorder = Recorder::default();
    let worker = start_probe_worker(&redis, redis.config(), 4, recorder.clone()).await;
    let pushed = redis
        .producer()
        .push(&Probe {
            n: 1,
            fail_times: 2,
            ..Probe::default()
        })
        .await
        .unwrap();

    let keys = redis.keys(Probe::QUEUE);
    eventually(DEADLINE, "the job to be done", || async {
        (redis
            .job_field(Probe::QUEUE, &pushed.id, "state")
            .await
            .as_deref()
            == Some("done"))
        .then_some(())
    })
    .await;
    let attempts: Vec<usize> = recorder.runs_of(1).iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(
        redis
            .job_field(Probe::QUEUE, &pushed.id, "attempts")
            .await
            .as_deref(),
        Some("3")
    );
    let mut conn = redis.conn();
    let retried: u64 = conn.hget(keys.counts(), "retried").await.unwrap();
    assert_eq!(retried, 2);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_job_that_keeps_failing_ends_dead_after_its_max_attempts_with_reason_and_error() {
    let redis = TestRedis::new().await;
    let recorder = Recorder::default();
    let worker = start_probe_worker(&redis, redis.config(), 4, recorder.clone()).await;
    let producer = redis.producer();
    let exhausted = producer
        .push_with(
            &Probe {
                n: 1,
                fail_times: 100,
                ..Probe::default()
            },
            EnqueueOptions {
                max_attempts: Some(3),
                ..EnqueueOptions::default()
            },
        )
        .await
        .unwrap();
    let refused = producer
        .push(&Probe {
            n: 2,
            abort: true,
            ..Probe::default()
        })
        .await
        .unwrap();
    let panics = producer
        .push(&Probe {
            n: 3,
            panic: true,
            ..Probe::default()
        })
        .await
        .unwrap();

    let admin = QueueAdmin::new(redis.conn(), redis.prefix.clone());
    let dead = eventually(DEADLINE, "three dead letters", || async {
        let dead = admin.dead(Probe::QUEUE, 10).await.unwrap();
        (dead.len() == 3).then_some(dead)
    })
    .await;
    let find = |id: &str| dead.iter().find(|d| d.id == id).cloned().unwrap();

    let letter = find(&exhausted.id);
    assert_eq!(letter.reason, "attempts exhausted");
    assert_eq!(letter.attempts, 3);
    assert_eq!(letter.last_error, "boom on attempt 3");
    assert_eq!(recorder.runs_of(1).len(), 3);

    let letter = find(&refused.id);
    assert_eq!(letter.reason, "permanent failure");
    assert_eq!(letter.attempts, 1);
    assert_eq!(letter.last_error, "probe 2 refused");
    assert_eq!(
        recorder.runs_of(2).len(),
        1,
        "an aborted job is not retried"
    );

    let letter = find(&panics.id);
    assert_eq!(letter.reason, "handler panicked");
    assert_eq!(letter.attempts, 1, "a panic is a bug a retry would repeat");
    assert!(
        letter.last_error.contains("probe 3 panicked"),
        "{}",
        letter.last_error
    );

    assert!(
        worker.is_running(),
        "failures and panics must not stop the worker"
    );
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_retry_after_longer_than_the_backoff_is_honoured() {
    let redis = TestRedis::new().await;
    let recorder = Recorder::default();
    // Backoff at most 5 ms; the handler asks for 400 ms.
    let worker = start_probe_worker(&redis, redis.config(), 2, recorder.clone()).await;
    let pushed = redis
        .producer()
        .push(&Probe {
            n: 7,
            fail_times: 1,
            retry_after_ms: Some(400),
            ..Probe::default()
        })
        .await
        .unwrap();

    let keys = redis.keys(Probe::QUEUE);
    let scheduled: f64 = eventually(DEADLINE, "the retry to be scheduled", || async {
        redis
            .conn()
            .zscore::<_, _, Option<f64>>(keys.delayed(), &pushed.id)
            .await
            .unwrap()
    })
    .await;
    let runs = eventually(DEADLINE, "the second run", || async {
        let runs = recorder.runs_of(7);
        (runs.len() == 2).then_some(runs)
    })
    .await;
    let first_failed_ms = scheduled as u64 - 400;
    assert!(first_failed_ms <= now_ms());
    let gap = runs[1].at - runs[0].at;
    assert!(
        gap >= Duration::from_millis(400),
        "retried after only {gap:?}"
    );
    assert_eq!(runs[1].attempt, 2);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn poison_payloads_are_dead_lettered_and_the_worker_keeps_going() {
    let redis = TestRedis::new().await;
    let worker = start_noop_worker(&redis, redis.config(), 4).await;
    push_raw(&redis, Noop::QUEUE, "not-json", "{this is not json").await;
    push_raw(
        &redis,
        Noop::QUEUE,
        "unknown-field",
        r#"{"sleep_ms": 1, "colour": "red"}"#,
    )
    .await;
    push_raw(
        &redis,
        Noop::QUEUE,
        "too-long",
        r#"{"sleep_ms": 999999999}"#,
    )
    .await;
    let good = redis.producer().push(&Noop::default()).await.unwrap();

    eventually(DEADLINE, "the good job to be done", || async {
        (redis
            .job_field(Noop::QUEUE, &good.id, "state")
            .await
            .as_deref()
            == Some("done"))
        .then_some(())
    })
    .await;
    let admin = QueueAdmin::new(redis.conn(), redis.prefix.clone());
    let dead = eventually(DEADLINE, "three dead letters", || async {
        let dead = admin.dead(Noop::QUEUE, 10).await.unwrap();
        (dead.len() == 3).then_some(dead)
    })
    .await;
    let reason = |id: &str| {
        let letter = dead.iter().find(|d| d.id == id).unwrap();
        (
            letter.reason.clone(),
            letter.last_error.clone(),
            letter.attempts,
        )
    };
    let (why, error, attempts) = reason("not-json");
    assert_eq!(why, "undecodable payload");
    assert!(error.contains("key must be a string"), "{error}");
    assert_eq!(attempts, 1);
    let (why, error, _) = reason("unknown-field");
    assert_eq!(why, "undecodable payload");
    assert!(error.contains("unknown field `colour`"), "{error}");
    let (why, error, _) = reason("too-long");
    assert_eq!(why, "invalid payload");
    assert!(
        error.contains("sleep_ms 999999999 is over the limit"),
        "{error}"
    );

    assert!(worker.is_running());
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_job_pushed_with_the_documented_raw_commands_runs() {
    let redis = TestRedis::new().await;
    let worker = start_noop_worker(&redis, redis.config(), 2).await;
    push_raw(
        &redis,
        Noop::QUEUE,
        "from-python-1",
        r#"{"note": "hello from another language"}"#,
    )
    .await;
    eventually(DEADLINE, "the raw job to be done", || async {
        (redis
            .job_field(Noop::QUEUE, "from-python-1", "state")
            .await
            .as_deref()
            == Some("done"))
        .then_some(())
    })
    .await;
    assert_eq!(
        redis
            .job_field(Noop::QUEUE, "from-python-1", "attempts")
            .await
            .as_deref(),
        Some("1")
    );
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn the_same_idempotency_key_within_its_window_returns_the_first_id_and_queues_nothing() {
    let redis = TestRedis::new().await;
    let producer = redis
        .producer()
        .with_idempotency_window(Duration::from_millis(300));
    let keyed = |key: &str| EnqueueOptions {
        idempotency_key: Some(key.to_owned()),
        ..EnqueueOptions::default()
    };
    let first = producer
        .push_with(&Noop::default(), keyed("order-42"))
        .await
        .unwrap();
    let again = producer
        .push_with(
            &Noop {
                sleep_ms: 5,
                note: None,
            },
            keyed("order-42"),
        )
        .await
        .unwrap();
    let other = producer
        .push_with(&Noop::default(), keyed("order-43"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.id, first.id);
    assert_ne!(other.id, first.id);
    let keys = redis.keys(Noop::QUEUE);
    let ready: Vec<String> = redis.conn().lrange(keys.ready(), 0, -1).await.unwrap();
    assert_eq!(ready.len(), 2);

    // After the window the key is free again.
    eventually(DEADLINE, "the idempotency window to pass", || async {
        let exists: bool = redis
            .conn()
            .exists(keys.idempotency("order-42"))
            .await
            .unwrap();
        (!exists).then_some(())
    })
    .await;
    let later = producer
        .push_with(&Noop::default(), keyed("order-42"))
        .await
        .unwrap();
    assert!(!later.duplicate);
    assert_ne!(later.id, first.id);
}

#[tokio::test]
async fn a_scheduled_job_starts_no_earlier_than_its_run_at_time() {
    let redis = TestRedis::new().await;
    let recorder = Recorder::default();
    let worker = start_probe_worker(&redis, redis.config(), 2, recorder.clone()).await;
    let producer = redis.producer();
    let far = SystemTime::now() + Duration::from_secs(365 * 24 * 3600);
    let far_job = producer
        .push_with(
            &Probe {
                n: 2,
                ..Probe::default()
            },
            EnqueueOptions {
                run_at: Some(far),
                ..EnqueueOptions::default()
            },
        )
        .await
        .unwrap();
    let run_at_ms = now_ms() + 700;
    let run_at = Instant::now() + Duration::from_millis(700);
    producer
        .push_with(
            &Probe {
                n: 1,
                ..Probe::default()
            },
            EnqueueOptions {
                run_at: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(run_at_ms)),
                ..EnqueueOptions::default()
            },
        )
        .await
        .unwrap();

    let run = eventually(DEADLINE, "the scheduled job", || async {
        recorder.runs_of(1).first().cloned()
    })
    .await;
    // Instants and the wall clock are read a few µs apart: allow 2 ms of measuring slack.
    assert!(
        run.at + Duration::from_millis(2) >= run_at,
        "started {:?} early",
        run_at - run.at
    );

    let keys = redis.keys(Probe::QUEUE);
    let score: f64 = redis
        .conn()
        .zscore(keys.delayed(), &far_job.id)
        .await
        .unwrap();
    let far_ms = far
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    assert_eq!(score, far_ms, "the far job keeps its exact millisecond");
    assert!(recorder.runs_of(2).is_empty());
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_worker_that_ends_or_fails_on_its_own_is_reported_as_a_failure() {
    use apalis_core::error::WorkerError;
    use mailroom::{queue::RedisQueue, worker::supervise};
    use tokio_util::sync::CancellationToken;

    let redis = TestRedis::new().await;
    let queue = RedisQueue::<Noop>::connect(redis.client.clone(), redis.config(), "supervised")
        .await
        .unwrap();
    let grace = Duration::from_secs(1);

    let shutdown = CancellationToken::new();
    let ended = supervise(
        async { Ok::<(), WorkerError>(()) },
        &queue,
        &shutdown,
        grace,
    )
    .await;
    assert!(
        ended
            .unwrap_err()
            .to_string()
            .contains("stopped without being asked")
    );
    assert!(
        shutdown.is_cancelled(),
        "the process's other workers are told to stop"
    );

    let failed = supervise(
        async { Err(WorkerError::BackendError("redis vanished".into())) },
        &queue,
        &CancellationToken::new(),
        grace,
    )
    .await;
    assert!(format!("{:#}", failed.unwrap_err()).contains("redis vanished"));

    let panicked = supervise(
        async {
            panic!("runtime died");
            #[allow(unreachable_code)]
            Ok::<(), WorkerError>(())
        },
        &queue,
        &CancellationToken::new(),
        grace,
    )
    .await;
    assert!(panicked.unwrap_err().to_string().contains("panicked"));
}

#[tokio::test]
async fn a_run_that_succeeds_after_losing_its_lease_is_not_run_again() {
    let redis = TestRedis::new().await;
    let recorder = Recorder::default();
    let worker = start_probe_worker(&redis, redis.config(), 2, recorder.clone()).await;
    let pushed = redis
        .producer()
        .push(&Probe {
            n: 1,
            sleep_ms: 400,
            ..Probe::default()
        })
        .await
        .unwrap();
    let keys = redis.keys(Probe::QUEUE);
    let job = keys.job(&pushed.id);
    eventually(DEADLINE, "the first run", || async {
        (!recorder.runs_of(1).is_empty()).then_some(())
    })
    .await;

    // While it runs, its lease passes to another worker (as after a network partition): the
    // attempt counter moves on and the job is in flight under the new lease.
    let mut conn = redis.conn();
    let _: () = conn.hincr(&job, "attempts", 1).await.unwrap();
    let _: () = conn
        .zadd(keys.inflight(), &pushed.id, now_ms() + 60_000)
        .await
        .unwrap();
    // The first run finishes; its settle is refused, but its success is noted.
    eventually(DEADLINE, "the completed run to be noted", || async {
        redis.hget(&job, "completed_at").await
    })
    .await;
    assert_eq!(redis.hget(&job, "state").await.as_deref(), Some("running"));

    // The other worker dies; its lease expires and the job is reclaimed, then finished without
    // running a second time.
    let _: () = conn
        .zadd(keys.inflight(), &pushed.id, now_ms() - 1)
        .await
        .unwrap();
    let _: () = conn.lpush(keys.signal(), "1").await.unwrap();
    eventually(DEADLINE, "the job to be done", || async {
        (redis.hget(&job, "state").await.as_deref() == Some("done")).then_some(())
    })
    .await;
    assert_eq!(recorder.runs_of(1).len(), 1, "the work was done once");
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_job_records_are_dead_lettered_and_the_jobs_popped_with_them_still_run() {
    // Redis does not roll back a script that errors: a record the fetch script cannot read must
    // not stop it after the RPOP, or the good ids popped in the same batch would be lost.
    let redis = TestRedis::new().await;
    let keys = redis.keys(Noop::QUEUE);
    let mut good = Vec::new();
    for n in 0..3 {
        good.push(redis.producer().push(&Noop::default()).await.unwrap().id);
        if n == 1 {
            push_raw(&redis, Noop::QUEUE, "bad-attempts", r#"{"sleep_ms": 0}"#).await;
            let _: () = redis
                .conn()
                .hset(keys.job("bad-attempts"), "attempts", "not a number")
                .await
                .unwrap();
            // An id whose record is not a hash at all.
            let _: () = redis.conn().set(keys.job("bad-type"), "x").await.unwrap();
            let _: () = redis.conn().lpush(keys.ready(), "bad-type").await.unwrap();
        }
    }
    let mut config = redis.config();
    config.fetch_batch = 16;
    let worker = start_noop_worker(&redis, config, 4).await;
    for id in &good {
        eventually(DEADLINE, "every good job to be done", || async {
            (redis.job_field(Noop::QUEUE, id, "state").await.as_deref() == Some("done"))
                .then_some(())
        })
        .await;
    }
    let admin = QueueAdmin::new(redis.conn(), redis.prefix.clone());
    let dead = eventually(DEADLINE, "two dead letters", || async {
        let dead = admin.dead(Noop::QUEUE, 10).await.unwrap();
        (dead.len() == 2).then_some(dead)
    })
    .await;
    let letter = dead.iter().find(|d| d.id == "bad-attempts").unwrap();
    assert_eq!(letter.reason, "malformed job record");
    assert!(
        letter.last_error.contains("not an integer"),
        "{}",
        letter.last_error
    );
    assert!(dead.iter().any(|d| d.id == "bad-type"));
    let ready: usize = redis.conn().llen(keys.ready()).await.unwrap();
    let inflight: usize = redis.conn().zcard(keys.inflight()).await.unwrap();
    assert_eq!((ready, inflight), (0, 0), "nothing is left behind");
    assert!(worker.is_running());
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn emails_pushed_in_a_batch_keep_their_own_message_ids() {
    // A message's id is its status key and SendGrid's mailroom_id: a batch push must not give
    // its job another one.
    let redis = TestRedis::new().await;
    let emails: Vec<mailroom_jobs::SendEmail> = (0..3)
        .map(|n| {
            mailroom_jobs::SendEmail::new(mailroom_jobs::EmailMessage {
                to: vec![mailroom_jobs::Mailbox::new(format!("r{n}@example.com"))],
                subject: Some("Hi".to_owned()),
                text: Some("Hello".to_owned()),
                ..mailroom_jobs::EmailMessage::default()
            })
        })
        .collect();
    let ids = redis.producer().push_many(&emails).await.unwrap();
    let own: Vec<String> = emails.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, own);
    for id in &own {
        assert_eq!(
            redis.job_field("email", id, "state").await.as_deref(),
            Some("queued")
        );
    }
}

#[tokio::test]
async fn new_jobs_are_recorded_as_the_push_script_records_them_and_the_rest_still_checked() {
    // `push_each_new` writes jobs made for the push, due now and without an idempotency key,
    // with a lighter script: their records must be the ones the full script writes, and the
    // other jobs of the same call must still get the full script's checks.
    let redis = TestRedis::new().await;
    let producer = redis.producer();
    let email = |n: u32| {
        mailroom_jobs::SendEmail::new(mailroom_jobs::EmailMessage {
            to: vec![mailroom_jobs::Mailbox::new(format!("r{n}@example.com"))],
            subject: Some("Hi".to_owned()),
            text: Some("Hello".to_owned()),
            ..mailroom_jobs::EmailMessage::default()
        })
    };
    let options = |job: &mailroom_jobs::SendEmail| job.enqueue_options();
    let valid = |job: &mailroom_jobs::SendEmail| mailroom_jobs::Valid::new(job.clone()).unwrap();
    let (checked, plain) = (email(0), email(1));
    producer
        .push_each(&[(checked.clone(), options(&checked))])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let later = email(2);
    let keyed = email(3);
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    let batch = vec![
        (valid(&plain), options(&plain)),
        (
            valid(&later),
            EnqueueOptions {
                run_at: Some(in_an_hour),
                ..options(&later)
            },
        ),
        (
            valid(&keyed),
            EnqueueOptions {
                idempotency_key: Some("once".to_owned()),
                ..options(&keyed)
            },
        ),
    ];
    let answers: Vec<_> = producer
        .push_each_new(&batch)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: Vec<String> = answers.iter().map(|a| a.id.clone()).collect();
    assert_eq!(
        ids,
        [&plain, &later, &keyed].map(|j| j.id.to_string()).to_vec()
    );
    assert!(answers.iter().all(|a| !a.duplicate && !a.conflict));

    // The same fields, with the same values but for the payload and the times.
    let fields = |id: String| {
        let conn = redis.conn();
        let key = redis.keys("email").job(&id);
        async move {
            let mut conn = conn;
            let record: std::collections::BTreeMap<String, String> =
                conn.hgetall(&key).await.unwrap();
            record
        }
    };
    let by_script = fields(checked.id.to_string()).await;
    let by_new = fields(plain.id.to_string()).await;
    let names = |r: &std::collections::BTreeMap<String, String>| -> Vec<String> {
        r.keys().filter(|k| *k != "fingerprint").cloned().collect()
    };
    assert_eq!(names(&by_new), names(&by_script));
    for field in ["attempts", "max_attempts", "state"] {
        assert_eq!(by_new[field], by_script[field], "{field}");
    }
    assert_eq!(by_new["state"], "queued");
    assert_eq!(by_new["run_at"], by_new["enqueued_at"]);
    let payload: mailroom_jobs::SendEmail = serde_json::from_str(&by_new["payload"]).unwrap();
    assert_eq!(payload.id, plain.id);
    assert!(
        !by_new.contains_key("fingerprint"),
        "nothing compares with a new job's fingerprint"
    );

    // Both ready jobs are in the ready list, the later one in the delayed set, and the keyed
    // one holds its key: pushing it again answers with the first job.
    let keys = redis.keys("email");
    let mut conn = redis.conn();
    let ready: Vec<String> = conn.lrange(keys.ready(), 0, -1).await.unwrap();
    for job in [&checked, &plain, &keyed] {
        assert!(ready.contains(&job.id.to_string()), "{} ready", job.id);
    }
    assert!(!ready.contains(&later.id.to_string()));
    let delayed: Option<f64> = conn
        .zscore(keys.delayed(), later.id.to_string())
        .await
        .unwrap();
    assert_eq!(
        delayed,
        Some(now_ms_of(in_an_hour) as f64),
        "the later job waits for its time"
    );
    let again = email(4);
    let repeat = producer
        .push_each_new(&[(
            valid(&again),
            EnqueueOptions {
                idempotency_key: Some("once".to_owned()),
                ..options(&again)
            },
        )])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(repeat.duplicate);
    assert_eq!(repeat.id, keyed.id.to_string());
    assert!(
        repeat.conflict,
        "another message under the same key is a conflict: the keyed job kept its fingerprint"
    );
}

fn now_ms_of(time: SystemTime) -> u64 {
    u64::try_from(
        time.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_round_trip_that_finds_one_push_script_missing_queues_each_job_once() {
    // A Redis of this test's own that knows push_new.lua but not push.lua, as after a deploy
    // that changed only push.lua: the round's push_new call runs, the other is refused.
    let server = common::redis_server::RedisServer::start(&[]);
    let redis = TestRedis::at(&server.url()).await;
    let push_new = redis::Script::new(include_str!("../jobs/src/lua/push_new.lua"));
    push_new
        .prepare_invoke()
        .load_async(&mut redis.conn())
        .await
        .unwrap();
    let email = |n: u32| {
        let message = serde_json::from_value(serde_json::json!({
            "to": format!("p{n}@example.org"), "subject": "Hi", "text": "Hi.",
        }))
        .unwrap();
        mailroom_jobs::SendEmail::new(message).checked().unwrap()
    };
    // Three plain new jobs (push_new.lua) and one with an idempotency key (push.lua).
    let mut jobs: Vec<_> = (0..4)
        .map(|n| {
            let job = email(n);
            let options = job.enqueue_options();
            (job, options)
        })
        .collect();
    jobs[3].1.idempotency_key = Some("once".to_owned());
    let outcomes = redis.producer().push_each_new(&jobs).await.unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let ready: Vec<String> = redis
        .conn()
        .lrange(redis.keys(mailroom_jobs::SendEmail::QUEUE).ready(), 0, -1)
        .await
        .unwrap();
    let mut unique = ready.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        (ready.len(), unique.len()),
        (4, 4),
        "each job queued once: {ready:?}"
    );
}

#[tokio::test]
async fn a_postponed_run_comes_back_later_without_counting_as_an_attempt() {
    let redis = TestRedis::new().await;
    let recorder = Recorder::default();
    let worker = start_probe_worker(&redis, redis.config(), 4, recorder.clone()).await;
    let probe = Probe {
        n: 1,
        postpone_times: 3,
        ..Probe::default()
    };
    let options = EnqueueOptions {
        max_attempts: Some(1),
        ..EnqueueOptions::default()
    };
    let pushed = redis.producer().push_with(&probe, options).await.unwrap();
    eventually(DEADLINE, "the job to be done", || async {
        let state = redis.job_field(Probe::QUEUE, &pushed.id, "state").await;
        (state.as_deref() == Some("done")).then_some(())
    })
    .await;
    // Four runs, each the first attempt: one attempt allowed, and three postponements spent none.
    let runs = recorder.runs_of(1);
    let attempts: Vec<usize> = runs.iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 1, 1, 1]);
    assert!(
        runs.windows(2)
            .all(|w| w[1].at - w[0].at >= Duration::from_millis(45))
    );
    let attempts = redis.job_field(Probe::QUEUE, &pushed.id, "attempts").await;
    assert_eq!(attempts.as_deref(), Some("1"));
    worker.stop().await.unwrap();
}
