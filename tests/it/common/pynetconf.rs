//! A scriptable NETCONF server: PyPI `netconf` 2.1 (paramiko) running tests/it/common/ncserver.py
//! from the test venv, on a free loopback port. The test steers it through `state.json` (see
//! the script's docstring) and pushes notifications as files.

use super::{ChildGuard, TempDir, wait_until};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const PY_USER: &str = "admin";
pub const PY_PASSWORD: &str = "py-nc-pass";

pub struct PyNetconf {
    child: Option<ChildGuard>,
    port: u16,
    base10: bool,
    dir: TempDir,
}

/// The venv python with `netconf` and `paramiko<4` (tests/install-peers.sh).
pub fn python() -> PathBuf {
    let p = super::snmpsim::snmpsim_venv().join("bin/python");
    assert!(
        p.exists(),
        "{} missing: run tests/install-peers.sh",
        p.display()
    );
    p
}

impl PyNetconf {
    /// Starts the server with `state` (JSON); `base10` offers base:1.0 only.
    pub fn start(state: &serde_json::Value, base10: bool) -> PyNetconf {
        let dir = super::peer_tempdir("pync");
        let key = dir.path().join("hostkey");
        let out = Command::new(super::find_tool("ssh-keygen"))
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "ssh-keygen failed");
        let mut s = PyNetconf {
            child: None,
            port: 0,
            base10,
            dir,
        };
        s.set_state(state);
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let mut cmd = Command::new(python());
        if let Some(v) = std::env::var_os("NCSERVER_DEBUG") {
            cmd.env("NCSERVER_DEBUG", v);
        }
        cmd.arg(super::repo_root().join("tests/it/common/ncserver.py"))
            .arg(d)
            .arg(PY_USER)
            .arg(PY_PASSWORD)
            .arg(d.join("hostkey"));
        if self.base10 {
            cmd.arg("--base10");
        }
        let child = super::spawn("ncserver", cmd, d);
        let stdout = child.stdout_path().to_path_buf();
        self.child = Some(child);
        let port = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            let text = std::fs::read_to_string(&stdout).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("listening "))
                .and_then(|p| p.trim().parse::<u16>().ok())
        });
        match port {
            Ok(p) => self.port = p,
            Err(e) => panic!("ncserver.py did not start: {e}\n{}", self.log_tail()),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn host_public_key(&self) -> PathBuf {
        self.dir.path().join("hostkey.pub")
    }

    /// Replaces state.json atomically.
    pub fn set_state(&self, state: &serde_json::Value) {
        let tmp = self.dir.path().join("state.json.tmp");
        std::fs::write(&tmp, state.to_string()).expect("write state");
        std::fs::rename(&tmp, self.dir.path().join("state.json")).expect("rename state");
    }

    /// Queues a notification (a whole `<notification>` element) for subscribed sessions.
    pub fn notify(&self, name: &str, xml: &str) {
        let tmp = self.dir.path().join(format!("{name}.tmp"));
        std::fs::write(&tmp, xml).expect("write notification");
        std::fs::rename(&tmp, self.dir.path().join(format!("notify-{name}.xml")))
            .expect("rename notification");
    }

    /// `(distinct sessions that did a <get>, number of <get>s)`.
    pub fn stats(&self) -> (usize, u64) {
        let text = std::fs::read_to_string(self.dir.path().join("stats.json")).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        (
            v["sessions"].as_array().map_or(0, Vec::len),
            v["gets"].as_u64().unwrap_or(0),
        )
    }

    pub fn log_tail(&self) -> String {
        self.child
            .as_ref()
            .map(|c| c.log_tail())
            .unwrap_or_default()
    }
}
