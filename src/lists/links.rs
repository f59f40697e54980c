//! Signed links that act on a subscription: the RFC 8058 one-click unsubscribe and preference
//! page link `/u/TOKEN`.
//!
//! A token names the subscriber, the list and (for campaign mail) the campaign, and carries an
//! HMAC-SHA256 of them under a key named by id, so it is checked without a Redis lookup and
//! cannot be forged or altered: `KEY.SUBSCRIBER.LIST.CAMPAIGN.MAC` (campaign empty when there is
//! none; MAC the first 128 bits, base64url). Keys come from `MAILROOM_LINK_KEYS`
//! (`id:secret,…`): the first signs, every one verifies, so a key is rotated by putting a new
//! one first and dropping the old one once its links no longer matter.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::{CampaignId, ListId, SubscriberId};

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret taken.
pub const MIN_SECRET_LEN: usize = 32;
/// Bytes of the MAC kept in a link.
const MAC_BYTES: usize = 16;

/// What a link acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListLink {
    pub subscriber: SubscriberId,
    pub list: ListId,
    /// The campaign the email belonged to, if any.
    pub campaign: Option<CampaignId>,
}

/// The keys that sign and check links.
#[derive(Clone)]
pub struct LinkKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "LinkKeys({ids:?})")
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// What is wrong with `MAILROOM_LINK_KEYS` (never quoting a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("key {0}: write it as id:secret")]
    Shape(usize),
    #[error("key {0}: the id is 1 to 16 letters, digits, - or _")]
    Id(usize),
    #[error("key {0}: the secret is at least {MIN_SECRET_LEN} characters")]
    ShortSecret(String),
    #[error("key {0} is given twice")]
    Twice(String),
}

impl LinkKeys {
    /// `MAILROOM_LINK_KEYS`, parsed; `None` when unset.
    ///
    /// # Errors
    /// When it is set but malformed (the message never quotes a secret).
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Option<Self>> {
        use secrecy::ExposeSecret as _;
        settings
            .link_keys
            .as_ref()
            .map(secrecy::SecretString::expose_secret)
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| Self::parse(k).map_err(|e| anyhow::anyhow!("MAILROOM_LINK_KEYS: {e}")))
            .transpose()
    }

    /// Parses `id:secret[,id:secret…]`.
    ///
    /// # Errors
    /// A reason (never quoting a secret) when the text is not that.
    pub fn parse(text: &str) -> Result<Self, KeysError> {
        let mut keys = Vec::new();
        for (i, part) in text.split(',').map(str::trim).enumerate() {
            let Some((id, secret)) = part.split_once(':') else {
                return Err(KeysError::Shape(i + 1));
            };
            if id.is_empty() || id.len() > 16 || !id.chars().all(is_id_char) {
                return Err(KeysError::Id(i + 1));
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(KeysError::ShortSecret(id.to_owned()));
            }
            if keys.iter().any(|(k, _): &(String, Vec<u8>)| k == id) {
                return Err(KeysError::Twice(id.to_owned()));
            }
            keys.push((id.to_owned(), secret.as_bytes().to_vec()));
        }
        Ok(Self { keys })
    }

    /// A key for this process only (`mailroom dev` without `MAILROOM_LINK_KEYS`): its links stop
    /// working when the process ends.
    ///
    /// # Errors
    /// When the OS has no randomness to give.
    pub fn ephemeral() -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        Ok(Self {
            keys: vec![("dev".to_owned(), secret.to_vec())],
        })
    }

    fn mac(secret: &[u8], purpose: &str, payload: &str) -> HmacSha256 {
        // Any key length is accepted by HMAC.
        let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        mac.update(purpose.as_bytes());
        mac.update(b"\n");
        mac.update(payload.as_bytes());
        mac
    }

    /// The token for `link`, signed with the first key.
    pub fn sign(&self, link: &ListLink) -> String {
        let campaign = link.campaign.map(|c| c.to_string()).unwrap_or_default();
        let body = format!("{}.{}.{campaign}", link.subscriber, link.list);
        self.seal("unsubscribe", &body)
    }

    /// What `token` names, if one of the keys signed it unaltered.
    pub fn verify(&self, token: &str) -> Option<ListLink> {
        if token.len() > 200 {
            return None;
        }
        let mut parts = self.open("unsubscribe", token)?.split('.');
        let (subscriber, list, campaign) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(ListLink {
            subscriber: SubscriberId::parse(subscriber)?,
            list: ListId::parse(list)?,
            campaign: CampaignId::parse(campaign),
        })
    }

    /// `body` (no `.` in it) signed for `purpose` with the first key: `KEY.BODY.MAC`. Other
    /// signed links (`tracking`) use this; a token for one purpose never passes for
    /// another.
    pub fn seal(&self, purpose: &str, body: &str) -> String {
        let (id, secret) = &self.keys[0];
        let payload = format!("{id}.{body}");
        let mac = Self::mac(secret, purpose, &payload).finalize().into_bytes();
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac[..MAC_BYTES]);
        format!("{payload}.{mac}")
    }

    /// The body of a [`LinkKeys::seal`]ed `token` for `purpose`, if one of the keys signed it
    /// unaltered (compared in constant time).
    pub fn open<'t>(&self, purpose: &str, token: &'t str) -> Option<&'t str> {
        let (payload, mac) = token.rsplit_once('.')?;
        let (id, body) = payload.split_once('.')?;
        let (_, secret) = self.keys.iter().find(|(k, _)| k == id)?;
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(mac)
            .ok()?;
        if mac.len() != MAC_BYTES {
            return None;
        }
        Self::mac(secret, purpose, payload)
            .verify_truncated_left(&mac)
            .ok()?;
        Some(body)
    }

    /// The value a preference page's form carries for `token`, proving the form came from the
    /// page (an HMAC of the token under another purpose).
    pub fn form_token(&self, token: &str) -> String {
        let mac = Self::mac(&self.keys[0].1, "preferences-form", token)
            .finalize()
            .into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac[..MAC_BYTES])
    }

    /// Whether `value` is [`LinkKeys::form_token`] of `token` under any key (constant-time).
    pub fn check_form_token(&self, token: &str, value: &str) -> bool {
        let Ok(mac) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value) else {
            return false;
        };
        mac.len() == MAC_BYTES
            && self.keys.iter().any(|(_, secret)| {
                Self::mac(secret, "preferences-form", token)
                    .verify_truncated_left(&mac)
                    .is_ok()
            })
    }
}

/// The headers of an email to a list subscriber: `List-Unsubscribe` (HTTPS, and `mailto:` when
/// an address is configured), `List-Unsubscribe-Post` (RFC 8058 one-click) and `List-Id`
/// (RFC 2919, `LIST.list-id.HOST` under the public URL's host).
pub fn list_headers(
    keys: &LinkKeys,
    public_url: &str,
    link: &ListLink,
    list_name: &str,
    mailto: Option<&str>,
) -> Vec<(&'static str, String)> {
    ListHeaders::new(public_url, link.list, list_name, mailto)
        .for_token(&keys.sign(link))
        .to_vec()
}

/// What the list headers of one list's mail share, worked out once (a campaign writes them for
/// every recipient): the link base, the `List-Id`, the `mailto:` part.
#[derive(Debug, Clone)]
pub struct ListHeaders {
    base: String,
    list_id: String,
    mailto: String,
}

impl ListHeaders {
    /// The headers of list `list` (named `list_name`) under `public_url`.
    pub fn new(public_url: &str, list: ListId, list_name: &str, mailto: Option<&str>) -> Self {
        let base = public_url.trim_end_matches('/');
        // A List-Id needs a domain: an IP address or a dotless host gets a placeholder.
        let host = url::Url::parse(base)
            .ok()
            .and_then(|u| match u.host() {
                Some(url::Host::Domain(d)) if d.contains('.') => Some(d.to_owned()),
                _ => None,
            })
            .unwrap_or_else(|| "localhost.localdomain".to_owned());
        // The phrase only when it needs no quoting or encoding; the id alone is a valid List-Id.
        let phrase = if list_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-' || c == '_')
            && !list_name.trim().is_empty()
        {
            format!("{} ", list_name.trim())
        } else {
            String::new()
        };
        Self {
            base: base.to_owned(),
            list_id: format!("{phrase}<{list}.list-id.{host}>"),
            mailto: mailto
                .filter(|m| !m.is_empty())
                .map(|address| format!(", <mailto:{address}?subject=unsubscribe>"))
                .unwrap_or_default(),
        }
    }

    /// The recipient's unsubscribe page for `token`.
    pub fn page(&self, token: &str) -> String {
        format!("{}/u/{token}", self.base)
    }

    /// The three headers for the link signed as `token`.
    pub fn for_token(&self, token: &str) -> [(&'static str, String); 3] {
        [
            (
                "List-Unsubscribe",
                format!("<{}/u/{token}>{}", self.base, self.mailto),
            ),
            (
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".to_owned(),
            ),
            ("List-Id", self.list_id.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> LinkKeys {
        LinkKeys::parse(text).unwrap()
    }

    fn link() -> ListLink {
        ListLink {
            subscriber: SubscriberId::new(5, 9),
            list: ListId::new(3).unwrap(),
            campaign: CampaignId::parse("0190f3a2-5b1c-7d4e-8f60-123456789abc"),
        }
    }

    #[test]
    fn a_signed_link_verifies_and_an_altered_one_does_not() {
        let k = keys("k1:0123456789abcdef0123456789abcdef");
        let token = k.sign(&link());
        assert_eq!(k.verify(&token), Some(link()));
        let subscriber = link().subscriber.to_string();
        let other = token.replacen(&format!(".{subscriber}."), ".645.", 1);
        assert_ne!(other, token);
        assert_eq!(k.verify(&other), None, "another subscriber");
        let mut chars: Vec<char> = token.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        assert_eq!(k.verify(&chars.into_iter().collect::<String>()), None);
        assert_eq!(k.verify("k1.1.1..AAAA"), None);
        assert_eq!(k.verify(""), None);
        let stranger = keys("k1:ffffffffffffffffffffffffffffffff");
        assert_eq!(stranger.verify(&token), None, "same id, another secret");
    }

    #[test]
    fn rotation_keeps_old_links_working() {
        let old = keys("k1:0123456789abcdef0123456789abcdef");
        let token = old.sign(&link());
        let rotated =
            keys("k2:abcdefabcdefabcdefabcdefabcdefab, k1:0123456789abcdef0123456789abcdef");
        assert_eq!(rotated.verify(&token), Some(link()));
        assert!(rotated.sign(&link()).starts_with("k2."));
        let form = rotated.form_token(&token);
        assert!(rotated.check_form_token(&token, &form));
        assert!(!rotated.check_form_token("other", &form));
    }

    #[test]
    fn bad_key_settings_are_refused_without_quoting_the_secret() {
        for bad in [
            "k1",
            "k1:short",
            "k 1:0123456789abcdef0123456789abcdef",
            "a:0123456789abcdef0123456789abcdef,a:0123456789abcdef0123456789abcdef",
        ] {
            let error = LinkKeys::parse(bad).unwrap_err().to_string();
            assert!(!error.contains("0123456789abcdef"), "{error}");
        }
    }

    #[test]
    fn list_mail_carries_the_rfc_8058_headers() {
        let k = keys("k1:0123456789abcdef0123456789abcdef");
        let headers = list_headers(
            &k,
            "https://mail.example.com/",
            &link(),
            "Product news",
            Some("unsub@example.com"),
        );
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        let token = k.sign(&link());
        assert_eq!(
            get("List-Unsubscribe"),
            format!(
                "<https://mail.example.com/u/{token}>, <mailto:unsub@example.com?subject=unsubscribe>"
            )
        );
        assert_eq!(get("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
        assert_eq!(get("List-Id"), "Product news <3.list-id.mail.example.com>");
    }
}
