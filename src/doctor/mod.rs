//! `mailroom doctor`: whether this deployment will work, as a table of pass / warn / fail, each
//! with what to change. Exit code 0 when nothing fails, 1 when something does.
//!
//! The checks, in order ([`deployment`] and [`dns`]):
//! - **settings** parse (a setting that does not is the first and only failure), and no
//!   variable that looks like a setting is ignored;
//! - **Redis**: it answers, its version, `maxmemory-policy`, persistence, room, cluster state;
//!   the queue's push script loads;
//! - **API**: keys configured, `MAILROOM_PUBLIC_URL` answers `/healthz` (the links in mail
//!   point there);
//! - **provider**: SendGrid's key is valid and may send (`GET /v3/scopes` lists `mail.send`);
//!   the SMTP relay answers EHLO (and accepts AUTH when configured); the outbox folder is
//!   writable;
//! - **webhooks and links**: the Event Webhook key parses, Inbound Parse is protected, link
//!   keys sign unsubscribe, opt-in and tracking links;
//! - **sender domains**: SPF, DKIM, DMARC and the bounce domain's MX.

pub mod deployment;
pub mod dns;

use crate::config::Settings;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub verdict: Verdict,
    /// What was checked: `spf example.com`.
    pub what: String,
    /// What was found, and what to do about it.
    pub detail: String,
}

pub(crate) fn check(verdict: Verdict, what: String, detail: impl Into<String>) -> Check {
    Check {
        verdict,
        what,
        detail: detail.into(),
    }
}

/// Every check for `settings`, in order.
///
/// # Errors
/// When the DNS checks cannot be set up (a resolver setting the settings check let through).
pub async fn checks(settings: &Settings) -> anyhow::Result<Vec<Check>> {
    let mut report = deployment::checks(settings).await;
    report.extend(dns::checks(settings).await?);
    Ok(report)
}

/// Runs `mailroom doctor` with `settings` as loaded and checked: prints the report and fails
/// when a check fails. Settings that do not load are reported as the one failure.
///
/// # Errors
/// When a check fails (exit code 1).
pub async fn run(settings: anyhow::Result<Settings>) -> anyhow::Result<()> {
    let report = match settings {
        Ok(settings) => {
            let mut report = vec![check(Verdict::Pass, "settings".to_owned(), "parse")];
            report.extend(deployment::unknown_variables());
            report.extend(checks(&settings).await?);
            report
        }
        Err(error) => vec![check(
            Verdict::Fail,
            "settings".to_owned(),
            format!("{error:#}"),
        )],
    };
    print(&report);
    let failed = report.iter().filter(|c| c.verdict == Verdict::Fail).count();
    anyhow::ensure!(failed == 0, "{failed} check(s) failed");
    Ok(())
}

fn print(report: &[Check]) {
    let width = report.iter().map(|c| c.what.len()).max().unwrap_or(0);
    for line in report {
        println!(
            "{:<4}  {:<width$}  {}",
            line.verdict.word(),
            line.what,
            line.detail
        );
    }
}
