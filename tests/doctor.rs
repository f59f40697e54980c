//! `mailroom doctor`'s sender-domain checks against the tests' own DNS server: a domain that
//! publishes what it should passes (exit 0), one that does not fails naming what to publish
//! (exit 1).

mod common;

use std::process::Stdio;

use common::dns::{FixtureDns, Zone};
use tokio::process::Command;

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

/// `mailroom doctor` for mail from `from` signed with `dkim`, asking `dns`: exit code, output.
async fn doctor(dns: &FixtureDns, from: &str, provider: &str, dkim: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("doctor")
        .env("MAILROOM_FROM", from)
        .env("MAILROOM_PROVIDER", provider)
        .env("SENDGRID_API_KEY", "SG.test")
        .env("SMTP_URL", "smtp://127.0.0.1:2525")
        .env("MAILROOM_DKIM_KEYS", dkim)
        .env("MAILROOM_DNS_RESOLVER", dns.address.to_string())
        .env("REDIS_URL", common::redis_url())
        .env(
            "MAILROOM_BOUNCE_DOMAIN",
            format!("bounces.{}", from.split('@').nth(1).unwrap()),
        )
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
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

    let (code, out) = doctor(
        &dns,
        "news@good.example",
        "smtp",
        &format!("good.example:mr1:{}", good_key.display()),
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

    let (code, out) = doctor(
        &dns,
        "news@bad.example",
        "sendgrid",
        &format!("bad.example:mr1:{}", bad_key.display()),
    )
    .await;
    assert_eq!(code, 1, "{out}");
    let line = |what: &str| {
        out.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what} line: {out}"))
            .to_owned()
    };
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
    let (code, out) = doctor(&dns, "news@empty.example", "sendgrid", "").await;
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
