//! Is an address worth sending to? Syntax ([`mailroom_jobs::address`]), DNS ([`dns`]),
//! disposable and role addresses and free providers ([`lists`]), typo suggestions
//! ([`suggest`]), folded into a verdict, a score and the reasons for both.
//!
//! The verdict: `invalid` when the address cannot receive mail (bad syntax, special-use domain,
//! NXDOMAIN, null MX, no mail host); `risky` when it probably reaches nobody useful (disposable,
//! role account, a likely typo, DNS unanswered); `valid` otherwise. The score starts at 1 and is
//! multiplied down by each risk, so two risks rank below one.

pub mod dns;
pub mod lists;
pub mod suggest;

use std::collections::HashMap;

use mailroom_jobs::address::{self, Address};

use crate::store::{Suppression, Suppressions, suppressions::Reason as SuppressionReason};
use serde::Serialize;

pub use dns::{DnsAnswer, DnsCheck, DnsSettings, DomainChecker};
pub use lists::DisposablePolicy;
pub use suggest::Suggester;

/// The most addresses one batch request may hold.
pub const MAX_BATCH: usize = 1000;

/// The answer for one address.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Validation {
    /// The address as given.
    pub email: String,
    /// Local part in NFC, domain lower-case in Unicode; `null` when the syntax is invalid.
    pub normalized: Option<String>,
    /// The address with the domain's ASCII (IDNA) form; `null` when invalid or when the local
    /// part is not ASCII.
    pub ascii: Option<String>,
    pub verdict: Verdict,
    /// From 0 (certainly undeliverable) to 1.
    pub score: f64,
    pub local: Option<String>,
    pub domain: Option<String>,
    /// A corrected address when the domain looks mistyped.
    pub suggestion: Option<String>,
    pub checks: Checks,
    /// Why the verdict and score are what they are, most serious first.
    pub reasons: Vec<Reason>,
}

/// `valid`, `risky` or `invalid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Risky,
    Invalid,
}

/// Each check's own result.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    /// Whether the syntax is accepted for sending.
    pub syntax: bool,
    /// `null` when DNS was skipped (`dns: false`, or the syntax is invalid) or did not answer.
    pub dns: Option<DnsCheck>,
    pub disposable: bool,
    pub role: bool,
    pub free_provider: bool,
    /// The local part is not ASCII: delivery needs SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// The address is on mailroom's suppression list (a bounce, a complaint, an unsubscribe).
    pub suppressed: bool,
}

/// One reason: a stable code and a sentence.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Reason {
    /// `syntax.<code>`, `dns.*`, `special_use_domain`, `disposable`, `role`, `typo`, `smtputf8`.
    pub code: String,
    pub message: String,
}

impl Reason {
    fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The checks that need no network, with their lists.
#[derive(Clone, Debug, Default)]
pub struct Validator {
    pub disposable: DisposablePolicy,
    pub suggester: Suggester,
}

impl Validator {
    /// The offline validator: the disposable list with the operator's allow and deny lists.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        let split = |list: &str| -> Vec<String> {
            list.split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Self {
            disposable: DisposablePolicy::new(
                &split(&settings.disposable_allow),
                &split(&settings.disposable_deny),
            ),
            suggester: Suggester::mailroom(),
        }
    }
}

/// An address after the offline checks, waiting for its domain's DNS answer.
#[derive(Debug)]
pub struct Pending {
    validation: Validation,
    ascii_domain: Option<String>,
}

impl Pending {
    /// The answer without DNS.
    pub fn finish_offline(self) -> Validation {
        self.validation
    }

    /// The domain to look up, if the address got that far.
    pub fn domain(&self) -> Option<&str> {
        self.ascii_domain.as_deref()
    }
}

impl Validator {
    /// Syntax, lists and suggestions: everything but DNS.
    pub fn offline(&self, email: &str) -> Pending {
        let parsed = match address::parse(email) {
            Ok(parsed) => parsed,
            Err(e) => {
                let suggestion = (email.len() <= address::MAX_ADDRESS_OCTETS)
                    .then(|| self.suggester.suggest_address(email))
                    .flatten();
                let validation = Validation {
                    email: email.to_owned(),
                    normalized: None,
                    ascii: None,
                    verdict: Verdict::Invalid,
                    score: 0.0,
                    local: None,
                    domain: None,
                    suggestion,
                    checks: Checks {
                        syntax: false,
                        dns: None,
                        disposable: false,
                        role: false,
                        free_provider: false,
                        smtputf8: false,
                        suppressed: false,
                    },
                    reasons: vec![Reason::new(
                        format!("syntax.{}", e.code.as_str()),
                        e.message,
                    )],
                };
                return Pending {
                    validation,
                    ascii_domain: None,
                };
            }
        };
        self.judge(email, &parsed)
    }

    fn judge(&self, email: &str, parsed: &Address) -> Pending {
        let ascii_domain = &parsed.ascii_domain;
        let checks = Checks {
            syntax: true,
            dns: None,
            disposable: self.disposable.is_disposable(ascii_domain),
            role: lists::is_role(&parsed.local),
            free_provider: lists::is_free_provider(ascii_domain),
            smtputf8: parsed.needs_smtputf8(),
            suppressed: false,
        };
        // Typo domains one keystroke from a big provider (gmial.com) are registered to catch
        // mail and end up on the disposable list: the suggestion matters most there. Two
        // keystrokes away, a listed domain is a service of its own (yopmail.com is not a
        // hotmail.com typo).
        let suggestion = self
            .suggester
            .suggest_domain(ascii_domain)
            .filter(|d| !checks.disposable || strsim::osa_distance(ascii_domain, d) <= 1)
            .map(|d| format!("{}@{d}", parsed.local));
        let mut validation = Validation {
            email: email.to_owned(),
            normalized: Some(parsed.normalized()),
            ascii: parsed.ascii(),
            verdict: Verdict::Valid,
            score: 1.0,
            local: Some(parsed.local.clone()),
            domain: Some(parsed.domain.clone()),
            suggestion,
            checks,
            reasons: Vec::new(),
        };
        if parsed.is_special_use() {
            validation.fail(Reason::new(
                "special_use_domain",
                format!("{ascii_domain} is under a special-use name reserved from the public DNS (RFC 6761)"),
            ));
            return Pending {
                validation,
                ascii_domain: None,
            };
        }
        if let Some(suggestion) = &validation.suggestion {
            let message = format!("the domain looks mistyped: did you mean {suggestion}?");
            validation.risk(Reason::new("typo", message), 0.3);
        }
        if validation.checks.disposable {
            let message = format!("{ascii_domain} hands out disposable, short-lived mailboxes");
            validation.risk(Reason::new("disposable", message), 0.5);
        }
        if validation.checks.role {
            let message = format!("{} is a role account, not a person", parsed.local);
            validation.risk(Reason::new("role", message), 0.6);
        }
        if validation.checks.smtputf8 {
            let message = "the local part is not ASCII: the receiving server must support SMTPUTF8";
            validation.note(Reason::new("smtputf8", message));
        }
        Pending {
            validation,
            ascii_domain: Some(ascii_domain.clone()),
        }
    }

    /// Folds the domain's DNS answer in (`None`: DNS was skipped).
    pub fn finish(&self, pending: Pending, answer: Option<DnsAnswer>) -> Validation {
        let mut validation = pending.validation;
        let Some(domain) = pending.ascii_domain else {
            return validation;
        };
        match answer {
            None => {}
            Some(DnsAnswer::Unanswered) => validation.risk(
                Reason::new(
                    "dns.unanswered",
                    format!("DNS did not answer for {domain} in time; deliverability is unknown"),
                ),
                0.7,
            ),
            Some(DnsAnswer::Answered(check)) => {
                validation.checks.dns = Some(check);
                if !check.exists {
                    validation.fail(Reason::new(
                        "dns.nxdomain",
                        format!("the domain {domain} does not exist"),
                    ));
                } else if check.null_mx {
                    validation.fail(Reason::new(
                        "dns.null_mx",
                        format!("{domain} publishes a null MX (RFC 7505): it accepts no mail"),
                    ));
                } else if !check.mx && !check.a {
                    validation.fail(Reason::new(
                        "dns.no_mail_host",
                        format!("{domain} has no MX and no A/AAAA record: mail has nowhere to go"),
                    ));
                }
            }
        }
        validation
    }

    /// Validates a batch: offline checks for each, one DNS answer per distinct domain, and,
    /// with `known`, the suppression list in one read.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn validate_all(
        &self,
        emails: &[String],
        dns: Option<&DomainChecker>,
        known: Option<&Suppressions>,
    ) -> redis::RedisResult<Vec<Validation>> {
        let pending: Vec<Pending> = emails.iter().map(|e| self.offline(e)).collect();
        let answers = match dns {
            Some(checker) => {
                let mut domains: Vec<String> = pending
                    .iter()
                    .filter_map(|p| p.domain().map(str::to_owned))
                    .collect();
                domains.sort_unstable();
                domains.dedup();
                checker.check_all(&domains).await?
            }
            None => HashMap::new(),
        };
        let mut results: Vec<Validation> = pending
            .into_iter()
            .map(|p| {
                let answer = dns.and_then(|_| p.domain().and_then(|d| answers.get(d)).copied());
                self.finish(p, answer)
            })
            .collect();
        if let Some(list) = known {
            let addresses: Vec<String> = results
                .iter()
                .map(|v| v.normalized.clone().unwrap_or_default())
                .collect();
            let records = list.get_many(&addresses).await?;
            for (validation, record) in results.iter_mut().zip(records) {
                if let Some(record) = record.filter(|_| validation.checks.syntax) {
                    validation.known(&record);
                }
            }
        }
        Ok(results)
    }
}

impl Validation {
    /// Folds in the address's suppression record: a bounce mailroom saw itself is the best
    /// evidence there is that the mailbox does not exist (SendGrid's `has_known_bounces`).
    fn known(&mut self, record: &Suppression) {
        self.checks.suppressed = true;
        let since = record.created_at.format("%Y-%m-%d");
        match record.reason {
            SuppressionReason::Bounce | SuppressionReason::Block | SuppressionReason::Invalid => {
                self.fail(Reason::new(
                    "known_bounce",
                    format!("mail to this address bounced ({}, {since})", record.reason.as_str()),
                ));
            }
            other => self.risk(
                Reason::new(
                    "suppressed",
                    format!(
                        "the address is on the suppression list ({}, {since}): mail to it is skipped",
                        other.as_str()
                    ),
                ),
                0.5,
            ),
        }
    }

    /// The address cannot receive mail.
    fn fail(&mut self, reason: Reason) {
        self.verdict = Verdict::Invalid;
        self.score = 0.0;
        self.reasons.insert(0, reason);
    }

    /// The address may not reach a person; `factor` scales the score down.
    fn risk(&mut self, reason: Reason, factor: f64) {
        self.verdict = self.verdict.max(Verdict::Risky);
        self.score *= factor;
        self.reasons.push(reason);
    }

    /// Worth knowing; changes nothing.
    fn note(&mut self, reason: Reason) {
        self.reasons.push(reason);
    }
}
