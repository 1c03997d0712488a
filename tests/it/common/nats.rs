//! A NATS cluster with JetStream: `nats-server` processes on loopback, each with its own
//! client, route and monitoring port and store dir; stopped by PID when dropped. Nodes can be
//! killed and started again on the same ports and store (as a crashed server comes back).

use super::wait::wait_until;
use super::{ChildGuard, TempDir, free_port as free_tcp_port};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct NatsNode {
    pub name: String,
    pub port: u16,
    pub route_port: u16,
    pub monitor_port: u16,
    store: PathBuf,
    child: Option<ChildGuard>,
    starts: usize,
}

pub struct NatsCluster {
    pub dir: TempDir,
    pub nodes: Vec<NatsNode>,
    bin: PathBuf,
}

impl NatsCluster {
    /// Starts `n` clustered nodes and waits until JetStream has a meta leader.
    pub fn start(n: usize) -> NatsCluster {
        let bin = super::find_tool("nats-server");
        let dir = super::peer_tempdir("nats");
        let nodes = (0..n)
            .map(|i| NatsNode {
                name: format!("n{}", i + 1),
                port: free_tcp_port(),
                route_port: free_tcp_port(),
                monitor_port: free_tcp_port(),
                store: dir.path().join(format!("store{}", i + 1)),
                child: None,
                starts: 0,
            })
            .collect();
        let mut c = NatsCluster { dir, nodes, bin };
        for i in 0..n {
            c.start_node(i);
        }
        c.wait_ready();
        c
    }

    /// `nats://` URLs of every node, for `[events.jetstream] servers`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The TOML array of [`NatsCluster::urls`].
    pub fn servers_toml(&self) -> String {
        let quoted: Vec<String> = self.urls().iter().map(|u| format!("\"{u}\"")).collect();
        format!("[{}]", quoted.join(", "))
    }

    /// CPU seconds of the running nodes so far (for benchmarks).
    pub fn cpu_seconds(&self) -> f64 {
        self.nodes
            .iter()
            .filter_map(|n| n.child.as_ref())
            .filter_map(|c| ::emspool::testing::support::cpu_seconds(c.pid()))
            .sum()
    }

    /// Messages stored in `stream` (0 when it does not exist), from the stream's info.
    pub async fn messages(&self, stream: &str) -> u64 {
        let addrs: Vec<async_nats::ServerAddr> =
            self.urls().iter().filter_map(|u| u.parse().ok()).collect();
        let Ok(client) = async_nats::connect(addrs).await else {
            return 0;
        };
        let js = async_nats::jetstream::new(client);
        match js.get_stream(stream).await {
            Ok(mut s) => s.info().await.map_or(0, |i| i.state.messages),
            Err(_) => 0,
        }
    }

    pub fn start_node(&mut self, i: usize) {
        let routes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.route_port))
            .collect();
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "{} already running", node.name);
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-a", "127.0.0.1", "-p", &node.port.to_string(), "-js"])
            .arg("-sd")
            .arg(&node.store)
            .args(["-n", &node.name, "--cluster_name", "emsp"])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", node.route_port),
            ])
            .args(["--routes", &routes.join(",")])
            .args(["-m", &node.monitor_port.to_string()]);
        node.starts += 1;
        let name = format!("nats-{}-{}", node.name, node.starts);
        node.child = Some(super::spawn(&name, cmd, self.dir.path()));
        let url = format!("http://127.0.0.1:{}/varz", node.monitor_port);
        let name = node.name.clone();
        if let Err(e) = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            ureq::get(&url).call().ok().map(|_| ())
        }) {
            panic!("{name} did not start: {e}\n{}", self.log_tail());
        }
    }

    /// kill -9 of one node.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill9();
        }
    }

    pub fn kill_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                self.start_node(i);
            }
        }
        self.wait_ready();
    }

    /// Every running node sees the same JetStream meta leader.
    pub fn wait_ready(&self) {
        let ready = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
            let leaders: Vec<String> = self
                .nodes
                .iter()
                .filter(|n| n.child.is_some())
                .map(|n| {
                    let url = format!("http://127.0.0.1:{}/jsz", n.monitor_port);
                    ureq::get(&url)
                        .call()
                        .ok()
                        .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
                        .and_then(|v| v["meta_cluster"]["leader"].as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .collect();
            (!leaders.is_empty() && leaders.iter().all(|l| !l.is_empty() && *l == leaders[0]))
                .then_some(())
        });
        if let Err(e) = ready {
            panic!("JetStream cluster not ready: {e}\n{}", self.log_tail());
        }
    }

    pub fn log_tail(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| n.child.as_ref().map(|c| c.log_tail_lines(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One message of a stream as the test reads it.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    pub subject: String,
    pub msg_id: String,
    pub event: serde_json::Value,
}

/// Every message of `stream` matching `filter`, in stream order, read with an ephemeral
/// consumer through the first node that answers.
pub fn read_stream(urls: &[String], stream: &str, filter: &str) -> Vec<StreamMessage> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(90),
            read_stream_async(urls, stream, filter),
        )
        .await
        .unwrap_or_else(|_| panic!("reading stream {stream} ({filter}) took over 90 s"))
    })
}

async fn read_stream_async(urls: &[String], stream: &str, filter: &str) -> Vec<StreamMessage> {
    use async_nats::jetstream::consumer;
    use futures_util::StreamExt;
    let addrs: Vec<async_nats::ServerAddr> =
        urls.iter().map(|u| u.parse().expect("nats url")).collect();
    let client = async_nats::connect(addrs).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    // Right after a node loss the cluster may be electing leaders: a few tries, bounded.
    let mut c = None;
    for attempt in 0..30 {
        let made = async {
            let s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
            s.create_consumer(consumer::pull::Config {
                filter_subject: filter.to_owned(),
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
        };
        match made.await {
            Ok(made) => {
                c = Some(made);
                break;
            }
            Err(e) => {
                eprintln!("[nats] consumer on {stream} (try {attempt}): {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let c = c.unwrap_or_else(|| panic!("no consumer on {stream} after 30 tries"));
    let mut pending = c.cached_info().num_pending;
    let mut out = Vec::new();
    for _ in 0..100_000 {
        if pending == 0 {
            break;
        }
        let mut batch = c
            .fetch()
            .max_messages(1000)
            .messages()
            .await
            .expect("fetch");
        while let Some(m) = batch.next().await {
            let m = m.expect("message");
            pending = m.info().expect("info").pending;
            let msg_id = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.to_string())
                .unwrap_or_default();
            out.push(StreamMessage {
                subject: m.subject.to_string(),
                msg_id,
                event: serde_json::from_slice(&m.payload).expect("event JSON"),
            });
        }
    }
    out
}
