//! Polling the elements this server owns, and what their answers mean.

pub mod collect;
pub mod evaluate;
pub mod netconf;
pub mod scheduler;
pub mod snmp;
pub mod trap_decode;
pub mod trap_map;
pub mod trap_usm;
pub mod traps;

use crate::alarms::{AlarmTable, Raise};
use crate::config::{Credential, PollSection};
use crate::eventlog::EventLog;
use crate::metrics::Metrics;
use crate::model::{Element, ElementStatus, NewEvent, Protocol, Severity, now_millis};
use evaluate::{Effect, Outcome, Rules};
use scheduler::{Command, PollFn, Scheduler};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Live state of the owned elements, shared with the API.
pub struct Poller {
    request_tag: u8,
    settings: PollSection,
    rules: Rules,
    credentials: RwLock<Arc<BTreeMap<String, Credential>>>,
    /// Only owned elements have an entry; a result for any other is dropped.
    status: RwLock<HashMap<Arc<str>, (Element, ElementStatus)>>,
    alarms: Arc<AlarmTable>,
    events: EventLog,
    metrics: Metrics,
    commands: mpsc::UnboundedSender<Command>,
    netconf: netconf::NetconfClient,
}

impl Poller {
    /// Starts the scheduler task; it stops when the returned `Poller` is dropped or `stop`ped.
    pub fn start(
        server: crate::model::ServerId,
        settings: PollSection,
        credentials: BTreeMap<String, Credential>,
        alarms: Arc<AlarmTable>,
        events: EventLog,
        metrics: Metrics,
    ) -> (Arc<Poller>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let poller = Arc::new(Poller {
            request_tag: (server.0 & 0x3f) as u8,
            rules: Rules::default(),
            credentials: RwLock::new(Arc::new(credentials)),
            status: RwLock::new(HashMap::new()),
            alarms,
            events,
            metrics,
            commands: tx,
            netconf: netconf::NetconfClient::new(settings.netconf.clone(), settings.timeout),
            settings: settings.clone(),
        });
        let host: std::sync::Weak<dyn netconf::Host> = Arc::downgrade(&poller) as _;
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
    pub async fn set_elements(&self, elements: Vec<Element>) {
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

    pub fn credentials(&self) -> Arc<BTreeMap<String, Credential>> {
        self.credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_credentials(&self, credentials: BTreeMap<String, Credential>) {
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(credentials);
    }

    pub fn statuses(&self) -> Vec<(Element, ElementStatus)> {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = status.values().cloned().collect();
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v
    }

    /// Takes over the last known status of an element handed over by its previous owner, unless
    /// this server has polled it already.
    pub fn adopt_status(&self, name: &str, st: ElementStatus) {
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        if let Some((_, cur)) = status.get_mut(name)
            && cur.last_poll.is_none()
        {
            *cur = st;
        }
    }

    /// Elements by state, without copying their statuses (a scrape must stay cheap at 10,000).
    pub fn state_counts(&self) -> HashMap<crate::model::ElementState, usize> {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        let mut m = HashMap::new();
        for (_, st) in status.values() {
            *m.entry(st.state).or_insert(0) += 1;
        }
        m
    }

    /// Names of the elements this server polls now (cheap: no clone of their statuses).
    pub fn owned_names(&self) -> Vec<Arc<str>> {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        status.keys().cloned().collect()
    }

    /// Calls `f` with the status of each of `names` that is still owned, under one read lock.
    /// Callers pass small chunks and only copy inside `f`: a poll finishing meanwhile waits
    /// for at most one chunk, never for a whole scrape.
    pub fn visit_statuses(&self, names: &[Arc<str>], mut f: impl FnMut(&Arc<str>, &ElementStatus)) {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        for name in names {
            if let Some((_, st)) = status.get(name) {
                f(name, st);
            }
        }
    }

    /// The elements this server polls now.
    pub fn owned(&self) -> Vec<Element> {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        status.values().map(|(e, _)| e.clone()).collect()
    }

    /// Whether this server polls `name` now (cheap: no clone of its status).
    pub fn owns(&self, name: &str) -> bool {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        status.contains_key(name)
    }

    pub fn status_of(&self, name: &str) -> Option<(Element, ElementStatus)> {
        let status = self.status.read().unwrap_or_else(|p| p.into_inner());
        status.get(name).cloned()
    }

    async fn poll_once(&self, element: Element) {
        let started = Instant::now();
        let outcome = self.run_poll(&element).await;
        let elapsed = started.elapsed();
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
        let addr = match resolve(&element.address, self.settings.timeout).await {
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
        let target = snmp::Target {
            addr,
            request_tag: self.request_tag,
            credential,
            timeout: self.settings.timeout,
            retries: self.settings.retries,
            max_repetitions: self.settings.max_repetitions,
        };
        match tokio::time::timeout(deadline, collect::poll_snmp(target)).await {
            Err(_) => Outcome::Unreachable(format!("poll did not finish within {deadline:?}")),
            Ok(Ok(data)) => Outcome::Answered(data),
            Ok(Err(e)) if e.agent_unreachable() => Outcome::Unreachable(e.to_string()),
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
        }
    }

    fn apply(&self, element: &Element, outcome: Outcome, elapsed: Duration) {
        // Holding the write lock while applying makes ownership changes and results atomic.
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        let Some((_, prev)) = status.get(&element.name) else {
            return;
        };
        let (next, effects) = evaluate::evaluate(
            prev,
            outcome,
            now_millis(),
            elapsed.as_millis() as u64,
            &self.rules,
        );
        self.metrics.observe_poll(next.state, elapsed);
        for effect in effects {
            self.apply_effect(&element.name, effect);
        }
        if let Some(slot) = status.get_mut(&element.name) {
            slot.1.update_from(next);
        }
    }

    fn apply_effect(&self, element: &str, effect: Effect) {
        match effect {
            Effect::Raise {
                kind,
                instance,
                severity,
                text,
            } => {
                self.alarms.raise(Raise {
                    kind: kind.to_owned(),
                    element: element.to_owned(),
                    instance,
                    severity,
                    text,
                });
            }
            Effect::Clear { kind, instance } => {
                self.alarms
                    .clear(kind, element, instance.as_deref(), "condition ended");
            }
            Effect::StateChanged { to, text, .. } => {
                let severity = match to {
                    crate::model::ElementState::Up => Severity::Info,
                    crate::model::ElementState::Down => Severity::Critical,
                    crate::model::ElementState::Unknown => Severity::Warning,
                };
                self.events.append(NewEvent::now(
                    Some(element),
                    "element.state",
                    severity,
                    text,
                ));
            }
        }
    }
}

async fn resolve(address: &str, timeout: Duration) -> Result<SocketAddr, String> {
    if let Ok(a) = address.parse() {
        return Ok(a);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host(address)).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .ok_or_else(|| format!("{address}: no address found")),
        Ok(Err(e)) => Err(format!("{address}: cannot resolve: {e}")),
        Err(_) => Err(format!("{address}: resolver timed out")),
    }
}
