//! Prometheus metrics: one registry per server, names under `emspool_`.
//!
//! Counters and histograms are updated where things happen; gauges that mirror a table
//! (alarms, element states) are set from that table at scrape time, so they cannot drift.
//!
//! Conventions (checked by `promtool check metrics` in tests/it/operations.rs): base units
//! (`_seconds`), counters end in `_total`, every metric has HELP text, label values that are
//! known in advance are created at zero so that `rate()` and alerts see them from the start.

use crate::model::{ElementState, Severity};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::HashMap;
use std::time::Duration;

mod faults;
pub(crate) use faults::FaultMetrics;

#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    polls: IntCounterVec,
    poll_duration: Histogram,
    alarms_active: IntGaugeVec,
    elements: IntGaugeVec,
    events_written: IntCounter,
    event_write_errors: IntCounter,
    api_requests: IntCounterVec,
    pub(crate) auth_failures: IntCounterVec,
    start_time: IntGauge,
    is_master: IntGauge,
    term: IntGauge,
    elections: IntCounter,
    owned: IntGauge,
    moves: IntCounter,
    members_alive: IntGauge,
    pub(crate) peer_requests: IntCounterVec,
    pub(crate) traps: TrapMetrics,
    inventory: IntGauge,
    config_reloads: IntCounterVec,
    config_reload_ok: IntGauge,
    /// Our own troubles: storage outages, connection limits, polls failed on our side.
    pub(crate) faults: FaultMetrics,
}

/// The trap receiver's counters (`poll::traps`).
#[derive(Clone)]
pub(crate) struct TrapMetrics {
    pub(crate) received: IntCounter,
    pub(crate) decoded: IntCounterVec,
    pub(crate) invalid: IntCounterVec,
    pub(crate) unknown_sender: IntCounter,
    pub(crate) informs_acked: IntCounter,
    pub(crate) applied: IntCounter,
    pub(crate) forwarded: IntCounter,
    pub(crate) dropped: IntCounterVec,
    pub(crate) queue_waits: IntCounter,
    pub(crate) socket_drops: IntCounter,
}

impl TrapMetrics {
    fn new(r: &Registry) -> Result<TrapMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            Ok(register(r, IntCounter::new(name, help)?))
        };
        let vec =
            |name: &str, help: &str, label: &str| -> Result<IntCounterVec, prometheus::Error> {
                Ok(register(
                    r,
                    IntCounterVec::new(Opts::new(name, help), &[label])?,
                ))
            };
        Ok(TrapMetrics {
            received: counter(
                "emspool_traps_received_total",
                "Datagrams read from the trap socket.",
            )?,
            decoded: vec(
                "emspool_traps_decoded_total",
                "Traps and informs decoded, by SNMP version.",
                "version",
            )?,
            invalid: vec(
                "emspool_traps_invalid_total",
                "Datagrams refused (garbage, truncated BER, wrong community, wrong v3 keys), by reason.",
                "reason",
            )?,
            unknown_sender: counter(
                "emspool_traps_unknown_sender_total",
                "Traps from an address that matches no element (or several).",
            )?,
            informs_acked: counter(
                "emspool_traps_informs_acked_total",
                "Informs acknowledged with a Response.",
            )?,
            applied: counter(
                "emspool_traps_applied_total",
                "Traps turned into alarms or events on this server (the element's owner).",
            )?,
            forwarded: counter(
                "emspool_traps_forwarded_total",
                "Traps forwarded to the element's owner and accepted by it.",
            )?,
            dropped: vec(
                "emspool_traps_dropped_total",
                "Decoded traps lost after all (forwarding gave up or its queue was full), by reason.",
                "reason",
            )?,
            queue_waits: counter(
                "emspool_traps_queue_waits_total",
                "Times the socket task found the decode queue full and waited (the kernel buffer absorbed the burst).",
            )?,
            socket_drops: counter(
                "emspool_traps_socket_drops_total",
                "Datagrams the kernel dropped on the trap socket because its buffer was full (Linux /proc/net/udp).",
            )?,
        })
    }
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    // Names are fixed and unique here, so registration cannot fail at run time.
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::error!("metric registration failed: {e}");
    }
    c
}

impl Metrics {
    pub(crate) fn new() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let m = Metrics {
            polls: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "emspool_polls_total",
                        "Polls finished, by resulting element state.",
                    ),
                    &["result"],
                )?,
            ),
            poll_duration: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "emspool_poll_duration_seconds",
                        "Time from the start of a poll to its result.",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0,
                    ]),
                )?,
            ),
            alarms_active: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "emspool_alarms_active",
                        "Active alarms held by this server, by severity.",
                    ),
                    &["severity"],
                )?,
            ),
            elements: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "emspool_elements",
                        "Elements owned by this server, by poll state.",
                    ),
                    &["state"],
                )?,
            ),
            events_written: register(
                &r,
                IntCounter::new(
                    "emspool_events_written_total",
                    "Events durably written to the event log.",
                )?,
            ),
            event_write_errors: register(
                &r,
                IntCounter::new(
                    "emspool_event_write_errors_total",
                    "Event log transactions that failed to commit.",
                )?,
            ),
            api_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "emspool_api_requests_total",
                        "HTTP API requests, by status class.",
                    ),
                    &["status"],
                )?,
            ),
            auth_failures: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "emspool_auth_failures_total",
                        "Requests refused for a missing or wrong token or pool secret.",
                    ),
                    &["api"],
                )?,
            ),
            start_time: register(
                &r,
                IntGauge::new(
                    "emspool_start_time_seconds",
                    "Unix time this server started.",
                )?,
            ),
            is_master: register(
                &r,
                IntGauge::new(
                    "emspool_is_master",
                    "1 while this server is the pool's master.",
                )?,
            ),
            term: register(
                &r,
                IntGauge::new(
                    "emspool_election_term",
                    "Highest election term seen (epoch << 32 | claimant id).",
                )?,
            ),
            elections: register(
                &r,
                IntCounter::new(
                    "emspool_elections_won_total",
                    "Elections this server won (it became master).",
                )?,
            ),
            owned: register(
                &r,
                IntGauge::new(
                    "emspool_elements_owned",
                    "Elements this server is assigned to poll.",
                )?,
            ),
            moves: register(
                &r,
                IntCounter::new(
                    "emspool_ownership_moves_total",
                    "Elements this server moved between members while master.",
                )?,
            ),
            members_alive: register(
                &r,
                IntGauge::new(
                    "emspool_pool_members_alive",
                    "Pool members this server sees alive, itself included.",
                )?,
            ),
            peer_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "emspool_peer_requests_total",
                        "Peer protocol requests received, by endpoint.",
                    ),
                    &["endpoint"],
                )?,
            ),
            traps: TrapMetrics::new(&r)?,
            inventory: register(
                &r,
                IntGauge::new(
                    "emspool_inventory_elements",
                    "Elements in the pool's inventory, as of the newest assignment this server applied.",
                )?,
            ),
            config_reloads: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "emspool_config_reloads_total",
                        "Configuration reloads (SIGHUP), by result.",
                    ),
                    &["result"],
                )?,
            ),
            config_reload_ok: register(
                &r,
                IntGauge::new(
                    "emspool_config_last_reload_successful",
                    "1 if the last configuration reload succeeded (or none was tried), else 0.",
                )?,
            ),
            faults: FaultMetrics::new(&r)?,
            registry: r,
        };
        let build = register(
            &m.registry,
            IntGaugeVec::new(
                Opts::new(
                    "emspool_build_info",
                    "Always 1; the labels tell the running version.",
                ),
                &["version"],
            )?,
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m.start_time.set(crate::model::now_millis() / 1000);
        m.config_reload_ok.set(1);
        // Known label values exist from the start, so rates and alerts see them at zero.
        for s in [ElementState::Up, ElementState::Down, ElementState::Unknown] {
            m.polls.with_label_values(&[s.as_str()]);
        }
        for class in ["2xx", "4xx", "5xx"] {
            m.api_requests.with_label_values(&[class]);
        }
        for result in ["success", "failure"] {
            m.config_reloads.with_label_values(&[result]);
        }
        for api in ["client", "peer"] {
            m.auth_failures.with_label_values(&[api]);
        }
        Ok(m)
    }

    pub(crate) fn set_term(&self, term: u64) {
        self.term.set(term as i64);
    }

    pub(crate) fn became_master(&self, master: bool) {
        if master {
            self.elections.inc();
        }
        self.is_master.set(i64::from(master));
    }

    pub(crate) fn set_owned(&self, n: usize) {
        self.owned.set(n as i64);
    }

    pub(crate) fn add_moves(&self, n: usize) {
        self.moves.inc_by(n as u64);
    }

    /// Size of the whole inventory (all members), for the "elements without owner" alert.
    pub(crate) fn set_inventory(&self, n: usize) {
        self.inventory.set(n as i64);
    }

    /// A SIGHUP reload finished (`ok`) or was refused.
    pub(crate) fn config_reloaded(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.config_reloads.with_label_values(&[result]).inc();
        self.config_reload_ok.set(i64::from(ok));
    }

    pub(crate) fn set_members_alive(&self, n: usize) {
        self.members_alive.set(n as i64);
    }

    pub(crate) fn observe_poll(&self, state: ElementState, took: Duration) {
        self.polls.with_label_values(&[state.as_str()]).inc();
        self.poll_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn observe_api(&self, status: u16) {
        let class = match status {
            200..=299 => "2xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "other",
        };
        self.api_requests.with_label_values(&[class]).inc();
    }

    /// Brings table-derived gauges and log counters up to date, then renders the text format.
    pub(crate) fn render(
        &self,
        alarms: &HashMap<Severity, usize>,
        elements: &HashMap<ElementState, usize>,
        events_written: u64,
        event_write_errors: u64,
    ) -> String {
        for s in Severity::ALARM_LEVELS {
            let n = alarms.get(&s).copied().unwrap_or(0);
            self.alarms_active
                .with_label_values(&[s.as_str()])
                .set(n as i64);
        }
        for s in [ElementState::Up, ElementState::Down, ElementState::Unknown] {
            let n = elements.get(&s).copied().unwrap_or(0);
            self.elements.with_label_values(&[s.as_str()]).set(n as i64);
        }
        catch_up(&self.events_written, events_written);
        catch_up(&self.event_write_errors, event_write_errors);
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!("metrics encoding failed: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// For subsystems that register their own metrics (`northbound::jetstream`).
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Counters must only go up; the log keeps the authoritative totals.
fn catch_up(c: &IntCounter, total: u64) {
    let cur = c.get();
    if total > cur {
        c.inc_by(total - cur);
    }
}
