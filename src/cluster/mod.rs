//! The pool: membership, bully election, assignment of elements to servers.
//!
//! `election` and `assignment` are pure; `driver` runs the election over the peer protocol,
//! `master` computes and distributes assignments, and this module is the member's side: what
//! it does when told to take, release or stop polling elements.

mod alarm_sync;
pub(crate) mod assignment;
pub(crate) mod authority;
mod catch_up;
pub(crate) mod credentials;
pub(crate) mod delta;
mod driver;
pub(crate) mod election;
pub(crate) mod inventory;
mod master;
pub(crate) mod membership;
pub(crate) mod protocol;
mod recover;
mod sealed;
pub(crate) mod transport;

use crate::alarms::AlarmTable;
use crate::config::{Config, MemberConfig, Secret};
use crate::eventlog::EventLog;
use crate::metrics::Metrics;
use crate::model::{Alarm, Element, NewEvent, ServerId, Severity};
use crate::poll::Poller;
use delta::{Ack, Authority, Chunk, Push, Staging};
use election::{Input, Message, Role};
pub(crate) use inventory::InventoryChange;
use membership::Membership;
use protocol::{Assignment, AssignmentId, Handover, Heartbeat, Release, Released};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use transport::Transport;

const META_TERM: &str = "cluster.term";
pub(crate) const META_ASSIGNMENT: &str = "cluster.assignment";

#[derive(Debug, Clone)]
pub(crate) struct Timings {
    pub(crate) heartbeat: Duration,
    pub(crate) failure_timeout: Duration,
    pub(crate) answer_timeout: Duration,
    pub(crate) hold_down: Duration,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClusterError {
    #[error(
        "stale term {}: this server has seen term {}",
        election::term_text(*.got),
        election::term_text(*.have)
    )]
    StaleTerm { got: u64, have: u64 },
    #[error("event log: {0}")]
    Store(String),
    #[error("this server is not the master")]
    NotMaster,
    #[error("element {0:?} already exists")]
    Exists(String),
    #[error("no element named {0:?}")]
    NoSuchElement(String),
    #[error("no credential profile named {0:?} in the pool")]
    NoSuchCredential(String),
    #[error("credential profile {name:?} is used by {count} element(s), e.g. {example:?}")]
    CredentialInUse {
        name: String,
        count: usize,
        example: String,
    },
    /// A change the master refuses as it stands (never names a secret).
    #[error("{0}")]
    Invalid(String),
    #[error("assignment refused: {0}")]
    AssignmentRefused(#[from] delta::Refusal),
    #[error("peer transport: {0}")]
    Tls(String),
    #[error("refused: {detail}")]
    Refused {
        reason: authority::Reason,
        detail: String,
    },
}

/// What the member knows; read by the API and the driver, changed under one short lock.
pub(crate) struct State {
    role: Role,
    master: Option<ServerId>,
    term: u64,
    membership: Membership,
    /// The newest assignment this server knows of (persisted).
    assignment: Assignment,
    /// The assignment this server polls by; zero while fenced.
    applied: AssignmentId,
    fenced: bool,
    /// Inventory changed through the API and not yet distributed (master only).
    pending: Option<inventory::Pending>,
    /// The newest journal sequence in an assignment this master applied and persisted.
    applied_seq: u64,
    /// A snapshot arriving in chunks.
    staging: Staging,
}

pub(crate) struct Cluster {
    me: ServerId,
    members: Vec<MemberConfig>,
    timings: Timings,
    /// Inventory for a pool that has never had an assignment.
    seed: Mutex<Vec<Element>>,
    /// The config file's credential profiles: the pool's until an assignment holds them.
    seed_credentials: Mutex<protocol::Credentials>,
    pub(crate) transport: Arc<Transport>,
    poller: Arc<Poller>,
    alarms: Arc<AlarmTable>,
    events: EventLog,
    metrics: Metrics,
    state: Mutex<State>,
    inbox: mpsc::UnboundedSender<Input>,
    /// Serializes changes of the owned set (pushes, releases, fencing).
    apply_lock: tokio::sync::Mutex<()>,
    fault_injection: bool,
    /// To the one inventory writer (`inventory.rs`).
    writes: mpsc::Sender<inventory::Request>,
    /// Wakes the master's round when the inventory changed or an assignment settled.
    inventory_changed: tokio::sync::Notify,
    settled: inventory::SettledTx,
    /// Binds what peers claim to who they are (`authority`).
    pub(crate) authority: authority::Authority,
    /// This server asked the others back for its alarms since it started (`recover`).
    recovered: std::sync::atomic::AtomicBool,
    /// Seals the credential profiles before they reach redb (`sealed`).
    sealer: sealed::Sealer,
}

/// The pool as this server sees it, for `GET /api/v1/pool`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct PoolView {
    pub(crate) server: ServerId,
    pub(crate) master: Option<ServerId>,
    pub(crate) term: u64,
    pub(crate) role: Role,
    pub(crate) quorum: bool,
    pub(crate) fenced: bool,
    pub(crate) assignment: AssignmentId,
    pub(crate) members: Vec<MemberView>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct MemberView {
    pub(crate) id: ServerId,
    pub(crate) url: String,
    pub(crate) alive: bool,
    pub(crate) master: bool,
    /// Elements this member owns in the newest assignment known here.
    pub(crate) elements: usize,
}

impl Cluster {
    /// Builds the pool from the config (a pool of one without `[pool]`) and starts its tasks.
    pub(crate) async fn start(
        config: &Config,
        poller: Arc<Poller>,
        alarms: Arc<AlarmTable>,
        events: EventLog,
        metrics: Metrics,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let me = config.server_id();
        let (members, secret, timings, fault_injection) = match &config.pool {
            Some(p) => (
                p.members.clone(),
                p.secret.clone(),
                Timings {
                    heartbeat: p.heartbeat,
                    failure_timeout: p.failure_timeout,
                    answer_timeout: p.answer_timeout,
                    hold_down: p.hold_down,
                },
                p.fault_injection,
            ),
            None => (
                vec![MemberConfig {
                    id: me.0,
                    url: format!("http://{}", config.server.listen),
                    weight: 1,
                }],
                Secret::new(""),
                Timings {
                    heartbeat: Duration::from_millis(250),
                    failure_timeout: Duration::from_secs(1),
                    answer_timeout: Duration::from_millis(150),
                    hold_down: Duration::ZERO,
                },
                false,
            ),
        };
        let ids: Vec<ServerId> = members.iter().map(|m| ServerId(m.id)).collect();
        let urls = members
            .iter()
            .map(|m| (ServerId(m.id), m.url.clone()))
            .collect();
        let store = |e: crate::eventlog::EventLogError| ClusterError::Store(e.to_string());
        let term = match events.meta_get(META_TERM).map_err(store)? {
            Some(b) => serde_json::from_slice(&b).unwrap_or(0),
            None => 0,
        };
        // Before terms were bounded a hostile message could leave u64::MAX here, which no
        // claim can out-bid: start over from 0 (every member of such a pool does the same).
        let term = if term > election::MAX_TERM {
            tracing::error!("persisted election term {term} is out of range; starting from 0");
            0
        } else {
            term
        };
        let (max_jump, mutual_tls) = config
            .pool
            .as_ref()
            .map_or((election::DEFAULT_MAX_JUMP, false), |p| {
                (p.max_term_jump, p.ca.is_some())
            });
        let authority = authority::Authority::new(metrics.registry(), max_jump, mutual_tls);
        let sealer = sealed::Sealer::new(secret.expose());
        let assignment: Assignment = match events.meta_get(META_ASSIGNMENT).map_err(store)? {
            Some(b) => sealer.load_assignment(&b),
            None => Assignment::default(),
        };
        let source = config.pool.as_ref().and_then(|p| p.source_address);
        let tls = crate::tls::ClientTls::for_pool(config);
        let transport = Transport::new(me, urls, secret, &tls, source)
            .map_err(|e| ClusterError::Tls(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (writes, writes_rx) = mpsc::channel(4096);
        let cluster = Arc::new(Cluster {
            me,
            members,
            seed: Mutex::new(config.elements.clone()),
            seed_credentials: Mutex::new(config.credentials.clone()),
            transport: Arc::new(transport),
            poller,
            alarms,
            events,
            metrics,
            state: Mutex::new(State {
                role: Role::Idle,
                master: None,
                term,
                membership: Membership::new(me, ids.clone(), timings.failure_timeout),
                assignment,
                applied: AssignmentId::default(),
                fenced: false,
                pending: None,
                applied_seq: 0,
                staging: Staging::default(),
            }),
            timings,
            inbox: tx,
            apply_lock: tokio::sync::Mutex::new(()),
            fault_injection,
            writes,
            inventory_changed: tokio::sync::Notify::new(),
            settled: tokio::sync::watch::channel((0, AssignmentId::default())).0,
            authority,
            recovered: Default::default(),
            sealer,
        });
        if let Some(creds) = cluster.lock().assignment.credentials.clone() {
            // The pool's profiles as of the last run, not the file's, until the master says.
            cluster.poller.set_credentials(creds);
        }
        let journal = cluster.load_journal();
        cluster.lock().applied_seq = journal.applied_seq();
        tokio::spawn(cluster.clone().write_inventory(writes_rx, journal));
        driver::spawn(cluster.clone(), ids, term, rx);
        tokio::spawn(alarm_sync::run(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    pub(crate) fn fault_injection(&self) -> bool {
        self.fault_injection
    }

    pub(crate) fn secret(&self) -> &Secret {
        self.transport.secret()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn view(&self) -> PoolView {
        let now = Instant::now();
        let st = self.lock();
        let loads = assignment::loads(&st.assignment.owners);
        let alive = st.membership.alive(now);
        PoolView {
            server: self.me,
            master: st.master,
            term: st.term,
            role: st.role,
            quorum: election::has_quorum(alive.len(), self.members.len()),
            fenced: st.fenced,
            assignment: st.assignment.id,
            members: self
                .members
                .iter()
                .map(|m| {
                    let id = ServerId(m.id);
                    MemberView {
                        id,
                        url: m.url.clone(),
                        alive: alive.contains(&id),
                        master: st.master == Some(id),
                        elements: loads.get(&id).copied().unwrap_or(0),
                    }
                })
                .collect(),
        }
    }

    /// The newest assignment known here (the whole inventory with owners).
    pub(crate) fn assignment(&self) -> Assignment {
        self.lock().assignment.clone()
    }

    /// Id of the newest assignment known here.
    pub(crate) fn assignment_id(&self) -> AssignmentId {
        self.lock().assignment.id
    }

    pub(crate) fn master(&self) -> Option<ServerId> {
        self.lock().master
    }

    pub(crate) fn alive_members(&self) -> Vec<ServerId> {
        self.lock().membership.alive(Instant::now())
    }

    /// Every configured member, this server included, in id order.
    pub(crate) fn member_ids(&self) -> Vec<ServerId> {
        let mut v: Vec<ServerId> = self.members.iter().map(|m| ServerId(m.id)).collect();
        v.sort();
        v
    }

    pub(crate) fn member_url(&self, id: ServerId) -> Option<String> {
        self.members
            .iter()
            .find(|m| m.id == id.0)
            .map(|m| m.url.clone())
    }

    fn my_heartbeat(&self) -> Heartbeat {
        let st = self.lock();
        Heartbeat {
            from: self.me,
            term: st.term,
            master: st.master,
            applied: st.applied,
            known: st.assignment.id,
        }
    }

    /// A peer's heartbeat arrived; the answer is ours.
    pub(crate) fn on_heartbeat(&self, hb: Heartbeat) -> Heartbeat {
        if !self.transport.is_blocked(hb.from) {
            self.lock().membership.heard(&hb, Instant::now());
        }
        self.my_heartbeat()
    }

    /// An election message arrived from a peer.
    pub(crate) fn on_election(&self, from: ServerId, msg: Message) {
        if !self.transport.is_blocked(from) {
            let _ = self.inbox.send(Input::Receive { from, msg });
        }
    }

    fn check_term(&self, term: u64) -> Result<(), ClusterError> {
        let have = self.lock().term;
        if term < have {
            return Err(ClusterError::StaleTerm { got: term, have });
        }
        Ok(())
    }

    /// The master takes these elements away: stop polling them now, hand back their alarms.
    pub(crate) async fn release(&self, r: Release) -> Result<Released, ClusterError> {
        self.check_term(r.term)?;
        let _guard = self.apply_lock.lock().await;
        let drop: BTreeSet<&str> = r.elements.iter().map(String::as_str).collect();
        let statuses: Vec<(String, crate::model::ElementStatus)> = r
            .elements
            .iter()
            .filter_map(|n| self.poller.status_of(n).map(|(_, st)| (n.clone(), st)))
            .collect();
        let keep: Vec<Element> = self
            .poller
            .owned()
            .into_iter()
            .filter(|e| !drop.contains(&*e.name))
            .collect();
        self.poller.set_elements(keep).await;
        let mut alarms = Vec::new();
        for name in &r.elements {
            alarms.extend(self.alarms.take_element(name));
        }
        Ok(Released { alarms, statuses })
    }

    fn authority(st: &State) -> Authority {
        Authority {
            term: st.term,
            master: st.master,
        }
    }

    fn ack(&self) -> Ack {
        let st = self.lock();
        Ack {
            known: st.assignment.id,
            applied: st.applied,
        }
    }

    /// Deltas from the master: rebuild the assignment from the one held here and poll by it.
    /// Obeyed only from the master of the newest term this server knows.
    pub(crate) async fn apply_push(&self, push: Push) -> Result<Ack, ClusterError> {
        let _guard = self.apply_lock.lock().await;
        let rebuilt = {
            let st = self.lock();
            delta::on_push(&st.assignment, Self::authority(&st), push)
        };
        if let Some((assignment, handover)) = rebuilt.inspect_err(|e| self.refused(e))? {
            self.apply_full(assignment, handover).await?;
        }
        Ok(self.ack())
    }

    /// One chunk of a snapshot; the assignment is applied when the last one arrives.
    pub(crate) async fn apply_chunk(&self, chunk: Chunk) -> Result<Ack, ClusterError> {
        let _guard = self.apply_lock.lock().await;
        let rebuilt = {
            let mut st = self.lock();
            let auth = Self::authority(&st);
            let State {
                staging,
                assignment,
                ..
            } = &mut *st;
            staging.on_chunk(assignment, auth, chunk)
        };
        if let Some((assignment, handover)) = rebuilt.inspect_err(|e| self.refused(e))? {
            self.apply_full(assignment, handover).await?;
        }
        Ok(self.ack())
    }

    fn refused(&self, e: &delta::Refusal) {
        self.metrics.assignment_refused(e.reason());
        tracing::debug!("assignment refused: {e}");
    }

    /// The master's own assignment (no authority check: it made it). Caller holds no lock.
    pub(super) async fn apply_own(
        &self,
        assignment: Assignment,
        handover: Handover,
    ) -> Result<(), ClusterError> {
        let _guard = self.apply_lock.lock().await;
        self.apply_full(assignment, handover).await
    }

    /// Poll exactly what `assignment` gives this server. Caller holds `apply_lock`.
    async fn apply_full(
        &self,
        assignment: Assignment,
        handover: Handover,
    ) -> Result<(), ClusterError> {
        self.check_term(assignment.id.term)?;
        let (fenced, applied) = {
            let st = self.lock();
            (st.fenced, st.applied)
        };
        if !fenced && assignment.id <= applied {
            return Ok(());
        }
        // Before anything is polled: a poll would raise anew what the pool kept of us.
        self.recover_own_alarms().await;
        let mine = assignment.owned_by(self.me);
        let keep: BTreeSet<&str> = mine.iter().map(|e| &*e.name).collect();
        let before = self.poller.owned();
        // Profiles before elements: a new element's first poll needs its profile.
        self.poller.set_credentials(
            assignment
                .credentials
                .clone()
                .unwrap_or_else(|| self.seed_credentials()),
        );
        self.poller.set_elements(mine.clone()).await;
        self.settle_lost(&before, &keep, &assignment);
        let handed_names: BTreeSet<&str> = handover
            .statuses
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(handover.alarms.iter().map(|a| a.element.as_str()))
            .collect();
        let was: BTreeSet<&str> = before.iter().map(|e| &*e.name).collect();
        // Taken over without a release: the previous owner died (or was cut off). Continue the
        // alarms the pool kept of them; the first answered poll clears what ended meanwhile.
        let inherited: usize = keep
            .iter()
            .filter(|n| !was.contains(*n) && !handed_names.contains(*n))
            .map(|n| self.alarms.inherit(n))
            .sum();
        if inherited > 0 {
            tracing::info!("continued {inherited} alarm(s) of elements whose owner died");
        }
        let handed: Vec<Alarm> = handover
            .alarms
            .into_iter()
            .filter(|a| keep.contains(a.element.as_str()))
            .collect();
        self.alarms.adopt(handed);
        for (name, st) in handover.statuses {
            self.poller.adopt_status(&name, st);
        }
        self.alarms
            .prune_replica(|e| assignment.owners.get(e).copied());
        let bytes = self.sealer.store_assignment(&assignment);
        self.events
            .meta_put(META_ASSIGNMENT, bytes)
            .await
            .map_err(|e| ClusterError::Store(e.to_string()))?;
        let mut st = self.lock();
        st.applied = assignment.id;
        st.fenced = false;
        // Applied after the fence, from a master that holds the newest term: act again.
        self.poller.lease().restore();
        if assignment.id >= st.assignment.id {
            st.assignment = assignment;
        }
        self.metrics.set_owned(mine.len());
        self.metrics.set_inventory(st.assignment.elements.len());
        Ok(())
    }

    /// Elements this server no longer polls: removed from the inventory, their alarms clear
    /// here (`element.removed`, `alarm.cleared`); taken without a release (we were thought
    /// dead), their new owner continues the alarms from the pool's copy, so ours are dropped.
    /// Alarms of elements not polled before either (left from a fence) are dropped too.
    fn settle_lost(&self, before: &[Element], keep: &BTreeSet<&str>, next: &Assignment) {
        let inventory: BTreeSet<&str> = next.elements.iter().map(|e| &*e.name).collect();
        let was: BTreeSet<&str> = before.iter().map(|e| &*e.name).collect();
        for e in before.iter().filter(|e| !keep.contains(&*e.name)) {
            if inventory.contains(&*e.name) {
                self.alarms.take_element(&e.name);
                continue;
            }
            let n = self.alarms.clear_element(&e.name, "element removed");
            self.events.append(NewEvent::now(
                Some(&e.name),
                "element.removed",
                Severity::Info,
                format!(
                    "{} removed from the inventory; {n} active alarm(s) cleared",
                    e.name
                ),
            ));
        }
        for name in self.alarms.elements() {
            if !keep.contains(name.as_str()) && !was.contains(name.as_str()) {
                self.alarms.take_element(&name);
            }
        }
    }

    /// Cut off from the majority past the lease: stop polling everything until the master
    /// re-assigns, so the majority can take over without anything polled twice.
    async fn fence(&self) {
        let _guard = self.apply_lock.lock().await;
        let owned = self.poller.owned().len();
        self.poller.set_elements(Vec::new()).await;
        {
            let mut st = self.lock();
            st.fenced = true;
            st.applied = AssignmentId::default();
        }
        self.metrics.set_owned(0);
        self.event(
            "pool.fenced",
            Severity::Warning,
            format!("cut off from a majority of the pool; stopped polling {owned} element(s)"),
        );
    }

    fn event(&self, kind: &str, severity: Severity, text: String) {
        tracing::info!("{kind}: {text}");
        self.events
            .append(NewEvent::now(None, kind, severity, text));
    }

    /// The configured inventory, used until the pool has an assignment.
    pub(crate) fn seed(&self) -> Vec<Element> {
        self.seed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn weights(&self) -> BTreeMap<ServerId, u32> {
        self.members
            .iter()
            .map(|m| (ServerId(m.id), m.weight))
            .collect()
    }
}
