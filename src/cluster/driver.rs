//! Runs the election state machine: delivers messages and timer expiries, performs its actions,
//! sends membership heartbeats, enforces the lease and starts the master's duties.

use super::election::{self, Action, Election, Input, Message, Role, Timer};
use super::protocol::{AssignmentId, ElectionEnvelope, Heartbeat};
use super::transport::PeerError;
use super::{Cluster, META_TERM, master};
use crate::model::{ServerId, Severity};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

pub(super) fn spawn(
    cluster: Arc<Cluster>,
    members: Vec<ServerId>,
    term: u64,
    inbox: mpsc::UnboundedReceiver<Input>,
) {
    let election =
        Election::new(cluster.me, members, term).with_max_jump(cluster.authority.max_jump);
    tokio::spawn(Driver::new(cluster, election).run(inbox));
}

struct Driver {
    cluster: Arc<Cluster>,
    election: Election,
    timers: HashMap<Timer, Instant>,
    master_task: Option<JoinHandle<()>>,
    alive: Vec<ServerId>,
}

impl Driver {
    fn new(cluster: Arc<Cluster>, election: Election) -> Driver {
        Driver {
            cluster,
            election,
            timers: HashMap::new(),
            master_task: None,
            alive: Vec::new(),
        }
    }

    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Input>) {
        self.handle(Input::Start).await;
        let mut tick = tokio::time::interval(self.cluster.timings.heartbeat);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let next = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(t, at)| (*t, *at));
            let sleep = async {
                match next {
                    Some((_, at)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = inbox.recv() => match input {
                    Some(i) => self.handle(i).await,
                    None => break,
                },
                _ = sleep => {
                    if let Some((timer, _)) = next {
                        self.timers.remove(&timer);
                        self.handle(Input::Timeout(timer)).await;
                    }
                }
                _ = tick.tick() => self.tick().await,
            }
        }
        if let Some(t) = self.master_task.take() {
            t.abort();
        }
    }

    async fn handle(&mut self, input: Input) {
        for action in self.election.handle(input) {
            self.perform(action).await;
        }
        let mut st = self.cluster.lock();
        st.role = self.election.role();
        st.master = self.election.master();
        st.term = self.election.term();
    }

    async fn perform(&mut self, action: Action) {
        let c = self.cluster.clone();
        match action {
            Action::Send { to, msg } => self.send(to, msg),
            Action::Broadcast(msg) => {
                for &to in self.election.members() {
                    if to != self.cluster.me {
                        self.send(to, msg);
                    }
                }
            }
            Action::SetTimer(t) => {
                let d = match t {
                    Timer::FailureDetect | Timer::CoordinatorWait => c.timings.failure_timeout,
                    Timer::AnswerWait => c.timings.answer_timeout,
                    Timer::Heartbeat => c.timings.heartbeat,
                };
                self.timers.insert(t, Instant::now() + d);
            }
            Action::CancelTimer(t) => {
                self.timers.remove(&t);
            }
            Action::PersistTerm(term) => {
                let bytes = serde_json::to_vec(&term).unwrap_or_default();
                // The term must be durable before we act on it; if the disk fails we still act,
                // loudly, rather than leave the pool without a master.
                if let Err(e) = c.events.meta_put(META_TERM, bytes).await {
                    tracing::error!(
                        "cannot persist election term {}: {e}",
                        election::term_text(term)
                    );
                }
                c.metrics.set_term(term);
            }
            Action::BecameMaster { term } => {
                c.metrics.became_master(true);
                c.event(
                    "election.won",
                    Severity::Info,
                    format!(
                        "server {} is master for term {}",
                        c.me,
                        election::term_text(term)
                    ),
                );
                if let Some(t) = self.master_task.take() {
                    t.abort();
                }
                self.master_task = Some(tokio::spawn(master::run(c.clone(), term)));
            }
            Action::Follow { master, term } => {
                c.metrics.became_master(false);
                self.stop_master();
                c.event(
                    "master.changed",
                    Severity::Info,
                    format!(
                        "server {master} is master for term {}",
                        election::term_text(term)
                    ),
                );
            }
            Action::NoMaster => {
                c.metrics.became_master(false);
                self.stop_master();
            }
        }
    }

    fn stop_master(&mut self) {
        if let Some(t) = self.master_task.take() {
            t.abort();
        }
    }

    fn send(&self, to: ServerId, msg: Message) {
        let c = self.cluster.clone();
        tokio::spawn(async move {
            let env = ElectionEnvelope { from: c.me, msg };
            let r: Result<serde_json::Value, PeerError> = c
                .transport
                .post(to, "/peer/v1/election", &env, c.timings.failure_timeout)
                .await;
            if let Err(PeerError::Unreachable(..)) = r {
                let _ = c.inbox.send(Input::PeerDown(to));
            }
        });
    }

    /// Every heartbeat period: apply the lease, tell every peer we live, learn who else does.
    async fn tick(&mut self) {
        let c = self.cluster.clone();
        // First, before any answer can renew the lease: after a pause or a cut long enough for
        // the majority to have taken over, stop polling what we held (`lease.rs`).
        let lease = c.poller.lease().clone();
        let now = std::time::Instant::now();
        // Out of contact: what we know of the others is stale, so watch them anew until the
        // majority answers again (a master then waits for the silent ones, `undecided`).
        if !lease.fresh_at(now) {
            c.lock().membership.restart_watch(Instant::now());
        }
        if lease.overdue(now) || lease.disowned() {
            self.disowned().await;
        }
        let hb = c.my_heartbeat();
        let sent = Instant::now();
        for &to in self.election.members() {
            if to == c.me {
                continue;
            }
            let c = c.clone();
            let hb = hb.clone();
            tokio::spawn(async move {
                let r: Result<Heartbeat, PeerError> = c
                    .transport
                    .post(to, "/peer/v1/heartbeat", &hb, c.timings.heartbeat * 2)
                    .await;
                match r {
                    Ok(reply) if reply.from == to => {
                        let now = Instant::now();
                        let base = {
                            let mut st = c.lock();
                            st.membership.heard(&reply, now);
                            st.membership.answered(to, sent);
                            st.membership.lease_base()
                        };
                        // A renewal that finds the lease past takeover leaves it disowned; the
                        // next tick fences before anything is polled again.
                        if let Some(base) = base {
                            c.poller.lease().renew(base.into_std(), now.into_std());
                        }
                    }
                    Ok(_) => tracing::warn!("server {to} answered a heartbeat as someone else"),
                    // Nothing listens there: the process is gone, no need to wait for the timeout.
                    Err(PeerError::Unreachable(_, why)) if why == "cannot connect" => {
                        c.lock().membership.forget(to);
                    }
                    Err(e) => tracing::trace!("heartbeat to {to}: {e}"),
                }
            });
        }
        let now = Instant::now();
        let alive = c.lock().membership.alive(now);
        for gone in self.alive.iter().filter(|id| !alive.contains(id)) {
            c.event(
                "member.down",
                Severity::Warning,
                format!("server {gone} stopped answering"),
            );
            let _ = c.inbox.send(Input::PeerDown(*gone));
        }
        for back in alive
            .iter()
            .filter(|id| !self.alive.contains(id) && **id != c.me)
        {
            c.event(
                "member.up",
                Severity::Info,
                format!("server {back} is alive"),
            );
        }
        self.alive = alive.clone();
        c.metrics.set_members_alive(alive.len());
    }

    /// The majority may have taken our elements over: fence (once), and let a master re-claim
    /// above whatever term was elected meanwhile.
    async fn disowned(&mut self) {
        let c = self.cluster.clone();
        let fresh_fence = {
            let st = c.lock();
            // Nothing applied yet (a start without answers): nothing to fence.
            !st.fenced && st.applied != AssignmentId::default()
        };
        if !fresh_fence {
            return;
        }
        c.fence().await;
        if self.election.role() == Role::Master {
            self.handle(Input::Start).await;
        }
    }
}
