//! The Amazon SES provider end to end against moto in server mode (a third-party emulation of
//! SES's API v2): mailroom's MIME as raw content, SigV4-signed, the sender's identity checked
//! as SES checks it, and what moto recorded read back. Where moto lacks an operation
//! (`GetAccount`), a wiremock stand-in answers as SES documents and checks the signature's
//! shape. Then SES's events through SNS: notifications signed with a test certificate that a
//! stand-in certificate host serves, checked, confirmed and applied.

mod common;

use std::time::Duration;

use common::{
    app::{SmtpSink, TestApp, simple_email},
    eventually,
    moto::{KEY_ID, Moto, REGION, SECRET},
    sns::Signer,
};
use mailroom::config::{ProviderKind, Settings};
use secrecy::SecretString;
use serde_json::{Value, json};

fn ses_settings(s: &mut Settings, endpoint: String) {
    s.provider = ProviderKind::Ses;
    s.aws_region = Some(REGION.to_owned());
    s.aws_access_key_id = Some(KEY_ID.to_owned());
    s.aws_secret_access_key = Some(SecretString::from(SECRET));
    s.ses_endpoint_url = Some(endpoint);
    s.ses_configuration_set = None;
    s.max_attempts = 3;
}

#[tokio::test]
async fn an_email_reaches_ses_as_mailrooms_mime_and_moto_counts_it() {
    let moto = Moto::start().await;
    moto.verify("mailroom.test").await;
    let before = moto.sent_last_24_hours().await;
    let endpoint = moto.url();
    let mut app = TestApp::spawn(move |s| ses_settings(s, endpoint)).await;
    app.start_worker();

    let mut body = simple_email();
    body["subject"] = json!("Through SES");
    body["bcc"] = json!([{"email": "audit@example.net"}]);
    let id = app.send_and_wait(&body).await;

    let messages = moto.raw_messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    let raw = message["raw_data"].as_str().unwrap();
    assert!(raw.contains("Subject: Through SES"), "{raw}");
    assert!(
        raw.contains("From: \"Mailroom Tests\" <noreply@mailroom.test>"),
        "{raw}"
    );
    // Bcc is an envelope recipient, never a header.
    assert!(!raw.to_ascii_lowercase().contains("bcc:"), "{raw}");
    let destinations: Vec<&str> = (message["destinations"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .collect();
    assert!(
        destinations.contains(&"ada@example.com"),
        "{destinations:?}"
    );
    assert!(
        destinations.contains(&"audit@example.net"),
        "{destinations:?}"
    );
    assert_eq!(message["source"], "noreply@mailroom.test");
    assert!(moto.sent_last_24_hours().await > before);

    let (_, status) = app.status(&id).await;
    assert_eq!(status["provider"], "ses");
    assert_eq!(status["provider_message_id"], message["id"], "{status}");
    app.stop().await;
}

#[tokio::test]
async fn an_unverified_sender_is_ses_refusing_everyone_so_the_route_goes_on_to_smtp() {
    let moto = Moto::start().await;
    let smtp = SmtpSink::start().await;
    let endpoint = moto.url();
    let port = smtp.port;
    let mut app = TestApp::spawn(move |s| {
        ses_settings(s, endpoint);
        s.routes = "transactional=ses>smtp".to_owned().try_into().unwrap();
        s.smtp_url = Some(SecretString::from(format!("smtp://127.0.0.1:{port}")));
    })
    .await;
    app.start_worker();

    let id = app.send_and_wait(&simple_email()).await;
    let (_, status) = app.status(&id).await;
    assert_eq!(status["provider"], "smtp", "{status}");
    let tried = status["providers"].as_array().unwrap();
    assert_eq!(tried[0]["provider"], "ses", "{status}");
    let refusal = tried[0]["answer"].as_str().unwrap();
    assert!(refusal.contains("MessageRejected"), "{refusal}");
    assert_eq!(tried[1]["provider"], "smtp");
    assert!(moto.raw_messages().await.is_empty());
    assert_eq!(smtp.received().len(), 1);
    app.stop().await;
}

const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:mailroom-ses-events";

fn event(name: &str, recipient: &str, message: &str) -> Value {
    let full = format!("{}/tests/data/ses/events.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full)
        .unwrap()
        .replace("{{RECIPIENT}}", recipient)
        .replace("{{MESSAGE_ID}}", message);
    serde_json::from_str::<Value>(&text).unwrap()[name].clone()
}

async fn events_app(sns: &Signer) -> TestApp {
    let host = sns.host();
    let mut app = TestApp::spawn(move |s| {
        s.ses_topic_arns = format!("arn:aws:sns:us-east-1:123456789012:other, {TOPIC}");
        s.sns_cert_host = Some(host);
    })
    .await;
    app.start_worker();
    app
}

async fn sent(app: &TestApp, to: &str) -> String {
    let mut body = simple_email();
    body["to"][0]["email"] = json!(to);
    app.send_and_wait(&body).await
}

#[tokio::test]
async fn ses_events_in_signed_notifications_reach_the_timeline_status_and_suppressions() {
    let sns = Signer::start(TOPIC).await;
    let app = events_app(&sns).await;
    let id = sent(&app, "ada@example.com").await;
    let names = [
        "send",
        "delivery",
        "open",
        "click",
        "delivery_delay",
        "bounce_permanent",
    ];
    for (n, name) in names.iter().enumerate() {
        // Both signature versions: 1 (SHA1, SNS's default) and 2 (SHA256).
        let version = if n % 2 == 0 { "1" } else { "2" };
        let (status, body) = sns
            .post(&app, &event(name, "ada@example.com", &id), version)
            .await;
        assert_eq!(
            (status, body["accepted"].as_u64()),
            (200, Some(1)),
            "{name}: {body}"
        );
    }
    let record = eventually(Duration::from_secs(20), "the events", || async {
        let (_, record) = app.status(&id).await;
        let ses = (record["timeline"].as_array()?.iter())
            .filter(|e| e["source"] == "ses")
            .count();
        (ses == names.len()).then_some(record)
    })
    .await;
    let kinds: Vec<&str> = (record["timeline"].as_array().unwrap().iter())
        .filter(|e| e["source"] == "ses")
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for kind in [
        "processed",
        "delivered",
        "open",
        "click",
        "deferred",
        "bounce",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert_eq!(record["status"], "bounced");
    let bounce = eventually(
        Duration::from_secs(20),
        "the bounce's suppression",
        || async {
            let (status, bounce) = app.get_json("/v1/suppressions/ada@example.com").await;
            (status == 200).then_some(bounce)
        },
    )
    .await;
    assert_eq!(
        (bounce["reason"].as_str(), bounce["source"].as_str()),
        (Some("bounce"), Some("ses:bounce"))
    );

    // A transient bounce and a rejection suppress nobody; a complaint does.
    let other = sent(&app, "grace@example.com").await;
    for (name, who) in [
        ("bounce_transient", "barbara@example.com"),
        ("reject", "alan@example.com"),
        ("complaint", "grace@example.com"),
    ] {
        assert_eq!(
            sns.post(&app, &event(name, who, &other), "2").await.0,
            200,
            "{name}"
        );
    }
    eventually(Duration::from_secs(20), "the three events", || async {
        let (_, record) = app.status(&other).await;
        let timeline = record["timeline"].as_array()?;
        (timeline.iter().filter(|e| e["source"] == "ses").count() == 3).then_some(())
    })
    .await;
    // Suppressions are the events' last step, after the timeline.
    eventually(
        Duration::from_secs(20),
        "the complaint's suppression",
        || async {
            let (_, complaint) = app.get_json("/v1/suppressions/grace@example.com").await;
            (complaint["reason"] == "spam_report").then_some(())
        },
    )
    .await;
    for nobody in ["barbara@example.com", "alan@example.com"] {
        let (status, _) = app.get_json(&format!("/v1/suppressions/{nobody}")).await;
        assert_eq!(status, 404, "{nobody}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_subscription_confirmation_is_answered_by_visiting_its_url() {
    let sns = Signer::start(TOPIC).await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/confirm"))
        .and(wiremock::matchers::query_param("Token", "t0k3n"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .expect(1)
        .mount(&sns.server)
        .await;
    let app = events_app(&sns).await;
    let confirmation = |url: String| {
        sns.sign(json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "t0k3n",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic. To confirm, visit the SubscribeURL.",
            "SubscribeURL": url,
            "Timestamp": "2026-12-05T16:59:59.000Z",
            "SignatureVersion": "1",
            "SigningCertURL": sns.cert_url(),
        }))
    };
    // A URL off SNS's hosts is never visited, signed or not.
    let elsewhere = confirmation("https://attacker.example/confirm?Token=t0k3n".to_owned());
    assert_eq!(sns.post_envelope(&app, &elsewhere).await.0, 401);
    let genuine = confirmation(format!("{}/confirm?Token=t0k3n", sns.server.uri()));
    let (status, body) = sns.post_envelope(&app, &genuine).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    app.stop().await;
    sns.server.verify().await;
}

#[tokio::test]
async fn sns_posts_that_are_not_genuine_are_refused_and_apply_nothing() {
    let sns = Signer::start(TOPIC).await;
    let app = events_app(&sns).await;
    let id = sent(&app, "ada@example.com").await;
    let bounce = event("bounce_permanent", "ada@example.com", &id);
    let refused = |(status, body): (u16, Value)| {
        assert_eq!(status, 401, "{body}");
        body["error"]["message"].as_str().unwrap().to_owned()
    };

    let mut tampered = sns.notification(&bounce, "2");
    tampered["Message"] = json!(
        tampered["Message"]
            .as_str()
            .unwrap()
            .replace("Permanent", "Transient")
    );
    assert!(refused(sns.post_envelope(&app, &tampered).await).contains("does not match"));
    let stranger = Signer {
        server: wiremock::MockServer::start().await,
        topic: "arn:aws:sns:eu-west-1:999999999999:theirs".to_owned(),
    };
    let mut theirs = sns.notification(&bounce, "2");
    theirs["TopicArn"] = json!(stranger.topic);
    let theirs = sns.sign(theirs);
    assert!(refused(sns.post_envelope(&app, &theirs).await).contains("not one of"));
    let mut off_host = sns.notification(&bounce, "2");
    off_host["SigningCertURL"] =
        json!("https://sns.eu-west-1.amazonaws.com.attacker.example/cert.pem");
    assert!(refused(sns.post_envelope(&app, &sns.sign(off_host)).await).contains("not SNS's"));
    let mut version = sns.notification(&bounce, "2");
    version["SignatureVersion"] = json!("3");
    refused(sns.post_envelope(&app, &version).await);
    let (status, _) = sns
        .post_envelope(&app, &json!({"Type": "Notification"}))
        .await;
    assert_eq!(status, 400);

    let unconfigured = TestApp::spawn(|_| {}).await;
    let message = refused(sns.post(&unconfigured, &bounce, "2").await);
    assert!(message.contains("MAILROOM_SES_TOPIC_ARNS"), "{message}");
    let (status, _) = app.get_json("/v1/suppressions/ada@example.com").await;
    assert_eq!(status, 404, "nothing was applied");
    app.stop().await;
}

/// A campaign of `people` through the app's route: its final record.
async fn campaign(app: &TestApp, people: usize) -> Value {
    let mut csv = String::from("email,name\n");
    for i in 0..people {
        csv.push_str(&format!("p{i}@example.com,Person {i}\n"));
    }
    let spec =
        json!({"name": "News", "subject": "Hi {{name}}", "text": "Bye: {{unsubscribe_url}}"});
    app.run_campaign(&csv, spec).await
}

#[tokio::test]
async fn a_campaign_through_ses_sends_each_person_one_message_that_moto_records() {
    let moto = Moto::start().await;
    moto.verify("mailroom.test").await;
    let endpoint = moto.url();
    let mut app = TestApp::spawn(move |s| {
        ses_settings(s, endpoint);
        s.link_keys = Some(SecretString::from("t1:0123456789abcdef0123456789abcdef"));
    })
    .await;
    app.start_worker();
    let done = campaign(&app, 5).await;
    assert_eq!(
        (&done["sent"], &done["failed"]),
        (&json!(5), &json!(0)),
        "{done}"
    );
    let messages = moto.raw_messages().await;
    let mut to: Vec<String> = (messages.iter())
        .map(|m| m["destinations"][0].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    assert_eq!(
        to,
        (0..5)
            .map(|i| format!("p{i}@example.com"))
            .collect::<Vec<_>>()
    );
    let first = messages[0]["raw_data"].as_str().unwrap();
    assert!(
        first.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{first}"
    );
    app.stop().await;
}

/// Without `MAILROOM_PROVIDER_RATE`, campaigns through SES are paced at the account's maximum
/// send rate, read with `GetAccount` (which moto lacks: a stand-in answers it and the sends,
/// which name the configuration set and carry the session token).
#[tokio::test]
async fn campaigns_through_ses_are_paced_at_the_accounts_send_rate() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers};
    let ses = MockServer::start().await;
    let signed = || {
        let scope = "^AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/[0-9]{8}/eu-west-1/ses/aws4_request, ";
        matchers::header_regex("authorization", scope)
    };
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/v2/email/account"))
        .and(signed())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ProductionAccessEnabled": true, "SendingEnabled": true,
            "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 3.0, "SentLast24Hours": 0.0},
        })))
        .expect(1..)
        .mount(&ses)
        .await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v2/email/outbound-emails"))
        .and(signed())
        .and(matchers::header(
            "x-amz-security-token",
            "session-token-0f1e",
        ))
        .and(matchers::body_partial_json(
            json!({"ConfigurationSetName": "mailroom-events"}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"MessageId": "0102-stand-in"})),
        )
        .expect(4)
        .mount(&ses)
        .await;
    let endpoint = ses.uri();
    let mut app = TestApp::spawn(move |s| {
        ses_settings(s, endpoint);
        s.ses_configuration_set = Some("mailroom-events".to_owned());
        s.aws_session_token = Some(SecretString::from("session-token-0f1e"));
        s.link_keys = Some(SecretString::from("t1:0123456789abcdef0123456789abcdef"));
    })
    .await;
    app.start_worker();
    let done = campaign(&app, 4).await;
    assert_eq!(done["sent"], 4, "{done}");
    // The provider's throttle was passed: it exists only when a provider rate applies.
    let key = format!("{}:{{thr:provider:ses}}", app.redis.prefix);
    let exists: bool = redis::AsyncCommands::exists(&mut app.redis.conn(), &key)
        .await
        .unwrap();
    assert!(exists, "no provider throttle at {key}");
    app.stop().await;
    ses.verify().await;
}
