//! One Redis, or a Redis Cluster, behind one connection type.
//!
//! `REDIS_URL` names a single server (`redis://host:port/db`, `rediss://…`, `unix://…`) or a
//! cluster through its seed nodes (`redis+cluster://[user:password@]host:port,host:port,…`).
//! [`RedisClient::open`] reads either; [`RedisConnection`] is what every store and script is
//! called on, so mailroom has one code path for both.
//!
//! What differs on a cluster is kept here:
//! - The cluster client has no response timeout of its own (a command to a master that went
//!   away hangs through every retry), so one is always set, the same as for one server.
//! - A blocking command (`BLPOP`) holds up everything else sent to its node on the shared
//!   connection: [`RedisClient::blocking`] opens a connection of its own, without a response
//!   timeout, for the workers' wait for work.
//! - A script or pipeline may touch one slot only: keys that must meet share a hash tag
//!   (the key schema, `keys`), and [`RedisConnection::slot_groups`] splits batches that span slots.

use std::time::Duration;

use redis::{
    Cmd, Pipeline, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, Slot},
};

/// The scheme of a cluster's `REDIS_URL`.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// How to reach Redis: one server or a cluster.
#[derive(Clone)]
pub enum RedisClient {
    /// One server.
    Single(redis::Client),
    /// A cluster, through its seed nodes.
    Cluster {
        /// Commands, answered within the response timeout.
        client: Box<ClusterClient>,
        /// Blocking waits: no response timeout.
        blocking: Box<ClusterClient>,
    },
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the kind is shown.
        f.write_str(match self {
            Self::Single(_) => "RedisClient::Single",
            Self::Cluster { .. } => "RedisClient::Cluster",
        })
    }
}

/// Why a `REDIS_URL` was refused. Never quotes the URL, which may hold a password.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRedisUrl(String);

impl RedisClient {
    /// Reads `url` (see the module documentation); commands on its connections fail after
    /// `response_timeout`.
    ///
    /// # Errors
    /// When the URL is not a Redis URL, or a cluster URL names no node.
    pub fn open(url: &str, response_timeout: Duration) -> Result<Self, BadRedisUrl> {
        let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
            let client = redis::Client::open(url)
                .map_err(|e| BadRedisUrl(format!("not a valid Redis URL ({:?})", e.kind())))?;
            return Ok(Self::Single(client));
        };
        let (credentials, hosts) = match rest.rsplit_once('@') {
            Some((credentials, hosts)) => (Some(credentials), hosts),
            None => (None, rest),
        };
        let hosts = hosts.trim_end_matches('/');
        let mut nodes = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            if host.is_empty() || host.contains('/') {
                return Err(BadRedisUrl(format!(
                    "a cluster URL lists seed nodes as {CLUSTER_SCHEME}host:port,host:port (no database, no path)"
                )));
            }
            let node = match credentials {
                Some(credentials) => format!("redis://{credentials}@{host}"),
                None => format!("redis://{host}"),
            };
            let info =
                redis::IntoConnectionInfo::into_connection_info(node.as_str()).map_err(|e| {
                    BadRedisUrl(format!("a seed node is not host:port ({:?})", e.kind()))
                })?;
            nodes.push(info);
        }
        let build = |timeout: Option<Duration>| {
            let mut builder =
                ClusterClientBuilder::new(nodes.clone()).connection_timeout(Duration::from_secs(5));
            if let Some(timeout) = timeout {
                builder = builder.response_timeout(timeout);
            }
            builder
                .build()
                .map_err(|e| BadRedisUrl(format!("not a valid cluster URL ({:?})", e.kind())))
        };
        Ok(Self::Cluster {
            client: Box::new(build(Some(response_timeout))?),
            blocking: Box::new(build(None)?),
        })
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// The shared connection: reconnects by itself, answers within the response timeout.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn connect(&self, response_timeout: Duration) -> RedisResult<RedisConnection> {
        match self {
            Self::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(response_timeout))
                    .set_connection_timeout(Some(Duration::from_secs(5)));
                Ok(RedisConnection::Single(
                    ConnectionManager::new_with_config(client.clone(), config).await?,
                ))
            }
            Self::Cluster { client, .. } => Ok(RedisConnection::Cluster(
                client.get_async_connection().await?,
            )),
        }
    }

    /// A connection of its own without a response timeout, for blocking commands (`BLPOP`):
    /// on the shared connection a blocked command would hold up every other one.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn blocking(&self) -> RedisResult<RedisConnection> {
        match self {
            Self::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(None)
                    .set_connection_timeout(Some(Duration::from_secs(5)));
                Ok(RedisConnection::Dedicated(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
            Self::Cluster { blocking, .. } => Ok(RedisConnection::Cluster(
                blocking.get_async_connection().await?,
            )),
        }
    }
}

/// A connection to one Redis or to a cluster. Cheap to clone: clones share one multiplexed
/// connection (per node, on a cluster). `redis::AsyncCommands` work on it.
#[derive(Clone)]
pub enum RedisConnection {
    /// The shared, self-reconnecting connection to one server.
    Single(ConnectionManager),
    /// A connection of its own to one server ([`RedisClient::blocking`]).
    Dedicated(MultiplexedConnection),
    /// A cluster connection (it reconnects and follows slot moves by itself).
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Dedicated(_) => "RedisConnection::Dedicated",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Dedicated(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Dedicated(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Dedicated(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// `items` grouped by the cluster slot of `key(item)`, groups in order of first appearance.
fn by_slot<T>(items: Vec<T>, key: impl Fn(&T) -> &str) -> Vec<Vec<T>> {
    let mut groups: Vec<(Slot, Vec<T>)> = Vec::new();
    for item in items {
        let slot = Slot::for_key(key(&item));
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push(item),
            None => groups.push((slot, vec![item])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

impl RedisConnection {
    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Splits `items` into groups that one script call or pipeline may serve: everything in
    /// one group on a single server, one group per slot of `key(item)` on a cluster. Order
    /// within a group is kept.
    pub fn slot_groups<T>(&self, items: Vec<T>, key: impl Fn(&T) -> &str) -> Vec<Vec<T>> {
        if self.is_cluster() {
            by_slot(items, key)
        } else if items.is_empty() {
            Vec::new()
        } else {
            vec![items]
        }
    }

    /// Runs `cmd` on every master (the one server, on a single Redis) and returns each
    /// answer with the node's address: for server-wide facts such as `INFO` and `CONFIG GET`.
    ///
    /// # Errors
    /// When a node does not answer.
    pub async fn on_every_master(&mut self, cmd: &Cmd) -> RedisResult<Vec<(String, Value)>> {
        match self {
            Self::Cluster(conn) => {
                let routing = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    None::<ResponsePolicy>,
                ));
                let answer = conn.route_command(cmd.clone(), routing).await?;
                let Value::Map(pairs) = answer else {
                    return Ok(vec![(String::from("cluster"), answer)]);
                };
                Ok(pairs
                    .into_iter()
                    .map(|(node, value)| {
                        let node = redis::from_redis_value::<String>(node)
                            .unwrap_or_else(|_| String::from("?"));
                        (node, value)
                    })
                    .collect())
            }
            _ => {
                let value: Value = cmd.query_async(self).await?;
                Ok(vec![(String::from("redis"), value)])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    #[test]
    fn a_plain_url_is_one_server_and_a_cluster_url_lists_its_seeds() {
        assert!(
            !RedisClient::open("redis://127.0.0.1:6379/2", TIMEOUT)
                .unwrap()
                .is_cluster()
        );
        for url in [
            "redis+cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
            "redis+cluster://127.0.0.1:7001",
            "redis+cluster://:s3cret@10.0.0.1:7001, 10.0.0.2:7001/",
            "redis+cluster://app:s3cret@redis-a:6379,redis-b:6379",
        ] {
            assert!(
                RedisClient::open(url, TIMEOUT).unwrap().is_cluster(),
                "{url}"
            );
        }
    }

    #[test]
    fn a_malformed_url_is_refused_without_quoting_its_password() {
        for url in [
            "redis+cluster://",
            "redis+cluster://:s3cret@",
            "redis+cluster://h1:7001,,h2:7001",
            "redis+cluster://:s3cret@h1:7001/0",
            "redis+cluster://:s3cret@h1:notaport",
            "http://:s3cret@h1:6379",
        ] {
            let error = RedisClient::open(url, TIMEOUT).unwrap_err().to_string();
            assert!(!error.contains("s3cret"), "{url}: {error}");
            assert!(!error.is_empty());
        }
    }

    #[test]
    fn items_are_grouped_by_the_slot_of_their_hash_tag() {
        let items = vec![
            "p:timeline:{m1}",
            "p:timeline:{m2}",
            "p:delivery:{m1}",
            "p:evt:seen:{m1}:k:x",
            "p:delivery:{m2}",
        ];
        let groups = by_slot(items, |k| k);
        assert_eq!(
            groups,
            vec![
                vec!["p:timeline:{m1}", "p:delivery:{m1}", "p:evt:seen:{m1}:k:x"],
                vec!["p:timeline:{m2}", "p:delivery:{m2}"],
            ]
        );
        assert!(by_slot(Vec::<&str>::new(), |k| k).is_empty());
    }
}
