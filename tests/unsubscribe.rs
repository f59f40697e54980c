//! List mail and RFC 8058 unsubscribing end to end: `POST /v1/emails` with `list_id` → the
//! outbox email's `List-Unsubscribe`, `List-Unsubscribe-Post` and `List-Id` → the one-click
//! POST as a mailbox provider sends it → the preference page and its forms; tampered tokens.

mod common;

use std::time::Duration;

use common::{
    app::{API_KEY, TestApp, eml_files},
    eventually,
};
use secrecy::SecretString;
use serde_json::{Value, json};

const KEYS: &str = "t1:0123456789abcdef0123456789abcdef";

async fn app() -> TestApp {
    let mut app = TestApp::spawn(|s| s.link_keys = Some(SecretString::from(KEYS))).await;
    app.settings.public_url = app.address.clone();
    app.start_worker();
    app
}

async fn status_on(app: &TestApp, subscriber: u64, list: u64) -> String {
    let (_, view) = app.get_json(&format!("/v1/subscribers/{subscriber}")).await;
    view["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["list"] == list)
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The raw headers of the one email in the outbox.
async fn sent_headers(app: &TestApp) -> String {
    let file = eventually(Duration::from_secs(30), "the list email", || async {
        eml_files(app.outbox.path()).into_iter().next()
    })
    .await;
    let raw = std::fs::read_to_string(file).unwrap();
    let end = raw.find("\r\n\r\n").unwrap();
    // Unfold continuation lines.
    raw[..end].replace("\r\n ", " ").replace("\r\n\t", " ")
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{headers}"))
}

/// A client like a mailbox provider's: no cookies, no redirects followed.
fn provider_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn one_click(url: &str) -> reqwest::Response {
    provider_client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn list_mail_carries_a_signed_one_click_link_that_unsubscribes_once() {
    let app = app().await;
    let (list, subscriber) = app.subscribed("Product news", "ada@example.com").await;
    let response = app
        .post_email(&json!({"to": "ada@example.com", "subject": "Our news", "text": "Hello", "list_id": list}))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let headers = sent_headers(&app).await;
    let unsubscribe = header(&headers, "List-Unsubscribe");
    assert!(
        unsubscribe.starts_with(&format!("<{}/u/t1.{subscriber}.{list}..", app.address)),
        "{unsubscribe}"
    );
    assert_eq!(
        header(&headers, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    assert!(
        header(&headers, "List-Id").ends_with(&format!("<{list}.list-id.localhost.localdomain>"))
    );
    let url = unsubscribe
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();

    // The page changes nothing.
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Product news") && html.contains("lang=\"fr\""),
        "{html}"
    );
    assert_eq!(status_on(&app, subscriber, list).await, "confirmed");

    // A tampered token: 400, nothing changes.
    for bad in [
        url.replace(&format!(".{list}.."), ".999.."),
        format!("{url}x"),
        format!("{}/u/nonsense", app.address),
    ] {
        assert_eq!(one_click(&bad).await.status().as_u16(), 400, "{bad}");
    }
    assert_eq!(status_on(&app, subscriber, list).await, "confirmed");

    // The provider's POST: 200 at once, no redirect, and again changes nothing more.
    let response = one_click(&url).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().get("location").is_none());
    let answer = response.text().await.unwrap();
    assert!(answer.contains("désabonné de Product news"), "{answer}");
    assert_eq!(status_on(&app, subscriber, list).await, "unsubscribed");
    assert_eq!(one_click(&url).await.status().as_u16(), 200);
    let (_, counts) = app.get_json(&format!("/v1/lists/{list}")).await;
    assert_eq!(
        counts["counts"],
        json!({"unconfirmed": 0, "confirmed": 0, "unsubscribed": 1})
    );

    // Mail to them through the list is refused now.
    let response = app
        .post_email(
            &json!({"to": "ada@example.com", "subject": "More", "text": "Hello", "list_id": list}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 422);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["field"], "to[0].email");
    app.stop().await;
}

#[tokio::test]
async fn a_one_click_for_an_erased_subscriber_is_gone_and_writes_nothing() {
    use mailroom::{
        domain::{ListId, SubscriberId},
        lists::links::{LinkKeys, ListLink},
    };
    let app = app().await;
    let (list, subscriber) = app.subscribed("Product news", "eve@example.com").await;
    let keys = LinkKeys::parse(KEYS).unwrap();
    let token = keys.sign(&ListLink {
        subscriber: SubscriberId::try_from(subscriber).unwrap(),
        list: ListId::new(list).unwrap(),
        campaign: None,
    });
    let url = app.url(&format!("/u/{token}"));
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/v1/subscribers/{subscriber}"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let response = one_click(&url).await;
    assert_eq!(response.status().as_u16(), 410);
    // Nothing came back to life: no subscription, no count.
    let (_, view) = app.get_json(&format!("/v1/lists/{list}")).await;
    assert_eq!(
        view["counts"],
        json!({"unconfirmed": 0, "confirmed": 0, "unsubscribed": 0})
    );
    let (status, _) = app.get_json(&format!("/v1/subscribers/{subscriber}")).await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// The value of the hidden form field in the page.
fn form_token(html: &str) -> String {
    let start = html.find("name=\"form\" value=\"").unwrap() + "name=\"form\" value=\"".len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_preference_page_unsubscribes_resubscribes_and_leaves_everything() {
    let app = app().await;
    let (news, subscriber) = app.subscribed("News", "bob@example.com").await;
    let (digest, same) = app.subscribed("Digest", "bob@example.com").await;
    assert_eq!(subscriber, same);
    let keys = mailroom::lists::links::LinkKeys::parse(KEYS).unwrap();
    let token = keys.sign(&mailroom::lists::links::ListLink {
        subscriber: mailroom::domain::SubscriberId::try_from(subscriber).unwrap(),
        list: mailroom::domain::ListId::new(news).unwrap(),
        campaign: None,
    });
    let url = app.url(&format!("/u/{token}"));
    let html = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(
        html.contains("News") && html.contains("Digest"),
        "both public lists are shown"
    );
    let form = form_token(&html);
    let post = |body: String, origin: Option<&'static str>| {
        let url = url.clone();
        async move {
            let mut request = provider_client()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            request.send().await.unwrap()
        }
    };
    // Without the page's form token, or from another site: refused.
    let forged = post(
        format!("action=unsubscribe&list={digest}&form=AAAAAAAAAAAAAAAAAAAAAA"),
        None,
    )
    .await;
    assert_eq!(forged.status().as_u16(), 403);
    let cross = post(
        format!("action=unsubscribe&list={digest}&form={form}"),
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(cross.status().as_u16(), 403);
    assert_eq!(status_on(&app, subscriber, digest).await, "confirmed");

    let done = post(
        format!("action=unsubscribe&list={digest}&form={form}"),
        None,
    )
    .await;
    assert_eq!(done.status().as_u16(), 200);
    assert!(done.text().await.unwrap().contains("Digest"));
    assert_eq!(status_on(&app, subscriber, digest).await, "unsubscribed");
    assert_eq!(
        status_on(&app, subscriber, news).await,
        "confirmed",
        "one list only"
    );

    let again = post(
        format!("action=resubscribe&list={digest}&form={form}"),
        None,
    )
    .await;
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(status_on(&app, subscriber, digest).await, "confirmed");

    let all = post(format!("action=unsubscribe_all&form={form}"), None).await;
    assert_eq!(all.status().as_u16(), 200);
    assert_eq!(status_on(&app, subscriber, digest).await, "unsubscribed");
    assert_eq!(status_on(&app, subscriber, news).await, "unsubscribed");
    let (status, suppression) = app.get_json("/v1/suppressions/bob@example.com").await;
    assert_eq!(status, 200);
    assert_eq!(suppression["reason"], "unsubscribe");

    // Subscribing again lifts an unsubscribe suppression.
    post(format!("action=resubscribe&list={news}&form={form}"), None).await;
    assert_eq!(status_on(&app, subscriber, news).await, "confirmed");
    assert_eq!(
        app.get_json("/v1/suppressions/bob@example.com").await.0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn list_mail_is_refused_unless_it_goes_to_one_confirmed_subscriber() {
    let app = app().await;
    let (list, _) = app.subscribed("News", "carol@example.com").await;
    for (body, field) in [
        (
            json!({"to": ["carol@example.com", "dan@example.com"], "subject": "x", "text": "x", "list_id": list}),
            "list_id",
        ),
        (
            json!({"to": "dan@example.com", "subject": "x", "text": "x", "list_id": list}),
            "to[0].email",
        ),
    ] {
        let response = app.post_email(&body).await;
        assert_eq!(response.status().as_u16(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    // A list that does not exist is not found, and the field says which.
    let unknown =
        json!({"to": "carol@example.com", "subject": "x", "text": "x", "list_id": 424242});
    let response = app.post_email(&unknown).await;
    assert_eq!(response.status().as_u16(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["field"], "list_id", "{error}");
    let _ = API_KEY;
    app.stop().await;
}

#[tokio::test]
async fn sendgrid_unsubscribe_events_update_subscriptions() {
    let app = app().await;
    let (first, subscriber) = app.subscribed("First", "eve@example.com").await;
    let (second, _) = app.subscribed("Second", "eve@example.com").await;
    let store = mailroom::app::events(
        &app.redis.conn(),
        &app.redis.prefix,
        (3600, 100),
        Default::default(),
    );
    let now = chrono::Utc::now();
    let group = json!([{"email": "Eve@example.com", "event": "group_unsubscribe", "timestamp": now.timestamp(),
        "sg_event_id": "ev-1", "sg_message_id": "sg-1.x", "mailroom_id": "0190a000-0000-7000-8000-000000000001",
        "mailroom_list": first.to_string(), "asm_group_id": 3}]);
    let batch = mailroom::events::parse_batch(&group.to_string()).unwrap();
    store.apply(&batch.events, now).await.unwrap();
    assert_eq!(status_on(&app, subscriber, first).await, "unsubscribed");
    assert_eq!(status_on(&app, subscriber, second).await, "confirmed");
    let (_, view) = app.get_json(&format!("/v1/subscribers/{subscriber}")).await;
    let source = view["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["list"] == first)
        .unwrap()["source"]
        .clone();
    assert_eq!(source, "sendgrid");

    let global = json!([{"email": "eve@example.com", "event": "unsubscribe", "timestamp": now.timestamp(),
        "sg_event_id": "ev-2", "sg_message_id": "sg-2.x", "mailroom_id": "0190a000-0000-7000-8000-000000000002"}]);
    let batch = mailroom::events::parse_batch(&global.to_string()).unwrap();
    store.apply(&batch.events, now).await.unwrap();
    assert_eq!(status_on(&app, subscriber, second).await, "unsubscribed");
    app.stop().await;
}
