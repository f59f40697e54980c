//! Stats by key: each stored key's mail counted apart, whichever way its events come back —
//! SendGrid's webhook (the key rides in `custom_args` as the provider is asked to send them),
//! mailroom's own open tracking, bounces at send time and reports mailed back to the VERP
//! address — and a caller that may not name a key itself.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    app::{TestApp, inbound_form, part_text, report, strict_mime},
    eventually,
};
use mailroom::{config::ProviderKind, keys::Scope};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::path};

/// A SendGrid stand-in that accepts every send and keeps its body.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Value>>>);

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut bodies = self.0.lock().unwrap();
        bodies.push(serde_json::from_slice(&request.body).unwrap());
        ResponseTemplate::new(202).insert_header("X-Message-Id", format!("sg-{}", bodies.len()))
    }
}

/// `GET /v1/stats` for today with `query` added: the totals.
async fn totals(app: &TestApp, query: &str) -> Value {
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let (status, stats) = app
        .get_json(&format!("/v1/stats?from={today}&to={today}{query}"))
        .await;
    assert_eq!(status, 200, "{stats}");
    stats["totals"].clone()
}

/// Polls until the totals of `query` have each counter of `wanted` at its value.
async fn wait_for(app: &TestApp, query: &str, wanted: &[(&str, u64)]) -> Value {
    eventually(
        Duration::from_secs(20),
        &format!("{wanted:?} for {query:?}"),
        || async {
            Some(totals(app, query).await).filter(|t| wanted.iter().all(|(c, n)| t[*c] == *n))
        },
    )
    .await
}

/// A message to `to` queued with `key`: its id.
async fn send_as(app: &TestApp, key: &str, body: Value) -> String {
    let (status, accepted) = app.call_as(key, "POST", "/v1/emails", &body).await;
    assert_eq!(status, 202, "{accepted}");
    accepted["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_keys_stats_count_the_events_sendgrid_reports_for_its_own_mail() {
    let mock = MockServer::start().await;
    let recorder = Recorder::default();
    Mock::given(path("/v3/mail/send"))
        .respond_with(recorder.clone())
        .mount(&mock)
        .await;
    let uri = mock.uri();
    let mut app = TestApp::spawn(move |s| {
        s.provider = ProviderKind::Sendgrid;
        s.sendgrid_api_url = uri;
        s.sendgrid_api_key = Some(SecretString::from("SG.test-id.test-secret"));
        // The signature is tests/events.rs's subject; here only what the events say counts.
        s.insecure_unsigned_webhooks = true;
    })
    .await;
    app.start_worker();
    let (billing, billing_key) = app.stored_key(&[Scope::EmailsSend], json!({})).await;
    let (shop, shop_key) = app.stored_key(&[Scope::EmailsSend], json!({})).await;

    // A caller cannot name a key itself, not even its own.
    let mut forged = common::app::simple_email();
    forged["metadata"] = json!({"mailroom_key": billing});
    let (status, refused) = app.call_as(&shop_key, "POST", "/v1/emails", &forged).await;
    assert_eq!(
        (status, &refused["error"]["field"]),
        (422, &json!("metadata.mailroom_key")),
        "{refused}"
    );

    // The first of billing's and shop's one are receipts.
    let mail = |n: u32| {
        let categories = if n.is_multiple_of(2) {
            json!(["receipts"])
        } else {
            json!([])
        };
        json!({"to": format!("p{n}@example.org"), "subject": "Hi", "text": "Hi.", "categories": categories})
    };
    for n in 0..2 {
        send_as(&app, &billing_key, mail(n)).await;
    }
    send_as(&app, &shop_key, mail(2)).await;
    let response = app.post_email(&mail(3)).await;
    assert_eq!(response.status().as_u16(), 202);
    let bodies = eventually(Duration::from_secs(20), "four sends", || {
        let bodies = recorder.0.lock().unwrap().clone();
        async move { (bodies.len() == 4).then_some(bodies) }
    })
    .await;

    // SendGrid merges a message's custom_args into each of its events.
    let mut events = Vec::new();
    let mut owners = Vec::new();
    for (n, body) in bodies.iter().enumerate() {
        let args = body["custom_args"].as_object().unwrap().clone();
        owners.push(args.get("mailroom_key").cloned().unwrap_or(Value::Null));
        for kind in ["processed", "delivered", "open"] {
            let mut event = json!({
                "email": body["personalizations"][0]["to"][0]["email"],
                "event": kind,
                "timestamp": chrono::Utc::now().timestamp(),
                "sg_event_id": format!("{kind}-{n}"),
                "sg_message_id": format!("sg-{n}.filter"),
                "category": body["categories"],
            });
            event.as_object_mut().unwrap().extend(args.clone());
            events.push(event);
        }
    }
    let mut expected = vec![json!(billing), json!(billing), json!(shop), Value::Null];
    for list in [&mut owners, &mut expected] {
        list.sort_by_key(Value::to_string);
    }
    assert_eq!(
        owners, expected,
        "each request names the key that queued it; the operator's none"
    );
    let response = app
        .client
        .post(app.url("/webhooks/sendgrid/events"))
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let counted = [("processed", 4), ("delivered", 4), ("unique_opens", 4)];
    wait_for(&app, "", &counted).await;
    let counted = [("processed", 2), ("delivered", 2), ("unique_opens", 2)];
    wait_for(&app, &format!("&key={billing}"), &counted).await;
    let receipts = totals(&app, "&category=receipts").await;
    assert_eq!(receipts["delivered"], 2, "{receipts}");
    let billed = totals(&app, &format!("&key={billing}&category=receipts")).await;
    assert_eq!(
        billed["delivered"], 1,
        "one category of one key's mail: {billed}"
    );
    let theirs = totals(&app, &format!("&key={shop}")).await;
    assert_eq!(
        (
            &theirs["processed"],
            &theirs["delivered"],
            &theirs["unique_opens"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{theirs}"
    );

    // A key that is not a key id is a clear 400.
    let (status, error) = app.get_json("/v1/stats?key=billing").await;
    assert_eq!(
        (status, &error["error"]["field"]),
        (400, &json!("key")),
        "{error}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_keys_stats_count_its_tracked_opens_its_refusals_and_the_reports_mailed_back() {
    let sink = common::app::SmtpSink::start().await;
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let mut app = TestApp::spawn(|s| {
        s.provider = ProviderKind::Smtp;
        s.smtp_url = Some(SecretString::from(url));
        s.bounce_domain = Some("bounces.example.com".to_owned());
        s.inbound_user = Some("sendgrid".to_owned());
        s.inbound_password = Some(SecretString::from("inbound-secret-0123456789"));
        s.link_keys = Some(SecretString::from("t1:0123456789abcdef0123456789abcdef"));
        s.public_url = "https://mail.example.com".to_owned();
    })
    .await;
    app.start_worker();
    let (billing, billing_key) = app.stored_key(&[Scope::EmailsSend], json!({})).await;
    let (shop, shop_key) = app.stored_key(&[Scope::EmailsSend], json!({})).await;

    // Refused at send time (550 5.1.1), and bounced later by a report to the VERP address.
    let text = |to: &str| json!({"to": to, "subject": "Your receipt", "text": "Thanks."});
    send_as(&app, &billing_key, text("perm-fail@example.org")).await;
    let gone = send_as(&app, &billing_key, text("gone@example.org")).await;
    // Tracked, and opened.
    let tracked = json!({
        "to": "ada@example.org", "subject": "News", "html": "<p>Hello Ada</p>",
        "tracking": {"opens": true},
    });
    send_as(&app, &billing_key, tracked).await;
    send_as(&app, &shop_key, text("grace@example.org")).await;
    let received = eventually(Duration::from_secs(30), "three messages", || {
        let received = sink.received();
        async move { (received.len() == 3).then_some(received) }
    })
    .await;
    let mut pixel = None;
    for (file, envelope) in &received {
        if envelope["rcpt_tos"][0] == "ada@example.org" {
            let html = part_text(&strict_mime(file).await, "text/html");
            pixel = html
                .split("https://mail.example.com")
                .find_map(|rest| rest.strip_prefix("/t/o/"))
                .map(|rest| rest.split('"').next().unwrap().to_owned());
        }
    }
    let pixel = pixel.expect("the tracked message's open pixel");
    let response = app
        .client
        .get(app.url(&format!("/t/o/{pixel}")))
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let verp = format!("bounces+m-{}@bounces.example.com", gone.replace('-', ""));
    let dsn = report("gmail-dsn.eml", &gone, "gone@example.org", &verp);
    let response = app
        .client
        .post(app.url("/webhooks/sendgrid/inbound"))
        .basic_auth("sendgrid", Some("inbound-secret-0123456789"))
        .header("content-type", "multipart/form-data; boundary=xYzZY")
        .body(inbound_form(&dsn, &verp))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let counted = [("bounced", 2), ("unique_opens", 1)];
    wait_for(&app, &format!("&key={billing}"), &counted).await;
    let theirs = totals(&app, &format!("&key={shop}")).await;
    assert_eq!(
        (&theirs["bounced"], &theirs["unique_opens"]),
        (&json!(0), &json!(0)),
        "{theirs}"
    );
    app.stop().await;
}
