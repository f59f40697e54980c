//! mailroom's own events reach the services' endpoints through the notices stream, each from a
//! real flow through the API and a worker: an address verified, a subscription made, confirmed
//! and ended, an import and a campaign finished, mail received, a message given up on. Each is
//! signed as the Standard Webhooks reference library accepts, and is on the stream too. An
//! endpoint may ask only for what its key may read.

mod common;

use std::time::Duration;

use common::{
    app::{API_KEY, TestApp, inbound_form},
    eventually,
    hooks::{Received, Receiver, endpoint, verify},
};
use mailroom::{config::ProviderKind, keys::Scope};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::path};

/// The bodies of what `receiver` got, once it holds one of each of `types`.
async fn bodies_of(receiver: &Receiver, types: &[&str]) -> (Vec<Received>, Vec<Value>) {
    eventually(Duration::from_secs(60), &format!("{types:?}"), || {
        let received = receiver.received();
        async move {
            let bodies: Vec<Value> = (received.iter())
                .map(|r| serde_json::from_str(&r.body).unwrap())
                .collect();
            let has = |t: &&str| bodies.iter().any(|b| b["type"] == **t);
            types.iter().all(has).then_some((received, bodies))
        }
    })
    .await
}

fn of_type<'a>(bodies: &'a [Value], kind: &str) -> Vec<&'a Value> {
    bodies.iter().filter(|b| b["type"] == kind).collect()
}

/// The types on the notices stream, oldest first.
async fn stream_types(app: &TestApp) -> Vec<String> {
    let key = mailroom_jobs::Keys::new(&app.redis.prefix).notices();
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut app.redis.conn.clone())
        .await
        .unwrap();
    (entries.iter())
        .filter_map(|(_, fields)| fields.chunks(2).find(|kv| kv[0] == "type"))
        .map(|kv| kv[1].clone())
        .collect()
}

#[tokio::test]
async fn lists_imports_campaigns_verifications_and_inbound_mail_reach_the_endpoint() {
    let mut app = TestApp::spawn(|s| {
        s.inbound_user = Some("sendgrid".to_owned());
        s.inbound_password = Some(SecretString::from("inbound-secret-0123456789"));
        s.link_keys = Some(SecretString::from("t1:0123456789abcdef0123456789abcdef"));
    })
    .await;
    app.settings.public_url = app.address.clone();
    app.start_worker();
    let (receiver, url) = Receiver::start(&[]).await;
    let types = [
        "address.verified",
        "inbound.received",
        "subscriber.subscribed",
        "subscriber.confirmed",
        "subscriber.unsubscribed",
        "campaign.started",
        "campaign.finished",
        "import.finished",
    ];
    let (_, secret) = endpoint(&app, API_KEY, &url, &types).await;

    // An address verified through its link (first: the outbox holds only its email).
    let (status, _) = app
        .call(
            "POST",
            "/v1/verifications",
            &json!({"email": "linus@example.org"}),
        )
        .await;
    assert_eq!(status, 202);
    let link = common::app::received_links(&app, 1, "/verify?token=").await;
    let token = link[0].link.split("token=").nth(1).unwrap().to_owned();
    let confirmed = (app.client.post(app.url("/verify")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status().as_u16(), 200);
    // An import and a campaign (the import's rows are told once, as the import).
    let spec = json!({"name": "Launch", "subject": "Hi", "text": "Bye: {{unsubscribe_url}}"});
    let campaign = app.run_campaign("email\nada@example.org\n", spec).await;
    // A subscription made unconfirmed, confirmed, then ended.
    let (_, list) = app
        .call(
            "POST",
            "/v1/lists",
            &json!({"name": "Tips", "optin": "single", "visibility": "private"}),
        )
        .await;
    let list = list["id"].as_u64().unwrap();
    let subscriber = json!({"email": "grace@example.org", "lists": [list],
                            "subscription_status": "unconfirmed"});
    let (status, made) = app.call("POST", "/v1/subscribers", &subscriber).await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_u64().unwrap();
    for state in ["confirmed", "unsubscribed"] {
        let (status, answer) = app
            .call(
                "PUT",
                &format!("/v1/subscribers/{id}/lists/{list}"),
                &json!({"status": state}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    // Mail received.
    let message = "From: Ada <ada@example.org>\r\nTo: support@example.com\r\nSubject: Help\r\n\r\nPlease.\r\n";
    let inbound = (app.client.post(app.url("/webhooks/sendgrid/inbound")))
        .basic_auth("sendgrid", Some("inbound-secret-0123456789"))
        .header("content-type", "multipart/form-data; boundary=xYzZY")
        .body(inbound_form(message, "support@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(inbound.status().as_u16(), 200);

    let (received, bodies) = bodies_of(&receiver, &types).await;
    let verdicts = verify(&secret, &received).await;
    assert!(
        verdicts.iter().all(|v| v.starts_with("ok ")),
        "{verdicts:?}"
    );

    let campaign_id = &campaign["id"];
    let started = of_type(&bodies, "campaign.started");
    assert_eq!(
        started[0]["data"]["campaign_id"], *campaign_id,
        "{started:?}"
    );
    assert_eq!(
        of_type(&bodies, "campaign.finished")[0]["data"]["campaign_id"],
        *campaign_id
    );
    let import = of_type(&bodies, "import.finished")[0];
    assert_eq!(
        (&import["data"]["state"], &import["data"]["imported"]),
        (&json!("done"), &json!(1))
    );
    for (kind, status) in [
        ("subscriber.subscribed", "unconfirmed"),
        ("subscriber.confirmed", "confirmed"),
        ("subscriber.unsubscribed", "unsubscribed"),
    ] {
        let told = of_type(&bodies, kind);
        assert_eq!(told.len(), 1, "{kind}: {told:?}");
        let data = &told[0]["data"];
        assert_eq!(
            (&data["email"], &data["list_id"], &data["status"]),
            (&json!("grace@example.org"), &json!(list), &json!(status)),
            "{kind}"
        );
    }
    let verified = &of_type(&bodies, "address.verified")[0]["data"];
    assert_eq!(verified["email"], "linus@example.org");
    let mail = &of_type(&bodies, "inbound.received")[0]["data"];
    assert_eq!(
        (&mail["subject"], &mail["to"]),
        (&json!("Help"), &json!("support@example.com"))
    );
    assert!(mail["inbound_id"].is_string(), "{mail}");
    // Each event once, and every one on the stream as well.
    let ids: std::collections::HashSet<_> = received
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(ids.len(), received.len());
    let on_stream = stream_types(&app).await;
    assert!(
        types.iter().all(|t| on_stream.iter().any(|s| s == t)),
        "{on_stream:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_message_given_up_on_is_told_as_email_failed_to_its_keys_endpoint() {
    let mock = MockServer::start().await;
    let refused = json!({"errors": [{"message": "The from address does not match a verified Sender Identity.", "field": "from"}]});
    Mock::given(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(400).set_body_json(refused))
        .mount(&mock)
        .await;
    let uri = mock.uri();
    let mut app = TestApp::spawn(move |s| {
        s.provider = ProviderKind::Sendgrid;
        s.sendgrid_api_url = uri;
        s.sendgrid_api_key = Some(SecretString::from("SG.test-id.test-secret"));
    })
    .await;
    app.start_worker();
    let (billing, billing_key) = app
        .stored_key(&[Scope::Webhooks, Scope::EmailsSend], Value::Null)
        .await;
    let (receiver, url) = Receiver::start(&[]).await;
    let (_, secret) = endpoint(&app, &billing_key, &url, &["email.failed"]).await;
    // Another key's failure is not this endpoint's to hear of.
    let response = app.post_email(&common::app::simple_email()).await;
    assert_eq!(response.status().as_u16(), 202);
    let theirs = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_status(&theirs, "dead").await;
    let body = json!({"to": "ada@example.org", "subject": "Invoice", "text": "Due.",
                      "categories": ["invoices"], "metadata": {"invoice": "42"}});
    let (status, answer) = app.call_as(&billing_key, "POST", "/v1/emails", &body).await;
    assert_eq!(status, 202, "{answer}");
    let mine = answer["id"].as_str().unwrap().to_owned();
    app.wait_for_status(&mine, "dead").await;

    let (received, bodies) = bodies_of(&receiver, &["email.failed"]).await;
    assert_eq!(verify(&secret, &received).await, ["ok email.failed"]);
    let data = &bodies[0]["data"];
    assert_eq!(
        (&data["message_id"], &data["to"], &data["key"]),
        (&json!(mine), &json!(["ada@example.org"]), &json!(billing)),
        "{data}"
    );
    assert_eq!(data["metadata"]["invoice"], "42");
    assert_eq!(data["categories"], json!(["invoices"]));
    assert!(data["error"].as_str().unwrap().contains("400"), "{data}");
    assert!(received.iter().all(|r| !r.body.contains(&theirs)));
    app.stop().await;
}

#[tokio::test]
async fn an_endpoint_asks_only_for_the_events_its_key_may_read() {
    let app = TestApp::spawn(|_| {}).await;
    let (_, key) = app.stored_key(&[Scope::Webhooks], Value::Null).await;
    for (kind, scope) in [
        ("subscriber.unsubscribed", "lists:read"),
        ("import.finished", "lists:read"),
        ("campaign.finished", "campaigns"),
        ("inbound.received", "emails:read_all"),
    ] {
        let spec =
            json!({"url": "https://hooks.example.com/in", "events": ["email.bounced", kind]});
        let (status, answer) = app.call_as(&key, "POST", "/v1/webhooks", &spec).await;
        assert_eq!(status, 403, "{kind}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(scope),
            "{answer}"
        );
        assert_eq!(answer["error"]["field"], "events");
    }
    let (_, lists_key) = app
        .stored_key(&[Scope::Webhooks, Scope::ListsRead], Value::Null)
        .await;
    let spec = json!({"url": "https://hooks.example.com/in", "events": ["email.bounced"]});
    let (status, made) = app.call_as(&lists_key, "POST", "/v1/webhooks", &spec).await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap();
    // Nor can a change add one beyond the key.
    let change = json!({"events": ["campaign.started"]});
    let (status, _) = app
        .call_as(&lists_key, "PATCH", &format!("/v1/webhooks/{id}"), &change)
        .await;
    assert_eq!(status, 403);
    let change = json!({"events": ["subscriber.unsubscribed", "import.finished"]});
    let (status, changed) = app
        .call_as(&lists_key, "PATCH", &format!("/v1/webhooks/{id}"), &change)
        .await;
    assert_eq!(status, 200, "{changed}");
    app.stop().await;
}
