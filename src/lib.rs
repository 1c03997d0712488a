//! emspool: a pool of element management servers.
//!
//! The library holds every subsystem; `main.rs` is only the command line.

pub mod alarms;
pub mod api;
pub mod client;
pub mod cluster;
pub mod config;
pub mod console;
pub mod eventlog;
pub mod interface;
pub mod intern;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod poll;
pub mod render;
pub mod server;
pub mod sim;
