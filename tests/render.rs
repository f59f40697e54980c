//! Templates and languages: every template in every locale, escaping, links, plurals, the
//! fallback chain, right-to-left, HTML5 validity, size, and the API, CLI and preview around them.

mod common;

use html5ever::{parse_document, tendril::TendrilSink};
use mailroom::render::{Brand, RenderError, Rendered, Renderer, locale, samples};
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
            "template.data",
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
