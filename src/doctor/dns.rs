//! The sending domains' DNS (the From address's domain and each DKIM key's), asked through
//! hickory (`MAILROOM_DNS_RESOLVER`, else the system's resolver):
//! - **SPF**: one `v=spf1` TXT record at the domain; through SendGrid it should include
//!   `include:sendgrid.net`.
//! - **DKIM**: each configured key's record at `SELECTOR._domainkey.DOMAIN` publishes the same
//!   public key as the key file (`mailroom dkim keygen` prints the record); through SendGrid,
//!   SendGrid signs (domain authentication in its settings).
//! - **DMARC**: a `v=DMARC1` TXT record at `_dmarc.DOMAIN`, its policy shown (`p=none` only
//!   monitors: a warning).
//! - **MX** of `MAILROOM_BOUNCE_DOMAIN`: reports mailed to the VERP addresses reach SendGrid's
//!   Inbound Parse (`mx.sendgrid.net`).

use std::collections::BTreeSet;

use hickory_resolver::{TokioResolver, proto::rr::RData};

use super::{Check, Verdict, check};
use crate::config::{ProviderKind, Settings};

/// A DNS lookup that failed (no records is an empty answer, not this).
#[derive(Debug, thiserror::Error)]
#[error("the lookup failed: {0}")]
struct LookupFailed(hickory_resolver::net::NetError);

/// The TXT records at `name` (each record's strings joined), or why there are none.
async fn txt(resolver: &TokioResolver, name: &str) -> Result<Vec<String>, LookupFailed> {
    match resolver.txt_lookup(format!("{name}.")).await {
        Ok(answer) => Ok(answer
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        Err(error) if error.is_no_records_found() => Ok(Vec::new()),
        Err(error) => Err(LookupFailed(error)),
    }
}

/// The value of tag `name` in a `k=v; k=v` record.
fn tag<'a>(record: &'a str, name: &str) -> Option<&'a str> {
    record.split(';').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim())
    })
}

/// The SPF include a provider's mail needs, with the provider's name.
fn include_of(provider: ProviderKind) -> Option<(&'static str, &'static str)> {
    match provider {
        ProviderKind::Sendgrid => Some(("SendGrid", "sendgrid.net")),
        ProviderKind::Postmark => Some(("Postmark", "spf.mtasv.net")),
        ProviderKind::Mailgun => Some(("Mailgun", "mailgun.org")),
        ProviderKind::Ses => Some(("Amazon SES", "amazonses.com")),
        ProviderKind::Smtp | ProviderKind::Outbox => None,
    }
}

/// The SPF record at `domain`: one, including every HTTP provider of the routes.
async fn spf(resolver: &TokioResolver, domain: &str, providers: &[ProviderKind]) -> Check {
    let what = format!("spf {domain}");
    let includes: Vec<(&str, &str)> = providers.iter().filter_map(|p| include_of(*p)).collect();
    let wanted = match includes.as_slice() {
        [] => "v=spf1 a mx ~all (or your relay's include)".to_owned(),
        some => {
            let terms: Vec<String> = some.iter().map(|(_, i)| format!("include:{i}")).collect();
            format!("v=spf1 {} ~all", terms.join(" "))
        }
    };
    let records = match txt(resolver, domain).await {
        Ok(records) => records,
        Err(error) => return check(Verdict::Fail, what, error.to_string()),
    };
    let spf: Vec<&String> = records
        .iter()
        .filter(|r| r.to_ascii_lowercase().starts_with("v=spf1"))
        .collect();
    match spf.as_slice() {
        [] => check(
            Verdict::Fail,
            what,
            format!("no SPF record: publish a TXT record \"{wanted}\" at {domain}"),
        ),
        [record] => {
            let missing: Vec<&(&str, &str)> = (includes.iter())
                .filter(|(_, include)| {
                    !(record.split_whitespace())
                        .any(|term| term.eq_ignore_ascii_case(&format!("include:{include}")))
                })
                .collect();
            if missing.is_empty() {
                check(Verdict::Pass, what, record.as_str())
            } else {
                let names: Vec<&str> = missing.iter().map(|(name, _)| *name).collect();
                let terms: Vec<String> = missing
                    .iter()
                    .map(|(_, i)| format!("include:{i}"))
                    .collect();
                check(
                    Verdict::Warn,
                    what,
                    format!(
                        "\"{record}\" does not include {}: add {}",
                        names.join(", "),
                        terms.join(" ")
                    ),
                )
            }
        }
        _ => check(
            Verdict::Fail,
            what,
            format!(
                "{} SPF records: receivers treat that as an error (RFC 7208); merge them into one",
                spf.len()
            ),
        ),
    }
}

async fn dmarc(resolver: &TokioResolver, domain: &str) -> Check {
    let what = format!("dmarc {domain}");
    let name = format!("_dmarc.{domain}");
    let records = match txt(resolver, &name).await {
        Ok(records) => records,
        Err(error) => return check(Verdict::Fail, what, error.to_string()),
    };
    let Some(record) = records
        .iter()
        .find(|r| r.to_ascii_lowercase().starts_with("v=dmarc1"))
    else {
        return check(
            Verdict::Fail,
            what,
            format!(
                "no DMARC record (Gmail and Yahoo require one of bulk senders): publish a TXT record \"v=DMARC1; p=none; rua=mailto:dmarc@{domain}\" at {name}"
            ),
        );
    };
    match tag(record, "p").map(str::to_ascii_lowercase).as_deref() {
        Some("quarantine" | "reject") => check(Verdict::Pass, what, record.as_str()),
        Some("none") => check(
            Verdict::Warn,
            what,
            format!(
                "\"{record}\": p=none only monitors; move to quarantine once reports are clean"
            ),
        ),
        _ => check(
            Verdict::Fail,
            what,
            format!("\"{record}\" has no valid p= policy"),
        ),
    }
}

async fn dkim(resolver: &TokioResolver, published: &crate::providers::dkim::Published) -> Check {
    let name = format!("{}._domainkey.{}", published.selector, published.domain);
    let what = format!("dkim {name}");
    let records = match txt(resolver, &name).await {
        Ok(records) => records,
        Err(error) => return check(Verdict::Fail, what, error.to_string()),
    };
    let key = |record: &str| tag(record, "p").map(|p| p.split_whitespace().collect::<String>());
    let wanted = key(&published.record);
    match records.iter().find(|r| tag(r, "p").is_some()) {
        None => check(
            Verdict::Fail,
            what,
            format!(
                "no key published: add the TXT record \"{}\"",
                published.record
            ),
        ),
        Some(record) if key(record) == wanted => {
            check(Verdict::Pass, what, "publishes the configured key")
        }
        Some(_) => check(
            Verdict::Fail,
            what,
            format!(
                "publishes another key than MAILROOM_DKIM_KEYS holds: replace it with \"{}\"",
                published.record
            ),
        ),
    }
}

/// The bounce domain's MX: reports mailed to the VERP addresses must reach Inbound Parse.
async fn bounce_mx(resolver: &TokioResolver, domain: &str) -> Check {
    let what = format!("mx {domain}");
    let hosts: Vec<String> = match resolver.mx_lookup(format!("{domain}.")).await {
        Ok(answer) => answer
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => Some(
                    mx.exchange
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                ),
                _ => None,
            })
            .collect(),
        Err(error) if error.is_no_records_found() => Vec::new(),
        Err(error) => return check(Verdict::Fail, what, format!("the lookup failed: {error}")),
    };
    if hosts.is_empty() {
        check(
            Verdict::Fail,
            what,
            format!(
                "no MX: bounces to MAILROOM_BOUNCE_DOMAIN go nowhere; publish \"{domain}. MX 10 mx.sendgrid.net.\" and set up Inbound Parse (raw) for it"
            ),
        )
    } else if hosts.iter().any(|h| h == "mx.sendgrid.net") {
        check(Verdict::Pass, what, hosts.join(", "))
    } else {
        check(
            Verdict::Warn,
            what,
            format!(
                "{}: not SendGrid's Inbound Parse (mx.sendgrid.net); reports reach mailroom only if that server posts them to /webhooks/sendgrid/inbound",
                hosts.join(", ")
            ),
        )
    }
}

/// The sender-domain checks, in order: per sending domain SPF and DMARC, then each DKIM key,
/// the bounce domain's MX.
///
/// # Errors
/// When the settings cannot give a resolver or the keys cannot be read.
pub(super) async fn checks(settings: &Settings) -> anyhow::Result<Vec<Check>> {
    let resolver = crate::validation::dns::resolver(
        &crate::validation::DnsSettings::from_settings(settings)?,
    )?;
    let keys = crate::providers::dkim::DkimKeys::from_settings(settings)?;
    let published = keys.map(|k| k.published()).unwrap_or_default();
    let mut domains = BTreeSet::new();
    domains.insert(settings.default_from()?.email.domain().to_ascii_lowercase());
    domains.extend(published.iter().map(|p| p.domain.clone()));
    let providers = crate::providers::route::configured_providers(settings);
    let mut report = Vec::new();
    for domain in &domains {
        report.push(spf(&resolver, domain, &providers).await);
        report.push(dmarc(&resolver, domain).await);
    }
    for key in &published {
        report.push(dkim(&resolver, key).await);
    }
    if let Some(domain) = settings.bounce_domain()? {
        report.push(bounce_mx(&resolver, &domain).await);
    }
    if published.is_empty() {
        report.extend(providers.iter().map(|p| unsigned(*p)));
    }
    Ok(report)
}

/// What signs `provider`'s mail when mailroom has no DKIM key of its own.
fn unsigned(provider: ProviderKind) -> Check {
    let what = format!("dkim {}", crate::providers::Provider::name_of(provider));
    let signs = |detail: &str| check(Verdict::Pass, what.clone(), detail);
    match provider {
        ProviderKind::Sendgrid => {
            signs("SendGrid signs (authenticate the domain in SendGrid's sender settings)")
        }
        ProviderKind::Postmark => {
            signs("Postmark signs (verify the domain in Postmark's sender signatures)")
        }
        ProviderKind::Mailgun => {
            signs("Mailgun signs (verify the sending domain's DNS records in Mailgun)")
        }
        ProviderKind::Ses => {
            signs("Amazon SES signs with Easy DKIM (verify the domain identity in SES)")
        }
        ProviderKind::Smtp | ProviderKind::Outbox => check(
            Verdict::Warn,
            what,
            "SMTP and outbox mail goes out unsigned: make a key with `mailroom dkim keygen` and set MAILROOM_DKIM_KEYS",
        ),
    }
}
