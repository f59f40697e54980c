//! Tracking tokens: what an open image or a click link reports, signed with the link keys
//! (`MAILROOM_LINK_KEYS`, HMAC-SHA256, the key named by id for rotation) under a purpose of its
//! own, so a token is checked without a Redis lookup and cannot be forged, altered or passed
//! off as an unsubscribe link.
//!
//! The body is base64url of: kind (1 open, 2 click), scope (1 message, 2 campaign), the
//! message's or campaign's UUID (16 bytes), for a campaign the subscriber (8 bytes), the
//! send time (Unix seconds, 4 bytes, for the scanner rule), and for a click the target URL.
//! The URL is in the signed token, not looked up: only a URL that was in the message can be
//! reached through `/t/c/`, so it is no open redirect. No address is in it: a message's
//! recipient is looked up by its id, a campaign's by the subscriber.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::domain::{CampaignId, MessageId};
use crate::lists::links::LinkKeys;

/// The HMAC purpose of tracking tokens.
const PURPOSE: &str = "tracking";
/// The longest token taken (a long URL included).
pub const MAX_TOKEN: usize = 6000;
/// The longest URL rewritten; a longer link is left as it is.
pub const MAX_URL: usize = 4000;

/// Whose mail a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A message sent with `POST /v1/emails`: its id.
    Message(MessageId),
    /// A campaign's mail to one subscriber.
    Campaign {
        campaign: CampaignId,
        subscriber: u64,
    },
}

/// What a token reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scope: Scope,
    /// When the message was handed over (Unix seconds).
    pub sent_at: u32,
    /// The link, for a click; `None` for the open image.
    pub url: Option<String>,
}

impl Target {
    /// The signed token.
    pub fn sign(&self, keys: &LinkKeys) -> String {
        let mut bytes = Vec::with_capacity(40 + self.url.as_ref().map_or(0, String::len));
        bytes.push(if self.url.is_some() { 2 } else { 1 });
        match self.scope {
            Scope::Message(id) => {
                bytes.push(1);
                bytes.extend_from_slice(id.get().as_bytes());
            }
            Scope::Campaign {
                campaign,
                subscriber,
            } => {
                bytes.push(2);
                bytes.extend_from_slice(campaign.get().as_bytes());
                bytes.extend_from_slice(&subscriber.to_be_bytes());
            }
        }
        bytes.extend_from_slice(&self.sent_at.to_be_bytes());
        if let Some(url) = &self.url {
            bytes.extend_from_slice(url.as_bytes());
        }
        keys.seal(PURPOSE, &URL_SAFE_NO_PAD.encode(bytes))
    }

    /// What `token` reports, if it is whole and signed by one of `keys`; `click` says which
    /// route it came through (an open token is no click token).
    pub fn verify(keys: &LinkKeys, token: &str, click: bool) -> Option<Self> {
        if token.len() > MAX_TOKEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(keys.open(PURPOSE, token)?).ok()?;
        let (&kind, rest) = bytes.split_first()?;
        if kind != if click { 2 } else { 1 } {
            return None;
        }
        let (&scope, rest) = rest.split_first()?;
        let id = uuid::Uuid::from_slice(rest.get(..16)?).ok()?;
        let (scope, rest) = match scope {
            1 => (Scope::Message(id.into()), &rest[16..]),
            2 => (
                Scope::Campaign {
                    campaign: id.into(),
                    subscriber: u64::from_be_bytes(rest.get(16..24)?.try_into().ok()?),
                },
                &rest[24..],
            ),
            _ => return None,
        };
        let sent_at = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let url = &rest[4..];
        let url = if click {
            Some(String::from_utf8(url.to_vec()).ok()?)
        } else if url.is_empty() {
            None
        } else {
            return None;
        };
        Some(Self {
            scope,
            sent_at,
            url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> LinkKeys {
        LinkKeys::parse(text).unwrap()
    }

    #[test]
    fn tokens_round_trip_and_any_change_is_refused() {
        let k = keys("k1:0123456789abcdef0123456789abcdef");
        let click = Target {
            scope: Scope::Campaign {
                campaign: CampaignId::fresh(),
                subscriber: 6401,
            },
            sent_at: 1_800_000_000,
            url: Some("https://example.com/offer?a=1&b=2".to_owned()),
        };
        let token = click.sign(&k);
        assert!(
            !token.contains("example.com"),
            "the URL is not legible as such"
        );
        assert_eq!(Target::verify(&k, &token, true), Some(click.clone()));
        assert_eq!(
            Target::verify(&k, &token, false),
            None,
            "a click token is no open token"
        );
        let open = Target {
            scope: Scope::Message(MessageId::fresh()),
            sent_at: 1,
            url: None,
        };
        assert_eq!(Target::verify(&k, &open.sign(&k), false), Some(open));
        // Every single-character change of the token is refused.
        let bytes = token.as_bytes();
        for i in 0..bytes.len() {
            let mut altered = bytes.to_vec();
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            if altered != token {
                assert_eq!(
                    Target::verify(&k, &altered, true),
                    None,
                    "at {i}: {altered}"
                );
            }
        }
        // Another key, or the same body under the unsubscribe purpose, is refused.
        assert_eq!(
            Target::verify(&keys("k1:ffffffffffffffffffffffffffffffff"), &token, true),
            None
        );
        assert!(k.verify(&token).is_none());
    }

    #[test]
    fn a_rotated_key_still_verifies_old_tokens() {
        let old = keys("k1:0123456789abcdef0123456789abcdef");
        let target = Target {
            scope: Scope::Message(MessageId::fresh()),
            sent_at: 7,
            url: None,
        };
        let token = target.sign(&old);
        let rotated =
            keys("k2:abcdefabcdefabcdefabcdefabcdefab,k1:0123456789abcdef0123456789abcdef");
        assert_eq!(
            Target::verify(&rotated, &token, false),
            Some(target.clone())
        );
        assert!(target.sign(&rotated).starts_with("k2."));
    }
}
