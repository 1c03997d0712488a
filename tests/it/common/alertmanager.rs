//! Real Prometheus Alertmanagers (Debian's `prometheus-alertmanager`) clustered with each other
//! on loopback, read through their API v2. Installed by tests/install-peers.sh.

use super::wait::wait_until;
use super::{ChildGuard, TempDir, free_port};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Every notification goes nowhere: the tests read the alerts, not notifications.
const CONFIG: &str = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n";

pub struct Alertmanager {
    pub url: String,
    port: u16,
    cluster_port: u16,
    peers: Vec<u16>,
    dir: TempDir,
    child: Option<ChildGuard>,
}

pub fn binary() -> PathBuf {
    let deb = PathBuf::from("/usr/bin/prometheus-alertmanager");
    if deb.exists() {
        deb
    } else {
        super::find_tool("alertmanager")
    }
}

/// `n` replicas gossiping with each other, all ready.
pub fn cluster(n: usize) -> Vec<Alertmanager> {
    let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let mut ams: Vec<Alertmanager> = cluster_ports
        .iter()
        .map(|&c| {
            let dir = super::peer_tempdir("alertmanager");
            std::fs::write(dir.path().join("alertmanager.yml"), CONFIG).expect("write config");
            let port = free_port();
            Alertmanager {
                url: format!("http://127.0.0.1:{port}"),
                port,
                cluster_port: c,
                peers: cluster_ports.clone(),
                dir,
                child: None,
            }
        })
        .collect();
    for am in &mut ams {
        am.start();
    }
    ams
}

impl Alertmanager {
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = Command::new(binary());
        cmd.arg(format!(
            "--config.file={}",
            self.dir.path().join("alertmanager.yml").display()
        ))
        .arg(format!(
            "--storage.path={}",
            self.dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
        .arg(format!(
            "--cluster.listen-address=127.0.0.1:{}",
            self.cluster_port
        ))
        .arg("--cluster.advertise-address=127.0.0.1:".to_owned() + &self.cluster_port.to_string())
        .arg("--log.level=warn");
        for p in &self.peers {
            cmd.arg(format!("--cluster.peer=127.0.0.1:{p}"));
        }
        let child = super::spawn("alertmanager", cmd, self.dir.path());
        self.child = Some(child);
        let ready = format!("{}/-/ready", self.url);
        wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
            ureq::get(&ready).call().ok().map(|_| ())
        })
        .unwrap_or_else(|e| panic!("alertmanager not ready: {e}\n{}", self.log_tail()));
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill9();
        }
    }

    pub fn log_tail(&self) -> String {
        self.child
            .as_ref()
            .map(|c| c.log_tail())
            .unwrap_or_else(|| "(not running)".into())
    }

    /// Every alert the replica holds (`GET /api/v2/alerts`: active, silenced, inhibited,
    /// unprocessed; not those whose `endsAt` passed).
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        let url = format!("{}/api/v2/alerts", self.url);
        let mut resp = ureq::get(&url)
            .config()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .call()
            .map_err(|e| format!("{url}: {e}"))?;
        let v: Value = resp
            .body_mut()
            .read_json()
            .map_err(|e| format!("{url}: not JSON: {e}"))?;
        v.as_array()
            .cloned()
            .ok_or_else(|| format!("{url}: not a list: {v}"))
    }

    /// The alert whose `alarm_key` label is `key`, if the replica holds it.
    pub fn alert(&self, key: &str) -> Option<Value> {
        self.alerts()
            .ok()?
            .into_iter()
            .find(|a| a["labels"]["alarm_key"] == key)
    }
}
