//! Templates and languages: every template in every locale, escaping, links, plurals, the
//! fallback chain, right-to-left, HTML5 validity, size, and the API, CLI and preview around them.

mod common;

use html5ever::{parse_document, tendril::TendrilSink};
use mailroom::render::{Brand, RenderError, Rendered, Renderer, locale, pages::PageKind, samples};
use mailroom_jobs::TemplateRef;
use markup5ever_rcdom::RcDom;
use serde_json::{Value, json};

fn renderer() -> Renderer {
    let brand = Brand {
        name: "Acme".to_owned(),
        logo_url: None,
        postal_address: "1 Main St, Springfield".to_owned(),
    };
    Renderer::new(brand, "en").unwrap()
}

fn render(name: &str, locale: &str, data: Value) -> Result<Rendered, RenderError> {
    renderer().render(&TemplateRef {
        name: name.to_owned(),
        locale: Some(locale.to_owned()),
        data,
    })
}

fn html5_errors(html: &str) -> Vec<String> {
    let dom = parse_document(RcDom::default(), Default::default()).one(html);
    dom.errors
        .borrow()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_template_renders_in_every_locale() {
    // Gmail clips messages over 102 KB.
    const GMAIL_CLIP: usize = 102 * 1024;
    for (name, data) in samples::all() {
        for locale in locale::supported() {
            let tag = locale.to_string();
            let rendered = render(name, &tag, data.clone()).unwrap();
            let label = format!("{name}/{tag}");
            assert_eq!(rendered.locale, tag, "{label}");
            assert!(!rendered.subject.trim().is_empty(), "{label}");
            assert!(
                rendered.html.contains(&format!("<html lang=\"{tag}\"")),
                "{label}"
            );
            assert_eq!(
                html5_errors(&rendered.html),
                Vec::<String>::new(),
                "{label}"
            );
            assert!(
                rendered.html.len() < GMAIL_CLIP,
                "{label}: {} bytes",
                rendered.html.len()
            );
            for text in [&rendered.subject, &rendered.html, &rendered.text] {
                assert!(
                    !text.contains('\u{2068}') && !text.contains("Unknown localization"),
                    "{label}"
                );
            }
            assert!(
                rendered.html.contains("style=\""),
                "{label}: CSS is inlined"
            );
            assert!(
                rendered.text.contains("1 Main St, Springfield"),
                "{label}: postal address"
            );
            insta::assert_snapshot!(
                format!("{name}__{tag}"),
                format!(
                    "Subject: {}\n\n{}\n\n=====\n{}",
                    rendered.subject, rendered.text, rendered.html
                )
            );
        }
    }
}

#[test]
fn links_appear_in_full_in_the_text_part() {
    let rendered = render("verification", "de", samples::of("verification").unwrap()).unwrap();
    assert!(
        rendered
            .text
            .contains("https://app.example.com/verify?token=abc123"),
        "{}",
        rendered.text
    );
    assert!(
        rendered
            .html
            .contains("href=\"https://app.example.com/verify?token=abc123\"")
    );
}

#[test]
fn user_data_is_html_escaped() {
    let data = json!({"title": "<script>alert(1)</script>", "body": "Tom & \"Jerry\" <b>bold</b>"});
    let rendered = render("notification", "en", data).unwrap();
    assert!(!rendered.html.contains("<script>"), "{}", rendered.html);
    assert!(
        rendered
            .html
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;")
    );
    assert!(
        rendered
            .html
            .contains("Tom &#38; &#34;Jerry&#34; &#60;b&#62;bold&#60;/b&#62;"),
        "{}",
        rendered.html
    );
    assert!(!rendered.html.contains("<b>bold"));
    assert!(
        rendered.text.contains("<script>alert(1)</script>"),
        "the text part is not HTML"
    );
    assert_eq!(html5_errors(&rendered.html), Vec::<String>::new());
}

#[test]
fn only_http_and_https_links_are_accepted() {
    for link in [
        "javascript:alert(1)",
        "data:text/html,hi",
        "ftp://example.com/x",
        "https://",
        "//example.com",
    ] {
        let data = json!({"title": "t", "body": "b", "button": {"label": "Go", "link": link}});
        match render("notification", "en", data) {
            Err(RenderError::Invalid(error)) => {
                assert_eq!(error.field, "template.data.button.link", "{link}")
            }
            other => panic!("{link}: {other:?}"),
        }
    }
}

#[test]
fn missing_or_mistyped_fields_and_unknown_templates_name_the_field() {
    let cases = [
        (
            "verification",
            json!({"link": "https://x.example"}),
            "template.data.expires_in_minutes",
        ),
        (
            "verification",
            json!({"link": "https://x.example", "expires_in_minutes": "soon"}),
            "template.data.expires_in_minutes",
        ),
        (
            "welcome",
            json!({"name": "A", "link": "https://x.example", "extra": 1}),
            "template.data.extra",
        ),
        (
            "newsletter",
            json!({"title": "t", "sections": [], "unsubscribe_link": "https://x.example/u"}),
            "template.data.sections",
        ),
        ("invoice", json!({}), "template.name"),
    ];
    for (name, data, field) in cases {
        match render(name, "en", data) {
            Err(RenderError::Invalid(error)) => {
                assert_eq!(error.field, field, "{name}: {}", error.message)
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// The line of the verification text part that states the expiry: the one just before the
/// "if you did not sign up" sentence.
fn expiry(locale: &str, minutes: u32) -> String {
    let data = json!({"link": "https://x.example/v", "expires_in_minutes": minutes});
    let text = render("verification", locale, data).unwrap().text;
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .find(|pair| pair[1].starts_with(&verification_ignore(locale)))
        .map(|pair| pair[0].to_owned())
        .unwrap_or_default()
}

fn verification_ignore(locale: &str) -> String {
    match locale {
        "en" => "If you did not sign up",
        "fr" => "Si vous ne vous êtes pas inscrit",
        "ar" => "إذا لم تقم بالتسجيل",
        "ja" => "ご登録に心当たりがない場合",
        _ => unreachable!("add the locale's sentence"),
    }
    .to_owned()
}

#[test]
fn plurals_follow_each_language() {
    assert_eq!(expiry("en", 1), "This link expires in 1 minute.");
    assert_eq!(expiry("en", 2), "This link expires in 2 minutes.");
    assert_eq!(expiry("fr", 1), "Ce lien expire dans 1 minute.");
    assert_eq!(
        expiry("fr", 0),
        "Ce lien expire dans 0 minute.",
        "French 0 is singular"
    );
    assert_eq!(expiry("fr", 2), "Ce lien expire dans 2 minutes.");
    assert_eq!(expiry("ar", 1), "تنتهي صلاحية هذا الرابط خلال دقيقة واحدة.");
    assert_eq!(expiry("ar", 2), "تنتهي صلاحية هذا الرابط خلال دقيقتين.");
    assert_eq!(
        expiry("ar", 3),
        "تنتهي صلاحية هذا الرابط خلال 3 دقائق.",
        "few"
    );
    assert_eq!(
        expiry("ar", 11),
        "تنتهي صلاحية هذا الرابط خلال 11 دقيقة.",
        "many"
    );
    assert_eq!(expiry("ja", 1), "このリンクの有効期限は 1 分です。");
    assert_eq!(expiry("ja", 30), "このリンクの有効期限は 30 分です。");
}

#[test]
fn locales_fall_back_and_never_fail() {
    let data = samples::of("welcome").unwrap();
    assert_eq!(
        render("welcome", "fr-CA", data.clone()).unwrap().locale,
        "fr"
    );
    assert_eq!(
        render("welcome", "pt-PT", data.clone()).unwrap().locale,
        "pt-BR"
    );
    assert_eq!(render("welcome", "zz", data.clone()).unwrap().locale, "en");
    let garbage = render("welcome", "!!not a tag", data.clone()).unwrap();
    assert_eq!(garbage.locale, "en");
    assert_eq!(garbage.subject, "Welcome to Acme, Ada!");
    let german = Renderer::new(Brand::default(), "de").unwrap();
    let template = TemplateRef {
        name: "welcome".to_owned(),
        locale: None,
        data,
    };
    assert_eq!(
        german.render(&template).unwrap().locale,
        "de",
        "MAILROOM_DEFAULT_LOCALE"
    );
    assert!(
        Renderer::new(Brand::default(), "sw").is_err(),
        "an unknown default locale stops start-up"
    );
}

#[test]
fn arabic_renders_right_to_left() {
    let rendered = render(
        "password_reset",
        "ar",
        samples::of("password_reset").unwrap(),
    )
    .unwrap();
    assert!(rendered.html.contains("<html lang=\"ar\" dir=\"rtl\">"));
    assert!(rendered.html.contains("align=\"right\""));
    assert!(rendered.html.contains("text-align:right"));
    assert!(!rendered.html.contains("align=\"left\""));
    let english = render(
        "password_reset",
        "en",
        samples::of("password_reset").unwrap(),
    )
    .unwrap();
    assert!(english.html.contains("dir=\"ltr\"") && english.html.contains("align=\"left\""));
}

mod through_the_service {
    use std::time::Duration;

    use super::common::app::{API_KEY, TestApp, eml_files, strict_mime};
    use mailroom::config::ProviderKind;
    use secrecy::SecretString;
    use serde_json::{Value, json};
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{method, path},
    };

    fn templated(locale: &str) -> Value {
        json!({
            "to": [{"email": "marie@example.com", "name": "Marie"}],
            "template": {
                "name": "password_reset",
                "locale": locale,
                "data": {"name": "Marie", "link": "https://app.example.com/reset?t=1", "expires_in_minutes": 1}
            }
        })
    }

    #[tokio::test]
    async fn render_answers_subject_html_and_text_and_names_bad_fields() {
        let app = TestApp::spawn(|_| {}).await;
        let post = |body: Value| {
            app.client
                .post(app.url("/v1/render"))
                .bearer_auth(API_KEY)
                .json(&body)
                .send()
        };
        let ok = post(json!({"template": "welcome", "locale": "de-AT", "data": {"name": "Jörg", "link": "https://a.example/start"}})).await.unwrap();
        assert_eq!(ok.status().as_u16(), 200);
        let rendered: Value = ok.json().await.unwrap();
        assert_eq!(rendered["subject"], "Willkommen bei mailroom, Jörg!");
        assert_eq!(rendered["locale"], "de");
        assert!(
            rendered["html"]
                .as_str()
                .unwrap()
                .contains("href=\"https://a.example/start\"")
        );
        assert!(
            rendered["text"]
                .as_str()
                .unwrap()
                .contains("Loslegen: https://a.example/start")
        );

        let bad = post(
            json!({"template": "welcome", "data": {"name": "J", "link": "javascript:alert(1)"}}),
        )
        .await
        .unwrap();
        assert_eq!(bad.status().as_u16(), 422);
        let error: Value = bad.json().await.unwrap();
        assert_eq!(error["error"]["field"], "template.data.link");
        let unknown = post(json!({"template": "invoice"})).await.unwrap();
        assert_eq!(
            unknown.json::<Value>().await.unwrap()["error"]["field"],
            "template.name"
        );
        let unauthorized = app
            .client
            .post(app.url("/v1/render"))
            .json(&json!({"template": "welcome"}))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthorized.status().as_u16(), 401);
        let previews = app
            .client
            .get(app.url("/dev/preview"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            previews.status().as_u16(),
            404,
            "previews are only served by `mailroom dev`"
        );
        app.stop().await;
    }

    #[tokio::test]
    async fn a_templated_email_reaches_sendgrid_rendered_in_the_recipients_language() {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "tpl-1"))
            .expect(1)
            .mount(&mock)
            .await;
        let uri = mock.uri();
        let mut app = TestApp::spawn(move |s| {
            s.provider = ProviderKind::Sendgrid;
            s.sendgrid_api_url = uri;
            s.sendgrid_api_key = Some(SecretString::from("SG.x.y"));
        })
        .await;
        app.start_worker();
        app.send_and_wait(&templated("fr-CA")).await;

        let requests = mock.received_requests().await.unwrap();
        let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert_eq!(body["subject"], "Réinitialisez votre mot de passe");
        assert_eq!(body["content"][0]["type"], "text/plain");
        let text = body["content"][0]["value"].as_str().unwrap();
        assert!(text.contains("Ce lien expire dans 1 minute."), "{text}");
        assert!(text.contains("https://app.example.com/reset?t=1"));
        let html = body["content"][1]["value"].as_str().unwrap();
        assert!(html.starts_with("<!DOCTYPE html>") && html.contains("lang=\"fr\""));
        app.stop().await;
    }

    #[tokio::test]
    async fn a_templated_email_in_the_outbox_is_strict_mime_in_arabic() {
        let mut app = TestApp::spawn(|_| {}).await;
        app.start_worker();
        app.send_and_wait(&templated("ar")).await;
        let files = eml_files(app.outbox.path());
        let summary = strict_mime(&files[0]).await;
        assert_eq!(summary["subject"], "أعد تعيين كلمة المرور");
        let parts = summary["parts"].as_array().unwrap();
        let html = parts.iter().find(|p| p["type"] == "text/html").unwrap()["text"]
            .as_str()
            .unwrap();
        assert!(html.contains("dir=\"rtl\""));
        let text = parts.iter().find(|p| p["type"] == "text/plain").unwrap()["text"]
            .as_str()
            .unwrap();
        assert!(text.contains("دقيقة واحدة"), "{text}");
        app.stop().await;
    }

    #[tokio::test]
    async fn dev_serves_a_preview_of_every_template_in_every_locale() {
        let redis = super::common::TestRedis::new().await;
        let port = super::common::free_port();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
            .arg("dev")
            .env("REDIS_URL", super::common::redis_url())
            .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
            .env("MAILROOM_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "MAILROOM_OUTBOX_DIR",
                std::env::temp_dir().join(&redis.prefix),
            )
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let index =
            super::common::eventually(Duration::from_secs(30), "the preview index", || async {
                client.get(format!("{base}/dev/preview")).send().await.ok()
            })
            .await
            .text()
            .await
            .unwrap();
        for template in [
            "verification",
            "welcome",
            "password_reset",
            "notification",
            "newsletter",
        ] {
            for locale in ["en", "fr", "de", "es", "pt-BR", "ar", "ja"] {
                let href = format!("/dev/preview/{template}?locale={locale}");
                assert!(index.contains(&href), "{href} is listed");
            }
        }
        let page = client
            .get(format!("{base}/dev/preview/newsletter?locale=ja"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("<html lang=\"ja\"")
                && html.contains("このニュースレターの配信を停止する")
        );
        assert!(
            html.contains("検索がより速く"),
            "the sample data is in the locale's own words"
        );
        // The index is a page of its own (not a bare list), and each entry opens the email at
        // desktop and phone widths beside its subject and text part.
        assert!(
            index.contains("<style>") && index.contains("العربية"),
            "{index}"
        );
        assert!(index.contains("/dev/preview/newsletter/ar"), "{index}");
        let frame = client
            .get(format!("{base}/dev/preview/newsletter/ar"))
            .send()
            .await
            .unwrap();
        assert_eq!(frame.status().as_u16(), 200);
        let frame = frame.text().await.unwrap();
        for part in [
            "class=\"desktop\"",
            "class=\"phone\"",
            "src=\"/dev/preview/newsletter?locale=ar\"",
            "الجديد في مايو",
            "بحث أسرع",
        ] {
            assert!(frame.contains(part), "{part}: {frame}");
        }
        let missing = client
            .get(format!("{base}/dev/preview/invoice"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status().as_u16(), 404);
        child.start_kill().unwrap();
        let _ = child.wait().await;
    }
}

#[test]
fn french_copy_puts_a_no_break_space_before_high_punctuation() {
    // French typography: U+00A0 before `:`, U+202F (or U+00A0) before `!`, `?` and `;`; a
    // plain space there lets the line break before the sign. The sample data is English, so
    // only mailroom's own copy is read: the subject and the text part, without links.
    for (name, data) in samples::all() {
        let rendered = render(name, "fr", data.clone()).unwrap();
        for text in [&rendered.subject, &rendered.text] {
            for word in text.split([' ', '\n']).filter(|w| !w.contains("://")) {
                for (i, c) in word.char_indices() {
                    if [':', '!', '?', ';'].contains(&c) {
                        let before = word[..i].chars().next_back();
                        assert!(
                            matches!(before, Some('\u{a0}' | '\u{202f}')),
                            "{name}/fr: {c:?} after {before:?} in {word:?}"
                        );
                    }
                }
            }
        }
    }
}

/// In the page: a list of what does not fit a phone: a page wider than the screen, or a word
/// split across two lines (only a bare URL may wrap inside).
const PHONE_CHECK: &str = r#"
const problems = [];
const root = document.documentElement;
if (root.scrollWidth > root.clientWidth + 1) {
  problems.push('the page is ' + root.scrollWidth + ' px wide');
}
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
let node;
while ((node = walker.nextNode())) {
  const link = node.parentElement.closest('a');
  if (link && /^https?:\/\//.test(link.textContent.trim())) continue;
  if (node.parentElement.closest('[style*="display:none"], [style*="display: none"]')) continue;
  // Words as a reader sees them: a line may break at a space or after a hyphen (E-Mail-Adresse).
  const words = /[^\s\-\u2010]+/g;
  let m;
  while ((m = words.exec(node.data))) {
    const range = document.createRange();
    range.setStart(node, m.index);
    range.setEnd(node, m.index + m[0].length);
    const lines = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
    if (lines.size > 1) problems.push('"' + m[0] + '" is split over ' + lines.size + ' lines');
  }
}
return problems;
"#;

#[tokio::test]
async fn every_template_in_every_locale_fits_a_phone_without_splitting_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let browser = common::browser::Browser::start(390, 844).await;
    let mut failures = Vec::new();
    for locale in locale::supported() {
        let tag = locale.to_string();
        // In the locale's own words, as the previews show them.
        for (name, data) in samples::all_in(&tag) {
            let rendered = render(name, &tag, data.clone()).unwrap();
            let file = dir.path().join(format!("{name}-{tag}.html"));
            std::fs::write(&file, &rendered.html).unwrap();
            browser.open(&format!("file://{}", file.display())).await;
            let problems = browser.execute(PHONE_CHECK).await;
            if problems.as_array().is_none_or(|p| !p.is_empty()) {
                failures.push(format!("{name}/{tag}: {problems}"));
            }
        }
    }
    // The pages a person meets after clicking a link: no scrollbar on a phone when all of it
    // fits (the box's padding counted in its height), and no split word either.
    let renderer = renderer();
    for locale in locale::supported() {
        let tag = locale.to_string();
        for kind in [
            PageKind::Confirm {
                email: "ada@example.com",
                token: "t",
            },
            PageKind::Verified {
                email: "ada@example.com",
                continue_to: Some("https://app.example.com"),
            },
            PageKind::AlreadyConfirmed {
                back: Some("https://app.example.com"),
            },
            PageKind::Expired { back: None },
            PageKind::Invalid,
        ] {
            let html = renderer.page(&kind, Some(&tag), "n").unwrap();
            let file = dir.path().join(format!("page-{tag}.html"));
            std::fs::write(&file, html).unwrap();
            browser.open(&format!("file://{}", file.display())).await;
            let mut problems = browser.execute(PHONE_CHECK).await;
            let scrolls = browser
                .execute("return document.documentElement.scrollHeight > window.innerHeight;")
                .await;
            if scrolls == Value::Bool(true) {
                problems = json!([problems, "scrolls though everything fits"]);
            }
            if problems.as_array().is_none_or(|p| !p.is_empty()) {
                failures.push(format!("{kind:?}/{tag}: {problems}"));
            }
        }
    }

    // The check itself sees a split word: the old rule, break-all, on a link that starts near
    // the end of a line (monospace, so where the line ends is known).
    let split = dir.path().join("split.html");
    std::fs::write(
        &split,
        format!(
            "<!DOCTYPE html><meta name=viewport content='width=device-width'>\
             <body style='margin:0;font:20px monospace'><p style='margin:0'>{} \
             <a href='#' style='word-break:break-all'>Continue reading</a></p>",
            "x".repeat(25)
        ),
    )
    .unwrap();
    browser.open(&format!("file://{}", split.display())).await;
    let seen = browser.execute(PHONE_CHECK).await;
    browser.quit().await;
    assert!(
        seen.as_array().is_some_and(|p| !p.is_empty()),
        "the check must see a word split by break-all: {seen}"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
