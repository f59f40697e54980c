//! A key as its holder sees it: `mr_` + a public id (16 hex digits) + `_` + a secret (32
//! random bytes, base64url). The id finds the stored key; only a digest of the secret is
//! stored, and it is compared in constant time.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::domain::KeyId;

/// What every key begins with.
pub const PREFIX: &str = "mr_";
const ID_LEN: usize = KeyId::LEN;
const SECRET_BYTES: usize = 32;

/// The SHA-256 of a secret, as stored (hex).
pub(super) fn digest(secret: &str) -> String {
    base16ct::lower::encode_string(&Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` has the stored `digest`, in constant time.
pub(super) fn matches(secret: &str, stored: &str) -> bool {
    let given = digest(secret);
    given.as_bytes().ct_eq(stored.as_bytes()).into()
}

/// A new id.
pub(super) fn new_id() -> KeyId {
    let mut bytes = [0u8; ID_LEN / 2];
    getrandom::fill(&mut bytes).expect("the system's random source");
    KeyId::from_bytes(bytes)
}

/// A new secret.
pub(super) fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The key its holder is given.
pub(super) fn presented(id: &KeyId, secret: &str) -> String {
    format!("{PREFIX}{id}_{secret}")
}

/// A presented key's id and secret, if it has the shape of one.
pub(super) fn split(presented: &str) -> Option<(KeyId, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = (rest.get(..ID_LEN)?, rest.get(ID_LEN..)?.strip_prefix('_')?);
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    Some((KeyId::parse(id)?, secret)).filter(|_| secret_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_splits_into_its_id_and_secret_and_nothing_else_does() {
        let id = new_id();
        let secret = new_secret();
        let key = presented(&id, &secret);
        assert_eq!(split(&key), Some((id.clone(), secret.as_str())));
        assert!(matches(&secret, &digest(&secret)));
        assert!(!matches(&new_secret(), &digest(&secret)));
        for bad in [
            "",
            "mr_",
            "bench-key",
            &key[..key.len() - 1],
            &key.replacen("mr_", "mx_", 1),
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
        assert_eq!(split(&format!("{key}x")), None);
        assert_eq!(KeyId::parse("0123456789ABCDEF"), None);
    }
}
