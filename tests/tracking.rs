//! Own open and click tracking of outbox (and SMTP) mail: the rewritten message, the hits
//! answered at once, recorded by a worker on the same timeline, status and stats as SendGrid's
//! events; machines' hits flagged and not counted; tampered tokens refused; what may not be
//! tracked refused at the API.

mod common;

use std::time::Duration;

use common::{
    app::{TestApp, eml_files, part_text, strict_mime},
    eventually,
};
use mailroom::{
    lists::links::LinkKeys,
    tracking::token::{Scope, Target},
};
use secrecy::SecretString;
use serde_json::{Value, json};

const KEYS: &str = "t1:0123456789abcdef0123456789abcdef";
const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15";
const SHOP: &str = "https://shop.example.com/sale?from=mail&id=7";

async fn app() -> TestApp {
    let mut app = TestApp::spawn(|s| {
        s.link_keys = Some(SecretString::from(KEYS));
        s.public_url = "https://mail.example.com".to_owned();
        s.transactional_categories = "security".to_owned();
        s.tracked_categories = "news".to_owned();
    })
    .await;
    app.start_worker();
    app
}

/// The `/t/…` paths in `html`, in order, without the public URL.
fn tracking_paths(html: &str, kind: &str) -> Vec<String> {
    html.split("https://mail.example.com")
        .skip(1)
        .filter(|rest| rest.starts_with(&format!("/t/{kind}/")))
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// A GET (or HEAD) of `path` with `user_agent` and extra `headers`, without following a
/// redirect: (status, Location, content type, body length).
async fn hit(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    user_agent: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Option<String>, usize) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client
        .request(method, app.url(path))
        .header("user-agent", user_agent);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (status, location, kind) = (
        response.status().as_u16(),
        header("location"),
        header("content-type"),
    );
    (
        status,
        location,
        kind,
        response.bytes().await.unwrap().len(),
    )
}

/// The message's timeline events of `kind`, once there are `count`.
async fn events(app: &TestApp, id: &str, kind: &str, count: usize) -> Vec<Value> {
    eventually(
        Duration::from_secs(20),
        &format!("{count} {kind} events"),
        || async {
            let (_, record) = app.status(id).await;
            let found: Vec<Value> = record["timeline"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["event"] == kind)
                .cloned()
                .collect();
            (found.len() >= count).then_some(found)
        },
    )
    .await
}

#[tokio::test]
async fn a_tracked_message_reports_opens_and_clicks_and_machines_are_told_apart() {
    let app = app().await;
    let id = app
        .send_and_wait(&json!({
            "to": "ada@example.org",
            "subject": "The sale",
            "html": format!(r#"<html><body><p>Hi Ada, <a href="{}">the sale</a> or <a href="mailto:help@example.com">write</a>.</p></body></html>"#, SHOP.replace('&', "&amp;")),
            "categories": ["offers"],
            "tracking": {"opens": true, "clicks": true},
        }))
        .await;
    let eml = app.outbox.path().join(format!("{id}.eml"));
    let summary = strict_mime(&eml).await;
    let html = part_text(&summary, "text/html");
    let text = part_text(&summary, "text/plain");
    assert!(
        text.contains(SHOP),
        "the text part shows the real link: {text}"
    );
    assert!(html.contains("mailto:help@example.com"), "{html}");
    let opens = tracking_paths(&html, "o");
    let clicks = tracking_paths(&html, "c");
    assert_eq!((opens.len(), clicks.len()), (1, 1), "{html}");
    let keys = LinkKeys::parse(KEYS).unwrap();
    let carried = Target::verify(&keys, clicks[0].trim_start_matches("/t/c/"), true).unwrap();
    assert_eq!(carried.url.as_deref(), Some(SHOP));
    assert_eq!(carried.scope, Scope::Message(id.parse().unwrap()));

    // A person opens it: the image, at once.
    let (status, _, kind, length) = hit(&app, reqwest::Method::GET, &opens[0], BROWSER, &[]).await;
    assert_eq!(
        (status, kind.as_deref(), length),
        (200, Some("image/gif"), 43)
    );
    // Apple Mail Privacy Protection fetches it too, and a prefetch.
    let apple = [("x-forwarded-for", "17.58.101.7")];
    hit(&app, reqwest::Method::GET, &opens[0], "Mozilla/5.0", &apple).await;
    // A click right after the hand-over: a link scanner's. (The token says when the message
    // was handed over; one signed "now" keeps a slow test machine from making it a person's.)
    let instant = Target {
        sent_at: u32::try_from(chrono::Utc::now().timestamp()).unwrap(),
        ..carried.clone()
    };
    let path = format!("/t/c/{}", instant.sign(&keys));
    let (status, location, ..) = hit(&app, reqwest::Method::GET, &path, BROWSER, &[]).await;
    assert_eq!((status, location.as_deref()), (302, Some(SHOP)));
    // The link as mailed works the same.
    let (status, location, ..) = hit(&app, reqwest::Method::HEAD, &clicks[0], BROWSER, &[]).await;
    assert_eq!((status, location.as_deref()), (302, Some(SHOP)));
    // A person's click a minute later (a token as the message would carry, signed then).
    let later = Target {
        sent_at: carried.sent_at - 60,
        ..carried.clone()
    };
    let path = format!("/t/c/{}", later.sign(&keys));
    let (status, location, ..) = hit(&app, reqwest::Method::GET, &path, BROWSER, &[]).await;
    assert_eq!((status, location.as_deref()), (302, Some(SHOP)));

    let opened = events(&app, &id, "open", 1).await;
    assert_eq!(opened[0]["source"], "tracking", "{opened:?}");
    let machine = events(&app, &id, "machine_open", 1).await;
    assert_eq!(machine[0]["reason"], "Apple Mail Privacy Protection");
    let clicked = events(&app, &id, "click", 1).await;
    assert_eq!(
        clicked[0]["url"], "https://shop.example.com/sale",
        "{clicked:?}"
    );
    let scanners = events(&app, &id, "scanner_click", 2).await;
    let reasons: Vec<&str> = scanners
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.ends_with("after the hand-over")),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"HEAD request"), "{reasons:?}");
    let (_, record) = app.status(&id).await;
    assert_eq!(record["status"], "clicked", "{record}");
    assert_eq!(
        record["recipients"]["ada@example.org"], "clicked",
        "{record}"
    );
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let (_, stats) = app
        .get_json(&format!(
            "/v1/stats?category=offers&from={today}&to={today}"
        ))
        .await;
    let totals = &stats["totals"];
    assert_eq!(
        (
            &totals["opened"],
            &totals["unique_opens"],
            &totals["clicked"],
            &totals["unique_clicks"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1)),
        "machines are not counted: {stats}"
    );
    app.stop().await;
}

#[tokio::test]
async fn tampered_or_foreign_tokens_get_404_and_never_a_redirect() {
    let app = app().await;
    let keys = LinkKeys::parse(KEYS).unwrap();
    let target = Target {
        scope: Scope::Message(mailroom_jobs::MessageId::fresh()),
        sent_at: 1,
        url: Some("https://example.com/".to_owned()),
    };
    let good = target.sign(&keys);
    let evil = Target {
        url: Some("https://evil.example/".to_owned()),
        ..target.clone()
    }
    .sign(&LinkKeys::parse("t1:ffffffffffffffffffffffffffffffff").unwrap());
    let mut altered = good.clone().into_bytes();
    altered[10] ^= 1;
    for path in [
        format!("/t/c/{evil}"),
        format!("/t/c/{}", String::from_utf8(altered).unwrap()),
        format!("/t/o/{good}"),
        "/t/c/not-a-token".to_owned(),
        format!("/t/c/{}", "A".repeat(7000)),
    ] {
        let (status, location, ..) = hit(&app, reqwest::Method::GET, &path, BROWSER, &[]).await;
        assert_eq!((status, location), (404, None), "{path}");
    }
    let (status, location, ..) = hit(
        &app,
        reqwest::Method::GET,
        &format!("/t/c/{good}"),
        BROWSER,
        &[],
    )
    .await;
    assert_eq!(
        (status, location.as_deref()),
        (302, Some("https://example.com/"))
    );
    app.stop().await;
}

#[tokio::test]
async fn what_may_not_be_tracked_is_refused_and_untracked_mail_is_left_alone() {
    let app = app().await;
    let tracked = json!({"opens": true, "clicks": false});
    for (body, why) in [
        (
            json!({"to": ["a@example.org", "b@example.org"], "subject": "Hi", "html": "<p>x</p>", "tracking": tracked}),
            "one recipient",
        ),
        (
            json!({"to": "a@example.org", "subject": "Hi", "html": "<p>x</p>", "categories": ["security"], "tracking": tracked}),
            "transactional",
        ),
        (
            json!({"to": "a@example.org", "tracking": tracked, "template": {"name": "password_reset", "data": {"name": "Ada", "link": "https://app.example.com/reset?t=1", "expires_in_minutes": 5}}}),
            "secret link",
        ),
    ] {
        let response = app.post_email(&body).await;
        assert_eq!(response.status().as_u16(), 422, "{why}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], "tracking", "{why}: {error}");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(why),
            "{why}: {error}"
        );
    }
    // Without `tracking`, a message is sent as written.
    let html = format!(
        r#"<p><a href="{}">sale</a></p>"#,
        SHOP.replace('&', "&amp;")
    );
    let id = app
        .send_and_wait(&json!({"to": "a@example.org", "subject": "Hi", "html": html}))
        .await;
    let summary = strict_mime(&app.outbox.path().join(format!("{id}.eml"))).await;
    assert_eq!(part_text(&summary, "text/html").trim(), html);
    // A category tracked by default (MAILROOM_TRACKED_CATEGORIES) is tracked without asking.
    let id = app
        .send_and_wait(
            &json!({"to": "a@example.org", "subject": "Hi", "html": html, "categories": ["news"]}),
        )
        .await;
    let summary = strict_mime(&app.outbox.path().join(format!("{id}.eml"))).await;
    let tracked = part_text(&summary, "text/html");
    assert_eq!(
        (
            tracking_paths(&tracked, "o").len(),
            tracking_paths(&tracked, "c").len()
        ),
        (1, 1),
        "{tracked}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_campaign_is_tracked_by_default_and_its_opens_count_on_the_campaign() {
    let mut app = TestApp::spawn(|s| {
        s.link_keys = Some(SecretString::from(KEYS));
        s.public_url = "https://mail.example.com".to_owned();
    })
    .await;
    let (status, list) = app
        .call(
            "POST",
            "/v1/lists",
            &json!({"name": "News", "optin": "single", "visibility": "private"}),
        )
        .await;
    assert_eq!(status, 201, "{list}");
    let list = list["id"].as_u64().unwrap();
    app.import_confirmed(list, "email,name\nada@example.org,Ada\n")
        .await;
    let (status, campaign) = app
        .call(
            "POST",
            "/v1/campaigns",
            &json!({"name": "Sale", "lists": [list], "subject": "Sale", "html": format!(r#"<p><a href="{SHOP}">Shop</a> · <a href="{{{{unsubscribe_url}}}}">Unsubscribe</a></p>"#)}),
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    app.start_worker();
    app.schedule_campaign(&id).await;
    let files = eventually(Duration::from_secs(30), "the campaign's email", || async {
        let files = eml_files(app.outbox.path());
        (!files.is_empty()).then_some(files)
    })
    .await;
    let html = part_text(&strict_mime(&files[0]).await, "text/html");
    assert!(
        html.contains("https://mail.example.com/u/"),
        "the unsubscribe link is not rewritten: {html}"
    );
    assert_eq!(tracking_paths(&html, "c").len(), 1, "{html}");
    let opens = tracking_paths(&html, "o");
    let (status, ..) = hit(&app, reqwest::Method::GET, &opens[0], BROWSER, &[]).await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(20), "the campaign's open", || async {
        let (_, body) = app.get_json(&format!("/v1/campaigns/{id}")).await;
        (body["engagement"]["opens"] == 1).then_some(())
    })
    .await;
    app.stop().await;
}
