//! Views and records in Redis beyond the queue's own machinery. Message status is a view over
//! the send job's queue record (one source of truth); tokens and suppressions come later.

mod status;

pub use status::{MessageStatus, StatusRecord, StatusStore};
