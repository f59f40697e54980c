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
    app::{TestApp, eml_files},
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
    app.import_confirmed(list, &csv).await;
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

/// A campaign of `name` to `list` with a raw subject and a body that is only the unsubscribe
/// link, at `rate_limit` recipients/s when given.
fn plain(name: &str, list: u64, rate_limit: Option<u32>) -> Value {
    json!({"name": name, "lists": [list], "subject": "Hi", "text": "x {{unsubscribe_url}}", "rate_limit": rate_limit})
}

/// Waits until campaign `id` has sent to at least `count` people.
async fn until_sent(app: &TestApp, id: &str, count: u64) {
    eventually(Duration::from_secs(30), "the first batches", || async {
        (sent_so_far(app, id).await >= count).then_some(())
    })
    .await;
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
    app.schedule_campaign(&id).await;
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
        let text = common::app::part_text(&body, "text/plain");
        assert!(text.contains(&format!("plan{}", n % 3)), "{text}");
        let token = unsubscribe
            .trim_start_matches("<https://mail.example.com/u/")
            .split('>')
            .next()
            .unwrap();
        assert!(text.contains(token), "the body's link is the header's");
        let lang = common::app::part_text(&body, "text/html").contains("lang=\"fr\"");
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
    // A list that does not exist is not found, and the field says which.
    let unknown = json!({"name": "x", "lists": [999], "subject": "s", "text": "t"});
    let (status, answer) = app.call("POST", "/v1/campaigns", &unknown).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (404, Some("lists[0]")),
        "{answer}"
    );
    for (body, field) in cases {
        let (status, answer) = app.call("POST", "/v1/campaigns", &body).await;
        assert_eq!(status, 422, "{body}: {answer}");
        if body["text"] == "no way out" || body["template"]["name"] == "welcome" {
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("unsubscribe"),
                "{answer}"
            );
        }
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
        &json!({"name": "x", "lists": [list], "subject": "Hi {{ name }}", "html": "<p>{{email}} <a href=\"{{unsubscribe_url}}\">leave</a></p>", "send_at": "2099-01-01T00:00:00Z"}),
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
    assert_eq!(status, 409, "a cancelled campaign is not scheduled again");
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
    /// How long a 202 takes.
    delay: Duration,
    /// When each request arrived.
    times: Arc<Mutex<Vec<std::time::Instant>>>,
}

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.times.lock().unwrap().push(std::time::Instant::now());
        let mut script = self.script.lock().unwrap();
        if !script.is_empty() {
            return script.remove(0);
        }
        self.bodies
            .lock()
            .unwrap()
            .push(serde_json::from_slice(&request.body).unwrap());
        ResponseTemplate::new(202)
            .insert_header("x-message-id", "sg-1")
            .set_delay(self.delay)
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
    // The list maps to a SendGrid unsubscribe group: every request is sent under it.
    app.settings.sendgrid_groups = format!("{list}=77");
    app.start_worker();
    app.schedule_campaign(&id).await;
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
        assert_eq!(body["asm"], json!({"group_id": 77}));
        // A campaign is tracked by default, and says so on every request.
        assert_eq!(
            body["tracking_settings"],
            json!({"click_tracking": {"enable": true, "enable_text": false},
                   "open_tracking": {"enable": true}})
        );
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
    app.schedule_campaign(&id).await;
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

/// A recorder whose 202s take `delay` to arrive, noting when each request came.
fn slow_recorder(delay: Duration) -> (Recorder, Arc<Mutex<Vec<std::time::Instant>>>) {
    let times = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        delay,
        times: times.clone(),
        ..Recorder::default()
    };
    (recorder, times)
}

/// A campaign under way through SendGrid's stand-in (answering after `delay`): `people`
/// subscribers on a new list, a worker with `concurrency` campaign jobs at once, the campaign
/// `campaign(list)` scheduled and its first `sent` recipients handed over.
struct Running {
    app: TestApp,
    recorder: Recorder,
    times: Arc<Mutex<Vec<std::time::Instant>>>,
    list: u64,
    id: String,
    _sendgrid: MockServer,
}

async fn running(
    delay: Duration,
    concurrency: usize,
    people_count: usize,
    campaign: impl FnOnce(u64) -> Value,
    sent: u64,
) -> Running {
    let (recorder, times) = slow_recorder(delay);
    let sendgrid = sendgrid(&recorder).await;
    let mut app = app_with(|s| {
        through(&sendgrid)(s);
        s.campaign_concurrency = concurrency;
    })
    .await;
    let list = new_list(&app, "Running", None).await;
    import(&app, list, people(people_count, "example.com")).await;
    let id = create(&app, &campaign(list)).await;
    app.start_worker();
    app.schedule_campaign(&id).await;
    until_sent(&app, &id, sent).await;
    Running {
        app,
        recorder,
        times,
        list,
        id,
        _sendgrid: sendgrid,
    }
}

async fn sent_so_far(app: &TestApp, id: &str) -> u64 {
    campaign(app, id).await["sent"].as_u64().unwrap()
}

#[tokio::test]
async fn pause_and_resume_send_to_nobody_twice_and_skip_nobody() {
    let Running {
        app,
        recorder,
        id,
        _sendgrid, ..
    } = running(
        Duration::from_millis(150),
        1,
        6000,
        |list| json!({"name": "p", "lists": [list], "subject": "Hi {{name}}", "text": "x {{unsubscribe_url}}"}),
        1,
    )
    .await;
    let (status, paused) = app
        .call("POST", &format!("/v1/campaigns/{id}/pause"), &Value::Null)
        .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["state"], "paused");
    // Whatever was being handed over lands; then nothing moves.
    let settled = eventually(Duration::from_secs(10), "the pause to settle", || async {
        let before = recorder.bodies.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(400)).await;
        (recorder.bodies.lock().unwrap().len() == before).then_some(before)
    })
    .await;
    let during = campaign(&app, &id).await;
    assert!(during["sent"].as_u64().unwrap() < 6000, "{during}");
    assert_eq!(
        during["sent"].as_u64().unwrap() as usize,
        recipients(&recorder.bodies.lock().unwrap()).len()
    );
    let (status, resumed) = app
        .call("POST", &format!("/v1/campaigns/{id}/resume"), &Value::Null)
        .await;
    assert_eq!(status, 200, "{resumed}");
    let done = wait_state(&app, &id, "finished").await;
    assert!(recorder.bodies.lock().unwrap().len() > settled);
    assert_eq!(done["sent"], 6000, "{done}");
    assert_eq!(done["possibly_duplicated"], 0);
    let seen = recipients(&recorder.bodies.lock().unwrap());
    assert_eq!(seen.len(), 6000);
    assert!(seen.values().all(|&n| n == 1), "someone was sent to twice");
    app.stop().await;
}

#[tokio::test]
async fn a_cancelled_campaign_stops_handing_over_within_a_second() {
    let Running {
        app,
        times,
        id,
        _sendgrid,
        ..
    } = running(
        Duration::from_millis(100),
        2,
        20_000,
        |list| plain("c", list, Some(2000)),
        1,
    )
    .await;
    let (status, cancelled) = app
        .call("POST", &format!("/v1/campaigns/{id}/cancel"), &Value::Null)
        .await;
    let at = std::time::Instant::now();
    assert_eq!(status, 200, "{cancelled}");
    // Give stragglers every chance to show up, then look at when requests came.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late = times
        .lock()
        .unwrap()
        .iter()
        .filter(|t| **t > at + Duration::from_secs(1))
        .count();
    assert_eq!(late, 0, "requests more than a second after the cancel");
    let after = campaign(&app, &id).await;
    assert_eq!(after["state"], "cancelled");
    assert!(after["sent"].as_u64().unwrap() < 20_000, "{after}");
    app.stop().await;
}

#[tokio::test]
async fn an_unsubscribe_during_the_run_is_honoured_by_batches_not_yet_handed_over() {
    // 1,000 a second: the last batch goes out some three seconds after the first.
    let Running {
        app,
        recorder,
        list,
        id,
        _sendgrid,
        ..
    } = running(
        Duration::ZERO,
        1,
        4000,
        |list| plain("u", list, Some(1000)),
        1,
    )
    .await;
    // Whoever is in the last batch: not yet sent to.
    let bodies = recorder.bodies.lock().unwrap().clone();
    let early = recipients(&bodies);
    let leaver = (0..4000)
        .rev()
        .map(|i| format!("p{i}@example.com"))
        .find(|e| !early.contains_key(e))
        .unwrap();
    let (status, body) = app
        .call(
            "PUT",
            &format!("/v1/subscribers/{leaver}/lists/{list}"),
            &json!({"status": "unsubscribed"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let done = wait_state(&app, &id, "finished").await;
    let seen = recipients(&recorder.bodies.lock().unwrap());
    assert!(
        !seen.contains_key(&leaver),
        "{leaver} was sent to after unsubscribing"
    );
    assert_eq!(done["sent"], 3999, "{done}");
    assert_eq!(done["reasons"]["skipped:unsubscribed"], 1, "{done}");
    app.stop().await;
}

#[tokio::test]
async fn a_domain_rate_holds_for_that_domain_while_others_go_on() {
    let mut app = app_with(|s| s.domain_rates = "slow.example=400".to_owned()).await;
    let list = new_list(&app, "Throttled", None).await;
    let mut csv = people(1200, "slow.example");
    csv.push_str(&people(300, "fast.example").replacen("email,name,locale,plan\n", "", 1));
    import(&app, list, csv).await;
    let id = create(&app, &plain("t", list, None)).await;
    app.start_worker();
    app.schedule_campaign(&id).await;
    let done = wait_state(&app, &id, "finished").await;
    assert_eq!(done["sent"], 1500, "{done}");
    let mut slow = Vec::new();
    let mut fast = Vec::new();
    for file in eml_files(app.outbox.path()) {
        let raw = std::fs::read_to_string(&file).unwrap();
        let when = std::fs::metadata(&file).unwrap().modified().unwrap();
        if raw.contains("@slow.example") {
            slow.push(when);
        } else {
            fast.push(when);
        }
    }
    slow.sort();
    fast.sort();
    assert_eq!((slow.len(), fast.len()), (1200, 300));
    // The steady rate, past the first burst: from the 400th to the last send. A modest rate,
    // so that even a slow machine writes the files faster than the throttle lets them go.
    let span = slow[1199].duration_since(slow[399]).unwrap().as_secs_f64();
    let rate = 800.0 / span;
    assert!(
        (360.0..=440.0).contains(&rate),
        "slow.example went at {rate:.0}/s, not 400/s"
    );
    assert!(
        fast[299] < slow[599],
        "the unthrottled domain waited behind the throttled one"
    );
    app.stop().await;
}

/// `mailroom work` as a process of its own, sending campaigns to `sendgrid`.
fn worker_process(app: &TestApp, sendgrid: &MockServer) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["work", "--concurrency", "2"])
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &app.redis.prefix)
        .env("MAILROOM_LEASE_SECS", "2")
        .env("MAILROOM_PROVIDER", "sendgrid")
        .env("SENDGRID_API_URL", sendgrid.uri())
        .env("SENDGRID_API_KEY", "SG.test-key")
        .env("MAILROOM_LINK_KEYS", KEYS)
        .env("MAILROOM_PUBLIC_URL", "https://mail.example.com")
        .env("MAILROOM_CAMPAIGN_CONCURRENCY", "2")
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start mailroom work")
}

#[tokio::test]
async fn workers_killed_at_random_points_leave_nobody_unsent_and_only_counted_repeats() {
    let (recorder, _) = slow_recorder(Duration::from_millis(300));
    let mock = sendgrid(&recorder).await;
    let app = app_with(through(&mock)).await;
    let list = new_list(&app, "Twenty thousand", None).await;
    import(&app, list, people(20_000, "example.com")).await;
    let id = create(
        &app,
        &json!({"name": "k", "lists": [list], "subject": "Hi {{name}}", "text": "x {{unsubscribe_url}}", "rate_limit": 4000}),
    )
    .await;
    app.schedule_campaign(&id).await;
    let mut workers: Vec<_> = (0..3).map(|_| worker_process(&app, &mock)).collect();
    let mut kills = 0;
    // Two rounds: wait for a random share of the audience, SIGKILL a random worker (the
    // second round two of them) and start replacements.
    for (round, share) in [
        (1, fastrand::u64(1500..6000)),
        (2, fastrand::u64(8000..13_000)),
    ] {
        eventually(Duration::from_secs(60), "progress", || async {
            (sent_so_far(&app, &id).await >= share).then_some(())
        })
        .await;
        // A random moment inside a hand-over.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..300))).await;
        for _ in 0..round {
            let victim = fastrand::usize(..workers.len());
            let mut child = workers.remove(victim);
            child.start_kill().unwrap();
            child.wait().await.unwrap();
            kills += 1;
            workers.push(worker_process(&app, &mock));
        }
    }
    let done = wait_state(&app, &id, "finished").await;
    for mut worker in workers {
        let _ = worker.start_kill();
        let _ = worker.wait().await;
    }
    let seen = recipients(&recorder.bodies.lock().unwrap());
    assert_eq!(seen.len(), 20_000, "someone was never sent to");
    assert_eq!(done["sent"], 20_000, "{done}");
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    let reported = done["possibly_duplicated"].as_u64().unwrap() as usize;
    assert!(
        repeats <= reported,
        "{repeats} repeats but {reported} reported as possibly duplicated"
    );
    // At most what the killed workers had in hand: two batch jobs of 1,000 each.
    assert!(reported <= kills * 2 * 1000, "{reported} for {kills} kills");
}

/// SendGrid events about campaign `id`'s mail to `emails`, as the Event Webhook posts them
/// (custom args merged in as top-level keys).
fn events(id: &str, kind: &str, emails: &[String]) -> String {
    let now = chrono::Utc::now().timestamp();
    let events: Vec<Value> = emails
        .iter()
        .enumerate()
        .map(|(i, email)| {
            json!({
                "email": email, "event": kind, "timestamp": now,
                "sg_event_id": format!("{kind}-{i}-{}", uuid::Uuid::now_v7()),
                "sg_message_id": format!("sg-1.{email}"),
                "mailroom_campaign": id, "mailroom_list": "1", "mailroom_subscriber": "64",
            })
        })
        .collect();
    serde_json::to_string(&events).unwrap()
}

async fn apply(app: &TestApp, body: &str) {
    let store = mailroom::app::events(
        &app.redis.conn(),
        &app.redis.prefix,
        (3600, 100),
        Default::default(),
    );
    let batch = mailroom::events::parse_batch(body).unwrap();
    store
        .apply(&batch.events, chrono::Utc::now())
        .await
        .unwrap();
}

#[tokio::test]
async fn engagement_is_counted_per_campaign_and_complaints_past_the_guard_pause_it() {
    let Running {
        app,
        recorder,
        id,
        _sendgrid,
        ..
    } = running(
        Duration::from_millis(100),
        1,
        6000,
        |list| plain("g", list, Some(1000)),
        1000,
    )
    .await;
    // Events about people already sent to.
    let delivered: Vec<String> = recipients(&recorder.bodies.lock().unwrap())
        .into_keys()
        .take(1000)
        .collect();
    assert_eq!(delivered.len(), 1000);
    apply(&app, &events(&id, "delivered", &delivered)).await;
    // Two opens by one person and one by another: two unique opens.
    let openers = [
        delivered[0].clone(),
        delivered[0].clone(),
        delivered[1].clone(),
    ];
    apply(&app, &events(&id, "open", &openers)).await;
    // Three complaints in a thousand: at the line, not past it.
    apply(&app, &events(&id, "spamreport", &delivered[..3])).await;
    let running = campaign(&app, &id).await;
    assert_eq!(running["engagement"]["delivered"], 1000, "{running}");
    assert_eq!(running["engagement"]["opens"], 2, "{running}");
    assert_eq!(running["engagement"]["complaints"], 3, "{running}");
    assert_ne!(running["state"], "paused", "{running}");
    apply(&app, &events(&id, "spamreport", &delivered[3..4])).await;
    let paused = campaign(&app, &id).await;
    assert_eq!(paused["state"], "paused", "{paused}");
    assert!(
        paused["paused_reason"]
            .as_str()
            .unwrap()
            .contains("complaint rate 0.40%"),
        "{paused}"
    );
    // The operator looks, decides, resumes: everyone else is sent to, once.
    app.call("POST", &format!("/v1/campaigns/{id}/resume"), &Value::Null)
        .await;
    let done = wait_state(&app, &id, "finished").await;
    assert_eq!(done["sent"], 6000, "{done}");
    let seen = recipients(&recorder.bodies.lock().unwrap());
    assert!(seen.len() == 6000 && seen.values().all(|&n| n == 1));
    app.stop().await;
}

async fn mailroom_cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(args)
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &app.redis.prefix)
        .env("RUST_LOG", "error")
        .output()
        .await
        .expect("run mailroom")
}

#[tokio::test]
async fn the_command_line_lists_watches_and_changes_campaigns() {
    let mut app = app_with(|_| {}).await;
    let list = new_list(&app, "Command line", None).await;
    import(&app, list, people(5, "example.com")).await;
    let id = create(
        &app,
        &json!({"name": "From the shell", "lists": [list], "subject": "Hi", "text": "x {{unsubscribe_url}}"}),
    )
    .await;
    app.start_worker();
    app.schedule_campaign(&id).await;
    let watched = mailroom_cli(&app, &["campaign", "watch", &id]).await;
    assert!(watched.status.success(), "{watched:?}");
    let out = String::from_utf8_lossy(&watched.stdout);
    assert!(
        out.contains("finished") && out.contains("sent 5/5"),
        "{out}"
    );
    let listed = mailroom_cli(&app, &["campaign", "list"]).await;
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(out.contains(&id) && out.contains("From the shell"), "{out}");
    let shown = mailroom_cli(&app, &["campaign", "show", &id]).await;
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["sent"], 5);
    let refused = mailroom_cli(&app, &["campaign", "pause", &id]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is finished and cannot pause"),
        "{refused:?}"
    );
    let draft = create(
        &app,
        &json!({"name": "Never", "lists": [list], "subject": "Hi", "text": "x {{unsubscribe_url}}"}),
    )
    .await;
    let cancelled = mailroom_cli(&app, &["campaign", "cancel", &draft]).await;
    assert!(cancelled.status.success(), "{cancelled:?}");
    assert_eq!(campaign(&app, &draft).await["state"], "cancelled");
    let missing = mailroom_cli(
        &app,
        &["campaign", "show", &uuid::Uuid::now_v7().to_string()],
    )
    .await;
    assert!(!missing.status.success());
    app.stop().await;
}

#[tokio::test]
async fn without_link_keys_a_campaign_is_refused_rather_than_sent_without_a_way_out() {
    let app = TestApp::spawn(|_| {}).await;
    let list = new_list(&app, "No keys", None).await;
    let (status, answer) = app
        .call(
            "POST",
            "/v1/campaigns",
            &json!({"name": "x", "lists": [list], "subject": "s", "text": "{{unsubscribe_url}}"}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MAILROOM_LINK_KEYS"),
        "{answer}"
    );
}

#[tokio::test]
async fn through_smtp_a_domain_never_has_more_messages_in_flight_than_its_connection_limit() {
    let sink = common::app::SmtpSink::start().await;
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let mut app = app_with(move |s| {
        s.provider = mailroom::config::ProviderKind::Smtp;
        s.smtp_url = Some(SecretString::from(url));
        s.domain_connections = "busy.example=2".to_owned();
    })
    .await;
    let list = new_list(&app, "Busy", None).await;
    import(&app, list, people(300, "busy.example")).await;
    let id = create(&app, &plain("b", list, None)).await;
    app.start_worker();
    app.schedule_campaign(&id).await;
    // The domain's slots, watched while the campaign runs.
    let busy = mailroom_jobs::ThrottleScope::Domain("busy.example".to_owned());
    let slots = mailroom_jobs::Keys::new(&app.redis.prefix).throttle_slots(&busy);
    let mut conn = app.redis.conn();
    let (mut most, mut seen_busy) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while campaign(&app, &id).await["state"] != "finished" {
        assert!(
            std::time::Instant::now() < deadline,
            "the campaign did not finish"
        );
        for _ in 0..20 {
            let in_use: u64 = redis::AsyncCommands::zcard(&mut conn, &slots)
                .await
                .unwrap();
            most = most.max(in_use);
            seen_busy += u64::from(in_use > 0);
        }
    }
    assert!(most <= 2, "{most} messages in flight to busy.example");
    assert!(seen_busy > 0, "the slots were never seen in use");
    let received = sink.received();
    assert_eq!(received.len(), 300);
    let mut to: Vec<String> = received
        .iter()
        .map(|(_, envelope)| envelope["rcpt_tos"][0].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 300, "someone got two messages");
    app.stop().await;
}

#[tokio::test]
async fn smtp_refusals_in_a_campaign_fail_those_recipients_with_the_reason_and_hard_ones_count_as_bounces()
 {
    let sink = common::app::SmtpSink::start().await;
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let mut app = app_with(move |s| {
        s.provider = mailroom::config::ProviderKind::Smtp;
        s.smtp_url = Some(SecretString::from(url));
    })
    .await;
    let list = new_list(&app, "Mixed", None).await;
    let csv = "email,name\nada@example.org,Ada\nperm-fail@example.org,Gone\npolicy-block@example.org,Picky\n";
    import(&app, list, csv.to_owned()).await;
    let id = create(&app, &plain("m", list, None)).await;
    app.start_worker();
    app.schedule_campaign(&id).await;
    let done = wait_state(&app, &id, "finished").await;
    assert_eq!(
        (&done["sent"], &done["failed"]),
        (&json!(1), &json!(2)),
        "{done}"
    );
    assert_eq!(done["reasons"]["failed:bounced 5.1.1"], 1, "{done}");
    assert_eq!(done["reasons"]["failed:blocked 5.7.1"], 1, "{done}");
    // The hard bounce counts toward the bounce guard; a block, as SendGrid's, does not.
    assert_eq!(done["engagement"]["bounces"], 1, "{done}");
    let (gone, _) = app.get_json("/v1/suppressions/perm-fail@example.org").await;
    let (picky, _) = app
        .get_json("/v1/suppressions/policy-block@example.org")
        .await;
    assert_eq!((gone, picky), (200, 404), "only the hard bounce suppresses");
    assert_eq!(sink.received().len(), 1);
    app.stop().await;
}
