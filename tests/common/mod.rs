//! Helpers shared by the integration tests: free ports, child processes that are always
//! cleaned up, bounded waits, and the real peers (Net-SNMP `snmpd`, `snmpsim`, and
//! `netconfd` behind a private `sshd`).
//!
//! Use from a test file with `mod common;`. Everything binds 127.0.0.1 only. Peers are
//! installed by `tests/install-peers.sh`; a missing peer makes the test fail (panic), never
//! skip. Set `EMSPOOL_TEST_KEEP=1` to keep the peers' temp dirs (configs, logs) after a test.
#![allow(dead_code, unused_imports)]

pub mod agents;
pub mod child;
pub mod emspool;
pub mod nats;
pub mod netconf;
pub mod pool;
pub mod ports;
pub mod prometheus;
pub mod pynetconf;
pub mod snmpcli;
pub mod snmpd;
pub mod snmpsim;
pub mod wait;

use std::path::{Path, PathBuf};

pub use child::ChildGuard;
pub use netconf::{NETCONF_PASSWORD, NETCONF_USER, NcAuth, Netconfd};
pub use ports::{free_tcp_port, free_udp_port, free_udp_port_range};
pub use snmpcli::{SnmpAuth, snmp_get, snmp_get_with, snmp_responds, snmp_tool};
pub use snmpd::Snmpd;
pub use snmpsim::Snmpsim;
pub use wait::{wait_until, wait_until_async};

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
pub fn peer_tempdir(prefix: &str) -> tempfile::TempDir {
    let keep = std::env::var_os("EMSPOOL_TEST_KEEP").is_some();
    // snmpsim runs as `nobody`: every ancestor must be traversable by others.
    let base = std::env::temp_dir();
    let base = if world_traversable(&base) {
        base
    } else {
        PathBuf::from("/tmp")
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!("emspool-{prefix}-"))
        .disable_cleanup(keep)
        .tempdir_in(&base)
        .expect("create temp dir");
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

/// The last `lines` lines of a text file, or a note when it cannot be read.
pub fn file_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
