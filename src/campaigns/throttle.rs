//! Rate limits shared by every worker: one GCRA state per scope in Redis (`lua/throttle.lua`),
//! so ten worker processes together send no faster than the setting.
//!
//! Scopes: the provider (`MAILROOM_PROVIDER_RATE`, recipients per second across the
//! deployment), each campaign (its `rate_limit`), and each receiving domain that has a rate
//! (`MAILROOM_DOMAIN_RATES`, with defaults for the large mailbox providers). A scope can be
//! held back for a while: a 429 from SendGrid holds the provider for its `Retry-After`; an SMTP
//! 421 or 4.7.x from one domain holds that domain alone.

use std::{sync::LazyLock, time::Duration};

use mailroom_jobs::{CampaignId, Keys, RedisConnection, ThrottleScope};
use redis::Script;

static THROTTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/throttle.lua")));
static HOLD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/hold.lua")));
static SLOTS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/slots.lua")));

/// SMTP connections (messages in flight) per receiving domain used unless
/// `MAILROOM_DOMAIN_CONNECTIONS` names the domain: KumoMTA's shaping defaults for the providers
/// that publish limits (Gmail 5, Outlook 5, iCloud 10), with their other domains.
pub const DEFAULT_DOMAIN_CONNECTIONS: &[(&str, u32)] = &[
    ("gmail.com", 5),
    ("googlemail.com", 5),
    ("outlook.com", 5),
    ("hotmail.com", 5),
    ("live.com", 5),
    ("msn.com", 5),
    ("icloud.com", 10),
    ("me.com", 10),
    ("mac.com", 10),
];

/// How long a connection slot is held at most (an SMTP command times out well before).
const SLOT_LEASE: Duration = Duration::from_secs(60);

/// Per-domain rates used unless `MAILROOM_DOMAIN_RATES` names the domain: recipients per
/// second, for the mailbox providers that throttle senders who arrive too fast. They are
/// deliberately modest; an operator with a warmed-up reputation raises them.
pub const DEFAULT_DOMAIN_RATES: &[(&str, u32)] = &[
    ("gmail.com", 500),
    ("googlemail.com", 500),
    ("outlook.com", 300),
    ("hotmail.com", 300),
    ("live.com", 300),
    ("msn.com", 300),
    ("yahoo.com", 300),
    ("aol.com", 100),
    ("icloud.com", 200),
    ("me.com", 200),
    ("mac.com", 200),
];

/// How long one burst may run ahead of the rate.
const BURST: Duration = Duration::from_millis(200);

/// The rates and the Redis that keeps their state.
#[derive(Debug, Clone)]
pub struct Throttles {
    conn: RedisConnection,
    keys: Keys,
    provider: Option<u32>,
    domains: Vec<(String, u32)>,
    connections: Vec<(String, u32)>,
}

/// A rate limit to pass: its Redis scope and recipients per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub scope: ThrottleScope,
    pub rate: u32,
}

impl Throttles {
    /// Throttles with `provider` recipients/s across the deployment (`None`: unlimited),
    /// `domains` (domain → recipients/s) and `connections` (domain → SMTP connections), each
    /// over its defaults.
    pub fn new(
        conn: RedisConnection,
        prefix: &str,
        provider: Option<u32>,
        domains: &[(String, u32)],
        connections: &[(String, u32)],
    ) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
            provider: provider.filter(|r| *r > 0),
            domains: over_defaults(DEFAULT_DOMAIN_RATES, domains),
            connections: over_defaults(DEFAULT_DOMAIN_CONNECTIONS, connections),
        }
    }

    /// How many SMTP connections `domain` (lower-case) may have in use at once, if limited.
    pub fn connection_limit(&self, domain: &str) -> Option<u32> {
        self.connections
            .iter()
            .find(|(d, _)| d == domain)
            .map(|(_, n)| *n)
            .filter(|n| *n > 0)
    }

    /// Takes one of `domain`'s `limit` connection slots for the send `token`: `false` when all
    /// are in use.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn take_slot(
        &self,
        domain: &str,
        limit: u32,
        token: &str,
    ) -> redis::RedisResult<bool> {
        let taken: u8 = SLOTS
            .key(
                self.keys
                    .throttle_slots(&ThrottleScope::Domain(domain.to_owned())),
            )
            .arg("take")
            .arg(token)
            .arg(limit)
            .arg(u64::try_from(SLOT_LEASE.as_micros()).unwrap_or(u64::MAX))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(taken == 1)
    }

    /// Gives the slot of send `token` back.
    ///
    /// # Errors
    /// When Redis fails (the slot's lease then ends on its own).
    pub async fn give_slot(&self, domain: &str, token: &str) -> redis::RedisResult<()> {
        let _: u8 = SLOTS
            .key(
                self.keys
                    .throttle_slots(&ThrottleScope::Domain(domain.to_owned())),
            )
            .arg("give")
            .arg(token)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The throttled domain `domain` is, as configured (lower-case), when it has a rate.
    pub fn throttled_domain(&self, domain: &str) -> Option<&str> {
        (self.domains.iter())
            .find(|(d, r)| *r > 0 && d.eq_ignore_ascii_case(domain))
            .map(|(d, _)| d.as_str())
    }

    /// The rate of `domain` (lower-case), if it has one.
    pub fn domain_rate(&self, domain: &str) -> Option<u32> {
        self.domains
            .iter()
            .find(|(d, _)| d == domain)
            .map(|(_, r)| *r)
            .filter(|r| *r > 0)
    }

    /// The limits a send of `provider`'s for `campaign` (at `campaign_rate`) to `domain` passes.
    pub fn limits(
        &self,
        provider: &str,
        campaign: CampaignId,
        campaign_rate: Option<u32>,
        domain: Option<&str>,
    ) -> Vec<Limit> {
        let mut limits = Vec::new();
        if let Some(rate) = self.provider {
            limits.push(Limit {
                scope: ThrottleScope::Provider(provider.to_owned()),
                rate,
            });
        }
        if let Some(rate) = campaign_rate.filter(|r| *r > 0) {
            limits.push(Limit {
                scope: ThrottleScope::Campaign(campaign),
                rate,
            });
        }
        if let Some((domain, rate)) = domain.and_then(|d| Some((d, self.domain_rate(d)?))) {
            limits.push(Limit {
                scope: ThrottleScope::Domain(domain.to_owned()),
                rate,
            });
        }
        limits
    }

    /// Takes `n` sends from `limit`: `Duration::ZERO` when they may go now, else how long to
    /// wait before asking again (nothing is taken then).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn take(&self, limit: &Limit, n: u32) -> redis::RedisResult<Duration> {
        let per_send = 1_000_000.0 / f64::from(limit.rate.max(1));
        // A burst of at least one whole request, so a request of n is never refused forever.
        let burst = (BURST.as_micros() as f64).max(per_send * f64::from(n));
        let wait: i64 = THROTTLE
            .key(self.keys.throttle(&limit.scope))
            .key(self.keys.throttle_hold(&limit.scope))
            .arg(per_send)
            .arg(burst)
            .arg(n)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Duration::from_micros(u64::try_from(wait).unwrap_or(0)))
    }

    /// Holds `scope` back for `delay` (a provider's `Retry-After`).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn hold(&self, scope: &ThrottleScope, delay: Duration) -> redis::RedisResult<()> {
        let _: i64 = HOLD
            .key(self.keys.throttle_hold(scope))
            .arg(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

/// `settings` (domain → number) over `defaults` for the domains they do not name.
fn over_defaults(defaults: &[(&str, u32)], settings: &[(String, u32)]) -> Vec<(String, u32)> {
    let mut all: Vec<(String, u32)> = defaults
        .iter()
        .filter(|(d, _)| !settings.iter().any(|(o, _)| o == d))
        .map(|(d, n)| ((*d).to_owned(), *n))
        .collect();
    all.extend(settings.iter().cloned());
    all
}

/// Per-domain numbers: `(domain, n)`.
pub type DomainLimits = Vec<(String, u32)>;

/// `MAILROOM_DOMAIN_RATES` and `MAILROOM_DOMAIN_CONNECTIONS`, parsed: (rates, connections).
///
/// # Errors
/// When an entry is not `domain=n`, naming the setting.
pub fn domain_limits(
    settings: &crate::config::Settings,
) -> anyhow::Result<(DomainLimits, DomainLimits)> {
    let rates = parse_domain_rates(&settings.domain_rates)
        .map_err(|e| anyhow::anyhow!("MAILROOM_DOMAIN_RATES: {e}"))?;
    let connections = parse_domain_rates(&settings.domain_connections)
        .map_err(|e| anyhow::anyhow!("MAILROOM_DOMAIN_CONNECTIONS: {e}"))?;
    Ok((rates, connections))
}

/// Parses `MAILROOM_DOMAIN_RATES` (and `MAILROOM_DOMAIN_CONNECTIONS`, the same shape): `domain=rate[,domain=rate…]` (recipients per second; 0
/// lifts a default).
///
/// # Errors
/// A reason naming the entry at fault.
pub fn parse_domain_rates(text: &str) -> Result<Vec<(String, u32)>, RateError> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (domain, rate) =
                (entry.split_once('=')).ok_or_else(|| RateError::Entry(entry.to_owned()))?;
            let domain = domain.trim().to_ascii_lowercase();
            if domain.is_empty() || !domain.contains('.') || domain.contains(char::is_whitespace) {
                return Err(RateError::Domain(domain));
            }
            let rate =
                (rate.trim().parse::<u32>()).map_err(|_| RateError::Rate(entry.to_owned()))?;
            Ok((domain, rate))
        })
        .collect()
}

/// What is wrong with an entry of a per-domain setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("{0:?} is not domain=rate")]
    Entry(String),
    #[error("{0:?} is not a domain")]
    Domain(String),
    #[error("{0:?}: the rate is a whole number per second")]
    Rate(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_rates_parse_and_refuse_with_the_entry_named() {
        assert_eq!(
            parse_domain_rates(" gmail.com=50, Example.ORG=0 ").unwrap(),
            [("gmail.com".to_owned(), 50), ("example.org".to_owned(), 0)]
        );
        assert!(
            parse_domain_rates("gmail.com")
                .unwrap_err()
                .to_string()
                .contains("gmail.com")
        );
        assert!(parse_domain_rates("x=1").is_err());
        assert!(
            parse_domain_rates("a.b=fast")
                .unwrap_err()
                .to_string()
                .contains("whole")
        );
        assert_eq!(parse_domain_rates("").unwrap(), []);
    }
}
