//! The lists behind the policy checks: disposable domains, role accounts, free providers.
//!
//! The disposable list is `disposable_domains.txt`, a byte-for-byte copy of
//! disposable-email-domains' `disposable_email_blocklist.conf` (CC0) pinned in docs/validation.md,
//! compiled into the binary; operators add to it or carve out of it with
//! `MAILROOM_DISPOSABLE_DENY` / `MAILROOM_DISPOSABLE_ALLOW`.

use std::collections::HashSet;
use std::sync::LazyLock;

static DISPOSABLE: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("disposable_domains.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Local parts that name a function rather than a person (RFC 2142 and common practice): mail
/// to them reaches a shared inbox or nobody, so they are risky for sign-ups and marketing.
const ROLE_ACCOUNTS: &[&str] = &[
    "abuse",
    "accounting",
    "accounts",
    "admin",
    "administrator",
    "all",
    "billing",
    "careers",
    "contact",
    "customerservice",
    "devnull",
    "do-not-reply",
    "donotreply",
    "enquiries",
    "everyone",
    "feedback",
    "finance",
    "ftp",
    "hello",
    "help",
    "helpdesk",
    "hostmaster",
    "hr",
    "info",
    "inquiries",
    "it",
    "jobs",
    "legal",
    "mail",
    "mailer-daemon",
    "marketing",
    "media",
    "news",
    "newsletter",
    "no-reply",
    "noc",
    "noreply",
    "null",
    "office",
    "orders",
    "postmaster",
    "press",
    "privacy",
    "root",
    "sales",
    "security",
    "service",
    "staff",
    "support",
    "team",
    "usenet",
    "uucp",
    "webmaster",
    "www",
];

/// Mailbox providers anyone can sign up with. Marked so callers can tell a business address
/// from a personal one; never penalized.
const FREE_PROVIDERS: &[&str] = &[
    "126.com",
    "163.com",
    "aim.com",
    "aol.co.uk",
    "aol.com",
    "att.net",
    "bigpond.com",
    "bol.com.br",
    "btinternet.com",
    "comcast.net",
    "daum.net",
    "fastmail.com",
    "free.fr",
    "gmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hey.com",
    "hotmail.co.uk",
    "hotmail.com",
    "hotmail.de",
    "hotmail.es",
    "hotmail.fr",
    "hotmail.it",
    "icloud.com",
    "interia.pl",
    "laposte.net",
    "libero.it",
    "live.co.uk",
    "live.com",
    "live.fr",
    "mac.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "naver.com",
    "o2.pl",
    "orange.fr",
    "outlook.com",
    "outlook.fr",
    "pm.me",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "rediffmail.com",
    "rocketmail.com",
    "sbcglobal.net",
    "seznam.cz",
    "sfr.fr",
    "shaw.ca",
    "sky.com",
    "t-online.de",
    "terra.com.br",
    "tutanota.com",
    "uol.com.br",
    "verizon.net",
    "wanadoo.fr",
    "web.de",
    "wp.pl",
    "yahoo.co.jp",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.com.br",
    "yahoo.de",
    "yahoo.es",
    "yahoo.fr",
    "yahoo.it",
    "yandex.com",
    "yandex.ru",
    "ymail.com",
    "zoho.com",
];

/// The domain itself and each parent with at least two labels, most specific first: the
/// disposable list's matching rule (`a.b.mailinator.com` matches `mailinator.com`).
fn self_and_parents(domain: &str) -> impl Iterator<Item = &str> {
    let dots = domain.matches('.').count();
    std::iter::successors(Some(domain), |d| d.split_once('.').map(|(_, rest)| rest))
        .take(dots.max(1))
}

/// The disposable-domain policy: the compiled-in list plus the operator's lists.
#[derive(Clone, Debug, Default)]
pub struct DisposablePolicy {
    allow: HashSet<String>,
    deny: HashSet<String>,
}

impl DisposablePolicy {
    /// `allow` wins over both lists; `deny` adds to the compiled-in one. Entries are domains,
    /// matched case-insensitively, subdomains included.
    pub fn new(allow: &[String], deny: &[String]) -> Self {
        let clean = |list: &[String]| {
            list.iter()
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect()
        };
        Self {
            allow: clean(allow),
            deny: clean(deny),
        }
    }

    /// Whether `ascii_domain` (lower-case A-label form) is a disposable-mail domain.
    pub fn is_disposable(&self, ascii_domain: &str) -> bool {
        let mut listed = false;
        for domain in self_and_parents(ascii_domain) {
            if self.allow.contains(domain) {
                return false;
            }
            listed = listed || self.deny.contains(domain) || DISPOSABLE.contains(domain);
        }
        listed
    }
}

/// Whether `local` names a role rather than a person. A `+tag` is ignored and case does not
/// matter: `Support+billing` is the support inbox.
pub fn is_role(local: &str) -> bool {
    let base = local.split('+').next().unwrap_or(local).to_lowercase();
    ROLE_ACCOUNTS.binary_search(&base.as_str()).is_ok()
}

/// Whether `ascii_domain` belongs to a free mailbox provider.
pub fn is_free_provider(ascii_domain: &str) -> bool {
    FREE_PROVIDERS.binary_search(&ascii_domain).is_ok()
}

/// How many domains the compiled-in disposable list holds (for the docs and start-up logs).
pub fn disposable_count() -> usize {
    DISPOSABLE.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_for_binary_search() {
        assert!(ROLE_ACCOUNTS.is_sorted(), "ROLE_ACCOUNTS must stay sorted");
        assert!(
            FREE_PROVIDERS.is_sorted(),
            "FREE_PROVIDERS must stay sorted"
        );
    }

    #[test]
    fn parents_stop_at_two_labels() {
        let found: Vec<_> = self_and_parents("a.b.mailinator.com").collect();
        assert_eq!(
            found,
            ["a.b.mailinator.com", "b.mailinator.com", "mailinator.com"]
        );
        let found: Vec<_> = self_and_parents("gmail.com").collect();
        assert_eq!(found, ["gmail.com"]);
    }

    #[test]
    fn operator_lists_override_and_extend() {
        let policy = DisposablePolicy::default();
        assert!(policy.is_disposable("mailinator.com"));
        assert!(policy.is_disposable("x.mailinator.com"));
        assert!(!policy.is_disposable("gmail.com"));
        let policy = DisposablePolicy::new(&["Mailinator.com".into()], &["corp-burner.io".into()]);
        assert!(!policy.is_disposable("x.mailinator.com"));
        assert!(policy.is_disposable("a.corp-burner.io"));
    }

    #[test]
    fn roles_ignore_case_and_tags() {
        assert!(is_role("Support+billing"));
        assert!(is_role("noreply"));
        assert!(!is_role("jane"));
    }
}
