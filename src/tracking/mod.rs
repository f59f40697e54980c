//! mailroom's own open and click tracking, for the mail it writes itself (SMTP and the outbox;
//! SendGrid tracks its own and reports through its events).
//!
//! A tracked message gets signed links ([`token`]) written into its HTML ([`rewrite`]); a hit
//! on `/t/o/TOKEN` or `/t/c/TOKEN` is answered at once (the image, or a 302 to the link) and
//! handed to a worker in batches ([`crate::http::tracking`]), which records it as an `open` or
//! `click` event through the same store as SendGrid's, so timelines, statuses, unique counts,
//! daily stats and campaign engagement are the same whichever provider sent. Hits from
//! machines ([`machines`]) are recorded but not counted.
//!
//! What is tracked: campaigns, by default (each campaign can turn opens or clicks off); a
//! message from `POST /v1/emails` only when it asks (`tracking: {opens, clicks}`); never a
//! template with a secret link, nor a message in a transactional category; nothing at all
//! with `MAILROOM_TRACKING=false`.

pub mod machines;
pub mod rewrite;
pub mod token;
