//! Export and erasure: everything mailroom holds about a person in one document, then nothing
//! left that names them (only a hash on the suppression list, which a later import honours).

mod common;

use std::time::Duration;

use common::{
    app::{API_KEY, TestApp},
    eventually,
};
use secrecy::SecretString;
use serde_json::json;

#[tokio::test]
async fn an_export_holds_everything_and_erasure_leaves_nothing_that_names_the_person() {
    let mut app = TestApp::spawn(|s| {
        s.link_keys = Some(SecretString::from("p1:0123456789abcdef0123456789abcdef"))
    })
    .await;
    app.settings.public_url = app.address.clone();
    app.start_worker();
    let (_, list) = app
        .call(
            "POST",
            "/v1/lists",
            &json!({"name": "News", "optin": "single", "visibility": "public"}),
        )
        .await;
    let list = list["id"].as_u64().unwrap();
    // A service hears of the subscription: its events are logged with their bodies.
    let (receiver, url) = common::hooks::Receiver::start(&[]).await;
    let kinds = ["subscriber.subscribed", "subscriber.unsubscribed"];
    let (hook, _) = common::hooks::endpoint(&app, API_KEY, &url, &kinds).await;
    let (_, subscriber) = app
        .call("POST", "/v1/subscribers", &json!({"email": "Grace.Hopper@Example.com", "name": "Grace", "attributes": {"rank": "admiral"}, "lists": [list]}))
        .await;
    let id = subscriber["id"].as_u64().unwrap();
    // A tracked message to them (its recipient recorded for the hits), a verification, an
    // unsubscribe (with a suppression).
    let sent = app
        .post_email(&json!({"to": "grace.hopper@example.com", "subject": "Hi", "text": "Hello", "html": "<p>Hello</p>", "list_id": list, "tracking": {"opens": true, "clicks": false}}))
        .await;
    let message: serde_json::Value = sent.json().await.unwrap();
    let message = message["id"].as_str().unwrap().to_owned();
    app.wait_for_status(&message, "sent").await;
    let (status, _) = app
        .call(
            "POST",
            "/v1/verifications",
            &json!({"email": "grace.hopper@example.com"}),
        )
        .await;
    assert_eq!(status, 202);
    app.call(
        "PUT",
        &format!("/v1/subscribers/{id}/lists/{list}"),
        &json!({"status": "unsubscribed"}),
    )
    .await;
    app.call(
        "PUT",
        "/v1/suppressions/grace.hopper@example.com",
        &json!({"reason": "unsubscribe"}),
    )
    .await;

    let export = eventually(
        Duration::from_secs(30),
        "the export to list the message",
        || async {
            let (status, export) = app.get_json(&format!("/v1/subscribers/{id}/export")).await;
            (status == 200 && export["messages"].as_array().is_some_and(|m| !m.is_empty()))
                .then_some(export)
        },
    )
    .await;
    assert_eq!(export["subscriber"]["email"], "Grace.Hopper@example.com");
    assert_eq!(export["subscriber"]["attributes"]["rank"], "admiral");
    assert_eq!(export["subscriptions"][0]["status"], "unsubscribed");
    assert_eq!(
        export["subscription_history"][0]["status"], "confirmed",
        "the state before"
    );
    assert_eq!(export["suppression"]["reason"], "unsubscribe");
    assert_eq!(export["messages"][0]["id"], message.as_str());
    assert!(export["verification"].is_object());
    // Wait for the verification email too, so nothing is still on its way while we look.
    eventually(Duration::from_secs(30), "both emails", || async {
        (common::app::eml_files(app.outbox.path()).len() >= 2).then_some(())
    })
    .await;

    receiver.wait_for(2).await;
    eventually(
        Duration::from_secs(10),
        "both deliveries logged",
        || async { (common::hooks::deliveries(&app, &hook).await.len() == 2).then_some(()) },
    )
    .await;

    let before = app.redis.dump().await.join("\n").to_lowercase();
    assert!(
        before.contains("grace.hopper@example.com"),
        "the test would prove nothing otherwise"
    );
    let response = app
        .client
        .delete(app.url(&format!("/v1/subscribers/{id}?erase=true")))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let after = app.redis.dump().await;
    for line in &after {
        assert!(
            !line.to_lowercase().contains("grace.hopper"),
            "still names the person: {line}"
        );
    }
    assert_eq!(app.get_json(&format!("/v1/subscribers/{id}")).await.0, 404);
    // Only a hash stays, and it still keeps the person out of a later import.
    assert!(after.iter().any(|l| l.contains("sha256:")), "{after:#?}");
    let import = app
        .client
        .post(app.url(&format!("/v1/imports?list={list}&status=confirmed")))
        .bearer_auth(API_KEY)
        .header("content-type", "text/csv")
        .body("email\ngrace.hopper@example.com\n")
        .send()
        .await
        .unwrap();
    let import: serde_json::Value = import.json().await.unwrap();
    let id = import["id"].as_str().unwrap().to_owned();
    let done = eventually(Duration::from_secs(30), "the import", || async {
        let (_, body) = app.get_json(&format!("/v1/imports/{id}")).await;
        (body["state"] == "done").then_some(body)
    })
    .await;
    assert_eq!(done["imported"], 0);
    assert!(
        done["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("suppressed (unsubscribe)")
    );
    app.stop().await;
}
