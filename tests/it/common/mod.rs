//! Helpers shared by the integration tests: free ports, child processes that are always
//! cleaned up and temp dirs (emspool's one implementation, `emspool::testing::support`, here
//! with panics that say what failed), bounded waits, and the real peers (Net-SNMP `snmpd`, `snmpsim`, and
//! `netconfd` behind a private `sshd`).
//!
//! Use from a test file with `mod common;`. Everything binds 127.0.0.1 only. Peers are
//! installed by `tests/install-peers.sh`; a missing peer makes the test fail (panic), never
//! skip. Set `EMSPOOL_TEST_KEEP=1` to keep the peers' temp dirs (configs, logs) after a test.
#![allow(dead_code, unused_imports)]

pub mod agents;
pub mod alertmanager;
pub mod emspool;
pub mod faults;
pub mod nats;
pub mod netconf;
pub mod pool;
pub mod prometheus;
pub mod pynetconf;
pub mod snmpcli;
pub mod snmpd;
pub mod snmpsim;
pub mod wait;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use ::emspool::testing::support::{ChildGuard, TempDir, file_tail};
pub use netconf::{NETCONF_PASSWORD, NETCONF_USER, NcAuth, Netconfd};
pub use snmpcli::{SnmpAuth, snmp_get, snmp_get_with, snmp_responds, snmp_tool};
pub use snmpd::Snmpd;
pub use snmpsim::Snmpsim;
pub use wait::{wait_until, wait_until_async};

/// Spawns `cmd` as a [`ChildGuard`] logging to `log_dir`; panics when it cannot start.
pub fn spawn(name: &str, cmd: Command, log_dir: &Path) -> ChildGuard {
    ChildGuard::spawn(name, cmd, log_dir).unwrap_or_else(|e| panic!("{e}"))
}

/// A port free on 127.0.0.1 for both UDP and TCP, not handed out before by this process.
pub fn free_port() -> u16 {
    ::emspool::testing::support::free_port().unwrap_or_else(|e| panic!("free port: {e}"))
}

/// The first of `n` consecutive ports free for UDP and TCP: `start..start + n`.
pub fn free_port_run(n: usize) -> u16 {
    ::emspool::testing::support::free_port_run(n).unwrap_or_else(|e| panic!("free port run: {e}"))
}

/// The `emspool` binary built by cargo for this test run.
pub fn emspool_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_emspool"))
}

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/data/`.
pub fn test_data(name: &str) -> PathBuf {
    repo_root().join("tests").join("data").join(name)
}

/// Locate an executable: `$PATH` first, then the sbin dirs (not always on a user's PATH).
/// Panics with a hint to run the install script when it is missing.
pub fn find_tool(name: &str) -> PathBuf {
    try_find_tool(name).unwrap_or_else(|| {
        panic!("`{name}` not found on PATH or in /usr/sbin, /sbin: run tests/install-peers.sh")
    })
}

/// Like [`find_tool`] but returns `None` when missing.
pub fn try_find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `v[key]` as an array; panics with the whole body when the answer's shape changed, so a
/// renamed or missing field fails the test instead of reading as an empty list.
pub fn json_array(v: &serde_json::Value, key: &str) -> Vec<serde_json::Value> {
    match v[key].as_array() {
        Some(a) => a.clone(),
        None => panic!("expected an array at {key:?} in {v}"),
    }
}

/// Whether this process runs as root (effective uid 0), read from /proc.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// A temp dir for a peer, traversable by other users (`nobody` must reach files in it).
/// Kept after the test when `EMSPOOL_TEST_KEEP` is set.
pub fn peer_tempdir(prefix: &str) -> TempDir {
    let keep = std::env::var_os("EMSPOOL_TEST_KEEP").is_some();
    // snmpsim runs as `nobody`: every ancestor must be traversable by others.
    let base = std::env::temp_dir();
    let base = if world_traversable(&base) {
        base
    } else {
        PathBuf::from("/tmp")
    };
    let dir = TempDir::new_in(&base, prefix)
        .unwrap_or_else(|e| panic!("temp dir in {}: {e}", base.display()))
        .keep(keep);
    set_mode(dir.path(), 0o755);
    if keep {
        eprintln!("[common] keeping {}", dir.path().display());
    }
    dir
}

fn world_traversable(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors()
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// chmod, panicking on failure.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}
