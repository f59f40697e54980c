//! `mailroom serve` stopping on SIGTERM keeps what it accepted before: tracking hits it
//! answered while Redis was away are stored once Redis is back, before the process exits, and
//! an import answered just before the signal finishes its last batches.

mod common;

use std::time::Duration;

use common::{ServeProcess, TestRedis, eventually, redis_server::RedisServer};
use mailroom::{
    lists::links::LinkKeys,
    tracking::token::{Scope, Target},
};
use serde_json::{Value, json};

const KEY: &str = "stop-test-key";
const LINK_KEYS: &str = "t1:0123456789abcdef0123456789abcdef";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// Every hit in the tracking jobs queued under `redis`'s prefix, read through `url`.
async fn queued_hits(redis: &TestRedis, url: &str) -> usize {
    let keys = redis.keys("tracking");
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ids: Vec<String> = redis::AsyncCommands::lrange(&mut conn, keys.ready(), 0, -1)
        .await
        .unwrap();
    let mut hits = 0;
    for id in ids {
        let payload: String = redis::AsyncCommands::hget(&mut conn, keys.job(&id), "payload")
            .await
            .unwrap();
        let job: Value = serde_json::from_str(&payload).unwrap();
        hits += job["hits"].as_array().expect("a tracking job's hits").len();
    }
    hits
}

/// `GET` (without `body`) or `POST` of `path` on `base` with the API key: status and JSON.
async fn call(base: &str, path: &str, body: Option<reqwest::Body>, csv: bool) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    let request = match body {
        None => client.get(url),
        Some(body) => client
            .post(url)
            .header(
                "content-type",
                if csv { "text/csv" } else { "application/json" },
            )
            .body(body),
    };
    let response = request.bearer_auth(KEY).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn tracking_hits_answered_while_redis_was_away_are_stored_before_serve_exits() {
    let mut server = RedisServer::start(&[]);
    let url = server.url();
    let redis = TestRedis::at(&url).await;
    let mut serve = ServeProcess::start(
        &redis,
        KEY,
        &[
            ("REDIS_URL", url.as_str()),
            ("MAILROOM_LINK_KEYS", LINK_KEYS),
            ("MAILROOM_PUBLIC_URL", "https://mail.example.com"),
        ],
        false,
    )
    .await;
    let token = Target {
        scope: Scope::Message(mailroom_jobs::MessageId::fresh()),
        sent_at: 1,
        url: None,
    }
    .sign(&LinkKeys::parse(LINK_KEYS).unwrap());

    // Redis goes away: the hits are answered at once and wait in serve's recorder.
    server.kill();
    let client = reqwest::Client::new();
    const HITS: usize = 25;
    for _ in 0..HITS {
        let response = client
            .get(format!("{}/t/o/{token}", serve.base))
            .header("user-agent", BROWSER)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    serve.sigterm();
    // Once it has begun to stop it takes no more connections; then Redis comes back.
    let address = serve.base.trim_start_matches("http://").to_owned();
    eventually(
        Duration::from_secs(10),
        "serve to stop listening",
        || async {
            tokio::net::TcpStream::connect(&address)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    server.restart();

    let status = serve.exit_within(Duration::from_secs(25)).await;
    assert!(status.success(), "a graceful stop exits 0: {status}");
    assert_eq!(
        queued_hits(&redis, &url).await,
        HITS,
        "every hit answered is in a tracking job"
    );
}

#[tokio::test]
async fn an_import_answered_just_before_sigterm_finishes_before_serve_exits() {
    let redis = TestRedis::new().await;
    let mut serve = ServeProcess::start(&redis, KEY, &[], false).await;
    let (status, list) = call(
        &serve.base,
        "/v1/lists",
        Some(
            json!({"name": "Stopping", "optin": "single", "visibility": "private"})
                .to_string()
                .into(),
        ),
        false,
    )
    .await;
    assert_eq!(status, 201, "{list}");
    let list = list["id"].as_u64().expect("a list id");
    const ROWS: usize = 20_000;
    let mut csv = String::from("email,name\n");
    for i in 0..ROWS {
        csv.push_str(&format!("person{i}@example.com,Person {i}\n"));
    }
    let path = format!("/v1/imports?list={list}&status=confirmed");
    let (status, import) = call(&serve.base, &path, Some(csv.into()), true).await;
    assert_eq!(status, 202, "{import}");
    serve.sigterm();
    let status = serve.exit_within(Duration::from_secs(25)).await;
    assert!(status.success(), "a graceful stop exits 0: {status}");

    // Another serve reads the import as the first one left it.
    let id = import["id"].as_str().expect("an import id");
    let after = ServeProcess::start(&redis, KEY, &[], false).await;
    let (_, record) = call(&after.base, &format!("/v1/imports/{id}"), None, false).await;
    assert_eq!(record["state"], "done", "{record}");
    assert_eq!(record["imported"], ROWS, "{record}");
    let (_, count) = call(&after.base, &format!("/v1/lists/{list}"), None, false).await;
    assert_eq!(count["counts"]["confirmed"], ROWS, "{count}");
    after.stop().await;
}
