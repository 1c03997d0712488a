//! The integration tests, in one binary: the helpers in `common/` (and the crate) are compiled
//! and linked once instead of once per test file. Each module is one area; a test's name is
//! `MODULE::TEST` (e.g. `traps::pool_member_forwards_to_the_owner`), which is what
//! `.config/nextest.toml` selects by.
//!
//! Every test talks to emspool through its binary, HTTP API and files, with real peers; see
//! `common/mod.rs`.

mod common;

mod alarm_failover;
mod alertmanager;
mod chaos;
mod cli;
mod console;
mod credentials;
mod demo;
mod fencing;
mod harness_selftest;
mod inventory;
mod jetstream;
mod mibs;
mod netconf;
mod operations;
mod packaging;
mod peered;
mod pool;
mod prometheus;
mod robust;
mod scale;
mod server_snmp;
mod sim_agents;
mod sim_snmprec_forms;
mod sim_vs_netsnmp;
mod tls;
mod trap_replay;
mod traps;
mod webhooks;
