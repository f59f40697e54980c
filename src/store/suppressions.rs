//! The suppression list: addresses mailroom will not send to, with the reason, where it came
//! from, and when. `P:{suppressions}` (hash: lower-cased address → JSON record) and
//! `P:{suppressions}:index` (sorted set by time, for listing with a cursor), one slot on a
//! cluster since both change together.
//!
//! Events add to it (`events::store`); operators read and edit it through
//! `/v1/suppressions`; the API and the worker consult it before sending.

use chrono::{DateTime, Utc};
use mailroom_jobs::EmailMessage;
use mailroom_jobs::RedisConnection;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SuppressionReason)]
pub enum Reason {
    /// A hard bounce (or a drop for a bounced address).
    Bounce,
    /// A permanent (5.x.x) block.
    Block,
    /// SendGrid dropped it as invalid.
    Invalid,
    /// The recipient reported spam.
    SpamReport,
    /// The recipient unsubscribed from everything.
    Unsubscribe,
    /// The recipient unsubscribed from a group.
    GroupUnsubscribe,
    /// Put there by an operator.
    Manual,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounce => "bounce",
            Self::Block => "block",
            Self::Invalid => "invalid",
            Self::SpamReport => "spam_report",
            Self::Unsubscribe => "unsubscribe",
            Self::GroupUnsubscribe => "group_unsubscribe",
            Self::Manual => "manual",
        }
    }
}

/// One suppressed address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Suppression {
    /// The address, lower-cased.
    pub email: String,
    pub reason: Reason,
    /// `sendgrid:<event>` or `api`.
    pub source: String,
    /// The provider's words (a bounce reason, an SMTP status), or the operator's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The longest note an operator puts on a suppression, in characters.
pub const MAX_DETAIL: usize = 200;

/// Why an operator's suppression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManualError {
    /// Not an address mailroom could send to.
    #[error("{0}")]
    Address(String),
    #[error("a note is at most {MAX_DETAIL} characters")]
    Detail,
}

impl Suppression {
    /// An operator's suppression of `email` (through `source`: `api`, `console`) for `reason`,
    /// with a note: the same rule whoever asks. The note is trimmed; empty is none.
    ///
    /// # Errors
    /// See [`ManualError`].
    pub fn by_operator(
        email: &str,
        reason: Reason,
        source: &str,
        detail: Option<&str>,
    ) -> Result<Self, ManualError> {
        mailroom_jobs::address::parse(email).map_err(|e| ManualError::Address(e.message))?;
        let detail = detail.map(str::trim).filter(|d| !d.is_empty());
        if detail.is_some_and(|d| d.chars().count() > MAX_DETAIL) {
            return Err(ManualError::Detail);
        }
        Ok(Self {
            email: key_of(email),
            reason,
            source: source.to_owned(),
            detail: detail.map(str::to_owned),
            created_at: Utc::now(),
        })
    }
}

/// One page of the list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuppressionPage {
    pub suppressions: Vec<Suppression>,
    /// Pass it as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// The suppression list in Redis.
#[derive(Debug, Clone)]
pub struct Suppressions {
    conn: RedisConnection,
    list: String,
    index: String,
}

/// Addresses are compared without case, as SendGrid does
/// ([`mailroom_jobs::address::case_key`]).
pub fn key_of(email: &str) -> String {
    mailroom_jobs::address::case_key(email)
}

/// The key an erased address's suppression is kept under: `sha256:` and the hex SHA-256 of its
/// case key.
pub fn hashed_key(email: &str) -> String {
    format!("sha256:{}", crate::domain::address_digest(email))
}

impl Suppressions {
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        let keys = mailroom_jobs::Keys::new(prefix);
        Self {
            conn,
            list: keys.suppressions(),
            index: keys.suppressions_index(),
        }
    }

    /// The record for `email`, if suppressed.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn get(&self, email: &str) -> redis::RedisResult<Option<Suppression>> {
        let raw = self.raw_many(&[email.to_owned()]).await?;
        Ok(raw
            .into_iter()
            .next()
            .flatten()
            .and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// The raw records of `emails` (same order), in one HMGET: each address's own record,
    /// else the record an erasure left under its hash ([`hashed_key`]).
    async fn raw_many(&self, emails: &[String]) -> redis::RedisResult<Vec<Option<String>>> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys: Vec<String> = emails.iter().map(|e| key_of(e)).collect();
        keys.extend(emails.iter().map(|e| hashed_key(e)));
        let found: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&self.list)
            .arg(&keys)
            .query_async(&mut self.conn.clone())
            .await?;
        let (own, hashed) = found.split_at(emails.len());
        Ok(own
            .iter()
            .zip(hashed)
            .map(|(own, hashed)| own.clone().or_else(|| hashed.clone()))
            .collect())
    }

    /// Replaces `email`'s record by one under its hash, keeping the reason and time but not
    /// the address (erasure).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn keep_only_hash(&self, record: &Suppression) -> redis::RedisResult<()> {
        let plain = key_of(&record.email);
        let hashed = hashed_key(&record.email);
        let kept = Suppression {
            email: hashed.clone(),
            detail: None,
            source: "erased".to_owned(),
            ..record.clone()
        };
        let json = serde_json::to_string(&kept).unwrap_or_default();
        redis::pipe()
            .atomic()
            .hdel(&self.list, &plain)
            .ignore()
            .zrem(&self.index, &plain)
            .ignore()
            .hset(&self.list, &hashed, json)
            .ignore()
            .zadd(&self.index, &hashed, record.created_at.timestamp_millis())
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    /// The records of `emails` (same order; `None` where not suppressed).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn get_many(
        &self,
        emails: &[String],
    ) -> redis::RedisResult<Vec<Option<Suppression>>> {
        let found = self.raw_many(emails).await?;
        Ok(found
            .into_iter()
            .map(|f| f.and_then(|r| serde_json::from_str(&r).ok()))
            .collect())
    }

    /// Which of `emails` are suppressed (same order).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn check(&self, emails: &[String]) -> redis::RedisResult<Vec<bool>> {
        let found = self.raw_many(emails).await?;
        Ok(found.into_iter().map(|f| f.is_some()).collect())
    }

    /// The recipients of `message` (to, cc, bcc) on the list, lower-cased, unless one of its
    /// categories is in `transactional` (those are sent regardless).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn suppressed_recipients(
        &self,
        message: &EmailMessage,
        transactional: &[String],
    ) -> redis::RedisResult<Vec<String>> {
        let mut each = self
            .suppressed_recipients_of(&[message], transactional)
            .await?;
        Ok(each.pop().unwrap_or_default())
    }

    /// [`Suppressions::suppressed_recipients`] of each of `messages`, looked up together in
    /// one round trip (a batch of a thousand messages asks once, not a thousand times).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn suppressed_recipients_of(
        &self,
        messages: &[&EmailMessage],
        transactional: &[String],
    ) -> redis::RedisResult<Vec<Vec<String>>> {
        let per_message: Vec<Vec<String>> = messages
            .iter()
            .map(|message| {
                if message.categories.iter().any(|c| transactional.contains(c)) {
                    return Vec::new();
                }
                message
                    .to
                    .iter()
                    .chain(&message.cc)
                    .chain(&message.bcc)
                    .map(|m| key_of(&m.email))
                    .collect()
            })
            .collect();
        let all: Vec<String> = per_message.iter().flatten().cloned().collect();
        let mut found = self.check(&all).await?.into_iter();
        Ok(per_message
            .into_iter()
            .map(|emails| {
                let mut suppressed: Vec<String> = emails
                    .into_iter()
                    .filter(|_| found.next().unwrap_or(false))
                    .collect();
                suppressed.dedup();
                suppressed
            })
            .collect())
    }

    /// Adds or replaces the record for `record.email`.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn put(&self, record: &Suppression) -> redis::RedisResult<()> {
        let email = key_of(&record.email);
        let json = serde_json::to_string(record).unwrap_or_default();
        redis::pipe()
            .atomic()
            .hset(&self.list, &email, json)
            .ignore()
            .zadd(&self.index, &email, record.created_at.timestamp_millis())
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    /// Removes `email`; whether it was there.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn delete(&self, email: &str) -> redis::RedisResult<bool> {
        let email = key_of(email);
        let (removed, _): (u64, u64) = redis::pipe()
            .atomic()
            .hdel(&self.list, &email)
            .zrem(&self.index, &email)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(removed > 0)
    }

    /// Up to `limit` records, newest first, from `cursor` (an opaque position), only those
    /// with `reason` when given.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn list(
        &self,
        reason: Option<Reason>,
        cursor: usize,
        limit: usize,
    ) -> redis::RedisResult<SuppressionPage> {
        let mut conn = self.conn.clone();
        let mut position = cursor;
        let mut suppressions = Vec::new();
        // Read the index in pages, filtering by reason, until the page is full or it ends.
        let step = limit.max(100);
        loop {
            let emails: Vec<String> = conn
                .zrevrange(
                    &self.index,
                    position as isize,
                    (position + step - 1) as isize,
                )
                .await?;
            if emails.is_empty() {
                return Ok(SuppressionPage {
                    suppressions,
                    next_cursor: None,
                });
            }
            let records: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&self.list)
                .arg(&emails)
                .query_async(&mut conn)
                .await?;
            for record in records {
                position += 1;
                let Some(record) =
                    record.and_then(|r| serde_json::from_str::<Suppression>(&r).ok())
                else {
                    continue;
                };
                if reason.is_none_or(|r| r == record.reason) {
                    suppressions.push(record);
                    if suppressions.len() == limit {
                        return Ok(SuppressionPage {
                            suppressions,
                            next_cursor: Some(position.to_string()),
                        });
                    }
                }
            }
        }
    }
}

/// Removes `suppressed` (lower-cased addresses) from the message's recipients. When no `to`
/// is left but cc or bcc recipients are, the first of them moves to `to` (a message needs one).
/// Returns whether anyone is left to send to.
pub fn drop_recipients(message: &mut EmailMessage, suppressed: &[String]) -> bool {
    let keep = |m: &mailroom_jobs::Mailbox| !suppressed.contains(&key_of(&m.email));
    message.to.retain(keep);
    message.cc.retain(keep);
    message.bcc.retain(keep);
    if message.to.is_empty() {
        if !message.cc.is_empty() {
            message.to.push(message.cc.remove(0));
        } else if !message.bcc.is_empty() {
            message.to.push(message.bcc.remove(0));
        }
    }
    !message.to.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_suppression_follows_one_rule_for_its_note_and_address() {
        let fine = "x".repeat(MAX_DETAIL);
        let record =
            Suppression::by_operator("Ada@Example.com", Reason::Manual, "api", Some(&fine))
                .unwrap();
        assert_eq!(
            (record.email.as_str(), record.source.as_str()),
            ("ada@example.com", "api")
        );
        let padded = format!("  {fine}  ");
        assert!(
            Suppression::by_operator("a@example.com", Reason::Manual, "api", Some(&padded)).is_ok()
        );
        let long = "x".repeat(MAX_DETAIL + 1);
        assert_eq!(
            Suppression::by_operator("a@example.com", Reason::Manual, "console", Some(&long)),
            Err(ManualError::Detail)
        );
        let blank = Suppression::by_operator("a@example.com", Reason::Manual, "console", Some(" "));
        assert_eq!(blank.unwrap().detail, None);
        assert!(matches!(
            Suppression::by_operator("not an address", Reason::Manual, "api", None),
            Err(ManualError::Address(_))
        ));
    }
}
