//! Views and records in Redis beyond the queue's own machinery. Message status is a view over
//! the send job's queue record (one source of truth); verification tokens and verified
//! addresses are records of their own; suppressions come later.

mod rate_limit;
mod status;
mod verification;

pub use rate_limit::{Limit, RateLimiter};
pub use status::{MessageStatus, StatusRecord, StatusStore};
pub use verification::{AddressStatus, Pending, Token, Verifications, Verified};
