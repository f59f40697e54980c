//! The SendGrid provider end to end: POST /v1/emails → worker → a wiremock SendGrid that checks
//! the exact request (REFERENCE §1, and the shape of the real examples in
//! `tests/data/sendgrid/vectors/mail_send_examples.json`) and plays SendGrid's answers.

mod common;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::app::TestApp;
use mailroom::config::ProviderKind;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{header, method, path},
};

const SENDGRID_KEY: &str = "SG.test-id.test-secret";

/// Plays a list of answers in order (the last one repeats) and notes when each call came.
#[derive(Clone)]
struct Script {
    answers: Vec<ResponseTemplate>,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    fn new(answers: Vec<ResponseTemplate>) -> Self {
        Self {
            answers,
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut calls = self.calls.lock().unwrap();
        calls.push(Instant::now());
        let index = (calls.len() - 1).min(self.answers.len() - 1);
        self.answers[index].clone()
    }
}

fn accepted(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(202).insert_header("X-Message-Id", id)
}

async fn sendgrid_app(mock: &MockServer, max_attempts: u32) -> TestApp {
    let uri = mock.uri();
    let mut app = TestApp::spawn(move |s| {
        s.provider = ProviderKind::Sendgrid;
        s.sendgrid_api_url = uri;
        s.sendgrid_api_key = Some(SecretString::from(SENDGRID_KEY));
        s.max_attempts = max_attempts;
    })
    .await;
    app.start_worker();
    app
}

async fn mount(mock: &MockServer, script: &Script) {
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(header(
            "authorization",
            format!("Bearer {SENDGRID_KEY}").as_str(),
        ))
        .and(header("content-type", "application/json"))
        .respond_with(script.clone())
        .mount(mock)
        .await;
}

async fn queue(app: &TestApp, body: Value) -> String {
    let response = app.post_email(&body).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_queued_email_reaches_sendgrid_as_the_exact_documented_request() {
    let mock = MockServer::start().await;
    let script = Script::new(vec![accepted("moW00FY9Sqyr2r5ekgRDLg")]);
    mount(&mock, &script).await;
    let app = sendgrid_app(&mock, 10).await;
    let id = queue(
        &app,
        json!({
            "to": [{"email": "alex@example.com", "name": "Alex"}],
            "cc": [{"email": "charlie@example.com"}],
            "bcc": [{"email": "dana@example.com", "name": "Dana"}],
            "from": {"email": "orders@example.com", "name": "Example Orders"},
            "reply_to": {"email": "help@example.com"},
            "subject": "Your order 🍰",
            "html": "<p>Hello <b>Alex</b></p>",
            "text": "Hello Alex",
            "headers": {"X-Order": "42"},
            "categories": ["orders", "cake"],
            "metadata": {"order_id": "42"},
            "attachments": [{"filename": "r.txt", "content_type": "text/plain", "content": "cmVjZWlwdA=="}]
        }),
    )
    .await;

    let record = app.wait_for_status(&id, "sent").await;
    assert_eq!(record["provider"], "sendgrid");
    assert_eq!(record["provider_message_id"], "moW00FY9Sqyr2r5ekgRDLg");
    assert_eq!(record["attempts"], 1);

    let requests = mock.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let expected = json!({
        "personalizations": [{
            "to": [{"email": "alex@example.com", "name": "Alex"}],
            "cc": [{"email": "charlie@example.com"}],
            "bcc": [{"email": "dana@example.com", "name": "Dana"}]
        }],
        "from": {"email": "orders@example.com", "name": "Example Orders"},
        "reply_to": {"email": "help@example.com"},
        "subject": "Your order 🍰",
        "content": [
            {"type": "text/plain", "value": "Hello Alex"},
            {"type": "text/html", "value": "<p>Hello <b>Alex</b></p>"}
        ],
        "attachments": [{"content": "cmVjZWlwdA==", "filename": "r.txt", "type": "text/plain", "disposition": "attachment"}],
        "headers": {"X-Order": "42"},
        "categories": ["orders", "cake"],
        "custom_args": {"mailroom_id": id, "order_id": "42"},
        "tracking_settings": {"click_tracking": {"enable": false, "enable_text": false},
                              "open_tracking": {"enable": false}}
    });
    assert_eq!(body, expected);

    // Every field we send has the shape of SendGrid's own examples.
    let examples: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/sendgrid/vectors/mail_send_examples.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let example = &examples
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "oai_new_MailSendNoTemplate")
        .unwrap()["body"];
    let mut allowed = keys(example);
    allowed.insert("headers".to_owned());
    allowed.insert("custom_args".to_owned());
    assert!(
        keys(&body).is_subset(&allowed),
        "{:?} ⊄ {:?}",
        keys(&body),
        allowed
    );
    assert!(keys(&body["personalizations"][0]).is_subset(&keys(&example["personalizations"][0])));
    assert_eq!(keys(&body["content"][0]), keys(&example["content"][0]));
    assert!(
        keys(&body["attachments"][0]).is_subset(
            &keys(&example["attachments"][0])
                .into_iter()
                .chain(["content_id".to_owned()])
                .collect()
        )
    );
    assert_eq!(keys(&body["from"]), keys(&example["from"]));
    app.stop().await;
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_sent_once() {
    let mock = MockServer::start().await;
    let limited = ResponseTemplate::new(429)
        .insert_header("Retry-After", "1")
        .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]}));
    let script = Script::new(vec![limited, accepted("after-429")]);
    mount(&mock, &script).await;
    let app = sendgrid_app(&mock, 10).await;
    let id = queue(&app, common::app::simple_email()).await;

    let record = app.wait_for_status(&id, "sent").await;
    assert_eq!(record["attempts"], 2);
    assert_eq!(record["provider_message_id"], "after-429");
    let calls = script.calls();
    assert_eq!(calls.len(), 2, "sent once after the 429");
    assert!(
        calls[1] - calls[0] >= Duration::from_secs(1),
        "waited {:?}",
        calls[1] - calls[0]
    );
    app.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_accepted() {
    let mock = MockServer::start().await;
    let failing = ResponseTemplate::new(500)
        .set_body_json(json!({"errors": [{"message": "internal server error"}]}));
    let script = Script::new(vec![
        failing.clone(),
        failing.clone(),
        failing,
        accepted("after-500s"),
    ]);
    mount(&mock, &script).await;
    let app = sendgrid_app(&mock, 10).await;
    let id = queue(&app, common::app::simple_email()).await;

    let record = app.wait_for_status(&id, "sent").await;
    assert_eq!(record["attempts"], 4);
    assert_eq!(script.calls().len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn a_400_is_dead_after_one_request_with_sendgrids_message_kept() {
    let mock = MockServer::start().await;
    let message = "The from address does not match a verified Sender Identity. Mail cannot be sent until this error is resolved.";
    let refused = ResponseTemplate::new(400)
        .set_body_json(json!({"errors": [{"message": message, "field": "from", "help": null}]}));
    let script = Script::new(vec![refused, accepted("never")]);
    mount(&mock, &script).await;
    let app = sendgrid_app(&mock, 10).await;
    let id = queue(&app, common::app::simple_email()).await;

    let record = app.wait_for_status(&id, "dead").await;
    let error = record["last_error"].as_str().unwrap();
    assert!(error.contains(message), "{error}");
    assert!(error.contains("400"), "{error}");
    assert!(error.contains("field from"), "{error}");
    assert_eq!(record["attempts"], 1);

    let admin = mailroom::queue::QueueAdmin::new(app.redis.conn(), app.redis.prefix.clone());
    let dead = common::eventually(Duration::from_secs(10), "the dead letter", || async {
        admin
            .dead("email", 10)
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.id == id)
    })
    .await;
    assert_eq!(dead.reason, "permanent failure");
    assert_eq!(script.calls().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_401_is_permanent() {
    let mock = MockServer::start().await;
    let denied = ResponseTemplate::new(401).set_body_json(json!({"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked", "field": null, "help": null}]}));
    let script = Script::new(vec![denied]);
    mount(&mock, &script).await;
    let app = sendgrid_app(&mock, 10).await;
    let id = queue(&app, common::app::simple_email()).await;

    let record = app.wait_for_status(&id, "dead").await;
    assert!(
        record["last_error"]
            .as_str()
            .unwrap()
            .contains("authorization grant is invalid")
    );
    assert_eq!(script.calls().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_message_that_keeps_meeting_server_errors_ends_dead_after_its_attempts() {
    let mock = MockServer::start().await;
    let script = Script::new(vec![ResponseTemplate::new(503)]);
    mount(&mock, &script).await;
    let app = sendgrid_app(&mock, 3).await;
    let id = queue(&app, common::app::simple_email()).await;

    let record = app.wait_for_status(&id, "dead").await;
    assert_eq!(record["attempts"], 3);
    assert!(record["last_error"].as_str().unwrap().contains("503"));
    assert_eq!(script.calls().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn every_send_sets_tracking_explicitly_off_for_secret_links_and_as_asked_otherwise() {
    let mock = MockServer::start().await;
    let script = Script::new(vec![
        accepted("reset-1"),
        accepted("welcome-1"),
        accepted("news-1"),
    ]);
    mount(&mock, &script).await;
    let app = sendgrid_app(&mock, 10).await;
    let reset = queue(
        &app,
        json!({
            "to": [{"email": "alex@example.com"}],
            "template": {"name": "password_reset", "locale": "en",
                         "data": {"link": "https://app.example.com/reset?code=S3CRET", "expires_in_minutes": 30}}
        }),
    )
    .await;
    app.wait_for_status(&reset, "sent").await;
    let welcome = queue(
        &app,
        json!({
            "to": [{"email": "alex@example.com"}],
            "template": {"name": "welcome", "locale": "en",
                         "data": {"name": "Alex", "link": "https://app.example.com/start"}}
        }),
    )
    .await;
    app.wait_for_status(&welcome, "sent").await;
    let requests = mock.received_requests().await.unwrap();
    let body = |id: &str| -> Value {
        requests
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .find(|b| b["custom_args"]["mailroom_id"] == id)
            .unwrap()
    };
    assert_eq!(
        body(&reset)["tracking_settings"],
        json!({"click_tracking": {"enable": false, "enable_text": false},
               "open_tracking": {"enable": false}})
    );
    // Mail that did not ask for tracking is not tracked either, whatever the account's
    // defaults; mail that asked gets what it asked for.
    assert_eq!(
        body(&welcome)["tracking_settings"],
        body(&reset)["tracking_settings"],
        "a message that did not ask is not tracked"
    );
    let tracked = queue(
        &app,
        json!({
            "to": [{"email": "alex@example.com"}], "subject": "News", "html": "<p>news</p>",
            "tracking": {"opens": true, "clicks": false}
        }),
    )
    .await;
    app.wait_for_status(&tracked, "sent").await;
    let requests = mock.received_requests().await.unwrap();
    let tracked_body = requests
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .find(|b| b["custom_args"]["mailroom_id"] == tracked)
        .unwrap();
    assert_eq!(
        tracked_body["tracking_settings"],
        json!({"click_tracking": {"enable": false, "enable_text": false},
               "open_tracking": {"enable": true}})
    );
    app.stop().await;
}

#[tokio::test]
async fn list_mail_goes_out_under_the_lists_sendgrid_unsubscribe_group() {
    let mock = MockServer::start().await;
    let script = Script::new(vec![accepted("list-1")]);
    mount(&mock, &script).await;
    let uri = mock.uri();
    let mut app = TestApp::spawn(move |s| {
        s.provider = ProviderKind::Sendgrid;
        s.sendgrid_api_url = uri;
        s.sendgrid_api_key = Some(SecretString::from(SENDGRID_KEY));
        s.link_keys = Some(SecretString::from("k1:0123456789abcdef0123456789abcdef"));
    })
    .await;
    let (list, _) = app.subscribed("News", "ada@example.com").await;
    app.settings.sendgrid_groups = format!("{list}=4242");
    app.start_worker();
    let id = queue(
        &app,
        json!({"to": "ada@example.com", "subject": "News", "text": "Hello", "list_id": list}),
    )
    .await;
    app.wait_for_status(&id, "sent").await;
    let requests = mock.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["asm"], json!({"group_id": 4242}), "{body}");
    app.stop().await;
}
