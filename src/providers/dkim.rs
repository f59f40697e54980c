//! DKIM signatures (RFC 6376, and ed25519-sha256 from RFC 8463) on the mail mailroom writes
//! itself: SMTP and the outbox. SendGrid signs what it sends with the domain authenticated in
//! its own settings, so its mail never passes through here.
//!
//! The signature is `mail-auth`'s, over the formatted message, relaxed/relaxed, and is put in
//! front of the message's headers. The key whose domain is the From address's signs; mail
//! from a domain without a key goes out unsigned (the operator sees which in `mailroom doctor`).
//!
//! Keys come from `MAILROOM_DKIM_KEYS=domain:selector:SOURCE[,…]`, where SOURCE is the path of
//! a PEM file or `$NAME`, an environment variable holding the PEM (for platforms that hand
//! secrets over as variables). PKCS#8 (`BEGIN PRIVATE KEY`) RSA of at least 2,048 bits or
//! Ed25519; PKCS#1 RSA (`BEGIN RSA PRIVATE KEY`) is taken too, being what older tools write.

use std::collections::HashMap;

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{Ed25519KeyPair, KeyPair as _},
};
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use mail_auth::{
    common::{
        crypto::{Ed25519Key, RsaKey, Sha256},
        headers::HeaderWriter as _,
    },
    dkim::{Canonicalization, DkimSigner, Done},
};
use rustls_pki_types::{PrivateKeyDer, pem::PemObject};

/// The headers a signature covers, when the message has them. RFC 8058 asks for the two
/// `List-Unsubscribe` headers to be signed; Gmail and Yahoo ask bulk senders for the rest.
pub const SIGNED_HEADERS: [&str; 14] = [
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Feedback-ID",
    "In-Reply-To",
];

/// The smallest RSA key taken, in bits (RFC 8301 makes 1,024 the floor; receivers now expect
/// 2,048).
const MIN_RSA_BITS: usize = 2048;

/// A key's algorithm, as `mailroom dkim keygen` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    /// rsa-sha256 with a 2,048-bit key: what every receiver checks.
    Rsa,
    /// ed25519-sha256 (RFC 8463): short keys; not every receiver checks it yet, so sign with
    /// an RSA key as well.
    Ed25519,
}

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// One domain's key.
struct DomainKey {
    selector: String,
    signer: Signer,
    /// The `p=` value of the TXT record that publishes this key.
    public: String,
    algorithm: Algorithm,
}

/// The configured keys, by sending domain.
#[derive(Default)]
pub struct DkimKeys {
    by_domain: HashMap<String, DomainKey>,
}

impl std::fmt::Debug for DkimKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for (domain, key) in &self.by_domain {
            list.entry(&format_args!("{}._domainkey.{domain}", key.selector));
        }
        list.finish()
    }
}

/// What a configured key publishes: for `mailroom doctor` to compare with DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The sending domain.
    pub domain: String,
    /// The selector.
    pub selector: String,
    /// The TXT record's value, as `mailroom dkim keygen` prints it.
    pub record: String,
}

impl DkimKeys {
    /// `MAILROOM_DKIM_KEYS`, each key read and checked; `None` when none is set.
    ///
    /// # Errors
    /// As [`DkimKeys::parse`].
    pub fn from_settings(
        settings: &crate::config::Settings,
    ) -> anyhow::Result<Option<std::sync::Arc<Self>>> {
        let Some(spec) = settings
            .dkim_keys
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        else {
            return Ok(None);
        };
        let keys = Self::parse(spec).map_err(|e| anyhow::anyhow!("MAILROOM_DKIM_KEYS: {e}"))?;
        Ok(Some(std::sync::Arc::new(keys)))
    }

    /// Parses `MAILROOM_DKIM_KEYS`, reading each key.
    ///
    /// # Errors
    /// An entry not `domain:selector:SOURCE`, a key that cannot be read or parsed, an RSA key
    /// under 2,048 bits, or a domain named twice. The message names the entry, never the key.
    pub fn parse(spec: &str) -> Result<Self, DkimError> {
        let mut keys = Self::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = entry.splitn(3, ':');
            let (Some(domain), Some(selector), Some(source)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(DkimError::Entry(entry.to_owned()));
            };
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            if !is_dns_name(&domain) || !domain.contains('.') {
                return Err(DkimError::Domain(domain));
            }
            let selector = selector.trim().to_ascii_lowercase();
            if !is_dns_name(&selector) {
                return Err(DkimError::Selector { selector, domain });
            }
            let source = source.trim();
            let pem = read_source(source).map_err(|reason| DkimError::Unread {
                domain: domain.clone(),
                from: source.to_owned(),
                reason,
            })?;
            let key =
                DomainKey::from_pem(&domain, &selector, &pem).map_err(|reason| DkimError::Key {
                    domain: domain.clone(),
                    reason,
                })?;
            if keys.by_domain.insert(domain.clone(), key).is_some() {
                return Err(DkimError::TwoKeys(domain));
            }
        }
        Ok(keys)
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// What each key publishes, sorted by domain.
    pub fn published(&self) -> Vec<Published> {
        let mut all: Vec<Published> = self
            .by_domain
            .iter()
            .map(|(domain, key)| Published {
                domain: domain.clone(),
                selector: key.selector.clone(),
                record: txt_record(key.algorithm, &key.public),
            })
            .collect();
        all.sort_by(|a, b| a.domain.cmp(&b.domain));
        all
    }

    /// `message` (formatted, CRLF line ends) with a `DKIM-Signature` header in front, when a
    /// key for `from_domain` is configured; unchanged otherwise.
    ///
    /// # Errors
    /// When the signer fails (a message with none of the signed headers).
    pub fn sign(&self, from_domain: &str, message: Vec<u8>) -> Result<Vec<u8>, DkimError> {
        let Some(key) = self.by_domain.get(&from_domain.to_ascii_lowercase()) else {
            return Ok(message);
        };
        let signature = match &key.signer {
            Signer::Rsa(signer) => signer.sign(&message),
            Signer::Ed25519(signer) => signer.sign(&message),
        }
        .map_err(|e| DkimError::Sign {
            domain: from_domain.to_owned(),
            reason: e.to_string(),
        })?;
        let header = signature.to_header();
        let mut signed = Vec::with_capacity(header.len() + message.len());
        signed.extend_from_slice(header.as_bytes());
        signed.extend_from_slice(&message);
        Ok(signed)
    }
}

/// Why `MAILROOM_DKIM_KEYS` or a signature failed. The words name the entry, never the key.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("{0:?} is not domain:selector:/path/key.pem (or domain:selector:$VARIABLE)")]
    Entry(String),
    #[error("{0:?} is not a domain name")]
    Domain(String),
    #[error("selector {selector:?} of {domain} is not a DNS label")]
    Selector { selector: String, domain: String },
    #[error("the key of {domain} ({from}): {reason}")]
    Unread {
        domain: String,
        /// The entry's source: a path or `$VARIABLE`.
        from: String,
        reason: SourceError,
    },
    #[error("the key of {domain}: {reason}")]
    Key { domain: String, reason: KeyError },
    #[error("{0} has two keys: give each domain one")]
    TwoKeys(String),
    #[error("DKIM signing for {domain} failed: {reason}")]
    Sign { domain: String, reason: String },
}

/// What is wrong with a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM private key")]
    NotPem,
    // aws-lc reads no RSA key under 2,048 bits.
    #[error(
        "an RSA key it cannot read: one under {MIN_RSA_BITS} bits, or damaged; make one of at least {MIN_RSA_BITS}"
    )]
    UnreadableRsa,
    #[error("an RSA key of {0} bits: make one of at least {MIN_RSA_BITS}")]
    ShortRsa(usize),
    #[error("neither an RSA nor an Ed25519 key")]
    Kind,
    #[error("the signer refused it: {0}")]
    Signer(String),
    #[error("the RSA public key could not be encoded")]
    PublicKey,
    #[error("could not make a key (the OS random source failed)")]
    Random,
}

/// A signer for `domain` and `selector`: relaxed/relaxed over [`SIGNED_HEADERS`].
fn signer<K: mail_auth::common::crypto::SigningKey>(
    key: K,
    domain: &str,
    selector: &str,
) -> DkimSigner<K, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

impl DomainKey {
    fn from_pem(domain: &str, selector: &str, pem: &str) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| KeyError::NotPem)?;
        let rsa = match &der {
            PrivateKeyDer::Pkcs8(pkcs8) => RsaKeyPair::from_pkcs8(pkcs8.secret_pkcs8_der()).ok(),
            PrivateKeyDer::Pkcs1(pkcs1) => RsaKeyPair::from_der(pkcs1.secret_pkcs1_der()).ok(),
            _ => None,
        };
        if rsa.is_none() && names_rsa(&der) {
            // aws-lc reads no RSA key under 2,048 bits.
            return Err(KeyError::UnreadableRsa);
        }
        let (signer, public, algorithm) = if let Some(pair) = rsa {
            let bits = pair.public_modulus_len() * 8;
            if bits < MIN_RSA_BITS {
                return Err(KeyError::ShortRsa(bits));
            }
            let key = (RsaKey::<Sha256>::from_key_der(der))
                .map_err(|e| KeyError::Signer(e.to_string()))?;
            (
                Signer::Rsa(signer(key, domain, selector)),
                spki_base64(&pair)?,
                Algorithm::Rsa,
            )
        } else {
            let PrivateKeyDer::Pkcs8(pkcs8) = &der else {
                return Err(KeyError::Kind);
            };
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8.secret_pkcs8_der())
                .map_err(|_| KeyError::Kind)?;
            let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
                .map_err(|e| KeyError::Signer(e.to_string()))?;
            (
                Signer::Ed25519(signer(key, domain, selector)),
                BASE64.encode(pair.public_key().as_ref()),
                Algorithm::Ed25519,
            )
        };
        Ok(Self {
            selector: selector.to_owned(),
            signer,
            public,
            algorithm,
        })
    }
}

/// Whether `der` says it is an RSA key (PKCS#1, or PKCS#8 with the rsaEncryption algorithm).
fn names_rsa(der: &PrivateKeyDer<'_>) -> bool {
    /// The DER of OID 1.2.840.113549.1.1.1 (rsaEncryption).
    const RSA_ENCRYPTION: [u8; 11] = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    match der {
        PrivateKeyDer::Pkcs1(_) => true,
        // The algorithm identifier comes right after the version, within the first bytes.
        PrivateKeyDer::Pkcs8(pkcs8) => pkcs8
            .secret_pkcs8_der()
            .windows(RSA_ENCRYPTION.len())
            .take(32)
            .any(|w| w == RSA_ENCRYPTION),
        _ => false,
    }
}

/// A new key: its PKCS#8 PEM and the TXT record that publishes it.
///
/// # Errors
/// When the OS random source fails.
pub fn generate(algorithm: Algorithm) -> Result<(String, String), KeyError> {
    let failed = |_| KeyError::Random;
    let (pkcs8, public) = match algorithm {
        Algorithm::Rsa => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                .map_err(failed)?
                .as_ref()
                .to_vec();
            (pkcs8, spki_base64(&pair)?)
        }
        Algorithm::Ed25519 => {
            let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(failed)?;
            let pair = Ed25519KeyPair::from_pkcs8(document.as_ref()).map_err(|_| KeyError::Kind)?;
            (
                document.as_ref().to_vec(),
                BASE64.encode(pair.public_key().as_ref()),
            )
        }
    };
    Ok((pem("PRIVATE KEY", &pkcs8), txt_record(algorithm, &public)))
}

/// The TXT record's value for a public key (`p=`: SubjectPublicKeyInfo for RSA, the raw 32
/// bytes for Ed25519, both base64).
fn txt_record(algorithm: Algorithm, public: &str) -> String {
    match algorithm {
        Algorithm::Rsa => format!("v=DKIM1; k=rsa; p={public}"),
        Algorithm::Ed25519 => format!("v=DKIM1; k=ed25519; p={public}"),
    }
}

fn spki_base64(pair: &RsaKeyPair) -> Result<String, KeyError> {
    let spki = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(pair.public_key())
        .map_err(|_| KeyError::PublicKey)?;
    Ok(BASE64.encode(spki.as_ref()))
}

/// `mailroom dkim …`.
#[derive(Debug, clap::Subcommand)]
pub enum DkimCommand {
    /// Make a signing key and print the DNS record that publishes it. The key goes to --out
    /// (created with owner-only permissions) or, without it, to standard output, the record to
    /// standard error (so `… > key.pem` leaves a clean key file).
    Keygen {
        /// The sending domain (the From address's).
        #[arg(long)]
        domain: String,
        /// The selector: the record is published at SELECTOR._domainkey.DOMAIN.
        #[arg(long)]
        selector: String,
        /// The key's algorithm.
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: Algorithm,
        /// Where to write the private key (an existing file is never overwritten).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// Runs a `mailroom dkim` command.
///
/// # Errors
/// A domain or selector that is not a DNS name, a key file that exists already or cannot be
/// written, a failing random source.
pub fn run(command: DkimCommand) -> anyhow::Result<()> {
    let DkimCommand::Keygen {
        domain,
        selector,
        algorithm,
        out,
    } = command;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let selector = selector.to_ascii_lowercase();
    if !is_dns_name(&domain) || !domain.contains('.') {
        anyhow::bail!("--domain {domain:?} is not a domain name");
    }
    if !is_dns_name(&selector) {
        anyhow::bail!("--selector {selector:?} is not a DNS label");
    }
    let (pem, record) = generate(algorithm).map_err(anyhow::Error::msg)?;
    let name = format!("{selector}._domainkey.{domain}");
    let publish = format!(
        "Publish this TXT record at {name}:\n\n{name}. IN TXT {}\n",
        zone_strings(&record)
    );
    match out {
        Some(path) => {
            write_private(&path, &pem)?;
            println!(
                "Wrote the private key to {} (keep it secret).\nSign with it: MAILROOM_DKIM_KEYS={domain}:{selector}:{}\n\n{publish}",
                path.display(),
                path.display()
            );
        }
        None => {
            print!("{pem}");
            eprintln!("{publish}");
        }
    }
    Ok(())
}

/// `record` as a zone file's character-strings: DNS caps one string at 255 bytes, so a
/// 2,048-bit RSA record is split, in parentheses, as BIND and most DNS hosts take it.
fn zone_strings(record: &str) -> String {
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(250)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    if strings.len() == 1 {
        strings.concat()
    } else {
        format!("( {} )", strings.join("\n    "))
    }
}

/// Writes `pem` to a new file only its owner can read.
fn write_private(path: &std::path::Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    file.write_all(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

/// `der` as PEM: base64 in lines of 64 between the labels.
fn pem(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Why a key's source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the environment variable {0} is not set")]
    Unset(String),
    #[error("{0}")]
    File(#[from] std::io::Error),
}

/// A key's PEM from a file, or from the environment variable a `$NAME` source names.
fn read_source(source: &str) -> Result<String, SourceError> {
    match source.strip_prefix('$') {
        Some(variable) => {
            std::env::var(variable).map_err(|_| SourceError::Unset(variable.to_owned()))
        }
        None => Ok(std::fs::read_to_string(source)?),
    }
}

/// Letters, digits, hyphens and underscores in dot-separated labels of 1 to 63.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "From: News <news@example.com>\r\nTo: ada@example.org\r\nSubject: Hello\r\nList-Unsubscribe: <https://mail.example.com/u/t>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nHello Ada\r\n";

    fn keys_for(algorithm: Algorithm) -> DkimKeys {
        let (pem, _) = generate(algorithm).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, pem).unwrap();
        DkimKeys::parse(&format!("Example.com:s1:{}", path.display())).unwrap()
    }

    #[test]
    fn both_kinds_of_key_sign_with_their_algorithm_and_the_list_headers() {
        for (algorithm, a) in [
            (Algorithm::Rsa, "rsa-sha256"),
            (Algorithm::Ed25519, "ed25519-sha256"),
        ] {
            let keys = keys_for(algorithm);
            let signed =
                String::from_utf8(keys.sign("EXAMPLE.com", MESSAGE.into()).unwrap()).unwrap();
            let header = signed.split("\r\nFrom:").next().unwrap();
            assert!(header.starts_with("DKIM-Signature:"), "{header}");
            let unfolded: String = header.split_whitespace().collect();
            assert!(unfolded.contains(&format!("a={a};")), "{header}");
            assert!(unfolded.contains("d=example.com;"), "{header}");
            assert!(unfolded.contains("s=s1;"), "{header}");
            assert!(unfolded.contains("c=relaxed/relaxed;"), "{header}");
            // Every header of the list, present or not: an absent one is signed as absent, so
            // nobody can add a Reply-To or a second List-Unsubscribe on the way.
            let signed_headers: std::collections::BTreeSet<String> = unfolded
                .split("h=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .split(':')
                .map(str::to_ascii_lowercase)
                .collect();
            let wanted = SIGNED_HEADERS
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect();
            assert_eq!(signed_headers, wanted, "{header}");
            assert!(signed.ends_with(MESSAGE));
        }
    }

    #[test]
    fn mail_from_another_domain_is_left_unsigned() {
        let keys = keys_for(Algorithm::Ed25519);
        assert_eq!(
            keys.sign("example.org", MESSAGE.into()).unwrap(),
            MESSAGE.as_bytes()
        );
    }

    #[test]
    fn bad_entries_are_refused_naming_the_entry_not_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.pem");
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        std::fs::write(
            &short,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let good = dir.path().join("good.pem");
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        std::fs::write(&good, pem("PRIVATE KEY", pkcs8.as_ref())).unwrap();
        let good = good.display();
        for (spec, says) in [
            ("example.com:s1".to_owned(), "is not domain:selector"),
            (format!("localhost:s1:{good}"), "is not a domain name"),
            (format!("example.com:s 1:{good}"), "is not a DNS label"),
            (
                "example.com:s1:/nonexistent/key.pem".to_owned(),
                "the key of example.com",
            ),
            (format!("example.com:s1:{}", short.display()), "neither"),
            (
                "example.com:s1:$MAILROOM_TEST_NO_SUCH_VARIABLE".to_owned(),
                "is not set",
            ),
            (
                format!("example.com:a:{good},example.com:b:{good}"),
                "two keys",
            ),
        ] {
            let error = DkimKeys::parse(&spec).unwrap_err().to_string();
            assert!(error.contains(says), "{spec}: {error}");
            assert!(!error.contains("BEGIN"), "{error}");
        }
        assert_eq!(
            DkimKeys::parse(&format!("example.com:s1:{good}"))
                .unwrap()
                .published()
                .len(),
            1
        );
    }

    #[test]
    fn a_short_rsa_key_is_refused() {
        // 1,024 bits (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024`): what old
        // guides still make.
        let pem = include_str!("../../tests/data/dkim/rsa-1024-test-only.pem");
        let error = DomainKey::from_pem("example.com", "s1", pem).err().unwrap();
        assert_eq!(error, KeyError::UnreadableRsa);
        assert!(error.to_string().contains("under 2048 bits"), "{error}");
    }
}
