//! Postmark's and Mailgun's webhooks end to end: their documented payloads (written in the
//! shape of the providers' documentation, `tests/data/`) posted to mailroom with the
//! providers' credentials, applied by a worker to the timeline, the status, the suppressions
//! and the stats exactly as SendGrid's are; every refusal of a POST that is not genuine; and a
//! hard bounce and a complaint from each of the four providers ending as the same suppression.

mod common;

use std::time::Duration;

use common::{
    app::{TestApp, simple_email},
    eventually, sns,
};
use hmac::{Hmac, Mac};
use mailroom::config::Settings;
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;

const POSTMARK_USER: &str = "postmark-hooks";
const POSTMARK_PASSWORD: &str = "pm-3c1d9f0b7a";
const MAILGUN_KEY: &str = "mailgun-signing-key-5f2a8c";

fn sample(path: &str, name: &str, recipient: &str, message: &str) -> Value {
    let full = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    let filled = text
        .replace("{{RECIPIENT}}", recipient)
        .replace("{{MESSAGE_ID}}", message);
    let all: Value = serde_json::from_str(&filled).unwrap();
    all[name].clone()
}

fn configure(s: &mut Settings) {
    s.postmark_webhook_user = Some(POSTMARK_USER.to_owned());
    s.postmark_webhook_password = Some(SecretString::from(POSTMARK_PASSWORD));
    s.mailgun_webhook_signing_key = Some(SecretString::from(MAILGUN_KEY));
    s.insecure_unsigned_webhooks = true;
}

async fn app() -> TestApp {
    let mut app = TestApp::spawn(configure).await;
    app.start_worker();
    app
}

/// A message sent through the outbox to `to`: its id.
async fn sent_to(app: &TestApp, to: &str) -> String {
    let mut body = simple_email();
    body["to"][0]["email"] = json!(to);
    app.send_and_wait(&body).await
}

async fn post(
    app: &TestApp,
    path: &str,
    body: &Value,
    basic: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut request = app.client.post(app.url(path)).json(body);
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn postmark(app: &TestApp, body: &Value) -> u16 {
    post(
        app,
        "/webhooks/postmark",
        body,
        Some((POSTMARK_USER, POSTMARK_PASSWORD)),
    )
    .await
    .0
}

/// `event` signed as Mailgun signs: HMAC-SHA256 of timestamp and token with `key`.
fn signed(mut event: Value, key: &str, timestamp: i64) -> Value {
    let mut token = [0u8; 25];
    getrandom::fill(&mut token).unwrap();
    let token = base16ct::lower::encode_string(&token);
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature = base16ct::lower::encode_string(&mac.finalize().into_bytes());
    event["signature"] =
        json!({"timestamp": timestamp.to_string(), "token": token, "signature": signature});
    event
}

async fn mailgun(app: &TestApp, event: Value) -> u16 {
    let body = signed(event, MAILGUN_KEY, chrono::Utc::now().timestamp());
    post(app, "/webhooks/mailgun", &body, None).await.0
}

async fn timeline_of(app: &TestApp, id: &str, events: usize) -> Value {
    eventually(
        Duration::from_secs(20),
        "the events on the timeline",
        || async {
            let (_, record) = app.status(id).await;
            (record["timeline"].as_array().map(Vec::len) >= Some(events)).then_some(record)
        },
    )
    .await
}

async fn suppression(app: &TestApp, email: &str) -> Value {
    eventually(Duration::from_secs(20), "the suppression", || async {
        let (status, body) = app.get_json(&format!("/v1/suppressions/{email}")).await;
        (status == 200).then_some(body)
    })
    .await
}

/// Each address ends suppressed for its reason, or (`None`) not at all once its event is on
/// `message`'s timeline.
async fn suppressed(app: &TestApp, message: &str, expected: &[(&str, Option<&str>)]) {
    for (email, reason) in expected {
        match reason {
            Some(reason) => assert_eq!(suppression(app, email).await["reason"], *reason, "{email}"),
            None => {
                eventually(Duration::from_secs(20), "the event applied", || async {
                    let (_, record) = app.status(message).await;
                    let timeline = record["timeline"].as_array()?;
                    timeline.iter().any(|e| e["email"] == *email).then_some(())
                })
                .await;
                let (status, _) = app.get_json(&format!("/v1/suppressions/{email}")).await;
                assert_eq!(status, 404, "{email} is not suppressed");
            }
        }
    }
}

fn kinds(record: &Value) -> Vec<(String, String)> {
    (record["timeline"].as_array().into_iter().flatten())
        .filter(|e| e["source"].is_string())
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn postmark_records_reach_the_timeline_status_and_suppressions() {
    let app = app().await;
    let id = sent_to(&app, "ada@example.com").await;
    for name in ["delivery", "open", "click", "soft_bounce", "hard_bounce"] {
        let record = sample("postmark/webhooks.json", name, "ada@example.com", &id);
        assert_eq!(postmark(&app, &record).await, 200, "{name}");
    }
    let record = timeline_of(&app, &id, 5).await;
    let seen: Vec<(String, String)> = kinds(&record);
    let reported = |k: &str| (k.to_owned(), "postmark".to_owned());
    for kind in ["delivered", "open", "click", "deferred", "bounce"] {
        assert!(seen.contains(&reported(kind)), "{kind} in {seen:?}");
    }
    assert_eq!(record["status"], "bounced", "{record}");
    // The clicked link's query (a token) is not kept.
    let click = (record["timeline"].as_array().unwrap().iter())
        .find(|e| e["event"] == "click")
        .unwrap();
    assert_eq!(click["url"], "https://example.com/welcome");
    let bounce = suppression(&app, "ada@example.com").await;
    assert_eq!(bounce["reason"], "bounce");
    assert_eq!(bounce["source"], "postmark:bounce");

    // A complaint and an unsubscribe for two more people; a soft bounce alone suppresses no one.
    let grace = sent_to(&app, "grace@example.com").await;
    let complaint = sample(
        "postmark/webhooks.json",
        "spam_complaint",
        "grace@example.com",
        &grace,
    );
    assert_eq!(postmark(&app, &complaint).await, 200);
    let change = sample(
        "postmark/webhooks.json",
        "subscription_change",
        "linus@example.com",
        &grace,
    );
    assert_eq!(postmark(&app, &change).await, 200);
    let soft = sample(
        "postmark/webhooks.json",
        "soft_bounce",
        "barbara@example.com",
        &grace,
    );
    assert_eq!(postmark(&app, &soft).await, 200);
    // A soft bounce suppresses nobody.
    let expected = [
        ("grace@example.com", Some("spam_report")),
        ("linus@example.com", Some("unsubscribe")),
        ("barbara@example.com", None),
    ];
    suppressed(&app, &grace, &expected).await;
    app.stop().await;
}

#[tokio::test]
async fn postmark_posts_without_the_credentials_are_refused_before_anything_is_stored() {
    let app = app().await;
    let id = sent_to(&app, "ada@example.com").await;
    let bounce = sample(
        "postmark/webhooks.json",
        "hard_bounce",
        "ada@example.com",
        &id,
    );
    let (status, body) = post(&app, "/webhooks/postmark", &bounce, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("webhook_unauthorized"))
    );
    let wrong = post(
        &app,
        "/webhooks/postmark",
        &bounce,
        Some((POSTMARK_USER, "guess")),
    )
    .await;
    assert_eq!(wrong.0, 401);
    let (status, body) = post(
        &app,
        "/webhooks/postmark",
        &json!({"RecordType": 7}),
        Some((POSTMARK_USER, POSTMARK_PASSWORD)),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let nobody = post(
        &app,
        "/webhooks/postmark",
        &json!({"RecordType": "Delivery"}),
        Some((POSTMARK_USER, POSTMARK_PASSWORD)),
    )
    .await;
    assert_eq!(nobody.0, 400, "a record without an address");
    // Nothing reached the queue: the message has only its own events.
    let (_, record) = app.status(&id).await;
    assert!(kinds(&record).is_empty(), "{record}");
    let unconfigured = TestApp::spawn(|_| {}).await;
    let (status, body) = post(
        &unconfigured,
        "/webhooks/postmark",
        &bounce,
        Some((POSTMARK_USER, POSTMARK_PASSWORD)),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MAILROOM_POSTMARK_WEBHOOK_USER")
    );
    app.stop().await;
}

#[tokio::test]
async fn mailgun_events_reach_the_timeline_status_and_suppressions() {
    let app = app().await;
    let id = sent_to(&app, "ada@example.com").await;
    for name in [
        "delivered",
        "opened",
        "clicked",
        "failed_temporary",
        "failed_permanent",
    ] {
        let event = sample("mailgun/webhooks.json", name, "ada@example.com", &id);
        assert_eq!(mailgun(&app, event).await, 200, "{name}");
    }
    let record = timeline_of(&app, &id, 5).await;
    let seen = kinds(&record);
    let mailgun_kind = |k: &str| (k.to_owned(), "mailgun".to_owned());
    for kind in ["delivered", "open", "click", "deferred", "bounce"] {
        assert!(seen.contains(&mailgun_kind(kind)), "{kind} in {seen:?}");
    }
    assert_eq!(record["status"], "bounced");
    let bounce = suppression(&app, "ada@example.com").await;
    assert_eq!(
        (bounce["reason"].as_str(), bounce["source"].as_str()),
        (Some("bounce"), Some("mailgun:bounce"))
    );

    let grace = sent_to(&app, "grace@example.com").await;
    for (name, who) in [
        ("complained", "grace@example.com"),
        ("unsubscribed", "linus@example.com"),
        ("failed_suppressed", "alan@example.com"),
        ("failed_temporary", "barbara@example.com"),
    ] {
        let event = sample("mailgun/webhooks.json", name, who, &grace);
        assert_eq!(mailgun(&app, event).await, 200, "{name}");
    }
    // Mailgun's own suppression list refused alan: the same bounce suppression here; a
    // temporary failure suppresses nobody.
    let expected = [
        ("grace@example.com", Some("spam_report")),
        ("linus@example.com", Some("unsubscribe")),
        ("alan@example.com", Some("bounce")),
        ("barbara@example.com", None),
    ];
    suppressed(&app, &grace, &expected).await;
    app.stop().await;
}

#[tokio::test]
async fn mailgun_posts_need_the_signature_a_fresh_time_and_a_token_never_seen() {
    let app = app().await;
    let id = sent_to(&app, "ada@example.com").await;
    let event = sample(
        "mailgun/webhooks.json",
        "failed_permanent",
        "ada@example.com",
        &id,
    );
    let now = chrono::Utc::now().timestamp();
    let refused = |(status, body): (u16, Value)| {
        assert_eq!(status, 401, "{body}");
        body["error"]["message"].as_str().unwrap().to_owned()
    };

    let other_key = signed(event.clone(), "not-the-key", now);
    assert!(
        refused(post(&app, "/webhooks/mailgun", &other_key, None).await).contains("not Mailgun's")
    );
    let stale = signed(event.clone(), MAILGUN_KEY, now - 3600);
    assert!(refused(post(&app, "/webhooks/mailgun", &stale, None).await).contains("from now"));
    let mut tampered = signed(event.clone(), MAILGUN_KEY, now);
    tampered["signature"]["timestamp"] = json!((now + 1).to_string());
    refused(post(&app, "/webhooks/mailgun", &tampered, None).await);

    let genuine = signed(event.clone(), MAILGUN_KEY, now);
    assert_eq!(post(&app, "/webhooks/mailgun", &genuine, None).await.0, 200);
    // The same POST again (a replay): its token was used.
    assert!(refused(post(&app, "/webhooks/mailgun", &genuine, None).await).contains("used before"));
    let (status, _) = post(&app, "/webhooks/mailgun", &json!({"event-data": {}}), None).await;
    assert_eq!(status, 400);

    // Only the genuine one was applied.
    let record = timeline_of(&app, &id, 1).await;
    assert_eq!(
        kinds(&record),
        [("bounce".to_owned(), "mailgun".to_owned())]
    );
    let unconfigured = TestApp::spawn(|_| {}).await;
    let fresh = signed(event, MAILGUN_KEY, now);
    let message = refused(post(&unconfigured, "/webhooks/mailgun", &fresh, None).await);
    assert!(message.contains("MAILGUN_WEBHOOK_SIGNING_KEY"), "{message}");
    app.stop().await;
}

/// SendGrid's bounce and spam report (unsigned: the test app allows it), as SendGrid posts them.
async fn sendgrid(app: &TestApp, kind: &str, email: &str, id: &str) -> u16 {
    let event = json!([{
        "email": email, "event": kind, "timestamp": chrono::Utc::now().timestamp(),
        "sg_event_id": format!("sg-{kind}-{email}"), "mailroom_id": id,
        "type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 unknown user",
    }]);
    post(app, "/webhooks/sendgrid/events", &event, None).await.0
}

#[tokio::test]
async fn a_hard_bounce_and_a_complaint_from_each_provider_end_as_the_same_suppressions() {
    let topic = "arn:aws:sns:eu-west-1:123456789012:mailroom-ses-events";
    let sns = sns::Signer::start(topic).await;
    let cert_host = sns.host();
    let mut app = TestApp::spawn(move |s| {
        configure(s);
        s.ses_topic_arns = topic.to_owned();
        s.sns_cert_host = Some(cert_host);
    })
    .await;
    app.start_worker();
    let id = sent_to(&app, "ada@example.com").await;
    for provider in ["sendgrid", "postmark", "mailgun", "ses"] {
        let bounced = format!("bounce-{provider}@example.com");
        let complained = format!("complaint-{provider}@example.com");
        let status = match provider {
            "sendgrid" => [
                sendgrid(&app, "bounce", &bounced, &id).await,
                sendgrid(&app, "spamreport", &complained, &id).await,
            ],
            "postmark" => [
                postmark(
                    &app,
                    &sample("postmark/webhooks.json", "hard_bounce", &bounced, &id),
                )
                .await,
                postmark(
                    &app,
                    &sample("postmark/webhooks.json", "spam_complaint", &complained, &id),
                )
                .await,
            ],
            "mailgun" => [
                mailgun(
                    &app,
                    sample("mailgun/webhooks.json", "failed_permanent", &bounced, &id),
                )
                .await,
                mailgun(
                    &app,
                    sample("mailgun/webhooks.json", "complained", &complained, &id),
                )
                .await,
            ],
            _ => [
                sns.post(
                    &app,
                    &sample("ses/events.json", "bounce_permanent", &bounced, &id),
                    "2",
                )
                .await
                .0,
                sns.post(
                    &app,
                    &sample("ses/events.json", "complaint", &complained, &id),
                    "1",
                )
                .await
                .0,
            ],
        };
        assert_eq!(status, [200, 200], "{provider}");
        let bounce = suppression(&app, &bounced).await;
        assert_eq!(bounce["reason"], "bounce", "{provider}: {bounce}");
        assert!(
            bounce["source"].as_str().unwrap().starts_with(provider),
            "{bounce}"
        );
        let complaint = suppression(&app, &complained).await;
        assert_eq!(
            complaint["reason"], "spam_report",
            "{provider}: {complaint}"
        );
        // And each stops the next message to that person alike.
        let mut body = simple_email();
        body["to"] = json!([{"email": bounced}, {"email": complained}]);
        let accepted: Value = app.post_email(&body).await.json().await.unwrap();
        assert_eq!(
            accepted["suppressed"],
            json!([bounced, complained]),
            "{provider}"
        );
    }
    app.stop().await;
}
