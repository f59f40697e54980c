//! SendGrid's Inbound Parse webhook: mail sent to a domain whose MX points at SendGrid arrives
//! as a multipart POST; mailroom parses it ([`parse`]), stores it and announces it on a Redis
//! stream for consumer services ([`store`]), and answers 2xx only once it is stored.

pub mod parse;
pub mod store;

pub use parse::{InboundEmail, InboundError, Parsed};
pub use store::InboundStore;
