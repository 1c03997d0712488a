//! Internals that benchmarks, protocol tests and fuzz targets drive directly. Compiled only
//! with the `testing` feature, which the crate's dev-dependency on itself turns on for tests
//! and benches; the binary never has it.

/// The NETCONF protocol stack (framing, XML, sessions, the YANG data read, the client).
pub mod netconf {
    pub use crate::netconf::{Host, NcError, NetconfClient, data, framing, session, xml};

    /// The fuzz target: every parser on the bytes a device can send, and every notification
    /// parsed through the rules that interpret it.
    pub fn decode_and_parse(input: &[u8]) {
        let mut ifs = [crate::model::Interface::new(1, "eth0", None).with_status(1, 1)];
        crate::netconf::fuzz::decode_and_parse(input, &mut |n| {
            let _ = crate::rules::netconf::interpret(n, &|id| id % 2 == 0, &mut ifs);
        });
    }
}

/// The SNMP protocol stack (client and walks, trap decoding, the USM engine of record).
pub mod snmp {
    pub use crate::snmp::client::{Client, Target};
    pub use crate::snmp::trap::{DecodeError, fuzz_one};
    pub use crate::snmp::usm::{InformUser, LocalEngine, encode_as_engine};
}

/// Free ports, the simulator on a free port run, temp dirs, child processes, `/metrics`
/// samples: the one implementation that `emspool demo`, the integration tests and the benches share.
pub mod support {
    pub use crate::support::{
        ChildGuard, TempDir, cpu_seconds, file_tail, free_port, free_port_run, metric,
        reserve_port_run, signal_pid, start_sim, v2c_inventory,
    };
}

/// Makes ring the process's rustls provider: reqwest is built without one, so a test or bench
/// must call this before `reqwest::Client::new()` (the server and the CLI do it themselves).
pub fn install_tls_provider() {
    crate::tls::init();
}

pub use crate::config::{
    Config, Credential, NetconfCredential, NetconfSection, Secret, parse_engine_id,
};
pub use crate::eventlog::EventLog;
pub use crate::model::Outcome;

use crate::server::Started;
use std::future::Future;
use std::net::SocketAddr;

/// One server started in this process by the same wiring as `emspool serve`.
pub struct Server(Started);

impl Server {
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        crate::server::start(config).await.map(Server)
    }

    /// The HTTP API's address.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.0.local_addr()
    }

    /// Where the trap receiver listens, once it does.
    pub fn trap_addr(&self) -> Option<SocketAddr> {
        self.0.state.traps.local_addr()
    }

    /// Whether this server owns `element` and has polled it at least once.
    pub fn polled(&self, element: &str) -> bool {
        self.0
            .state
            .poller
            .status_of(element)
            .is_some_and(|(_, st)| st.last_poll.is_some())
    }

    /// Whether traps can be routed to their elements yet.
    pub fn trap_routes_ready(&self) -> bool {
        !self.0.state.traps.routes().is_empty()
    }

    /// Active alarms of `element` held by this server.
    pub fn active_alarms(&self, element: &str) -> usize {
        self.0.state.alarms.count_for(element)
    }

    pub fn events(&self) -> &EventLog {
        &self.0.state.events
    }

    /// The trap receiver's counters: (received, applied, queue waits, invalid of any reason).
    pub fn trap_counts(&self) -> (u64, u64, u64, u64) {
        let m = &self.0.state.metrics.traps;
        let invalid = crate::snmp::trap::DecodeError::REASONS
            .iter()
            .map(|r| m.invalid.with_label_values(&[r]).get())
            .sum();
        (
            m.received.get(),
            m.applied.get(),
            m.queue_waits.get(),
            invalid,
        )
    }

    /// Answers the API until `shutdown` resolves, then stops as `emspool serve` does.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.0.run(shutdown, None).await
    }
}
