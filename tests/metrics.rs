//! Metrics an on-call engineer can alert on: `/metrics` of `serve` (HTTP requests by route
//! template, the queues' depth and oldest ready age, campaigns in progress) and of a worker's
//! own listener (`MAILROOM_METRICS_LISTEN`: job runs, provider answers by class, events, Redis
//! round trips).
//!
//! The recorder is one per process and the tests of this file share it: every assertion is on
//! a label only its own test produces, or on growth across the test's own action.

mod common;

use std::time::Duration;

use common::{
    app::{TestApp, simple_email},
    eventually, free_port,
};
use mailroom::config::ProviderKind;
use secrecy::SecretString;
use serde_json::json;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

/// The value of the sample `name{labels}` (labels as written, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn serve_counts_requests_by_route_template_and_reports_the_oldest_ready_job() {
    let app = TestApp::spawn(|_| {}).await;
    let accepted =
        "mailroom_http_requests_total{route=\"/v1/emails\",method=\"POST\",status=\"202\"}";
    let unknown =
        "mailroom_http_requests_total{route=\"/v1/emails/{id}\",method=\"GET\",status=\"404\"}";
    let before = scrape(&app.client, &app.url("/metrics")).await;
    assert_eq!(app.post_email(&simple_email()).await.status().as_u16(), 202);
    let (status, _) = app
        .get_json("/v1/emails/0190d7a3-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, 404);
    // The job waits (no worker here): its age grows from when it was pushed.
    let text = eventually(
        Duration::from_secs(10),
        "the oldest ready job to have an age",
        || async {
            let text = scrape(&app.client, &app.url("/metrics")).await;
            let age = sample(
                &text,
                "mailroom_queue_oldest_ready_age_seconds{queue=\"email\"}",
            )?;
            (age > 0.0).then_some(text)
        },
    )
    .await;
    let grew = |series: &str| {
        sample(&text, series).unwrap_or(0.0) - sample(&before, series).unwrap_or(0.0)
    };
    assert!(grew(accepted) >= 1.0, "{text}");
    // The path had an id in it; the label is the template, so ids cannot mint series.
    assert!(grew(unknown) >= 1.0, "{text}");
    assert!(!text.contains("0190d7a3"), "{text}");
    assert!(
        text.contains("# TYPE mailroom_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(
            "mailroom_http_request_duration_seconds_bucket{route=\"/v1/emails\",method=\"POST\",le=\"0.005\"}"
        ),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mailroom_queue_oldest_ready_age_seconds{queue=\"verification\"}"
        ),
        Some(0.0),
        "an empty queue has no age: {text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_worker_serves_its_own_metrics_on_its_listener() {
    let port = free_port();
    let mut app = TestApp::spawn(move |s| {
        s.metrics_listen = Some(format!("127.0.0.1:{port}"));
    })
    .await;
    app.start_worker();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let done = "mailroom_jobs_total{queue=\"email\",outcome=\"done\"}";
    let outbox = "mailroom_provider_sends_total{provider=\"outbox\",result=\"2xx\"}";
    // The listener is up once the worker has started.
    let before = eventually(Duration::from_secs(10), "the worker's listener", || async {
        let response = app.client.get(&url).send().await.ok()?;
        response.text().await.ok()
    })
    .await;
    app.send_and_wait(&simple_email()).await;
    let text = eventually(Duration::from_secs(10), "the run to be counted", || async {
        let text = scrape(&app.client, &url).await;
        let grew = sample(&text, done).unwrap_or(0.0) - sample(&before, done).unwrap_or(0.0);
        (grew >= 1.0).then_some(text)
    })
    .await;
    assert!(
        sample(&text, outbox).unwrap_or(0.0) > sample(&before, outbox).unwrap_or(0.0),
        "{text}"
    );
    for series in [
        "mailroom_job_duration_seconds_bucket{queue=\"email\",le=\"+Inf\"}",
        "mailroom_provider_send_duration_seconds_count{provider=\"outbox\"}",
    ] {
        assert!(text.contains(series), "{series} in {text}");
    }
    let health = app
        .client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // Redis is pinged every few seconds.
    eventually(Duration::from_secs(15), "a Redis round trip", || async {
        let text = scrape(&app.client, &url).await;
        sample(&text, "mailroom_redis_roundtrip_seconds_count").filter(|n| *n >= 1.0)
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn provider_answers_are_counted_by_class() {
    let mock = MockServer::start().await;
    // One 429, then accepted.
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .mount(&mock)
        .await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).insert_header("x-message-id", "m-1"))
        .mount(&mock)
        .await;
    let uri = mock.uri();
    let port = free_port();
    let mut app = TestApp::spawn(move |s| {
        s.provider = ProviderKind::Sendgrid;
        s.sendgrid_api_url = uri;
        s.sendgrid_api_key = Some(SecretString::from("SG.metrics-test"));
        s.metrics_listen = Some(format!("127.0.0.1:{port}"));
    })
    .await;
    let throttled = "mailroom_provider_sends_total{provider=\"sendgrid\",result=\"429\"}";
    let accepted = "mailroom_provider_sends_total{provider=\"sendgrid\",result=\"2xx\"}";
    let retried = "mailroom_jobs_total{queue=\"email\",outcome=\"retried\"}";
    app.start_worker();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let before = eventually(Duration::from_secs(10), "the worker's listener", || async {
        let response = app.client.get(&url).send().await.ok()?;
        response.text().await.ok()
    })
    .await;
    app.send_and_wait(&json!({
        "to": [{"email": "grace@example.com"}],
        "subject": "Counted",
        "text": "Each answer is counted by its class."
    }))
    .await;
    let text = scrape(&app.client, &url).await;
    let grew = |series: &str| {
        sample(&text, series).unwrap_or(0.0) - sample(&before, series).unwrap_or(0.0)
    };
    assert!(grew(throttled) >= 1.0, "{text}");
    assert!(grew(accepted) >= 1.0, "{text}");
    assert!(grew(retried) >= 1.0, "{text}");
    // Nothing secret in a label or a help text.
    assert!(!text.contains("SG.metrics-test"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn serve_reports_a_live_campaigns_progress() {
    let app = TestApp::spawn(|s| {
        s.link_keys = Some(SecretString::from("m1:0123456789abcdef0123456789abcdef"));
    })
    .await;
    let (list, _) = app.subscribed("Metrics", "lin@example.com").await;
    let (status, campaign) = app
        .call(
            "POST",
            "/v1/campaigns",
            &json!({
                "name": "Metrics",
                "lists": [list],
                "subject": "Hello",
                "html": "<p>Hello</p><p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>",
                "send_at": "2999-01-01T00:00:00Z"
            }),
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let (status, answer) = app
        .call(
            "POST",
            &format!("/v1/campaigns/{id}/schedule"),
            &json!({"send_at": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let text = scrape(&app.client, &app.url("/metrics")).await;
    assert_eq!(
        sample(
            &text,
            &format!("mailroom_campaign_recipients{{campaign=\"{id}\",state=\"sent\"}}")
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("mailroom_campaign_running{{campaign=\"{id}\"}}")
        ),
        Some(0.0),
        "scheduled, not running: {text}"
    );
    app.stop().await;
}

/// The `mailroom_…` names in `text`, histogram series folded into their metric.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (start, _) in text.match_indices("mailroom_") {
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let name = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name)
            .to_owned();
        names.insert(name);
    }
    names
}

#[test]
fn the_dashboard_and_alert_rules_use_only_metrics_mailroom_exports() {
    let exported = metric_names(
        &[
            include_str!("../src/metrics.rs"),
            include_str!("../src/http/metrics.rs"),
        ]
        .concat(),
    );
    for (file, text) in [
        (
            "grafana-dashboard.json",
            include_str!("../docs/operations/grafana-dashboard.json"),
        ),
        ("alerts.yml", include_str!("../docs/operations/alerts.yml")),
    ] {
        let used = metric_names(text);
        assert!(used.len() >= 8, "{file} uses the metrics: {used:?}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses {unknown:?}, which mailroom does not export"
        );
    }
    // The dashboard is JSON Grafana can import.
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../docs/operations/grafana-dashboard.json")).unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() > 10);
}
