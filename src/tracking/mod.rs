//! mailroom's own open and click tracking, for the mail it writes itself (SMTP and the outbox;
//! SendGrid tracks its own and reports through its events).
//!
//! A tracked message gets signed links ([`token`]) written into its HTML ([`rewrite`]); a hit
//! on `/t/o/TOKEN` or `/t/c/TOKEN` is answered at once (the image, or a 302 to the link) and
//! handed to a worker in batches ([`crate::http::tracking`]), which records it as an `open` or
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

/// Who a tracked message went to, and its categories (`P:trk:{ID}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackedRecipient {
    pub email: String,
    #[serde(default)]
    pub categories: Vec<String>,
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
        Ok(settings.link_keys()?.map(|keys| Self {
            keys: Arc::new(keys),
            public_url: settings.public_url.trim_end_matches('/').to_owned(),
            conn: conn.clone(),
            redis_keys: mailroom_jobs::Keys::new(&settings.redis_prefix),
            keep_secs: settings.event_retention_secs,
        }))
    }

    /// Records that message `id` goes to `email` with `categories`: its hits name the message
    /// only, and are counted under its categories.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn remember(
        &self,
        id: &str,
        email: &str,
        categories: &[String],
    ) -> redis::RedisResult<()> {
        let record = serde_json::to_string(&TrackedRecipient {
            email: email.to_owned(),
            categories: categories.to_vec(),
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
