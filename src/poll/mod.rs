//! Polling the elements this server owns, and what their answers mean.

pub(crate) mod collect;
mod netconf;
pub(crate) mod scheduler;

use crate::alarms::AlarmTable;
use crate::config::{Credential, PollSection};
use crate::lease::Lease;
use crate::metrics::Metrics;
use crate::model::Outcome;
use crate::model::{Element, ElementStatus, Protocol, now_millis};
use crate::rules::poll::Rules;
use scheduler::{Command, PollFn, Scheduler};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Polls that fail for want of our own resources are logged once a minute, all counted.
static STARVED_LOG: crate::logging::throttle::Throttle =
    crate::logging::throttle::Throttle::new(Duration::from_secs(60));

/// Live state of the owned elements, shared with the API.
pub(crate) struct Poller {
    request_tag: u8,
    settings: PollSection,
    rules: Rules,
    credentials: RwLock<Arc<BTreeMap<String, Credential>>>,
    /// Only owned elements have an entry; a result for any other is dropped.
    status: RwLock<HashMap<Arc<str>, (Element, ElementStatus)>>,
    /// Every alarm change and state event of polling and notifications goes through here.
    alarms: Arc<AlarmTable>,
    metrics: Metrics,
    commands: mpsc::UnboundedSender<Command>,
    netconf: crate::netconf::NetconfClient,
    /// Checked at every poll, result and notification: a server paused or cut off from the
    /// majority must not act on what may be somebody else's by now.
    lease: Arc<Lease>,
}

impl Poller {
    /// Starts the scheduler task; it stops when the returned `Poller` is dropped or `stop`ped.
    pub(crate) fn start(
        server: crate::model::ServerId,
        settings: PollSection,
        credentials: BTreeMap<String, Credential>,
        alarms: Arc<AlarmTable>,
        metrics: Metrics,
        lease: Arc<Lease>,
    ) -> (Arc<Poller>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let poller = Arc::new(Poller {
            request_tag: (server.0 & 0x3f) as u8,
            rules: Rules::default(),
            credentials: RwLock::new(Arc::new(credentials)),
            status: RwLock::new(HashMap::new()),
            alarms,
            metrics,
            commands: tx,
            netconf: crate::netconf::NetconfClient::new(settings.netconf.clone(), settings.timeout),
            settings: settings.clone(),
            lease,
        });
        let host: std::sync::Weak<dyn crate::netconf::Host> = Arc::downgrade(&poller) as _;
        poller.netconf.set_host(host);
        let weak = Arc::downgrade(&poller);
        let poll: PollFn = Arc::new(move |element: Element| {
            let weak = weak.clone();
            Box::pin(async move {
                if let Some(p) = weak.upgrade() {
                    p.poll_once(element).await;
                }
            })
        });
        let sched = Scheduler::new(settings.interval, settings.concurrency, poll);
        let handle = tokio::spawn(sched.run(rx));
        (poller, handle)
    }

    /// Makes `elements` the owned set: new ones start polling, removed ones stop at once.
    pub(crate) async fn set_elements(&self, elements: Vec<Element>) {
        {
            let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
            let names: HashMap<&str, &Element> = elements.iter().map(|e| (&*e.name, e)).collect();
            status.retain(|n, _| names.contains_key(&**n));
            for e in &elements {
                match status.get_mut(&e.name) {
                    Some((def, _)) => *def = e.clone(),
                    None => {
                        status.insert(e.name.clone(), (e.clone(), ElementStatus::default()));
                    }
                }
            }
        }
        self.netconf.set_owned(&elements);
        let (ack, done) = oneshot::channel();
        if self.commands.send(Command::Set(elements, ack)).is_ok() {
            let _ = done.await;
        }
    }

    pub(crate) fn set_credentials(&self, credentials: BTreeMap<String, Credential>) {
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(credentials);
    }

    pub(crate) fn statuses(&self) -> Vec<(Element, ElementStatus)> {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = status.values().cloned().collect();
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v
    }

    /// Takes over the last known status of an element handed over by its previous owner, unless
    /// this server has polled it already.
    pub(crate) fn adopt_status(&self, name: &str, st: ElementStatus) {
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        if let Some((_, cur)) = status.get_mut(name)
            && cur.last_poll.is_none()
        {
            *cur = st;
        }
    }

    /// Elements by state, without copying their statuses (a scrape must stay cheap at 10,000).
    pub(crate) fn state_counts(&self) -> HashMap<crate::model::ElementState, usize> {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        let mut m = HashMap::new();
        for (_, st) in status.values() {
            *m.entry(st.state).or_insert(0) += 1;
        }
        m
    }

    /// Names of the elements this server polls now (cheap: no clone of their statuses).
    pub(crate) fn owned_names(&self) -> Vec<Arc<str>> {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        status.keys().cloned().collect()
    }

    /// Calls `f` with the status of each of `names` that is still owned, under one read lock.
    /// Callers pass small chunks and only copy inside `f`: a poll finishing meanwhile waits
    /// for at most one chunk, never for a whole scrape.
    pub(crate) fn visit_statuses(
        &self,
        names: &[Arc<str>],
        mut f: impl FnMut(&Arc<str>, &ElementStatus),
    ) {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        for name in names {
            if let Some((_, st)) = status.get(name) {
                f(name, st);
            }
        }
    }

    /// The elements this server polls now.
    pub(crate) fn owned(&self) -> Vec<Element> {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        status.values().map(|(e, _)| e.clone()).collect()
    }

    /// Whether this server polls `name` now (cheap: no clone of its status).
    pub(crate) fn owns(&self, name: &str) -> bool {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        status.contains_key(name)
    }

    /// Whether this server may act on `name` now: it owns it and its lease holds.
    pub(crate) fn may_act(&self, name: &str) -> bool {
        self.lease.may_act() && self.owns(name)
    }

    pub(crate) fn lease(&self) -> &Arc<Lease> {
        &self.lease
    }

    pub(crate) fn status_of(&self, name: &str) -> Option<(Element, ElementStatus)> {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        status.get(name).cloned()
    }

    async fn poll_once(&self, element: Element) {
        if !self.may_act(&element.name) {
            self.metrics.faults.polls_withheld.inc();
            return;
        }
        let started = Instant::now();
        let outcome = self.run_poll(&element).await;
        let elapsed = started.elapsed();
        if let Outcome::Failed(why) = &outcome
            && why.starts_with(crate::model::STARVED)
        {
            self.metrics.faults.polls_starved.inc();
            if let Some(held) = STARVED_LOG.allow() {
                tracing::warn!(
                    element = %element.name,
                    "poll failed on this server's side, state unknown: {why} ({held} more \
                     such failure(s) in the last minute)"
                );
            }
        }
        self.apply(&element, outcome, elapsed);
    }

    async fn run_poll(&self, element: &Element) -> Outcome {
        let credential = {
            let creds = self.credentials.read().unwrap_or_else(|p| p.into_inner());
            creds.get(&*element.credential).cloned()
        };
        let Some(credential) = credential else {
            return Outcome::Failed(format!("no credential profile {:?}", element.credential));
        };
        let addr = match crate::resolve::resolve(&element.address, self.settings.timeout).await {
            Ok(a) => a,
            Err(why) => return Outcome::Failed(why),
        };
        // A poll never outlives its interval, whatever the agent does.
        let deadline = element.interval.unwrap_or(self.settings.interval);
        if element.protocol == Protocol::Netconf {
            let Credential::Netconf(c) = credential else {
                return Outcome::Failed(format!(
                    "credential profile {:?} is not a NETCONF profile",
                    element.credential
                ));
            };
            let poll = self.netconf.poll(element, c, addr, deadline);
            return match tokio::time::timeout(deadline, poll).await {
                Err(_) => Outcome::Unreachable(format!("poll did not finish within {deadline:?}")),
                Ok(outcome) => outcome,
            };
        }
        if credential.is_netconf() {
            // Our profile's fault, not a refusal by the element (CredentialRejected).
            return Outcome::Failed(format!(
                "credential profile {:?} is a NETCONF profile",
                element.credential
            ));
        }
        let target = crate::snmp::client::Target {
            addr,
            request_tag: self.request_tag,
            credential,
            timeout: self.settings.timeout,
            retries: self.settings.retries,
            max_repetitions: self.settings.max_repetitions,
        };
        match tokio::time::timeout(deadline, collect::poll_snmp(target, self.lease.clone())).await {
            Err(_) => Outcome::Unreachable(format!("poll did not finish within {deadline:?}")),
            Ok(Ok(data)) => Outcome::Answered(data),
            Ok(Err(e)) if e.agent_unreachable() => Outcome::Unreachable(e.to_string()),
            Ok(Err(e @ crate::snmp::client::SnmpError::Auth(_))) => {
                Outcome::Rejected(e.to_string())
            }
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
        }
    }

    fn apply(&self, element: &Element, outcome: Outcome, elapsed: Duration) {
        // Holding the write lock while applying makes ownership changes and results atomic.
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        let Some((_, prev)) = status.get(&element.name) else {
            return;
        };
        // The answer may have come back after the lease ended (a pause mid-poll).
        if !self.lease.may_act() {
            self.metrics.faults.polls_withheld.inc();
            return;
        }
        let answered = matches!(outcome, Outcome::Answered(_));
        let (next, changes) = crate::rules::poll::evaluate(
            prev,
            outcome,
            now_millis(),
            elapsed.as_millis() as u64,
            &self.rules,
        );
        self.metrics.observe_poll(next.state, elapsed);
        self.alarms.apply(&element.name, changes);
        if answered {
            use crate::rules::poll::{ENDED_WHILE_OWNER_DOWN, REPEATED_BY_EVERY_ANSWER};
            self.alarms.settle(
                &element.name,
                REPEATED_BY_EVERY_ANSWER,
                ENDED_WHILE_OWNER_DOWN,
            );
        }
        if let Some(slot) = status.get_mut(&element.name) {
            slot.1.update_from(next);
        }
    }
}
