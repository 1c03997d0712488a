//! Simulated SNMP agents (emspool's own simulator, in-process) on consecutive loopback ports,
//! recording which server polled each of them.

use emspool::sim::{Dataset, SimConfig, SimHandle};
use emspool::testing::support::{start_sim, v2c_inventory};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Simulated agents on consecutive loopback ports, recording who polls them.
pub struct Agents {
    rt: tokio::runtime::Runtime,
    sim: Option<SimHandle>,
    pub base: u16,
    pub n: usize,
}

impl Agents {
    pub fn start(n: usize) -> Agents {
        Agents::start_with(n, |_| {})
    }

    /// Like [`Agents::start`], with `tweak` changing the simulator's config (flaps, outages).
    pub fn start_with(n: usize, tweak: impl FnOnce(&mut SimConfig)) -> Agents {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut cfg = SimConfig::new(Arc::new(Dataset::router24().expect("template")));
        cfg.agents = n;
        cfg.track_requesters = true;
        tweak(&mut cfg);
        let sim = rt.block_on(start_sim(cfg)).expect("simulator");
        let base = sim.addr(0).expect("agent 0").port();
        Agents {
            rt,
            sim: Some(sim),
            base,
            n,
        }
    }

    pub fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("running")
    }

    pub fn name(i: usize) -> String {
        format!("ne{i:03}")
    }

    /// Config body: 1 s polls of every agent.
    pub fn inventory(&self) -> String {
        v2c_inventory(
            "interval = \"1s\"\ntimeout = \"300ms\"\nretries = 1",
            self.n,
            self.base,
            Agents::name,
        )
    }

    pub fn now(&self) -> Duration {
        self.sim().elapsed()
    }

    /// For each agent, the servers whose requests arrived after `since` (simulator clock).
    pub fn pollers_since(&self, since: Duration) -> Vec<BTreeSet<u8>> {
        (0..self.n)
            .map(|i| {
                self.sim()
                    .requesters(i)
                    .into_iter()
                    .filter(|r| r.last > since)
                    .map(|r| r.tag)
                    .collect()
            })
            .collect()
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        if let Some(s) = self.sim.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}
