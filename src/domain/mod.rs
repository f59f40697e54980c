//! Values parsed at the edge (HTTP bodies and paths, CSV rows, tokens) that travel through
//! mailroom as types instead of strings: ids of lists and subscribers, a subscriber's locale.

mod ids;
mod locale;

pub use ids::{ListId, SubscriberId, shard_of};
pub use locale::Locale;
