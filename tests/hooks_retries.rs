//! Webhook deliveries that fail or are cut off: an endpoint refusing its first requests gets
//! every event once it answers, each under the id it first had; a worker process killed with
//! SIGKILL while an endpoint holds its request loses nothing: another worker delivers it.

mod common;

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::HeaderMap, routing::post};
use common::{
    app::{API_KEY, TestApp, WEBHOOK_SIGNING_KEY},
    hooks::{Receiver, deliveries, endpoint, serve, verify},
};
use serde_json::json;
use tokio::sync::Notify;

/// Queues a test event for endpoint `hook`: its `webhook-id`.
async fn test_event(app: &TestApp, hook: &str) -> String {
    let (status, sent) = app
        .call("POST", &format!("/v1/webhooks/{hook}/test"), &json!({}))
        .await;
    assert_eq!(status, 202, "{sent}");
    sent["webhook_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_endpoint_refusing_its_first_requests_gets_every_event_once_under_its_first_id() {
    let mut app = TestApp::spawn(|_| {}).await;
    app.start_worker();
    let (receiver, url) = Receiver::start(&[500; 10]).await;
    let (hook, secret) = endpoint(&app, API_KEY, &url, &["email.delivered"]).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(test_event(&app, &hook).await);
    }
    // Ten refused, then each again after Svix's first wait (5 s), and accepted.
    let received = receiver.wait_for(20).await;
    let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
    let mut bodies: BTreeMap<String, &str> = BTreeMap::new();
    for (n, request) in received.iter().enumerate() {
        let id = request.headers["webhook-id"].as_str().unwrap().to_owned();
        let body = bodies.entry(id.clone()).or_insert(&request.body);
        assert_eq!(*body, request.body, "{id}: the same body on every attempt");
        if n >= 10 {
            *accepted.entry(id).or_default() += 1;
        }
    }
    ids.sort();
    assert_eq!(accepted.keys().cloned().collect::<Vec<_>>(), ids);
    assert!(accepted.values().all(|n| *n == 1), "{accepted:?}");
    let verdicts = verify(&secret, &received[10..]).await;
    assert!(
        verdicts.iter().all(|v| v == "ok email.delivered"),
        "{verdicts:?}"
    );
    // The log holds the twenty attempts: ten refused, ten accepted.
    let delivered = common::eventually(Duration::from_secs(10), "twenty logged", || async {
        let logged = deliveries(&app, &hook).await;
        (logged.len() == 20).then_some(logged)
    })
    .await;
    assert_eq!(
        delivered.iter().filter(|d| d["delivered"] == true).count(),
        10
    );
    app.stop().await;
}

/// An endpoint that holds its first request until told, and accepts the rest.
#[derive(Clone, Default)]
struct HoldsFirst {
    held: Arc<AtomicBool>,
    holding: Arc<Notify>,
    accepted: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn holds_first(State(endpoint): State<HoldsFirst>, headers: HeaderMap) -> &'static str {
    if !endpoint.held.swap(true, Ordering::SeqCst) {
        endpoint.holding.notify_one();
        std::future::pending::<()>().await;
    }
    let id = headers["webhook-id"].to_str().unwrap().to_owned();
    endpoint.accepted.lock().unwrap().push(id);
    "ok"
}

fn worker_process(app: &TestApp) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["work", "--concurrency", "2"])
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &app.redis.prefix)
        .env("MAILROOM_LEASE_SECS", "2")
        .env("MAILROOM_PROVIDER", "outbox")
        .env("MAILROOM_OUTBOX_DIR", app.outbox.path())
        .env("MAILROOM_WEBHOOK_SIGNING_KEY", WEBHOOK_SIGNING_KEY)
        .env("MAILROOM_WEBHOOKS_ALLOW_HTTP", "true")
        .env("MAILROOM_WEBHOOKS_ALLOW_PRIVATE", "true")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start mailroom work")
}

#[tokio::test]
async fn a_delivery_cut_off_by_a_sigkill_is_made_by_another_worker_under_the_same_id() {
    let app = TestApp::spawn(|_| {}).await;
    let endpoint_state = HoldsFirst::default();
    let router = Router::new().route("/hook", post(holds_first));
    let url = serve(router.with_state(endpoint_state.clone())).await;
    let (hook, _) = endpoint(&app, API_KEY, &url, &["email.delivered"]).await;
    let id = test_event(&app, &hook).await;

    let mut first = worker_process(&app);
    tokio::time::timeout(Duration::from_secs(30), endpoint_state.holding.notified())
        .await
        .expect("the first worker's request reaches the endpoint");
    first.start_kill().unwrap(); // SIGKILL mid-delivery: no chance to clean up
    first.wait().await.unwrap();

    let mut second = worker_process(&app);
    let accepted = common::eventually(Duration::from_secs(30), "the delivery", || {
        let accepted = endpoint_state.accepted.lock().unwrap().clone();
        async move { (!accepted.is_empty()).then_some(accepted) }
    })
    .await;
    assert_eq!(accepted, [id]);
    common::sigterm(second.id().unwrap());
    assert!(second.wait().await.unwrap().success());
    app.stop().await;
}

#[tokio::test]
async fn the_relay_carries_on_after_redis_restarts() {
    let mut server = common::redis_server::RedisServer::start(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let mut app = TestApp::spawn_on(&server.url(), |_| {}).await;
    app.start_worker();
    let (receiver, url) = Receiver::start(&[]).await;
    endpoint(&app, API_KEY, &url, &["subscriber.subscribed"]).await;
    let (_, list) = app
        .call(
            "POST",
            "/v1/lists",
            &json!({"name": "Tips", "optin": "single", "visibility": "private"}),
        )
        .await;
    let list = list["id"].as_u64().unwrap();
    let subscribe = |email: &'static str| {
        let app = &app;
        async move {
            let (status, made) = app
                .call(
                    "POST",
                    "/v1/subscribers",
                    &json!({"email": email, "lists": [list]}),
                )
                .await;
            assert_eq!(status, 201, "{made}");
        }
    };
    subscribe("ada@example.org").await;
    receiver.wait_for(1).await;

    server.kill();
    server.restart();
    // The API's connection reconnects by itself; a call may fail while it does.
    common::eventually(Duration::from_secs(20), "the API back", || async {
        (app.call("GET", "/v1/webhooks", &serde_json::Value::Null)
            .await
            .0
            == 200)
            .then_some(())
    })
    .await;
    subscribe("grace@example.org").await;
    let received = receiver.wait_for(2).await;
    assert!(
        received[1].body.contains("grace@example.org"),
        "{received:?}"
    );
    app.stop().await;
}
