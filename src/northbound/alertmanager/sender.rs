//! The send loop: a full round every resend period, a round of what changed (debounced) after
//! the alarm table changes, and retries of a target that missed a round.

use super::alert::{self, Alert, Context};
use crate::alarms::{AlarmFilter, AlarmTable};
use crate::config::AlertmanagerSection;
use crate::eventlog::EventLog;
use crate::lease::Lease;
use crate::model::{Alarm, Severity, now_millis};
use crate::northbound::PushError;
use crate::northbound::push_metrics::PushMetrics;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Alerts per POST: Alertmanager takes arrays; this bounds one request's body (~1 MB).
const CHUNK: usize = 500;
/// Changes coming in a burst (an element going down raises several alarms) go in one round.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// Resolved alerts waiting per target, at most (a target down for long: the oldest go, and
/// Alertmanager resolves those by their lease anyway).
const QUEUE_MAX: usize = 10_000;
/// Events read from the log per round when looking for clears.
const LOG_CHUNK: usize = 1000;
const LOG_CHUNKS_PER_ROUND: usize = 20;
const BACKOFF_MIN: Duration = Duration::from_secs(1);

struct Target {
    /// The configured base URL: the `target` label of the metrics.
    name: String,
    endpoint: String,
    /// Resolved alerts not yet accepted, with when they were queued.
    resolved: VecDeque<(Instant, Alert)>,
    /// Missed a round: its next send is a full one, at `retry_at`.
    behind: bool,
    retry_at: Instant,
    backoff: Duration,
}

/// What Alertmanager last heard from us about an alarm: enough to see that it changed.
struct Sent {
    severity: Severity,
    acked: bool,
    labels: BTreeMap<String, String>,
}

pub(crate) struct Sender {
    resend: Duration,
    lease_ms: i64,
    ctx: Context,
    alarms: Arc<AlarmTable>,
    events: EventLog,
    lease: Arc<Lease>,
    http: reqwest::Client,
    m: PushMetrics,
    targets: Vec<Target>,
    sent: HashMap<String, Sent>,
    /// Event log id up to which clears have been queued.
    cursor: u64,
}

impl Sender {
    pub(crate) fn new(
        cfg: &AlertmanagerSection,
        ctx: Context,
        alarms: Arc<AlarmTable>,
        events: EventLog,
        lease: Arc<Lease>,
        http: reqwest::Client,
        m: PushMetrics,
    ) -> Result<Sender, PushError> {
        // Clears written before this start are not ours to repeat: their alerts end by lease.
        let cursor = events.last_id()?;
        let targets = cfg
            .urls
            .iter()
            .map(|u| {
                let name = u.trim_end_matches('/').to_owned();
                m.register_target(&name);
                Target {
                    endpoint: format!("{name}/api/v2/alerts"),
                    name,
                    resolved: VecDeque::new(),
                    behind: false,
                    retry_at: Instant::now(),
                    backoff: BACKOFF_MIN,
                }
            })
            .collect();
        Ok(Sender {
            resend: cfg.resend,
            lease_ms: i64::try_from(cfg.lease().as_millis()).unwrap_or(i64::MAX),
            ctx,
            alarms,
            events,
            lease,
            http,
            m,
            targets,
            sent: HashMap::new(),
            cursor,
        })
    }

    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            "sending alarms to {} Alertmanager(s) every {:?}",
            self.targets.len(),
            self.resend
        );
        let mut changes = self.alarms.watch();
        let mut next_full = Instant::now();
        loop {
            let retry = self
                .targets
                .iter()
                .filter(|t| t.behind)
                .map(|t| t.retry_at)
                .min();
            let wake = retry.map_or(next_full, |r| r.min(next_full));
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                r = changes.changed() => {
                    if r.is_err() {
                        break;
                    }
                    if crate::northbound::sleep_or_stop(DEBOUNCE, &mut stop).await {
                        break;
                    }
                    changes.borrow_and_update();
                }
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            // Fenced: another server may own these alarms by now. Forgetting what was sent
            // makes the first round after the lease returns send everything.
            if !self.lease.may_act() {
                self.sent.clear();
                next_full = Instant::now() + self.resend;
                continue;
            }
            let now = Instant::now();
            let full = now >= next_full;
            if full {
                next_full = now + self.resend;
            }
            if let Err(e) = self.queue_clears().await {
                tracing::warn!("Alertmanager sender cannot read the event log: {e}");
            }
            self.round(full).await;
        }
        tracing::info!("Alertmanager sender stopped");
    }

    /// Queues a resolved alert, ending at its clear time, for every `alarm.cleared` event
    /// written since the last round.
    async fn queue_clears(&mut self) -> Result<(), PushError> {
        for _ in 0..LOG_CHUNKS_PER_ROUND {
            let log = self.events.clone();
            let after = self.cursor;
            let batch = tokio::task::spawn_blocking(move || log.read_after(after, LOG_CHUNK))
                .await
                .map_err(|e| PushError::Client(format!("event log reader: {e}")))??;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            self.cursor = last.id;
            for ev in &batch {
                if ev.kind != "alarm.cleared" {
                    continue;
                }
                let Some(alarm) = &ev.alarm else { continue };
                self.sent.remove(&alarm.key);
                let resolved = alert::alert(alarm, &self.ctx, ev.ts);
                self.queue_resolved(resolved);
            }
            if batch.len() < LOG_CHUNK {
                return Ok(());
            }
        }
        Ok(())
    }

    fn queue_resolved(&mut self, a: Alert) {
        let now = Instant::now();
        for t in &mut self.targets {
            if t.resolved.len() >= QUEUE_MAX {
                t.resolved.pop_front();
                self.m.dropped.with_label_values(&[&t.name]).inc();
            }
            t.resolved.push_back((now, a.clone()));
        }
    }

    /// One round: every active alarm (full) or those new or changed since the last round, and
    /// the queued resolved alerts, to every target not waiting for a retry.
    async fn round(&mut self, full: bool) {
        let active: Vec<Alarm> = self.alarms.list(&AlarmFilter::default());
        let ends = now_millis().saturating_add(self.lease_ms);
        let now = Instant::now();
        // A round of changes builds only the changed alerts (thousands of standing alarms,
        // a change every few hundred ms); everything only when some target gets it all.
        let need_all = full || self.targets.iter().any(|t| t.behind && now >= t.retry_at);
        let mut all = Vec::with_capacity(if need_all { active.len() } else { 0 });
        let mut changed = Vec::new();
        let mut sent = HashMap::with_capacity(active.len());
        for a in &active {
            let acked = a.acked_at.is_some();
            let prev = self.sent.remove(&a.key);
            let unchanged = prev
                .as_ref()
                .is_some_and(|s| s.severity == a.severity && s.acked == acked);
            if unchanged && !need_all {
                if let Some(s) = prev {
                    sent.insert(a.key.clone(), s);
                }
                continue;
            }
            let alert = alert::alert(a, &self.ctx, ends);
            match prev {
                Some(s) if s.severity == a.severity && s.acked == acked => {}
                Some(s) => {
                    if s.severity != a.severity {
                        // Severity is a label: the alert of the old severity ends now.
                        let mut old = alert.clone();
                        old.labels = s.labels;
                        old.ends_at = crate::model::format_millis(now_millis());
                        self.queue_resolved(old);
                    }
                    changed.push(alert.clone());
                }
                None => changed.push(alert.clone()),
            }
            sent.insert(
                a.key.clone(),
                Sent {
                    severity: a.severity,
                    acked,
                    labels: alert.labels.clone(),
                },
            );
            if need_all {
                all.push(alert);
            }
        }
        // Left in `self.sent`: cleared (queued from the log) or moved to another owner, which
        // sends them now.
        self.sent = sent;
        let lease = Duration::from_millis(u64::try_from(self.lease_ms).unwrap_or(0));
        let mut posts = Vec::new();
        for (i, t) in self.targets.iter_mut().enumerate() {
            if t.behind && now < t.retry_at {
                continue;
            }
            // Past its lease, Alertmanager has resolved an alert by itself.
            while t.resolved.front().is_some_and(|(at, _)| *at + lease < now) {
                t.resolved.pop_front();
            }
            let mut batch: Vec<Alert> = t.resolved.iter().map(|(_, a)| a.clone()).collect();
            let n_resolved = batch.len();
            batch.extend(
                if full || t.behind { &all } else { &changed }
                    .iter()
                    .cloned(),
            );
            if batch.is_empty() {
                continue;
            }
            posts.push((i, n_resolved, batch));
        }
        let results = futures_util::future::join_all(
            posts
                .iter()
                .map(|(i, _, batch)| post(&self.http, &self.targets[*i].endpoint, batch)),
        )
        .await;
        for ((i, n_resolved, batch), result) in posts.into_iter().zip(results) {
            let t = &mut self.targets[i];
            match result {
                Ok(()) => {
                    self.m.succeeded(&t.name, batch.len() as u64);
                    t.resolved.drain(..n_resolved.min(t.resolved.len()));
                    if t.behind {
                        tracing::info!("Alertmanager {} answers again", t.name);
                    }
                    t.behind = false;
                    t.backoff = BACKOFF_MIN;
                }
                Err(e) => {
                    self.m.failed.with_label_values(&[&t.name]).inc();
                    if !t.behind {
                        tracing::warn!("Alertmanager {}: {e}; retrying with backoff", t.name);
                    }
                    t.behind = true;
                    t.retry_at = Instant::now() + t.backoff;
                    t.backoff = (t.backoff * 2).min(self.resend);
                }
            }
            self.m
                .queue
                .with_label_values(&[&t.name])
                .set(i64::try_from(t.resolved.len()).unwrap_or(i64::MAX));
        }
    }
}

/// POSTs `alerts` in chunks; the first failure ends it (the target is then behind and gets
/// everything on its retry).
async fn post(http: &reqwest::Client, endpoint: &str, alerts: &[Alert]) -> Result<(), String> {
    for chunk in alerts.chunks(CHUNK) {
        let resp = http
            .post(endpoint)
            .json(chunk)
            .send()
            .await
            .map_err(|e| crate::cluster::transport::cause(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let body: String = crate::model::text::device_str(&body)
                .chars()
                .take(200)
                .collect();
            return Err(format!("HTTP {status}: {body}"));
        }
    }
    Ok(())
}
