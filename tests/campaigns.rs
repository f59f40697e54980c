//! Campaigns end to end against a real Redis: the API's checks, the lifecycle, the audience
//! (confirmed only, blocklisted and suppressed left out with reasons), per-recipient copy and
//! headers through the outbox, the exact SendGrid requests (personalizations, substitutions,
//! custom args), and exactly-once delivery through pause, resume, cancel and redelivered jobs.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    app::{API_KEY, TestApp, eml_files},
    eventually,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers};

const KEYS: &str = "t1:0123456789abcdef0123456789abcdef";

async fn app_with(configure: impl FnOnce(&mut mailroom::config::Settings)) -> TestApp {
    let mut app = TestApp::spawn(|s| {
        s.link_keys = Some(SecretString::from(KEYS));
        configure(s);
    })
    .await;
    app.settings.public_url = "https://mail.example.com".to_owned();
    app
}

async fn new_list(app: &TestApp, name: &str, locale: Option<&str>) -> u64 {
    let (status, list) = app
        .call(
            "POST",
            "/v1/lists",
            &json!({"name": name, "optin": "single", "visibility": "private", "default_locale": locale}),
        )
        .await;
    assert_eq!(status, 201, "{list}");
    list["id"].as_u64().unwrap()
}

/// Imports `csv` into `list` as confirmed subscribers and waits for the import.
async fn import(app: &TestApp, list: u64, csv: String) {
    let response = app
        .client
        .post(app.url(&format!("/v1/imports?list={list}&status=confirmed")))
        .bearer_auth(API_KEY)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = eventually(Duration::from_secs(60), "the import", || async {
        let (_, body) = app.get_json(&format!("/v1/imports/{id}")).await;
        (body["state"] != "running").then_some(body)
    })
    .await;
    assert_eq!(done["state"], "done", "{done}");
}

/// `n` subscribers `p0@…` to `p{n-1}@…` with names and a plan attribute; every seventh reads
/// French.
fn people(n: usize, domain: &str) -> String {
    let mut csv = String::from("email,name,locale,plan\n");
    for i in 0..n {
        let locale = if i % 7 == 0 { "fr" } else { "" };
        csv.push_str(&format!(
            "p{i}@{domain},Person {i},{locale},plan{}\n",
            i % 3
        ));
    }
    csv
}

async fn create(app: &TestApp, body: &Value) -> String {
    let (status, campaign) = app.call("POST", "/v1/campaigns", body).await;
    assert_eq!(status, 201, "{campaign}");
    assert_eq!(campaign["state"], "draft");
    campaign["id"].as_str().unwrap().to_owned()
}

async fn campaign(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get_json(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn wait_state(app: &TestApp, id: &str, state: &str) -> Value {
    eventually(
        Duration::from_secs(60),
        &format!("campaign {id} to be {state}"),
        || async {
            let body = campaign(app, id).await;
            (body["state"] == state).then_some(body)
        },
    )
    .await
}

fn newsletter(list: u64) -> Value {
    json!({
        "name": "November news",
        "lists": [list],
        "template": {"name": "newsletter", "data": {
            "title": "News for {{name}}",
            "sections": [{"heading": "Your plan", "body": "You are on {{attributes.plan}}."}]
        }},
        "categories": ["news"]
    })
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers
        .split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[tokio::test]
async fn a_campaign_reaches_each_confirmed_subscriber_once_in_their_language_with_their_own_link() {
    let mut app = app_with(|_| {}).await;
    let list = new_list(&app, "Product news", None).await;
    import(&app, list, people(20, "example.com")).await;
    // One blocklisted, one suppressed, one unsubscribed before the start: 17 remain.
    let (status, _) = app
        .call(
            "PATCH",
            "/v1/subscribers/p1@example.com",
            &json!({"status": "blocklisted"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call(
            "PUT",
            "/v1/suppressions/p2@example.com",
            &json!({"reason": "bounce"}),
        )
        .await;
    assert!(status == 200 || status == 201, "{status}");
    let (status, body) = app
        .call(
            "PUT",
            &format!("/v1/subscribers/p3@example.com/lists/{list}"),
            &json!({"status": "unsubscribed"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = create(&app, &newsletter(list)).await;
    app.start_worker();
    let (status, scheduled) = app
        .call(
            "POST",
            &format!("/v1/campaigns/{id}/schedule"),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{scheduled}");
    let done = wait_state(&app, &id, "finished").await;
    assert_eq!(done["audience"], 18, "{done}"); // blocklisted and unsubscribed are not in it
    assert_eq!(done["sent"], 17, "{done}");
    assert_eq!(done["skipped"], 1, "{done}");
    assert_eq!(done["reasons"]["skipped:suppressed"], 1, "{done}");
    assert_eq!(done["possibly_duplicated"], 0);
    let files = eml_files(app.outbox.path());
    assert_eq!(files.len(), 17);
    let mut seen = BTreeSet::new();
    for file in files {
        let raw = std::fs::read_to_string(&file).unwrap();
        let end = raw.find("\r\n\r\n").unwrap();
        let headers = raw[..end].replace("\r\n ", " ").replace("\r\n\t", " ");
        let to = header(&headers, "To").unwrap().to_owned();
        let n: usize = to
            .split("p")
            .nth(1)
            .and_then(|s| s.split('@').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{to}"));
        assert!(seen.insert(n), "p{n} mailed twice");
        assert!(![1, 2, 3].contains(&n));
        let unsubscribe = header(&headers, "List-Unsubscribe").unwrap();
        assert!(
            unsubscribe.starts_with("<https://mail.example.com/u/t1."),
            "{unsubscribe}"
        );
        assert!(
            unsubscribe.contains(&format!(".{list}.{id}.")),
            "{unsubscribe}"
        );
        assert_eq!(
            header(&headers, "List-Unsubscribe-Post"),
            Some("List-Unsubscribe=One-Click")
        );
        assert!(header(&headers, "Feedback-ID").unwrap().starts_with(&id));
        let subject = header(&headers, "Subject").unwrap();
        assert!(subject.contains(&format!("Person {n}")), "{subject}");
        let body = common::app::strict_mime(&file).await;
        let text = body["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["type"] == "text/plain")
            .unwrap()["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text.contains(&format!("plan{}", n % 3)), "{text}");
        let token = unsubscribe
            .trim_start_matches("<https://mail.example.com/u/")
            .split('>')
            .next()
            .unwrap();
        assert!(text.contains(token), "the body's link is the header's");
        let lang = body["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["type"] == "text/html")
            .unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("lang=\"fr\"");
        assert_eq!(lang, n.is_multiple_of(7), "p{n}'s language");
    }
    app.stop().await;
}

#[tokio::test]
async fn campaigns_are_checked_when_created_and_their_lifecycle_refuses_what_it_cannot_do() {
    let app = app_with(|_| {}).await;
    let list = new_list(&app, "Checks", None).await;
    let cases = [
        (
            json!({"name": "", "lists": [list], "subject": "s", "text": "t"}),
            "name",
        ),
        (
            json!({"name": "x", "lists": [], "subject": "s", "text": "t"}),
            "lists",
        ),
        (
            json!({"name": "x", "lists": [999], "subject": "s", "text": "t"}),
            "lists[0]",
        ),
        (
            json!({"name": "x", "lists": [list, list], "subject": "s", "text": "t"}),
            "lists[1]",
        ),
        (json!({"name": "x", "lists": [list]}), "template"),
        (
            json!({"name": "x", "lists": [list], "subject": "Hi {{password}}", "text": "t"}),
            "subject",
        ),
        (
            json!({"name": "x", "lists": [list], "subject": "s", "text": "t", "segment": {"field": "nope", "op": "eq", "value": 1}}),
            "segment.field",
        ),
        (
            json!({"name": "x", "lists": [list], "template": {"name": "no_such", "data": {}}}),
            "template",
        ),
        (
            json!({"name": "x", "lists": [list], "template": {"name": "newsletter", "data": {"title": "t", "sections": [{"heading": "h", "body": "b"}], "unsubscribe_link": "https://x.example/u"}}}),
            "template.data.unsubscribe_link",
        ),
        (
            json!({"name": "x", "lists": [list], "subject": "s", "text": "t", "from": {"email": "not an address"}}),
            "from",
        ),
        (
            json!({"name": "x", "lists": [list], "subject": "s", "text": "t", "rate_limit": 0}),
            "rate_limit",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.call("POST", "/v1/campaigns", &body).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(
            answer["error"]["field"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}: {answer}"
        );
    }
    let id = create(
        &app,
        &json!({"name": "x", "lists": [list], "subject": "Hi {{ name }}", "html": "<p>{{email}}</p>", "send_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    for action in ["pause", "resume"] {
        let (status, answer) = app
            .call(
                "POST",
                &format!("/v1/campaigns/{id}/{action}"),
                &Value::Null,
            )
            .await;
        assert_eq!(status, 409, "{action}: {answer}");
    }
    let (status, scheduled) = app
        .call(
            "POST",
            &format!("/v1/campaigns/{id}/schedule"),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(scheduled["state"], "scheduled");
    assert_eq!(scheduled["send_at"], "2099-01-01T00:00:00Z");
    let (status, cancelled) = app
        .call("POST", &format!("/v1/campaigns/{id}/cancel"), &Value::Null)
        .await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["state"], "cancelled");
    let (status, _) = app
        .call(
            "POST",
            &format!("/v1/campaigns/{id}/schedule"),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(app.get_json("/v1/campaigns/not-a-uuid").await.0, 404);
    let (status, page) = app.get_json("/v1/campaigns?limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(page["campaigns"][0]["id"], id.as_str());
    assert_eq!(app.get_json("/v1/campaigns?limit=0").await.0, 422);
    // Without a key, nothing.
    let response = app
        .client
        .get(app.url("/v1/campaigns"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

/// A SendGrid stand-in that records every request body and answers from a script (202 once
/// the script runs out).
#[derive(Clone, Default)]
struct Recorder {
    bodies: Arc<Mutex<Vec<Value>>>,
    script: Arc<Mutex<Vec<ResponseTemplate>>>,
}

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut script = self.script.lock().unwrap();
        if !script.is_empty() {
            return script.remove(0);
        }
        self.bodies
            .lock()
            .unwrap()
            .push(serde_json::from_slice(&request.body).unwrap());
        ResponseTemplate::new(202).insert_header("x-message-id", "sg-1")
    }
}

async fn sendgrid(recorder: &Recorder) -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v3/mail/send"))
        .and(matchers::header("authorization", "Bearer SG.test-key"))
        .respond_with(recorder.clone())
        .mount(&mock)
        .await;
    mock
}

fn through(mock: &MockServer) -> impl FnOnce(&mut mailroom::config::Settings) + use<> {
    let uri = mock.uri();
    move |s| {
        s.provider = mailroom::config::ProviderKind::Sendgrid;
        s.sendgrid_api_key = Some(SecretString::from("SG.test-key"));
        s.sendgrid_api_url = uri;
    }
}

/// Every recipient address in the recorded requests, with how often each was sent to.
fn recipients(bodies: &[Value]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for body in bodies {
        for p in body["personalizations"].as_array().unwrap() {
            *seen
                .entry(p["to"][0]["email"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    seen
}

#[tokio::test]
async fn through_sendgrid_a_request_carries_up_to_a_thousand_personalized_copies_of_one_language() {
    let recorder = Recorder::default();
    let mock = sendgrid(&recorder).await;
    let mut app = app_with(through(&mock)).await;
    let list = new_list(&app, "Weekly", Some("de")).await;
    import(&app, list, people(2500, "example.org")).await;
    let id = create(&app, &newsletter(list)).await;
    app.start_worker();
    app.call(
        "POST",
        &format!("/v1/campaigns/{id}/schedule"),
        &Value::Null,
    )
    .await;
    let done = wait_state(&app, &id, "finished").await;
    assert_eq!(done["sent"], 2500, "{done}");
    let bodies = recorder.bodies.lock().unwrap().clone();
    let seen = recipients(&bodies);
    assert_eq!(seen.len(), 2500);
    assert!(seen.values().all(|&n| n == 1), "someone got two copies");
    for body in &bodies {
        let personalizations = body["personalizations"].as_array().unwrap();
        assert!(personalizations.len() <= 1000);
        assert_eq!(body["custom_args"]["mailroom_campaign"], id.as_str());
        assert_eq!(body["categories"], json!(["news"]));
        assert_eq!(
            body["headers"]["List-Unsubscribe-Post"],
            "List-Unsubscribe=One-Click"
        );
        let html = body["content"][1]["value"].as_str().unwrap();
        let text = body["content"][0]["value"].as_str().unwrap();
        assert_eq!(body["content"][0]["type"], "text/plain");
        // One language per request: French for every seventh person, else the list's German.
        let french = html.contains("lang=\"fr\"");
        assert!(french || html.contains("lang=\"de\""), "{html}");
        for p in personalizations {
            let email = p["to"][0]["email"].as_str().unwrap();
            let n: usize = email[1..email.find('@').unwrap()].parse().unwrap();
            assert_eq!(french, n.is_multiple_of(7), "{email} in the wrong language");
            assert_eq!(p["to"][0]["name"], format!("Person {n}"));
            let subs = p["substitutions"].as_object().unwrap();
            // Each tag in the body is filled: the name (escaped in HTML), plan and link.
            for (tag, value) in subs {
                assert!(
                    html.contains(tag.as_str())
                        || text.contains(tag.as_str())
                        || body["subject"].as_str().unwrap().contains(tag.as_str()),
                    "{tag} unused"
                );
                assert!(
                    !value.as_str().unwrap().is_empty(),
                    "{tag} empty for {email}"
                );
            }
            assert!(subs.values().any(|v| v == &json!(format!("Person {n}"))));
            assert!(subs.values().any(|v| v == &json!(format!("plan{}", n % 3))));
            let unsubscribe = p["headers"]["List-Unsubscribe"].as_str().unwrap();
            let token = unsubscribe
                .trim_start_matches("<https://mail.example.com/u/")
                .trim_end_matches('>');
            assert!(
                subs.values().any(|v| v.as_str().unwrap() == token),
                "the body's link is the header's"
            );
            assert_eq!(p["custom_args"]["mailroom_list"], list.to_string());
            assert!(p["custom_args"]["mailroom_subscriber"].is_string());
        }
    }
    // 2500 people in two languages: at least 3 requests, at most 3 per batch of 1000.
    assert!((3..=9).contains(&bodies.len()), "{} requests", bodies.len());
    app.stop().await;
}

#[tokio::test]
async fn a_429_storm_slows_the_campaign_and_it_recovers_without_loss_or_repeats() {
    let recorder = Recorder::default();
    *recorder.script.lock().unwrap() = (0..4)
        .map(|_| ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .chain([ResponseTemplate::new(503)])
        .collect();
    let mock = sendgrid(&recorder).await;
    let mut app = app_with(through(&mock)).await;
    let list = new_list(&app, "Storm", None).await;
    import(&app, list, people(3000, "example.net")).await;
    let id = create(
        &app,
        &json!({"name": "storm", "lists": [list], "subject": "Hi {{name}}", "text": "Plan {{attributes.plan}}: {{unsubscribe_url}}"}),
    )
    .await;
    app.start_worker();
    let started = std::time::Instant::now();
    app.call(
        "POST",
        &format!("/v1/campaigns/{id}/schedule"),
        &Value::Null,
    )
    .await;
    let done = wait_state(&app, &id, "finished").await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the 429s' Retry-After was not honoured"
    );
    assert_eq!(done["sent"], 3000, "{done}");
    assert_eq!(
        done["possibly_duplicated"], 0,
        "refused requests are not duplicates"
    );
    let seen = recipients(&recorder.bodies.lock().unwrap());
    assert_eq!(seen.len(), 3000);
    assert!(seen.values().all(|&n| n == 1));
    app.stop().await;
}
