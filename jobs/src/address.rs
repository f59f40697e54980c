//! Email address syntax, as accepted for sending.
//!
//! An address mailroom sends to must be usable, unmodified, as an RFC 5321 `Mailbox` in
//! `RCPT TO`: a dot-atom local part (RFC 6531 UTF-8 allowed, which then needs SMTPUTF8), `@`, and
//! a DNS domain name with a top-level domain, within RFC 5321's length limits. Everything else
//! RFC 5322 allows in a message header (quoted local parts, comments, folding whitespace,
//! address literals, the obsolete grammar, display names) is refused with a [`SyntaxCode`] that
//! names the construct, because a user who typed one wants to know what to remove.
//!
//! [`parse`] also normalizes: the local part to Unicode NFC, the domain through IDNA (UTS #46:
//! full-width dots mapped, lower-cased) with its ASCII (punycode) form alongside. The rules were
//! checked against the public suites in `tests/data/validation` (`tests/validation_conformance.rs`).

use std::{borrow::Cow, fmt};

use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
use icu_properties::{CodePointMapData, props::GeneralCategory};
use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
pub const MAX_LOCAL_OCTETS: usize = 64;
/// RFC 5321 §4.5.3.1.3 allows a 256-octet path including the angle brackets: 254 for the address.
pub const MAX_ADDRESS_OCTETS: usize = 254;
/// RFC 1035: 255 octets on the wire, which is 253 in text without the root dot.
pub const MAX_DOMAIN_OCTETS: usize = 253;
/// RFC 1035 §2.3.4.
pub const MAX_LABEL_OCTETS: usize = 63;

/// RFC 2142 mailbox names are case-insensitive by definition, so they are lower-cased; every
/// other local part keeps its case (RFC 5321 leaves it to the receiving host).
const CASE_INSENSITIVE_MAILBOXES: &[&str] = &[
    "abuse",
    "ftp",
    "hostmaster",
    "info",
    "marketing",
    "news",
    "noc",
    "postmaster",
    "sales",
    "security",
    "support",
    "usenet",
    "uucp",
    "webmaster",
    "www",
];

/// Top-level names reserved for special use (RFC 6761, RFC 7686, RFC 6762): no address under
/// them can be delivered on the public internet.
const SPECIAL_USE_TLDS: &[&str] = &["arpa", "invalid", "local", "localhost", "onion", "test"];

/// A syntactically valid address, normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The local part in Unicode NFC (RFC 2142 role names lower-cased).
    pub local: String,
    /// The domain in Unicode, lower-case, after IDNA mapping.
    pub domain: String,
    /// The domain's ASCII form (A-labels), what DNS and the SMTP envelope use.
    pub ascii_domain: String,
}

impl Address {
    /// `local@domain`, the form to store and compare.
    #[must_use]
    pub fn normalized(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }

    /// `local@ascii_domain`, or `None` when the local part is not ASCII (no ASCII form exists).
    #[must_use]
    pub fn ascii(&self) -> Option<String> {
        self.local
            .is_ascii()
            .then(|| format!("{}@{}", self.local, self.ascii_domain))
    }

    /// Whether delivery needs the SMTPUTF8 extension (RFC 6531): a non-ASCII local part.
    #[must_use]
    pub fn needs_smtputf8(&self) -> bool {
        !self.local.is_ascii()
    }

    /// Whether the domain is under a special-use top-level name (`.test`, `.invalid`, …), which
    /// is well-formed but never deliverable on the internet.
    #[must_use]
    pub fn is_special_use(&self) -> bool {
        let tld = self.ascii_domain.rsplit('.').next().unwrap_or_default();
        SPECIAL_USE_TLDS.contains(&tld)
    }
}

/// What is wrong with an address, as a stable machine-readable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyntaxCode {
    Empty,
    MissingAt,
    EmptyLocalPart,
    EmptyDomain,
    DisplayName,
    QuotedLocalPart,
    Comment,
    FoldingWhitespace,
    DomainLiteral,
    ObsoleteSyntax,
    InvalidCharacter,
    UnsafeCharacter,
    DotPosition,
    HyphenPosition,
    LocalPartTooLong,
    LabelTooLong,
    DomainTooLong,
    AddressTooLong,
    MissingTld,
    InvalidTld,
    InvalidIdna,
}

impl SyntaxCode {
    /// The code as it appears in API answers (`syntax.quoted_local_part`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::MissingAt => "missing_at",
            Self::EmptyLocalPart => "empty_local_part",
            Self::EmptyDomain => "empty_domain",
            Self::DisplayName => "display_name",
            Self::QuotedLocalPart => "quoted_local_part",
            Self::Comment => "comment",
            Self::FoldingWhitespace => "folding_whitespace",
            Self::DomainLiteral => "domain_literal",
            Self::ObsoleteSyntax => "obsolete_syntax",
            Self::InvalidCharacter => "invalid_character",
            Self::UnsafeCharacter => "unsafe_character",
            Self::DotPosition => "dot_position",
            Self::HyphenPosition => "hyphen_position",
            Self::LocalPartTooLong => "local_part_too_long",
            Self::LabelTooLong => "label_too_long",
            Self::DomainTooLong => "domain_too_long",
            Self::AddressTooLong => "address_too_long",
            Self::MissingTld => "missing_tld",
            Self::InvalidTld => "invalid_tld",
            Self::InvalidIdna => "invalid_idna",
        }
    }
}

/// Why an address was refused: a code and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub code: SyntaxCode,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SyntaxError {}

fn refuse<T>(code: SyntaxCode, message: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        code,
        message: message.into(),
    })
}

/// The form that keys everything mailroom stores per address (suppressions, verifications):
/// trimmed and lower-cased by Unicode's rules. Mail systems treat the local part's case as
/// meaningless in practice, as SendGrid does; this is the one place that decides it, and Redis
/// scripts are handed its result rather than lower-casing on their own (Lua's `string.lower`
/// knows only ASCII: `Ünal` would stay `Ünal` there and become `ünal` here).
pub fn case_key(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Parses `input` as an address mailroom can send to, and normalizes it.
///
/// # Errors
/// A [`SyntaxError`] naming the first problem found.
pub fn parse(input: &str) -> Result<Address, SyntaxError> {
    use SyntaxCode as C;
    if input.is_empty() {
        return refuse(C::Empty, "the address is empty");
    }
    if input.len() > 4 * MAX_ADDRESS_OCTETS {
        // Far over any limit: refused before any normalization work is spent on it.
        return refuse(
            C::AddressTooLong,
            format!(
                "the input is {} bytes long; an address is at most {MAX_ADDRESS_OCTETS} octets",
                input.len()
            ),
        );
    }
    if input.trim_end().ends_with('>') && input.contains('<') {
        return refuse(
            C::DisplayName,
            "a display name or angle brackets are not accepted here: give the bare address",
        );
    }
    let Some(at) = input.rfind('@') else {
        return refuse(C::MissingAt, missing_at_message(input));
    };
    let (local, domain) = (&input[..at], &input[at + 1..]);
    refuse_rfc5322_constructs(local, domain)?;
    check_characters(input)?;
    let local = parse_local(local)?;
    let (domain, ascii_domain) = parse_domain(domain)?;
    // The caller's own spelling is what goes on the wire unless they store the normalized
    // form, so every form has to fit.
    let octets = input
        .len()
        .max(local.len() + 1 + domain.len().max(ascii_domain.len()));
    if octets > MAX_ADDRESS_OCTETS {
        return refuse(
            C::AddressTooLong,
            format!("the address is {octets} octets long; at most {MAX_ADDRESS_OCTETS} (RFC 5321)"),
        );
    }
    Ok(Address {
        local,
        domain,
        ascii_domain,
    })
}

fn missing_at_message(input: &str) -> String {
    if input.contains(['\u{FF20}', '\u{FE6B}']) {
        "the address has a look-alike at-sign (full-width or small) instead of '@'".to_owned()
    } else {
        "the address has no '@'".to_owned()
    }
}

/// Constructs that are valid in an RFC 5322 header but never in an SMTP envelope.
fn refuse_rfc5322_constructs(local: &str, domain: &str) -> Result<(), SyntaxError> {
    use SyntaxCode as C;
    if local.contains(['(', ')']) || domain.contains(['(', ')']) {
        return refuse(
            C::Comment,
            "comments in parentheses are not accepted for sending",
        );
    }
    if local.contains('"') {
        let quoted_whole = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
        if quoted_whole {
            return refuse(
                C::QuotedLocalPart,
                "quoted local parts (\"...\"@) are not accepted for sending",
            );
        }
        if local.contains(".\"") || local.contains("\".") {
            return refuse(
                C::ObsoleteSyntax,
                "a local part mixing quoted strings and atoms is obsolete RFC 5322 syntax",
            );
        }
        return refuse(
            C::InvalidCharacter,
            "the local part contains '\"' outside a quoted string",
        );
    }
    if domain.starts_with('[') || domain.ends_with(']') {
        return refuse(
            C::DomainLiteral,
            "IP address literals ([...]) are not accepted as a domain for sending",
        );
    }
    let whitespace = local.contains([' ', '\t']) || domain.contains([' ', '\t']);
    if whitespace || local.contains("\r\n") || domain.contains("\r\n") {
        return refuse(
            C::FoldingWhitespace,
            "white space and line folding are not accepted in an address",
        );
    }
    Ok(())
}

/// Control characters anywhere, and characters that display as nothing or as something else.
fn check_characters(input: &str) -> Result<(), SyntaxError> {
    let categories = CodePointMapData::<GeneralCategory>::new();
    for c in input.chars() {
        if c.is_ascii_control() {
            return refuse(
                SyntaxCode::InvalidCharacter,
                format!(
                    "the address contains the control character U+{:04X}",
                    c as u32
                ),
            );
        }
        if c.is_ascii() {
            continue;
        }
        let unsafe_char = matches!(
            categories.get(c),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::Surrogate
                | GeneralCategory::PrivateUse
                | GeneralCategory::Unassigned
                | GeneralCategory::SpaceSeparator
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        );
        if unsafe_char {
            return refuse(
                SyntaxCode::UnsafeCharacter,
                format!(
                    "the address contains U+{:04X}, an invisible, unassigned or private-use character",
                    c as u32
                ),
            );
        }
    }
    Ok(())
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn parse_local(raw: &str) -> Result<String, SyntaxError> {
    use SyntaxCode as C;
    if raw.is_empty() {
        return refuse(C::EmptyLocalPart, "there is nothing before the '@'");
    }
    let local = ComposingNormalizerBorrowed::new_nfc().normalize(raw);
    let categories = CodePointMapData::<GeneralCategory>::new();
    let starts_with_mark = local.chars().next().is_some_and(|c| {
        matches!(
            categories.get(c),
            GeneralCategory::NonspacingMark
                | GeneralCategory::SpacingMark
                | GeneralCategory::EnclosingMark
        )
    });
    if starts_with_mark {
        return refuse(
            C::UnsafeCharacter,
            "the local part starts with a combining mark",
        );
    }
    // A character is judged by what it decomposes to as well, so that look-alikes such as
    // U+226E (≮, '<' with a combining stroke) or U+037E (;, which NFC turns into ';') cannot
    // smuggle in a character the grammar forbids.
    let decomposed = DecomposingNormalizerBorrowed::new_nfd().normalize(&local);
    if let Some(bad) = decomposed
        .chars()
        .find(|&c| c.is_ascii() && !is_atext(c) && c != '.')
    {
        let message = if bad == '\\' {
            "a backslash is only valid inside a quoted local part, which is not accepted for sending"
                .to_owned()
        } else {
            format!("the local part contains '{bad}', which is not allowed unquoted")
        };
        return refuse(C::InvalidCharacter, message);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return refuse(
            C::DotPosition,
            "the local part cannot start or end with a dot, or have two dots in a row",
        );
    }
    if local.len() > MAX_LOCAL_OCTETS {
        return refuse(
            C::LocalPartTooLong,
            format!(
                "the local part is {} octets long; at most {MAX_LOCAL_OCTETS} (RFC 5321)",
                local.len()
            ),
        );
    }
    let lower = local.to_lowercase();
    if CASE_INSENSITIVE_MAILBOXES.contains(&lower.as_str()) {
        return Ok(lower);
    }
    Ok(local.into_owned())
}

/// Returns the domain's Unicode and ASCII forms.
fn parse_domain(raw: &str) -> Result<(String, String), SyntaxError> {
    use SyntaxCode as C;
    if raw.is_empty() {
        return refuse(C::EmptyDomain, "there is nothing after the '@'");
    }
    let uts46 = Uts46::new();
    let lower = raw.to_ascii_lowercase();
    // A plain ASCII host name (nearly every address) maps to its lower-case self under UTS #46;
    // only the rest pays for the mapping.
    let plain = lower
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !lower.contains("xn--");
    // Map first (full-width dots and hyphens, case) so the structural checks below see what DNS
    // would see; errors from mapping show up as U+FFFD and are reported after them.
    let (mapped, mapping) = if plain {
        (Cow::Borrowed(lower.as_str()), Ok(()))
    } else {
        uts46.to_unicode(raw.as_bytes(), AsciiDenyList::STD3, Hyphens::Allow)
    };
    check_labels(&mapped)?;
    if mapping.is_err() {
        return Err(mapping_error(raw));
    }
    let ascii = if plain {
        lower.clone()
    } else {
        uts46
            .to_ascii(
                mapped.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::Check,
                DnsLength::Ignore,
            )
            .map_err(|_| SyntaxError {
                code: C::InvalidIdna,
                message: "the domain is not a valid internationalized domain name (IDNA)"
                    .to_owned(),
            })?
            .into_owned()
    };
    check_lengths(&ascii)?;
    Ok((mapped.into_owned(), ascii))
}

/// The labels of a mapped domain: none empty, at least two, hyphens where DNS allows them.
fn check_labels(mapped: &str) -> Result<(), SyntaxError> {
    use SyntaxCode as C;
    let labels: Vec<&str> = mapped.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return refuse(
            C::DotPosition,
            "the domain cannot start or end with a dot, or have two dots in a row",
        );
    }
    if labels.len() < 2 {
        return refuse(
            C::MissingTld,
            "the domain has no top-level domain (it needs a dot, as in example.com)",
        );
    }
    for label in &labels {
        if label.starts_with('-') || label.ends_with('-') {
            return refuse(
                C::HyphenPosition,
                format!("the domain label '{label}' starts or ends with a hyphen"),
            );
        }
        if label.get(2..4) == Some("--") && !label.starts_with("xn--") {
            return refuse(
                C::HyphenPosition,
                format!(
                    "the domain label '{label}' has '--' in the third and fourth places, which is reserved for IDNA"
                ),
            );
        }
    }
    Ok(())
}

/// Why UTS #46 could not map the domain `raw`: an ASCII character no host name holds, or IDNA.
fn mapping_error(raw: &str) -> SyntaxError {
    let bad =
        (raw.chars()).find(|&c| c.is_ascii() && !c.is_ascii_alphanumeric() && !"-.".contains(c));
    match bad {
        Some(bad) => SyntaxError {
            code: SyntaxCode::InvalidCharacter,
            message: format!(
                "the domain contains '{bad}'; only letters, digits, '-' and '.' are allowed"
            ),
        },
        None => SyntaxError {
            code: SyntaxCode::InvalidIdna,
            message: "the domain is not a valid internationalized domain name (IDNA)".to_owned(),
        },
    }
}

/// The lengths DNS allows (labels and the whole name, in DNS form) and a TLD that ends with a
/// letter.
fn check_lengths(ascii: &str) -> Result<(), SyntaxError> {
    use SyntaxCode as C;
    if let Some(label) = ascii.split('.').find(|l| l.len() > MAX_LABEL_OCTETS) {
        return refuse(
            C::LabelTooLong,
            format!(
                "a domain label is {} octets long in DNS form; at most {MAX_LABEL_OCTETS}",
                label.len()
            ),
        );
    }
    if ascii.len() > MAX_DOMAIN_OCTETS {
        return refuse(
            C::DomainTooLong,
            format!(
                "the domain is {} octets long in DNS form; at most {MAX_DOMAIN_OCTETS}",
                ascii.len()
            ),
        );
    }
    let tld = ascii.rsplit('.').next().unwrap_or_default();
    if !tld.ends_with(|c: char| c.is_ascii_alphabetic()) {
        return refuse(
            C::InvalidTld,
            format!("'{tld}' is not a top-level domain (a TLD ends with a letter)"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_of_domain_and_role_names_only() {
        let address = parse("POSTMASTER@Example.COM").unwrap();
        assert_eq!(address.normalized(), "postmaster@example.com");
        let address = parse("Jane.Doe@Example.COM").unwrap();
        assert_eq!(address.normalized(), "Jane.Doe@example.com");
    }

    #[test]
    fn internationalized_domains_get_their_ascii_form() {
        let address = parse("info@bücher.example").unwrap();
        assert_eq!(address.domain, "bücher.example");
        assert_eq!(address.ascii_domain, "xn--bcher-kva.example");
        assert!(!address.needs_smtputf8());
        let address = parse("用户@例子.广告").unwrap();
        assert!(address.needs_smtputf8());
        assert_eq!(address.ascii(), None);
    }

    #[test]
    fn each_rfc5322_construct_is_named() {
        for (input, code) in [
            ("\"john doe\"@example.com", SyntaxCode::QuotedLocalPart),
            ("john(comment)@example.com", SyntaxCode::Comment),
            ("john @example.com", SyntaxCode::FoldingWhitespace),
            ("john@[192.0.2.1]", SyntaxCode::DomainLiteral),
            ("\"john\".doe@example.com", SyntaxCode::ObsoleteSyntax),
            ("John <john@example.com>", SyntaxCode::DisplayName),
        ] {
            assert_eq!(parse(input).unwrap_err().code, code, "{input}");
        }
    }

    #[test]
    fn special_use_domains_are_recognized() {
        assert!(parse("a@example.test").unwrap().is_special_use());
        assert!(!parse("a@example.com").unwrap().is_special_use());
    }
}
