//! mailroom: an email microservice. Producers push jobs onto Redis-backed apalis queues
//! ([`queue`]); worker processes ([`worker`]) render them ([`render`]) and send them through a
//! provider ([`providers`]); a small axum service ([`http`]) takes requests, serves the
//! verification pages and reports status ([`store`]). `main.rs` only wires these together.

pub mod app;
pub mod bounces;
pub mod campaigns;
pub mod cli;
pub mod config;
pub mod console;
pub mod dev;
pub mod doctor;
pub mod domain;
pub mod events;
pub mod hooks;
pub mod http;
pub mod inbound;
pub mod keys;
pub mod lists;
pub mod metrics;
pub mod providers;
pub mod queue;
pub mod render;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod tracking;
pub mod validation;
pub mod verification;
pub mod worker;
