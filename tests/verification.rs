//! The verification flow end to end: issue → worker → outbox email → link → page (nothing
//! spent) → confirm → verified, once; expiry, resends, malformed links, redirects, races.

mod common;

use std::time::Duration;

use common::{
    app::{API_KEY, TestApp},
    eventually,
};
use mailroom::verification::{Token, Verifications};
use serde_json::{Value, json};

async fn app() -> TestApp {
    let mut app = TestApp::spawn(|s| {
        s.allowed_redirect_origins = "https://app.example.com, http://localhost:3000".to_owned();
    })
    .await;
    app.settings.public_url = app.address.clone();
    app.start_worker();
    app
}

async fn request(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/verifications"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The links in the emails received so far, oldest first.
async fn links(app: &TestApp, count: usize) -> Vec<String> {
    common::app::received_links(app, count, "/verify?token=")
        .await
        .into_iter()
        .map(|r| r.link)
        .collect()
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_owned()
}

async fn confirm(app: &TestApp, token: &str, json: bool) -> reqwest::Response {
    // Tokens are base64url: nothing to escape in a form body.
    let mut request = app
        .client
        .post(app.url("/verify"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"));
    if json {
        request = request.header("accept", "application/json");
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_whole_flow_verifies_an_address_once() {
    let app = app().await;
    let response = request(&app, json!({"email": "Ada@Example.com", "locale": "fr-CA", "return_url": "https://app.example.com/welcome", "metadata": {"user_id": "42"}})).await;
    assert_eq!(response.status().as_u16(), 202);
    let issued: Value = response.json().await.unwrap();
    assert_eq!(issued["email"], "Ada@Example.com");
    assert!(issued["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(issued.get("token").is_none());

    let link = links(&app, 1).await.remove(0);
    let token = token_of(&link);
    assert_eq!(token.len(), 43);

    // The token is nowhere in Redis in clear.
    for line in app.redis.dump().await {
        assert!(!line.contains(&token), "{line} holds the token");
    }

    // Opening the link (as a scanner would) spends nothing.
    for _ in 0..2 {
        let page = app.client.get(app.url(&link)).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let headers = page.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("style-src 'nonce-")
                && csp.contains("default-src 'none'")
                && !csp.contains("script-src"),
            "no script may run on the page: {csp}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
        let html = page.text().await.unwrap();
        assert!(
            html.contains("Confirmez que Ada@Example.com est bien votre adresse e-mail."),
            "{html}"
        );
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap();
        assert!(html.contains(&format!("<style nonce=\"{nonce}\">")));
        assert!(!html.contains("<script"), "nothing confirms by itself");
        assert!(html.contains("name=\"token\""));
        assert!(html.contains("<button class=\"action\" type=\"submit\">"));
    }

    let done = confirm(&app, &token, false).await;
    assert_eq!(done.status().as_u16(), 200);
    let html = done.text().await.unwrap();
    assert!(
        html.contains("Votre adresse e-mail est confirmée"),
        "{html}"
    );
    assert!(
        html.contains("href=\"https://app.example.com/welcome\""),
        "the allowed return URL is offered"
    );

    let status: Value = app
        .client
        .get(app.url("/v1/addresses/ada@example.com"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["verified"], true);
    assert!(status["verified_at"].is_string());

    let events: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(mailroom_jobs::Keys::new(&app.redis.prefix).verify_events())
        .arg("-")
        .arg("+")
        .query_async(&mut app.redis.conn())
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let fields: std::collections::HashMap<String, String> = events[0]
        .1
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    assert_eq!(fields["type"], "email.verified");
    assert_eq!(fields["email"], "Ada@Example.com");
    assert_eq!(fields["metadata"], "{\"user_id\":\"42\"}");

    // Once only: a second confirmation changes nothing (an API client is told the token is
    // gone), and a person opening the link again is told the address is confirmed.
    assert_eq!(confirm(&app, &token, true).await.status().as_u16(), 410);
    assert_eq!(confirm(&app, &token, false).await.status().as_u16(), 200);
    let again = app.client.get(app.url(&link)).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    let page = again.text().await.unwrap();
    assert!(
        page.contains("Cette adresse e-mail est déjà confirmée"),
        "{page}"
    );
    assert!(
        page.contains("href=\"https://app.example.com\""),
        "a way back to the allowed origin: {page}"
    );

    let cleared = app
        .client
        .delete(app.url("/v1/addresses/ada@example.com"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status().as_u16(), 204);
    let status: Value = app
        .client
        .get(app.url("/v1/addresses/ada@example.com"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["verified"], false);
    app.stop().await;
}

#[tokio::test]
async fn a_newer_request_invalidates_the_older_link_and_other_origins_are_not_offered() {
    let app = app().await;
    request(&app, json!({"email": "bo@example.com"})).await;
    let first = links(&app, 1).await.remove(0);
    request(
        &app,
        json!({"email": "bo@example.com", "return_url": "https://evil.example/phish"}),
    )
    .await;
    let both = links(&app, 2).await;
    let second = both.iter().find(|l| **l != first).unwrap().clone();
    assert_eq!(
        confirm(&app, &token_of(&first), false)
            .await
            .status()
            .as_u16(),
        410
    );
    let done = confirm(&app, &token_of(&second), true).await;
    assert_eq!(done.status().as_u16(), 200);
    let body: Value = done.json().await.unwrap();
    assert_eq!(body["verified"], true);
    assert_eq!(body["return_url"], Value::Null, "never an open redirect");
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_confirmations_of_one_token_make_exactly_one_success() {
    let app = app().await;
    request(&app, json!({"email": "race@example.com"})).await;
    let token = token_of(&links(&app, 1).await.remove(0));
    let attempts = (0..50).map(|_| confirm(&app, &token, true));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 410).count(),
        49,
        "{statuses:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_expired_link_is_refused_with_410() {
    let app = TestApp::spawn(|_| {}).await;
    let store = Verifications::new(app.redis.conn(), app.redis.prefix.clone());
    let token = Token::generate().unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    let late = mailroom_jobs::SendVerification {
        id: uuid::Uuid::now_v7(),
        email: "late@example.com".to_owned(),
        locale: None,
        return_url: None,
        metadata: Default::default(),
        expires_at: expires,
        optin_list: None,
        request_id: None,
    };
    store.issue(&token, &late, None).await.unwrap();
    assert!(store.pending(&token).await.unwrap().is_some());
    eventually(Duration::from_secs(10), "the token to expire", || async {
        store.pending(&token).await.unwrap().is_none().then_some(())
    })
    .await;
    let response = confirm(&app, token.expose(), true).await;
    assert_eq!(response.status().as_u16(), 410);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_expired_or_used");
    app.stop().await;
}

#[tokio::test]
async fn malformed_missing_or_oversized_tokens_get_a_400_page_never_a_5xx() {
    let app = TestApp::spawn(|_| {}).await;
    let long = "a".repeat(5000);
    for query in [
        "/verify",
        "/verify?token=",
        "/verify?token=abc",
        &format!("/verify?token={long}"),
        "/verify?token=%00%ff",
    ] {
        let response = app
            .client
            .get(app.url(query))
            .header("accept-language", "de-DE,de;q=0.9")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{query}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Dieser Link ist ungültig"),
            "{query}: localized by Accept-Language"
        );
    }
    for body in ["", "token=", "nonsense", "token=%ZZ"] {
        let response = app
            .client
            .post(app.url("/verify"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{body:?}");
    }
    let unknown = Token::generate().unwrap();
    let response = app
        .client
        .get(app.url(&format!("/verify?token={}", unknown.expose())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 410);

    let bad = app
        .client
        .post(app.url("/v1/verifications"))
        .bearer_auth(API_KEY)
        .json(&json!({"email": "not-an-address"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"]["field"],
        "email"
    );
    let bad = app
        .client
        .post(app.url("/v1/verifications"))
        .bearer_auth(API_KEY)
        .json(&json!({"email": "a@example.com", "return_url": "javascript:x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"]["field"],
        "return_url"
    );
    let unauthorized = app
        .client
        .post(app.url("/v1/verifications"))
        .json(&json!({"email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    app.stop().await;
}

#[tokio::test]
async fn requests_over_the_per_address_or_per_key_limit_get_429_with_retry_after() {
    let app = TestApp::spawn(|s| {
        s.verify_rate_per_address = 2;
        s.verify_rate_per_key = 4;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            request(&app, json!({"email": "ratey@example.com"}))
                .await
                .status()
                .as_u16(),
            202
        );
    }
    let refused = request(&app, json!({"email": "RATEY@example.com"})).await;
    assert_eq!(refused.status().as_u16(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limited"
    );

    assert_eq!(
        request(&app, json!({"email": "other@example.com"}))
            .await
            .status()
            .as_u16(),
        202
    );
    // Four requests counted against the key so far (one refused); the fifth is over.
    let over_key = request(&app, json!({"email": "third@example.com"})).await;
    assert_eq!(over_key.status().as_u16(), 429);
    assert!(
        over_key.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key")
    );
    app.stop().await;
}

#[tokio::test]
async fn the_verified_event_is_posted_signed_and_retried_until_accepted() {
    use std::sync::{Arc, Mutex};
    use wiremock::{
        Mock, MockServer, Request, Respond, ResponseTemplate,
        matchers::{method, path},
    };

    /// Fails the first delivery, accepts the rest.
    struct FailOnce(Arc<Mutex<usize>>);
    impl Respond for FailOnce {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            let mut calls = self.0.lock().unwrap();
            *calls += 1;
            ResponseTemplate::new(if *calls == 1 { 500 } else { 204 })
        }
    }

    let receiver = MockServer::start().await;
    let calls = Arc::new(Mutex::new(0));
    Mock::given(method("POST"))
        .and(path("/hooks/mailroom"))
        .respond_with(FailOnce(calls.clone()))
        .mount(&receiver)
        .await;
    let hook = format!("{}/hooks/mailroom", receiver.uri());
    let mut app = TestApp::spawn(move |s| {
        s.verify_callback_url = Some(hook);
        s.callback_secret = Some(secrecy::SecretString::from("whsec-test-secret"));
    })
    .await;
    app.settings.public_url = app.address.clone();
    app.start_worker();
    request(
        &app,
        json!({"email": "hook@example.com", "metadata": {"plan": "pro"}}),
    )
    .await;
    let token = token_of(&links(&app, 1).await.remove(0));
    assert_eq!(confirm(&app, &token, true).await.status().as_u16(), 200);

    let requests = eventually(Duration::from_secs(30), "the retried delivery", || async {
        let requests = receiver.received_requests().await.unwrap();
        (requests.len() >= 2).then_some(requests)
    })
    .await;
    let delivered = &requests[1];
    assert_eq!(
        requests[0].body, delivered.body,
        "the retry sends the same event"
    );
    let event: Value = serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(event["type"], "email.verified");
    assert_eq!(event["email"], "hook@example.com");
    assert_eq!(event["metadata"]["plan"], "pro");
    let timestamp = delivered.headers["x-mailroom-timestamp"]
        .to_str()
        .unwrap()
        .to_owned();
    let signature = delivered.headers["x-mailroom-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    // Checked independently of mailroom's code: Python's hmac over "<timestamp>.<body>".
    let expected = tokio::process::Command::new("python3")
        .args(["-c", "import hmac,hashlib,sys; print('v1=' + hmac.new(b'whsec-test-secret', sys.argv[1].encode() + b'.' + sys.stdin.buffer.read(), hashlib.sha256).hexdigest())", &timestamp])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test installs it)");
    let mut child = expected;
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&delivered.body).await.unwrap();
    }
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), signature);
    let now = chrono::Utc::now().timestamp();
    assert!((now - timestamp.parse::<i64>().unwrap()).abs() < 60);
    app.stop().await;
}

/// Opens `url` in headless Chromium with scripts running and no click, as a link scanner that
/// runs a real browser does; returns the DOM it ended on.
async fn scanner_opens(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(common::browser::chromium())
        .args(common::browser::HEADLESS)
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn verified(app: &TestApp, email: &str) -> bool {
    let (_, status) = app.get_json(&format!("/v1/addresses/{email}")).await;
    status["verified"] == true
}

#[tokio::test]
async fn a_scanner_opening_the_link_in_a_real_browser_spends_nothing_and_a_person_clicks_to_confirm()
 {
    let app = app().await;
    request(
        &app,
        json!({"email": "browser@example.com", "locale": "en"}),
    )
    .await;
    let link = links(&app, 1).await.remove(0);

    // A scanner that runs scripts, with no click: the page waits for a person.
    let dom = scanner_opens(&app.url(&link)).await;
    assert!(
        dom.contains("<button class=\"action\" type=\"submit\">"),
        "{dom}"
    );
    assert!(
        !verified(&app, "browser@example.com").await,
        "opening the link verified nothing"
    );

    // A person presses the one button.
    let browser = common::browser::Browser::start(800, 600).await;
    browser.open(&app.url(&link)).await;
    browser.click("button.action").await;
    // The click returns before the form's navigation has finished: poll for the new page.
    eventually(Duration::from_secs(10), "the verified page", || async {
        browser
            .source()
            .await
            .contains("<h1>Your email address is verified</h1>")
            .then_some(())
    })
    .await;
    assert!(verified(&app, "browser@example.com").await);
    let png = browser.screenshot().await;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("verification-confirmed.png"), &png).unwrap();
    browser.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn at_the_shortest_allowed_link_life_the_email_is_still_sent() {
    let mut app = TestApp::spawn(|s| s.verify_ttl = 300).await;
    app.settings.public_url = app.address.clone();
    app.start_worker();
    let response = request(&app, json!({"email": "floor@example.com"})).await;
    assert_eq!(response.status(), 202);
    let link = links(&app, 1).await.remove(0);
    assert!(link.starts_with("/verify?token="), "{link}");
    app.stop().await;

    // Below the floor the setting is refused at start-up, naming it.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("work")
        .env("MAILROOM_VERIFY_TTL", "299")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("MAILROOM_VERIFY_TTL must be between 300")
    );
}

#[tokio::test]
async fn an_address_verified_with_non_ascii_capitals_reads_back_as_verified() {
    let app = app().await;
    let response = request(&app, json!({"email": "Ünal@example.com"})).await;
    assert_eq!(response.status(), 202);
    let link = links(&app, 1).await.remove(0);
    let token = link.trim_start_matches("/verify?token=").to_owned();
    let confirmed = app
        .client
        .post(app.url("/verify"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    for asked in ["Ünal@example.com", "ünal@example.com", "ÜNAL@EXAMPLE.COM"] {
        let (code, status) = app
            .get_json(&format!("/v1/addresses/{}", urlencode(asked)))
            .await;
        assert_eq!(code, 200);
        assert_eq!(status["verified"], true, "{asked}: {status}");
    }
    app.stop().await;
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
