//! Amazon SNS as the tests play it: a test certificate (`tests/data/ses/`) served over HTTP by a
//! wiremock standing in for SNS's certificate host, notifications signed with its key by
//! `openssl dgst` (SHA1 for signature version 1, SHA256 for 2), and the subscription URL that
//! a confirmation must visit.

use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

use super::app::TestApp;

fn data(name: &str) -> String {
    format!("{}/tests/data/ses/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub struct Signer {
    pub server: MockServer,
    pub topic: String,
}

impl Signer {
    /// A certificate host for notifications of `topic`.
    pub async fn start(topic: &str) -> Self {
        let server = MockServer::start().await;
        let pem = std::fs::read_to_string(data("sns-test-only.cert.pem")).unwrap();
        Mock::given(matchers::method("GET"))
            .and(matchers::path("/SimpleNotificationService-test.pem"))
            .respond_with(ResponseTemplate::new(200).set_body_string(pem))
            .mount(&server)
            .await;
        Self {
            server,
            topic: topic.to_owned(),
        }
    }

    /// `host:port`, for `MAILROOM_SNS_CERT_HOST`.
    pub fn host(&self) -> String {
        self.server.uri().trim_start_matches("http://").to_owned()
    }

    pub fn cert_url(&self) -> String {
        format!("{}/SimpleNotificationService-test.pem", self.server.uri())
    }

    /// A notification carrying `message`, signed with signature `version`.
    pub fn notification(&self, message: &Value, version: &str) -> Value {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).unwrap();
        let envelope = json!({
            "Type": "Notification",
            "MessageId": uuid::Uuid::from_bytes(id).to_string(),
            "TopicArn": self.topic,
            "Message": message.to_string(),
            "Timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "SignatureVersion": version,
            "SigningCertURL": self.cert_url(),
            "UnsubscribeURL": format!("{}/unsubscribe", self.server.uri()),
        });
        self.sign(envelope)
    }

    /// Signs `envelope` (its `SignatureVersion`) over the fields SNS signs for its type.
    pub fn sign(&self, mut envelope: Value) -> Value {
        let names: &[&str] = if envelope["Type"] == "Notification" {
            &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ]
        } else {
            &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ]
        };
        let text: String = (names.iter())
            .filter_map(|n| Some(format!("{n}\n{}\n", envelope[*n].as_str()?)))
            .collect();
        let digest = if envelope["SignatureVersion"] == "1" {
            "-sha1"
        } else {
            "-sha256"
        };
        let mut openssl = Command::new("openssl")
            .args(["dgst", digest, "-sign", &data("sns-test-only.key.pem")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl (the test command installs it)");
        openssl
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = openssl.wait_with_output().unwrap();
        assert!(out.status.success());
        envelope["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(out.stdout));
        envelope
    }

    /// POSTs `envelope` to `/webhooks/ses` as SNS does (JSON as `text/plain`).
    pub async fn post_envelope(&self, app: &TestApp, envelope: &Value) -> (u16, Value) {
        let response = (app.client.post(app.url("/webhooks/ses")))
            .header("content-type", "text/plain; charset=UTF-8")
            .header(
                "x-amz-sns-message-type",
                envelope["Type"].as_str().unwrap_or_default(),
            )
            .body(envelope.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POSTs the SES event `message` in a notification signed with `version`.
    pub async fn post(&self, app: &TestApp, message: &Value, version: &str) -> (u16, Value) {
        let envelope = self.notification(message, version);
        self.post_envelope(app, &envelope).await
    }
}
