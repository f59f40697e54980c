//! The HTTP API: auth, validation, idempotency, status, health, OpenAPI. Every bad input gets
//! a 4xx in the one error shape, and nothing is queued for it.

mod common;

use std::time::Duration;

use common::{
    app::{API_KEY, TestApp, simple_email},
    eventually,
};
use mailroom_jobs::{Job, SendEmail};
use redis::AsyncCommands;
use serde_json::{Value, json};

async fn ready_len(app: &TestApp) -> u64 {
    app.redis
        .conn()
        .llen(app.redis.keys(SendEmail::QUEUE).ready())
        .await
        .unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, body["error"].clone())
}

#[tokio::test]
async fn a_valid_email_is_queued_and_its_status_can_be_read() {
    let app = TestApp::spawn(|_| {}).await;
    let response = app.post_email(&simple_email()).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);

    let (code, record) = app.status(&id).await;
    assert_eq!(code, 200);
    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["status"], "queued");
    assert_eq!(record["attempts"], 0);
    assert_eq!(ready_len(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn v1_routes_need_a_valid_api_key() {
    let app = TestApp::spawn(|_| {}).await;
    let url = app.url("/v1/emails");
    let missing = app
        .client
        .post(&url)
        .json(&simple_email())
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(missing).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (401, Some("unauthorized"))
    );

    let wrong = app
        .client
        .post(&url)
        .bearer_auth("test-key-0f3c9b")
        .json(&simple_email())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let prefix = app
        .client
        .post(&url)
        .bearer_auth(&API_KEY[..5])
        .json(&simple_email())
        .send()
        .await
        .unwrap();
    assert_eq!(prefix.status().as_u16(), 401);
    let basic = app
        .client
        .post(&url)
        .basic_auth("user", Some(API_KEY))
        .json(&simple_email())
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);
    let get = app
        .client
        .get(app.url("/v1/emails/01a21e64-a8e7-7556-b1bd-8458c8c641dd"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 401);

    let second_key = app
        .client
        .post(&url)
        .bearer_auth("other-key")
        .json(&simple_email())
        .send()
        .await
        .unwrap();
    assert_eq!(second_key.status().as_u16(), 202);
    assert_eq!(
        ready_len(&app).await,
        1,
        "only the authorized request was queued"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_naming_the_field_and_queues_nothing() {
    let app = TestApp::spawn(|s| s.body_limit_bytes = 64 * 1024).await;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = simple_email();
        change(&mut body);
        body
    };
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "an invalid address",
            with(&|b| b["to"][0]["email"] = json!("ada@")),
            422,
            "validation_failed",
            Some("to[0].email"),
        ),
        (
            "a domain without a TLD",
            with(&|b| b["to"][0]["email"] = json!("ada@localhost")),
            422,
            "validation_failed",
            Some("to[0].email"),
        ),
        (
            "an unknown field",
            with(&|b| b["colour"] = json!("red")),
            422,
            "validation_failed",
            None,
        ),
        (
            "a wrong type",
            with(&|b| b["to"] = json!(42)),
            422,
            "validation_failed",
            Some("to"),
        ),
        (
            "a wrong nested type",
            with(&|b| b["to"][0]["name"] = json!(7)),
            422,
            "validation_failed",
            Some("to[0].name"),
        ),
        (
            "no recipient",
            with(&|b| b["to"] = json!([])),
            422,
            "validation_failed",
            Some("to"),
        ),
        (
            "no subject",
            with(&|b| {
                b.as_object_mut().unwrap().remove("subject");
            }),
            422,
            "validation_failed",
            Some("subject"),
        ),
        (
            "no body",
            with(&|b| {
                b.as_object_mut().unwrap().remove("text");
            }),
            422,
            "validation_failed",
            Some("text"),
        ),
        (
            "a header with CRLF",
            with(&|b| b["headers"] = json!({"X-Tag": "a\r\nBcc: x@example.com"})),
            422,
            "validation_failed",
            Some("headers.X-Tag"),
        ),
        (
            "a reserved header",
            with(&|b| b["headers"] = json!({"Content-Type": "text/plain"})),
            422,
            "validation_failed",
            Some("headers.Content-Type"),
        ),
        (
            "an unknown template",
            with(&|b| {
                b.as_object_mut().unwrap().remove("subject");
                b.as_object_mut().unwrap().remove("text");
                b["template"] = json!({"name": "invoice", "data": {}});
            }),
            422,
            "validation_failed",
            Some("template.name"),
        ),
        (
            "a template with a javascript: link",
            with(&|b| {
                b.as_object_mut().unwrap().remove("subject");
                b.as_object_mut().unwrap().remove("text");
                b["template"] =
                    json!({"name": "welcome", "data": {"name": "A", "link": "javascript:x"}});
            }),
            422,
            "validation_failed",
            Some("template.data.link"),
        ),
        (
            "a template and a subject",
            with(&|b| {
                b.as_object_mut().unwrap().remove("text");
                b["template"] =
                    json!({"name": "welcome", "data": {"name": "A", "link": "https://a.example"}});
            }),
            422,
            "validation_failed",
            Some("subject"),
        ),
        (
            "bad base64",
            with(&|b| {
                b["attachments"] =
                    json!([{"filename": "a.txt", "content_type": "text/plain", "content": "***"}])
            }),
            422,
            "validation_failed",
            Some("attachments[0].content"),
        ),
        (
            "11 categories",
            with(&|b| {
                b["categories"] = json!(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"])
            }),
            422,
            "validation_failed",
            Some("categories"),
        ),
        (
            "a bad send_at",
            with(&|b| b["send_at"] = json!("tomorrow")),
            422,
            "validation_failed",
            Some("send_at"),
        ),
    ];
    for (name, body, status, code, field) in cases {
        let (got, error) = error_of(app.post_email(&body).await).await;
        assert_eq!(got, status, "{name}: {error}");
        assert_eq!(error["code"], code, "{name}: {error}");
        if let Some(field) = field {
            assert_eq!(error["field"], field, "{name}: {error}");
        }
    }

    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"email": format!("u{i}@example.com")}))
        .collect();
    let app_big = TestApp::spawn(|_| {}).await;
    let (got, error) = error_of(app_big.post_email(&with(&|b| b["to"] = json!(many))).await).await;
    assert_eq!((got, error["field"].as_str()), (422, Some("to")), "{error}");
    app_big.stop().await;

    let url = app.url("/v1/emails");
    let not_json = app
        .client
        .post(&url)
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body("{\"to\": [")
        .send()
        .await
        .unwrap();
    let (got, error) = error_of(not_json).await;
    assert_eq!((got, error["code"].as_str()), (400, Some("invalid_json")));
    let trailing = app
        .client
        .post(&url)
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(format!("{} x", simple_email()))
        .send()
        .await
        .unwrap();
    assert_eq!(trailing.status().as_u16(), 400);
    let form = app
        .client
        .post(&url)
        .bearer_auth(API_KEY)
        .body(simple_email().to_string())
        .send()
        .await
        .unwrap();
    let (got, error) = error_of(form).await;
    assert_eq!(
        (got, error["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let huge = with(&|b| b["text"] = json!("x".repeat(70 * 1024)));
    let (got, error) = error_of(app.post_email(&huge).await).await;
    assert_eq!(
        (got, error["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let unknown = app
        .client
        .get(app.url("/v1/emails/not-an-id"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(unknown).await.0, 404);
    let missing = app
        .client
        .get(app.url("/v1/emails/01a21e64-a8e7-7556-b1bd-8458c8c641dd"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(missing).await.0, 404);

    assert_eq!(ready_len(&app).await, 0, "nothing was queued");
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_id_and_refuses_a_different_body() {
    let app = TestApp::spawn(|_| {}).await;
    let post = |body: Value, key: &'static str| {
        app.client
            .post(app.url("/v1/emails"))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first: Value = post(simple_email(), "signup-42")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let again = post(simple_email(), "signup-42").await.unwrap();
    assert_eq!(again.status().as_u16(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(ready_len(&app).await, 1, "the retry queued nothing");

    let mut different = simple_email();
    different["subject"] = json!("Something else");
    let (got, error) = error_of(post(different, "signup-42").await.unwrap()).await;
    assert_eq!(
        (got, error["code"].as_str()),
        (422, Some("idempotency_conflict"))
    );

    let other: Value = post(simple_email(), "signup-43")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(other["id"], first["id"]);
    assert_eq!(ready_len(&app).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn health_ready_openapi_and_docs_are_served() {
    let app = TestApp::spawn(|_| {}).await;
    let get = |path: &str| app.client.get(app.url(path)).send();
    assert_eq!(get("/healthz").await.unwrap().text().await.unwrap(), "ok");
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    let spec: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    for path in [
        "/v1/emails",
        "/v1/emails/{id}",
        "/v1/render",
        "/healthz",
        "/readyz",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
    for schema in [
        "EmailMessage",
        "Mailbox",
        "Attachment",
        "StatusRecord",
        "ErrorBody",
        "Accepted",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "{schema} is documented"
        );
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), spec.to_string()).unwrap();
    let validated = tokio::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .await
        .expect("python3 with openapi-spec-validator (scripts/test installs it)");
    assert!(
        validated.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    let docs = get("/docs/").await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    let page = docs.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "the docs page is Swagger UI");
    let script = get("/docs/swagger-ui-bundle.js").await.unwrap();
    assert_eq!(
        script.status().as_u16(),
        200,
        "Swagger UI's assets come from the binary"
    );
    app.stop().await;
}

#[tokio::test]
async fn serve_refuses_to_start_without_api_keys_unless_told_to() {
    let redis = common::TestRedis::new().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("serve")
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
        .env("MAILROOM_LISTEN", "127.0.0.1:0")
        .env_remove("MAILROOM_API_KEYS")
        .env_remove("MAILROOM_INSECURE_NO_AUTH")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "a configuration error");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no API keys"));
}

/// Runs `mailroom ARGS` with `env` until it exits or `wait` passes; its exit code (`None`:
/// still running) and stderr.
async fn exit_of(args: &[&str], env: &[(&str, &str)], wait: Duration) -> (Option<i32>, String) {
    let redis = common::TestRedis::new().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(args)
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
        .env("MAILROOM_API_KEYS", "a-key")
        .env("MAILROOM_LISTEN", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let code = match tokio::time::timeout(wait, child.wait()).await {
        Ok(status) => status.unwrap().code(),
        Err(_) => None,
    };
    let _ = child.start_kill();
    let output = child.wait_with_output().await.unwrap();
    (code, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn each_process_checks_what_it_needs_and_exits_2_naming_the_setting() {
    let smtp_without_url = [("MAILROOM_PROVIDER", "smtp")];
    for command in ["serve", "work"] {
        let (code, log) = exit_of(&[command], &smtp_without_url, Duration::from_secs(20)).await;
        assert_eq!(code, Some(2), "{command}: {log}");
        assert!(log.contains("SMTP_URL"), "{command}: {log}");
        let (code, log) = exit_of(
            &[command],
            &[("MAILROOM_DEFAULT_LOCALE", "xx-Nope")],
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(code, Some(2), "{command}: {log}");
        assert!(log.contains("MAILROOM_DEFAULT_LOCALE"), "{command}: {log}");
    }
    let (code, log) = exit_of(
        &["serve"],
        &[("MAILROOM_LISTEN", "not-an-address")],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("MAILROOM_LISTEN"), "{log}");
    // A worker never listens: a listen address is not its business.
    let (code, log) = exit_of(
        &["work"],
        &[("MAILROOM_LISTEN", "not-an-address")],
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(code, None, "the worker runs: {log}");
}

#[tokio::test]
async fn metrics_report_the_queues_in_prometheus_format() {
    let app = TestApp::spawn(|_| {}).await;
    assert_eq!(app.post_email(&simple_email()).await.status().as_u16(), 202);
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("# TYPE mailroom_queue_jobs gauge"), "{text}");
    assert!(
        text.contains("mailroom_queue_jobs{queue=\"email\",state=\"ready\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("mailroom_queue_jobs{queue=\"events\",state=\"dead\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("mailroom_queue_jobs{queue=\"tracking\",state=\"ready\"} 0"),
        "the tracking queue is watched too: {text}"
    );
    assert!(
        text.contains("mailroom_queue_jobs_total{queue=\"email\",outcome=\"done\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("mailroom_queue_workers{queue=\"email\"} 0"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_are_scoped_to_the_api_key_that_used_them() {
    let app = TestApp::spawn(|_| {}).await;
    let post = |api_key: &'static str| {
        app.client
            .post(app.url("/v1/emails"))
            .bearer_auth(api_key)
            .header("Idempotency-Key", "order-7")
            .json(&simple_email())
            .send()
    };
    let first: Value = post(API_KEY).await.unwrap().json().await.unwrap();
    let other = post("other-key").await.unwrap();
    assert_eq!(other.status().as_u16(), 202);
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["id"], first["id"], "another service's key is its own");
    let again: Value = post(API_KEY).await.unwrap().json().await.unwrap();
    assert_eq!(again["id"], first["id"], "the same service still dedupes");
    assert_eq!(ready_len(&app).await, 2);
    let keys = app.redis.all_keys().await;
    assert!(
        !keys.iter().any(|k| k.contains("order-7")),
        "the chosen key is not kept in clear: {keys:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_sent_messages_status_is_kept_as_long_as_its_timeline() {
    let mut app = TestApp::spawn(|s| {
        s.retention_secs = 2;
        s.event_retention_secs = 3600;
    })
    .await;
    app.start_worker();
    let id = app
        .post_email(&simple_email())
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(
        Duration::from_secs(10),
        "the message to be sent",
        || async { (app.status(&id).await.1["status"] == "sent").then_some(()) },
    )
    .await;
    let job = app.redis.keys("email").job(&id);
    let ttl: i64 = app.redis.conn().pttl(&job).await.unwrap();
    assert!(
        ttl > 2_000 && ttl <= 3_600_000,
        "the status record lives with the timeline (MAILROOM_EVENT_RETENTION_SECS), not the 2 s job retention: {ttl} ms"
    );
    let payload = app.redis.hget(&job, "payload").await;
    assert!(payload.is_none(), "the kept record is compact: no payload");
    app.stop().await;
}

#[tokio::test]
async fn recipients_may_be_strings_one_or_many_as_other_email_apis_take_them() {
    let app = TestApp::spawn(|_| {}).await;
    for (to, expected) in [
        (
            json!("ada@example.com"),
            json!([{"email": "ada@example.com"}]),
        ),
        (
            json!(["Ada Lovelace <ada@example.com>", {"email": "bob@example.com", "name": "Bob"}]),
            json!([{"email": "ada@example.com", "name": "Ada Lovelace"}, {"email": "bob@example.com", "name": "Bob"}]),
        ),
        (
            json!(["\"Ada Lovelace (Countess)\" <ada@example.com>"]),
            json!([{"email": "ada@example.com", "name": "Ada Lovelace (Countess)"}]),
        ),
    ] {
        let response = app
            .post_email(&json!({"to": to, "subject": "Hi", "text": "Hello"}))
            .await;
        assert_eq!(response.status(), 202, "{to}");
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let payload = app.redis.job_field("email", &id, "payload").await.unwrap();
        let job: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(job["message"]["to"], expected, "written as objects");
    }
    let refused = app
        .post_email(&json!({"to": "Ada <not an address>", "subject": "Hi", "text": "Hello"}))
        .await;
    let (status, error) = error_of(refused).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (422, Some("to[0].email"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_status_record_pages_its_recipients() {
    let app = TestApp::spawn(|_| {}).await;
    let to: Vec<Value> = (0..250)
        .map(|n| json!({"email": format!("r{n:03}@example.com")}))
        .collect();
    let response = app
        .post_email(&json!({"to": to, "subject": "Hi", "text": "Hello"}))
        .await;
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Their delivery statuses, as SendGrid's events leave them.
    let delivery = mailroom_jobs::Keys::new(&app.redis.prefix).delivery(&id);
    let mut conn = app.redis.conn();
    for n in 0..250 {
        let _: () = conn
            .hset(&delivery, format!("r{n:03}@example.com"), "2:delivered")
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/emails/{id}?recipients_limit=100&recipients_cursor={c}"),
            None => format!("/v1/emails/{id}?recipients_limit=100"),
        };
        let (code, page) = app.get_json(&path).await;
        assert_eq!(code, 200, "{page}");
        let recipients = page["recipients"].as_object().unwrap();
        assert!(recipients.len() <= 100);
        assert!(recipients.values().all(|s| s == "delivered"));
        seen.extend(recipients.keys().cloned());
        match page["recipients_next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..250).map(|n| format!("r{n:03}@example.com")).collect();
    assert_eq!(seen, expected, "every recipient once, in order");
    let (code, _) = app
        .get_json(&format!("/v1/emails/{id}?recipients_limit=0"))
        .await;
    assert_eq!(code, 400);
    app.stop().await;
}

/// Puts bounced@example.org on the suppression list.
async fn suppress_bounced(app: &TestApp) {
    let (status, _) = app
        .call(
            "PUT",
            "/v1/suppressions/bounced@example.org",
            &json!({"reason": "bounce"}),
        )
        .await;
    assert_eq!(status, 200);
}

/// `POST /v1/emails/batch` with the API key: the status and the answer as JSON.
async fn post_batch(app: &TestApp, body: &Value) -> (u16, Value) {
    app.call("POST", "/v1/emails/batch", body).await
}

#[tokio::test]
async fn a_batch_queues_each_valid_message_and_answers_each_by_index() {
    let app = TestApp::spawn(|_| {}).await;
    suppress_bounced(&app).await;
    let keyed = |subject: &str| {
        let mut message = simple_email();
        message["subject"] = json!(subject);
        message["idempotency_key"] = json!("receipt-7");
        message
    };
    let mut to_suppressed = simple_email();
    to_suppressed["to"] = json!(["bounced@example.org", "grace@example.org"]);
    let mut wrong_type = simple_email();
    wrong_type["subject"] = json!(5);
    let batch = json!({"messages": [
        simple_email(),
        {"subject": "no one to send to", "text": "…"},
        keyed("Receipt"),
        keyed("Receipt"),
        keyed("Another receipt"),
        to_suppressed,
        wrong_type,
    ]});
    let (status, answer) = post_batch(&app, &batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(4), Some(3))
    );
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["index"], i, "{result}");
    }
    let id = |i: usize| results[i]["id"].as_str().unwrap_or_default().to_owned();
    for i in [0, 2, 5] {
        assert_eq!(results[i]["status"], "queued", "{}", results[i]);
        assert_eq!(uuid::Uuid::parse_str(&id(i)).unwrap().get_version_num(), 7);
    }
    // The same key twice in one batch: one message, one id.
    assert_eq!(id(3), id(2));
    assert_eq!(results[4]["error"]["code"], "idempotency_conflict");
    assert_eq!(results[1]["error"]["code"], "validation_failed");
    assert!(
        results[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `to`"),
        "{}",
        results[1]
    );
    assert_eq!(results[6]["error"]["field"], "subject");
    assert_eq!(results[5]["suppressed"], json!(["bounced@example.org"]));
    assert!(results[0].get("suppressed").is_none(), "{}", results[0]);
    assert_eq!(ready_len(&app).await, 3);
    for i in [0, 2, 5] {
        let (code, record) = app.status(&id(i)).await;
        assert_eq!((code, record["status"].as_str()), (200, Some("queued")));
    }

    // Retrying the keyed message queues nothing more.
    let (status, again) = post_batch(&app, &json!({"messages": [keyed("Receipt")]})).await;
    assert_eq!(status, 200);
    assert_eq!(again["results"][0]["id"], id(2).as_str());
    assert_eq!(ready_len(&app).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_that_is_not_one_gets_a_4xx_and_queues_nothing() {
    let app = TestApp::spawn(|_| {}).await;
    let too_many: Vec<Value> = (0..1001).map(|_| simple_email()).collect();
    for (body, field) in [
        (json!({"messages": []}), "messages"),
        (json!({"messages": too_many}), "messages"),
        (json!({"messages": simple_email()}), "messages"),
        (json!({"message": [simple_email()]}), "message"),
    ] {
        let (status, answer) = post_batch(&app, &body).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(
            answer["error"]["field"].as_str().unwrap_or(""),
            field,
            "{answer}"
        );
    }
    let with_header = app
        .client
        .post(app.url("/v1/emails/batch"))
        .bearer_auth(API_KEY)
        .header("Idempotency-Key", "k")
        .json(&json!({"messages": [simple_email()]}))
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(with_header).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (422, Some("Idempotency-Key"))
    );
    let not_json = app
        .client
        .post(app.url("/v1/emails/batch"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body("{\"messages\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(not_json).await.0, 400);
    let unauthenticated = app
        .client
        .post(app.url("/v1/emails/batch"))
        .json(&json!({"messages": [simple_email()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    assert_eq!(ready_len(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_push_after_redis_forgot_the_push_script_loads_it_again() {
    let app = TestApp::spawn(|_| {}).await;
    assert_eq!(app.post_email(&simple_email()).await.status().as_u16(), 202);
    // What a restarted or failed-over Redis looks like to a producer: no scripts.
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut app.redis.conn())
        .await
        .unwrap();
    assert_eq!(app.post_email(&simple_email()).await.status().as_u16(), 202);
    let (status, answer) = post_batch(&app, &json!({"messages": [simple_email()]})).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(ready_len(&app).await, 3);
    app.stop().await;
}

/// How many times Redis ran the push script (`EVALSHA` and `EVAL` calls) and the suppression
/// lookup (`HMGET`) so far.
async fn script_and_lookup_calls(url: &str) -> (u64, u64) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let calls = |commands: &[&str]| -> u64 {
        info.lines()
            .filter(|l| {
                commands
                    .iter()
                    .any(|c| l.starts_with(&format!("cmdstat_{c}:")))
            })
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    (calls(&["evalsha", "eval"]), calls(&["hmget"]))
}

#[tokio::test]
async fn a_failed_suppression_lookup_still_queues_the_message_once_and_answers_202() {
    let app = TestApp::spawn(|_| {}).await;
    // The suppression list's key holds a string: every lookup fails (WRONGTYPE), pushes do not.
    let list = mailroom_jobs::Keys::new(&app.redis.prefix).suppressions();
    let _: () = app.redis.conn().set(&list, "not a hash").await.unwrap();

    let response = app.post_email(&simple_email()).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert!(body.get("suppressed").is_none(), "{body}");
    assert_eq!(ready_len(&app).await, 1);

    let (status, body) =
        post_batch(&app, &json!({"messages": [simple_email(), simple_email()]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(ready_len(&app).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_single_emails_share_redis_round_trips_and_each_keeps_its_own_answer() {
    // A Redis of this test's own, so its command counts are this test's alone.
    let server = common::redis_server::RedisServer::start(&[]);
    let app = TestApp::spawn_on(&server.url(), |_| {}).await;
    suppress_bounced(&app).await;
    // Warm up: the push script is loaded and the pusher started.
    assert_eq!(app.post_email(&simple_email()).await.status().as_u16(), 202);
    let (scripts_before, lookups_before) = script_and_lookup_calls(&server.url()).await;
    let requests = 400;
    let answers = futures::future::join_all((0..requests).map(|i| {
        let mut body = simple_email();
        if i % 50 == 0 {
            // A few with a key reused inside the burst: answered with the first's id.
            body["idempotency_key"] = json!("burst-key");
        }
        if i == 7 {
            body["to"] = json!("not an address");
        }
        if i % 40 == 3 {
            // A few to a suppressed address: each is told, and only those.
            body["to"] = json!(["bounced@example.org", "grace@example.org"]);
        }
        let app = &app;
        async move {
            let response = app.post_email(&body).await;
            let status = response.status().as_u16();
            (i, status, response.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let (scripts_after, lookups_after) = script_and_lookup_calls(&server.url()).await;
    let (calls, lookups) = (
        scripts_after - scripts_before,
        lookups_after - lookups_before,
    );
    let mut ids = std::collections::BTreeSet::new();
    let mut keyed = std::collections::BTreeSet::new();
    for (i, status, body) in &answers {
        if *i == 7 {
            assert_eq!(*status, 422, "{body}");
            continue;
        }
        assert_eq!(*status, 202, "{body}");
        if i % 40 == 3 {
            assert_eq!(body["suppressed"], json!(["bounced@example.org"]), "{body}");
        } else {
            assert!(body.get("suppressed").is_none(), "{body}");
        }
        let id = body["id"].as_str().unwrap().to_owned();
        if i % 50 == 0 {
            keyed.insert(id);
        } else {
            assert!(ids.insert(id), "two requests got one id");
        }
    }
    assert_eq!(keyed.len(), 1, "one id for the reused key: {keyed:?}");
    assert_eq!(ready_len(&app).await, 1 + (requests as u64 - 1 - 8) + 1);
    assert!(
        calls * 4 <= requests as u64,
        "{calls} push script calls for {requests} requests"
    );
    assert!(
        lookups * 4 <= requests as u64,
        "{lookups} suppression lookups for {requests} requests"
    );
    app.stop().await;
}
