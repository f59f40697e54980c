//! Double opt-in end to end through the outbox: the public subscribe form (and the API) →
//! `subscription_confirm` email → `/subscribe/confirm` page (spends nothing) → POST confirms
//! once → subscription confirmed, address verified, `subscription.confirmed` on the stream.

mod common;

use std::time::Duration;

use common::{
    app::{TestApp, eml_files, strict_mime},
    eventually,
};
use serde_json::{Value, json};

async fn app(configure: impl FnOnce(&mut mailroom::config::Settings)) -> TestApp {
    let mut app = TestApp::spawn(configure).await;
    app.settings.public_url = app.address.clone();
    app.start_worker();
    app
}

async fn list(app: &TestApp, optin: &str, visibility: &str) -> u64 {
    let (status, list) = app
        .call(
            "POST",
            "/v1/lists",
            &json!({"name": "Weekly digest", "optin": optin, "visibility": visibility}),
        )
        .await;
    assert_eq!(status, 201);
    list["id"].as_u64().unwrap()
}

/// The confirmation link in the newest email once there are `count`, and that email's subject.
async fn confirmation(app: &TestApp, count: usize) -> (String, String) {
    let newest = common::app::received_links(app, count, "/subscribe/confirm?token=")
        .await
        .pop()
        .unwrap();
    (newest.link, newest.subject)
}

async fn state_of(app: &TestApp, email: &str, list: u64) -> String {
    let (_, view) = app.get_json(&format!("/v1/subscribers/{email}")).await;
    view["subscriptions"]
        .as_array()
        .map(|subs| {
            subs.iter()
                .find(|s| s["list"] == list)
                .map(|s| s["status"].as_str().unwrap().to_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// The stream's entries, each as its flat field/value list.
async fn stream_entries(app: &TestApp, stream: &str) -> Vec<Vec<String>> {
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut app.redis.conn())
        .await
        .unwrap();
    entries.into_iter().map(|(_, fields)| fields).collect()
}

fn form(app: &TestApp, body: String) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/subscribe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept-language", "de")
        .body(body)
}

#[tokio::test]
async fn the_subscribe_form_sends_a_link_that_confirms_the_subscription_once() {
    let app = app(|_| {}).await;
    let list = list(&app, "double", "public").await;

    let page = reqwest::get(app.url(&format!("/subscribe/{list}")))
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("name=\"email\"") && html.contains("Weekly digest"),
        "{html}"
    );

    let response = form(
        &app,
        format!("list={list}&email=Ada%40Example.com&name=Ada"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.text().await.unwrap().contains("Posteingang"),
        "answered in German"
    );
    assert_eq!(state_of(&app, "ada@example.com", list).await, "unconfirmed");

    let (link, subject) = confirmation(&app, 1).await;
    assert!(subject.contains("Weekly digest"), "{subject}");
    let path = link
        .split_once(&app.address)
        .map_or(link.clone(), |(_, p)| p.to_owned());
    // Opening the page spends nothing.
    let page = reqwest::get(app.url(&path)).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("action=\"/subscribe/confirm\"")
    );
    assert_eq!(state_of(&app, "ada@example.com", list).await, "unconfirmed");

    let token = path.split("token=").nth(1).unwrap().to_owned();
    let confirm = || {
        app.client
            .post(app.url("/subscribe/confirm"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    let done = confirm().await.unwrap();
    assert_eq!(done.status().as_u16(), 200);
    assert_eq!(state_of(&app, "ada@example.com", list).await, "confirmed");
    let (_, address) = app.get_json("/v1/addresses/ada@example.com").await;
    assert_eq!(address["verified"], true);
    let (_, counts) = app.get_json(&format!("/v1/lists/{list}")).await;
    assert_eq!(counts["counts"]["confirmed"], 1);

    // The event is on the stream, after email.verified.
    let stream = mailroom_jobs::Keys::new(&app.redis.prefix).verify_events();
    let entries = stream_entries(&app, &stream).await;
    let field = |entry: &Vec<String>, name: &str| {
        entry
            .chunks(2)
            .find(|kv| kv[0] == name)
            .map(|kv| kv[1].clone())
    };
    let types: Vec<String> = entries.iter().filter_map(|e| field(e, "type")).collect();
    assert_eq!(types, vec!["email.verified", "subscription.confirmed"]);
    assert_eq!(field(&entries[1], "list"), Some(list.to_string()));

    // Used once: a second POST does not confirm again.
    let again = confirm().await.unwrap();
    assert_eq!(again.status().as_u16(), 200, "a used link says it was used");
    assert_eq!(stream_entries(&app, &stream).await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn the_public_form_takes_only_public_lists_and_stops_bots_and_floods() {
    let app = app(|s| s.subscribe_rate_per_address = 2).await;
    let private = list(&app, "double", "private").await;
    let single = list(&app, "single", "public").await;
    assert_eq!(
        reqwest::get(app.url(&format!("/subscribe/{private}")))
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let refused = form(&app, format!("list={private}&email=a%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 404);

    // A filled honeypot looks like success and stores nothing.
    let bot = form(
        &app,
        format!("list={single}&email=bot%40example.com&website=http%3A%2F%2Fspam"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(bot.status().as_u16(), 200);
    assert_eq!(app.get_json("/v1/subscribers/bot@example.com").await.0, 404);

    // Single opt-in subscribes at once (JSON works too); the third try within the hour is 429.
    let json_request = |email: &str| {
        app.client
            .post(app.url("/subscribe"))
            .json(&json!({"list": single, "email": email}))
            .send()
    };
    assert_eq!(
        json_request("b@example.com")
            .await
            .unwrap()
            .status()
            .as_u16(),
        202
    );
    assert_eq!(state_of(&app, "b@example.com", single).await, "confirmed");
    assert_eq!(
        json_request("b@example.com")
            .await
            .unwrap()
            .status()
            .as_u16(),
        202
    );
    let flood = json_request("b@example.com").await.unwrap();
    assert_eq!(flood.status().as_u16(), 429);
    assert!(flood.headers().contains_key("retry-after"));
    let bad: Value = json_request("not-an-address")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad["error"]["field"], "email");
    app.stop().await;
}

#[tokio::test]
async fn the_api_subscribing_to_a_double_opt_in_list_emails_the_link() {
    let app = app(|_| {}).await;
    let list = list(&app, "double", "private").await;
    let (status, _) = app
        .call(
            "POST",
            "/v1/subscribers",
            &json!({"email": "cy@example.com", "locale": "ja", "lists": [list]}),
        )
        .await;
    assert_eq!(status, 201);
    let (link, subject) = confirmation(&app, 1).await;
    assert!(
        subject.contains("Weekly digest") && subject.contains("購読"),
        "{subject}"
    );
    assert!(link.contains("/subscribe/confirm?token="));
    assert_eq!(state_of(&app, "cy@example.com", list).await, "unconfirmed");
    app.stop().await;
}

#[tokio::test]
async fn an_import_with_send_optin_emails_each_new_subscriber_the_link() {
    let app = app(|_| {}).await;
    let list = list(&app, "double", "private").await;
    let response = app
        .client
        .post(app.url(&format!("/v1/imports?list={list}&send_optin=true")))
        .bearer_auth(common::app::API_KEY)
        .header("content-type", "text/csv")
        .body("email,locale\nx1@example.com,fr\nx2@example.com,\nx3@example.com,es\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let files = eventually(
        Duration::from_secs(30),
        "three confirmation emails",
        || async {
            let files = eml_files(app.outbox.path());
            (files.len() >= 3).then_some(files)
        },
    )
    .await;
    let mut subjects = Vec::new();
    for file in files {
        subjects.push(
            strict_mime(&file).await["subject"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    subjects.sort();
    assert!(
        subjects.iter().any(|s| s.starts_with("Confirmez")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.starts_with("Confirma tu")),
        "{subjects:?}"
    );
    assert_eq!(state_of(&app, "x2@example.com", list).await, "unconfirmed");
    let refused = app
        .client
        .post(app.url(&format!(
            "/v1/imports?list={list}&send_optin=true&status=confirmed"
        )))
        .bearer_auth(common::app::API_KEY)
        .header("content-type", "text/csv")
        .body("email\nx4@example.com\n")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    app.stop().await;
}

#[tokio::test]
async fn a_person_subscribes_through_the_hosted_form_in_a_real_browser_and_confirms() {
    let app = app(|_| {}).await;
    let list = list(&app, "double", "public").await;
    let browser = common::browser::Browser::start(390, 844).await;
    browser.open(&app.url(&format!("/subscribe/{list}"))).await;
    browser
        .execute(
            "document.getElementById('email').value = 'browser@example.com'; \
             document.getElementById('name').value = 'Bea'; return true;",
        )
        .await;
    browser.click("button.action").await;
    eventually(
        Duration::from_secs(10),
        "the check-your-inbox page",
        || async {
            browser
                .source()
                .await
                .contains("Check your inbox")
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        state_of(&app, "browser@example.com", list).await,
        "unconfirmed"
    );

    let (link, _) = confirmation(&app, 1).await;
    browser.open(&app.url(&link)).await;
    browser.click("button.action").await;
    eventually(Duration::from_secs(10), "the subscribed page", || async {
        browser
            .source()
            .await
            .contains("You are subscribed")
            .then_some(())
    })
    .await;
    assert_eq!(
        state_of(&app, "browser@example.com", list).await,
        "confirmed"
    );
    // No horizontal scrollbar on a phone.
    let fits = browser
        .execute("return document.documentElement.scrollWidth <= window.innerWidth;")
        .await;
    assert_eq!(fits, serde_json::Value::Bool(true));
    browser.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn a_confirmed_subscription_is_delivered_to_the_callback_signed() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let hook = format!("{}/hooks/mailroom", receiver.uri());
    let app = app(move |s| {
        s.verify_callback_url = Some(hook);
        s.callback_secret = Some(secrecy::SecretString::from("whsec-optin-secret"));
    })
    .await;
    let list = list(&app, "double", "public").await;
    let response = form(&app, format!("list={list}&email=hook%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (link, _) = confirmation(&app, 1).await;
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let done = app
        .client
        .post(app.url("/subscribe/confirm"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status().as_u16(), 200);
    let events = eventually(Duration::from_secs(30), "both callbacks", || async {
        let requests = receiver.received_requests().await.unwrap();
        let events: Vec<Value> = requests
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        (events.len() >= 2).then_some((events, requests))
    })
    .await;
    let (events, requests) = events;
    let confirmed = events
        .iter()
        .position(|e| e["type"] == "subscription.confirmed")
        .expect("a subscription.confirmed callback");
    assert_eq!(events[confirmed]["email"], "hook@example.com");
    assert_eq!(events[confirmed]["list"], list);
    assert!(
        requests[confirmed].headers["x-mailroom-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1="),
        "signed"
    );
    assert!(events.iter().any(|e| e["type"] == "email.verified"));
    app.stop().await;
}
