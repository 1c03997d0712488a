//! emspool: a pool of element management servers.
//!
//! The library holds every subsystem; `main.rs` is only the command line.

pub mod cluster;
pub mod eventlog;
pub mod model;
pub mod sim;
