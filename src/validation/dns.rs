//! Does the domain accept mail? MX, then A/AAAA as the implicit MX (RFC 5321 §5.1), a null MX
//! (RFC 7505), NXDOMAIN; answers cached in Redis per domain for every process.
//!
//! A lookup that times out or fails (SERVFAIL, refused, no route) is *unanswered*: it says
//! nothing about the domain, so it is never cached and never makes an address invalid.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, rdata::MX};
use hickory_resolver::{Resolver, TokioResolver};
use mailroom_jobs::RedisConnection;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

/// What DNS said about a domain's mail hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DnsCheck {
    /// The domain has MX records naming a host.
    pub mx: bool,
    /// The domain has an A or AAAA record; looked up only when it has no MX (the implicit MX).
    pub a: bool,
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    pub null_mx: bool,
    /// The domain exists (not NXDOMAIN).
    pub exists: bool,
}

impl DnsCheck {
    /// Whether mail to the domain has somewhere to go.
    pub fn accepts_mail(self) -> bool {
        self.exists && !self.null_mx && (self.mx || self.a)
    }
}

/// A lookup's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsAnswer {
    Answered(DnsCheck),
    /// Timed out or failed: unknown.
    Unanswered,
}

/// DNS settings.
#[derive(Clone, Debug)]
pub struct DnsSettings {
    /// The resolver to ask; `None` reads the system's (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    pub timeout: Duration,
    pub positive_ttl: Duration,
    pub negative_ttl: Duration,
}

impl DnsSettings {
    /// The DNS settings of address validation.
    ///
    /// # Errors
    /// When `dns_resolver` is not an IP address, with or without a port.
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        let resolver = match settings.dns_resolver.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<SocketAddr>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "MAILROOM_DNS_RESOLVER {text:?} is not an IP address such as 9.9.9.9 or 127.0.0.1:5353"
                        )
                    })?,
            ),
        };
        Ok(Self {
            resolver,
            timeout: Duration::from_millis(settings.dns_timeout_ms),
            positive_ttl: Duration::from_secs(settings.dns_cache_secs),
            negative_ttl: Duration::from_secs(settings.dns_negative_cache_secs),
        })
    }
}

/// A resolver and the shared Redis cache in front of it.
#[derive(Clone)]
pub struct DomainChecker {
    resolver: TokioResolver,
    redis: RedisConnection,
    keys: mailroom_jobs::Keys,
    settings: DnsSettings,
}

impl std::fmt::Debug for DomainChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainChecker")
            .field("prefix", &self.keys.prefix())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A resolver as `settings` ask for: their server (or the system's), their timeout, one
/// attempt, no cache of its own. Address validation and `mailroom doctor` use it.
///
/// # Errors
/// When the resolver cannot be built from its configuration.
pub fn resolver(settings: &DnsSettings) -> anyhow::Result<TokioResolver> {
    let mut options = ResolverOpts::default();
    // One attempt per lookup, so the configured timeout is the whole wait.
    options.timeout = settings.timeout;
    options.attempts = 1;
    // Redis is the cache, shared by every process and with mailroom's own TTLs; a second,
    // per-process cache would keep answers past them.
    options.cache_size = 0;
    let builder = match settings.resolver {
        Some(address) => {
            let mut server = NameServerConfig::udp_and_tcp(address.ip());
            for connection in &mut server.connections {
                connection.port = address.port();
            }
            let config = ResolverConfig::from_name_servers(vec![server]);
            Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
        None => TokioResolver::builder_tokio().unwrap_or_else(|error| {
            // Validation must not keep the API from starting: without a readable system
            // configuration, lookups go to a resolver on this host, and fail as
            // "unanswered" (risky, never invalid) when there is none.
            tracing::warn!(%error, "cannot read the system DNS configuration; asking 127.0.0.1:53 (set MAILROOM_DNS_RESOLVER)");
            let server = NameServerConfig::udp_and_tcp(std::net::Ipv4Addr::LOCALHOST.into());
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![server]),
                TokioRuntimeProvider::default(),
            )
        }),
    };
    Ok(builder.with_options(options).build()?)
}

/// How many domains a batch resolves at once.
const PARALLEL_LOOKUPS: usize = 32;

impl DomainChecker {
    /// # Errors
    /// When the resolver cannot be built from its configuration.
    pub fn new(
        settings: DnsSettings,
        redis: RedisConnection,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let resolver = resolver(&settings)?;
        Ok(Self {
            resolver,
            redis,
            keys: mailroom_jobs::Keys::new(prefix),
            settings,
        })
    }

    fn key(&self, ascii_domain: &str) -> String {
        self.keys.dns(ascii_domain)
    }

    /// Answers for each of `domains` (ASCII, lower-case, deduplicated by the caller): one Redis
    /// round trip for the cached ones, parallel lookups for the rest.
    ///
    /// # Errors
    /// Only when Redis fails; DNS failures are [`DnsAnswer::Unanswered`].
    pub async fn check_all(
        &self,
        domains: &[String],
    ) -> redis::RedisResult<HashMap<String, DnsAnswer>> {
        let mut answers = HashMap::with_capacity(domains.len());
        if domains.is_empty() {
            return Ok(answers);
        }
        let keys: Vec<String> = domains.iter().map(|d| self.key(d)).collect();
        let mut redis = self.redis.clone();
        let cached: Vec<Option<String>> = redis.mget(&keys).await?;
        let mut misses = Vec::new();
        for (domain, cached) in domains.iter().zip(cached) {
            match cached.and_then(|c| serde_json::from_str::<DnsCheck>(&c).ok()) {
                Some(check) => {
                    answers.insert(domain.clone(), DnsAnswer::Answered(check));
                }
                None => misses.push(domain.clone()),
            }
        }
        let looked_up: Vec<(String, DnsAnswer)> = futures::stream::iter(misses)
            .map(|domain| async move {
                let answer = self.lookup(&domain).await;
                (domain, answer)
            })
            .buffer_unordered(PARALLEL_LOOKUPS)
            .collect()
            .await;
        let cached: Vec<(String, String, u64)> = looked_up
            .iter()
            .filter_map(|(domain, answer)| match answer {
                DnsAnswer::Answered(check) => {
                    let ttl = if check.accepts_mail() {
                        self.settings.positive_ttl
                    } else {
                        self.settings.negative_ttl
                    };
                    let json = serde_json::to_string(check).unwrap_or_default();
                    Some((self.key(domain), json, ttl.as_secs().max(1)))
                }
                _ => None,
            })
            .collect();
        // One pipeline per slot: on a cluster each domain's key is a slot of its own.
        let writes = redis
            .slot_groups(cached, |(key, _, _)| key)
            .into_iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                for (key, json, ttl) in group {
                    pipe.set_ex(key, json, ttl).ignore();
                }
                let mut conn = redis.clone();
                async move { pipe.query_async::<()>(&mut conn).await }
            });
        futures::future::try_join_all(writes).await?;
        answers.extend(looked_up);
        Ok(answers)
    }

    /// One domain, straight from DNS (no cache).
    pub async fn lookup(&self, ascii_domain: &str) -> DnsAnswer {
        // The trailing dot makes the name absolute: no search domains are tried.
        let name = format!("{ascii_domain}.");
        match self.resolver.mx_lookup(name.as_str()).await {
            Ok(mx) => {
                let hosts: Vec<&MX> = mx
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(host) => Some(host),
                        _ => None,
                    })
                    .collect();
                if hosts.is_empty() {
                    return self.implicit_mx(&name).await;
                }
                // RFC 7505: a single MX of preference 0 naming the root.
                let null_mx = hosts.len() == 1 && hosts[0].exchange.is_root();
                DnsAnswer::Answered(DnsCheck {
                    mx: !null_mx,
                    a: false,
                    null_mx,
                    exists: true,
                })
            }
            Err(e) if e.is_nx_domain() => DnsAnswer::Answered(DnsCheck {
                mx: false,
                a: false,
                null_mx: false,
                exists: false,
            }),
            Err(e) if is_no_data(&e) => self.implicit_mx(&name).await,
            Err(e) => {
                tracing::debug!(domain = ascii_domain, error = %e, "MX lookup unanswered");
                DnsAnswer::Unanswered
            }
        }
    }

    async fn implicit_mx(&self, name: &str) -> DnsAnswer {
        match self.resolver.lookup_ip(name).await {
            Ok(ips) => DnsAnswer::Answered(DnsCheck {
                mx: false,
                a: ips.iter().next().is_some(),
                null_mx: false,
                exists: true,
            }),
            Err(e) if e.is_nx_domain() || is_no_data(&e) => DnsAnswer::Answered(DnsCheck {
                mx: false,
                a: false,
                null_mx: false,
                exists: !e.is_nx_domain(),
            }),
            Err(e) => {
                tracing::debug!(name, error = %e, "A/AAAA lookup unanswered");
                DnsAnswer::Unanswered
            }
        }
    }
}

/// NOERROR with no records of the asked type: the name exists, the record does not.
fn is_no_data(error: &NetError) -> bool {
    use hickory_resolver::net::DnsError;
    matches!(
        error,
        NetError::Dns(DnsError::NoRecordsFound(no)) if no.response_code == ResponseCode::NoError
    )
}
