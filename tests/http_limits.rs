//! Requests checked before they are read: credentials before bodies, time limits on headers,
//! bodies and handlers, a bound on requests in flight, and every refusal from these layers in
//! the API's one JSON error shape.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    ServeProcess, TestRedis,
    app::{API_KEY, TestApp, simple_email},
};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The peak resident set (VmHWM) of `pid`, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn json_error(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(kind.as_deref(), Some("application/json"), "status {status}");
    (
        status,
        response.json::<Value>().await.unwrap()["error"].clone(),
    )
}

/// A raw connection to `app` that has sent `head` and nothing more.
async fn send_head(app: &TestApp, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// An authenticated `POST /v1/emails` whose 100-byte body never comes past its first byte.
fn stalled_email_post() -> String {
    format!(
        "POST /v1/emails HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    )
}

#[tokio::test]
async fn unauthenticated_large_posts_are_refused_without_being_buffered() {
    let redis = TestRedis::new().await;
    let server = ServeProcess::start(
        &redis,
        API_KEY,
        &[
            ("MAILROOM_INBOUND_USER", "sendgrid"),
            ("MAILROOM_INBOUND_PASSWORD", "a-long-inbound-password"),
        ],
        false,
    )
    .await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let pid = server.child.id().unwrap();
    let before = peak_kib(pid);

    // 50 × 30 MB in parallel, no credentials (one shared buffer on this side).
    let body = Bytes::from(vec![b'x'; 30 * 1024 * 1024]);
    let posts = (0..50).map(|n| {
        let request = client
            .post(format!("{base}/webhooks/sendgrid/inbound"))
            .header("content-type", "multipart/form-data; boundary=xYzZY")
            .body(body.clone());
        let request = if n % 2 == 0 {
            request
        } else {
            request.basic_auth("sendgrid", Some("wrong"))
        };
        async move { request.send().await.map(|r| r.status().as_u16()) }
    });
    let answers = futures::future::join_all(posts).await;
    let refused = answers.iter().filter(|a| matches!(a, Ok(401))).count();
    assert!(
        answers.iter().all(|a| matches!(a, Ok(401)) || a.is_err()),
        "every POST is refused (or cut off while still sending): {answers:?}"
    );
    assert!(refused > 0, "{answers:?}");
    let grown_mib = (peak_kib(pid) - before) / 1024;
    assert!(
        grown_mib < 64,
        "serve's peak memory grew by {grown_mib} MiB for 1.5 GB of unauthenticated bodies"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_disconnected() {
    let app = TestApp::spawn(|s| s.request_timeout_secs = 1).await;
    let mut stream = send_head(&app, "POST /v1/emails HTTP/1.1\r\nHost: x\r\n").await;
    // Never finishes its headers: the server closes the connection.
    let mut buffer = [0_u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("closed within the limit, not held open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_in_the_error_shape() {
    let app = TestApp::spawn(|s| s.request_timeout_secs = 1).await;
    let mut stream = send_head(&app, &stalled_email_post()).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0_u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("\"code\"") {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("answered within the limit");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn past_the_requests_in_flight_limit_the_answer_is_503_at_once() {
    let app = TestApp::spawn(|s| s.max_requests_in_flight = 2).await;
    // Two requests hold their permits while their bodies trickle in.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(send_head(&app, &stalled_email_post()).await);
    }
    let refused = common::eventually(Duration::from_secs(5), "a 503", || async {
        let response = app.post_email(&simple_email()).await;
        (response.status() == 503).then_some(response)
    })
    .await;
    assert_eq!(refused.headers()["retry-after"], "1");
    let (_, error) = json_error(refused).await;
    assert_eq!(error["code"], "overloaded");
    drop(held);
    common::eventually(Duration::from_secs(5), "room again", || async {
        (app.post_email(&simple_email()).await.status() == 202).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_body_over_its_limit_gets_413_in_the_error_shape() {
    let app = TestApp::spawn(|s| s.insecure_unsigned_webhooks = true).await;
    let response = app
        .client
        .post(app.url("/webhooks/sendgrid/events"))
        .header("content-type", "application/json")
        .body(vec![
            b' ';
            mailroom_jobs::webhooks::MAX_EVENT_BATCH_BYTES + 1
        ])
        .send()
        .await
        .unwrap();
    let (status, error) = json_error(response).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    app.stop().await;
}

#[tokio::test]
async fn event_posts_without_signature_headers_are_refused_before_reading() {
    let app = TestApp::spawn(|s| {
        // The key of the vectors (tests/data/sendgrid/vectors): any real key will do.
        s.sendgrid_webhook_key = Some(
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==".to_owned(),
        );
    })
    .await;
    let response = app
        .client
        .post(app.url("/webhooks/sendgrid/events"))
        .header("content-type", "application/json")
        .body(vec![b' '; 1024])
        .send()
        .await
        .unwrap();
    let (status, error) = json_error(response).await;
    assert_eq!(status, 401);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("header is missing"),
        "{error}"
    );
    app.stop().await;
}

#[tokio::test]
async fn traces_at_every_level_leave_out_tokens_and_secret_paths() {
    let redis = TestRedis::new().await;
    let inbound_secret = "inb0und-path-s3cret-7Hq2";
    let token = "Vt9xQm2LpR7wK4zN8bJ3cF6hY1sD5gA0eU2iO9tW3qE";
    let server = ServeProcess::start(
        &redis,
        API_KEY,
        &[
            ("MAILROOM_INBOUND_SECRET", inbound_secret),
            ("MAILROOM_LOG_FORMAT", "json"),
            ("RUST_LOG", "trace"),
        ],
        true,
    )
    .await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let page = client
        .get(format!("{base}/verify?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    let form = client
        .post(format!("{base}/verify"))
        .body(format!("token={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 410);
    let inbound = client
        .post(format!("{base}/webhooks/sendgrid/inbound/{inbound_secret}"))
        .header("content-type", "multipart/form-data; boundary=xYzZY")
        .body("--xYzZY--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(inbound.status(), 400);
    let unsubscribe_token = "k1.6401.3..Zm9yZ2VkLXVuc3Vic2NyaWJl";
    let one_click = client
        .post(format!("{base}/u/{unsubscribe_token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(one_click.status(), 400);
    let log = server.stop().await;
    assert!(log.contains("/u/{token}"), "{log}");
    assert!(
        !log.contains(unsubscribe_token),
        "the unsubscribe token is in the log"
    );
    assert!(log.contains("/verify"), "requests are traced: {log}");
    assert!(log.contains("/webhooks/sendgrid/inbound/{secret}"), "{log}");
    assert!(!log.contains(token), "the token is in the log");
    assert!(
        !log.contains(inbound_secret),
        "the inbound secret is in the log"
    );
    assert!(!log.contains(API_KEY), "the API key is in the log");
}
