//! SendGrid's Inbound Parse: every sample in `tests/data/sendgrid/inbound/` (MANIFEST.json) parsed
//! into the expected fields, then the webhook through the API: authentication, storage, the
//! stream consumers read, the read-back routes.

mod common;

use bytes::Bytes;
use common::app::{API_KEY, TestApp};
use mailroom::inbound::{InboundError, parse::parse};
use serde_json::Value;
use sha2::{Digest, Sha256};

const FORM: &str = "multipart/form-data; boundary=xYzZY";

fn sample(file: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/sendgrid/inbound/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What each sample must parse into: mode-independent fields, then the attachments as
/// (filename, content type, size, the start of the SHA-256). Sizes and digests of the raw
/// samples were cross-checked with Python's `email` package.
struct Expected {
    file: &'static str,
    from: &'static str,
    to: &'static str,
    subject: &'static str,
    text_starts: &'static str,
    spam_score: Option<f64>,
    attachments: &'static [(
        Option<&'static str>,
        &'static str,
        Option<usize>,
        &'static str,
    )],
}

const JPEG: (Option<&str>, &str, Option<usize>, &str) = (
    Some("SendGrid.jpg"),
    "image/jpeg",
    Some(10295),
    "9ae82dabaf37",
);

fn expectations() -> Vec<Expected> {
    let parsed = |file| Expected {
        file,
        from: "Example User <test@example.com>",
        to: "inbound@inbound.example.com",
        subject: "Testing non-raw",
        text_starts: "Hello",
        spam_score: None,
        attachments: &[],
    };
    let raw = |file| Expected {
        file,
        from: "Example User <test@example.com>",
        to: "inbound@inbound.inbound.com",
        subject: "Inbound Parse Test Raw Data",
        // The C# copy has the older wording, "Hello SendGrid!".
        text_starts: "Hello",
        spam_score: None,
        attachments: &[],
    };
    let raw_attached = |file, attachments| Expected {
        subject: "Inbound Parse Test Raw Data with Attachment",
        attachments,
        ..raw(file)
    };
    vec![
        Expected {
            file: "Jericho_StrongGrid__Source_StrongGrid.UnitTests_InboundEmailTestData_email_with_attachments.txt",
            from: "Test User <test@example.com>",
            to: "\"API test user\" <test@api.mydomain.com>",
            subject: "Test #1",
            text_starts: "This is a test",
            spam_score: None,
            // Git normalized this capture's binary bytes: sizes only, no digests.
            attachments: &[
                (Some("image001.png"), "image/png", None, ""),
                (Some("001.jpg"), "image/jpeg", None, ""),
            ],
        },
        Expected {
            file: "Jericho_StrongGrid__Source_StrongGrid.UnitTests_InboundEmailTestData_raw_email.txt",
            from: "Jérémie Desautels <myemailaddress@hotmail.com>",
            to: "test@api.mytestingdomain.com",
            subject: "Inbound email in raw format",
            text_starts: "This is a test",
            spam_score: Some(2.7),
            attachments: &[(
                Some("Frangipani Flowers.jpg"),
                "image/jpeg",
                Some(108_051),
                "26186ea4314f",
            )],
        },
        Expected {
            file: "Jericho_StrongGrid__Source_StrongGrid.UnitTests_InboundEmailTestData_raw_email_with_attachments.txt",
            from: "Jérémie Desautels <myaddress@hotmail.com>",
            to: "test@api.mytestingdomain.com",
            subject: "Hello World!",
            text_starts: "",
            spam_score: Some(2.1),
            // The inline image (Python's `email` agrees on its size and digest) and the
            // forwarded message.
            attachments: &[
                (
                    Some("DesertSunrise.jpg"),
                    "image/jpeg",
                    Some(54_985),
                    "fe93caffbec4",
                ),
                (None, "message/rfc822", None, ""),
            ],
        },
        parsed(
            "sendgrid-csharp__examples_inbound-webhook-handler_Tests_Inbound.Tests_sample_data_default_data.txt",
        ),
        raw_attached(
            "sendgrid-csharp__examples_inbound-webhook-handler_Tests_Inbound.Tests_sample_data_raw_data_with_attachments.txt",
            &[JPEG],
        ),
        parsed("sendgrid-go__helpers_inbound_sample_data_default_data.txt"),
        raw("sendgrid-go__helpers_inbound_sample_data_raw_data.txt"),
        raw_attached(
            "sendgrid-go__helpers_inbound_sample_data_raw_data_with_attachments.txt",
            &[(
                Some("TwilioSendGrid.jpg"),
                "image/jpeg",
                Some(10295),
                "9ae82dabaf37",
            )],
        ),
        parsed("sendgrid-python__sendgrid_helpers_inbound_sample_data_default_data.txt"),
        raw("sendgrid-python__sendgrid_helpers_inbound_sample_data_raw_data.txt"),
        raw_attached(
            "sendgrid-python__sendgrid_helpers_inbound_sample_data_raw_data_with_attachments.txt",
            &[JPEG],
        ),
        parsed("sendgrid-ruby__lib_sendgrid_helpers_inbound_sample_data_default_data.txt"),
        raw("sendgrid-ruby__lib_sendgrid_helpers_inbound_sample_data_raw_data.txt"),
        raw_attached(
            "sendgrid-ruby__lib_sendgrid_helpers_inbound_sample_data_raw_data_with_attachments.txt",
            &[JPEG],
        ),
    ]
}

#[tokio::test]
async fn every_sample_parses_into_the_expected_fields() {
    let manifest: Vec<Value> = serde_json::from_slice(&sample("MANIFEST.json")).unwrap();
    let expected = expectations();
    let mut checked = 0;
    for entry in &manifest {
        let file = entry["file"].as_str().unwrap();
        let body = Bytes::from(sample(file));
        let result = parse(FORM, body, chrono::Utc::now(), usize::MAX).await;
        let Some(want) = expected.iter().find(|e| e.file == file) else {
            // Not a form: the Go negative sample, the two empty upstream files and the bare
            // message the C# test compares against. Each is refused, never a panic.
            assert!(
                entry.get("multipart_boundary").is_none(),
                "{file} needs expectations"
            );
            assert!(
                matches!(
                    result,
                    Err(InboundError::Malformed(_) | InboundError::NotMultipart(_))
                ),
                "{file}: {result:?}"
            );
            checked += 1;
            continue;
        };
        let parsed = result.unwrap_or_else(|e| panic!("{file}: {e}"));
        let email = &parsed.email;
        assert_eq!(email.from, want.from, "{file}");
        assert!(email.to.contains(want.to), "{file}: {}", email.to);
        assert_eq!(email.subject, want.subject, "{file}");
        let text = email.text.as_deref().unwrap_or_default();
        assert!(
            text.trim_start().starts_with(want.text_starts),
            "{file}: {text:?}"
        );
        assert_eq!(email.spam_score, want.spam_score, "{file}");
        assert_eq!(email.spf.as_deref(), Some("pass"), "{file}");
        assert!(
            email.dkim.as_deref().is_some_and(|d| d.contains("pass")),
            "{file}"
        );
        assert!(!email.headers.is_empty(), "{file}: headers");
        let envelope = email
            .envelope
            .as_ref()
            .unwrap_or_else(|| panic!("{file}: envelope"));
        assert_eq!(envelope.to.len(), 1, "{file}");
        assert_eq!(
            email.attachments.len(),
            want.attachments.len(),
            "{file}: {:?}",
            email.attachments
        );
        for (got, (name, content_type, size, digest)) in
            email.attachments.iter().zip(want.attachments)
        {
            assert_eq!(got.filename.as_deref(), *name, "{file}");
            assert_eq!(got.content_type, *content_type, "{file}");
            if let Some(size) = size {
                assert_eq!(got.size, *size, "{file}");
            }
            assert!(got.sha256.starts_with(digest), "{file}: {}", got.sha256);
            assert!(got.stored);
        }
        assert_eq!(parsed.bodies.len(), email.attachments.len());
        checked += 1;
    }
    assert_eq!(checked, 18, "every file in the manifest");
    // The inline image of the parsed capture keeps its Content-ID.
    let strong = expected[0].file;
    let parsed = parse(
        FORM,
        Bytes::from(sample(strong)),
        chrono::Utc::now(),
        usize::MAX,
    )
    .await
    .unwrap();
    let png = &parsed.email.attachments[0];
    assert_eq!(
        png.content_id.as_deref(),
        Some("image001.png@01D85101.00357470")
    );
}

#[tokio::test]
async fn the_webhook_stores_announces_and_serves_inbound_mail() {
    let app = TestApp::spawn(|s| {
        s.inbound_user = Some("sendgrid".to_owned());
        s.inbound_password = Some("hunter2-long-password".to_owned().into());
        s.inbound_secret = Some("s3cret-path-segment".to_owned().into());
        s.inbound_max_attachment_bytes = 50_000;
    })
    .await;
    let post = |path: &str, auth: Option<(&str, &str)>, body: Vec<u8>| {
        let mut request = app
            .client
            .post(app.url(path))
            .header("content-type", FORM)
            .body(body);
        if let Some((user, password)) = auth {
            request = request.basic_auth(user, Some(password));
        }
        async move { request.send().await.unwrap() }
    };
    let raw = sample(
        "Jericho_StrongGrid__Source_StrongGrid.UnitTests_InboundEmailTestData_raw_email.txt",
    );
    let small = sample(
        "sendgrid-ruby__lib_sendgrid_helpers_inbound_sample_data_raw_data_with_attachments.txt",
    );

    let refused = post("/webhooks/sendgrid/inbound", None, raw.clone()).await;
    assert_eq!(refused.status(), 401);
    let refused = post(
        "/webhooks/sendgrid/inbound",
        Some(("sendgrid", "wrong")),
        raw.clone(),
    )
    .await;
    assert_eq!(refused.status(), 401);
    let refused = post("/webhooks/sendgrid/inbound/wrong-secret", None, raw.clone()).await;
    assert_eq!(refused.status(), 401);
    let bad = post(
        "/webhooks/sendgrid/inbound",
        Some(("sendgrid", "hunter2-long-password")),
        sample("sendgrid-go__helpers_inbound_sample_data_bad_data.txt"),
    )
    .await;
    assert_eq!(bad.status(), 400);

    let stored = post(
        "/webhooks/sendgrid/inbound",
        Some(("sendgrid", "hunter2-long-password")),
        raw,
    )
    .await;
    assert_eq!(stored.status(), 200);
    let big_id = stored.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = post(
        "/webhooks/sendgrid/inbound/s3cret-path-segment",
        None,
        small,
    )
    .await;
    assert_eq!(stored.status(), 200);
    let small_id = stored.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let get = |path: String| {
        let request = app.client.get(app.url(&path)).bearer_auth(API_KEY);
        async move { request.send().await.unwrap() }
    };
    let page: Value = get("/v1/inbound?limit=1".to_owned())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["messages"][0]["id"],
        small_id.as_str(),
        "newest first: {page}"
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let older: Value = get(format!("/v1/inbound?limit=1&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(older["messages"][0]["id"], big_id.as_str());
    assert_eq!(
        older["messages"][0]["subject"],
        "Inbound email in raw format"
    );

    let message: Value = get(format!("/v1/inbound/{small_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        message["subject"],
        "Inbound Parse Test Raw Data with Attachment"
    );
    assert_eq!(message["attachments"][0]["filename"], "SendGrid.jpg");
    let body = get(format!("/v1/inbound/{small_id}/attachments/1")).await;
    assert_eq!(body.status(), 200);
    assert_eq!(body.headers()["content-type"], "image/jpeg");
    let bytes = body.bytes().await.unwrap();
    assert_eq!(
        sha_hex(&bytes),
        message["attachments"][0]["sha256"].as_str().unwrap()
    );
    assert_eq!(bytes.len(), 10295);

    // The 108 KB image is over this app's 50 KB limit: described, not kept.
    let big: Value = get(format!("/v1/inbound/{big_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(big["attachments"][0]["stored"], false);
    assert_eq!(big["attachments"][0]["size"], 108_051);
    assert_eq!(
        get(format!("/v1/inbound/{big_id}/attachments/1"))
            .await
            .status(),
        404
    );
    assert_eq!(
        get(format!("/v1/inbound/{big_id}/attachments/2"))
            .await
            .status(),
        404
    );
    assert_eq!(get("/v1/inbound/nope".to_owned()).await.status(), 404);
    let bad_cursor = get("/v1/inbound?cursor=abc".to_owned()).await;
    assert_eq!(bad_cursor.status(), 400);
    let unauthorized = app.client.get(app.url("/v1/inbound")).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);

    // A consumer service reads the stream with a consumer group.
    let mut conn = app.redis.conn();
    let stream = mailroom_jobs::Keys::new(&app.redis.prefix).inbound_stream();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("helpdesk")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    type Entries = Vec<(String, Vec<(String, String)>)>;
    let read: Vec<(String, Entries)> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("helpdesk")
        .arg("worker-1")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ids: Vec<String> = read[0]
        .1
        .iter()
        .filter_map(|(_, fields)| {
            fields
                .iter()
                .find(|(k, _)| k == "id")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(ids, [big_id, small_id]);
    app.stop().await;
}

#[tokio::test]
async fn text_fields_are_decoded_with_the_charsets_field() {
    // SendGrid passes `text` and `html` on in their original charset and names it.
    let mut body = Vec::new();
    let mut field = |name: &str, value: &[u8]| {
        body.extend_from_slice(
            format!("--xYzZY\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    };
    field("from", "Zoë <zoe@example.com>".as_bytes());
    field("subject", "Crème brûlée".as_bytes());
    field("text", b"Gr\xfc\xdfe aus K\xf6ln");
    field("html", b"<p>\xa4 10</p>");
    field(
        "charsets",
        br#"{"from":"UTF-8","subject":"UTF-8","text":"iso-8859-1","html":"iso-8859-15"}"#,
    );
    body.extend_from_slice(b"--xYzZY--\r\n");
    let parsed = parse(FORM, Bytes::from(body), chrono::Utc::now(), 1024)
        .await
        .unwrap();
    assert_eq!(parsed.email.from, "Zoë <zoe@example.com>");
    assert_eq!(parsed.email.subject, "Crème brûlée");
    assert_eq!(parsed.email.text.as_deref(), Some("Grüße aus Köln"));
    assert_eq!(parsed.email.html.as_deref(), Some("<p>€ 10</p>"));
}

#[tokio::test]
async fn a_storage_failure_answers_503_so_sendgrid_retries() {
    let app =
        TestApp::spawn(|s| s.inbound_secret = Some("path-secret-1234".to_owned().into())).await;
    // Occupy the stream's key with a string: the XADD fails as Redis would fail a write.
    let stream = mailroom_jobs::Keys::new(&app.redis.prefix).inbound_stream();
    let mut conn = app.redis.conn();
    let _: () = redis::AsyncCommands::set(&mut conn, &stream, "not a stream")
        .await
        .unwrap();
    let body = sample("sendgrid-go__helpers_inbound_sample_data_raw_data.txt");
    let post = || {
        app.client
            .post(app.url("/webhooks/sendgrid/inbound/path-secret-1234"))
            .header("content-type", FORM)
            .body(body.clone())
            .send()
    };
    let failed = post().await.unwrap();
    assert_eq!(failed.status(), 503);
    let _: () = redis::AsyncCommands::del(&mut conn, &stream).await.unwrap();
    let retried = post().await.unwrap();
    assert_eq!(retried.status(), 200, "SendGrid's retry is stored");
    app.stop().await;
}

#[tokio::test]
async fn the_body_limit_is_sendgrids_not_the_apis() {
    // The API's own limit (MAILROOM_BODY_LIMIT_BYTES, 10 MB by default) does not apply here:
    // SendGrid posts messages of up to 30 MB.
    let app =
        TestApp::spawn(|s| s.inbound_secret = Some("path-secret-5678".to_owned().into())).await;
    let form = |attachment: usize| {
        let mut body = Vec::new();
        for (name, value) in [
            ("from", "a@example.org"),
            ("subject", "big"),
            ("attachments", "1"),
        ] {
            body.extend_from_slice(
                format!(
                    "--xYzZY\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            b"--xYzZY\r\nContent-Disposition: form-data; name=\"attachment1\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        );
        body.resize(body.len() + attachment, b'x');
        body.extend_from_slice(b"\r\n--xYzZY--\r\n");
        body
    };
    let post = |body: Vec<u8>| {
        app.client
            .post(app.url("/webhooks/sendgrid/inbound/path-secret-5678"))
            .header("content-type", FORM)
            .body(body)
            .send()
    };
    let stored = post(form(12 * 1024 * 1024)).await.unwrap();
    assert_eq!(stored.status(), 200);
    let id = stored.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, message) = app.get_json(&format!("/v1/inbound/{id}")).await;
    assert_eq!(message["attachments"][0]["size"], 12 * 1024 * 1024);
    assert_eq!(
        message["attachments"][0]["stored"], false,
        "over the 10 MB attachment limit"
    );
    let too_big = post(form(33 * 1024 * 1024)).await.unwrap();
    assert_eq!(too_big.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn the_attachment_count_is_a_claim_not_a_loop_bound() {
    let body = "--xYzZY\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\na@example.org\r\n\
                --xYzZY\r\nContent-Disposition: form-data; name=\"attachments\"\r\n\r\n99999999999999\r\n\
                --xYzZY--\r\n";
    let parsed = parse(FORM, Bytes::from(body), chrono::Utc::now(), 1024)
        .await
        .unwrap();
    assert!(parsed.email.attachments.is_empty());
}

#[tokio::test]
async fn past_the_inbound_budget_messages_are_described_not_kept_and_counted() {
    let app = TestApp::spawn(|s| {
        s.inbound_secret = Some("budget-secret-1".to_owned().into());
        s.inbound_max_bytes = 20_000;
    })
    .await;
    let body = sample(
        "sendgrid-ruby__lib_sendgrid_helpers_inbound_sample_data_raw_data_with_attachments.txt",
    );
    let post = || async {
        let response = app
            .client
            .post(app.url("/webhooks/sendgrid/inbound/budget-secret-1"))
            .header("content-type", FORM)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "never refused: SendGrid would retry in vain"
        );
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.get_json(&format!("/v1/inbound/{id}")).await.1
    };
    let first = post().await;
    assert_eq!(first["over_budget"], false);
    assert_eq!(first["attachments"][0]["stored"], true);
    // The first message's attachment (10 KB) and record (2 KB) leave too little for a second.
    let second = post().await;
    assert_eq!(second["over_budget"], true, "{second}");
    assert_eq!(second["attachments"][0]["stored"], false);
    assert!(
        second["attachments"][0]["sha256"].is_string(),
        "still described"
    );
    let id = second["id"].as_str().unwrap();
    let (code, _) = app
        .get_json(&format!("/v1/inbound/{id}/attachments/1"))
        .await;
    assert_eq!(code, 404, "the body was not kept");

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mailroom_inbound_over_budget_total 1\n"),
        "{metrics}"
    );
    let stored: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mailroom_inbound_stored_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((10_295..20_000).contains(&stored), "{stored}");
    app.stop().await;
}
