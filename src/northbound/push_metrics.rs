//! Per-target counters of the push interfaces (`emspool_alertmanager_*`, `emspool_webhook_*`).

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub(crate) struct PushMetrics {
    /// Alerts (Alertmanager) or deliveries (webhooks) a target accepted.
    pub(crate) sent: IntCounterVec,
    pub(crate) failed: IntCounterVec,
    /// Given up on because the queue was full.
    pub(crate) dropped: IntCounterVec,
    pub(crate) queue: IntGaugeVec,
    pub(crate) last_success: IntGaugeVec,
}

impl PushMetrics {
    /// `what` names a unit of `sent` ("alerts", "deliveries"), `queue_help` says what waits.
    pub(crate) fn new(
        r: &Registry,
        prefix: &str,
        what: &str,
        queue_help: &str,
    ) -> Result<PushMetrics, prometheus::Error> {
        let counter = |name: &str, help: String| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(format!("{prefix}_{name}"), help), &["target"])?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: String| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(Opts::new(format!("{prefix}_{name}"), help), &["target"])?;
            r.register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(PushMetrics {
            sent: counter(
                &format!("{what}_total"),
                format!("{what} the target accepted."),
            )?,
            failed: counter(
                "failures_total",
                "Requests to the target that failed (connection, timeout, non-2xx answer).".into(),
            )?,
            dropped: counter(
                "dropped_total",
                format!("{what} given up because the target's queue was full."),
            )?,
            queue: gauge("queue", queue_help.into())?,
            last_success: gauge(
                "last_success_timestamp_seconds",
                "Unix time of the target's last successful request.".into(),
            )?,
        })
    }

    /// Creates every series of `target` at zero, so a target that never answered shows.
    pub(crate) fn register_target(&self, target: &str) {
        self.sent.with_label_values(&[target]);
        self.failed.with_label_values(&[target]);
        self.dropped.with_label_values(&[target]);
        self.queue.with_label_values(&[target]);
        self.last_success.with_label_values(&[target]);
    }

    pub(crate) fn succeeded(&self, target: &str, n: u64) {
        self.sent.with_label_values(&[target]).inc_by(n);
        let now = crate::model::now_millis() / 1000;
        self.last_success.with_label_values(&[target]).set(now);
    }
}
