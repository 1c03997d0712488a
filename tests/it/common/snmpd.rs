//! A private Net-SNMP agent (`snmpd`) on a free loopback UDP port.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::snmpcli::snmp_responds;
use super::{ChildGuard, SnmpAuth, TempDir, wait_until};

/// `snmpd -f` with its own config, persistent dir and log in a temp dir.
///
/// Answers v2c community [`Snmpd::COMMUNITY`] and v3 user [`Snmpd::V3_USER`] (authPriv,
/// SHA/AES). sysName is [`Snmpd::SYS_NAME`], sysLocation [`Snmpd::SYS_LOCATION`].
/// Killed on drop.
pub struct Snmpd {
    // Field order matters: the child is dropped (killed) before the temp dir is removed.
    child: Option<ChildGuard>,
    port: u16,
    starts: u32,
    config: PathBuf,
    dir: TempDir,
}

impl Snmpd {
    pub const COMMUNITY: &'static str = "public";
    pub const V3_USER: &'static str = "authuser";
    pub const V3_AUTH_PROTO: &'static str = "SHA";
    pub const V3_AUTH_PASS: &'static str = "authpass123";
    pub const V3_PRIV_PROTO: &'static str = "AES";
    pub const V3_PRIV_PASS: &'static str = "privpass123";
    pub const SYS_NAME: &'static str = "emspool-snmpd";
    pub const SYS_LOCATION: &'static str = "emspool-lab";
    pub const SYS_CONTACT: &'static str = "noc@emspool.test";
    /// sysName.0
    pub const OID_SYS_NAME: &'static str = "1.3.6.1.2.1.1.5.0";
    /// sysLocation.0
    pub const OID_SYS_LOCATION: &'static str = "1.3.6.1.2.1.1.6.0";

    /// Start on a free port and wait until it answers (panics after ~10 s with its log).
    pub fn start() -> Snmpd {
        Snmpd::start_with("")
    }

    /// Like [`Snmpd::start`], with extra snmpd.conf lines appended (e.g. `trap2sink ...`).
    pub fn start_with(extra_config: &str) -> Snmpd {
        let snmpd = super::find_tool("snmpd");
        let mut dir = super::peer_tempdir("snmpd");
        let config = dir.path().join("snmpd.conf");
        // A port can be taken between picking and binding; try a few.
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = super::free_port();
            std::fs::write(&config, Self::config_text(port, extra_config))
                .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
            let mut s = Snmpd {
                child: None,
                port,
                starts: 0,
                config: config.clone(),
                dir,
            };
            match s.launch(&snmpd) {
                Ok(()) => return s,
                Err(e) => {
                    last_err = e;
                    s.kill9();
                    Snmpd { dir, .. } = s;
                }
            }
        }
        panic!("snmpd did not start: {last_err}");
    }

    fn config_text(port: u16, extra: &str) -> String {
        format!(
            "agentAddress udp:127.0.0.1:{port}\n\
             rocommunity {community} 127.0.0.1\n\
             createUser {user} {ap} \"{apass}\" {pp} \"{ppass}\"\n\
             rouser {user} priv\n\
             sysName {name}\n\
             sysLocation {loc}\n\
             sysContact {contact}\n\
             {extra}\n",
            community = Self::COMMUNITY,
            user = Self::V3_USER,
            ap = Self::V3_AUTH_PROTO,
            apass = Self::V3_AUTH_PASS,
            pp = Self::V3_PRIV_PROTO,
            ppass = Self::V3_PRIV_PASS,
            name = Self::SYS_NAME,
            loc = Self::SYS_LOCATION,
            contact = Self::SYS_CONTACT,
        )
    }

    fn launch(&mut self, snmpd: &Path) -> Result<(), String> {
        self.starts += 1;
        let log = self.dir.path().join(format!("snmpd.{}.log", self.starts));
        let mut cmd = Command::new(snmpd);
        cmd.arg("-f") // foreground
            .arg("-C") // only our config file
            .arg("-c")
            .arg(&self.config)
            .arg(format!(
                "--persistentDir={}",
                self.dir.path().join("persist").display()
            ))
            .arg("-Lf")
            .arg(&log)
            .env("MIBS", "")
            .env("MIBDIRS", "/nonexistent");
        let mut child = super::spawn(&format!("snmpd.{}", self.starts), cmd, self.dir.path());
        child.add_log(&log);
        self.child = Some(child);
        let addr = self.addr();
        let mut died = None;
        let ready = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            let c = self.child.as_mut().expect("child");
            if let Some(st) = c.try_wait() {
                died = Some(st);
                return Some(false);
            }
            snmp_responds(addr, &self.v2c(), Self::OID_SYS_NAME).then_some(true)
        });
        match (ready, died) {
            (Ok(true), _) => Ok(()),
            (_, Some(st)) => Err(format!(
                "snmpd exited ({st}) on port {}\n{}",
                self.port,
                self.log_tail()
            )),
            (res, None) => Err(format!(
                "snmpd not answering on {addr}: {res:?}\n{}",
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

    /// The temp dir holding snmpd.conf, logs and the persistent dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// PID of the running agent (`None` when stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid())
    }

    /// The running agent's process (e.g. `.signal("STOP")` to make it hang, `"CONT"` after).
    pub fn child_mut(&mut self) -> Option<&mut ChildGuard> {
        self.child.as_mut()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.is_running())
    }

    /// v2c credentials (community `public`).
    pub fn v2c(&self) -> SnmpAuth {
        SnmpAuth::v2c(Self::COMMUNITY)
    }

    /// v3 authPriv credentials (authuser, SHA/AES).
    pub fn v3(&self) -> SnmpAuth {
        SnmpAuth::V3 {
            user: Self::V3_USER.into(),
            auth_proto: Self::V3_AUTH_PROTO.into(),
            auth_pass: Self::V3_AUTH_PASS.into(),
            priv_proto: Self::V3_PRIV_PROTO.into(),
            priv_pass: Self::V3_PRIV_PASS.into(),
        }
    }

    /// Stop the agent (SIGTERM, SIGKILL after 5 s) and wait until it is gone. The port then
    /// stays silent until [`Snmpd::restart`]. No-op when already stopped.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.terminate_within(Duration::from_secs(5));
        }
    }

    /// Kill -9 the agent (no clean shutdown) and wait until it is gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill9();
        }
    }

    /// Start again on the same port with the same config and persistent dir (stops it first
    /// if running). Panics when it does not come back within ~10 s.
    pub fn restart(&mut self) {
        self.stop();
        let snmpd = super::find_tool("snmpd");
        if let Err(e) = self.launch(&snmpd) {
            panic!("snmpd restart on port {} failed: {e}", self.port);
        }
    }

    /// Last lines of the current (or last) agent's output and log.
    pub fn log_tail(&self) -> String {
        match &self.child {
            Some(c) => c.log_tail(),
            None => {
                let log = self.dir.path().join(format!("snmpd.{}.log", self.starts));
                format!("--- snmpd (stopped) ---\n{}", super::file_tail(&log, 40))
            }
        }
    }
}
