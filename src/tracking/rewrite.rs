//! Adds tracking to a message's HTML: each web link goes through `/t/c/TOKEN` and a 1×1 image
//! `/t/o/TOKEN` is put at the end of the body. Rewritten with lol_html (Cloudflare's streaming
//! HTML rewriter), so markup the rewriter does not touch comes out byte for byte.
//!
//! Left alone: links that are not `http(s)` (`mailto:`, `tel:`, anchors), the unsubscribe and
//! preference links (a receiver's one-click unsubscribe must reach mailroom directly, RFC 8058),
//! links longer than [`MAX_URL`], and links carrying `data-mailroom-notrack`.

use std::cell::Cell;

use lol_html::{RewriteStrSettings, element, end, html_content::ContentType, rewrite_str};

use super::token::MAX_URL;

/// What to add.
pub struct Rewrite<'a> {
    /// The open image's URL, when opens are tracked.
    pub pixel: Option<String>,
    /// The click URL for a link's target, when clicks are tracked.
    pub click: Option<&'a dyn Fn(&str) -> String>,
    /// Links never rewritten: those starting with one of these (the unsubscribe page).
    pub keep: Vec<String>,
}

impl std::fmt::Debug for Rewrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrite")
            .field("pixel", &self.pixel.is_some())
            .field("click", &self.click.is_some())
            .field("keep", &self.keep)
            .finish()
    }
}

/// `html` with the tracking `rewrite` asks for. On HTML lol_html cannot rewrite (it never
/// fails on malformed markup; only on its own limits), the message goes out untracked rather
/// than not at all.
pub fn rewrite(html: &str, rewrite: &Rewrite<'_>) -> String {
    let pixel_placed = Cell::new(false);
    let pixel = rewrite.pixel.as_deref().map(|url| {
        format!(
            r#"<img src="{url}" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" />"#
        )
    });
    let mut settings = RewriteStrSettings::new();
    if let Some(click) = rewrite.click {
        settings = settings.append_element_content_handler(element!("a[href]", move |el| {
            let Some(raw) = el.get_attribute("href") else {
                return Ok(());
            };
            if el.has_attribute("data-mailroom-notrack") {
                el.remove_attribute("data-mailroom-notrack");
                return Ok(());
            }
            let url = decode_entities(raw.trim());
            let lower = url.to_ascii_lowercase();
            let web = lower.starts_with("https://") || lower.starts_with("http://");
            if web
                && url.len() <= MAX_URL
                && !rewrite.keep.iter().any(|k| url.starts_with(k.as_str()))
            {
                el.set_attribute("href", &click(&url))?;
            }
            Ok(())
        }));
    }
    if let Some(pixel) = &pixel {
        settings = settings.append_element_content_handler(element!("body", |el| {
            el.append(pixel, ContentType::Html);
            pixel_placed.set(true);
            Ok(())
        }));
        settings = settings.append_document_content_handler(end!(|end| {
            if !pixel_placed.get() {
                end.append(pixel, ContentType::Html);
            }
            Ok(())
        }));
    }
    match rewrite_str(html, settings) {
        Ok(rewritten) => rewritten,
        Err(error) => {
            tracing::warn!(%error, "the HTML could not be rewritten for tracking: sent untracked");
            html.to_owned()
        }
    }
}

/// An attribute value as the browser reads it: the character references templates write in
/// URLs (`&amp;` above all) decoded.
fn decode_entities(value: &str) -> String {
    if !value.contains('&') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = [
            ("&amp;", '&'),
            ("&#38;", '&'),
            ("&#x26;", '&'),
            ("&quot;", '"'),
            ("&#34;", '"'),
            ("&#39;", '\''),
            ("&#x27;", '\''),
            ("&lt;", '<'),
            ("&gt;", '>'),
        ]
        .into_iter()
        .find(|(entity, _)| rest.starts_with(entity));
        match decoded {
            Some((entity, c)) => {
                out.push(c);
                rest = &rest[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(url: &str) -> String {
        format!("https://mail.example.com/t/c/[{url}]")
    }

    #[test]
    fn web_links_go_through_mailroom_and_others_stay() {
        let html = r##"<html><body><p><a href="https://shop.example.com/a?x=1&amp;y=2">Shop</a>
<a href="mailto:help@example.com">Mail us</a> <a href="#top">Top</a> <a href="tel:+331">Call</a>
<a href="https://mail.example.com/u/TOKEN">Unsubscribe</a>
<a data-mailroom-notrack href="https://example.com/private">Private</a></p></body></html>"##;
        let out = rewrite(
            html,
            &Rewrite {
                pixel: Some("https://mail.example.com/t/o/OPEN".to_owned()),
                click: Some(&click),
                keep: vec!["https://mail.example.com/u/".to_owned()],
            },
        );
        assert!(
            out.contains(
                r#"href="https://mail.example.com/t/c/[https://shop.example.com/a?x=1&y=2]""#
            ),
            "{out}"
        );
        for kept in [
            "mailto:help@example.com",
            "#top",
            "tel:+331",
            "https://mail.example.com/u/TOKEN",
            "https://example.com/private",
        ] {
            assert!(out.contains(&format!(r#"href="{kept}""#)), "{kept}: {out}");
        }
        assert!(!out.contains("data-mailroom-notrack"), "{out}");
        let pixel = out.find("/t/o/OPEN").unwrap();
        assert!(
            pixel < out.find("</body>").unwrap(),
            "the image is inside the body: {out}"
        );
        assert_eq!(out.matches("/t/o/OPEN").count(), 1);
    }

    #[test]
    fn a_fragment_without_body_gets_the_image_at_its_end_and_nothing_else_changes() {
        let html = "<p>Hi <b>there</b></p>";
        let out = rewrite(
            html,
            &Rewrite {
                pixel: Some("https://m.example/t/o/X".to_owned()),
                click: None,
                keep: Vec::new(),
            },
        );
        assert!(out.starts_with(html), "{out}");
        assert!(out.ends_with("/>"), "{out}");
        let untouched = rewrite(
            html,
            &Rewrite {
                pixel: None,
                click: Some(&click),
                keep: Vec::new(),
            },
        );
        assert_eq!(untouched, html);
    }
}
