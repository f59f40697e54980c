//! Values parsed at the edge (HTTP bodies and paths, CSV rows, tokens) that travel through
//! mailroom as types instead of strings: ids of lists and subscribers, a subscriber's locale and
//! subscription status, the digest that names an address.

mod address;
mod ids;
mod locale;
mod notice;
mod subscription;

pub use address::address_digest;
pub use ids::{HookId, KeyId, ListId, SubscriberId, shard_of};
pub use locale::{Locale, NotALocale};
pub use mailroom_jobs::{CampaignId, MessageId};
pub use notice::{EventType, Notice};
pub use subscription::{StartingStatus, SubscriptionStatus};
