//! A service's webhook endpoint for the tests: a receiver that keeps what it is sent and
//! answers as told, the Standard Webhooks reference library (npm `standardwebhooks`) to check
//! the signatures, and the API call that makes an endpoint.

use std::{
    collections::VecDeque,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use super::{app::TestApp, eventually};

/// What a receiver was sent: the three Standard Webhooks headers and the body.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Value,
    pub body: String,
}

/// A service's endpoint: answers with the statuses it is given, in order (then 200), and
/// keeps every request.
#[derive(Clone, Default)]
pub struct Receiver {
    answers: Arc<Mutex<VecDeque<u16>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(answers: &[u16]) -> (Self, String) {
        let receiver = Self::default();
        receiver.answers.lock().unwrap().extend(answers);
        let url = serve(
            Router::new()
                .route("/hook", post(receive))
                .with_state(receiver.clone()),
        )
        .await;
        (receiver, url)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        eventually(
            Duration::from_secs(30),
            &format!("{count} deliveries"),
            || {
                let received = self.received();
                async move { (received.len() >= count).then_some(received) }
            },
        )
        .await
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let header = |name: &str| json!(headers.get(name).map(|v| v.to_str().unwrap()));
    receiver.received.lock().unwrap().push(Received {
        headers: json!({
            "webhook-id": header("webhook-id"),
            "webhook-timestamp": header("webhook-timestamp"),
            "webhook-signature": header("webhook-signature"),
        }),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let status = receiver.answers.lock().unwrap().pop_front().unwrap_or(200);
    axum::http::StatusCode::from_u16(status).unwrap()
}

/// What the reference library says of each request with `secret`: `ok <type>` or
/// `refused <why>`.
pub async fn verify(secret: &str, requests: &[Received]) -> Vec<String> {
    let input = json!({
        "secret": secret,
        "requests": requests.iter().map(|r| json!({"headers": r.headers, "body": r.body})).collect::<Vec<_>>(),
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/verify_webhook.mjs"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (scripts/test installs the library)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// An endpoint for `events` at `url`, made with `key`: its id and secret.
pub async fn endpoint(app: &TestApp, key: &str, url: &str, events: &[&str]) -> (String, String) {
    let (status, made) = app
        .call_as(
            key,
            "POST",
            "/v1/webhooks",
            &json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let field = |name: &str| made[name].as_str().unwrap().to_owned();
    (field("id"), field("secret"))
}

/// Serves `router` (an endpoint at `/hook`) on a port of its own: the endpoint's URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Endpoint `hook`'s logged attempts, newest first.
pub async fn deliveries(app: &TestApp, hook: &str) -> Vec<Value> {
    let path = format!("/v1/webhooks/{hook}/deliveries");
    let (status, page) = app.call("GET", &path, &Value::Null).await;
    assert_eq!(status, 200, "{page}");
    page["deliveries"].as_array().cloned().unwrap_or_default()
}
