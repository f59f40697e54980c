//! The Postmark provider end to end: POST /v1/emails or a campaign → worker → a wiremock
//! Postmark that checks the documented request (`POST /email`, `POST /email/batch`, the
//! `X-Postmark-Server-Token` header, PascalCase fields) and answers as Postmark documents:
//! 200 with `ErrorCode` 0 and a `MessageID`, 422 with a refusal's `ErrorCode`, 401 for a bad
//! token, 429 for the rate limit, and a batch's one result per message.

mod common;

use std::time::Duration;

use common::{app::TestApp, eventually};
use mailroom::config::ProviderKind;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{header, method, path},
};

const TOKEN: &str = "d5b3c1a0-test-server-token";
const KEYS: &str = "t1:0123456789abcdef0123456789abcdef";

async fn postmark_app(mock: &MockServer) -> TestApp {
    let uri = mock.uri();
    let mut app = TestApp::spawn(move |s| {
        s.provider = ProviderKind::Postmark;
        s.postmark_api_url = uri;
        s.postmark_server_token = Some(SecretString::from(TOKEN));
        s.link_keys = Some(SecretString::from(KEYS));
        s.max_attempts = 5;
    })
    .await;
    app.start_worker();
    app
}

/// Answers `path` (with the token and JSON asserted) with `answer`.
async fn mount(mock: &MockServer, at: &str, answer: impl Respond + 'static) {
    Mock::given(method("POST"))
        .and(path(at))
        .and(header("x-postmark-server-token", TOKEN))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/json"))
        .respond_with(answer)
        .mount(mock)
        .await;
}

fn taken(to: &str, id: &str) -> Value {
    json!({"To": to, "SubmittedAt": "2026-12-07T10:00:00.0000000-05:00", "MessageID": id, "ErrorCode": 0, "Message": "OK"})
}

async fn queue(app: &TestApp, body: Value) -> String {
    let response = app.post_email(&body).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn requests(mock: &MockServer) -> Vec<Value> {
    (mock.received_requests().await.unwrap().iter())
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_queued_email_reaches_postmark_as_the_documented_request() {
    let mock = MockServer::start().await;
    let answer = ResponseTemplate::new(200).set_body_json(taken(
        "Alex <alex@example.com>",
        "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
    ));
    mount(&mock, "/email", answer).await;
    let app = postmark_app(&mock).await;
    let id = queue(
        &app,
        json!({
            "to": [{"email": "alex@example.com", "name": "Alex"}],
            "cc": [{"email": "charlie@example.com"}],
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
    assert_eq!(record["provider"], "postmark");
    assert_eq!(
        record["provider_message_id"],
        "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"
    );
    let bodies = requests(&mock).await;
    assert_eq!(bodies.len(), 1);
    let expected = json!({
        "From": "Example Orders <orders@example.com>",
        "To": "Alex <alex@example.com>",
        "Cc": "charlie@example.com",
        "ReplyTo": "help@example.com",
        "Subject": "Your order 🍰",
        "TextBody": "Hello Alex",
        "HtmlBody": "<p>Hello <b>Alex</b></p>",
        "Headers": [{"Name": "X-Order", "Value": "42"}],
        "Tag": "orders",
        "Metadata": {"mailroom_id": id, "order_id": "42"},
        "MessageStream": "outbound",
        "TrackOpens": false,
        "TrackLinks": "None",
        "Attachments": [{"Name": "r.txt", "Content": "cmVjZWlwdA==", "ContentType": "text/plain"}]
    });
    assert_eq!(bodies[0], expected);
    app.stop().await;
}

#[tokio::test]
async fn an_inactive_recipient_is_a_hard_bounce_that_suppresses_them() {
    let mock = MockServer::start().await;
    let inactive = ResponseTemplate::new(422).set_body_json(json!({
        "ErrorCode": 406,
        "Message": "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: gone@example.org."
    }));
    mount(&mock, "/email", inactive).await;
    let app = postmark_app(&mock).await;
    let id = queue(
        &app,
        json!({"to": "gone@example.org", "subject": "Receipt", "text": "Thanks."}),
    )
    .await;

    let record = app.wait_for_status(&id, "bounced").await;
    assert_eq!(
        record["recipients"]["gone@example.org"], "bounced",
        "{record}"
    );
    assert_eq!(record["dead_reason"], Value::Null, "{record}");
    let suppressed = eventually(Duration::from_secs(10), "the suppression", || async {
        let (status, body) = app.get_json("/v1/suppressions/gone@example.org").await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(suppressed["reason"], "bounce", "{suppressed}");
    assert_eq!(mock.received_requests().await.unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_token_is_permanent_and_a_429_is_retried_and_sent_once() {
    let mock = MockServer::start().await;
    let denied = ResponseTemplate::new(401).set_body_json(
        json!({"ErrorCode": 10, "Message": "No Account or Server API tokens were supplied in the HTTP headers."}),
    );
    Mock::given(method("POST"))
        .and(path("/email"))
        .and(header("x-postmark-server-token", "wrong"))
        .respond_with(denied)
        .mount(&mock)
        .await;
    let app = TestApp::spawn({
        let uri = mock.uri();
        move |s| {
            s.provider = ProviderKind::Postmark;
            s.postmark_api_url = uri;
            s.postmark_server_token = Some(SecretString::from("wrong"));
        }
    })
    .await;
    let mut app = app;
    app.start_worker();
    let id = queue(&app, common::app::simple_email()).await;
    let record = app.wait_for_status(&id, "dead").await;
    let error = record["last_error"].as_str().unwrap();
    assert!(error.contains("No Account or Server API tokens"), "{error}");
    assert_eq!(record["attempts"], 1, "{record}");
    assert!(!error.contains("wrong"), "the token never shows: {error}");
    app.stop().await;

    let mock = MockServer::start().await;
    let answers = Sequence::new(vec![
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_json(json!({"ErrorCode": 429, "Message": "Rate limit exceeded"})),
        ResponseTemplate::new(200).set_body_json(taken("ada@example.com", "m-1")),
    ]);
    mount(&mock, "/email", answers).await;
    let app = postmark_app(&mock).await;
    let id = queue(&app, common::app::simple_email()).await;
    let record = app.wait_for_status(&id, "sent").await;
    assert_eq!(record["attempts"], 2, "{record}");
    assert_eq!(mock.received_requests().await.unwrap().len(), 2);
    app.stop().await;
}

/// Answers a batch with one result per message: `ErrorCode` 300 for any message to
/// `bad@…`, taken otherwise.
struct BatchAnswers;

impl Respond for BatchAnswers {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let messages: Vec<Value> = serde_json::from_slice(&request.body).unwrap();
        let results: Vec<Value> = (messages.iter().enumerate())
            .map(|(n, m)| {
                let to = m["To"].as_str().unwrap();
                if to.contains("bad@") {
                    json!({"ErrorCode": 300, "Message": "Invalid 'To' address: 'bad@example.com'."})
                } else {
                    taken(to, &format!("batch-{n}"))
                }
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(results)
    }
}

#[tokio::test]
async fn a_campaign_goes_out_in_batches_on_the_broadcast_stream_answered_per_recipient() {
    let mock = MockServer::start().await;
    mount(&mock, "/email/batch", BatchAnswers).await;
    let app = postmark_app(&mock).await;
    let mut csv = String::from("email,name\n");
    for i in 0..6 {
        csv.push_str(&format!("p{i}@example.com,Person {i}\n"));
    }
    csv.push_str("bad@example.com,Bad\n");
    let spec =
        json!({"name": "News", "subject": "Hi {{name}}", "text": "Bye: {{unsubscribe_url}}"});
    let done = app.run_campaign(&csv, spec).await;
    let id = done["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (&done["sent"], &done["failed"]),
        (&json!(6), &json!(1)),
        "{done}"
    );
    let reason = (done["reasons"].as_object().unwrap().keys())
        .find(|k| k.starts_with("failed:"))
        .cloned()
        .unwrap_or_default();
    assert!(reason.contains("300"), "{done}");

    let batches = requests(&mock).await;
    let messages: Vec<&Value> = batches.iter().flat_map(|b| b.as_array().unwrap()).collect();
    assert_eq!(messages.len(), 7, "each recipient once");
    for message in &messages {
        assert_eq!(message["MessageStream"], "broadcast");
        assert_eq!(message["Metadata"]["mailroom_campaign"], id.as_str());
        let to = message["To"].as_str().unwrap();
        let name = to.split(" <").next().unwrap();
        assert_eq!(message["Subject"], format!("Hi {name}"), "{message}");
        let headers = message["Headers"].as_array().unwrap();
        assert!(
            headers.iter().any(|h| h["Name"] == "List-Unsubscribe-Post"
                && h["Value"] == "List-Unsubscribe=One-Click"),
            "{message}"
        );
    }
    app.stop().await;
}

/// Plays answers in order; the last repeats.
struct Sequence {
    answers: Vec<ResponseTemplate>,
    calls: std::sync::atomic::AtomicUsize,
}

impl Sequence {
    fn new(answers: Vec<ResponseTemplate>) -> Self {
        Self {
            answers,
            calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.answers[n.min(self.answers.len() - 1)].clone()
    }
}
