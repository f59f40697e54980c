//! mailroom on a Redis that is unfit to hold mail: one whose policy evicts keys (refused at
//! start, and writes refused when it turns evicting under a running API) and one that is full
//! (503 with Retry-After that says so, nothing half-written, `/readyz` not ready).

mod common;

use std::{process::Stdio, time::Duration};

use common::{app::TestApp, app::simple_email, redis_server::RedisServer};
use mailroom_jobs::{Job, SendEmail};
use redis::AsyncCommands;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

/// Runs `mailroom ARGS` against `url` with `env`; returns the exit code (`None` while still
/// running after `wait`) and what it logged.
async fn run(
    url: &str,
    args: &[&str],
    env: &[(&str, &str)],
    wait: Duration,
) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(args)
        .env("REDIS_URL", url)
        .env("MAILROOM_API_KEYS", "health-test-key")
        .env("MAILROOM_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env_remove("MAILROOM_ALLOW_EVICTING_REDIS")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let collect = async {
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
            if line.contains("API listening") || line.contains("worker started") {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(wait, collect).await;
    let code = match tokio::time::timeout(Duration::from_millis(200), child.wait()).await {
        Ok(status) => status.unwrap().code(),
        Err(_) => None,
    };
    (code, log)
}

#[tokio::test]
async fn serve_and_work_refuse_an_evicting_redis_naming_the_setting() {
    let redis = RedisServer::start(&["--maxmemory-policy", "allkeys-lru"]);
    for command in ["serve", "work"] {
        let (code, log) = run(&redis.url(), &[command], &[], Duration::from_secs(20)).await;
        assert_eq!(
            code,
            Some(2),
            "{command} exits 2 like any configuration error: {log}"
        );
        assert!(log.contains("maxmemory-policy is allkeys-lru"), "{log}");
        assert!(log.contains("noeviction"), "{log}");
        assert!(log.contains("MAILROOM_ALLOW_EVICTING_REDIS=1"), "{log}");
    }
    // Told so, they start, and say what they are running on.
    for command in ["serve", "work"] {
        let (code, log) = run(
            &redis.url(),
            &[command],
            &[("MAILROOM_ALLOW_EVICTING_REDIS", "1")],
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(code, None, "{command} runs: {log}");
        assert!(log.contains("may evict queued mail"), "{log}");
    }
}

#[tokio::test]
async fn a_redis_that_keeps_nothing_on_disk_is_warned_about_once() {
    let redis = RedisServer::start(&[]);
    let (code, log) = run(&redis.url(), &["serve"], &[], Duration::from_secs(20)).await;
    assert_eq!(code, None, "{log}");
    assert_eq!(log.matches("keeps nothing on disk").count(), 1, "{log}");
    let persistent = RedisServer::start(&["--appendonly", "yes"]);
    let (_, log) = run(&persistent.url(), &["serve"], &[], Duration::from_secs(20)).await;
    assert!(!log.contains("keeps nothing on disk"), "{log}");
}

#[tokio::test]
async fn an_evicting_policy_set_under_a_running_api_stops_writes_until_put_back() {
    let redis = RedisServer::start(&[]);
    let app = TestApp::spawn_on(&redis.url(), |_| {}).await;
    let mut conn = app.redis.conn();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "allkeys-lru"])
        .query_async(&mut conn)
        .await
        .unwrap();
    app.state.guard.recheck().await.unwrap();

    let refused = app.post_email(&simple_email()).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_evicts");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allkeys-lru")
    );
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().starts_with("redis evicts"));
    let ready_len: u64 = conn
        .llen(app.redis.keys(SendEmail::QUEUE).ready())
        .await
        .unwrap();
    assert_eq!(ready_len, 0);

    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "noeviction"])
        .query_async(&mut conn)
        .await
        .unwrap();
    app.state.guard.recheck().await.unwrap();
    assert_eq!(app.post_email(&simple_email()).await.status(), 202);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_full_redis_answers_503_store_full_with_retry_after_and_keeps_nothing_half_written() {
    let redis = RedisServer::start(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let app = TestApp::spawn_on(&redis.url(), |s| s.insecure_unsigned_webhooks = true).await;
    let mut conn = app.redis.conn();
    // Fill it until it refuses.
    let filler = "x".repeat(64 * 1024);
    let mut n = 0;
    loop {
        let written: redis::RedisResult<()> = conn.set(format!("filler:{n}"), &filler).await;
        match written {
            Ok(()) => n += 1,
            Err(e) => {
                assert_eq!(e.code(), Some("OOM"), "{e}");
                break;
            }
        }
        assert!(n < 1000, "4 MB should fill long before 64 MB were written");
    }

    let refused = app.post_email(&simple_email()).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "30");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_full", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was stored")
    );

    let events = app
        .client
        .post(app.url("/webhooks/sendgrid/events"))
        .header("content-type", "application/json")
        .body(r#"[{"email":"a@example.org","timestamp":1700000000,"event":"delivered"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 503, "SendGrid retries");
    assert!(events.headers().contains_key("retry-after"));

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().starts_with("redis full"));

    let keys = app.redis.all_keys().await;
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(":job:") || k.ends_with(":ready")),
        "no half-written job: {keys:?}"
    );

    // Room again: accepted.
    for i in 0..n {
        let _: () = conn.del(format!("filler:{i}")).await.unwrap();
    }
    assert_eq!(app.post_email(&simple_email()).await.status(), 202);
    let ready_len: u64 = conn
        .llen(app.redis.keys(SendEmail::QUEUE).ready())
        .await
        .unwrap();
    assert_eq!(ready_len, 1);
    app.stop().await;
}
