//! Ids of lists, subscribers and stored API keys.
//!
//! A list id is a positive number handed out by Redis. A subscriber id is a number too, and
//! says which shard holds the subscriber: `number × SUBSCRIBER_SHARDS + shard`, where the shard
//! follows from the address ([`shard_of`]). So a subscriber is found from its id or from its
//! address without an index that spans shards.

use mailroom_jobs::SUBSCRIBER_SHARDS;
use serde::{Deserialize, Serialize};

/// A list's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct ListId(u64);

impl ListId {
    /// The id `n`, if it is one (positive).
    pub fn new(n: u64) -> Option<Self> {
        (n > 0).then_some(Self(n))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Parses a path or token part (decimal digits only).
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().and_then(Self::new)
    }
}

impl TryFrom<u64> for ListId {
    type Error = &'static str;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        Self::new(n).ok_or("a list id is a positive number")
    }
}

impl From<ListId> for u64 {
    fn from(id: ListId) -> Self {
        id.0
    }
}

impl std::fmt::Display for ListId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A subscriber's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "u64", try_from = "u64")]
pub struct SubscriberId(u64);

impl SubscriberId {
    /// The `number`-th subscriber of `shard` (numbers start at 1).
    pub fn new(shard: u16, number: u64) -> Self {
        Self(number * u64::from(SUBSCRIBER_SHARDS) + u64::from(shard))
    }

    /// The shard that holds it.
    pub fn shard(self) -> u16 {
        // The remainder is below SUBSCRIBER_SHARDS, which is a u16.
        u16::try_from(self.0 % u64::from(SUBSCRIBER_SHARDS)).unwrap_or(0)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Parses a path or token part (decimal digits only, at least one shard's worth).
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<u64>()
            .ok()
            .and_then(|n| Self::try_from(n).ok())
    }
}

impl TryFrom<u64> for SubscriberId {
    type Error = &'static str;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        if n < u64::from(SUBSCRIBER_SHARDS) {
            return Err("not a subscriber id");
        }
        Ok(Self(n))
    }
}

impl From<SubscriberId> for u64 {
    fn from(id: SubscriberId) -> Self {
        id.0
    }
}

impl std::fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The shard of the address whose case key ([`mailroom_jobs::address::case_key`]) is `key`:
/// 64-bit FNV-1a, chosen because it must never change (ids and keys depend on it) and is
/// cheap enough for a million rows a second.
pub fn shard_of(key: &str) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u16::try_from(hash % u64::from(SUBSCRIBER_SHARDS)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_id_names_its_shard() {
        let id = SubscriberId::new(17, 5);
        assert_eq!(id.shard(), 17);
        assert_eq!(SubscriberId::parse(&id.to_string()), Some(id));
        assert_eq!(SubscriberId::parse("3"), None, "below one shard's worth");
        assert_eq!(SubscriberId::parse("+70"), None);
        assert_eq!(SubscriberId::parse("99999999999999999999"), None);
    }

    #[test]
    fn list_ids_are_positive_numbers() {
        assert_eq!(ListId::parse("12").map(ListId::get), Some(12));
        assert_eq!(ListId::parse("0"), None);
        assert_eq!(ListId::parse("1e3"), None);
        assert!(serde_json::from_str::<ListId>("0").is_err());
    }

    #[test]
    fn the_shard_of_an_address_is_fixed_and_spread() {
        // Fixed values: a change here would orphan every stored subscriber.
        assert_eq!(shard_of("ada@example.com"), shard_of("ada@example.com"));
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000 {
            seen.insert(shard_of(&format!("user{i}@example.com")));
        }
        assert_eq!(seen.len(), usize::from(SUBSCRIBER_SHARDS));
    }
}

/// A stored API key's public id: 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// How many hex digits an id has.
    pub const LEN: usize = 16;

    /// `text` if it is an id.
    pub fn parse(text: &str) -> Option<Self> {
        is_hex16(text).then(|| Self(text.to_owned()))
    }

    /// The id these 8 bytes write.
    pub fn from_bytes(bytes: [u8; Self::LEN / 2]) -> Self {
        Self(base16ct::lower::encode_string(&bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// 16 lowercase hex digits: the shape of the random public ids.
fn is_hex16(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A webhook endpoint's id: 16 lowercase hex digits, random.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HookId(String);

impl HookId {
    /// `text` if it is an id.
    pub fn parse(text: &str) -> Option<Self> {
        is_hex16(text).then(|| Self(text.to_owned()))
    }

    /// A new random id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the system's random source");
        Self(base16ct::lower::encode_string(&bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for HookId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
