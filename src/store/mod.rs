//! Redis records other than the queue's own: message status (and, later, tokens and
//! suppressions). Keys live under the deployment's prefix; the key builders are here, once.

mod status;

pub use status::{MessageStatus, StatusRecord, StatusStore};
