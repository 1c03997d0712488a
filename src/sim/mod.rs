//! SNMP agent simulator used by `emspool demo`, benchmarks and tests at scale.
//!
//! Thousands of agents share one immutable [`Dataset`]; each differs only by what
//! [`device`] derives from its index and the elapsed time (sysName, sysUpTime, flaps, outages),
//! listed by [`overrides`] and logged at start.
//! Agents listen either on consecutive UDP ports (one small task per socket) or all on one port,
//! where the community names the device.

pub mod agent;
mod cli;
pub mod codec;
pub mod device;
pub mod overrides;
pub mod requesters;
pub mod respond;
pub mod snmprec;
pub mod v3;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

pub use agent::{SimHandle, SimStats, start};
pub use cli::{SimArgs, run};
pub use device::{FlapSchedule, OutageSchedule, device_name};
pub use overrides::{Override, overrides};
pub use snmprec::{Dataset, SnmprecError, Value};

/// Largest UDP payload over IPv4; v2c requests carry no size limit, so this is the default.
pub const DEFAULT_MAX_MSG_SIZE: usize = 65507;

/// What to simulate and where.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub data: Arc<Dataset>,
    pub agents: usize,
    /// Agent `i` listens on `base_port + i`; in single-port mode everything is on `base_port`
    /// (0 picks a free port, single-port mode only).
    pub base_port: u16,
    pub listen: IpAddr,
    /// One socket for all agents; the community is the device name ([`device_name`]).
    pub single_port: bool,
    /// The community every agent accepts in multi-port mode.
    pub community: String,
    pub flap: Option<FlapSchedule>,
    pub outage: Option<OutageSchedule>,
    /// sysName of agent `i` is `name_prefix` + `i` as 5+ digits, e.g. `sim00001`.
    pub name_prefix: String,
    /// Largest reply datagram: GetBulk replies are trimmed to fit, Get/GetNext answer tooBig.
    pub max_msg_size: usize,
    /// Record which server (request-id tag) polled each agent; see [`requesters`].
    pub track_requesters: bool,
    /// Accept SNMPv3 from this user at noAuthNoPriv (no authentication, no privacy).
    pub v3_user: Option<String>,
    /// Counters advance with time (interface octets, packets, errors; see
    /// `device::traffic_rate`), so that rates are not zero. Off: the dataset's values exactly.
    pub traffic: bool,
}

impl SimConfig {
    /// One agent on 127.0.0.1:16100, community `public`, names `simNNNNN`, no schedules.
    pub fn new(data: Arc<Dataset>) -> SimConfig {
        SimConfig {
            data,
            agents: 1,
            base_port: 16100,
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            single_port: false,
            community: "public".to_string(),
            flap: None,
            outage: None,
            name_prefix: "sim".to_string(),
            max_msg_size: DEFAULT_MAX_MSG_SIZE,
            track_requesters: false,
            v3_user: None,
            traffic: false,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind UDP {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("ports {base}..{base}+{agents} do not fit below 65536")]
    PortRange { base: u16, agents: usize },
    #[error("invalid configuration: {0}")]
    Config(String),
}
