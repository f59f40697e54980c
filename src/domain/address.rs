//! How an address is named in keys and hashed suppressions.

use sha2::{Digest, Sha256};

/// The SHA-256 (hex) of an address's case key: how keys and hashed suppressions name it.
pub fn address_digest(email: &str) -> String {
    base16ct::lower::encode_string(&Sha256::digest(
        mailroom_jobs::address::case_key(email).as_bytes(),
    ))
}
