//! Values built from the settings once they are read: addresses, the Redis client, the sender,
//! the lists a setting holds.

use anyhow::{Context as _, bail};
use mailroom_jobs::{RedisClient, RedisConnection};
use secrecy::{ExposeSecret, SecretString};

use super::{Misconfigured, REDIS_RESPONSE_TIMEOUT, Settings};

impl Settings {
    /// The address `serve` and `dev` listen on. Checked by the processes that listen, only: a
    /// worker does not refuse a listen address it never uses.
    ///
    /// # Errors
    /// When it is not an address such as `127.0.0.1:8080`.
    pub fn listen_address(&self) -> Result<std::net::SocketAddr, Misconfigured> {
        self.listen.parse().map_err(|_| {
            Misconfigured::new(format!(
                "listen (MAILROOM_LISTEN) {:?} is not an address such as 127.0.0.1:8080",
                self.listen
            ))
        })
    }

    /// `MAILROOM_METRICS_LISTEN` as an address; `None` when unset or empty.
    ///
    /// # Errors
    /// When it is set and not an address such as `0.0.0.0:9090`.
    pub fn metrics_address(&self) -> Result<Option<std::net::SocketAddr>, Misconfigured> {
        let Some(listen) = self
            .metrics_listen
            .as_deref()
            .filter(|l| !l.trim().is_empty())
        else {
            return Ok(None);
        };
        listen.trim().parse().map(Some).map_err(|_| {
            Misconfigured::new(format!(
                "MAILROOM_METRICS_LISTEN {listen:?} is not an address such as 0.0.0.0:9090"
            ))
        })
    }

    /// The Redis client for [`Settings::redis_url`]: one server or a cluster.
    ///
    /// # Errors
    /// When the URL is invalid (already checked by [`Settings::load`]).
    pub fn redis_client(&self) -> anyhow::Result<RedisClient> {
        RedisClient::open(self.redis_url.expose_secret(), REDIS_RESPONSE_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("REDIS_URL is invalid: {e}"))
    }

    /// The shared, self-reconnecting connection the API and the workers use, answering within
    /// [`REDIS_RESPONSE_TIMEOUT`].
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn redis_connection(&self) -> anyhow::Result<RedisConnection> {
        self.redis_client()?
            .connect(REDIS_RESPONSE_TIMEOUT)
            .await
            .context("could not connect to Redis (is REDIS_URL right, and is Redis running?)")
    }

    /// The default sender, [`Settings::from`] parsed.
    ///
    /// # Errors
    /// When it is not a mailbox such as `Name <addr@example.com>`.
    pub fn default_from(&self) -> anyhow::Result<lettre::message::Mailbox> {
        self.from.parse().map_err(|e| {
            anyhow::anyhow!(
                "MAILROOM_FROM {:?} is not a mailbox such as `Name <noreply@example.com>`: {e}",
                self.from
            )
        })
    }

    /// `MAILROOM_BOUNCE_DOMAIN`, lower-cased; `None` when unset.
    ///
    /// # Errors
    /// When it is not a domain name.
    pub fn bounce_domain(&self) -> anyhow::Result<Option<String>> {
        let Some(domain) = self
            .bounce_domain
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        else {
            return Ok(None);
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let valid = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        anyhow::ensure!(
            valid,
            "MAILROOM_BOUNCE_DOMAIN {domain:?} is not a domain name such as bounces.example.com"
        );
        Ok(Some(domain))
    }

    /// `MAILROOM_SENDGRID_GROUPS`, parsed: list id → SendGrid unsubscribe group id.
    ///
    /// # Errors
    /// When an entry is not `LIST=GROUP` with two positive numbers, or a list is named twice.
    pub fn sendgrid_group_map(&self) -> anyhow::Result<std::collections::BTreeMap<u64, u32>> {
        let mut map = std::collections::BTreeMap::new();
        for entry in self
            .sendgrid_groups
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let parsed = entry.split_once('=').and_then(|(list, group)| {
                Some((
                    list.trim().parse::<u64>().ok().filter(|l| *l > 0)?,
                    group.trim().parse::<u32>().ok().filter(|g| *g > 0)?,
                ))
            });
            let Some((list, group)) = parsed else {
                bail!(
                    "MAILROOM_SENDGRID_GROUPS: {entry:?} is not LIST=GROUP (a list id, a SendGrid unsubscribe group id)"
                );
            };
            if map.insert(list, group).is_some() {
                bail!("MAILROOM_SENDGRID_GROUPS: list {list} is named twice");
            }
        }
        Ok(map)
    }

    /// The categories that override suppressions, trimmed.
    pub fn transactional_category_list(&self) -> Vec<String> {
        self.transactional_categories
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The allowed redirect origins, each as `scheme://host[:port]`, lower-cased.
    pub fn redirect_origins(&self) -> Vec<String> {
        self.allowed_redirect_origins
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect()
    }

    /// The API keys, split at commas, blanks dropped.
    pub fn api_key_list(&self) -> Vec<SecretString> {
        self.api_keys
            .as_ref()
            .map(|keys| {
                keys.expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| SecretString::from(k.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
}
