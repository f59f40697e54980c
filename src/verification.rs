//! Verification tokens and verified addresses.
//!
//! A token is 32 bytes from the OS random source, base64url in the link. Redis keeps only its
//! SHA-256, with the request (address, locale, return URL, metadata, creation time), until the
//! link expires. Each address has one live token: issuing a new one deletes the old. A token
//! is spent by one atomic script that also marks the address verified and appends the
//! `email.verified` event to the `{prefix}:{verify}:events` stream, so fifty simultaneous confirmations
//! of one link make exactly one success.
//!
//! Keys: `P:{verify}:t:SHA256` (hash), `P:{verify}:a:EMAIL` (the address's live token),
//! `P:{verify}:used:SHA256` (a spent token's return URL, until the link would have expired),
//! `P:{verify}:addr:EMAIL` (hash with `verified_at`), and the stream `P:{verify}:events`: one
//! hash tag, since one script writes token, address and stream ([`mailroom_jobs::keys`]).

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use mailroom_jobs::{Job as _, RedisConnection, SendVerification};
use redis::Script;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    domain::{EventType, Notice},
    store::notices::Notices,
};

/// A link's token. Never logged, never stored: only its [`Token::digest`] is.
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// The encoded length of a token: 32 bytes in unpadded base64url.
    pub const LEN: usize = 43;

    /// A new token from the OS random source.
    ///
    /// # Errors
    /// When the OS cannot provide randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    /// A token from a link, if it has a token's shape (43 base64url characters).
    pub fn parse(value: &str) -> Option<Self> {
        let shaped = value.len() == Self::LEN
            && base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(value)
                .is_ok_and(|b| b.len() == 32);
        shaped.then(|| Self(value.to_owned()))
    }

    /// The token as it goes into the link.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its SHA-256, hex: the only form Redis sees.
    pub fn digest(&self) -> String {
        base16ct::lower::encode_string(&Sha256::digest(self.0.as_bytes()))
    }
}

/// A pending verification, as the confirmation page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The address.
    pub email: String,
    /// The requested locale.
    pub locale: Option<String>,
    /// Where to send the person afterwards.
    pub return_url: Option<String>,
    /// The request's metadata (a double opt-in's list is there).
    pub metadata: BTreeMap<String, String>,
}

/// What confirming a token did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// The address, now verified.
    pub email: String,
    /// When (RFC 3339).
    pub verified_at: String,
    /// The requested locale.
    #[serde(skip)]
    pub locale: Option<String>,
    /// Where to send the person afterwards.
    #[serde(skip)]
    pub return_url: Option<String>,
    /// The caller's metadata, handed back.
    pub metadata: BTreeMap<String, String>,
    /// The stored key that asked for it (none: an operator key).
    #[serde(skip)]
    pub owner: Option<String>,
}

impl Verified {
    /// The `address.verified` event for the services.
    fn notice(&self) -> Notice {
        let at = DateTime::parse_from_rfc3339(&self.verified_at)
            .map_or_else(|_| Utc::now(), |at| at.with_timezone(&Utc));
        let data = serde_json::json!({
            "email": self.email,
            "verified_at": self.verified_at,
            "metadata": self.metadata,
            "key": self.owner,
        });
        let identity = format!("{}|{}", self.email, self.verified_at);
        Notice::new(
            EventType::AddressVerified,
            &identity,
            at,
            self.owner.clone(),
            data,
        )
    }
}

/// An address's verification state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AddressStatus {
    /// The address.
    pub email: String,
    /// Whether it was verified (and not cleared since).
    pub verified: bool,
    /// When (RFC 3339).
    pub verified_at: Option<String>,
}

const ISSUE: &str = r"
local old = redis.call('GET', KEYS[2])
if old and old ~= ARGV[1] then
  redis.call('DEL', ARGV[8] .. old)
end
redis.call('HSET', KEYS[1], 'email', ARGV[2], 'locale', ARGV[3], 'return_url', ARGV[4],
  'metadata', ARGV[5], 'created_at', ARGV[6], 'key', ARGV[9], 'owner', ARGV[10])
redis.call('PEXPIREAT', KEYS[1], ARGV[7])
redis.call('SET', KEYS[2], ARGV[1], 'PXAT', ARGV[7])
return 1";

const INVALIDATE: &str = r"
local old = redis.call('GET', KEYS[1])
if old then
  redis.call('DEL', ARGV[1] .. old)
end
redis.call('DEL', KEYS[1])
return 1";

/// Spends a token: found → deleted, the address marked verified, the event appended. The
/// address's key form (`key`, from [`canonical`]) was stored with the token: the script never
/// changes an address's case itself, so Rust's one rule holds for every address.
const CONSUME: &str = r"
local found = redis.call('HMGET', KEYS[1], 'email', 'locale', 'return_url', 'metadata', 'key', 'owner')
if not found[1] then
  return false
end
local left = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
-- Remember, for the rest of the link's life, that it was used (a person who opens it again is
-- told the address is confirmed) and where they could go back to.
if left > 0 then
  redis.call('HSET', KEYS[3], 'return_url', found[3], 'locale', found[2])
  redis.call('PEXPIRE', KEYS[3], left)
end
local key = found[5]
if not key then
  -- A token issued before the key form was stored: the ASCII rule it was issued under.
  key = string.lower(found[1])
end
local pointer = ARGV[2] .. key
if redis.call('GET', pointer) == ARGV[1] then
  redis.call('DEL', pointer)
end
redis.call('HSET', ARGV[3] .. key, 'email', found[1], 'verified_at', ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'type', 'email.verified',
  'email', found[1], 'verified_at', ARGV[4], 'metadata', found[4])
return {found[1], found[2], found[3], found[4], found[6] or ''}";

/// The form of an address that keys its verification records: decided in Rust
/// ([`mailroom_jobs::address::case_key`]) and handed to the scripts.
fn canonical(email: &str) -> String {
    mailroom_jobs::address::case_key(email)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads and writes verification state.
#[derive(Debug, Clone)]
pub struct Verifications {
    conn: RedisConnection,
    keys: mailroom_jobs::Keys,
    notices: Notices,
    issue: Script,
    invalidate: Script,
    consume: Script,
}

impl Verifications {
    /// The store under `prefix`.
    pub fn new(conn: RedisConnection, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        Self {
            notices: Notices::new(conn.clone(), &prefix),
            conn,
            keys: mailroom_jobs::Keys::new(&prefix),
            issue: Script::new(ISSUE),
            invalidate: Script::new(INVALIDATE),
            consume: Script::new(CONSUME),
        }
    }

    fn token_key(&self, digest: &str) -> String {
        self.keys.verify_token(digest)
    }

    fn used_key(&self, digest: &str) -> String {
        self.keys.verify_used(digest)
    }

    fn token_prefix(&self) -> String {
        self.keys.verify_token_prefix()
    }

    fn live_key(&self, email: &str) -> String {
        self.keys.verify_live(&canonical(email))
    }

    /// The stream every `email.verified` event goes to.
    pub fn events_key(&self) -> String {
        self.keys.verify_events()
    }

    /// The stored key that queued verification job `job_id` (none: an operator key, or a job
    /// pushed straight into Redis).
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn requester(&self, job_id: &str) -> redis::RedisResult<Option<String>> {
        let queue = mailroom_jobs::QueueKeys::new(self.keys.prefix(), SendVerification::QUEUE);
        let owner: Option<String> = redis::cmd("HGET")
            .arg(queue.job(job_id))
            .arg("owner")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(owner.filter(|owner| !owner.is_empty()))
    }

    /// Drops the address's live token, if any (a newer request replaces it).
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn invalidate(&self, email: &str) -> redis::RedisResult<()> {
        let _: i64 = self
            .invalidate
            .key(self.live_key(email))
            .arg(self.token_prefix())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Stores `token`'s digest for `request` (asked for by stored key `owner`) until it
    /// expires, replacing the address's previous token.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn issue(
        &self,
        token: &Token,
        request: &SendVerification,
        owner: Option<&str>,
    ) -> redis::RedisResult<()> {
        let digest = token.digest();
        let email = request.email.as_str();
        let (locale, return_url) = (request.locale.as_deref(), request.return_url.as_deref());
        let metadata = serde_json::to_string(&request.metadata).unwrap_or_else(|_| "{}".to_owned());
        let _: i64 = self
            .issue
            .key(self.token_key(&digest))
            .key(self.live_key(email))
            .arg(&digest)
            .arg(email)
            .arg(locale.unwrap_or(""))
            .arg(return_url.unwrap_or(""))
            .arg(metadata)
            .arg(now())
            .arg(request.expires_at.timestamp_millis())
            .arg(self.token_prefix())
            .arg(canonical(email))
            .arg(owner.unwrap_or(""))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The pending verification of `token`, without spending it (the confirmation page).
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn pending(&self, token: &Token) -> redis::RedisResult<Option<Pending>> {
        let (email, locale, return_url, metadata): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = redis::cmd("HMGET")
            .arg(self.token_key(&token.digest()))
            .arg(&["email", "locale", "return_url", "metadata"])
            .query_async(&mut self.conn.clone())
            .await?;
        let present = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok(email.map(|email| Pending {
            email,
            locale: present(locale),
            return_url: present(return_url),
            metadata: metadata
                .and_then(|m| serde_json::from_str(&m).ok())
                .unwrap_or_default(),
        }))
    }

    /// Appends an event of `kind` to the events stream (beside `email.verified`), bounded like
    /// the events the confirm script appends.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn append_event(
        &self,
        kind: &str,
        fields: &[(&str, &str)],
    ) -> redis::RedisResult<()> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.events_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("type")
            .arg(kind);
        for (name, value) in fields {
            cmd.arg(*name).arg(*value);
        }
        cmd.query_async::<()>(&mut self.conn.clone()).await
    }

    /// Spends `token`. `None` when it is unknown, expired or already used.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn consume(&self, token: &Token) -> redis::RedisResult<Option<Verified>> {
        let verified_at = now();
        let found: Option<(String, String, String, String, String)> = self
            .consume
            .key(self.token_key(&token.digest()))
            .key(self.events_key())
            .key(self.used_key(&token.digest()))
            .arg(token.digest())
            .arg(self.keys.verify_live_prefix())
            .arg(self.keys.verified_prefix())
            .arg(&verified_at)
            .arg(100_000)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let present = |v: String| (!v.is_empty()).then_some(v);
        let Some((email, locale, return_url, metadata, owner)) = found else {
            return Ok(None);
        };
        let verified = Verified {
            email,
            verified_at,
            locale: present(locale),
            return_url: present(return_url),
            metadata: serde_json::from_str(&metadata).unwrap_or_default(),
            owner: present(owner),
        };
        self.notices.tell(&[verified.notice()]).await;
        Ok(Some(verified))
    }

    /// For a token already spent (and not yet past its expiry): the return URL (empty when
    /// the request had none) and locale of its request, so that opening the link again can say
    /// the address is confirmed and offer a way back.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn spent(
        &self,
        token: &Token,
    ) -> redis::RedisResult<Option<(String, Option<String>)>> {
        let (return_url, locale): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.used_key(&token.digest()))
            .arg(&["return_url", "locale"])
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(return_url.map(|url| (url, locale.filter(|l| !l.is_empty()))))
    }

    /// Whether `email` is verified.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn address(&self, email: &str) -> redis::RedisResult<AddressStatus> {
        let key = self.keys.verified(&canonical(email));
        let verified_at: Option<String> = redis::cmd("HGET")
            .arg(key)
            .arg("verified_at")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(AddressStatus {
            email: email.to_owned(),
            verified: verified_at.is_some(),
            verified_at,
        })
    }

    /// Forgets that `email` was verified. Returns whether it was.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn clear(&self, email: &str) -> redis::RedisResult<bool> {
        let key = self.keys.verified(&canonical(email));
        let removed: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(removed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_base64url_characters_and_hide_themselves() {
        let token = Token::generate().unwrap();
        assert_eq!(token.expose().len(), Token::LEN);
        assert!(Token::parse(token.expose()).is_some());
        assert_ne!(Token::generate().unwrap().expose(), token.expose());
        assert_eq!(format!("{token:?}"), "Token(…)");
        assert_eq!(token.digest().len(), 64);
        assert!(Token::parse("short").is_none());
        assert!(Token::parse(&"a".repeat(44)).is_none());
        assert!(Token::parse(&format!("{}+", &token.expose()[..42])).is_none());
    }
}
