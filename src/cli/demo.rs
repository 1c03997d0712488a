//! `emspool demo`: the product on its embedded default, with nothing installed but this binary.
//!
//! Simulated SNMP agents run in this process (with link flaps and outages, so alarms come and
//! go); a pool of `emspool serve` processes (children of this one, the same binary) polls them.
//! Every few seconds a summary of the pool is printed from the servers' HTTP API. Killing a
//! server (e.g. the master, whose pid is shown) shows fail-over live. SIGINT/SIGTERM, or the end
//! of `--duration`, stops the children (SIGTERM, then SIGKILL after a grace period), the
//! simulator, and removes the temporary directory.

use crate::cluster::PoolView;
use crate::model::{Alarm, ElementState, ElementView, Event, Severity, format_millis};
use crate::sim::{Dataset, FlapSchedule, OutageSchedule, SimConfig, SimHandle};
use crate::support::{TempDir, file_tail, free_port, signal_pid};
use anyhow::{Context, bail};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Arguments of `emspool demo`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// Simulated SNMP agents (network elements)
    #[arg(long, default_value_t = 50)]
    pub(crate) agents: usize,
    /// emspool servers in the pool (ids 1..=N; the highest id is master while alive)
    #[arg(long, default_value_t = 3)]
    pub(crate) servers: u32,
    /// How often the summary is printed
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) interval: Duration,
    /// How often each element is polled
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) poll_interval: Duration,
    /// Stop after this long and exit 0 [default: run until Ctrl-C]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Every --flap-agents'th agent takes ifIndex 1 down for the last --flap-for of every period
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) flap_every: Duration,
    /// How long the flapping link stays down (the end of each --flap-every period)
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub(crate) flap_for: Duration,
    /// Which agents flap: every Nth (0, N, 2N...)
    #[arg(long, default_value_t = 5)]
    pub(crate) flap_agents: usize,
    /// Every --outage-agents'th agent stops answering for the last --outage-for of every period
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    pub(crate) outage_every: Duration,
    /// How long the outage lasts (the end of each --outage-every period)
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) outage_for: Duration,
    /// Which agents go silent: every Nth (0, N, 2N...)
    #[arg(long, default_value_t = 10)]
    pub(crate) outage_agents: usize,
    /// Restart a server that died (e.g. was killed) after this delay [default: leave it dead]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) restart_killed: Option<Duration>,
    /// Keep the temporary directory (configs, data, logs) on exit
    #[arg(long)]
    pub(crate) keep: bool,
}

/// Grace between SIGTERM and SIGKILL when stopping the servers.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Per HTTP request of the summary.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the demo until `shutdown` resolves or `--duration` has passed.
pub(crate) async fn run(args: DemoArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    validate(&args)?;
    let dir = TempDir::new("demo")
        .context("cannot create a temporary directory")?
        .keep(args.keep);
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let sim = start_simulator(&args).await?;
    let ports = (0..args.servers)
        .map(|_| free_port())
        .collect::<Result<Vec<u16>, _>>()
        .context("cannot find free TCP ports on 127.0.0.1")?;
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let secret = format!("demo-{:016x}", rand::random::<u64>());
    let mut servers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let id = i as u32 + 1;
        let config = dir.path().join(format!("s{id}.toml"));
        let text = server_config(id, *port, dir.path(), &args, &sim, &urls, &secret);
        std::fs::write(&config, text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        servers.push(Server {
            id,
            url: urls[i].clone(),
            config,
            log: dir.path().join(format!("s{id}.log")),
            child: None,
            pid: 0,
            died_at: None,
            starts: 0,
        });
    }
    crate::tls::init();
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .no_proxy()
        .build()
        .context("HTTP client")?;

    let mut demo = Demo {
        args,
        exe,
        sim,
        servers,
        http,
        started_ms: crate::model::now_millis(),
        started: Instant::now(),
    };
    let result = demo.drive(shutdown).await;
    demo.stop().await;
    let Demo { sim, args, .. } = demo;
    sim.shutdown().await;
    if args.keep {
        println!("kept {}", dir.path().display());
    }
    drop(dir);
    println!("demo stopped");
    result
}

fn validate(args: &DemoArgs) -> anyhow::Result<()> {
    if !(1..=20_000).contains(&args.agents) {
        bail!("--agents must be 1..=20000");
    }
    if !(1..=9).contains(&args.servers) {
        bail!("--servers must be 1..=9");
    }
    if args.poll_interval < Duration::from_secs(1) {
        bail!("--poll-interval must be at least 1s");
    }
    if args.interval < Duration::from_millis(500) {
        bail!("--interval must be at least 500ms");
    }
    Ok(())
}

struct Server {
    id: u32,
    url: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    pid: u32,
    died_at: Option<Instant>,
    starts: u32,
}

struct Demo {
    args: DemoArgs,
    exe: PathBuf,
    sim: SimHandle,
    servers: Vec<Server>,
    http: reqwest::Client,
    started_ms: i64,
    started: Instant,
}

impl Demo {
    async fn drive(&mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let deadline = self.args.duration.map(|d| self.started + d);
        let until_end = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until_end);
        let startup = async {
            for i in 0..self.servers.len() {
                self.spawn(i)?;
            }
            for i in 0..self.servers.len() {
                self.wait_ready(i).await?;
            }
            anyhow::Ok(())
        };
        tokio::select! {
            r = startup => r?,
            _ = &mut shutdown => return Ok(()),
            _ = &mut until_end => return Ok(()),
        }
        self.banner();
        let mut tick = tokio::time::interval(self.args.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut shutdown => {
                    println!("signal received: stopping");
                    return Ok(());
                }
                _ = &mut until_end => {
                    println!("--duration reached: stopping");
                    return Ok(());
                }
            }
            self.reap();
            self.restart_dead()?;
            let summary = self.summary().await;
            print!("{summary}");
        }
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let s = &mut self.servers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)
            .with_context(|| format!("cannot open {}", s.log.display()))?;
        let err = log.try_clone().context("log file")?;
        let child = Command::new(&self.exe)
            .arg("serve")
            .arg("--config")
            .arg(&s.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} serve", self.exe.display()))?;
        s.pid = child.id().unwrap_or(0);
        s.child = Some(child);
        s.died_at = None;
        s.starts += 1;
        Ok(())
    }

    async fn wait_ready(&mut self, i: usize) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.servers[i].url);
        let t0 = Instant::now();
        while t0.elapsed() < READY_TIMEOUT {
            if let Some(child) = self.servers[i].child.as_mut()
                && let Ok(Some(st)) = child.try_wait()
            {
                bail!(
                    "server {} exited at start ({st}); its log:\n{}",
                    self.servers[i].id,
                    file_tail(&self.servers[i].log, 20)
                );
            }
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "server {} not ready within {READY_TIMEOUT:?}; its log:\n{}",
            self.servers[i].id,
            file_tail(&self.servers[i].log, 20)
        )
    }

    /// Notices servers that exited (killed by the user, crashed).
    fn reap(&mut self) {
        for s in &mut self.servers {
            let Some(child) = s.child.as_mut() else {
                continue;
            };
            if let Ok(Some(st)) = child.try_wait() {
                println!(
                    "*** server {} (pid {}) exited: {st}{}",
                    s.id,
                    s.pid,
                    match self.args.restart_killed {
                        Some(d) => format!("; restarting it in {}", humantime::format_duration(d)),
                        None => String::new(),
                    }
                );
                s.child = None;
                s.died_at = Some(Instant::now());
            }
        }
    }

    fn restart_dead(&mut self) -> anyhow::Result<()> {
        let Some(after) = self.args.restart_killed else {
            return Ok(());
        };
        for i in 0..self.servers.len() {
            let s = &self.servers[i];
            if s.child.is_none() && s.died_at.is_some_and(|t| t.elapsed() >= after) {
                self.spawn(i)?;
                let s = &self.servers[i];
                println!("*** server {} restarted (pid {})", s.id, s.pid);
            }
        }
        Ok(())
    }

    fn banner(&self) {
        let n = self.sim.agents();
        let first = self.sim.addr(0).map(|a| a.to_string()).unwrap_or_default();
        let last = self
            .sim
            .addr(n - 1)
            .map(|a| a.port().to_string())
            .unwrap_or_default();
        let a = &self.args;
        let exe = self.exe.display();
        let all: Vec<&str> = self.servers.iter().map(|s| s.url.as_str()).collect();
        let all = all.join(",");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "emspool demo: {n} simulated SNMP agents on udp {first} .. port {last} (v2c, community public)"
        );
        let _ = writeln!(
            out,
            "  link flaps: every {}th agent's ifIndex 1 is down for the last {} of every {} (LinkDown)",
            a.flap_agents,
            humantime::format_duration(a.flap_for),
            humantime::format_duration(a.flap_every)
        );
        let _ = writeln!(
            out,
            "  outages:    every {}th agent is silent for the last {} of every {} (NodeDown, then Reboot)",
            a.outage_agents,
            humantime::format_duration(a.outage_for),
            humantime::format_duration(a.outage_every)
        );
        let _ = writeln!(
            out,
            "pool of {} servers polling every {} (the highest live id is master):",
            self.servers.len(),
            humantime::format_duration(a.poll_interval)
        );
        for s in &self.servers {
            let _ = writeln!(
                out,
                "  server {}  {}  pid {}  config {}  log {}",
                s.id,
                s.url,
                s.pid,
                s.config.display(),
                s.log.display()
            );
        }
        let _ = writeln!(
            out,
            "web console: {}/ (served by every server)",
            self.servers[0].url
        );
        let _ = writeln!(out, "try, in another terminal:");
        for cmd in [
            "status",
            "view",
            "elements",
            "alarms",
            "events --limit 20",
            "alarms --output json",
        ] {
            let _ = writeln!(out, "  {exe} {cmd} --server {all}");
        }
        let _ = writeln!(out, "  curl {}/metrics", self.servers[0].url);
        let _ = writeln!(
            out,
            "kill the master (its pid is in every summary) and watch the pool elect a new one and rebalance:"
        );
        if let Some(m) = self.servers.last() {
            let _ = writeln!(out, "  kill -9 {}", m.pid);
        }
        let _ = writeln!(
            out,
            "Ctrl-C stops the demo (servers, agents) and removes its temporary directory."
        );
        print!("{out}");
    }

    async fn summary(&self) -> String {
        let mut set = tokio::task::JoinSet::new();
        for s in self.servers.iter().filter(|s| s.child.is_some()) {
            set.spawn(fetch(self.http.clone(), s.url.clone(), self.started_ms));
        }
        let mut snaps = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(snap) = r {
                snaps.push(snap);
            }
        }
        let mut out = String::new();
        let secs = self.started.elapsed().as_secs();
        let views: Vec<&PoolView> = snaps.iter().filter_map(|s| s.pool.as_ref()).collect();
        // The master's own view is the authority; else any answer.
        let view = views
            .iter()
            .find(|v| v.master == Some(v.server))
            .or_else(|| views.first())
            .copied();
        let master = view.and_then(|v| v.master).map(|m| m.0);
        let master_text = match (master, view) {
            (Some(m), Some(v)) => {
                let pid = self
                    .servers
                    .iter()
                    .find(|s| s.id == m && s.child.is_some())
                    .map_or("?".to_owned(), |s| s.pid.to_string());
                format!(
                    "master: server {m} (pid {pid}), term {}",
                    crate::cluster::election::term_text(v.term)
                )
            }
            _ => "master: none (election in progress)".to_owned(),
        };
        let _ = writeln!(
            out,
            "--- t+{:02}:{:02}  {master_text} ---",
            secs / 60,
            secs % 60
        );
        let mut line = String::from("  servers: ");
        for s in &self.servers {
            let member = view.and_then(|v| v.members.iter().find(|m| m.id.0 == s.id));
            let state = match (&s.child, member) {
                (None, _) => "exited",
                (Some(_), Some(m)) if m.alive => "alive",
                (Some(_), Some(_)) => "not-seen",
                (Some(_), None) => "?",
            };
            let role = if Some(s.id) == master { " master" } else { "" };
            let n = member.map_or(0, |m| m.elements);
            let _ = write!(line, " [{} {state}{role} pid {} {n} NEs]", s.id, s.pid);
        }
        let _ = writeln!(out, "{line}");

        // Deduplicated by name: a pool-wide answer lists every element on every server.
        let mut by_name: HashMap<&str, &ElementView> = HashMap::new();
        for e in snaps.iter().flat_map(|s| &s.elements) {
            match by_name.get(&*e.element.name) {
                Some(old) if old.status.last_poll >= e.status.last_poll => {}
                _ => {
                    by_name.insert(&e.element.name, e);
                }
            }
        }
        let count = |st: ElementState| by_name.values().filter(|e| e.status.state == st).count();
        let _ = writeln!(
            out,
            "  elements: {} of {} assigned: {} up, {} down, {} unknown",
            by_name.len(),
            self.sim.agents(),
            count(ElementState::Up),
            count(ElementState::Down),
            count(ElementState::Unknown)
        );

        // Keyed by reduction key: an element has one owner, so one active alarm per key.
        let mut active: HashMap<&str, &Alarm> = HashMap::new();
        for a in snaps.iter().flat_map(|s| &s.alarms) {
            active.insert(&a.key, a);
        }
        let mut by_sev: BTreeMap<Severity, usize> = BTreeMap::new();
        for a in active.values() {
            *by_sev.entry(a.severity).or_default() += 1;
        }
        let sev: Vec<String> = Severity::ALARM_LEVELS
            .iter()
            .map(|s| (s, by_sev.get(s).copied().unwrap_or(0)))
            .filter(|(s, n)| *n > 0 || **s != Severity::Indeterminate)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let mut seen: HashMap<(u32, u64), &Event> = HashMap::new();
        for e in snaps.iter().flat_map(|s| &s.alarm_events) {
            seen.insert((e.server.0, e.id), e);
        }
        let raised = seen.values().filter(|e| e.kind == "alarm.raised").count();
        let cleared = seen.values().filter(|e| e.kind == "alarm.cleared").count();
        let _ = writeln!(
            out,
            "  alarms:   {} active ({}); since start {raised} raised, {cleared} cleared",
            active.len(),
            sev.join(", ")
        );

        let mut events: HashMap<(u32, u64), &Event> = HashMap::new();
        for e in snaps.iter().flat_map(|s| &s.recent) {
            events.insert((e.server.0, e.id), e);
        }
        let mut events: Vec<&Event> = events.into_values().collect();
        events.sort_by_key(|e| std::cmp::Reverse((e.ts, e.server, e.id)));
        events.truncate(5);
        let _ = writeln!(out, "  recent events:");
        for e in events {
            let _ = writeln!(
                out,
                "    {}  server {}  {:<9} {:<14} {:<9} {}",
                format_millis(e.ts),
                e.server,
                e.element.as_deref().unwrap_or("-"),
                e.kind,
                e.severity,
                e.text
            );
        }
        out
    }

    /// SIGTERM to every live server, then wait; SIGKILL whoever outlives the grace period.
    async fn stop(&mut self) {
        for s in &mut self.servers {
            if let Some(child) = s.child.as_mut()
                && matches!(child.try_wait(), Ok(None))
            {
                signal_pid(s.pid, "TERM");
            }
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for s in &mut self.servers {
            let Some(mut child) = s.child.take() else {
                continue;
            };
            match tokio::time::timeout_at(deadline, child.wait()).await {
                Ok(Ok(st)) if st.success() => {}
                Ok(Ok(st)) => println!("server {} (pid {}) exited: {st}", s.id, s.pid),
                _ => {
                    println!(
                        "server {} (pid {}) ignored SIGTERM for {STOP_GRACE:?}: SIGKILL",
                        s.id, s.pid
                    );
                    let _ = child.kill().await;
                }
            }
        }
    }
}

/// What one server answers for the summary; a request that fails leaves its part empty.
struct Snapshot {
    pool: Option<PoolView>,
    elements: Vec<ElementView>,
    alarms: Vec<Alarm>,
    recent: Vec<Event>,
    alarm_events: Vec<Event>,
}

async fn fetch(http: reqwest::Client, base: String, since_ms: i64) -> Snapshot {
    use crate::api::client::{AlarmsAnswer, ElementsAnswer, EventsAnswer};
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let r = http.get(url).send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            r.bytes().await.ok().map(|b| b.to_vec())
        }
    };
    fn parse<T: serde::de::DeserializeOwned>(b: Option<Vec<u8>>) -> Option<T> {
        serde_json::from_slice(&b?).ok()
    }
    let (pool, elements, alarms, recent, alarm_events) = tokio::join!(
        get("/api/v1/pool".into()),
        // scope=local: each server's own elements, alarms and events (the plain endpoints
        // answer for the whole pool); the summary adds them up.
        get("/api/v1/elements?scope=local".into()),
        get("/api/v1/alarms?scope=local".into()),
        get("/api/v1/events?scope=local&limit=5".into()),
        get(format!(
            "/api/v1/events?scope=local&kind=alarm.%2A&limit=10000&since={since_ms}"
        )),
    );
    Snapshot {
        pool: parse(pool),
        elements: parse::<ElementsAnswer>(elements).map_or(Vec::new(), |a| a.elements),
        alarms: parse::<AlarmsAnswer>(alarms).map_or(Vec::new(), |a| a.alarms),
        recent: parse::<EventsAnswer>(recent).map_or(Vec::new(), |a| a.events),
        alarm_events: parse::<EventsAnswer>(alarm_events).map_or(Vec::new(), |a| a.events),
    }
}

async fn start_simulator(args: &DemoArgs) -> anyhow::Result<SimHandle> {
    let data = Arc::new(Dataset::router24().context("embedded router template")?);
    let mut cfg = SimConfig::new(data);
    cfg.agents = args.agents;
    cfg.flap = Some(FlapSchedule {
        every: args.flap_agents.max(1),
        if_index: 1,
        period: args.flap_every,
        down_for: args.flap_for,
    });
    cfg.outage = Some(OutageSchedule {
        every: args.outage_agents.max(1),
        period: args.outage_every,
        down_for: args.outage_for,
    });
    crate::support::start_sim(cfg)
        .await
        .context("cannot start the simulated agents")
}

fn server_config(
    id: u32,
    port: u16,
    dir: &Path,
    args: &DemoArgs,
    sim: &SimHandle,
    urls: &[String],
    secret: &str,
) -> String {
    let timeout = args.poll_interval.min(Duration::from_secs(1));
    let mut s = format!(
        "# written by `emspool demo`\n[server]\nid = {id}\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nlog_level = \"info\"\n\n\
         [poll]\ninterval = \"{}ms\"\ntimeout = \"{}ms\"\nretries = 1\n\n\
         [events]\nretention = \"1d\"\n\n\
         [client]\nservers = [{}]\n\n\
         [credentials.public]\nversion = \"v2c\"\ncommunity = \"public\"\n\n\
         [pool]\nsecret = \"{secret}\"\n",
        toml_path(&dir.join(format!("s{id}-data"))),
        args.poll_interval.as_millis(),
        timeout.as_millis(),
        urls.iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for (i, url) in urls.iter().enumerate() {
        let _ = write!(s, "\n[[pool.members]]\nid = {}\nurl = \"{url}\"\n", i + 1);
    }
    for i in 0..sim.agents() {
        if let Some(addr) = sim.addr(i) {
            let _ = write!(
                s,
                "\n[[elements]]\nname = \"{}\"\naddress = \"{addr}\"\ncredential = \"public\"\n",
                sim.name(i)
            );
        }
    }
    s
}

/// A path as a TOML basic string body (backslashes and quotes escaped).
fn toml_path(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}
