//! snmpsim (`snmpsim-command-responder`, PyPI) simulating many devices on one UDP port.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::snmpcli::snmp_responds;
use super::{ChildGuard, SnmpAuth, TempDir, wait_until};

/// Where tests/install-peers.sh puts the snmpsim venv (override: `EMSPOOL_TEST_VENV`).
pub fn snmpsim_venv() -> PathBuf {
    std::env::var_os("EMSPOOL_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/emspool-test/venv"))
}

/// One snmpsim process answering for N devices, each a copy (hard link) of one `.snmprec`
/// template; the v2c community of device i (1-based) is `dev{i:04}` (wider past 9999).
/// Killed on drop.
pub struct Snmpsim {
    // Field order: the child is killed before the temp dir is removed.
    child: Option<ChildGuard>,
    port: u16,
    communities: Vec<String>,
    dir: TempDir,
}

impl Snmpsim {
    /// sysName.0
    pub const OID_SYS_NAME: &'static str = "1.3.6.1.2.1.1.5.0";

    /// The 24-port router template shipped in tests/data.
    pub fn router24_template() -> PathBuf {
        super::test_data("router24.snmprec")
    }

    /// Start with `devices` devices copied from `template` and wait until the last one
    /// answers (snmpsim indexes every file first: ~24 s per 1,000 devices). Panics with
    /// the log after a bounded wait (60 s + 50 ms per device).
    pub fn start(devices: usize, template: &Path) -> Snmpsim {
        assert!(devices >= 1, "snmpsim needs at least one device");
        let responder = snmpsim_venv().join("bin/snmpsim-command-responder");
        assert!(
            responder.is_file(),
            "{} missing: run tests/install-peers.sh",
            responder.display()
        );
        let dir = super::peer_tempdir("snmpsim");
        let data = dir.path().join("data");
        let cache = dir.path().join("cache");
        for d in [&data, &cache] {
            std::fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            super::set_mode(d, 0o755);
        }
        // Hard links need one filesystem: link to a private copy, not the template itself
        // (the repo may sit on another filesystem than the temp dir). Symlinks would not do:
        // snmpsim resolves them and takes the community from the target's name.
        let master = dir.path().join("template.snmprec");
        std::fs::copy(template, &master)
            .unwrap_or_else(|e| panic!("copy {}: {e}", template.display()));
        super::set_mode(&master, 0o644);
        let width = devices.to_string().len().max(4);
        let communities: Vec<String> = (1..=devices).map(|i| format!("dev{i:0width$}")).collect();
        for c in &communities {
            let f = data.join(format!("{c}.snmprec"));
            std::fs::hard_link(&master, &f).unwrap_or_else(|e| panic!("link {}: {e}", f.display()));
        }
        let root = super::is_root();
        if root {
            // As root snmpsim drops to nobody, which must own the cache dir.
            let st = Command::new("chown")
                .args(["nobody:nogroup"])
                .arg(&cache)
                .status();
            assert!(
                st.is_ok_and(|s| s.success()),
                "chown nobody {}",
                cache.display()
            );
        }
        let mut last_err = String::new();
        let mut s = Snmpsim {
            child: None,
            port: 0,
            communities,
            dir,
        };
        let wait = Duration::from_secs(60) + Duration::from_millis(50) * devices as u32;
        for _ in 0..3 {
            s.port = super::free_port();
            let mut cmd = Command::new(&responder);
            cmd.arg(format!("--data-dir={}", data.display()))
                .arg(format!("--cache-dir={}", cache.display()))
                .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{}", s.port))
                .arg("--logging-method=null");
            if root {
                cmd.args(["--process-user=nobody", "--process-group=nogroup"]);
            }
            s.child = Some(super::spawn("snmpsim", cmd, s.dir.path()));
            match s.wait_ready(wait) {
                Ok(()) => return s,
                Err(e) => {
                    last_err = e;
                    if let Some(mut c) = s.child.take() {
                        c.kill9();
                    }
                    // Start over with an empty cache (a half-built index is not reused).
                    clear_dir(&cache);
                }
            }
        }
        panic!("snmpsim did not start: {last_err}");
    }

    fn wait_ready(&mut self, wait: Duration) -> Result<(), String> {
        let addr = self.addr();
        let last = SnmpAuth::v2c(self.communities.last().expect("devices"));
        let mut died = None;
        let res = wait_until(wait, Duration::from_millis(200), || {
            let c = self.child.as_mut().expect("child");
            if let Some(st) = c.try_wait() {
                died = Some(st);
                return Some(false);
            }
            snmp_responds(addr, &last, Self::OID_SYS_NAME).then_some(true)
        });
        match (res, died) {
            (Ok(true), _) => Ok(()),
            (_, Some(st)) => Err(format!(
                "snmpsim exited ({st}) on port {}\n{}",
                self.port,
                self.log_tail()
            )),
            (res, None) => Err(format!(
                "snmpsim not answering for {last:?} on {addr}: {res:?}\n{}",
                self.log_tail()
            )),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Device communities in order: `dev0001`, `dev0002`, ...
    pub fn communities(&self) -> Vec<String> {
        self.communities.clone()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid())
    }

    pub fn child_mut(&mut self) -> Option<&mut ChildGuard> {
        self.child.as_mut()
    }

    /// Stop it (SIGTERM, SIGKILL after 5 s) and wait until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.terminate_within(Duration::from_secs(5));
        }
    }

    pub fn log_tail(&self) -> String {
        self.child
            .as_ref()
            .map(|c| c.log_tail())
            .unwrap_or_else(|| "--- snmpsim (stopped) ---".into())
    }
}

fn clear_dir(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
