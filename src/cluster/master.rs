//! The master's duties while it holds a term: keep every element owned by exactly one live
//! member, move as few as balance needs, and hand alarms over with the elements.
//!
//! A move away from a live member is two steps: the loser releases (stops polling, returns the
//! alarms) and only then does the winner get the assignment. If a release fails the round is
//! abandoned and retried, so an element is never polled by both.
//!
//! The master applies and persists each assignment itself first, then sends every member what
//! changed since the version that member holds (`delta`), or the whole assignment in chunks
//! when that version is no longer in its history or the deltas would outweigh a chunk.

use super::Cluster;
use super::assignment::{HoldDown, Member, assign_elements, diff};
use super::delta::{self, Ack, History, Push};
use super::election::{self, has_quorum};
use super::protocol::{Assignment, AssignmentId, Handover, Release, Released};
use super::transport::PeerError;
use crate::model::{NewEvent, ServerId, Severity};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// Element changes the history keeps (older members get a snapshot).
const HISTORY_ENTRIES: usize = 50_000;
/// A push whose deltas weigh more than this goes as a snapshot instead; also the size of one
/// snapshot chunk. Well below the peer API's body limit.
pub(crate) const MAX_BODY: usize = 512 * 1024;

/// What the master remembers between rounds to send each member only what it lacks.
struct Distribution {
    history: History,
    /// The version each member said it holds in its last answer to a push.
    known: BTreeMap<ServerId, AssignmentId>,
    /// The inputs of the last round that found nothing to change.
    settled: Option<Inputs>,
}

/// What an assignment round decides from, besides the inventory's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    current: AssignmentId,
    /// Journal sequence of the pending inventory, if any.
    pending: Option<u64>,
    members: Vec<Member>,
}

pub(super) async fn run(c: Arc<Cluster>, term: u64) {
    let origin = Instant::now();
    let mut hold = HoldDown::new(c.timings.hold_down.as_millis() as u64);
    let mut tick = tokio::time::interval(c.timings.heartbeat);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut dist = Distribution {
        history: History::new(HISTORY_ENTRIES),
        known: BTreeMap::new(),
        settled: None,
    };
    loop {
        // An inventory change starts a round at once: clients wait for its `applied` version.
        tokio::select! {
            _ = tick.tick() => {}
            _ = c.inventory_changed.notified() => {}
        }
        let now_ms = origin.elapsed().as_millis() as u64;
        round(&c, term, &mut hold, now_ms, &mut dist).await;
    }
}

async fn round(
    c: &Arc<Cluster>,
    term: u64,
    hold: &mut HoldDown,
    now_ms: u64,
    dist: &mut Distribution,
) {
    let alive = c.alive_members();
    hold.observe(now_ms, &alive);
    if !has_quorum(alive.len(), c.members.len()) || c.lock().term != term {
        return;
    }
    // Cut off or just woken up: a majority must have answered within the lease.
    if !c.poller.lease().fresh_at(std::time::Instant::now()) {
        return;
    }
    // Just started or woken up: a member not heard yet may be alive and polling; taking its
    // elements without a release now would poll them twice.
    if c.lock().membership.undecided(Instant::now()) {
        return;
    }
    // Decide only from the newest assignment a majority knows of: a master that just started
    // (or came back) must not redistribute from its own outdated copy.
    if !c.catch_up_assignment().await {
        return;
    }
    // A newer term made that assignment: the election has to out-bid it before we decide.
    if c.assignment_id().term > term {
        return;
    }
    let weights = c.weights();
    let (members, inputs) = {
        let st = c.lock();
        let members: Vec<Member> = hold
            .eligible(now_ms, &st.assignment.owners)
            .into_iter()
            .filter(|id| alive.contains(id))
            .map(|id| Member::weighted(id, weights.get(&id).copied().unwrap_or(1)))
            .collect();
        let inputs = Inputs {
            current: st.assignment.id,
            pending: st.pending.as_ref().map(|p| p.seq),
            members: members.clone(),
        };
        (members, inputs)
    };
    // Same inputs as a round that found nothing to change: skip the O(inventory) work (at
    // 100,000 elements it would cost the master a good part of a core, every heartbeat).
    if dist.settled.as_ref() == Some(&inputs) {
        repush_stale(c, inputs.current, &alive, dist).await;
        return;
    }
    let current = c.assignment();
    let (inventory, credentials, seq) = c.inventory();
    let next = assign_elements(&inventory, &members, &current.owners);
    if next == current.owners
        && current.id.term == term
        && current.elements == inventory
        && current.credentials.as_ref() == Some(&credentials)
    {
        if c.lock().applied == current.id {
            // Changes that changed nothing (replays of what is there) are applied too.
            c.settled(seq, current.id).await;
        }
        dist.settled = Some(inputs);
        repush_stale(c, current.id, &alive, dist).await;
        return;
    }
    dist.settled = None;
    let moves = diff(&current.owners, &next);
    let mut released: BTreeMap<ServerId, Vec<String>> = BTreeMap::new();
    for m in &moves {
        if let Some(from) = m.from.filter(|f| alive.contains(f)) {
            released.entry(from).or_default().push(m.element.clone());
        }
    }
    let mut handover: BTreeMap<ServerId, Handover> = BTreeMap::new();
    for (loser, names) in released {
        let release = Release {
            term,
            elements: names,
        };
        let r: Result<Released, String> = if loser == c.me {
            c.release(release).await.map_err(|e| e.to_string())
        } else {
            c.transport
                .post(
                    loser,
                    "/peer/v1/release",
                    &release,
                    c.timings.failure_timeout,
                )
                .await
                .map_err(|e| e.to_string())
        };
        match r {
            Ok(r) => {
                for a in r.alarms {
                    if let Some(to) = next.get(a.element.as_str()) {
                        handover.entry(*to).or_default().alarms.push(a);
                    }
                }
                for (name, st) in r.statuses {
                    if let Some(to) = next.get(name.as_str()) {
                        handover.entry(*to).or_default().statuses.push((name, st));
                    }
                }
            }
            Err(e) => {
                tracing::warn!("hand-over from server {loser} failed, retrying: {e}");
                return;
            }
        }
    }
    let version = if current.id.term == term {
        current.id.version + 1
    } else {
        1
    };
    let assignment = Assignment {
        id: AssignmentId { term, version },
        elements: inventory,
        owners: next,
        credentials: Some(credentials),
    };
    for m in &moves {
        let from = m
            .from
            .map_or("nobody".to_owned(), |f| format!("server {f}"));
        c.events.append(NewEvent::now(
            Some(&m.element),
            "ownership.moved",
            Severity::Info,
            format!("{} moved from {from} to server {}", m.element, m.to),
        ));
    }
    c.metrics.add_moves(moves.len());
    tracing::info!(
        "assignment {term}/{version}: {} element(s), {} move(s)",
        assignment.elements.len(),
        moves.len()
    );
    // Durable here before anyone else hears of it: what the API calls `applied`.
    let own = handover.remove(&c.me).unwrap_or_default();
    let started = Instant::now();
    let mine = c.apply_own(assignment.clone(), own).await;
    let applied_in = started.elapsed();
    if let Err(e) = &mine {
        tracing::warn!(
            "cannot apply assignment {}/{version} here: {e}",
            election::term_text(term)
        );
    }
    dist.history.record(delta::diff(&current, &assignment));
    let others: Vec<ServerId> = alive.iter().copied().filter(|&id| id != c.me).collect();
    let id = assignment.id;
    push_all(c, &Arc::new(assignment), &others, handover, dist).await;
    // `applied` once persisted here and offered to every live member: a client told 201 finds
    // the change on any member that acknowledged.
    if mine.is_ok() {
        c.settled(seq, id).await;
    }
    tracing::debug!(
        "assignment {term}/{version}: applied here in {applied_in:?}, pushed in {:?}",
        started.elapsed().saturating_sub(applied_in)
    );
}

/// Members that restarted, were fenced, or missed a push get the current assignment again.
async fn repush_stale(
    c: &Arc<Cluster>,
    current: AssignmentId,
    alive: &[ServerId],
    dist: &mut Distribution,
) {
    let (me_stale, stale): (bool, Vec<ServerId>) = {
        let st = c.lock();
        let stale = alive
            .iter()
            .copied()
            .filter(|&id| id != c.me)
            .filter(|&id| st.membership.info(id).is_some_and(|i| i.applied != current))
            .collect();
        (st.applied != current, stale)
    };
    if !me_stale && stale.is_empty() {
        return;
    }
    let assignment = c.assignment();
    if assignment.id != current {
        return;
    }
    if me_stale && let Err(e) = c.apply_own(assignment.clone(), Handover::default()).await {
        tracing::warn!("cannot apply the current assignment here: {e}");
    }
    if !stale.is_empty() {
        push_all(c, &Arc::new(assignment), &stale, BTreeMap::new(), dist).await;
    }
}

async fn push_all(
    c: &Arc<Cluster>,
    assignment: &Arc<Assignment>,
    to: &[ServerId],
    mut handover: BTreeMap<ServerId, Handover>,
    dist: &mut Distribution,
) {
    let mut set = JoinSet::new();
    for &id in to {
        let base = {
            let st = c.lock();
            let heard = st.membership.info(id).map(|i| i.known);
            dist.known.get(&id).copied().or(heard).unwrap_or_default()
        };
        let deltas = if base == assignment.id {
            Some(Vec::new())
        } else {
            dist.history.since(base)
        };
        let handover = handover.remove(&id).unwrap_or_default();
        let c = c.clone();
        let assignment = assignment.clone();
        set.spawn(async move {
            let ack = send(&c, id, base, deltas, &assignment, handover).await;
            (id, ack)
        });
    }
    while let Some(r) = set.join_next().await {
        if let Ok((id, Some(ack))) = r {
            dist.known.insert(id, ack.known);
        }
    }
}

/// Sends `to` the deltas from `base` (if any and small enough), else the whole assignment in
/// chunks; also when the member refuses the deltas (it holds another version than we thought).
async fn send(
    c: &Arc<Cluster>,
    to: ServerId,
    base: AssignmentId,
    deltas: Option<Vec<delta::Delta>>,
    assignment: &Assignment,
    handover: Handover,
) -> Option<Ack> {
    // Applying means persisting the member's copy: allow for a large inventory.
    let timeout = c.timings.failure_timeout * 4;
    let mut handover = handover;
    if let Some(deltas) = deltas {
        let push = Push {
            from: c.me,
            base,
            id: assignment.id,
            deltas,
            handover,
        };
        match serde_json::to_vec(&push) {
            Ok(body) if body.len() <= MAX_BODY => {
                c.metrics.add_push_bytes("delta", body.len());
                let r: Result<Ack, PeerError> = c
                    .transport
                    .post_raw(to, "/peer/v1/assignment", body, timeout)
                    .await;
                match r {
                    Ok(ack) => return Some(ack),
                    Err(PeerError::Refused(_, 409, why)) => {
                        tracing::debug!("server {to} refused deltas, sending a snapshot: {why}");
                    }
                    Err(e) => {
                        tracing::warn!("assignment push to server {to} failed: {e}");
                        return None;
                    }
                }
            }
            _ => {}
        }
        handover = push.handover;
    }
    for chunk in delta::chunks(c.me, assignment, handover, MAX_BODY) {
        let last = chunk.last;
        let Ok(body) = serde_json::to_vec(&chunk) else {
            return None;
        };
        c.metrics.add_push_bytes("snapshot", body.len());
        let r: Result<Ack, PeerError> = c
            .transport
            .post_raw(to, "/peer/v1/assignment/chunk", body, timeout)
            .await;
        match r {
            Ok(ack) if last => return Some(ack),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("assignment snapshot to server {to} failed: {e}");
                return None;
            }
        }
    }
    None
}
