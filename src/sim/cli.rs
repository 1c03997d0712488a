//! `emspool simulate`: command-line arguments and the run loop.

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::{Dataset, FlapSchedule, OutageSchedule, SimConfig, start};

/// What `emspool simulate --help` says after the options: the data file's format and what the
/// simulator serves instead of it (`super::overrides`, also logged at start).
const AFTER_HELP: &str = "\
Data file (--data): snmpsim's .snmprec, one OID|TAG|VALUE record a line, unsorted is fine.
Tags 2 (Integer32), 4 (OCTET STRING), 5 (NULL), 6 (OID), 64 (IpAddress), 65 (Counter32),
66 (Gauge32), 67 (TimeTicks), 68 (Opaque), 70 (Counter64), 128/129/130 (noSuchObject,
noSuchInstance, endOfMibView); TAGx is hex, TAGe a Python-escaped string; an IpAddress is
dotted or its 4 raw octets, as in snmpsim's recordings. snmpsim variation modules (TAG:MODULE)
are refused: every value is served as written, except these, made per agent:

  sysName.0           the agent's device name: --name-prefix + 5 digits (sim00000, ...)
  sysUpTime.0         time since the simulator started (with --outage-*: since the agent's
                      last simulated reboot)
  ifOperStatus.IF     down(2) during the flap window (--flap-*, IF = --flap-if)
  Counter32/64        advance with uptime (--traffic)

Objects the file lacks are not added. The log says at start which ones are overridden and
the file's value each replaces.";

/// Arguments of `emspool simulate`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct SimArgs {
    /// snmpsim .snmprec file every agent serves (see below) [default: embedded 24-port router]
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Number of simulated agents
    #[arg(long, default_value_t = 1)]
    pub agents: usize,
    /// Agent i listens on BASE_PORT + i (single-port mode: all on BASE_PORT)
    #[arg(long, default_value_t = 16100)]
    pub base_port: u16,
    /// Address the agents listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: IpAddr,
    /// All agents on one port; the community selects the device (its sysName, e.g. sim00042)
    #[arg(long)]
    pub single_port: bool,
    /// Community accepted in multi-port mode
    #[arg(long, default_value = "public")]
    pub community: String,
    /// sysName prefix: agent i is PREFIX followed by i in 5 digits
    #[arg(long, default_value = "sim")]
    pub name_prefix: String,
    /// Flap period: every --flap-agents'th agent takes ifIndex --flap-if down once per period
    #[arg(long, value_parser = humantime::parse_duration, requires = "flap_for")]
    pub flap_every: Option<Duration>,
    /// How long the flapping link stays down (the end of each period)
    #[arg(long, value_parser = humantime::parse_duration, requires = "flap_every")]
    pub flap_for: Option<Duration>,
    /// Which agents flap: every Nth (0, N, 2N...)
    #[arg(long, default_value_t = 10)]
    pub flap_agents: usize,
    /// The ifIndex that flaps
    #[arg(long, default_value_t = 1)]
    pub flap_if: u32,
    /// Outage period: every --outage-agents'th agent stops answering once per period, then reboots
    #[arg(long, value_parser = humantime::parse_duration, requires = "outage_for")]
    pub outage_every: Option<Duration>,
    /// How long the outage lasts (the end of each period)
    #[arg(long, value_parser = humantime::parse_duration, requires = "outage_every")]
    pub outage_for: Option<Duration>,
    /// Which agents go silent: every Nth (0, N, 2N...)
    #[arg(long, default_value_t = 10)]
    pub outage_agents: usize,
    /// Largest reply datagram in bytes
    #[arg(long, default_value_t = super::DEFAULT_MAX_MSG_SIZE)]
    pub max_msg_size: usize,
    /// Also answer SNMPv3 from this user, noAuthNoPriv only (single-port: context = device name)
    #[arg(long, value_name = "USER")]
    pub v3_user: Option<String>,
    /// Counters advance with time (interface octets 1-8 Mbit/s, packets, errors), as on a
    /// device that carries traffic; without it they keep the data file's values
    #[arg(long)]
    pub traffic: bool,
}

impl SimArgs {
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        let data = match &self.data {
            Some(path) => Dataset::load(path)?,
            None => Dataset::router24().context("embedded router24 template")?,
        };
        let mut cfg = SimConfig::new(Arc::new(data));
        cfg.agents = self.agents;
        cfg.base_port = self.base_port;
        cfg.listen = self.listen;
        cfg.single_port = self.single_port;
        cfg.community = self.community.clone();
        cfg.name_prefix = self.name_prefix.clone();
        cfg.max_msg_size = self.max_msg_size;
        cfg.v3_user = self.v3_user.clone();
        cfg.traffic = self.traffic;
        if let (Some(period), Some(down_for)) = (self.flap_every, self.flap_for) {
            cfg.flap = Some(FlapSchedule {
                every: self.flap_agents,
                if_index: self.flap_if,
                period,
                down_for,
            });
        }
        if let (Some(period), Some(down_for)) = (self.outage_every, self.outage_for) {
            cfg.outage = Some(OutageSchedule {
                every: self.outage_agents,
                period,
                down_for,
            });
        }
        Ok(cfg)
    }
}

/// Runs the simulator until `shutdown` completes; prints one line saying where it listens.
pub async fn run(args: SimArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let cfg = args.to_config()?;
    let handle = start(cfg).await?;
    let first = handle.addr(0).context("no agent")?;
    let n = handle.agents();
    if args.single_port {
        println!(
            "simulating {n} SNMP agents on udp {first}, community {}..{}",
            handle.community(0),
            handle.community(n - 1)
        );
    } else {
        let last = handle.addr(n - 1).context("no agent")?;
        println!(
            "simulating {n} SNMP agents on udp {first} .. port {}, community {}",
            last.port(),
            handle.community(0)
        );
    }
    shutdown.await;
    let stats = handle.stats();
    handle.shutdown().await;
    tracing::info!(?stats, "simulator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied())).map(|c| c.sim)
    }

    #[test]
    fn schedules_come_from_the_command_line() {
        let args = parse(&[
            "--agents",
            "50",
            "--flap-every",
            "2m",
            "--flap-for",
            "30s",
            "--flap-agents",
            "5",
            "--outage-every",
            "10m",
            "--outage-for",
            "90s",
            "--single-port",
        ])
        .expect("parses");
        let cfg = args.to_config().expect("config");
        assert_eq!((cfg.agents, cfg.single_port), (50, true));
        let flap = cfg.flap.expect("flap");
        assert_eq!((flap.every, flap.if_index), (5, 1));
        assert_eq!(
            (flap.period, flap.down_for),
            (Duration::from_secs(120), Duration::from_secs(30))
        );
        let outage = cfg.outage.expect("outage");
        assert_eq!(
            (outage.every, outage.down_for),
            (10, Duration::from_secs(90))
        );
        assert_eq!(cfg.data.len(), 536);

        assert!(
            parse(&["--flap-every", "2m"]).is_err(),
            "--flap-for is required too"
        );
        assert!(parse(&["--outage-for", "1s"]).is_err());
        let missing = parse(&["--data", "/nonexistent.snmprec"]).expect("parses");
        assert!(missing.to_config().is_err());
    }

    #[tokio::test]
    async fn run_stops_on_shutdown() {
        let args = parse(&["--single-port", "--base-port", "0", "--agents", "3"]).expect("parses");
        let stop = tokio::time::sleep(Duration::from_millis(50));
        let done = tokio::time::timeout(Duration::from_secs(10), run(args, stop)).await;
        done.expect("run returns after shutdown").expect("runs");
    }
}
