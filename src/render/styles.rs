//! The stylesheet, inlined once.
//!
//! `templates/email.css` is written once, as a stylesheet. At start-up css-inline turns each
//! class into its inline declarations (remote stylesheets off: nothing is fetched), and the
//! templates put those in `style` attributes, so rendering an email never runs the inliner.
//! The `@media` rules stay in a `<style>` tag for the clients that read one.

use anyhow::{Context, bail};

const STYLESHEET: &str = include_str!("../../templates/email.css");

/// Each class's inline declarations, and the `@media` rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Styles {
    pub(crate) body: String,
    pub(crate) wrapper: String,
    pub(crate) container: String,
    pub(crate) header: String,
    pub(crate) brand: String,
    pub(crate) logo: String,
    pub(crate) content: String,
    pub(crate) heading: String,
    pub(crate) section_heading: String,
    pub(crate) paragraph: String,
    pub(crate) button_cell: String,
    pub(crate) button: String,
    pub(crate) muted: String,
    pub(crate) link: String,
    pub(crate) url: String,
    pub(crate) footer: String,
    pub(crate) preheader: String,
    pub(crate) media: String,
}

impl Styles {
    /// Inlines every class of the stylesheet.
    ///
    /// # Errors
    /// When css-inline cannot parse the stylesheet or a class has no declarations (a typo
    /// between the stylesheet and this list).
    pub fn compute() -> anyhow::Result<Self> {
        let inliner = css_inline::CSSInliner::options()
            .load_remote_stylesheets(false)
            .keep_style_tags(false)
            .build();
        let class = |name: &str| -> anyhow::Result<String> {
            let probe = format!("<p class=\"{name}\"></p>");
            let inlined = inliner
                .inline_fragment(&probe, STYLESHEET)
                .with_context(|| format!("inlining .{name}"))?;
            let style = inlined
                .split_once("style=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(style, _)| style.replace("&quot;", "'"))
                .unwrap_or_default();
            if style.is_empty() {
                bail!("the stylesheet has no rules for .{name}");
            }
            Ok(style)
        };
        let media = STYLESHEET
            .find("\n@media")
            .map(|at| {
                STYLESHEET[at..]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        Ok(Self {
            body: class("body")?,
            wrapper: class("wrapper")?,
            container: class("container")?,
            header: class("header")?,
            brand: class("brand")?,
            logo: class("logo")?,
            content: class("content")?,
            heading: class("heading")?,
            section_heading: class("section-heading")?,
            paragraph: class("paragraph")?,
            button_cell: class("button-cell")?,
            button: class("button")?,
            muted: class("muted")?,
            link: class("link")?,
            url: class("url")?,
            footer: class("footer")?,
            preheader: class("preheader")?,
            media,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_is_inlined_from_the_stylesheet() {
        let styles = Styles::compute().unwrap();
        assert!(
            styles.button.contains("background-color")
                || styles.button_cell.contains("background-color")
        );
        assert!(
            styles.button.contains("color: #ffffff"),
            "{}",
            styles.button
        );
        assert!(
            styles.content.contains("font-family: Arial"),
            "{}",
            styles.content
        );
        assert!(
            styles.media.starts_with("@media only screen"),
            "{}",
            styles.media
        );
        assert!(!styles.media.contains('<'));
    }
}
