//! The SMTP provider against a real SMTP server (aiosmtpd), the outbox files, and the MIME both
//! produce, parsed by Python's `email` package under the strict policy.

mod common;

use common::app::{SmtpSink, TestApp, eml_files, strict_mime};
use mailroom::{
    config::ProviderKind,
    providers::{Outbox, OutgoingEmail, ProviderError, Smtp},
};
use mailroom_jobs::{Attachment, EmailMessage, Mailbox, SendEmail};
use secrecy::SecretString;
use serde_json::{Value, json};

fn rich_job() -> SendEmail {
    SendEmail::new(EmailMessage {
        to: vec![Mailbox {
            email: "zoe@example.com".to_owned(),
            name: Some("Zoë Ünal".to_owned()),
        }],
        cc: vec![Mailbox::new("cc@example.com")],
        bcc: vec![Mailbox::new("hidden@example.com")],
        reply_to: Some(Mailbox::new("help@example.com")),
        subject: Some("Votre commande est arrivée — 注文".to_owned()),
        html: Some("<h1>Bonjour</h1><p>Voir <a href=\"https://example.com/o/42\">la commande</a>.</p><img src=\"cid:logo\">".to_owned()),
        headers: [("X-Campaign".to_owned(), "spring".to_owned())].into(),
        attachments: vec![
            Attachment {
                filename: "reçu.pdf".to_owned(),
                content_type: "application/pdf".to_owned(),
                content: "JVBERi0xLjQKJcOkw7zDtsOfCg==".to_owned(),
                content_id: None,
            },
            Attachment {
                filename: "logo.png".to_owned(),
                content_type: "image/png".to_owned(),
                content: "iVBORw0KGgo=".to_owned(),
                content_id: Some("logo".to_owned()),
            },
        ],
        ..EmailMessage::default()
    })
}

fn default_from() -> lettre::message::Mailbox {
    "Mailroom <noreply@mailroom.test>".parse().unwrap()
}

fn part<'a>(summary: &'a Value, content_type: &str) -> &'a Value {
    summary["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part in {summary}"))
}

fn check_rich_summary(summary: &Value, job: &SendEmail) {
    assert_eq!(summary["subject"], "Votre commande est arrivée — 注文");
    assert_eq!(summary["to"], "Zoë Ünal <zoe@example.com>");
    assert_eq!(summary["cc"], "cc@example.com");
    assert_eq!(
        summary["bcc"],
        Value::Null,
        "Bcc never appears in the headers"
    );
    assert_eq!(summary["message_id"], format!("<{}@mailroom.test>", job.id));
    assert!(summary["date"].as_str().unwrap().contains("+0000"));
    assert_eq!(summary["headers"]["X-Campaign"], "spring");
    assert_eq!(summary["headers"]["Reply-To"], "help@example.com");
    let text = part(summary, "text/plain")["text"].as_str().unwrap();
    assert!(text.contains("Bonjour"), "{text}");
    assert!(
        text.contains("https://example.com/o/42"),
        "links keep their full URL: {text}"
    );
    assert!(
        part(summary, "text/html")["text"]
            .as_str()
            .unwrap()
            .contains("<h1>Bonjour</h1>")
    );
    let pdf = part(summary, "application/pdf");
    assert_eq!(pdf["filename"], "reçu.pdf");
    assert_eq!(pdf["disposition"], "attachment");
    assert_eq!(pdf["bytes"], "%PDF-1.4\n%äüöß\n".len());
    let logo = part(summary, "image/png");
    assert_eq!(logo["disposition"], "inline");
    assert_eq!(logo["content_id"], "<logo>");
}

#[tokio::test]
async fn the_outbox_writes_each_message_atomically_as_strict_rfc_5322() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::new(dir.path().join("new-folder"));
    let job = rich_job();
    let email = OutgoingEmail::compose(&job, &default_from()).unwrap();
    let delivery = outbox.send(&email).await.unwrap();

    let files = eml_files(&dir.path().join("new-folder"));
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        files[0].file_name().unwrap().to_str().unwrap(),
        format!("{}.eml", job.id)
    );
    assert_eq!(delivery.provider_message_id.as_deref(), files[0].to_str());
    let everything: Vec<_> = std::fs::read_dir(dir.path().join("new-folder"))
        .unwrap()
        .collect();
    assert_eq!(everything.len(), 1, "no temporary file is left behind");
    let summary = strict_mime(&files[0]).await;
    check_rich_summary(&summary, &job);
    assert_eq!(summary["from"], "Mailroom <noreply@mailroom.test>");
}

#[tokio::test]
async fn an_html_only_message_gets_a_generated_text_part() {
    let dir = tempfile::tempdir().unwrap();
    let job = SendEmail::new(EmailMessage {
        to: vec![Mailbox::new("a@example.com")],
        subject: Some("Hi".to_owned()),
        html: Some("<p>Read <a href=\"https://example.com/read\">this</a></p>".to_owned()),
        ..EmailMessage::default()
    });
    let email = OutgoingEmail::compose(&job, &default_from()).unwrap();
    Outbox::new(dir.path().to_path_buf())
        .send(&email)
        .await
        .unwrap();
    let summary = strict_mime(&eml_files(dir.path())[0]).await;
    let text = part(&summary, "text/plain")["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("Read") && text.contains("https://example.com/read"),
        "{text}"
    );
    assert_eq!(summary["parts"][0]["type"], "multipart/alternative");
}

#[tokio::test]
async fn smtp_delivers_to_a_real_server_with_the_envelope_and_strict_mime() {
    let sink = SmtpSink::start().await;
    let smtp = Smtp::from_url(&format!("smtp://127.0.0.1:{}", sink.port), 4).unwrap();
    let job = rich_job();
    let email = OutgoingEmail::compose(&job, &default_from()).unwrap();
    let delivery = smtp.send(&email).await.unwrap();

    let received = sink.received();
    assert_eq!(received.len(), 1);
    let (file, envelope) = &received[0];
    let queued_as = file.file_stem().unwrap().to_str().unwrap();
    assert!(
        delivery.provider_message_id.unwrap().contains(queued_as),
        "the relay's queue id is kept"
    );
    assert_eq!(envelope["mail_from"], "noreply@mailroom.test");
    let mut recipients: Vec<&str> = envelope["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    recipients.sort_unstable();
    assert_eq!(
        recipients,
        ["cc@example.com", "hidden@example.com", "zoe@example.com"]
    );
    check_rich_summary(&strict_mime(file).await, &job);
}

#[tokio::test]
async fn smtp_5xx_is_permanent_and_4xx_transient() {
    let sink = SmtpSink::start().await;
    let smtp = Smtp::from_url(&format!("smtp://127.0.0.1:{}", sink.port), 4).unwrap();
    let to = |address: &str| {
        let job = SendEmail::new(EmailMessage {
            to: vec![Mailbox::new(address)],
            subject: Some("Hi".to_owned()),
            text: Some("Hi".to_owned()),
            ..EmailMessage::default()
        });
        OutgoingEmail::compose(&job, &default_from()).unwrap()
    };
    match smtp.send(&to("perm-fail@example.com")).await {
        Err(ProviderError::Permanent {
            message,
            bounce: Some(bounce),
            ..
        }) => {
            assert!(message.contains("550"), "{message}");
            assert_eq!(bounce.recipient, "perm-fail@example.com");
            assert_eq!(
                (bounce.code, bounce.status.as_deref()),
                (550, Some("5.1.1"))
            );
            assert_eq!(bounce.class, mailroom::bounces::Class::Hard);
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
    // A relay asking for AUTH is misconfiguration, not a bounce of the recipient.
    match smtp.send(&to("auth-needed@example.com")).await {
        Err(ProviderError::Permanent {
            message,
            bounce: None,
            account: true,
        }) => assert!(message.contains("530"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    match smtp.send(&to("temp-fail@example.com")).await {
        Err(ProviderError::Transient { message, cause, .. }) => {
            assert!(message.contains("451"), "{message}");
            assert_eq!(
                cause,
                mailroom::providers::Cause::Recipient { slow_down: false }
            );
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    smtp.send(&to("temp-fail@example.com"))
        .await
        .expect("accepted the second time");
    assert_eq!(sink.received().len(), 1);

    let unreachable = Smtp::from_url("smtp://127.0.0.1:1", 4).unwrap();
    assert!(matches!(
        unreachable.send(&to("a@example.com")).await,
        Err(ProviderError::Transient { .. })
    ));
}

#[tokio::test]
async fn smtp_urls_are_parsed_without_leaking_the_password() {
    for url in [
        "smtp://localhost:2525",
        "smtp+starttls://user:pa%40ss@smtp.example.com",
        "smtps://apikey:SG.secret@smtp.sendgrid.net:465",
    ] {
        let smtp = Smtp::from_url(url, 4).unwrap();
        let shown = format!("{smtp:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("pa%40ss"),
            "{shown}"
        );
    }
    let error = Smtp::from_url("ftp://user:hunter2@example.com", 4)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("scheme") && !error.contains("hunter2"),
        "{error}"
    );
}

#[tokio::test]
async fn the_worker_sends_through_smtp_end_to_end() {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let mut app = TestApp::spawn(move |s| {
        s.provider = ProviderKind::Smtp;
        s.smtp_url = Some(SecretString::from(url));
    })
    .await;
    app.start_worker();
    let response = app
        .post_email(&json!({
            "to": [{"email": "ana@example.com", "name": "Ana Pérez"}],
            "subject": "¿Qué tal?",
            "html": "<p>Hola</p>"
        }))
        .await;
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = app.wait_for_status(&id, "sent").await;
    assert_eq!(record["provider"], "smtp");
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let summary = strict_mime(&received[0].0).await;
    assert_eq!(summary["subject"], "¿Qué tal?");
    assert_eq!(summary["from"], "Mailroom Tests <noreply@mailroom.test>");
    app.stop().await;
}

#[tokio::test]
async fn the_worker_writes_to_the_outbox_by_default() {
    let mut app = TestApp::spawn(|_| {}).await;
    app.start_worker();
    let response = app.post_email(&common::app::simple_email()).await;
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = app.wait_for_status(&id, "sent").await;
    assert_eq!(record["provider"], "outbox");
    let files = eml_files(app.outbox.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(format!("{id}.eml")));
    strict_mime(&files[0]).await;
    app.stop().await;
}

#[tokio::test]
async fn smtp_reuses_pooled_connections_and_opens_no_more_than_the_pool_size() {
    let sink = SmtpSink::start().await;
    let smtp = Smtp::from_url(&format!("smtp://127.0.0.1:{}", sink.port), 2).unwrap();
    let email = |n: usize| {
        let job = SendEmail::new(EmailMessage {
            to: vec![Mailbox::new(format!("r{n}@example.com"))],
            subject: Some(format!("Message {n}")),
            text: Some("Hi".to_owned()),
            ..EmailMessage::default()
        });
        OutgoingEmail::compose(&job, &default_from()).unwrap()
    };
    for n in 0..3 {
        smtp.send(&email(n)).await.unwrap();
    }
    let peers = |received: &[(std::path::PathBuf, serde_json::Value)]| {
        received
            .iter()
            .map(|(_, envelope)| envelope["peer"].as_str().unwrap().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        peers(&sink.received()).len(),
        1,
        "one session carried all three"
    );

    let sends = (3..23).map(|n| {
        let smtp = smtp.clone();
        let message = email(n);
        async move { smtp.send(&message).await }
    });
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
    let received = sink.received();
    assert_eq!(received.len(), 23);
    assert!(
        peers(&received).len() <= 2,
        "at most the pool's two sessions: {:?}",
        peers(&received)
    );
}
