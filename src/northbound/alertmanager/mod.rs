//! Alarms to Prometheus Alertmanager (API v2): every active alarm of this server's elements is
//! an alert, sent to every replica of the Alertmanager cluster (replicas gossip silences and
//! notifications, not alerts).
//!
//! Exactly one sender per alarm: the element's owner, the one server whose table holds the
//! alarm, and only while its lease holds. Each alert ends a lease ahead (`endsAt`, a few resend
//! periods) and is sent again every resend period, so an owner that dies leaves its alerts
//! firing until the new owner, which continues the alarm with the same labels, sends them. A
//! cleared alarm is sent once more, ending at its clear time (read from the event log, where
//! the clear is written: an alarm that only moved to another owner is no clear).

mod alert;
mod sender;

use super::PushError;
use crate::alarms::AlarmTable;
use crate::config::AlertmanagerSection;
use crate::eventlog::EventLog;
use crate::lease::Lease;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The running sender.
pub(crate) struct Alertmanager {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Alertmanager {
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .is_err()
        {
            tracing::warn!("Alertmanager sender did not stop within 3 s");
        }
    }
}

/// Starts sending the alarms of `alarms`; `console` is the base of each alert's
/// `generatorURL`.
pub(crate) fn start(
    cfg: &AlertmanagerSection,
    console: String,
    alarms: Arc<AlarmTable>,
    events: EventLog,
    lease: Arc<Lease>,
    registry: &prometheus::Registry,
) -> Result<Alertmanager, PushError> {
    let http = super::http_client(cfg.timeout, cfg.ca.as_deref())?;
    let metrics = super::push_metrics::PushMetrics::new(
        registry,
        "emspool_alertmanager",
        "alerts",
        "Cleared alarms waiting to be sent to the target as resolved alerts.",
    )?;
    let sender = sender::Sender::new(
        cfg,
        alert::Context {
            static_labels: cfg.labels.clone(),
            console: console.trim_end_matches('/').to_owned(),
        },
        alarms,
        events,
        lease,
        http,
        metrics,
    )?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(sender.run(stopped));
    Ok(Alertmanager { stop, task })
}
