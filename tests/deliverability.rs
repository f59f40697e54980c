//! Deliverability of the mail mailroom writes itself (SMTP and the outbox): DKIM signatures
//! that an independent verifier (Python's dkimpy) accepts with the key published in the
//! tests' loopback DNS server, and refuses once the message is altered.

mod common;

use std::{path::Path, process::Stdio, time::Duration};

use common::{
    app::{SmtpSink, TestApp, inbound_form, report},
    dns::{FixtureDns, Zone},
    eventually,
};
use mailroom::config::ProviderKind;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::process::Command;

/// `mailroom dkim keygen` as an operator runs it: the key file written to `out`, and the TXT
/// record's value read back from what it prints.
async fn keygen(domain: &str, selector: &str, algorithm: &str, out: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["dkim", "keygen", "--domain", domain, "--selector", selector])
        .args(["--algorithm", algorithm, "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains(&format!("MAILROOM_DKIM_KEYS={domain}:{selector}:")),
        "{printed}"
    );
    let zone_line = printed
        .split(&format!("{selector}._domainkey.{domain}. IN TXT"))
        .nth(1)
        .unwrap_or_else(|| panic!("no record in {printed}"));
    // The record's character-strings, joined: what a resolver hands a verifier.
    zone_line
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat()
}

/// dkimpy's verdict on `eml`, its keys from the DNS server on `dns_port`.
async fn dkimpy(eml: &Path, dns_port: u16) -> Value {
    let output = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_verify.py"))
        .arg(eml)
        .arg(dns_port.to_string())
        .output()
        .await
        .expect("python3 with dkimpy (.ci/run installs it)");
    assert!(
        output.status.success(),
        "dkim_verify.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// An API and a worker sending through `sink`, signing with `dkim_keys`.
async fn smtp_app(sink: &SmtpSink, dkim_keys: Option<String>) -> TestApp {
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let mut app = TestApp::spawn(|s| {
        s.dkim_keys = dkim_keys;
        s.provider = ProviderKind::Smtp;
        s.smtp_url = Some(SecretString::from(url));
    })
    .await;
    app.start_worker();
    app
}

/// A message from `from` carrying the list headers RFC 8058 wants signed.
fn list_email(from: &str) -> Value {
    json!({
        "from": from,
        "to": [{"email": "ada@example.org", "name": "Ada"}],
        "subject": "The November letter",
        "text": "Hello Ada,\n\nthe news of the month.\n",
        "html": "<p>Hello Ada,</p><p>the news of the month.</p>",
        "headers": {
            "List-Unsubscribe": "<https://mail.news.example.com/u/abc>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "News <news.example.com>",
        },
    })
}

/// Checks what dkimpy says of `eml` and of altered copies of it.
async fn assert_signed(eml: &Path, dns_port: u16, algorithm: &str, domain: &str) {
    let verdict = dkimpy(eml, dns_port).await;
    assert_eq!(verdict["verified"], true, "{}: {verdict}", eml.display());
    assert_eq!(verdict["algorithm"], algorithm, "{verdict}");
    assert_eq!(verdict["domain"], domain, "{verdict}");
    assert_eq!(verdict["canonicalization"], "relaxed/relaxed", "{verdict}");
    let signed: Vec<&str> = verdict["signed_headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for header in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-id",
    ] {
        assert!(signed.contains(&header), "{header} not signed: {verdict}");
    }
    let original = std::fs::read_to_string(eml).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (what, altered) in [
        (
            "body",
            original.replacen("news of the month", "news of the week", 1),
        ),
        (
            "subject",
            original.replacen("The November letter", "The December letter", 1),
        ),
        ("unsubscribe link", original.replacen("/u/abc", "/u/xyz", 1)),
    ] {
        assert_ne!(altered, original, "the {what} was not found to alter");
        let copy = dir.path().join("altered.eml");
        std::fs::write(&copy, altered).unwrap();
        let verdict = dkimpy(&copy, dns_port).await;
        assert_eq!(verdict["verified"], false, "altered {what}: {verdict}");
    }
}

#[tokio::test]
async fn outbox_and_smtp_mail_is_dkim_signed_and_dkimpy_verifies_it_until_altered() {
    let keys = tempfile::tempdir().unwrap();
    let rsa = keys.path().join("news.pem");
    let ed25519 = keys.path().join("net.pem");
    let rsa_record = keygen("news.example.com", "mr1", "rsa", &rsa).await;
    let ed25519_record = keygen("example.net", "ed1", "ed25519", &ed25519).await;
    assert!(rsa_record.starts_with("v=DKIM1; k=rsa; p="), "{rsa_record}");
    assert!(
        ed25519_record.starts_with("v=DKIM1; k=ed25519; p="),
        "{ed25519_record}"
    );
    let dns = FixtureDns::start(&[
        (
            "mr1._domainkey.news.example.com",
            Zone::Txt(vec![rsa_record]),
        ),
        (
            "ed1._domainkey.example.net",
            Zone::Txt(vec![ed25519_record]),
        ),
    ])
    .await;
    let dkim_keys = format!(
        "news.example.com:mr1:{},example.net:ed1:{}",
        rsa.display(),
        ed25519.display()
    );

    // The outbox: what an SMTP relay would have been handed.
    let mut app = TestApp::spawn(|s| s.dkim_keys = Some(dkim_keys.clone())).await;
    app.start_worker();
    let mut sent = Vec::new();
    for from in [
        "News <letters@news.example.com>",
        "hello@example.net",
        "noreply@mailroom.test",
    ] {
        let id = app.send_and_wait(&list_email(from)).await;
        sent.push(app.outbox.path().join(format!("{id}.eml")));
    }
    assert_signed(
        &sent[0],
        dns.address.port(),
        "rsa-sha256",
        "news.example.com",
    )
    .await;
    assert_signed(
        &sent[1],
        dns.address.port(),
        "ed25519-sha256",
        "example.net",
    )
    .await;
    let unsigned = std::fs::read_to_string(&sent[2]).unwrap();
    assert!(
        !unsigned.to_ascii_lowercase().contains("dkim-signature"),
        "mail from a domain without a key goes out unsigned"
    );
    app.stop().await;

    // Through a real SMTP server.
    let sink = SmtpSink::start().await;
    let app = smtp_app(&sink, Some(dkim_keys)).await;
    let response = app
        .post_email(&list_email("News <letters@news.example.com>"))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let received = eventually(Duration::from_secs(30), "the SMTP server to get it", || {
        let received = sink.received();
        async move { (!received.is_empty()).then_some(received) }
    })
    .await;
    assert_signed(
        &received[0].0,
        dns.address.port(),
        "rsa-sha256",
        "news.example.com",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_bad_dkim_setting_stops_the_process_naming_the_setting() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("k.pem");
    std::fs::write(&key, "not a key").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("work")
        .env("MAILROOM_PROVIDER", "outbox")
        .env(
            "MAILROOM_DKIM_KEYS",
            format!("example.com:s1:{}", key.display()),
        )
        .env("REDIS_URL", common::redis_url())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("MAILROOM_DKIM_KEYS") && said.contains("not a PEM private key"),
        "{said}"
    );
}

/// A message to `to` through `app`, accepted: its id.
async fn queue_to(app: &TestApp, to: &str) -> String {
    let response = app
        .post_email(&json!({"to": to, "subject": "Your receipt", "text": "Thanks.", "categories": ["receipts"]}))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn smtp_refusals_at_send_time_are_bounces_hard_ones_suppress_policy_blocks_do_not() {
    let sink = SmtpSink::start().await;
    let app = smtp_app(&sink, None).await;

    // 550 5.1.1: the address does not exist.
    let hard = queue_to(&app, "perm-fail@example.org").await;
    let record = app.wait_for_status(&hard, "bounced").await;
    assert_eq!(
        record["recipients"]["perm-fail@example.org"], "bounced",
        "{record}"
    );
    assert_eq!(
        record["dead_reason"],
        Value::Null,
        "a bounce is no dead letter: {record}"
    );
    let bounce = &record["timeline"][0];
    assert_eq!(
        (
            &bounce["event"],
            &bounce["type"],
            &bounce["status"],
            &bounce["source"]
        ),
        (
            &json!("bounce"),
            &json!("bounce"),
            &json!("5.1.1"),
            &json!("smtp")
        ),
        "{record}"
    );
    assert!(
        bounce["reason"]
            .as_str()
            .unwrap()
            .contains("mailbox unavailable"),
        "{record}"
    );
    let (status, suppression) = app.get_json("/v1/suppressions/perm-fail@example.org").await;
    assert_eq!(status, 200, "{suppression}");
    assert_eq!(
        (&suppression["reason"], &suppression["source"]),
        (&json!("bounce"), &json!("smtp:bounce")),
        "{suppression}"
    );
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let (_, stats) = app
        .get_json(&format!(
            "/v1/stats?category=receipts&from={today}&to={today}"
        ))
        .await;
    assert_eq!(stats["totals"]["bounced"], 1, "{stats}");

    // The next message to it is not sent.
    let next = queue_to(&app, "perm-fail@example.org").await;
    app.wait_for_status(&next, "suppressed").await;

    // 554 5.7.1: this message was refused, not the address.
    let blocked = queue_to(&app, "policy-block@example.org").await;
    let record = app.wait_for_status(&blocked, "bounced").await;
    let bounce = &record["timeline"][0];
    assert_eq!(
        (&bounce["type"], &bounce["status"]),
        (&json!("blocked"), &json!("5.7.1")),
        "{record}"
    );
    let (status, _) = app
        .get_json("/v1/suppressions/policy-block@example.org")
        .await;
    assert_eq!(status, 404, "a policy block does not suppress the address");
    assert!(sink.received().is_empty(), "nothing was accepted");
    app.stop().await;
}

#[tokio::test]
async fn smtp_mail_leaves_with_a_verp_sender_and_reports_mailed_back_become_bounces_and_complaints()
{
    let sink = SmtpSink::start().await;
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let mut app = TestApp::spawn(|s| {
        s.provider = ProviderKind::Smtp;
        s.smtp_url = Some(SecretString::from(url));
        s.bounce_domain = Some("Bounces.Example.com".to_owned());
        s.inbound_user = Some("sendgrid".to_owned());
        s.inbound_password = Some(SecretString::from("inbound-secret-0123456789"));
    })
    .await;
    app.start_worker();
    let gone = queue_to(&app, "gone@example.org").await;
    let angry = queue_to(&app, "angry@example.org").await;
    let received = eventually(Duration::from_secs(30), "both messages", || {
        let received = sink.received();
        async move { (received.len() == 2).then_some(received) }
    })
    .await;
    let verp_of = |id: &str| format!("bounces+m-{}@bounces.example.com", id.replace('-', ""));
    let senders: Vec<&str> = received
        .iter()
        .filter_map(|(_, envelope)| envelope["mail_from"].as_str())
        .collect();
    assert!(senders.contains(&verp_of(&gone).as_str()), "{senders:?}");
    assert!(senders.contains(&verp_of(&angry).as_str()), "{senders:?}");

    let post = |body: Vec<u8>| {
        app.client
            .post(app.url("/webhooks/sendgrid/inbound"))
            .basic_auth("sendgrid", Some("inbound-secret-0123456789"))
            .header("content-type", "multipart/form-data; boundary=xYzZY")
            .body(body)
            .send()
    };
    // A Gmail-style DSN for the first, mailed to its VERP address.
    let dsn = report("gmail-dsn.eml", &gone, "gone@example.org", &verp_of(&gone));
    let response = post(inbound_form(&dsn, &verp_of(&gone))).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let record = app.wait_for_status(&gone, "bounced").await;
    let bounce = record["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "bounce")
        .unwrap()
        .clone();
    assert_eq!(
        (&bounce["source"], &bounce["status"], &bounce["type"]),
        (&json!("report"), &json!("5.1.1"), &json!("bounce")),
        "{record}"
    );
    let (status, suppression) = app.get_json("/v1/suppressions/gone@example.org").await;
    assert_eq!(status, 200);
    assert_eq!(suppression["source"], "report:bounce", "{suppression}");
    // The same DSN posted again (SendGrid retries) is counted once.
    let response = post(inbound_form(&dsn, &verp_of(&gone))).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (_, record) = app.status(&gone).await;
    let bounces = record["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "bounce")
        .count();
    assert_eq!(bounces, 1, "{record}");

    // An ARF complaint about the second, tied back by its Message-ID alone.
    let arf = report(
        "arf-abuse.eml",
        &angry,
        "angry@example.org",
        "abuse@example.com",
    );
    let response = post(inbound_form(&arf, "fbl@bounces.example.com"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    app.wait_for_status(&angry, "spam_report").await;
    let (status, suppression) = app.get_json("/v1/suppressions/angry@example.org").await;
    assert_eq!(
        (status, &suppression["reason"]),
        (200, &json!("spam_report")),
        "{suppression}"
    );
    app.stop().await;
}
