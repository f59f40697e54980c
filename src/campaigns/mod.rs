//! Campaigns: one email to the confirmed subscribers of one or more lists, sent in batches on
//! the `campaigns` queue, each recipient exactly once.
//!
//! - [`model`]: the campaign as created (its [`Spec`]), its states and what `GET` shows.
//! - [`store`]: its keys in Redis and the scripts that change them (state, audience snapshot,
//!   the per-recipient `try` and `done` bitmaps).
//! - [`copy`]: the copy rendered once per language, with per-recipient fields left open.
//! - [`run`]: the start job; [`send`]: the batch job, through the provider's batch interface.
//! - [`prepare`]: a campaign read once per process, with its letters.
//! - [`throttle`]: rate limits shared by every worker, per provider, campaign and domain.
//! - [`check`]: the rules a new campaign follows; [`proof`]: its copy sent to a few addresses.
//! - [`lifecycle`]: schedule, pause, resume, cancel (the API's and the command line's).
//! - [`command`]: `mailroom campaign list|show|watch|pause|resume|cancel`.

pub mod check;
pub mod command;
pub mod copy;
pub mod engagement;
pub mod lifecycle;
pub mod model;
mod outcome;
mod prepare;
pub mod proof;
pub mod run;
mod send;
pub mod store;
pub mod throttle;

pub use engagement::Engagement;
pub use model::{Campaign, Content, RawContent, Spec, State, TemplateContent};
pub use outcome::{Report, RunError};
pub use run::Campaigner;
pub use store::{CampaignStore, Guards, Transition};
pub use throttle::Throttles;
