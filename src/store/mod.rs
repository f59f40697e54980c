//! Views and records in Redis beyond the queue's own machinery. Message status is a view over
//! the send job's queue record (one source of truth); the suppression list is a record of its
//! own. [`health`] checks that
//! the Redis itself is fit to hold mail (no eviction, persistence, room left).

pub mod activity;
pub mod audit;
pub mod health;
pub mod migrate;
pub mod notices;
mod rate_limit;
pub mod retry;
pub mod stats;
mod status;
pub mod suppressions;

pub use health::{Failure, RedisFacts, RedisGuard};
pub use rate_limit::{Limit, RateLimiter};
pub use retry::retry_for;
pub use stats::StatsStore;
pub use status::{MessageStatus, ProviderTry, StatusRecord, StatusStore};
pub use suppressions::{Suppression, Suppressions};
