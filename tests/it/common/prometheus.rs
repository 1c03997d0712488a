//! A real Prometheus server (Debian's `prometheus` package) on loopback with a temp TSDB,
//! queried through its HTTP API. Installed by tests/install-peers.sh.

use super::wait::wait_until;
use super::{ChildGuard, free_port as free_tcp_port};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct Prometheus {
    pub url: String,
    pub dir: super::TempDir,
    child: ChildGuard,
}

/// The Prometheus binary: /usr/bin/prometheus, else `prometheus` on PATH.
pub fn binary() -> PathBuf {
    let deb = PathBuf::from("/usr/bin/prometheus");
    if deb.exists() {
        deb
    } else {
        super::find_tool("prometheus")
    }
}

/// promtool: `EMSPOOL_PROMTOOL`, else the one tests/install-peers.sh installs, else PATH.
pub fn promtool() -> PathBuf {
    if let Some(p) = std::env::var_os("EMSPOOL_PROMTOOL") {
        return PathBuf::from(p);
    }
    let opt = PathBuf::from("/opt/emspool-test/bin/promtool");
    if opt.exists() {
        opt
    } else {
        super::find_tool("promtool")
    }
}

/// The example scrape config (packaging/prometheus/emspool-scrape.yml) with the pool's URL
/// filled in and every interval set to `every` (whole seconds), under a `global` section.
pub fn example_config(pool_url: &str, every: Duration) -> String {
    let path = super::repo_root().join("packaging/prometheus/emspool-scrape.yml");
    let text = std::fs::read_to_string(&path).expect("read example scrape config");
    let secs = format!("{}s", every.as_secs().max(1));
    let placeholder = "http://emspool.example:8080";
    assert!(
        text.contains(placeholder),
        "{} no longer names {placeholder}",
        path.display()
    );
    let mut out = text.replace(placeholder, pool_url);
    for key in ["refresh_interval", "scrape_interval", "scrape_timeout"] {
        let mut lines = Vec::new();
        for line in out.lines() {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix(&format!("{key}:")) {
                let indent = &line[..line.len() - trimmed.len()];
                assert!(!rest.trim().is_empty(), "{key} without value");
                lines.push(format!("{indent}{key}: {secs}"));
            } else {
                lines.push(line.to_owned());
            }
        }
        out = lines.join("\n");
    }
    format!("global:\n  scrape_interval: {secs}\n  evaluation_interval: {secs}\n\n{out}\n")
}

impl Prometheus {
    /// Starts Prometheus with `config` (prometheus.yml text) and waits until it is ready.
    pub fn start(config: &str) -> Prometheus {
        let dir = super::peer_tempdir("prometheus");
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).expect("write prometheus.yml");
        let check = Command::new(promtool())
            .arg("check")
            .arg("config")
            .arg(&cfg)
            .output()
            .expect("run promtool check config");
        assert!(
            check.status.success(),
            "promtool check config: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let port = free_tcp_port();
        let mut cmd = Command::new(binary());
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1h")
            .arg("--log.level=warn");
        let child = super::spawn("prometheus", cmd, dir.path());
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            dir,
            child,
        };
        let ready = format!("{}/-/ready", p.url);
        wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
            ureq::get(&ready).call().ok().map(|_| ())
        })
        .unwrap_or_else(|e| panic!("prometheus not ready: {e}\n{}", p.child.log_tail()));
        p
    }

    pub fn log_tail(&self) -> String {
        self.child.log_tail()
    }

    fn api(&self, path: &str, params: &[(&str, String)]) -> Result<serde_json::Value, String> {
        let mut req = ureq::get(&format!("{}{path}", self.url))
            .config()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build();
        for (k, v) in params {
            req = req.query(k, v);
        }
        let mut resp = req.call().map_err(|e| format!("{path}: {e}"))?;
        let v: serde_json::Value = resp
            .body_mut()
            .read_json()
            .map_err(|e| format!("{path}: not JSON: {e}"))?;
        if v["status"] != "success" {
            return Err(format!("{path} {params:?}: {v}"));
        }
        Ok(v["data"].clone())
    }

    /// An instant query at `time` (Unix seconds; now when `None`): `data.result`.
    pub fn query(&self, q: &str, time: Option<f64>) -> Result<Vec<serde_json::Value>, String> {
        let mut params = vec![("query", q.to_owned())];
        if let Some(t) = time {
            params.push(("time", format!("{t:.3}")));
        }
        let d = self.api("/api/v1/query", &params)?;
        d["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no result array in {d}"))
    }

    /// A range query: `data.result` (a matrix).
    pub fn query_range(
        &self,
        q: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Vec<serde_json::Value>, String> {
        let params = [
            ("query", q.to_owned()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
            ("step", format!("{step}")),
        ];
        let d = self.api("/api/v1/query_range", &params)?;
        d["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no result array in {d}"))
    }

    /// The active scrape targets: (job, scrape URL, health).
    pub fn targets(&self) -> Vec<(String, String, String)> {
        let Ok(d) = self.api("/api/v1/targets", &[("state", "active".into())]) else {
            return Vec::new();
        };
        d["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let s = |k: &str| t[k].as_str().unwrap_or("").to_owned();
                (
                    t["labels"]["job"].as_str().unwrap_or("").to_owned(),
                    s("scrapeUrl"),
                    s("health"),
                )
            })
            .collect()
    }
}

/// `(timestamp seconds, value)` pairs of a matrix result's series.
pub fn samples(series: &serde_json::Value) -> Vec<(f64, f64)> {
    series["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let t = p[0].as_f64()?;
            let v: f64 = p[1].as_str()?.parse().ok()?;
            Some((t, v))
        })
        .collect()
}

/// The value of an instant-vector sample.
pub fn value(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}
