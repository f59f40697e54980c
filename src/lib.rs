//! mailroom: an email microservice. Producers push jobs onto Redis-backed apalis queues;
//! worker processes run them.

pub mod bench;
pub mod cli;
pub mod config;
pub mod dev;
pub mod http;
pub mod providers;
pub mod queue;
pub mod render;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod worker;
