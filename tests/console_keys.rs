//! The console and stored keys: signing in with a key that has `console`, pages and
//! navigation following its scopes, a revocation ending the session within a second; the keys
//! page listing, making (the key shown once, no scope beyond the session's) and revoking keys;
//! the stats page showing one key's mail.

mod common;

use std::time::{Duration, Instant};

use common::app::{API_KEY, TestApp};
use mailroom::keys::Scope;
use serde_json::{Value, json};

/// Signs in to the console with `key`: the session cookie, or the sign-in page's status.
async fn console_session(app: &TestApp, key: &str) -> Result<String, u16> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = (client.post(app.url("/console/login")))
        .form(&[("api_key", key), ("next", "/console")])
        .send()
        .await
        .unwrap();
    match answer.headers().get("set-cookie") {
        Some(cookie) => Ok(cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()),
        None => Err(answer.status().as_u16()),
    }
}

async fn console_page(app: &TestApp, cookie: &str, path: &str) -> u16 {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    answer.status().as_u16()
}

#[tokio::test]
async fn a_stored_key_with_console_signs_in_and_sees_only_what_its_scopes_allow() {
    let app = TestApp::spawn(|_| {}).await;
    let (_, no_console) = app.stored_key(&[Scope::Campaigns], Value::Null).await;
    assert_eq!(console_session(&app, &no_console).await, Err(403));
    assert_eq!(
        console_session(&app, "mr_0000000000000000_nope").await,
        Err(401)
    );
    let (id, marketer) = app
        .stored_key(&[Scope::Console, Scope::Campaigns], Value::Null)
        .await;
    let cookie = console_session(&app, &marketer).await.expect("a session");
    assert!(
        cookie.contains(&format!("mr_{id}")),
        "the session names the key by its id"
    );
    assert!(!cookie.contains(&marketer[20..]), "never the secret");
    for (route, scope) in mailroom::console::RULES {
        if route.contains('{') || *route == "/console/logout" {
            continue;
        }
        let status = console_page(&app, &cookie, route).await;
        let allowed = scope.is_none_or(|s| s == Scope::Campaigns);
        assert_eq!(status == 200, allowed, "{route} ({scope:?}): {status}");
        if !allowed {
            assert_eq!(status, 403, "{route}");
        }
    }
    // Revoked: the session ends within a second.
    let revoke = format!("/v1/keys/{id}");
    assert_eq!(
        app.call_as(API_KEY, "DELETE", &revoke, &Value::Null)
            .await
            .0,
        204
    );
    let revoked = Instant::now();
    while console_page(&app, &cookie, "/console/campaigns").await == 200 {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "still signed in after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(console_page(&app, &cookie, "/console/campaigns").await, 303);
    app.stop().await;
}

async fn console_html(app: &TestApp, cookie: &str, path: &str) -> String {
    let answer = (app.client.get(app.url(path)))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}");
    answer.text().await.unwrap()
}

#[tokio::test]
async fn the_console_lists_keys_and_the_audit_and_revokes_and_its_navigation_follows_the_scopes() {
    let app = TestApp::spawn(|_| {}).await;
    let (id, marketer) = app
        .stored_key(&[Scope::Console, Scope::Campaigns], Value::Null)
        .await;
    let narrow = console_session(&app, &marketer).await.unwrap();
    let overview = console_html(&app, &narrow, "/console").await;
    assert!(
        overview.contains("href=\"/console/campaigns\""),
        "{overview}"
    );
    for hidden in ["/console/messages", "/console/keys", "/console/dead"] {
        assert!(
            !overview.contains(&format!("href=\"{hidden}\"")),
            "{hidden} is listed"
        );
    }
    let operator = console_session(&app, API_KEY).await.unwrap();
    let page = console_html(&app, &operator, "/console/keys").await;
    assert!(
        page.contains(&id) && page.contains("campaigns console"),
        "{page}"
    );
    assert!(page.contains("key_created"), "the audit log is on the page");
    assert!(!page.contains(&marketer[20..]), "never a secret");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = (client.post(app.url(&format!("/console/keys/{id}/revoke"))))
        .header("cookie", &operator)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(
        app.call_as(&marketer, "GET", "/v1/campaigns", &Value::Null)
            .await
            .0,
        401
    );
    let page = console_html(&app, &operator, "/console/keys").await;
    assert!(
        page.contains("key_revoked") && page.contains("No stored keys yet."),
        "{page}"
    );
    app.stop().await;
}

/// The CSRF token of a console page's forms.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// `POST /console/keys` with `fields` (and the session's token): the status and the page.
async fn make_key(app: &TestApp, cookie: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let page = console_html(app, cookie, "/console/keys").await;
    let csrf = csrf_of(&page);
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let answer = (app.client.post(app.url("/console/keys")))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

#[tokio::test]
async fn the_console_makes_a_key_shown_once_with_no_scope_beyond_the_sessions() {
    let app = TestApp::spawn(|_| {}).await;
    let operator = console_session(&app, API_KEY).await.unwrap();
    let fields = [
        ("name", "billing"),
        ("scope", "emails:send"),
        ("scope", "emails:read"),
        ("from_domains", "billing.example.com, example.com"),
        ("rate_per_second", "50"),
        ("daily_quota", "10000"),
        ("expires_on", "2099-01-01"),
    ];
    let (status, page) = make_key(&app, &operator, &fields).await;
    assert_eq!(status, 200, "{page}");
    let key = page
        .split("<code id=\"made-key\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the key, shown once")
        .to_owned();
    let id = key[3..19].to_owned();
    let (_, record) = app
        .call("GET", &format!("/v1/keys/{id}"), &Value::Null)
        .await;
    assert_eq!(
        (
            &record["name"],
            &record["scopes"],
            &record["from_domains"],
            &record["rate_per_second"],
            &record["daily_quota"],
            &record["expires_at"],
        ),
        (
            &json!("billing"),
            &json!(["emails:send", "emails:read"]),
            &json!(["billing.example.com", "example.com"]),
            &json!(50),
            &json!(10000),
            &json!("2099-01-01T00:00:00Z"),
        ),
        "{record}"
    );
    // The key works, within its scopes.
    let email = json!({"from": "billing@example.com", "to": "ada@example.org", "subject": "Hi", "text": "Hi."});
    assert_eq!(app.call_as(&key, "POST", "/v1/emails", &email).await.0, 202);
    assert_eq!(
        app.call_as(&key, "GET", "/v1/keys", &Value::Null).await.0,
        403
    );
    let again = console_html(&app, &operator, "/console/keys").await;
    assert!(
        again.contains(&id) && !again.contains(&key[20..]),
        "listed, never shown again"
    );
    assert!(again.contains("key_created"), "{again}");

    // A session cannot give what its key does not have, nor make a key the API would refuse.
    let (_, keeper) = app
        .stored_key(&[Scope::Console, Scope::Keys], Value::Null)
        .await;
    let narrow = console_session(&app, &keeper).await.unwrap();
    let page = console_html(&app, &narrow, "/console/keys").await;
    assert!(page.contains("value=\"keys\"") && !page.contains("value=\"emails:send\""));
    let before = app.call("GET", "/v1/keys", &Value::Null).await.1["keys"]
        .as_array()
        .unwrap()
        .len();
    for (fields, why) in [
        (
            vec![("name", "wider"), ("scope", "emails:send")],
            "a scope it does not have: emails:send",
        ),
        (
            vec![
                ("name", "bad domain"),
                ("scope", "keys"),
                ("from_domains", "not a domain"),
            ],
            "from_domains",
        ),
        (vec![("name", "no scopes")], "scopes"),
        (
            vec![
                ("name", "fast"),
                ("scope", "keys"),
                ("rate_per_second", "many"),
            ],
            "rate_per_second",
        ),
        (
            vec![
                ("name", "old"),
                ("scope", "keys"),
                ("expires_on", "someday"),
            ],
            "expires_on",
        ),
    ] {
        let (status, page) = make_key(&app, &narrow, &fields).await;
        assert_eq!(status, 422, "{fields:?}: {page}");
        assert!(
            page.contains(why) && !page.contains("made-key"),
            "{fields:?}: {page}"
        );
    }
    let after = app.call("GET", "/v1/keys", &Value::Null).await.1["keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing made");
    // Without the session's token, nothing is made either.
    let answer = (app.client.post(app.url("/console/keys")))
        .header("cookie", &narrow)
        .form(&[("name", "forged"), ("scope", "keys")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 403);
    app.stop().await;
}

#[tokio::test]
async fn the_console_stats_page_shows_one_keys_mail() {
    let mut app = TestApp::spawn(|s| s.insecure_unsigned_webhooks = true).await;
    app.start_worker();
    let (billing, _) = app
        .stored_key(&[Scope::EmailsSend], json!({"name": "billing"}))
        .await;
    let (shop, _) = app
        .stored_key(&[Scope::EmailsSend], json!({"name": "shop"}))
        .await;
    let now = chrono::Utc::now().timestamp();
    let delivered = |n: u32, key: &str| {
        json!({"email": format!("p{n}@example.org"), "event": "delivered", "timestamp": now,
               "sg_event_id": format!("d-{n}"), "mailroom_key": key})
    };
    let events = json!([
        delivered(0, &billing),
        delivered(1, &billing),
        delivered(2, &shop)
    ]);
    let answer = (app.client.post(app.url("/webhooks/sendgrid/events")))
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let operator = console_session(&app, API_KEY).await.unwrap();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    // The day's row: date, processed, delivered, …
    let delivered_on = |page: &str| -> String {
        let row = page.split(&format!("<tr><td>{today}</td>")).nth(1).unwrap();
        row.split("<td class=\"num\">")
            .nth(2)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    let all = common::eventually(Duration::from_secs(20), "three deliveries", || async {
        let page = console_html(&app, &operator, "/console/stats?days=7").await;
        (delivered_on(&page) == "3").then_some(page)
    })
    .await;
    assert!(
        all.contains(&format!(
            "<option value=\"{billing}\">billing ({billing})</option>"
        )),
        "{all}"
    );
    let mine = console_html(
        &app,
        &operator,
        &format!("/console/stats?days=7&key={billing}"),
    )
    .await;
    assert!(mine.contains(&format!("mail of key {billing}")), "{mine}");
    assert_eq!(delivered_on(&mine), "2");
    let theirs = console_html(
        &app,
        &operator,
        &format!("/console/stats?days=7&key={shop}"),
    )
    .await;
    assert_eq!(delivered_on(&theirs), "1");
    app.stop().await;
}

#[tokio::test]
async fn the_webhooks_page_shows_each_endpoints_attempts_and_disables_enables_and_replays() {
    let mut app = TestApp::spawn(|_| {}).await;
    app.start_worker();
    let (receiver, url) = common::hooks::Receiver::start(&[]).await;
    let (hook, _) = common::hooks::endpoint(&app, API_KEY, &url, &["email.bounced"]).await;
    let (status, _) = app
        .call("POST", &format!("/v1/webhooks/{hook}/test"), &json!({}))
        .await;
    assert_eq!(status, 202);
    receiver.wait_for(1).await;
    let operator = console_session(&app, API_KEY).await.unwrap();
    let page = common::eventually(
        Duration::from_secs(10),
        "the attempt on the page",
        || async {
            let page = console_html(&app, &operator, "/console/webhooks").await;
            page.contains("<td>200</td>").then_some(page)
        },
    )
    .await;
    assert!(
        page.contains(&url) && page.contains("email.bounced") && page.contains("Delivering"),
        "{page}"
    );
    // A key that cannot read every key's mail does not see every key's endpoints.
    let (_, narrow) = app
        .stored_key(&[Scope::Console, Scope::Webhooks], Value::Null)
        .await;
    let narrow = console_session(&app, &narrow).await.unwrap();
    assert_eq!(console_page(&app, &narrow, "/console/webhooks").await, 403);

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let act = |action: &'static str| {
        let (client, operator, csrf) = (client.clone(), operator.clone(), csrf_of(&page));
        let url = app.url(&format!("/console/webhooks/{hook}/{action}"));
        async move {
            let answer = client
                .post(url)
                .header("cookie", operator)
                .form(&[("csrf", csrf)])
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 303, "{action}");
            answer.headers()["location"].to_str().unwrap().to_owned()
        }
    };
    assert!(act("disable").await.ends_with("done=hook-disabled"));
    let (_, endpoint) = app
        .call("GET", &format!("/v1/webhooks/{hook}"), &Value::Null)
        .await;
    assert!(endpoint["disabled"].is_string(), "{endpoint}");
    assert!(
        console_html(&app, &operator, "/console/webhooks")
            .await
            .contains("Disabled")
    );
    assert!(act("enable").await.ends_with("done=hook-enabled"));
    let (_, endpoint) = app
        .call("GET", &format!("/v1/webhooks/{hook}"), &Value::Null)
        .await;
    assert!(endpoint["disabled"].is_null(), "{endpoint}");
    assert!(act("replay").await.ends_with("done=hook-replayed"));
    let again = receiver.wait_for(2).await;
    assert_eq!(
        again[1].headers["webhook-id"],
        again[0].headers["webhook-id"]
    );
    app.stop().await;
}
