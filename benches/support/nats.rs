//! A 3-node `nats-server` cluster with JetStream on loopback for benchmarks (own ports and
//! store dirs, killed by pid on drop), and stream counts read with async-nats.

use super::{Proc, TempDir, free_tcp_port, http_get};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct NatsCluster {
    pub nodes: Vec<Proc>,
    pub ports: Vec<u16>,
    _dir: TempDir,
}

impl NatsCluster {
    pub fn start(n: usize) -> NatsCluster {
        let dir = TempDir::new("nats");
        let ports: Vec<u16> = (0..n).map(|_| free_tcp_port()).collect();
        let routes: Vec<u16> = (0..n).map(|_| free_tcp_port()).collect();
        let monitors: Vec<u16> = (0..n).map(|_| free_tcp_port()).collect();
        let route_urls: Vec<String> = routes
            .iter()
            .map(|r| format!("nats://127.0.0.1:{r}"))
            .collect();
        let nodes = (0..n)
            .map(|i| {
                let mut cmd = Command::new("nats-server");
                cmd.args(["-a", "127.0.0.1", "-p", &ports[i].to_string(), "-js"])
                    .arg("-sd")
                    .arg(dir.0.join(format!("store{i}")))
                    .args(["-n", &format!("n{i}"), "--cluster_name", "emsp"])
                    .args([
                        "--cluster",
                        &route_urls[i],
                        "--routes",
                        &route_urls.join(","),
                    ])
                    .args(["-m", &monitors[i].to_string()]);
                Proc::spawn(
                    &format!("nats-{i}"),
                    cmd,
                    dir.0.join(format!("nats-{i}.log")),
                    false,
                )
            })
            .collect();
        let t0 = Instant::now();
        loop {
            let leaders: Vec<String> = monitors
                .iter()
                .map(|m| {
                    http_get(&format!("http://127.0.0.1:{m}/jsz"), Duration::from_secs(1))
                        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                        .and_then(|v| v["meta_cluster"]["leader"].as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .collect();
            if leaders.iter().all(|l| !l.is_empty() && *l == leaders[0]) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "NATS cluster did not form"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        NatsCluster {
            nodes,
            ports,
            _dir: dir,
        }
    }

    pub fn servers_toml(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("\"nats://127.0.0.1:{p}\""))
            .collect();
        format!("[{}]", urls.join(", "))
    }

    /// CPU seconds of all nodes so far.
    pub fn cpu_seconds(&self) -> f64 {
        self.nodes
            .iter()
            .filter_map(|p| super::cpu_seconds(p.pid))
            .sum()
    }

    /// Messages stored in `stream` (0 when it does not exist).
    pub async fn messages(&self, stream: &str) -> u64 {
        let addrs: Vec<async_nats::ServerAddr> = self
            .ports
            .iter()
            .filter_map(|p| format!("nats://127.0.0.1:{p}").parse().ok())
            .collect();
        let Ok(client) = async_nats::connect(addrs).await else {
            return 0;
        };
        let js = async_nats::jetstream::new(client);
        match js.get_stream(stream).await {
            Ok(mut s) => s.info().await.map_or(0, |i| i.state.messages),
            Err(_) => 0,
        }
    }
}
