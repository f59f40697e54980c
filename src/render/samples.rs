//! Sample data for every template: the previews (`/dev/preview`, `mailroom render`) and the
//! tests render these.

use serde_json::{Value, json};

/// `(template, data)` for every template.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        (
            "verification",
            json!({"name": "Ada", "link": "https://app.example.com/verify?token=abc123", "expires_in_minutes": 60}),
        ),
        (
            "welcome",
            json!({"name": "Ada", "link": "https://app.example.com/start"}),
        ),
        (
            "password_reset",
            json!({"name": "Ada", "link": "https://app.example.com/reset?token=xyz789", "expires_in_minutes": 30}),
        ),
        (
            "notification",
            json!({"title": "Your export is ready", "body": "The CSV export you asked for is ready to download.", "button": {"label": "Download", "link": "https://app.example.com/exports/42"}}),
        ),
        (
            "newsletter",
            json!({
                "title": "What's new in May",
                "sections": [
                    {"heading": "Faster search", "body": "Search results now arrive twice as fast.", "link": "https://example.com/blog/search"},
                    {"heading": "Dark mode", "body": "The app follows your system's colour scheme."}
                ],
                "unsubscribe_link": "https://app.example.com/unsubscribe?list=news&u=7"
            }),
        ),
    ]
}

/// The sample data of `template`.
pub fn of(template: &str) -> Option<Value> {
    all()
        .into_iter()
        .find(|(name, _)| *name == template)
        .map(|(_, data)| data)
}
