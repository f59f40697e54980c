//! The providers' delivery events: SendGrid's Event Webhook (its signature in [`signature`],
//! its events in [`parse`]), the other providers' webhooks read into the same events
//! ([`providers`]), and what they change ([`store`]): each message's timeline and delivery
//! status, the suppression list, the daily stats.
//!
//! The API verifies a POST, stores the raw batch as a job on the `events` queue and answers
//! 200; a worker parses and applies it. A failure after storing is retried by the queue, and
//! dedupe makes a retried or re-sent batch count once.

pub mod parse;
pub mod providers;
pub mod signature;
pub mod store;

pub use parse::{Event, EventKind, Source, parse_batch};
pub use providers::parse_from;
pub use signature::{SignatureError, WebhookKey};
pub use store::{Applied, EventStore, Follower, MessageIndex};
