//! Address validation through the API: DNS verdicts against a real DNS server on loopback
//! (tests/common/dns.rs), the Redis cache, the batch endpoint, the offline checks, and the
//! sending endpoints refusing bad syntax.

mod common;

use std::{net::Ipv4Addr, time::Duration};

use common::{
    app::{API_KEY, TestApp, simple_email},
    dns::{FixtureDns, Zone},
};
use mailroom::validation::{DnsAnswer, DnsSettings, DomainChecker};
use redis::AsyncCommands;
use serde_json::{Value, json};

fn zones() -> Vec<(&'static str, Zone)> {
    vec![
        (
            "has-mx.fixture.net",
            Zone::Mx(vec![(10, "mx1.has-mx.fixture.net")]),
        ),
        (
            "a-only.fixture.net",
            Zone::AOnly(Ipv4Addr::new(192, 0, 2, 10)),
        ),
        ("null-mx.fixture.net", Zone::Mx(vec![(0, ".")])),
        ("empty.fixture.net", Zone::Empty),
        ("broken.fixture.net", Zone::Broken),
        ("silent.fixture.net", Zone::Silent),
    ]
}

async fn app_with_dns(dns: &FixtureDns) -> TestApp {
    let resolver = dns.address.to_string();
    TestApp::spawn(|s| {
        s.dns_resolver = Some(resolver);
        s.dns_timeout_ms = 300;
    })
    .await
}

async fn validate(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/v1/validations/email"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn codes(answer: &Value) -> Vec<String> {
    answer["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn dns_verdicts_follow_mx_implicit_mx_null_mx_and_nxdomain() {
    let dns = FixtureDns::start(&zones()).await;
    let app = app_with_dns(&dns).await;
    // (domain, verdict, dns check or null, first reason code)
    let cases = [
        (
            "has-mx.fixture.net",
            "valid",
            json!({"mx": true, "a": false, "null_mx": false, "exists": true}),
            None,
        ),
        (
            "a-only.fixture.net",
            "valid",
            json!({"mx": false, "a": true, "null_mx": false, "exists": true}),
            None,
        ),
        (
            "null-mx.fixture.net",
            "invalid",
            json!({"mx": false, "a": false, "null_mx": true, "exists": true}),
            Some("dns.null_mx"),
        ),
        (
            "empty.fixture.net",
            "invalid",
            json!({"mx": false, "a": false, "null_mx": false, "exists": true}),
            Some("dns.no_mail_host"),
        ),
        (
            "missing.fixture.net",
            "invalid",
            json!({"mx": false, "a": false, "null_mx": false, "exists": false}),
            Some("dns.nxdomain"),
        ),
        (
            "broken.fixture.net",
            "risky",
            Value::Null,
            Some("dns.unanswered"),
        ),
        (
            "silent.fixture.net",
            "risky",
            Value::Null,
            Some("dns.unanswered"),
        ),
    ];
    for (domain, verdict, check, reason) in cases {
        let (status, answer) = validate(&app, json!({"email": format!("grace@{domain}")})).await;
        assert_eq!(status, 200, "{domain}: {answer}");
        assert_eq!(answer["verdict"], verdict, "{domain}: {answer}");
        assert_eq!(answer["checks"]["dns"], check, "{domain}: {answer}");
        assert_eq!(
            codes(&answer).first().map(String::as_str),
            reason,
            "{domain}: {answer}"
        );
        let score = answer["score"].as_f64().unwrap();
        match verdict {
            "valid" => assert!((score - 1.0).abs() < f64::EPSILON, "{domain}: {score}"),
            "invalid" => assert!(score.abs() < f64::EPSILON, "{domain}: {score}"),
            _ => assert!(score > 0.0 && score < 1.0, "{domain}: {score}"),
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn dns_answers_are_cached_in_redis_per_domain_and_failures_are_not() {
    let dns = FixtureDns::start(&zones()).await;
    let app = app_with_dns(&dns).await;
    for _ in 0..3 {
        validate(&app, json!({"email": "a@has-mx.fixture.net"})).await;
        validate(&app, json!({"email": "a@missing.fixture.net"})).await;
        validate(&app, json!({"email": "a@broken.fixture.net"})).await;
    }
    assert_eq!(
        dns.queries_for("has-mx.fixture.net"),
        1,
        "the positive answer is cached"
    );
    assert_eq!(
        dns.queries_for("missing.fixture.net"),
        1,
        "NXDOMAIN is cached"
    );
    // The resolver may retry a SERVFAIL, but every request asks again.
    let servfail_queries = dns.queries_for("broken.fixture.net");
    assert!(
        servfail_queries >= 3,
        "SERVFAIL is never cached ({servfail_queries} queries)"
    );

    let mut conn = app.redis.conn();
    let prefix = &app.redis.prefix;
    let positive: i64 = conn
        .ttl(format!("{prefix}:dns:has-mx.fixture.net"))
        .await
        .unwrap();
    let negative: i64 = conn
        .ttl(format!("{prefix}:dns:missing.fixture.net"))
        .await
        .unwrap();
    assert!((3500..=3600).contains(&positive), "positive TTL {positive}");
    assert!((200..=300).contains(&negative), "negative TTL {negative}");
    let broken: bool = conn
        .exists(format!("{prefix}:dns:broken.fixture.net"))
        .await
        .unwrap();
    assert!(!broken);

    // Another process (another checker on the same Redis) reads the same cache.
    let other = DomainChecker::new(
        DnsSettings {
            resolver: Some(dns.address),
            timeout: Duration::from_millis(300),
            positive_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(300),
        },
        app.redis.conn(),
        prefix,
    )
    .unwrap();
    let answers = other
        .check_all(&["has-mx.fixture.net".to_owned()])
        .await
        .unwrap();
    assert!(matches!(answers["has-mx.fixture.net"], DnsAnswer::Answered(c) if c.mx));
    assert_eq!(dns.queries_for("has-mx.fixture.net"), 1);
    app.stop().await;
}

#[tokio::test]
async fn dns_false_skips_the_lookup() {
    let dns = FixtureDns::start(&zones()).await;
    let app = app_with_dns(&dns).await;
    let (_, answer) = validate(
        &app,
        json!({"email": "a@missing.fixture.net", "dns": false}),
    )
    .await;
    assert_eq!(answer["verdict"], "valid", "{answer}");
    assert_eq!(answer["checks"]["dns"], Value::Null);
    assert_eq!(dns.queries_for("missing.fixture.net"), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_answers_in_order_and_looks_each_domain_up_once() {
    let dns = FixtureDns::start(&zones()).await;
    let app = app_with_dns(&dns).await;
    let domains = [
        "has-mx.fixture.net",
        "a-only.fixture.net",
        "missing.fixture.net",
    ];
    let emails: Vec<String> = (0..999)
        .map(|i| format!("user{i}@{}", domains[i % 3]))
        .collect();
    let mut with_bad = emails.clone();
    with_bad.push("not an address".to_owned());
    let response = app
        .client
        .post(app.url("/v1/validations/batch"))
        .bearer_auth(API_KEY)
        .json(&json!({"emails": with_bad}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    for (i, result) in results.iter().take(999).enumerate() {
        assert_eq!(result["email"], emails[i]);
        let expected = if i % 3 == 2 { "invalid" } else { "valid" };
        assert_eq!(result["verdict"], expected, "{result}");
    }
    assert_eq!(results[999]["verdict"], "invalid");
    assert_eq!(codes(&results[999])[0], "syntax.missing_at");
    // One MX query per domain; the A-only domain also needs its A lookup (and AAAA, which the
    // resolver asks in parallel).
    assert_eq!(dns.queries_for("has-mx.fixture.net"), 1);
    assert_eq!(dns.queries_for("missing.fixture.net"), 1);
    assert!(dns.queries_for("a-only.fixture.net") <= 3);

    for (count, what) in [(0, "empty"), (1001, "over the limit")] {
        let emails: Vec<String> = (0..count)
            .map(|i| format!("u{i}@has-mx.fixture.net"))
            .collect();
        let response = app
            .client
            .post(app.url("/v1/validations/batch"))
            .bearer_auth(API_KEY)
            .json(&json!({"emails": emails}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], "emails", "{what}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn offline_checks_explain_the_verdict() {
    let app = TestApp::spawn(|s| {
        s.disposable_allow = "trashmail.com".to_owned();
        s.disposable_deny = "burner.example.org".to_owned();
    })
    .await;
    let check = |email: &str| json!({"email": email, "dns": false});

    let (_, answer) = validate(&app, check("ada@gmail.com")).await;
    assert_eq!(answer["verdict"], "valid", "{answer}");
    assert_eq!(answer["checks"]["free_provider"], true);
    assert_eq!(answer["reasons"], json!([]));

    let (_, answer) = validate(&app, check("ada@mailinator.com")).await;
    assert_eq!(answer["verdict"], "risky", "{answer}");
    assert_eq!(answer["checks"]["disposable"], true);
    assert_eq!(codes(&answer), ["disposable"]);
    let (_, answer) = validate(&app, check("ada@x.burner.example.org")).await;
    assert_eq!(
        answer["checks"]["disposable"], true,
        "the operator's deny list: {answer}"
    );
    let (_, answer) = validate(&app, check("ada@trashmail.com")).await;
    assert_eq!(
        answer["checks"]["disposable"], false,
        "the operator's allow list: {answer}"
    );

    let (_, answer) = validate(&app, check("Support@example.org")).await;
    assert_eq!(answer["verdict"], "risky", "{answer}");
    assert_eq!(answer["checks"]["role"], true);
    assert_eq!(
        answer["normalized"], "support@example.org",
        "RFC 2142 names lower-cased"
    );

    let (_, answer) = validate(&app, check("ada@gmial.com")).await;
    assert_eq!(answer["suggestion"], "ada@gmail.com", "{answer}");
    assert_eq!(answer["verdict"], "risky");
    assert!(codes(&answer).contains(&"typo".to_owned()));

    let (_, answer) = validate(&app, check("\"ada lovelace\"@example.org")).await;
    assert_eq!(answer["verdict"], "invalid");
    assert_eq!(answer["checks"]["syntax"], false);
    assert_eq!(codes(&answer), ["syntax.quoted_local_part"]);
    assert!(
        answer["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("quoted")
    );

    let (_, answer) = validate(&app, check("ada@printer.local")).await;
    assert_eq!(answer["verdict"], "invalid");
    assert_eq!(codes(&answer), ["special_use_domain"]);

    let (_, answer) = validate(&app, check("Ada@BÜCHER.example.org")).await;
    assert_eq!(answer["normalized"], "Ada@bücher.example.org", "{answer}");
    assert_eq!(answer["ascii"], "Ada@xn--bcher-kva.example.org");
    assert_eq!(answer["local"], "Ada");
    assert_eq!(answer["domain"], "bücher.example.org");

    let (_, answer) = validate(&app, check("用户@example.org")).await;
    assert_eq!(answer["checks"]["smtputf8"], true);
    assert_eq!(answer["verdict"], "valid");
    assert_eq!(answer["ascii"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn validation_needs_a_key_and_a_well_formed_body() {
    let app = TestApp::spawn(|_| {}).await;
    let response = app
        .client
        .post(app.url("/v1/validations/email"))
        .json(&json!({"email": "a@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    for body in [
        json!({}),
        json!({"email": 42}),
        json!({"email": "a@example.org", "colour": 1}),
    ] {
        let (status, answer) = validate(&app, body.clone()).await;
        assert!((400..500).contains(&status), "{body}: {status}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    app.stop().await;
}

#[tokio::test]
async fn sending_endpoints_refuse_bad_syntax_naming_the_construct() {
    let app = TestApp::spawn(|_| {}).await;
    let mut body = simple_email();
    body["to"][0]["email"] = json!("\"ada lovelace\"@example.com");
    let response = app.post_email(&body).await;
    assert_eq!(response.status(), 422);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["field"], "to[0].email", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quoted"),
        "{answer}"
    );

    let response = app
        .client
        .post(app.url("/v1/verifications"))
        .bearer_auth(API_KEY)
        .json(&json!({"email": "ada@[192.0.2.1]", "return_url": "https://app.example.com/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["field"], "email", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("literal"),
        "{answer}"
    );

    // Advisory checks do not block sending: a disposable address is accepted.
    let mut body = simple_email();
    body["to"][0]["email"] = json!("ada@mailinator.com");
    assert_eq!(app.post_email(&body).await.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn the_cache_keys_stay_under_the_test_prefix() {
    // Guard for the harness rule: every key a validation writes is under the prefix.
    let dns = FixtureDns::start(&zones()).await;
    let app = app_with_dns(&dns).await;
    validate(&app, json!({"email": "a@has-mx.fixture.net"})).await;
    let keys = app.redis.all_keys().await;
    assert_eq!(
        keys,
        [format!("{}:dns:has-mx.fixture.net", app.redis.prefix)]
    );
    app.stop().await;
}

#[tokio::test]
async fn the_suppression_list_counts_as_known_bounces() {
    let app = TestApp::spawn(|_| {}).await;
    for (email, reason) in [
        ("bounced@example.org", "bounce"),
        ("complained@example.org", "spam_report"),
    ] {
        let response = app
            .client
            .put(app.url(&format!("/v1/suppressions/{email}")))
            .bearer_auth(API_KEY)
            .json(&json!({"reason": reason}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let (_, answer) = validate(&app, json!({"email": "Bounced@Example.org", "dns": false})).await;
    assert_eq!(answer["verdict"], "invalid", "{answer}");
    assert_eq!(answer["checks"]["suppressed"], true);
    assert_eq!(codes(&answer), ["known_bounce"]);
    let (_, answer) = validate(
        &app,
        json!({"email": "complained@example.org", "dns": false}),
    )
    .await;
    assert_eq!(answer["verdict"], "risky", "{answer}");
    assert_eq!(codes(&answer), ["suppressed"]);
    let (_, answer) = validate(&app, json!({"email": "fresh@example.org", "dns": false})).await;
    assert_eq!(answer["checks"]["suppressed"], false);
    assert_eq!(answer["verdict"], "valid");
    app.stop().await;
}
