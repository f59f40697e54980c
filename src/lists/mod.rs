//! Mailing lists: lists, subscribers and their subscriptions ([`store`], laid out for millions
//! of subscribers over [`mailroom_jobs::SUBSCRIBER_SHARDS`] shards), CSV imports ([`import`]),
//! segments ([`segment`]) and the signed links that unsubscribe ([`links`]).

pub mod events;
pub mod import;
pub mod import_command;
pub mod imports;
pub mod links;
pub mod model;
mod notices;
pub mod optin;
pub mod privacy;
pub mod segment;
pub mod signup;
pub mod store;
pub mod subscribe;

pub use model::{
    List, Optin, Source, Subscriber, SubscriberStatus, Subscription, SubscriptionStatus, Visibility,
};
pub use store::{Counts, ListStore};
