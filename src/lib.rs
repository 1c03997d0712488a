//! emspool: a pool of element management servers.
//!
//! Every server of a pool runs this crate's binary. The modules are layers; each one uses only
//! the layers above it in this list (no module imports one that imports it back):
//!
//! | layer | modules | what |
//! |---|---|---|
//! | vocabulary | [`model`], `config`, `lease`, `logging`, `ratelog`, `metrics`, `tls` | shared types (the JSON contract), the validated configuration, the right to act on owned elements (checked at every poll and alarm change), logs (and refusals logged once a minute per source), Prometheus registry, rustls configurations and the TLS accept layer |
//! | records | `eventlog`, `alarms` | the redb event log of this server; the active-alarm table and the one path by which alarm changes are applied |
//! | protocol stacks | `snmp`, `netconf` | SNMP client, trap decoding, USM; NETCONF over SSH (framing, XML, sessions, notifications) |
//! | rules | `rules` | pure functions: a poll result, a trap, a notification -> alarm changes |
//! | polling | `poll` | the scheduler and the glue from SNMP/NETCONF answers to rules and records |
//! | pool | `cluster` | membership, bully election, assignment of elements to servers (sans-IO cores and their drivers) |
//! | traps | `traps` | the UDP receiver: decode, route to the owner, apply |
//! | service | `api` | HTTP: client API (peered and federated), peer protocol, operations endpoints |
//! | process | `server`, [`cli`], [`sim`] | start-up and reload of one server; the command line (client, demo); the SNMP agent simulator |
//!
//! The crate's API is narrow: [`cli::main`] (what the binary runs), [`sim`] (the simulator
//! that benchmarks and the demo drive) and [`model`] (the JSON types of the HTTP API).
//! Everything else is `pub(crate)`. Benchmarks and fuzz targets reach a few internals through
//! `testing`, compiled only with the `testing` feature (the crate's own dev-dependency on
//! itself turns it on for tests and benches).
//!
//! `docs/ARCHITECTURE.md` describes the data flows and the pool protocol.

#![cfg_attr(feature = "testing", warn(unreachable_pub))]

pub(crate) mod alarms;
pub(crate) mod api;
pub mod cli;
pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod eventlog;
pub(crate) mod fingerprint;
pub(crate) mod lease;
pub(crate) mod logging;
pub(crate) mod metrics;
pub mod model;
pub(crate) mod netconf;
pub(crate) mod northbound;
pub(crate) mod poll;
pub(crate) mod ratelog;
pub(crate) mod resolve;
pub(crate) mod rules;
pub(crate) mod server;
pub mod sim;
pub(crate) mod snmp;
pub(crate) mod support;
pub(crate) mod tls;
pub(crate) mod traps;

#[cfg(test)]
mod layering;
#[cfg(feature = "testing")]
pub mod testing;
