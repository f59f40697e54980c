//! What a campaign is: its spec (set when it is created, fixed once it is scheduled), its state
//! and its progress.

use chrono::{DateTime, Utc};
use mailroom_jobs::Mailbox;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{CampaignId, ListId};

/// The most lists one campaign goes to.
pub const MAX_LISTS: usize = 20;
/// How many recipients one batch job covers (SendGrid's most personalizations per request).
pub const BATCH_SIZE: u32 = 1000;
/// The largest audience: the snapshot is 8 bytes a recipient, so 64 MB of Redis at most.
pub const MAX_AUDIENCE: u64 = 8_000_000;

/// A campaign's state. `draft → scheduled → running ⇄ paused → finished | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Draft,
    Scheduled,
    Running,
    Paused,
    Finished,
    Cancelled,
}

impl State {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "draft" => Self::Draft,
            "scheduled" => Self::Scheduled,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "finished" => Self::Finished,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// Finished or cancelled: nothing more happens.
    pub fn is_over(self) -> bool {
        matches!(self, Self::Finished | Self::Cancelled)
    }
}

/// What a campaign sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// One of mailroom's templates, with data shared by every recipient.
    Template(TemplateContent),
    /// A subject and an HTML and/or text body of the caller's.
    Raw(RawContent),
}

/// One of mailroom's templates, with data shared by every recipient.
// A named component rather than an inline variant: client generators name the models of
// inline variants after their place and collide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemplateContent {
    pub name: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A subject and an HTML and/or text body of the caller's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RawContent {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A campaign as created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Spec {
    pub name: String,
    /// The lists whose confirmed subscribers it goes to.
    #[schema(value_type = Vec<u64>)]
    pub lists: Vec<ListId>,
    /// A segment filter the subscribers must match (see `POST /v1/lists/{id}/count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub segment: Option<serde_json::Value>,
    pub content: Content,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub from: Option<Mailbox>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub reply_to: Option<Mailbox>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Recipients per second at most, for this campaign (below the provider's own limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Open and click tracking (both on unless turned off here, or everywhere by
    /// `MAILROOM_TRACKING=false`).
    #[serde(default = "tracked")]
    #[schema(value_type = Object)]
    pub tracking: mailroom_jobs::Tracking,
}

/// Campaigns are tracked unless they say otherwise.
pub fn tracked() -> mailroom_jobs::Tracking {
    mailroom_jobs::Tracking {
        opens: true,
        clicks: true,
    }
}

/// Where a campaign stands, as `GET /v1/campaigns/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Campaign {
    #[schema(value_type = String, format = Uuid)]
    pub id: CampaignId,
    #[serde(flatten)]
    pub spec: Spec,
    pub state: State,
    /// Why it paused itself, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// When it starts (scheduled) or started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<DateTime<Utc>>,
    /// How many recipients it has (known once it has started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<u64>,
    pub sent: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Recipients whose hand-over was under way when a worker died: they were sent again and
    /// may have received the email twice.
    pub possibly_duplicated: u64,
    /// Why recipients were skipped or failed, with how many for each.
    pub reasons: std::collections::BTreeMap<String, u64>,
    /// Recipients sent per second since it started.
    pub rate: f64,
    /// Seconds until every recipient is sent at that rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Engagement reported by the provider's events, for this campaign.
    pub engagement: Engagement,
}

/// Counts from the provider's events (SendGrid's Event Webhook).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Engagement {
    pub delivered: u64,
    pub opens: u64,
    pub clicks: u64,
    pub bounces: u64,
    pub complaints: u64,
    pub unsubscribes: u64,
}

impl Campaign {
    /// Reads a campaign from its hash fields and reasons.
    pub(crate) fn from_fields(
        id: CampaignId,
        fields: &std::collections::HashMap<String, String>,
        reasons: std::collections::BTreeMap<String, u64>,
    ) -> Option<Self> {
        let spec: Spec = serde_json::from_str(fields.get("spec")?).ok()?;
        let number = |name: &str| -> u64 {
            fields
                .get(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default()
        };
        let time = |name: &str| -> Option<DateTime<Utc>> {
            let ms: i64 = fields.get(name)?.parse().ok()?;
            DateTime::from_timestamp_millis(ms)
        };
        let state = State::parse(fields.get("state")?)?;
        let (sent, failed, skipped) = (number("sent"), number("failed"), number("skipped"));
        let audience: Option<u64> = fields.get("audience").and_then(|v| v.parse().ok());
        let started_at = time("started_at");
        let finished_at = time("finished_at");
        let until = finished_at.unwrap_or_else(Utc::now);
        let rate = match started_at {
            Some(start) if until > start => {
                let secs = (until - start).num_milliseconds() as f64 / 1000.0;
                ((sent + failed + skipped) as f64 / secs * 10.0).round() / 10.0
            }
            _ => 0.0,
        };
        let eta_seconds = match (state, audience) {
            (State::Running, Some(total)) if rate > 0.0 => {
                let left = total.saturating_sub(sent + failed + skipped);
                Some((left as f64 / rate).ceil() as u64)
            }
            _ => None,
        };
        Some(Self {
            id: id.to_owned(),
            spec,
            state,
            paused_reason: fields.get("paused_reason").cloned(),
            send_at: time("send_at"),
            audience,
            sent,
            failed,
            skipped,
            possibly_duplicated: number("possibly_duplicated"),
            reasons,
            rate,
            eta_seconds,
            created_at: time("created_at")?,
            started_at,
            finished_at,
            engagement: Engagement {
                delivered: number("ev:delivered"),
                opens: number("ev:open"),
                clicks: number("ev:click"),
                bounces: number("ev:bounce"),
                complaints: number("ev:spamreport"),
                unsubscribes: number("ev:unsubscribe"),
            },
        })
    }
}
