//! Metrics of our own troubles (issue 14): the storage outages of the event log, the limits on
//! HTTP connections, and polls that failed for want of our own resources.

use super::register;
use crate::eventlog::HealthSnapshot;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub(crate) struct FaultMetrics {
    event_log_writable: IntGauge,
    event_log_queued: IntGauge,
    event_log_dropped: IntCounter,
    event_log_outages: IntCounter,
    /// Open HTTP connections, by class (`pending` until the first request says which).
    pub(crate) connections: IntGaugeVec,
    /// Connections closed by a limit, by reason (`cap`, `evicted`, `header_timeout`, ...).
    pub(crate) connections_closed: IntCounterVec,
    /// Polls that failed because of this server's own resources (open files, buffers).
    pub(crate) polls_starved: IntCounter,
    /// Polls and results not acted on because the lease did not hold (paused or cut off).
    pub(crate) polls_withheld: IntCounter,
}

impl FaultMetrics {
    pub(super) fn new(r: &Registry) -> Result<FaultMetrics, prometheus::Error> {
        let m = FaultMetrics {
            event_log_writable: register(
                r,
                IntGauge::new(
                    "emspool_event_log_writable",
                    "1 while the event log and the pool state can be written, 0 during an outage.",
                )?,
            ),
            event_log_queued: register(
                r,
                IntGauge::new(
                    "emspool_event_log_queued",
                    "Events kept in memory until the event log can be written again.",
                )?,
            ),
            event_log_dropped: register(
                r,
                IntCounter::new(
                    "emspool_event_log_dropped_total",
                    "Events dropped during an outage because the memory queue was full.",
                )?,
            ),
            event_log_outages: register(
                r,
                IntCounter::new(
                    "emspool_event_log_outages_total",
                    "Times the event log could not be written and had to be reopened.",
                )?,
            ),
            connections: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "emspool_http_connections",
                        "Open HTTP connections, by class (pending: no request read yet).",
                    ),
                    &["class"],
                )?,
            ),
            connections_closed: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "emspool_http_connections_closed_total",
                        "HTTP connections closed by a limit, by reason.",
                    ),
                    &["reason"],
                )?,
            ),
            polls_starved: register(
                r,
                IntCounter::new(
                    "emspool_polls_starved_total",
                    "Polls that failed for want of this server's own resources (open files, \
                     buffers): the element's state is unknown, not down.",
                )?,
            ),
            polls_withheld: register(
                r,
                IntCounter::new(
                    "emspool_polls_withheld_total",
                    "Polls not sent, or their results not applied, because this server's lease \
                     did not hold (it was paused or cut off from a majority of the pool).",
                )?,
            ),
        };
        for class in ["pending", "client", "peer"] {
            m.connections.with_label_values(&[class]).set(0);
        }
        for reason in [
            "cap",
            "evicted",
            "header_timeout",
            "idle_timeout",
            "shutdown",
        ] {
            m.connections_closed.with_label_values(&[reason]);
        }
        m.event_log_writable.set(1);
        Ok(m)
    }

    /// Mirrors the event log's health (set at scrape time, like the other table gauges).
    pub(crate) fn storage(&self, h: &HealthSnapshot) {
        self.event_log_writable.set(i64::from(h.outage.is_none()));
        self.event_log_queued
            .set(i64::try_from(h.queued).unwrap_or(i64::MAX));
        super::catch_up(&self.event_log_dropped, h.dropped);
        super::catch_up(&self.event_log_outages, h.outages);
    }
}
