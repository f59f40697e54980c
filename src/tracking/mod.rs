//! mailroom's own open and click tracking, for the mail it writes itself (SMTP and the outbox;
//! SendGrid tracks its own and reports through its events).
//!
//! A tracked message gets signed links ([`token`]) written into its HTML ([`rewrite`]); a hit
//! on `/t/o/TOKEN` or `/t/c/TOKEN` is answered at once (the image, or a 302 to the link) and
//! handed to a worker in batches (`http::tracking`), which records it as an `open` or
//! `click` event through the same store as SendGrid's, so timelines, statuses, unique counts,
//! daily stats and campaign engagement are the same whichever provider sent. Hits from
//! machines ([`machines`]) are recorded but not counted.
//!
//! What is tracked: campaigns, by default (each campaign can turn opens or clicks off); a
//! message from `POST /v1/emails` only when it asks (`tracking: {opens, clicks}`); never a
//! template with a secret link, nor a message in a transactional category; nothing at all
//! with `MAILROOM_TRACKING=false`.

pub mod machines;
pub mod rewrite;
pub mod token;

use std::sync::Arc;

use mailroom_jobs::Tracking;

use crate::lists::links::LinkKeys;
use token::{Scope, Target};

/// Which mail is tracked: the rule of the message classes, in one place for every provider.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `MAILROOM_TRACKING`.
    pub enabled: bool,
    /// Categories tracked by default.
    pub categories: Vec<String>,
    /// Templates tracked by default.
    pub templates: Vec<String>,
    /// Categories never tracked (`MAILROOM_TRANSACTIONAL_CATEGORIES`).
    pub transactional: Vec<String>,
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Policy {
    /// The policy `settings` set.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            enabled: settings.tracking,
            categories: list(&settings.tracked_categories),
            templates: list(&settings.tracked_templates),
            transactional: settings.transactional_category_list(),
        }
    }

    /// What `message` gets: nothing with tracking off, with a secret link or in a
    /// transactional category; else what it asked for; else opens and clicks when one of its
    /// categories or its template is tracked by default; else nothing.
    pub fn for_message(&self, message: &mailroom_jobs::EmailMessage) -> Tracking {
        let secret = message
            .template
            .as_ref()
            .is_some_and(|t| mailroom_jobs::templates::has_secret_link(&t.name));
        let transactional = message
            .categories
            .iter()
            .any(|c| self.transactional.contains(c));
        if !self.enabled || secret || transactional {
            return Tracking::default();
        }
        if let Some(asked) = message.tracking {
            return asked;
        }
        let by_default = message
            .categories
            .iter()
            .any(|c| self.categories.contains(c))
            || message
                .template
                .as_ref()
                .is_some_and(|t| self.templates.contains(&t.name));
        Tracking {
            opens: by_default,
            clicks: by_default,
        }
    }

    /// What a campaign that asked for `asked` gets.
    pub fn for_campaign(&self, asked: Tracking) -> Tracking {
        if self.enabled {
            asked
        } else {
            Tracking::default()
        }
    }
}

/// Who a tracked message went to, its categories and the stored key that queued it
/// (`P:trk:{ID}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackedRecipient {
    pub email: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Adds tracking to the HTML of the mail one worker process sends.
#[derive(Debug, Clone)]
pub struct Tracker {
    keys: Arc<LinkKeys>,
    /// `MAILROOM_PUBLIC_URL`, without a trailing slash.
    public_url: String,
    conn: mailroom_jobs::RedisConnection,
    redis_keys: mailroom_jobs::Keys,
    /// How long a message's recipient record lives (its events' retention).
    keep_secs: u64,
}

impl Tracker {
    /// The tracker `settings` ask for: `None` when tracking is off or there are no link keys
    /// to sign with.
    ///
    /// # Errors
    /// When the link keys do not parse.
    pub fn from_settings(
        settings: &crate::config::Settings,
        conn: &mailroom_jobs::RedisConnection,
    ) -> anyhow::Result<Option<Self>> {
        if !settings.tracking {
            return Ok(None);
        }
        Ok(LinkKeys::from_settings(settings)?.map(|keys| Self {
            keys: Arc::new(keys),
            public_url: settings.public_url.trim_end_matches('/').to_owned(),
            conn: conn.clone(),
            redis_keys: mailroom_jobs::Keys::new(&settings.redis_prefix),
            keep_secs: settings.event_retention_secs,
        }))
    }

    /// Records that message `id` goes to `message`'s one recipient: its hits name the message
    /// only, and are counted under its categories and its key.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn remember(
        &self,
        id: &str,
        message: &mailroom_jobs::EmailMessage,
    ) -> redis::RedisResult<()> {
        let record = serde_json::to_string(&TrackedRecipient {
            email: message.to[0].email.clone(),
            categories: message.categories.clone(),
            key: message.metadata.get(mailroom_jobs::KEY_METADATA).cloned(),
        })
        .unwrap_or_default();
        redis::cmd("SET")
            .arg(self.redis_keys.tracked_recipient(id))
            .arg(record)
            .arg("EX")
            .arg(self.keep_secs.max(1))
            .query_async(&mut self.conn.clone())
            .await
    }

    /// `html` of the mail `scope` names, with what `wants` asks for.
    pub fn apply(&self, html: &str, scope: Scope, wants: Tracking) -> String {
        let sent_at = u32::try_from(chrono::Utc::now().timestamp()).unwrap_or(u32::MAX);
        let target = |url: Option<String>| Target {
            scope,
            sent_at,
            url,
        };
        let pixel = wants
            .opens
            .then(|| format!("{}/t/o/{}", self.public_url, target(None).sign(&self.keys)));
        let click = |url: &str| {
            format!(
                "{}/t/c/{}",
                self.public_url,
                target(Some(url.to_owned())).sign(&self.keys)
            )
        };
        rewrite::rewrite(
            html,
            &rewrite::Rewrite {
                pixel,
                click: wants.clicks.then_some(&click as &dyn Fn(&str) -> String),
                keep: vec![format!("{}/u/", self.public_url)],
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use mailroom_jobs::{EmailMessage, TemplateRef};

    use super::*;

    fn message(
        categories: &[&str],
        template: Option<&str>,
        asked: Option<Tracking>,
    ) -> EmailMessage {
        EmailMessage {
            categories: categories.iter().map(|c| (*c).to_owned()).collect(),
            template: template.map(|name| TemplateRef {
                name: name.to_owned(),
                locale: None,
                data: serde_json::Value::Null,
            }),
            tracking: asked,
            ..EmailMessage::default()
        }
    }

    #[test]
    fn the_policy_tracks_what_asks_or_is_tracked_by_default_and_never_secrets_or_transactional_mail()
     {
        let both = Tracking {
            opens: true,
            clicks: true,
        };
        let opens = Tracking {
            opens: true,
            clicks: false,
        };
        let policy = Policy {
            enabled: true,
            categories: vec!["news".to_owned()],
            templates: vec!["newsletter".to_owned()],
            transactional: vec!["security".to_owned()],
        };
        assert_eq!(
            policy.for_message(&message(&[], None, None)),
            Tracking::default()
        );
        assert_eq!(policy.for_message(&message(&["news"], None, None)), both);
        assert_eq!(
            policy.for_message(&message(&[], Some("newsletter"), None)),
            both
        );
        assert_eq!(
            policy.for_message(&message(&["news"], None, Some(opens))),
            opens
        );
        assert_eq!(policy.for_message(&message(&[], None, Some(opens))), opens);
        assert_eq!(
            policy.for_message(&message(&["news", "security"], None, Some(both))),
            Tracking::default()
        );
        assert_eq!(
            policy.for_message(&message(&["news"], Some("password_reset"), None)),
            Tracking::default()
        );
        let off = Policy {
            enabled: false,
            ..policy
        };
        assert_eq!(
            off.for_message(&message(&["news"], None, Some(both))),
            Tracking::default()
        );
        assert_eq!(off.for_campaign(both), Tracking::default());
    }
}
