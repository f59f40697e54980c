//! Request ids: every answer has an `X-Request-Id` (the caller's when it is a sane one), the
//! request's log lines name it, and the jobs it queues carry it into the worker's log lines
//! (an email's, and a double opt-in's confirmation).

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::app::{API_KEY, TestApp, simple_email};
use common::eventually;
use serde_json::Value;

/// Log lines written by this test binary, for the assertions on them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install() -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("mailroom=debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn a_request_id_is_answered_logged_and_carried_into_the_workers_log_lines() {
    let logs = Captured::install();
    let mut app = TestApp::spawn(|_| {}).await;

    // Without one, the answer has a fresh id (401 and 404 included: the edge gives it).
    for (path, status) in [("/v1/emails", 401), ("/nowhere", 404)] {
        let response = app.client.post(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
    // A value that could forge a log line is replaced, not echoed.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "x level=error msg=forged")
        .send()
        .await
        .unwrap();
    assert_ne!(
        response.headers()["x-request-id"],
        "x level=error msg=forged"
    );

    // The caller's own id: answered, on the queued job, in the API's and the worker's logs.
    let trace = "trace-7f3a9c1e";
    let response = post_with_id(&app, "/v1/emails", trace, &simple_email()).await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.headers()["x-request-id"], trace);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let payload: Value = serde_json::from_str(
        &app.redis
            .job_field("email", &id, "payload")
            .await
            .expect("the job is queued"),
    )
    .unwrap();
    assert_eq!(payload["request_id"], trace, "{payload}");
    app.start_worker();
    app.wait_for_status(&id, "sent").await;

    let api = logs.lines_with("finished processing request");
    assert!(
        api.iter()
            .any(|l| l.contains(&format!("request_id={trace}"))),
        "the API's lines name the request: {api:#?}"
    );
    let worker = logs.lines_with(&format!("message_id={id}"));
    assert!(!worker.is_empty(), "the worker logged the message");
    assert!(
        worker
            .iter()
            .all(|l| l.contains(&format!("request_id=\"{trace}\""))
                || l.contains(&format!("request_id={trace}"))),
        "every worker line about the message names the request: {worker:#?}"
    );

    // A subscription to a double opt-in list queues its confirmation with the request's id,
    // from the API and from the public subscribe form alike.
    let (status, list) = app
        .call(
            "POST",
            "/v1/lists",
            &serde_json::json!({"name": "Digest", "optin": "double", "visibility": "public"}),
        )
        .await;
    assert_eq!(status, 201);
    let list = list["id"].as_u64().unwrap();
    let api_trace = "trace-subscribe-api";
    let subscriber = serde_json::json!({"email": "ann@example.com", "lists": [list]});
    let response = post_with_id(&app, "/v1/subscribers", api_trace, &subscriber).await;
    assert_eq!(response.status().as_u16(), 201);
    let form_trace = "trace-subscribe-form";
    let response = app
        .client
        .post(app.url("/subscribe"))
        .header("x-request-id", form_trace)
        .json(&serde_json::json!({"list": list, "email": "bo@example.com"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    // An import that asks its new subscribers to confirm queues their confirmations with the
    // id of the request that posted the file.
    let import_trace = "trace-import";
    let response = app
        .client
        .post(app.url(&format!(
            "/v1/imports?list={list}&status=unconfirmed&send_optin=true"
        )))
        .bearer_auth(API_KEY)
        .header("x-request-id", import_trace)
        .header("content-type", "text/csv")
        .body("email\ncy@example.com\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    // The worker turns each confirmation into an email: its lines about that message name the
    // request that subscribed.
    for trace in [api_trace, form_trace, import_trace] {
        eventually(
            Duration::from_secs(20),
            "the worker's lines about the confirmation",
            || async {
                logs.lines_with(trace)
                    .into_iter()
                    .find(|l| l.contains("verification_id=") && l.contains("message_id="))
            },
        )
        .await;
    }
    app.stop().await;
}

/// `POST path` with the API key, `body` as JSON and `id` as the request id.
async fn post_with_id(app: &TestApp, path: &str, id: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(API_KEY)
        .header("x-request-id", id)
        .json(body)
        .send()
        .await
        .unwrap()
}
