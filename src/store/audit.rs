//! The audit log: who did what an operator must be able to trace (a key made, changed, rotated
//! or revoked, a subscriber erased, a campaign cancelled, dead letters retried, a suppression
//! added or lifted). One Redis stream (`P:audit`), newest read first, kept a year and at most
//! [`MAX_ENTRIES`] entries. It never holds a secret: the actor is a key's id, the target an id
//! or an address's digest ([`address`]).

use chrono::{DateTime, Utc};
use mailroom_jobs::RedisConnection;
use serde::Serialize;
use utoipa::ToSchema;

/// The most entries kept, whatever their age.
pub const MAX_ENTRIES: usize = 100_000;
/// How long an entry is kept.
const KEEP_MS: i64 = 366 * 24 * 3600 * 1000;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AuditAction)]
pub enum Action {
    KeyCreated,
    KeyChanged,
    KeyRotated,
    KeyRevoked,
    SubscriberErased,
    CampaignCancelled,
    DeadLettersRetried,
    SuppressionAdded,
    SuppressionLifted,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::KeyCreated => "key_created",
            Action::KeyChanged => "key_changed",
            Action::KeyRotated => "key_rotated",
            Action::KeyRevoked => "key_revoked",
            Action::SubscriberErased => "subscriber_erased",
            Action::CampaignCancelled => "campaign_cancelled",
            Action::DeadLettersRetried => "dead_letters_retried",
            Action::SuppressionAdded => "suppression_added",
            Action::SuppressionLifted => "suppression_lifted",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Action::KeyCreated,
            Action::KeyChanged,
            Action::KeyRotated,
            Action::KeyRevoked,
            Action::SubscriberErased,
            Action::CampaignCancelled,
            Action::DeadLettersRetried,
            Action::SuppressionAdded,
            Action::SuppressionLifted,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Its place in the log (pass it as `cursor` to read on from there).
    pub id: String,
    pub at: DateTime<Utc>,
    /// Who: a stored key's `mr_` id, an operator key's digest prefix, `cli`, or the console
    /// session's key.
    pub who: String,
    pub action: Action,
    /// What it was done to: a key's id, a subscriber, a campaign, a queue, an address.
    pub target: String,
}

/// How the log names an address: by the first 16 hex digits of the SHA-256 of its lower-case
/// form, so an erasure leaves no address behind in the log, while whoever knows the address
/// can still find its entries.
pub fn address(email: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(email.trim().to_lowercase().as_bytes());
    format!("address:{}", base16ct::lower::encode_string(&digest[..8]))
}

/// The audit log's stream.
#[derive(Debug, Clone)]
pub struct AuditLog {
    conn: RedisConnection,
    key: String,
}

impl AuditLog {
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            key: mailroom_jobs::Keys::new(prefix).audit(),
        }
    }

    /// Notes that `who` did `action` to `target`. A failure to note it is logged, not raised:
    /// the action itself is done.
    pub async fn record(&self, who: &str, action: Action, target: &str) {
        let oldest = Utc::now().timestamp_millis() - KEEP_MS;
        let result: redis::RedisResult<()> = redis::pipe()
            .cmd("XADD")
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_ENTRIES)
            .arg("*")
            .arg("who")
            .arg(who)
            .arg("action")
            .arg(action.as_str())
            .arg("target")
            .arg(target)
            .ignore()
            .cmd("XTRIM")
            .arg(&self.key)
            .arg("MINID")
            .arg("~")
            .arg(oldest.max(0))
            .ignore()
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, who, action = action.as_str(), target, "could not note an action in the audit log");
        }
    }

    /// Up to `limit` entries, newest first, from before `cursor` (an entry's id) when given;
    /// and the cursor of the next page, if there may be one.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn page(
        &self,
        cursor: Option<(u64, u64)>,
        limit: usize,
    ) -> redis::RedisResult<(Vec<AuditEntry>, Option<String>)> {
        // The newest id before the cursor (inclusive ranges: no id comes before 0-0).
        let end = match cursor {
            None => "+".to_owned(),
            Some((0, 0)) => return Ok((Vec::new(), None)),
            Some((ms, 0)) => format!("{}-{}", ms - 1, u64::MAX),
            Some((ms, seq)) => format!("{ms}-{}", seq - 1),
        };
        let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(&self.key)
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?;
        let entries: Vec<AuditEntry> = raw
            .into_iter()
            .filter_map(|(id, fields)| entry(id, &fields))
            .collect();
        let next = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.id.clone()))
            .flatten();
        Ok((entries, next))
    }
}

fn entry(id: String, fields: &[(String, String)]) -> Option<AuditEntry> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let ms: i64 = id.split('-').next()?.parse().ok()?;
    Some(AuditEntry {
        at: DateTime::from_timestamp_millis(ms)?,
        who: field("who")?,
        action: Action::parse(&field("action")?)?,
        target: field("target").unwrap_or_default(),
        id,
    })
}
