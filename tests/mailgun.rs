//! The Mailgun provider end to end: POST /v1/emails or a campaign → worker → a wiremock
//! Mailgun that checks the documented requests (`POST /v3/{domain}/messages.mime` with the
//! MIME as a file part, `POST /v3/{domain}/messages` with `to` fields and
//! `recipient-variables`, basic auth as `api`) and answers as Mailgun documents: 200 with an
//! `id`, 401 `Forbidden`, 429. The batch stand-in performs Mailgun's `%recipient.NAME%`
//! substitution, so the test reads what each recipient would get.

mod common;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use base64::Engine;
use common::app::TestApp;
use mailroom::config::ProviderKind;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{header, method, path},
};

const KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
const DOMAIN: &str = "mg.example.com";
const LINKS: &str = "t1:0123456789abcdef0123456789abcdef";

fn basic() -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("api:{KEY}"));
    format!("Basic {token}")
}

async fn mailgun_app(mock: &MockServer) -> TestApp {
    let uri = mock.uri();
    let mut app = TestApp::spawn(move |s| {
        s.provider = ProviderKind::Mailgun;
        s.mailgun_api_url = uri;
        s.mailgun_api_key = Some(SecretString::from(KEY));
        s.mailgun_domain = Some(DOMAIN.to_owned());
        s.link_keys = Some(SecretString::from(LINKS));
        s.max_attempts = 5;
    })
    .await;
    app.start_worker();
    app
}

fn queued(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"id": id, "message": "Queued. Thank you."}))
}

async fn queue(app: &TestApp, body: Value) -> String {
    let response = app.post_email(&body).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// The fields of a `multipart/form-data` body: (name, value), in order.
fn multipart_fields(request: &Request) -> Vec<(String, String)> {
    let content_type = request.headers["content-type"].to_str().unwrap();
    let boundary = content_type.split("boundary=").nth(1).expect("a boundary");
    let body = String::from_utf8(request.body.clone()).unwrap();
    (body.split(&format!("--{boundary}")))
        .filter_map(|part| {
            let (head, value) = part.split_once("\r\n\r\n")?;
            let name = head.split("name=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.trim_end_matches("\r\n").to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn a_queued_email_reaches_mailgun_as_its_mime_with_mailrooms_id() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v3/{DOMAIN}/messages.mime")))
        .and(header("authorization", basic().as_str()))
        .respond_with(queued("<20261207.1@mg.example.com>"))
        .mount(&mock)
        .await;
    let app = mailgun_app(&mock).await;
    let id = queue(
        &app,
        json!({
            "to": [{"email": "alex@example.com", "name": "Alex"}],
            "cc": [{"email": "charlie@example.com"}],
            "from": {"email": "orders@example.com", "name": "Example Orders"},
            "subject": "Your order",
            "text": "Hello Alex",
            "categories": ["orders", "cake", "sweet", "fourth"],
            "metadata": {"order_id": "42"}
        }),
    )
    .await;

    let record = app.wait_for_status(&id, "sent").await;
    assert_eq!(record["provider"], "mailgun");
    assert_eq!(record["provider_message_id"], "<20261207.1@mg.example.com>");
    let requests = mock.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let fields = multipart_fields(&requests[0]);
    let value = |name: &str| -> Vec<&str> {
        (fields.iter())
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(value("to"), ["alex@example.com,charlie@example.com"]);
    assert_eq!(
        value("o:tag"),
        ["orders", "cake", "sweet"],
        "three tags at most"
    );
    assert_eq!(value("o:tracking"), ["no"]);
    assert_eq!(value("v:mailroom_id"), [id.as_str()]);
    assert_eq!(value("v:order_id"), ["42"]);
    let mime = value("message")[0];
    assert!(mime.contains("Subject: Your order"), "{mime}");
    assert!(
        mime.contains("From: \"Example Orders\" <orders@example.com>")
            || mime.contains("From: Example Orders <orders@example.com>"),
        "{mime}"
    );
    assert!(
        mime.contains(&format!("Message-ID: <{id}@example.com>")),
        "{mime}"
    );
    app.stop().await;
}

/// Plays answers in order; the last repeats.
struct Sequence(Vec<ResponseTemplate>, std::sync::atomic::AtomicUsize);

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0[n.min(self.0.len() - 1)].clone()
    }
}

#[tokio::test]
async fn a_wrong_key_is_permanent_and_a_429_is_retried_and_sent_once() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string("Forbidden"))
        .mount(&mock)
        .await;
    let app = mailgun_app(&mock).await;
    let id = queue(&app, common::app::simple_email()).await;
    let record = app.wait_for_status(&id, "dead").await;
    let error = record["last_error"].as_str().unwrap();
    assert!(
        error.contains("401") && error.contains("Forbidden"),
        "{error}"
    );
    assert!(!error.contains(KEY), "the key never shows: {error}");
    assert_eq!(record["attempts"], 1, "{record}");
    app.stop().await;

    let mock = MockServer::start().await;
    let answers = Sequence(
        vec![
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"message": "Too many requests"})),
            queued("<m-2@mg.example.com>"),
        ],
        Default::default(),
    );
    Mock::given(method("POST"))
        .respond_with(answers)
        .mount(&mock)
        .await;
    let app = mailgun_app(&mock).await;
    let id = queue(&app, common::app::simple_email()).await;
    let record = app.wait_for_status(&id, "sent").await;
    assert_eq!(record["attempts"], 2, "{record}");
    assert_eq!(mock.received_requests().await.unwrap().len(), 2);
    app.stop().await;
}

/// What one recipient of a batch gets: the fields with their `%recipient.NAME%` filled.
type Delivered = BTreeMap<String, Vec<(String, String)>>;

/// A Mailgun batch endpoint: fills each recipient's copy as Mailgun documents and keeps it.
struct Substitutes(Arc<Mutex<Delivered>>);

impl Respond for Substitutes {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
        let variables: Value = fields
            .iter()
            .find(|(n, _)| n == "recipient-variables")
            .map(|(_, v)| serde_json::from_str(v).unwrap())
            .expect("recipient-variables: without them every recipient sees all the others");
        let mut delivered = self.0.lock().unwrap();
        for (_, to) in fields.iter().filter(|(n, _)| n == "to") {
            let address = to.rsplit('<').next().unwrap().trim_end_matches('>');
            let mine = variables[address]
                .as_object()
                .expect("variables of each recipient");
            let fill = |value: &str| {
                let mut filled = value.to_owned();
                for (name, v) in mine {
                    filled = filled.replace(&format!("%recipient.{name}%"), v.as_str().unwrap());
                }
                filled
            };
            let copy = (fields.iter())
                .filter(|(n, _)| n != "to" && n != "recipient-variables")
                .map(|(n, v)| (n.clone(), fill(v)))
                .chain(std::iter::once(("to".to_owned(), to.clone())))
                .collect();
            assert!(
                delivered.insert(address.to_owned(), copy).is_none(),
                "{address} twice"
            );
        }
        queued("<batch@mg.example.com>")
    }
}

#[tokio::test]
async fn a_campaign_goes_out_in_batches_each_recipient_filled_by_recipient_variables() {
    let mock = MockServer::start().await;
    let delivered = Arc::new(Mutex::new(Delivered::new()));
    Mock::given(method("POST"))
        .and(path(format!("/v3/{DOMAIN}/messages")))
        .and(header("authorization", basic().as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(Substitutes(delivered.clone()))
        .mount(&mock)
        .await;
    let app = mailgun_app(&mock).await;
    let mut csv = String::from("email,name\n");
    for i in 0..5 {
        csv.push_str(&format!("p{i}@example.com,Person {i} & Co\n"));
    }
    let spec = json!({"name": "News", "subject": "Hi {{name}}", "text": "Bye: {{unsubscribe_url}}", "categories": ["news"]});
    let done = app.run_campaign(&csv, spec).await;
    let id = done["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (&done["sent"], &done["failed"]),
        (&json!(5), &json!(0)),
        "{done}"
    );

    let delivered = delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 5, "each recipient once");
    let mut unsubscribe_links = std::collections::BTreeSet::new();
    for (n, (address, copy)) in delivered.iter().enumerate() {
        let field = |name: &str| -> Vec<&str> {
            (copy.iter())
                .filter(|(f, _)| f == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(address, &format!("p{n}@example.com"));
        assert_eq!(field("subject"), [format!("Hi Person {n} & Co").as_str()]);
        assert_eq!(field("o:tag"), ["news"]);
        assert_eq!(field("v:mailroom_campaign"), [id.as_str()]);
        assert_eq!(
            field("h:List-Unsubscribe-Post"),
            ["List-Unsubscribe=One-Click"]
        );
        let link = field("h:List-Unsubscribe")[0];
        assert!(link.contains("/u/"), "{link}");
        unsubscribe_links.insert(link.to_owned());
        let text = field("text")[0];
        assert!(text.starts_with("Bye: ") && text.contains("/u/"), "{text}");
        assert!(
            copy.iter().all(|(_, v)| !v.contains("%recipient.")),
            "every substitution filled: {copy:?}"
        );
    }
    assert_eq!(unsubscribe_links.len(), 5, "each recipient's own link");
    app.stop().await;
}
