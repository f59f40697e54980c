//! The operator console, in headless Chromium and over plain HTTP: sign-in with an API key;
//! every page with data in it; a dead letter retried from its page really runs again; a
//! campaign paused and resumed from its page; suppressions added and lifted; the templates at
//! desktop and phone widths; sign-out. And what must hold without a browser: no session, no
//! data; a forged cookie or form token changes nothing.
//!
//! Screenshots of each page are saved under `target/screenshots/console-*.png` (the best ones
//! are copied into `docs/`).

mod common;

use std::time::Duration;

use common::{
    app::{API_KEY, TestApp, part_text, strict_mime},
    browser::Browser,
    eventually, push_raw,
};
use mailroom::queue::QueueAdmin;
use secrecy::SecretString;
use serde_json::{Value, json};

const LINK_KEYS: &str = "c1:0123456789abcdef0123456789abcdef";
const READER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

async fn app(configure: impl FnOnce(&mut mailroom::config::Settings)) -> TestApp {
    let mut app = TestApp::spawn(|s| {
        s.link_keys = Some(SecretString::from(LINK_KEYS));
        // Slow enough that a person (or a test) can pause the campaign while it runs.
        s.provider_rate = 40;
        configure(s);
    })
    .await;
    app.settings.public_url = app.address.clone();
    app.start_worker();
    app
}

/// Opens `path` until its source satisfies `ready` (the live parts catch up with the workers).
async fn open_until(
    browser: &Browser,
    app: &TestApp,
    path: &str,
    what: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    eventually(Duration::from_secs(30), what, || async {
        browser.open(&app.url(path)).await;
        let source = browser.source().await;
        ready(&source).then_some(source)
    })
    .await
}

async fn sign_in(browser: &Browser, app: &TestApp) {
    browser.open(&app.url("/console")).await;
    assert!(
        browser.url().await.contains("/console/login"),
        "without a session the console sends the browser to the sign-in"
    );
    assert_eq!(unlabelled_fields(browser).await, json!([]));
    browser.type_into("#api_key", API_KEY).await;
    browser.click("button[type=submit]").await;
    eventually(
        Duration::from_secs(10),
        "the overview after signing in",
        || async {
            let source = browser.source().await;
            source.contains("<h1>Overview</h1>").then_some(())
        },
    )
    .await;
}

/// The queue's count of dead-letterings since it began.
async fn dead_total(app: &TestApp, queue: &str) -> u64 {
    QueueAdmin::new(app.redis.conn(), app.redis.prefix.clone())
        .stats(queue)
        .await
        .unwrap()
        .dead_total
}

#[tokio::test]
async fn an_operator_signs_in_and_works_every_page() {
    let app = app(|_| {}).await;

    // Data for the pages: a tracked message opened by a person, two plain ones, a dead letter,
    // a list with an import, a running campaign.
    let tracked = app
        .send_and_wait(&json!({
            "to": "ada@example.com",
            "subject": "Your order",
            "html": "<p>Hello Ada, <a href=\"https://shop.example.com/o/7\">your order</a>.</p>",
            "categories": ["orders"],
            "tracking": {"opens": true, "clicks": true}
        }))
        .await;
    for n in 0..2 {
        app.send_and_wait(&json!({
            "to": "ada@example.com",
            "subject": format!("Note {n}"),
            "text": "Plain."
        }))
        .await;
    }
    let html = part_text(
        &strict_mime(&app.outbox.path().join(format!("{tracked}.eml"))).await,
        "text/html",
    );
    let pixel = html
        .split(&app.address)
        .skip(1)
        .find(|rest| rest.starts_with("/t/o/"))
        .and_then(|rest| rest.split('"').next())
        .expect("an open pixel")
        .to_owned();
    let opened = reqwest::Client::new()
        .get(app.url(&pixel))
        .header("user-agent", READER)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status().as_u16(), 200);
    // A job no worker can read: dead-lettered at once.
    push_raw(
        &app.redis,
        "email",
        "console-dead-1",
        r#"{"id":"not a uuid"}"#,
    )
    .await;
    eventually(Duration::from_secs(20), "the dead letter", || async {
        (dead_total(&app, "email").await == 1).then_some(())
    })
    .await;
    let (list, _) = app.subscribed("Readers", "lin@example.com").await;
    let csv: String = std::iter::once("email,name\n".to_owned())
        .chain((0..400).map(|i| format!("reader{i}@example.net,Reader {i}\n")))
        .chain(std::iter::once("not-an-address,Broken\n".to_owned()))
        .collect();
    app.import_confirmed(list, &csv).await;
    let (status, campaign) = app
        .call(
            "POST",
            "/v1/campaigns",
            &json!({
                "name": "Autumn news",
                "lists": [list],
                "subject": "Autumn",
                "html": "<p>Autumn is here.</p><p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>"
            }),
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    let campaign = campaign["id"].as_str().unwrap().to_owned();

    let browser = Browser::start(1280, 900).await;
    sign_in(&browser, &app).await;

    // Overview: the queues, the sends of the last minutes (written by the worker every few
    // seconds), the dead letter's error.
    let overview = open_until(
        &browser,
        &app,
        "/console",
        "the sends on the overview",
        |s| s.contains("3 sent, 0 deferred"),
    )
    .await;
    assert!(
        overview.contains("<th scope=\"row\">email</th>"),
        "{overview}"
    );
    assert!(
        overview.contains("invalid payload") || overview.contains("undecodable"),
        "{overview}"
    );
    assert!(overview.contains("class=\"chart\""), "{overview}");
    browser.save_screenshot("console-overview").await;

    // Dead letters: the letter, then a retry that really puts it back (a worker runs it again,
    // and dead-letters it a second time).
    let dead = open_until(
        &browser,
        &app,
        "/console/dead?queue=email",
        "the dead letter",
        |s| s.contains("console-dead-1"),
    )
    .await;
    assert!(
        dead.contains("unreadable payload"),
        "the payload summary: {dead}"
    );
    browser.save_screenshot("console-dead-letters").await;
    browser
        .click("#letter-console-dead-1 button[type=submit]")
        .await;
    eventually(
        Duration::from_secs(20),
        "the retried letter to run again",
        || async { (dead_total(&app, "email").await == 2).then_some(()) },
    )
    .await;
    assert!(browser.source().await.contains("back in its queue"));
    // And deleted: its record is gone.
    open_until(
        &browser,
        &app,
        "/console/dead?queue=email",
        "the letter dead again",
        |s| s.contains("letter-console-dead-1"),
    )
    .await;
    browser
        .click("#letter-console-dead-1 form[action$='/delete'] button")
        .await;
    eventually(Duration::from_secs(10), "the letter deleted", || async {
        let record = app
            .redis
            .job_field("email", "console-dead-1", "payload")
            .await;
        record.is_none().then_some(())
    })
    .await;

    // Messages: one by id with its timeline (the person's open), and all to an address.
    let message = open_until(
        &browser,
        &app,
        &format!("/console/messages?q={tracked}"),
        "the open on the timeline",
        |s| s.contains(">open<"),
    )
    .await;
    assert!(
        message.contains("badge sent") || message.contains("badge opened"),
        "{message}"
    );
    browser.save_screenshot("console-message").await;
    assert_eq!(unlabelled_fields(&browser).await, json!([]));
    browser
        .open(&app.url("/console/messages?q=ada%40example.com"))
        .await;
    let found = browser.source().await;
    assert_eq!(found.matches("/console/messages?q=").count(), 3, "{found}");

    // Campaigns: started, its progress moves on the page by itself, paused and resumed here.
    app.schedule_campaign(&campaign).await;
    open_until(
        &browser,
        &app,
        "/console/campaigns",
        "the campaign running",
        |s| s.contains("data-state=\"running\""),
    )
    .await;
    let first = progress(&browser, &campaign).await;
    eventually(
        Duration::from_secs(20),
        "the progress bar to move without a reload",
        || async { (progress(&browser, &campaign).await > first).then_some(()) },
    )
    .await;
    browser.save_screenshot("console-campaigns").await;
    browser
        .click(&format!(
            "#campaign-{campaign} form[action$='/pause'] button"
        ))
        .await;
    eventually(Duration::from_secs(10), "the campaign paused", || async {
        let (_, body) = app.get_json(&format!("/v1/campaigns/{campaign}")).await;
        (body["state"] == "paused").then_some(())
    })
    .await;
    open_until(
        &browser,
        &app,
        "/console/campaigns",
        "the resume button",
        |s| s.contains("/resume"),
    )
    .await;
    browser
        .click(&format!(
            "#campaign-{campaign} form[action$='/resume'] button"
        ))
        .await;
    let finished = eventually(
        Duration::from_secs(60),
        "the campaign to finish",
        || async {
            let (_, body) = app.get_json(&format!("/v1/campaigns/{campaign}")).await;
            (body["state"] == "finished").then_some(body)
        },
    )
    .await;
    assert_eq!(
        finished["sent"], 401,
        "nobody twice, nobody skipped: {finished}"
    );

    // Lists: counts by status and the import with its reported row.
    let lists = open_until(&browser, &app, "/console/lists", "the list", |s| {
        s.contains("Readers")
    })
    .await;
    assert!(lists.contains(">401<"), "confirmed readers: {lists}");
    assert!(
        lists.contains("not-an-address") || lists.contains("line 402"),
        "{lists}"
    );
    browser.save_screenshot("console-lists").await;

    // Suppressions: added from the form, found, lifted.
    browser.open(&app.url("/console/suppressions")).await;
    browser.type_into("#add-email", "grace@example.org").await;
    browser.type_into("#add-detail", "asked by phone").await;
    browser.click("#add-suppression button").await;
    eventually(
        Duration::from_secs(10),
        "the suppression listed",
        || async {
            let source = browser.source().await;
            (source.contains("grace@example.org") && source.contains("asked by phone"))
                .then_some(())
        },
    )
    .await;
    let (status, record) = app.get_json("/v1/suppressions/grace@example.org").await;
    assert_eq!(status, 200, "{record}");
    browser.save_screenshot("console-suppressions").await;
    assert_eq!(unlabelled_fields(&browser).await, json!([]));
    browser
        .click("#suppressions form[action$='/remove'] button")
        .await;
    eventually(
        Duration::from_secs(10),
        "the suppression lifted",
        || async {
            let (status, _) = app.get_json("/v1/suppressions/grace@example.org").await;
            (status == 404).then_some(())
        },
    )
    .await;

    // Stats: the open counted today, charts drawn.
    let stats = open_until(
        &browser,
        &app,
        "/console/stats?category=orders",
        "today's open",
        |s| s.contains("1 unique opens"),
    )
    .await;
    assert!(stats.matches("class=\"chart\"").count() >= 2, "{stats}");
    assert_eq!(unlabelled_fields(&browser).await, json!([]));
    assert!(
        stats.contains("Autumn news"),
        "campaign engagement: {stats}"
    );
    assert!(
        stats.contains("per delivered message of each campaign") && stats.contains("#1: opens"),
        "the campaigns' chart: {stats}"
    );
    browser.save_screenshot("console-stats").await;

    // Templates: every template in every language; one at desktop and phone widths.
    browser.open(&app.url("/console/templates")).await;
    let index = browser.source().await;
    assert!(
        index.contains("/console/templates/newsletter/ar"),
        "{index}"
    );
    browser
        .click("a[href='/console/templates/welcome/de']")
        .await;
    eventually(
        Duration::from_secs(10),
        "the welcome template in German",
        || async {
            let source = browser.source().await;
            (source.contains("iframe") && source.contains("lang=\"de\"")).then_some(())
        },
    )
    .await;
    browser.save_screenshot("console-template").await;

    // Keys: one made in the form, shown once, and it works.
    browser.open(&app.url("/console/keys")).await;
    assert_eq!(unlabelled_fields(&browser).await, json!([]));
    browser.type_into("#name", "billing").await;
    browser
        .click("input[name=scope][value='emails:send']")
        .await;
    browser
        .click("form[action='/console/keys'] button[type=submit]")
        .await;
    let made = eventually(Duration::from_secs(10), "the key made", || async {
        let key = browser
            .execute(
                "var k = document.querySelector('#made-key'); return k ? k.textContent : null;",
            )
            .await;
        key.as_str().map(str::to_owned)
    })
    .await;
    browser.save_screenshot("console-keys").await;
    let email = json!({"to": "ada@example.org", "subject": "Hi", "text": "Hi."});
    let (status, _) = app.call_as(&made, "POST", "/v1/emails", &email).await;
    assert_eq!(status, 202, "the key made in the console sends");

    // Sign-out: the console shows nothing any more.
    browser.click("header form button[type=submit]").await;
    eventually(Duration::from_secs(10), "the sign-in page", || async {
        browser.url().await.contains("/console/login").then_some(())
    })
    .await;
    browser.open(&app.url("/console/messages")).await;
    assert!(browser.url().await.contains("/console/login"));
    browser.quit().await;

    // On a phone.
    let phone = Browser::start(390, 844).await;
    sign_in(&phone, &app).await;
    phone.open(&app.url("/console")).await;
    phone.save_screenshot("console-overview-phone").await;
    let overflow = phone
        .execute("return document.documentElement.scrollWidth - window.innerWidth;")
        .await;
    assert!(
        overflow.as_i64().unwrap_or(99) <= 0,
        "nothing wider than the phone: {overflow}"
    );
    phone.quit().await;
    app.stop().await;
}

/// Form fields on the open page without a label a screen reader can read (none expected).
async fn unlabelled_fields(browser: &Browser) -> Value {
    browser
        .execute(
            "return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))\
               .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))\
               .map(el => el.outerHTML);",
        )
        .await
}

/// The value of campaign `id`'s progress bar on the open page (-1 when there is none).
async fn progress(browser: &Browser, id: &str) -> f64 {
    let script = format!(
        "var p = document.querySelector('#campaign-{id} progress'); return p ? p.value : -1;"
    );
    browser.execute(&script).await.as_f64().unwrap_or(-1.0)
}

/// A client that does not follow redirects, for the answers themselves.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in over HTTP: the session cookie (`name=value`).
async fn session_cookie(app: &TestApp, key: &str) -> (u16, Option<String>, String) {
    let response = client()
        .post(app.url("/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("api_key", key), ("next", "/console/dead")]).unwrap())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cookie, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn without_a_session_nothing_is_shown_and_forged_requests_change_nothing() {
    let app = TestApp::spawn(|s| s.public_url = "https://mail.example.com".to_owned()).await;
    push_raw(&app.redis, "email", "kept-dead", "{").await;
    // Dead-letter it through the real fetch (a worker that reads it refuses it).
    let mut worker_app = app;
    worker_app.start_worker();
    eventually(Duration::from_secs(20), "the dead letter", || async {
        (dead_total(&worker_app, "email").await == 1).then_some(())
    })
    .await;
    let app = worker_app;

    // No session: every page answers with a redirect to the sign-in and no data.
    for path in [
        "/console",
        "/console/dead?queue=email",
        "/console/messages?q=ada%40example.com",
        "/console/stats",
    ] {
        let response = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 303, "{path}");
        assert!(
            response.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/console/login"),
            "{path}"
        );
        assert!(response.text().await.unwrap().is_empty(), "{path}");
    }
    // A wrong key: 401, no cookie.
    let (status, cookie, page) = session_cookie(&app, "not-a-key").await;
    assert_eq!((status, cookie.is_none()), (401, true), "{page}");
    assert!(page.contains("not one of this deployment"), "{page}");

    // The right key: a signed, HttpOnly, SameSite=Strict, Secure (https) cookie with an expiry.
    let (status, cookie, _) = session_cookie(&app, API_KEY).await;
    assert_eq!(status, 303);
    let cookie = cookie.unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Max-Age=43200",
        "Path=/console",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains(API_KEY), "the key is not in the cookie");
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = client()
        .get(app.url("/console/dead?queue=email"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let source = page.text().await.unwrap();
    assert!(source.contains("kept-dead"), "{source}");
    let csrf = source
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    // A tampered cookie is no session.
    let tampered = format!("{}x", session);
    let response = client()
        .get(app.url("/console"))
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);

    // An action without the form token, with another token, or from another site: refused,
    // and the letter is still dead.
    let delete = app.url("/console/dead/email/kept-dead/delete");
    for (token, site) in [
        ("", "same-origin"),
        ("forged", "same-origin"),
        (csrf.as_str(), "cross-site"),
    ] {
        let response = client()
            .post(&delete)
            .header("cookie", &session)
            .header("sec-fetch-site", site)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([("csrf", token)]).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            403,
            "token {token:?} from {site}"
        );
    }
    // Without a session at all, the action is not taken either.
    let response = client()
        .post(&delete)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("csrf", csrf.as_str())]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert!(
        app.redis
            .job_field("email", "kept-dead", "payload")
            .await
            .is_some()
    );
    // With both, it is.
    let response = client()
        .post(&delete)
        .header("cookie", &session)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("csrf", csrf.as_str())]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .contains("done=deleted")
    );
    assert!(
        app.redis
            .job_field("email", "kept-dead", "payload")
            .await
            .is_none()
    );

    // After the sign-in, only console paths are followed.
    let response = client()
        .post(app.url("/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([("api_key", API_KEY), ("next", "https://evil.example/")])
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["location"], "/console");
    app.stop().await;
}

#[tokio::test]
async fn without_api_keys_the_console_is_open_as_the_api_is() {
    let app = TestApp::spawn(|s| {
        s.api_keys = None;
        s.insecure_no_auth = true;
    })
    .await;
    let response = client()
        .get(app.url("/console/templates"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("open without sign-in"), "{page}");
    let login = client()
        .get(app.url("/console/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303, "no sign-in to show");
    app.stop().await;
}
