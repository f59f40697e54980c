//! SendGrid's Event Webhook: every signature vector, replay refusal, and real events through
//! the API and a worker into timelines, statuses, suppressions and stats; duplicates counted
//! once; a suppression blocking a later send.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{
    TestRedis,
    app::{API_KEY, TestApp, simple_email},
    eventually,
};
use mailroom::events::{
    WebhookKey, parse_batch,
    signature::{self, SignatureError},
};
use mailroom::store::{StatsStore, stats::Filter};

/// Every day's counters of all mail.
const ALL: Filter<'static> = Filter {
    category: None,
    key: None,
};
use p256::{
    ecdsa::{Signature, SigningKey, signature::Signer as _},
    pkcs8::EncodePublicKey,
};
use serde_json::{Value, json};

fn shared(path: &str) -> String {
    let full = format!("{}/tests/data/sendgrid/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// SendGrid's real 11-event test POST, byte for byte.
fn real_test_post() -> String {
    shared("vectors/event_webhook_stronggrid_test_event_payload.bin")
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_signature_vector_replays_with_its_expected_result() {
    let vectors: Vec<Value> =
        serde_json::from_str(&shared("vectors/event_webhook_vectors.json")).unwrap();
    assert_eq!(vectors.len(), 19);
    for vector in &vectors {
        let name = vector["name"].as_str().unwrap();
        let expected = vector["valid"].as_str() == Some("True") || vector["valid"] == true;
        let body = hex(vector["payload_hex"].as_str().unwrap());
        let ours = match WebhookKey::from_base64(vector["public_key"].as_str().unwrap()) {
            Ok(key) => signature::verify_signature(
                &key,
                vector["signature"].as_str().unwrap(),
                vector["timestamp"].as_str().unwrap(),
                &body,
            )
            .is_ok(),
            Err(_) => false,
        };
        assert_eq!(ours, expected, "vector {name}");
    }
    // Ruby's suite: a missing signature is a refusal, not a crash.
    let key = WebhookKey::from_base64(vectors[0]["public_key"].as_str().unwrap()).unwrap();
    let missing = signature::verify(&key, None, Some("1600112502"), b"[]", 1_600_112_502, 600);
    assert_eq!(missing, Err(SignatureError::Missing("signature")));
}

/// A key pair of the test's own, to sign fresh POSTs.
struct TestSigner {
    key: SigningKey,
}

impl TestSigner {
    fn new() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        Self {
            key: SigningKey::from_slice(&seed).unwrap(),
        }
    }

    fn public_base64(&self) -> String {
        let der = self.key.verifying_key().to_public_key_der().unwrap();
        base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
    }

    fn sign(&self, timestamp: &str, body: &str) -> String {
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(body.as_bytes());
        let signature: Signature = self.key.sign(&message);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }
}

#[test]
fn a_timestamp_outside_the_tolerance_is_refused_as_a_replay() {
    let signer = TestSigner::new();
    let key = WebhookKey::from_base64(&signer.public_base64()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let old = (now - 601).to_string();
    let sig = signer.sign(&old, "[]");
    let refused = signature::verify(&key, Some(&sig), Some(&old), b"[]", now, 600);
    assert!(
        matches!(refused, Err(SignatureError::Stale { age: 601, .. })),
        "{refused:?}"
    );
    let fresh = (now - 30).to_string();
    let sig = signer.sign(&fresh, "[]");
    assert_eq!(
        signature::verify(&key, Some(&sig), Some(&fresh), b"[]", now, 600),
        Ok(())
    );
    // The same signature over another timestamp does not verify.
    let later = (now - 29).to_string();
    let moved = signature::verify(&key, Some(&sig), Some(&later), b"[]", now, 600);
    assert_eq!(moved, Err(SignatureError::Mismatch));
}

async fn post_events(
    app: &TestApp,
    signer: Option<&TestSigner>,
    timestamp: &str,
    body: &str,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/webhooks/sendgrid/events"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signer) = signer {
        request = request
            .header(signature::SIGNATURE_HEADER, signer.sign(timestamp, body))
            .header(signature::TIMESTAMP_HEADER, timestamp);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

#[tokio::test]
async fn posts_without_a_valid_fresh_signature_are_refused_and_store_nothing() {
    let signer = TestSigner::new();
    let key = signer.public_base64();
    let app = TestApp::spawn(|s| s.sendgrid_webhook_key = Some(key)).await;
    let body = real_test_post();
    let (status, _) = post_events(&app, None, &now(), &body).await;
    assert_eq!(status, 401, "unsigned");
    let other = TestSigner::new();
    let (status, answer) = post_events(&app, Some(&other), &now(), &body).await;
    assert_eq!(status, 401, "signed with another key");
    assert_eq!(answer["error"]["code"], "webhook_unauthorized");
    let stale = (chrono::Utc::now().timestamp() - 3600).to_string();
    let (status, answer) = post_events(&app, Some(&signer), &stale, &body).await;
    assert_eq!(status, 401, "stale");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("replay"),
        "{answer}"
    );
    let (status, _) = post_events(&app, Some(&signer), &now(), "{\"not\": \"an array\"}").await;
    assert_eq!(status, 400, "not an array");
    let keys = app.redis.all_keys().await;
    assert!(keys.is_empty(), "nothing stored: {keys:?}");

    let (status, answer) = post_events(&app, Some(&signer), &now(), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 11);
    app.stop().await;
}

#[tokio::test]
async fn unsigned_posts_need_the_insecure_flag_and_no_key() {
    let app = TestApp::spawn(|_| {}).await;
    let (status, _) = post_events(&app, None, &now(), "[]").await;
    assert_eq!(status, 401);
    app.stop().await;
    let app = TestApp::spawn(|s| s.insecure_unsigned_webhooks = true).await;
    let (status, _) = post_events(&app, None, &now(), "[]").await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// The real test POST as SendGrid would send it for one of mailroom's messages: the same
/// events with `mailroom_id` merged in from `custom_args`.
fn real_events_for(id: &str, recipient: &str) -> String {
    let mut events: Vec<Value> = serde_json::from_str(&real_test_post()).unwrap();
    for event in &mut events {
        event["mailroom_id"] = json!(id);
        event["email"] = json!(recipient);
    }
    serde_json::to_string(&events).unwrap()
}

#[tokio::test]
async fn real_events_build_the_timeline_status_suppressions_and_stats_once() {
    let signer = TestSigner::new();
    let key = signer.public_base64();
    let mut app = TestApp::spawn(|s| {
        s.sendgrid_webhook_key = Some(key);
        s.transactional_categories = "security".to_owned();
    })
    .await;
    app.start_worker();
    let mut message = simple_email();
    message["to"][0]["email"] = json!("grace@example.org");
    message["categories"] = json!(["cat facts"]);
    let id = app
        .post_email(&message)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_status(&id, "sent").await;

    let body = real_events_for(&id, "Grace@Example.org");
    for _ in 0..2 {
        // SendGrid may deliver a batch twice: the second changes nothing.
        let (status, _) = post_events(&app, Some(&signer), &now(), &body).await;
        assert_eq!(status, 200);
    }
    let record = eventually(
        Duration::from_secs(20),
        "the events on the timeline",
        || async {
            let (_, record) = app.get_json(&format!("/v1/emails/{id}")).await;
            (record["timeline"].as_array().map(Vec::len) == Some(11)).then_some(record)
        },
    )
    .await;
    let kinds: Vec<&str> = record["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "processed",
            "deferred",
            "delivered",
            "open",
            "click",
            "bounce",
            "dropped",
            "spamreport",
            "unsubscribe",
            "group_unsubscribe",
            "group_resubscribe"
        ]
    );
    assert_eq!(record["timeline"][2]["response"], "250 OK");
    assert_eq!(record["timeline"][5]["reason"], "500 unknown recipient");
    assert_eq!(record["timeline"][0]["at"], "2020-11-28T14:55:33Z");
    // The status only moves up: the bounce (and the drop) outrank the opens and the click.
    assert_eq!(record["status"], "bounced", "{record}");
    assert_eq!(record["recipients"]["grace@example.org"], "bounced");

    // The duplicate POST was processed (two jobs) but counted once.
    let (_, stats) = app
        .get_json("/v1/stats?category=cat%20facts&from=2020-11-28&to=2020-11-28")
        .await;
    let totals = &stats["totals"];
    for (counter, value) in [
        ("processed", 1),
        ("delivered", 1),
        ("deferred", 1),
        ("bounced", 1),
        ("dropped", 1),
        ("opened", 1),
        ("unique_opens", 1),
        ("clicked", 1),
        ("unique_clicks", 1),
        ("spam_reports", 1),
        ("unsubscribes", 2),
    ] {
        assert_eq!(totals[counter], value, "{counter}: {stats}");
    }
    assert_eq!(stats["rates"]["delivery"], 1.0);
    assert_eq!(stats["rates"]["open"], 1.0);
    assert_eq!(stats["days"][0]["date"], "2020-11-28");
    let (_, all) = app
        .get_json("/v1/stats?from=2020-11-28&to=2020-11-28")
        .await;
    assert_eq!(all["totals"]["processed"], 1, "all categories: {all}");
    let (_, none) = app
        .get_json("/v1/stats?category=dogs&from=2020-11-28&to=2020-11-28")
        .await;
    assert_eq!(none["totals"]["processed"], 0);
    assert_eq!(none["rates"]["delivery"], Value::Null);

    // The hard bounce came first: that is the suppression's reason.
    let (status, suppression) = app.get_json("/v1/suppressions/GRACE@example.org").await;
    assert_eq!(status, 200, "{suppression}");
    assert_eq!(suppression["reason"], "bounce");
    assert_eq!(suppression["source"], "sendgrid:bounce");
    assert_eq!(suppression["detail"], "500 unknown recipient");

    // A later message to the address skips it ...
    let response = app.post_email(&message).await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["suppressed"], json!(["grace@example.org"]));
    let skipped = accepted["id"].as_str().unwrap().to_owned();
    let record = app.wait_for_status(&skipped, "suppressed").await;
    assert_eq!(record["suppressed"], json!(["grace@example.org"]));
    assert_eq!(record["recipients"]["grace@example.org"], "suppressed");
    // ... unless its category overrides suppressions.
    message["categories"] = json!(["security"]);
    let response = app.post_email(&message).await;
    let accepted: Value = response.json().await.unwrap();
    assert!(accepted.get("suppressed").is_none(), "{accepted}");
    app.wait_for_status(accepted["id"].as_str().unwrap(), "sent")
        .await;
    let sent = std::fs::read_dir(app.outbox.path()).unwrap().count();
    assert_eq!(
        sent, 2,
        "the suppressed message was never written to the outbox"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_exact_real_test_post_applies_to_suppressions_and_stats() {
    // The real bytes carry no mailroom_id: no timeline, but the address and the counters.
    let redis = TestRedis::new().await;
    let store = mailroom::app::events(
        &redis.conn(),
        &redis.prefix,
        (3600, 1000),
        Default::default(),
    );
    let batch = parse_batch(&real_test_post()).unwrap();
    assert_eq!((batch.events.len(), batch.skipped), (11, 0));
    let applied = store
        .apply(&batch.events, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((applied.fresh, applied.duplicates), (11, 0));
    let again = store
        .apply(&batch.events, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((again.fresh, again.duplicates), (0, 11));
    let suppressions = mailroom::store::Suppressions::new(redis.conn(), &redis.prefix);
    let record = suppressions.get("example@test.com").await.unwrap().unwrap();
    assert_eq!(record.reason.as_str(), "bounce");
    let stats = mailroom::store::StatsStore::new(redis.conn(), &redis.prefix);
    let day = chrono::NaiveDate::from_ymd_opt(2020, 11, 28).unwrap();
    let read = stats
        .read(
            Filter {
                category: Some("cat facts"),
                key: None,
            },
            day,
            day,
        )
        .await
        .unwrap();
    assert_eq!(read.totals.processed, 1);
    assert_eq!(read.totals.unsubscribes, 2);
}

#[tokio::test]
async fn group_resubscribe_lifts_only_a_group_unsubscribe() {
    let redis = TestRedis::new().await;
    let store = mailroom::app::events(
        &redis.conn(),
        &redis.prefix,
        (3600, 1000),
        Default::default(),
    );
    let events = |kind: &str, email: &str, id: &str| {
        format!(
            r#"[{{"email":"{email}","timestamp":1700000000,"event":"{kind}","sg_event_id":"{id}","asm_group_id":3}}]"#
        )
    };
    for (body, _) in [
        (events("group_unsubscribe", "a@example.org", "e1"), ()),
        (events("spamreport", "b@example.org", "e2"), ()),
        (events("group_resubscribe", "a@example.org", "e3"), ()),
        (events("group_resubscribe", "b@example.org", "e4"), ()),
    ] {
        let batch = parse_batch(&body).unwrap();
        store
            .apply(&batch.events, chrono::Utc::now())
            .await
            .unwrap();
    }
    let suppressions = mailroom::store::Suppressions::new(redis.conn(), &redis.prefix);
    assert!(suppressions.get("a@example.org").await.unwrap().is_none());
    assert_eq!(
        suppressions
            .get("b@example.org")
            .await
            .unwrap()
            .unwrap()
            .reason
            .as_str(),
        "spam_report"
    );
}

#[tokio::test]
async fn the_suppression_api_lists_filters_pages_and_edits() {
    let app = TestApp::spawn(|_| {}).await;
    let put = |email: String, body: Value| {
        let request = app
            .client
            .put(app.url(&format!("/v1/suppressions/{email}")))
            .bearer_auth(API_KEY)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    for i in 0..5 {
        let response = put(format!("user{i}@example.org"), json!({"reason": "bounce"})).await;
        assert_eq!(response.status(), 200);
    }
    for i in 0..3 {
        put(
            format!("other{i}@example.org"),
            json!({"detail": "asked by phone"}),
        )
        .await;
    }
    let response = put("not an address".to_owned(), json!({})).await;
    assert_eq!(response.status(), 422);

    let (_, page) = app.get_json("/v1/suppressions?reason=bounce&limit=2").await;
    assert_eq!(page["suppressions"].as_array().unwrap().len(), 2, "{page}");
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    seen.extend(
        page["suppressions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["email"].as_str().unwrap().to_owned()),
    );
    while let Some(next) = cursor {
        let (_, page) = app
            .get_json(&format!(
                "/v1/suppressions?reason=bounce&limit=2&cursor={next}"
            ))
            .await;
        seen.extend(
            page["suppressions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["email"].as_str().unwrap().to_owned()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    seen.sort();
    assert_eq!(
        seen,
        (0..5)
            .map(|i| format!("user{i}@example.org"))
            .collect::<Vec<_>>()
    );
    let (_, manual) = app.get_json("/v1/suppressions?reason=manual").await;
    assert_eq!(manual["suppressions"].as_array().unwrap().len(), 3);
    assert_eq!(manual["suppressions"][0]["source"], "api");
    let (status, error) = app.get_json("/v1/suppressions?reason=nonsense").await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["field"], "reason");

    let delete = app
        .client
        .delete(app.url("/v1/suppressions/USER0@example.org"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    let (status, _) = app.get_json("/v1/suppressions/user0@example.org").await;
    assert_eq!(status, 404);
    let unauthorized = app
        .client
        .get(app.url("/v1/suppressions"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn stats_refuse_bad_dates_naming_the_parameter_and_bound_long_periods() {
    let app = TestApp::spawn(|_| {}).await;
    // Valid by the schema: answered. A reversed period is empty; a long one is the 366 days
    // ending at `to`, all the counters are kept for.
    let (status, answer) = app
        .get_json("/v1/stats?from=2026-02-01&to=2026-01-01")
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["days"].as_array().unwrap().len(), 0);
    let (status, answer) = app
        .get_json("/v1/stats?from=2000-01-01&to=2026-01-01")
        .await;
    assert_eq!(status, 200, "{answer}");
    let days = answer["days"].as_array().unwrap();
    assert_eq!(days.len(), 366);
    assert_eq!(days[0]["date"], "2025-01-01");
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=-262143-01-01", "to"),
        ("colour=red", ""),
    ] {
        let (status, answer) = app.get_json(&format!("/v1/stats?{query}")).await;
        assert_eq!(status, 400, "{query}: {answer}");
        if !field.is_empty() {
            assert_eq!(answer["error"]["field"], field, "{query}: {answer}");
        }
    }
    let (status, answer) = app.get_json("/v1/stats").await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["days"].as_array().unwrap().len(),
        30,
        "the last 30 days by default"
    );
    app.stop().await;
}

#[tokio::test]
async fn events_without_mailroom_id_find_their_message_by_sendgrids_id() {
    // Bounces that come back through the Return-Path lose custom_args. SendGrid's real test
    // POST carries none: its sg_message_id starts with the X-Message-Id of the send.
    let sendgrid = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v3/mail/send"))
        .respond_with(
            wiremock::ResponseTemplate::new(202)
                .insert_header("X-Message-Id", "14c5d75ce93.dfd.64b469"),
        )
        .expect(1)
        .mount(&sendgrid)
        .await;
    let signer = TestSigner::new();
    let key = signer.public_base64();
    let uri = sendgrid.uri();
    let mut app = TestApp::spawn(move |s| {
        s.sendgrid_webhook_key = Some(key);
        s.provider = mailroom::config::ProviderKind::Sendgrid;
        s.sendgrid_api_url = uri;
        s.sendgrid_api_key = Some("SG.test-key".to_owned().into());
    })
    .await;
    app.start_worker();
    let mut message = simple_email();
    message["to"][0]["email"] = json!("example@test.com");
    let id = app
        .post_email(&message)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_status(&id, "sent").await;
    // The exact bytes SendGrid sent, signed again with this test's key and a fresh timestamp.
    let (status, _) = post_events(&app, Some(&signer), &now(), &real_test_post()).await;
    assert_eq!(status, 200);
    let record = eventually(Duration::from_secs(20), "the timeline", || async {
        let (_, record) = app.get_json(&format!("/v1/emails/{id}")).await;
        (record["timeline"].as_array().map(Vec::len) == Some(11)).then_some(record)
    })
    .await;
    assert_eq!(record["status"], "bounced", "{record}");
    assert_eq!(record["provider_message_id"], "14c5d75ce93.dfd.64b469");
    app.stop().await;
}

/// `count` delivered/open events for message `message`, one per `to` address, with ids `{tag}N`.
fn events_for(message: &str, tag: &str, count: usize) -> String {
    let events: Vec<Value> = (0..count)
        .map(|n| {
            json!({
                "email": format!("r{n}@example.org"), "timestamp": 1_700_000_000 + n as i64,
                "event": if n % 2 == 0 { "delivered" } else { "open" },
                "sg_event_id": format!("{tag}{n}"), "mailroom_id": message,
            })
        })
        .collect();
    serde_json::to_string(&events).unwrap()
}

#[tokio::test]
async fn an_event_touching_a_malformed_record_dead_letters_its_batch_after_the_others_applied() {
    // Redis does not roll back a script that errors: the event must not be marked seen before
    // its effects are written, and its neighbours must not be lost with it.
    let redis = TestRedis::new().await;
    let store = mailroom::app::events(
        &redis.conn(),
        &redis.prefix,
        (3600, 1000),
        Default::default(),
    );
    let body = format!(
        "[{},{},{}]",
        events_for("good-1", "a", 1).trim_matches(['[', ']']),
        events_for("bad", "b", 1).trim_matches(['[', ']']),
        events_for("good-2", "c", 1).trim_matches(['[', ']']),
    );
    // A delivery status that is not a hash: the middle event cannot be applied.
    let keys = mailroom_jobs::Keys::new(&redis.prefix);
    let delivery = keys.delivery("bad");
    let _: () = redis::AsyncCommands::set(&mut redis.conn(), &delivery, "garbage")
        .await
        .unwrap();
    let job = mailroom_jobs::ProviderEvents {
        provider: mailroom_jobs::EventSource::Sendgrid,
        received_at: chrono::Utc::now(),
        body: body.clone(),
        request_id: None,
    };
    let error = mailroom::worker::process_events(
        job.clone(),
        apalis_core::task::data::Data::new(store.clone()),
    )
    .await
    .unwrap_err();
    let abort = error
        .downcast_ref::<apalis_core::error::AbortError>()
        .expect("a refused event dead-letters its batch at once");
    let message = abort.to_string();
    assert!(
        message.contains("1 of 3 events could not be applied (the other 2 were)"),
        "{message}"
    );
    assert!(message.contains("event 1 (b0)"), "{message}");
    assert!(message.contains("not a hash"), "{message}");
    for good in ["good-1", "good-2"] {
        let timeline: Vec<String> =
            redis::AsyncCommands::lrange(&mut redis.conn(), keys.timeline(good), 0, -1)
                .await
                .unwrap();
        assert_eq!(timeline.len(), 1, "{good} was applied");
    }
    let marks: Vec<String> = redis
        .all_keys()
        .await
        .into_iter()
        .filter(|k| k.contains(":evt:seen:{bad}"))
        .collect();
    assert!(
        marks.is_empty(),
        "a refused event is not marked seen: {marks:?}"
    );
    let seen_good = redis
        .all_keys()
        .await
        .into_iter()
        .filter(|k| k.contains(":evt:seen:{good-1}"))
        .count();
    assert_eq!(
        seen_good, 2,
        "an applied event is marked by its id and its identity"
    );

    // Repaired, the dead letter's retry applies the refused event, and only it.
    let _: () = redis::AsyncCommands::del(&mut redis.conn(), &delivery)
        .await
        .unwrap();
    let done = mailroom::worker::process_events(job, apalis_core::task::data::Data::new(store))
        .await
        .unwrap();
    assert_eq!((done.fresh, done.duplicates), (1, 2));
    let status: Option<String> =
        redis::AsyncCommands::hget(&mut redis.conn(), &delivery, "r0@example.org")
            .await
            .unwrap();
    assert_eq!(status.as_deref(), Some("2:delivered"));
}

#[tokio::test]
async fn a_timeline_keeps_its_newest_events_up_to_the_cap_and_is_read_bounded() {
    let redis = TestRedis::new().await;
    let store = mailroom::app::events(&redis.conn(), &redis.prefix, (3600, 10), Default::default());
    let batch = parse_batch(&events_for("busy", "t", 25)).unwrap();
    let applied = store
        .apply(&batch.events, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(applied.fresh, 25);
    let timeline: Vec<String> = redis::AsyncCommands::lrange(
        &mut redis.conn(),
        mailroom_jobs::Keys::new(&redis.prefix).timeline("busy"),
        0,
        -1,
    )
    .await
    .unwrap();
    assert_eq!(timeline.len(), 10);
    assert!(
        timeline[0].contains("\"sg_event_id\":\"t15\""),
        "{}",
        timeline[0]
    );
    assert!(
        timeline[9].contains("\"sg_event_id\":\"t24\""),
        "{}",
        timeline[9]
    );
}

#[tokio::test]
async fn a_clicked_link_is_kept_without_its_query_so_a_token_in_it_is_not_stored() {
    let redis = TestRedis::new().await;
    let store = mailroom::app::events(
        &redis.conn(),
        &redis.prefix,
        (3600, 1000),
        Default::default(),
    );
    let secret = "tok3n-Zq8vJ2kLm9Xw4Rt7Yp1Bn6Cd";
    let body = json!([{
        "email": "a@example.org", "timestamp": 1_700_000_000, "event": "click",
        "sg_event_id": "c1", "mailroom_id": "msg-click",
        "url": format!("https://mail.example.com/verify?token={secret}#top"),
    }])
    .to_string();
    let batch = parse_batch(&body).unwrap();
    store
        .apply(&batch.events, chrono::Utc::now())
        .await
        .unwrap();
    let timeline: Vec<String> = redis::AsyncCommands::lrange(
        &mut redis.conn(),
        mailroom_jobs::Keys::new(&redis.prefix).timeline("msg-click"),
        0,
        -1,
    )
    .await
    .unwrap();
    let line: Value = serde_json::from_str(&timeline[0]).unwrap();
    assert_eq!(line["url"], "https://mail.example.com/verify");
    for key in redis.all_keys().await {
        let dump: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(&mut redis.conn())
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&dump).contains(secret),
            "the token is in {key}"
        );
    }
}

#[tokio::test]
async fn a_batch_retried_after_its_message_step_is_counted_once_with_its_unique_opens() {
    // Each effect is a script of its own (one slot each on a cluster): a process that stopped
    // after the message step must leave the counters to the retry, counted once, with the
    // unique opens the first run found.
    let redis = TestRedis::new().await;
    let store = mailroom::app::events(
        &redis.conn(),
        &redis.prefix,
        (3600, 1000),
        Default::default(),
    );
    let mut events: Vec<Value> = serde_json::from_str(&events_for("m-retry", "r", 6)).unwrap();
    // Two more opens by a recipient who already opened: counted, but not as unique.
    for n in [6, 7] {
        events.push(json!({
            "email": "r1@example.org", "timestamp": 1_700_000_000 + n, "event": "open",
            "sg_event_id": format!("r{n}"), "mailroom_id": "m-retry",
        }));
    }
    let batch = parse_batch(&serde_json::to_string(&events).unwrap()).unwrap();
    let first = store
        .apply(&batch.events, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((first.fresh, first.duplicates), (8, 0));
    let day = chrono::DateTime::from_timestamp(1_700_000_000, 0)
        .unwrap()
        .date_naive();
    let stats = StatsStore::new(redis.conn(), &redis.prefix);
    let once = stats.read(ALL, day, day).await.unwrap().totals;
    assert_eq!((once.delivered, once.opened, once.unique_opens), (3, 5, 3));

    // As if the first run had stopped after the message step: no counters, no day marks.
    let day_keys: Vec<String> = redis
        .all_keys()
        .await
        .into_iter()
        .filter(|k| k.contains(":stats:{"))
        .collect();
    assert!(!day_keys.is_empty());
    let _: () = redis::AsyncCommands::del(&mut redis.conn(), day_keys)
        .await
        .unwrap();

    let retried = store
        .apply(&batch.events, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((retried.fresh, retried.duplicates), (0, 8));
    assert_eq!(stats.read(ALL, day, day).await.unwrap().totals, once);
    // And a third delivery of the same batch changes nothing.
    store
        .apply(&batch.events, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(stats.read(ALL, day, day).await.unwrap().totals, once);
    let timeline: Vec<String> = redis::AsyncCommands::lrange(
        &mut redis.conn(),
        mailroom_jobs::Keys::new(&redis.prefix).timeline("m-retry"),
        0,
        -1,
    )
    .await
    .unwrap();
    assert_eq!(timeline.len(), 8, "each event once on the timeline");
}

#[tokio::test]
async fn an_event_sent_again_under_another_sendgrid_id_is_counted_once() {
    let redis = TestRedis::new().await;
    let store = mailroom::app::events(
        &redis.conn(),
        &redis.prefix,
        (3600, 1000),
        Default::default(),
    );
    let event = |id: &str| {
        json!([{
            "email": "twice@example.org", "timestamp": 1_700_000_000, "event": "delivered",
            "sg_event_id": id, "mailroom_id": "m-twice", "category": ["receipts"],
        }])
        .to_string()
    };
    let first = parse_batch(&event("first-id")).unwrap();
    let again = parse_batch(&event("other-id")).unwrap();
    let applied = store
        .apply(&first.events, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((applied.fresh, applied.duplicates), (1, 0));
    let applied = store
        .apply(&again.events, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((applied.fresh, applied.duplicates), (0, 1));
    let day = chrono::DateTime::from_timestamp(1_700_000_000, 0)
        .unwrap()
        .date_naive();
    let stats = StatsStore::new(redis.conn(), &redis.prefix);
    assert_eq!(stats.read(ALL, day, day).await.unwrap().totals.delivered, 1);
    let receipts = stats
        .read(
            Filter {
                category: Some("receipts"),
                key: None,
            },
            day,
            day,
        )
        .await
        .unwrap();
    assert_eq!(receipts.totals.delivered, 1);
}

#[tokio::test]
async fn a_daily_counter_edited_into_a_word_refuses_its_events_and_counts_the_others() {
    let redis = TestRedis::new().await;
    let store = mailroom::app::events(
        &redis.conn(),
        &redis.prefix,
        (3600, 1000),
        Default::default(),
    );
    let day = chrono::DateTime::from_timestamp(1_700_000_000, 0)
        .unwrap()
        .date_naive();
    let key = mailroom_jobs::Keys::new(&redis.prefix).stats(&day.format("%Y-%m-%d").to_string());
    let _: () = redis::AsyncCommands::hset(&mut redis.conn(), &key, "opened|", "lots")
        .await
        .unwrap();
    // r0, r2: delivered; r1, r3: opens, whose counter is now a word.
    let batch = parse_batch(&events_for("m-word", "w", 4)).unwrap();
    let applied = store
        .apply(&batch.events, chrono::Utc::now())
        .await
        .unwrap();
    let refused: Vec<usize> = applied.refused.iter().map(|(i, _)| *i).collect();
    assert_eq!(refused, [1, 3], "{:?}", applied.refused);
    assert!(
        applied.refused[0].1.contains("not a number"),
        "{:?}",
        applied.refused
    );
    let delivered: Option<String> =
        redis::AsyncCommands::hget(&mut redis.conn(), &key, "delivered|")
            .await
            .unwrap();
    assert_eq!(delivered.as_deref(), Some("2"));

    // Repaired, a retry counts the two opens, and only them.
    let _: () = redis::AsyncCommands::hdel(&mut redis.conn(), &key, "opened|")
        .await
        .unwrap();
    let again = store
        .apply(&batch.events, chrono::Utc::now())
        .await
        .unwrap();
    assert!(again.refused.is_empty(), "{:?}", again.refused);
    let totals = StatsStore::new(redis.conn(), &redis.prefix)
        .read(ALL, day, day)
        .await
        .unwrap()
        .totals;
    assert_eq!(
        (totals.delivered, totals.opened, totals.unique_opens),
        (2, 2, 2)
    );
}
