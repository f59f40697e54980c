//! `mailroom doctor` against local stand-ins: the tests' Redis, a `mailroom serve` at the public
//! URL, a SendGrid stand-in for `GET /v3/scopes`, an SMTP server that wants AUTH, the tests' own
//! DNS server. A deployment whose parts work passes (exit 0); each broken part fails naming
//! what to change (exit 1).

mod common;

use std::process::Stdio;

use common::{
    app::{SmtpSink, TestApp},
    dns::{FixtureDns, Zone},
    redis_server::RedisServer,
};
use serde_json::json;
use tokio::process::Command;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

/// `mailroom dkim keygen` into `dir`: the key file and its record.
async fn keygen(dir: &std::path::Path, domain: &str) -> (std::path::PathBuf, String) {
    let key = dir.join(format!("{domain}.pem"));
    let output = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args([
            "dkim",
            "keygen",
            "--domain",
            domain,
            "--selector",
            "mr1",
            "--out",
        ])
        .arg(&key)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).unwrap();
    let record = printed
        .split("IN TXT")
        .nth(1)
        .unwrap()
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<String>();
    (key, record)
}

/// What a working deployment talks to: a `mailroom serve` at the public URL, a SendGrid
/// stand-in whose key may send, an SMTP server that wants AUTH, the tests' DNS.
struct Deployment {
    app: TestApp,
    sendgrid: MockServer,
    smtp: SmtpSink,
}

const SENDGRID_KEY: &str = "SG.doctor-test-key";

impl Deployment {
    async fn start() -> Self {
        let sendgrid = MockServer::start().await;
        Mock::given(matchers::method("GET"))
            .and(matchers::path("/v3/scopes"))
            .and(matchers::header(
                "authorization",
                format!("Bearer {SENDGRID_KEY}").as_str(),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"scopes": ["mail.batch.read", "mail.send", "user.profile.read"]}),
            ))
            .mount(&sendgrid)
            .await;
        Self {
            app: TestApp::spawn(|_| {}).await,
            sendgrid,
            smtp: SmtpSink::start_with_auth("relay-user", "relay-pass").await,
        }
    }

    /// `mailroom doctor` for mail from `from` signed with `dkim`, asking `dns`, with
    /// `overrides` on top of the working settings: exit code, output.
    async fn doctor(
        &self,
        dns: &FixtureDns,
        from: &str,
        provider: &str,
        dkim: &str,
        overrides: &[(&str, String)],
    ) -> (i32, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mailroom"));
        command
            .arg("doctor")
            .env("MAILROOM_FROM", from)
            .env("MAILROOM_PROVIDER", provider)
            .env("MAILROOM_API_KEYS", "doctor-key")
            .env("MAILROOM_PUBLIC_URL", &self.app.address)
            .env("SENDGRID_API_KEY", SENDGRID_KEY)
            .env("SENDGRID_API_URL", self.sendgrid.uri())
            .env(
                "SMTP_URL",
                format!("smtp://relay-user:relay-pass@127.0.0.1:{}", self.smtp.port),
            )
            .env("MAILROOM_DKIM_KEYS", dkim)
            .env("MAILROOM_DNS_RESOLVER", dns.address.to_string())
            .env("REDIS_URL", common::redis_url())
            .env(
                "MAILROOM_BOUNCE_DOMAIN",
                format!("bounces.{}", from.split('@').nth(1).unwrap()),
            )
            .stdin(Stdio::null());
        for (name, value) in overrides {
            command.env(name, value);
        }
        let output = command.output().await.unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }
}

impl Deployment {
    /// [`Deployment::doctor`] for mail from a domain without DNS records or DKIM keys.
    async fn plain(
        &self,
        dns: &FixtureDns,
        provider: &str,
        overrides: &[(&str, String)],
    ) -> (i32, String) {
        self.doctor(dns, "news@plain.example", provider, "", overrides)
            .await
    }
}

/// The line about `what` in `out`.
fn line<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!("  {what}  ")))
        .unwrap_or_else(|| panic!("no {what} line: {out}"))
}

#[tokio::test]
async fn a_domain_that_publishes_spf_dkim_and_dmarc_passes_and_one_that_does_not_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (good_key, good_record) = keygen(dir.path(), "good.example").await;
    let (bad_key, _) = keygen(dir.path(), "bad.example").await;
    let (_, other_record) = keygen(dir.path(), "other.example").await;
    let dns = FixtureDns::start(&[
        (
            "good.example",
            Zone::Txt(vec![
                "google-site-verification=abc".to_owned(),
                "v=spf1 include:sendgrid.net ~all".to_owned(),
            ]),
        ),
        (
            "_dmarc.good.example",
            Zone::Txt(vec![
                "v=DMARC1; p=reject; rua=mailto:d@good.example".to_owned(),
            ]),
        ),
        ("mr1._domainkey.good.example", Zone::Txt(vec![good_record])),
        (
            "bounces.good.example",
            Zone::Mx(vec![(10, "mx.sendgrid.net")]),
        ),
        // bad.example: two SPF records, DMARC that only monitors, someone else's key.
        (
            "bad.example",
            Zone::Txt(vec![
                "v=spf1 mx -all".to_owned(),
                "v=spf1 a -all".to_owned(),
            ]),
        ),
        (
            "_dmarc.bad.example",
            Zone::Txt(vec!["v=DMARC1; p=none".to_owned()]),
        ),
        ("mr1._domainkey.bad.example", Zone::Txt(vec![other_record])),
    ])
    .await;

    let deployment = Deployment::start().await;
    let (code, out) = deployment
        .doctor(
            &dns,
            "news@good.example",
            "smtp",
            &format!("good.example:mr1:{}", good_key.display()),
            &[],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    for line in [
        "spf good.example",
        "dmarc good.example",
        "dkim mr1._domainkey.good.example",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("pass") && l.contains(line)),
            "{line}: {out}"
        );
    }

    let (code, out) = deployment
        .doctor(
            &dns,
            "news@bad.example",
            "sendgrid",
            &format!("bad.example:mr1:{}", bad_key.display()),
            &[],
        )
        .await;
    assert_eq!(code, 1, "{out}");
    let line = |what: &str| line(&out, what).to_owned();
    assert!(
        line("spf bad.example").starts_with("FAIL")
            && line("spf bad.example").contains("2 SPF records"),
        "{out}"
    );
    assert!(
        line("dmarc bad.example").starts_with("warn")
            && line("dmarc bad.example").contains("p=none"),
        "{out}"
    );
    assert!(
        line("dkim mr1._domainkey.bad.example").starts_with("FAIL")
            && line("dkim mr1._domainkey.bad.example").contains("another key"),
        "{out}"
    );

    // Nothing published at all: each check says what to publish.
    let (code, out) = deployment
        .doctor(&dns, "news@empty.example", "sendgrid", "", &[])
        .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        line_has(&out, "spf empty.example", "include:sendgrid.net"),
        "{out}"
    );
    assert!(
        line_has(&out, "dmarc empty.example", "v=DMARC1; p=none"),
        "{out}"
    );
}

fn line_has(out: &str, what: &str, needle: &str) -> bool {
    out.lines()
        .any(|l| l.starts_with("FAIL") && l.contains(what) && l.contains(needle))
}

#[tokio::test]
async fn a_deployment_whose_parts_work_passes_each_of_their_checks() {
    let dns = FixtureDns::start(&[]).await;
    let deployment = Deployment::start().await;
    let key = vector_public_key();
    let working = [
        ("MAILROOM_SENDGRID_WEBHOOK_KEY", key),
        (
            "MAILROOM_INBOUND_SECRET",
            "a-long-inbound-secret-0123456789".to_owned(),
        ),
        (
            "MAILROOM_LINK_KEYS",
            "d1:0123456789abcdef0123456789abcdef".to_owned(),
        ),
    ];
    for provider in ["sendgrid", "smtp"] {
        let (_, out) = deployment
            .doctor(&dns, "news@plain.example", provider, "", &working)
            .await;
        for what in [
            "settings",
            "redis version",
            "redis mode",
            "redis maxmemory-policy",
            "redis memory",
            "redis push script",
            "api keys",
            "public url",
            "webhook events",
            "webhook inbound",
            "link keys",
        ] {
            assert!(line(&out, what).starts_with("pass"), "{what}: {out}");
        }
        let provider_line = line(&out, &format!("provider {provider}"));
        assert!(provider_line.starts_with("pass"), "{out}");
        if provider == "smtp" {
            assert!(provider_line.contains("AUTH accepted"), "{out}");
        } else {
            assert!(provider_line.contains("may send"), "{out}");
        }
        // Secrets are never printed.
        for secret in [SENDGRID_KEY, "relay-pass", "a-long-inbound-secret"] {
            assert!(!out.contains(secret), "{secret} printed: {out}");
        }
    }
    // The stand-in saw the scopes request with the key (its matcher demands the header).
    let asked = deployment.sendgrid.received_requests().await.unwrap();
    assert!(asked.iter().any(|r| r.url.path() == "/v3/scopes"));
}

#[tokio::test]
async fn each_broken_part_fails_with_what_to_change() {
    let dns = FixtureDns::start(&[]).await;
    let deployment = Deployment::start().await;
    let closed = format!("127.0.0.1:{}", common::free_port());

    // A key that may not send, then one SendGrid does not know.
    let narrow = MockServer::start().await;
    Mock::given(matchers::path("/v3/scopes"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"scopes": ["stats.read"]})))
        .mount(&narrow)
        .await;
    let (code, out) = deployment
        .plain(&dns, "sendgrid", &[("SENDGRID_API_URL", narrow.uri())])
        .await;
    assert_eq!(code, 1, "{out}");
    let provider = line(&out, "provider sendgrid");
    assert!(
        provider.starts_with("FAIL") && provider.contains("mail.send"),
        "{out}"
    );
    let revoked = MockServer::start().await;
    Mock::given(matchers::path("/v3/scopes"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"errors": [{"field": null, "message": "authorization required"}]}),
        ))
        .mount(&revoked)
        .await;
    let (_, out) = deployment
        .plain(&dns, "sendgrid", &[("SENDGRID_API_URL", revoked.uri())])
        .await;
    let provider = line(&out, "provider sendgrid");
    assert!(
        provider.starts_with("FAIL")
            && provider.contains("401")
            && provider.contains("authorization required"),
        "{out}"
    );

    // A wrong relay password, then no relay at all.
    let port = deployment.smtp.port;
    let (_, out) = deployment
        .plain(
            &dns,
            "smtp",
            &[(
                "SMTP_URL",
                format!("smtp://relay-user:wrong@127.0.0.1:{port}"),
            )],
        )
        .await;
    let provider = line(&out, "provider smtp");
    assert!(
        provider.starts_with("FAIL") && provider.contains("535"),
        "{out}"
    );
    assert!(
        !out.contains("wrong@"),
        "the URL's password is not printed: {out}"
    );
    let (_, out) = deployment
        .plain(&dns, "smtp", &[("SMTP_URL", format!("smtp://{closed}"))])
        .await;
    assert!(line(&out, "provider smtp").starts_with("FAIL"), "{out}");

    // No API keys, a public URL nothing answers at.
    let (_, out) = deployment
        .plain(
            &dns,
            "smtp",
            &[
                ("MAILROOM_API_KEYS", String::new()),
                ("MAILROOM_PUBLIC_URL", format!("http://{closed}")),
            ],
        )
        .await;
    assert!(line(&out, "api keys").starts_with("FAIL"), "{out}");
    let public = line(&out, "public url");
    assert!(
        public.starts_with("FAIL") && public.contains("MAILROOM_PUBLIC_URL"),
        "{out}"
    );

    // Redis that does not answer: one line, no hang.
    let (code, out) = deployment
        .plain(&dns, "smtp", &[("REDIS_URL", format!("redis://{closed}"))])
        .await;
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "redis").starts_with("FAIL"), "{out}");

    // An evicting Redis.
    let mut evicting = RedisServer::start(&["--maxmemory-policy", "allkeys-lru"]);
    let (_, out) = deployment
        .plain(&dns, "smtp", &[("REDIS_URL", evicting.url())])
        .await;
    let policy = line(&out, "redis maxmemory-policy");
    assert!(
        policy.starts_with("FAIL") && policy.contains("noeviction"),
        "{out}"
    );
    evicting.kill();

    // Settings that do not parse are the one failure.
    let (code, out) = deployment
        .plain(&dns, "smtp", &[("MAILROOM_CONCURRENCY", "many".to_owned())])
        .await;
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "settings").starts_with("FAIL"), "{out}");
    assert!(out.contains("MAILROOM_CONCURRENCY"), "{out}");
}

/// The public key of SendGrid's first signature vector.
fn vector_public_key() -> String {
    let path = format!(
        "{}/tests/data/sendgrid/vectors/event_webhook_vectors.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let vectors: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    vectors[0]["public_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_postmark_token_passes_when_postmark_names_its_server_and_fails_with_the_fix_when_not() {
    let dns = FixtureDns::start(&[]).await;
    let deployment = Deployment::start().await;
    let postmark = MockServer::start().await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/server"))
        .and(matchers::header("x-postmark-server-token", "pm-good"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ID": 1, "Name": "Transactional"})),
        )
        .mount(&postmark)
        .await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/server"))
        .and(matchers::header("x-postmark-server-token", "pm-bad"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"ErrorCode": 10, "Message": "Bad or missing Server API token."}),
            ),
        )
        .mount(&postmark)
        .await;
    let with = |token: &str| {
        [
            ("POSTMARK_API_URL", postmark.uri()),
            ("POSTMARK_SERVER_TOKEN", token.to_owned()),
        ]
    };
    let (_, out) = deployment.plain(&dns, "postmark", &with("pm-good")).await;
    let provider = line(&out, "provider postmark");
    assert!(
        provider.starts_with("pass") && provider.contains("Transactional"),
        "{out}"
    );
    let (code, out) = deployment.plain(&dns, "postmark", &with("pm-bad")).await;
    assert_eq!(code, 1, "{out}");
    let provider = line(&out, "provider postmark");
    assert!(
        provider.starts_with("FAIL")
            && provider.contains("401")
            && provider.contains("Bad or missing Server API token")
            && provider.contains("POSTMARK_SERVER_TOKEN")
            && !provider.contains("pm-bad"),
        "{out}"
    );

    // Every provider of every route is checked, once each.
    let mut routed = with("pm-good").to_vec();
    routed.push((
        "MAILROOM_ROUTES",
        "transactional=postmark>smtp, bulk=smtp>postmark".to_owned(),
    ));
    routed.push(("SMTP_URL", "smtp://127.0.0.1:1".to_owned()));
    let (code, out) = deployment.plain(&dns, "postmark", &routed).await;
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "provider postmark").starts_with("pass"), "{out}");
    assert!(line(&out, "provider smtp").starts_with("FAIL"), "{out}");
    assert_eq!(out.matches("provider postmark").count(), 1, "{out}");
}

#[tokio::test]
async fn a_mailgun_domain_passes_when_active_and_fails_with_the_fix_when_not() {
    let dns = FixtureDns::start(&[]).await;
    let deployment = Deployment::start().await;
    let mailgun = MockServer::start().await;
    for (domain, state) in [
        ("mg.example.com", "active"),
        ("new.example.com", "unverified"),
    ] {
        Mock::given(matchers::method("GET"))
            .and(matchers::path(format!("/v3/domains/{domain}")))
            .and(matchers::header("authorization", "Basic YXBpOm1nLWdvb2Q="))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"domain": {"name": domain, "state": state}, "receiving_dns_records": [], "sending_dns_records": []}),
            ))
            .mount(&mailgun)
            .await;
    }
    Mock::given(matchers::method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_string("Forbidden"))
        .mount(&mailgun)
        .await;
    let with = |key: &str, domain: &str| {
        [
            ("MAILGUN_API_URL", mailgun.uri()),
            ("MAILGUN_API_KEY", key.to_owned()),
            ("MAILGUN_DOMAIN", domain.to_owned()),
        ]
    };
    let (_, out) = deployment
        .plain(&dns, "mailgun", &with("mg-good", "mg.example.com"))
        .await;
    assert!(line(&out, "provider mailgun").starts_with("pass"), "{out}");
    let (code, out) = deployment
        .plain(&dns, "mailgun", &with("mg-good", "new.example.com"))
        .await;
    assert_eq!(code, 1, "{out}");
    let provider = line(&out, "provider mailgun");
    assert!(
        provider.starts_with("FAIL") && provider.contains("unverified"),
        "{out}"
    );
    let (_, out) = deployment
        .plain(&dns, "mailgun", &with("mg-bad", "mg.example.com"))
        .await;
    let provider = line(&out, "provider mailgun");
    assert!(
        provider.starts_with("FAIL")
            && provider.contains("401")
            && provider.contains("MAILGUN_API_KEY")
            && !provider.contains("mg-bad"),
        "{out}"
    );
}

/// SES's `GetAccount`, which moto does not emulate, from a stand-in that answers as SES
/// documents and takes only SigV4-signed requests for the region's `ses` service.
#[tokio::test]
async fn an_ses_account_passes_when_it_may_send_warns_in_the_sandbox_and_fails_when_paused() {
    let dns = FixtureDns::start(&[]).await;
    let deployment = Deployment::start().await;
    let ses = MockServer::start().await;
    for (key, enabled, production) in [
        ("AKIDPRODUCTION", true, true),
        ("AKIDSANDBOX", true, false),
        ("AKIDPAUSED", false, true),
    ] {
        let scope = format!("AWS4-HMAC-SHA256 Credential={key}/");
        Mock::given(matchers::method("GET"))
            .and(matchers::path("/v2/email/account"))
            .and(matchers::header_regex("authorization", &format!("^{}[0-9]{{8}}/eu-west-1/ses/aws4_request, SignedHeaders=[a-z0-9;-]*x-amz-date[a-z0-9;-]*, Signature=[0-9a-f]{{64}}$", regex::escape(&scope))))
            .and(matchers::header_exists("x-amz-date"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "DedicatedIpAutoWarmupEnabled": false,
                "EnforcementStatus": "HEALTHY",
                "ProductionAccessEnabled": production,
                "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 1200.0},
                "SendingEnabled": enabled,
            })))
            .mount(&ses)
            .await;
    }
    Mock::given(matchers::method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "The security token included in the request is invalid."
        })))
        .mount(&ses)
        .await;
    let with = |key: &str| {
        [
            ("SES_ENDPOINT_URL", ses.uri()),
            ("AWS_REGION", "eu-west-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", key.to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "secret-that-is-never-shown".to_owned(),
            ),
        ]
    };
    let (_, out) = deployment.plain(&dns, "ses", &with("AKIDPRODUCTION")).await;
    let provider = line(&out, "provider ses");
    assert!(
        provider.starts_with("pass") && provider.contains("14 a second"),
        "{out}"
    );
    let hooks = line(&out, "webhook ses");
    assert!(
        hooks.starts_with("warn") && hooks.contains("MAILROOM_SES_TOPIC_ARNS"),
        "{out}"
    );
    let (_, out) = deployment.plain(&dns, "ses", &with("AKIDSANDBOX")).await;
    assert!(
        line(&out, "provider ses").starts_with("warn") && out.contains("sandbox"),
        "{out}"
    );
    let (code, out) = deployment.plain(&dns, "ses", &with("AKIDPAUSED")).await;
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "provider ses").contains("paused"), "{out}");
    let (_, out) = deployment.plain(&dns, "ses", &with("AKIDREVOKED")).await;
    let provider = line(&out, "provider ses");
    assert!(
        provider.starts_with("FAIL")
            && provider.contains("403")
            && provider.contains("AWS_SECRET_ACCESS_KEY")
            && !out.contains("secret-that-is-never-shown"),
        "{out}"
    );
}
