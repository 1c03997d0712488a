//! `emspool_jetstream_*`: the outbox's counters, on the server's registry.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

#[derive(Clone)]
pub(crate) struct JetStreamMetrics {
    pub(crate) published: IntCounter,
    pub(crate) acknowledged: IntCounter,
    pub(crate) duplicates: IntCounter,
    pub(crate) failed: IntCounter,
    pub(crate) skipped: IntCounter,
    pub(crate) backlog: IntGauge,
    pub(crate) ack_seconds: Histogram,
    pub(crate) delay_seconds: Histogram,
    pub(crate) stream_reads: IntCounter,
    pub(crate) stream_read_failures: IntCounter,
}

impl JetStreamMetrics {
    pub(crate) fn new(r: &Registry) -> Result<JetStreamMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram =
            |name: &str, help: &str, buckets: Vec<f64>| -> Result<Histogram, prometheus::Error> {
                let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
                r.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let backlog = IntGauge::new(
            "emspool_jetstream_backlog",
            "Events in the event log not yet acknowledged by JetStream (ids after the cursor).",
        )?;
        r.register(Box::new(backlog.clone()))?;
        Ok(JetStreamMetrics {
            published: counter(
                "emspool_jetstream_published_total",
                "Events sent to JetStream (re-sends after a failure included).",
            )?,
            acknowledged: counter(
                "emspool_jetstream_acknowledged_total",
                "Publish acknowledgements received from JetStream (duplicates included).",
            )?,
            duplicates: counter(
                "emspool_jetstream_duplicates_total",
                "Acknowledgements saying the stream already held the event (a re-send).",
            )?,
            failed: counter(
                "emspool_jetstream_failed_total",
                "Publishes that failed or were not acknowledged in time; they are sent again.",
            )?,
            skipped: counter(
                "emspool_jetstream_skipped_total",
                "Event ids gone from the log before they were published (pruned by retention, or never committed).",
            )?,
            backlog,
            ack_seconds: histogram(
                "emspool_jetstream_ack_seconds",
                "Time from publishing an event to its acknowledgement.",
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )?,
            delay_seconds: histogram(
                "emspool_jetstream_delay_seconds",
                "Time from an event's timestamp to its acknowledgement by JetStream.",
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0,
                ],
            )?,
            stream_reads: counter(
                "emspool_jetstream_stream_reads_total",
                "Dead members' events read back from the stream for pool-wide queries.",
            )?,
            stream_read_failures: counter(
                "emspool_jetstream_stream_read_failures_total",
                "Reads from the stream that failed or exceeded read_timeout/read_max.",
            )?,
        })
    }
}
