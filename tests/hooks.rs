//! Webhook endpoints of the services through `/v1/webhooks`: made with a secret shown once,
//! listed, changed, rotated and deleted; each stored key seeing only its own; URLs that may not
//! be reached refused; no secret in Redis.

mod common;

use common::app::{API_KEY, TestApp};
use mailroom::keys::Scope;
use serde_json::{Value, json};

fn spec(url: &str) -> Value {
    json!({"url": url, "events": ["email.delivered", "email.bounced"], "description": "billing"})
}

#[tokio::test]
async fn an_endpoint_is_made_with_its_secret_once_then_listed_changed_rotated_and_deleted() {
    let app = TestApp::spawn(|_| {}).await;
    let (status, made) = app
        .call("POST", "/v1/webhooks", &spec("http://127.0.0.1:9/hook"))
        .await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    let secret = made["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 44,
        "{secret}"
    );
    assert_eq!(
        (
            &made["url"],
            &made["events"],
            &made["description"],
            &made["owner"],
            &made["disabled"]
        ),
        (
            &json!("http://127.0.0.1:9/hook"),
            &json!(["email.delivered", "email.bounced"]),
            &json!("billing"),
            &Value::Null,
            &Value::Null
        ),
        "{made}"
    );

    let (_, listed) = app.call("GET", "/v1/webhooks", &Value::Null).await;
    let listed = listed["webhooks"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], json!(id));
    assert!(
        listed[0].get("secret").is_none(),
        "never listed: {listed:?}"
    );

    let path = format!("/v1/webhooks/{id}");
    let change = json!({"events": ["email.opened"], "disabled": true, "description": ""});
    let (status, changed) = app.call("PATCH", &path, &change).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (&changed["events"], &changed["description"], &changed["url"]),
        (
            &json!(["email.opened"]),
            &Value::Null,
            &json!("http://127.0.0.1:9/hook")
        )
    );
    assert!(changed["disabled"].is_string(), "{changed}");
    let (_, enabled) = app.call("PATCH", &path, &json!({"disabled": false})).await;
    assert_eq!(enabled["disabled"], Value::Null);

    let (status, rotated) = app
        .call("POST", &format!("{path}/rotate"), &Value::Null)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["secret"].as_str().unwrap();
    assert!(second.starts_with("whsec_") && second != secret);
    let until =
        chrono::DateTime::parse_from_rfc3339(rotated["previous_secret_until"].as_str().unwrap())
            .unwrap();
    let grace = until
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!(
        (86_000..=86_400).contains(&grace),
        "a day of grace: {grace}"
    );

    // No secret is kept in Redis, in any form.
    let dump = app.redis.dump().await.join("\n");
    for shown in [secret.as_str(), second] {
        assert!(!dump.contains(&shown[6..]), "a secret in Redis");
    }

    assert_eq!(app.call("DELETE", &path, &Value::Null).await.0, 204);
    assert_eq!(app.call("GET", &path, &Value::Null).await.0, 404);
    let (_, listed) = app.call("GET", "/v1/webhooks", &Value::Null).await;
    assert_eq!(listed["webhooks"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_stored_key_sees_and_changes_only_its_own_endpoints() {
    let app = TestApp::spawn(|_| {}).await;
    let (billing, billing_key) = app.stored_key(&[Scope::Webhooks], Value::Null).await;
    let (_, crm_key) = app.stored_key(&[Scope::Webhooks], Value::Null).await;
    let (status, made) = app
        .call_as(
            &billing_key,
            "POST",
            "/v1/webhooks",
            &spec("http://127.0.0.1:9/billing"),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["owner"], json!(billing));
    let path = format!("/v1/webhooks/{}", made["id"].as_str().unwrap());

    let (_, theirs) = app
        .call_as(&crm_key, "GET", "/v1/webhooks", &Value::Null)
        .await;
    assert_eq!(theirs["webhooks"], json!([]));
    for (method, path, body) in [
        ("GET", path.clone(), Value::Null),
        ("PATCH", path.clone(), json!({"disabled": true})),
        ("POST", format!("{path}/rotate"), Value::Null),
        ("DELETE", path.clone(), Value::Null),
    ] {
        let (status, answer) = app.call_as(&crm_key, method, &path, &body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    let (_, mine) = app.call_as(&billing_key, "GET", &path, &Value::Null).await;
    assert_eq!(mine["disabled"], Value::Null, "another key changed nothing");
    // An operator key sees every endpoint.
    let (_, all) = app
        .call_as(API_KEY, "GET", "/v1/webhooks", &Value::Null)
        .await;
    assert_eq!(all["webhooks"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn urls_endpoints_may_not_reach_are_refused_and_a_missing_signing_key_is_named() {
    let app = TestApp::spawn(|s| {
        s.webhooks_allow_http = false;
        s.webhooks_allow_private = false;
    })
    .await;
    for (url, why) in [
        ("http://hooks.example.com/", "https://"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://10.0.0.7/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::1]/hook", "loopback"),
        ("https://user:secret@hooks.example.com/", "credentials"),
        ("hooks.example.com", "not a URL"),
    ] {
        let (status, refused) = app.call("POST", "/v1/webhooks", &spec(url)).await;
        assert_eq!(
            (status, &refused["error"]["field"]),
            (422, &json!("url")),
            "{url}: {refused}"
        );
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{url}: {message}");
    }
    let (status, _) = app
        .call(
            "POST",
            "/v1/webhooks",
            &spec("https://hooks.example.com/mailroom"),
        )
        .await;
    assert_eq!(status, 201);
    for (body, field) in [
        (
            json!({"url": "https://hooks.example.com/", "events": []}),
            "events",
        ),
        (json!({"url": "https://hooks.example.com/"}), "events"),
        (json!({"events": ["email.sent"]}), "url"),
    ] {
        let (status, refused) = app.call("POST", "/v1/webhooks", &body).await;
        assert_eq!(
            (status, &refused["error"]["field"]),
            (422, &json!(field)),
            "{body}"
        );
    }
    let (status, _) = app
        .call(
            "POST",
            "/v1/webhooks",
            &json!({"url": "https://hooks.example.com/", "events": ["email.nope"]}),
        )
        .await;
    assert_eq!(status, 422, "an unknown event type");
    app.stop().await;

    let unkeyed = TestApp::spawn(|s| s.webhook_signing_key = None).await;
    let (status, refused) = unkeyed
        .call("POST", "/v1/webhooks", &spec("http://127.0.0.1:9/hook"))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MAILROOM_WEBHOOK_SIGNING_KEY")
    );
    unkeyed.stop().await;
}
