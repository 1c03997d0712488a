//! `emspool serve` processes for integration tests: config in a temp dir, HTTP helpers.

use super::free_port;
use super::wait::wait_until;
use super::{ChildGuard, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// One server process with its own data dir; dropped -> stopped.
pub struct Emspool {
    pub dir: TempDir,
    pub url: String,
    pub port: u16,
    /// The loopback address it listens on (127.0.0.1 unless [`Emspool::configure_at`]).
    pub host: String,
    id: u32,
    config: PathBuf,
    child: Option<ChildGuard>,
    starts: usize,
    /// For an HTTPS server: curl's TLS arguments (`--cacert`, `--cert`, `--key`) to reach it.
    curl_tls: Option<Vec<String>>,
    /// Environment set (`Some`) or removed (`None`) for the process, in order.
    env: Vec<(String, Option<String>)>,
    /// Soft and hard open-file limit of the process (through util-linux `prlimit`).
    nofile: Option<u64>,
}

impl Emspool {
    /// `body` is the config after the `[server]` table (credentials, elements, poll...).
    pub fn start(id: u32, body: &str) -> Emspool {
        let mut e = Emspool::configure(id, free_port(), body);
        e.spawn();
        e
    }

    /// Writes the config but does not start the process (see [`Emspool::spawn`]).
    pub fn configure(id: u32, port: u16, body: &str) -> Emspool {
        Emspool::configure_at(id, "127.0.0.1", port, body)
    }

    /// [`Emspool::configure`] listening on another loopback address (`127.A.B.C`), so that a
    /// test can drop this server's packets in the kernel (`faults::Cut`).
    pub fn configure_at(id: u32, host: &str, port: u16, body: &str) -> Emspool {
        let dir = super::peer_tempdir("emspool");
        let config = dir.path().join("emspool.toml");
        let e = Emspool {
            dir,
            url: format!("http://{host}:{port}"),
            port,
            host: host.to_owned(),
            id,
            config,
            child: None,
            starts: 0,
            curl_tls: None,
            env: Vec::new(),
            nofile: None,
        };
        e.rewrite_config(&format!("log_level = \"info,emspool=debug\"\n\n{body}"));
        e
    }

    /// Like [`Emspool::configure`] for a server that serves HTTPS (its `body` sets
    /// `tls_cert`...); `curl_tls` are the curl arguments its readiness check connects with.
    pub fn configure_https(id: u32, port: u16, body: &str, curl_tls: Vec<String>) -> Emspool {
        let mut e = Emspool::configure(id, port, body);
        e.url = format!("https://{}:{port}", e.host);
        e.curl_tls = Some(curl_tls);
        e
    }

    /// Rewrites the config file: the same `[server]` id, listen and data_dir, then `rest`
    /// (more `[server]` keys first if wanted, then the other tables). The running process
    /// sees it on SIGHUP or restart.
    pub fn rewrite_config(&self, rest: &str) {
        let text = format!(
            "[server]\nid = {}\nlisten = \"{}:{}\"\ndata_dir = \"{}\"\n{rest}\n",
            self.id,
            self.host,
            self.port,
            self.dir.path().join("data").display()
        );
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Sets (`Some`) or removes (`None`) a variable of the process's environment from the next
    /// start on, e.g. `RUST_LOG`, which would override the configured `log_level`.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.push((key.to_owned(), value.map(str::to_owned)));
    }

    /// Starts the process (from the next start on) with this open-file limit, soft and hard,
    /// so that the server cannot raise it: for tests of what happens when descriptors run out.
    pub fn set_nofile_limit(&mut self, n: u64) {
        self.nofile = Some(n);
    }

    /// The running process's PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid())
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Sends a signal (`"HUP"`, ...) to the running process; false when it is not running.
    pub fn signal(&mut self, sig: &str) -> bool {
        self.child.as_mut().is_some_and(|c| c.signal(sig))
    }

    /// The running process's stderr log file.
    pub fn stderr_path(&self) -> Option<PathBuf> {
        self.child.as_ref().map(|c| c.stderr_path().to_owned())
    }

    /// Whether the process is still alive (reaps it when it has exited).
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.is_running())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// kill -9: no shutdown at all, as in a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill9();
        }
    }

    /// Starts the process and waits until it answers `/readyz`.
    pub fn spawn(&mut self) {
        // prlimit sets the limit and execs emspool: the PID stays the server's.
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut c = Command::new(super::find_tool("prlimit"));
                c.arg(format!("--nofile={n}:{n}")).arg(super::emspool_bin());
                c
            }
            None => Command::new(super::emspool_bin()),
        };
        cmd.arg("serve").arg("--config").arg(&self.config);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        self.starts += 1;
        let name = format!("emspool-{}", self.starts);
        self.child = Some(super::spawn(&name, cmd, self.dir.path()));
        let url = format!("{}/readyz", self.url);
        let ready = wait_until(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || match &self.curl_tls {
                Some(tls) => {
                    let out = Command::new("curl")
                        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2"])
                        .args(tls)
                        .arg(&url)
                        .output()
                        .ok()?;
                    (out.stdout == b"200").then_some(())
                }
                None => ureq::get(&url).call().ok().map(|_| ()),
            },
        );
        if let Err(e) = ready {
            panic!("emspool did not become ready: {e}\n{}", self.log_tail());
        }
    }

    pub fn log_tail(&self) -> String {
        self.child
            .as_ref()
            .map(|c| c.log_tail())
            .unwrap_or_default()
    }

    /// SIGTERM; returns the exit status (a clean shutdown exits 0).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        c.terminate()
    }

    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let st = c.terminate();
            assert!(st.success(), "emspool exit status {st:?}\n{}", c.log_tail());
        }
        self.spawn();
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.url);
        let mut resp = ureq::get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}\n{}", self.log_tail()));
        resp.body_mut()
            .with_config()
            .limit(512 << 20)
            .read_json()
            .expect("JSON body")
    }

    /// Status code and body, for requests expected to fail.
    pub fn raw(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let url = format!("{}{path}", self.url);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let resp = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("POST", Some(b)) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(b),
            ("POST", None) => agent.post(&url).send_empty(),
            ("PUT", Some(b)) => agent
                .put(&url)
                .header("content-type", "application/json")
                .send(b),
            ("DELETE", _) => agent.delete(&url).call(),
            _ => panic!("method {method}"),
        };
        let mut r = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }

    /// Runs an `emspool` client command against this server; returns stdout, panics on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(super::emspool_bin())
            .args(args)
            .arg("--server")
            .arg(&self.url)
            .output()
            .expect("run emspool client");
        assert!(
            out.status.success(),
            "emspool {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The element's JSON view, or None while it is unknown to the server.
    pub fn element(&self, name: &str) -> Option<serde_json::Value> {
        let url = format!("{}/api/v1/elements/{name}", self.url);
        let mut r = ureq::get(&url).call().ok()?;
        r.body_mut().read_json().ok()
    }

    pub fn state(&self, name: &str) -> Option<String> {
        self.element(name)
            .and_then(|v| v["status"]["state"].as_str().map(str::to_owned))
    }

    pub fn alarms(&self) -> Vec<serde_json::Value> {
        super::json_array(&self.get("/api/v1/alarms"), "alarms")
    }

    /// The active alarm with reduction key `key` in this server's pool-wide answer.
    pub fn alarm(&self, key: &str) -> Option<serde_json::Value> {
        super::json_array(&self.get("/api/v1/alarms?limit=100000"), "alarms")
            .into_iter()
            .find(|a| a["key"] == key)
    }

    /// Acknowledges alarm `id` as `by` through this server; the status and body of the answer.
    pub fn ack(&self, id: u64, by: &str) -> (u16, String) {
        let body = serde_json::json!({ "by": by }).to_string();
        self.raw("POST", &format!("/api/v1/alarms/{id}/ack"), Some(&body))
    }

    pub fn events(&self, query: &str) -> Vec<serde_json::Value> {
        super::json_array(&self.get(&format!("/api/v1/events?{query}")), "events")
    }
}
