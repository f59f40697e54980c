//! Events delivered to the services' webhook endpoints end to end: a provider's event applied
//! by a worker reaches a receiver in the test, signed so that the Standard Webhooks reference
//! library (npm `standardwebhooks`) accepts it and refuses it tampered or stale; a rotated
//! endpoint signs with both secrets; a 410 disables the endpoint; a key's endpoint hears only
//! of its key's mail; a refusing endpoint gets the event again with the same id.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::extract::State;

use common::{
    app::{TestApp, simple_email},
    eventually,
    hooks::{Receiver, deliveries, endpoint, serve, verify},
};
use mailroom::keys::Scope;
use serde_json::{Value, json};

/// SendGrid's events about message `id` (unsigned: the test app allows it).
async fn sendgrid(app: &TestApp, events: Value) {
    let response = (app.client.post(app.url("/webhooks/sendgrid/events")))
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

fn delivered(id: &str, email: &str, event_id: &str) -> Value {
    json!({"email": email, "event": "delivered", "timestamp": chrono::Utc::now().timestamp(),
           "sg_event_id": event_id, "mailroom_id": id, "category": ["receipts"]})
}

/// A message sent through the outbox: its id and its recipient.
async fn sent(app: &TestApp) -> (String, String) {
    let id = app.send_and_wait(&simple_email()).await;
    let email = simple_email()["to"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, email)
}

async fn app() -> TestApp {
    let mut app = TestApp::spawn(|s| s.insecure_unsigned_webhooks = true).await;
    app.start_worker();
    app
}

#[tokio::test]
async fn a_delivered_event_reaches_the_endpoint_signed_as_the_reference_library_accepts() {
    let app = app().await;
    let (receiver, url) = Receiver::start(&[]).await;
    let (hook, secret) = endpoint(&app, common::app::API_KEY, &url, &["email.delivered"]).await;
    let (id, email) = sent(&app).await;
    sendgrid(&app, json!([delivered(&id, &email, "sg-1")])).await;
    let received = receiver.wait_for(1).await;
    assert_eq!(verify(&secret, &received).await, ["ok email.delivered"]);
    let body: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(
        (
            &body["data"]["message_id"],
            &body["data"]["email"],
            &body["data"]["categories"]
        ),
        (&json!(id), &json!(email), &json!(["receipts"])),
        "{body}"
    );
    assert!(
        received[0].headers["webhook-id"]
            .as_str()
            .unwrap()
            .starts_with("msg_")
    );

    // Tampered, stale, or checked with another secret: refused.
    let mut tampered = received[0].clone();
    tampered.body = tampered.body.replace("receipts", "invoices");
    let mut stale = received[0].clone();
    stale.headers["webhook-timestamp"] = json!((chrono::Utc::now().timestamp() - 600).to_string());
    let verdicts = verify(&secret, &[tampered, stale]).await;
    assert!(
        verdicts.iter().all(|v| v.starts_with("refused")),
        "{verdicts:?}"
    );
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(verify(other, &received).await[0].starts_with("refused"));

    // Rotated: both secrets sign until the grace ends.
    let (_, rotated) = app
        .call("POST", &format!("/v1/webhooks/{hook}/rotate"), &Value::Null)
        .await;
    let new_secret = rotated["secret"].as_str().unwrap();
    sendgrid(&app, json!([delivered(&id, &email, "sg-2")])).await;
    let received = receiver.wait_for(2).await;
    let signatures = received[1].headers["webhook-signature"].as_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    for secret in [secret.as_str(), new_secret] {
        assert_eq!(
            verify(secret, &received[1..2]).await,
            ["ok email.delivered"]
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_refused_event_comes_back_with_the_same_id_and_a_410_disables_the_endpoint() {
    let app = app().await;
    let (receiver, url) = Receiver::start(&[500]).await;
    let (_, secret) = endpoint(&app, common::app::API_KEY, &url, &["email.delivered"]).await;
    let (gone, gone_url) = Receiver::start(&[410]).await;
    let (hook, _) = endpoint(&app, common::app::API_KEY, &gone_url, &["email.delivered"]).await;
    let (id, email) = sent(&app).await;
    sendgrid(&app, json!([delivered(&id, &email, "sg-1")])).await;
    // The first attempt is refused; the retry comes after Svix's first wait (5 s).
    let received = receiver.wait_for(2).await;
    assert_eq!(
        received[0].headers["webhook-id"],
        received[1].headers["webhook-id"]
    );
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(
        verify(&secret, &received[1..]).await,
        ["ok email.delivered"]
    );

    // The other endpoint answered 410: disabled at once, and sent nothing more.
    gone.wait_for(1).await;
    let disabled = eventually(Duration::from_secs(10), "the endpoint disabled", || async {
        let (_, endpoint) = app
            .call("GET", &format!("/v1/webhooks/{hook}"), &Value::Null)
            .await;
        endpoint["disabled"].as_str().map(str::to_owned)
    })
    .await;
    assert!(disabled.contains("410"), "{disabled}");
    sendgrid(&app, json!([delivered(&id, &email, "sg-2")])).await;
    receiver.wait_for(3).await;
    assert_eq!(
        gone.received().len(),
        1,
        "nothing more to a disabled endpoint"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_keys_endpoint_hears_only_of_its_keys_mail() {
    let app = app().await;
    let (billing, billing_key) = app
        .stored_key(&[Scope::Webhooks, Scope::EmailsSend], Value::Null)
        .await;
    let (_, shop_key) = app.stored_key(&[Scope::EmailsSend], Value::Null).await;
    let (receiver, url) = Receiver::start(&[]).await;
    endpoint(&app, &billing_key, &url, &["email.delivered"]).await;
    let send = |key: &str, to: &str| {
        let body = json!({"to": to, "subject": "Hi", "text": "Hi."});
        let key = key.to_owned();
        let app = &app;
        async move {
            let (status, answer) = app.call_as(&key, "POST", "/v1/emails", &body).await;
            assert_eq!(status, 202, "{answer}");
            answer["id"].as_str().unwrap().to_owned()
        }
    };
    let theirs = send(&shop_key, "grace@example.org").await;
    let mine = send(&billing_key, "ada@example.org").await;
    // SendGrid hands each message's custom_args back on its events.
    let mut shop_event = delivered(&theirs, "grace@example.org", "sg-shop");
    shop_event["mailroom_key"] = json!("0123456789abcdef");
    let mut billing_event = delivered(&mine, "ada@example.org", "sg-billing");
    billing_event["mailroom_key"] = json!(billing);
    sendgrid(&app, json!([shop_event, billing_event])).await;
    let received = receiver.wait_for(1).await;
    let body: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(body["data"]["message_id"], json!(mine));
    assert_eq!(body["data"]["key"], json!(billing));
    // A later event of its own arrives, and the other key's never did.
    let mut later = delivered(&mine, "ada@example.org", "sg-billing-2");
    later["mailroom_key"] = json!(billing);
    sendgrid(&app, json!([later])).await;
    let received = receiver.wait_for(2).await;
    assert!(
        received.iter().all(|r| !r.body.contains(&theirs)),
        "{received:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn each_attempt_is_logged_and_a_test_and_a_replay_send_again_with_the_same_ids() {
    let app = app().await;
    let (receiver, url) = Receiver::start(&[500]).await;
    let (hook, secret) = endpoint(&app, common::app::API_KEY, &url, &["email.delivered"]).await;
    let (id, email) = sent(&app).await;
    sendgrid(&app, json!([delivered(&id, &email, "sg-1")])).await;
    let received = receiver.wait_for(2).await;
    let event_id = received[0].headers["webhook-id"].clone();

    // Both attempts are in the log, newest first, without the body.
    let log = eventually(Duration::from_secs(10), "two attempts logged", || async {
        let deliveries = deliveries(&app, &hook).await;
        (deliveries.len() == 2).then_some(deliveries)
    })
    .await;
    let summary: Vec<_> = (log.iter())
        .map(|d| {
            (
                d["webhook_id"].clone(),
                d["type"].clone(),
                d["attempt"].clone(),
                d["status"].clone(),
                d["delivered"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                event_id.clone(),
                json!("email.delivered"),
                json!(2),
                json!(200),
                json!(true)
            ),
            (
                event_id.clone(),
                json!("email.delivered"),
                json!(1),
                json!(500),
                json!(false)
            ),
        ]
    );
    assert!(log.iter().all(|d| d.get("body").is_none()), "{log:?}");
    assert!(log[1]["error"].as_str().unwrap().contains("500"));

    // A test event: signed like any other, and only of a type the endpoint takes.
    let (status, test) = app
        .call("POST", &format!("/v1/webhooks/{hook}/test"), &json!({}))
        .await;
    assert_eq!(status, 202, "{test}");
    let received = receiver.wait_for(3).await;
    assert_eq!(received[2].headers["webhook-id"], test["webhook_id"]);
    assert_eq!(
        verify(&secret, &received[2..]).await,
        ["ok email.delivered"]
    );
    let body: Value = serde_json::from_str(&received[2].body).unwrap();
    assert_eq!(body["data"]["test"], true);
    let (status, refused) = app
        .call(
            "POST",
            &format!("/v1/webhooks/{hook}/test"),
            &json!({"type": "email.bounced"}),
        )
        .await;
    assert_eq!((status, &refused["error"]["field"]), (422, &json!("type")));

    // A replay of the last hour: each event once, oldest first, with its own id and body.
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (status, replayed) = app
        .call(
            "POST",
            &format!("/v1/webhooks/{hook}/replay"),
            &json!({"since": since}),
        )
        .await;
    assert_eq!(
        (status, &replayed["queued"]),
        (202, &json!(2)),
        "{replayed}"
    );
    let received = receiver.wait_for(5).await;
    assert_eq!(
        (&received[3].headers["webhook-id"], &received[3].body),
        (&event_id, &received[1].body)
    );
    assert_eq!(received[4].headers["webhook-id"], test["webhook_id"]);
    let only_bounces = json!({"since": since, "types": ["email.bounced"]});
    let (_, none) = app
        .call(
            "POST",
            &format!("/v1/webhooks/{hook}/replay"),
            &only_bounces,
        )
        .await;
    assert_eq!(none["queued"], 0);
    let backwards = json!({"since": since, "until": "2020-01-01T00:00:00Z"});
    let (status, refused) = app
        .call("POST", &format!("/v1/webhooks/{hook}/replay"), &backwards)
        .await;
    assert_eq!((status, &refused["error"]["field"]), (422, &json!("until")));
    app.stop().await;
}

/// An endpoint that never answers: how many requests it holds open now, and at most.
#[derive(Clone, Default)]
struct Hanging {
    open: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

async fn hang(State(hanging): State<Hanging>) -> &'static str {
    let open = hanging.open.fetch_add(1, Ordering::SeqCst) + 1;
    hanging.most.fetch_max(open, Ordering::SeqCst);
    // Dropped (the request cut off) or never: either way no answer.
    struct Close(Arc<AtomicUsize>);
    impl Drop for Close {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _close = Close(hanging.open.clone());
    std::future::pending::<()>().await;
    "never"
}

#[tokio::test]
async fn a_hanging_endpoint_holds_only_its_own_slots_and_slows_neither_another_endpoint_nor_mail() {
    let mut app = TestApp::spawn(|s| s.insecure_unsigned_webhooks = true).await;
    app.start_worker_with(16);
    let hanging = Hanging::default();
    let router = axum::Router::new().route("/hook", axum::routing::post(hang));
    let hang_url = serve(router.with_state(hanging.clone())).await;
    let (receiver, url) = Receiver::start(&[]).await;
    endpoint(&app, common::app::API_KEY, &hang_url, &["email.delivered"]).await;
    endpoint(&app, common::app::API_KEY, &url, &["email.delivered"]).await;

    // Twenty batches: twenty jobs for each endpoint.
    let (id, email) = sent(&app).await;
    for n in 0..20 {
        sendgrid(&app, json!([delivered(&id, &email, &format!("sg-{n}"))])).await;
    }
    // Well within the 15 s the hanging endpoint holds each request: the other gets them all.
    let started = std::time::Instant::now();
    receiver.wait_for(20).await;
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    let most = eventually(
        Duration::from_secs(10),
        "the hanging endpoint's slots",
        || {
            let most = hanging.most.load(Ordering::SeqCst);
            async move { (most == mailroom::hooks::slots::PER_ENDPOINT).then_some(most) }
        },
    )
    .await;
    // And mail goes out meanwhile.
    app.send_and_wait(&simple_email()).await;
    assert_eq!(
        hanging.most.load(Ordering::SeqCst),
        most,
        "never more than its slots"
    );
    app.stop().await;
}
