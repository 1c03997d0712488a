//! The master's duties while it holds a term: keep every element owned by exactly one live
//! member, move as few as balance needs, and hand alarms over with the elements.
//!
//! A move away from a live member is two steps: the loser releases (stops polling, returns the
//! alarms) and only then does the winner get the assignment. If a release fails the round is
//! abandoned and retried, so an element is never polled by both.

use super::Cluster;
use super::assignment::{HoldDown, Member, assign_elements, diff};
use super::election::has_quorum;
use super::protocol::{Assignment, AssignmentId, Handover, Push, Release, Released};
use crate::model::{NewEvent, ServerId, Severity};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

pub(super) async fn run(c: Arc<Cluster>, term: u64) {
    let origin = Instant::now();
    let mut hold = HoldDown::new(c.timings.hold_down.as_millis() as u64);
    let mut tick = tokio::time::interval(c.timings.heartbeat);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now_ms = origin.elapsed().as_millis() as u64;
        round(&c, term, &mut hold, now_ms).await;
    }
}

async fn round(c: &Arc<Cluster>, term: u64, hold: &mut HoldDown, now_ms: u64) {
    let alive = c.alive_members();
    hold.observe(now_ms, &alive);
    if !has_quorum(alive.len(), c.members.len()) || c.lock().term != term {
        return;
    }
    // Decide only from the newest assignment a majority knows of: a master that just started
    // (or came back) must not redistribute from its own outdated copy.
    if !c.catch_up_assignment().await {
        return;
    }
    let current = c.assignment();
    let inventory = c.inventory();
    let weights = c.weights();
    let members: Vec<Member> = hold
        .eligible(now_ms, &current.owners)
        .into_iter()
        .filter(|id| alive.contains(id))
        .map(|id| Member::weighted(id, weights.get(&id).copied().unwrap_or(1)))
        .collect();
    let next = assign_elements(&inventory, &members, &current.owners);
    if next == current.owners && current.id.term == term && current.elements == inventory {
        repush_stale(c, &current, &alive).await;
        return;
    }
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
    push_all(c, &assignment, &alive, handover).await;
}

/// Members that restarted, were fenced, or missed a push get the current assignment again.
async fn repush_stale(c: &Arc<Cluster>, current: &Assignment, alive: &[ServerId]) {
    let stale: Vec<ServerId> = {
        let st = c.lock();
        alive
            .iter()
            .copied()
            .filter(|&id| {
                if id == c.me {
                    st.applied != current.id
                } else {
                    st.membership
                        .info(id)
                        .is_some_and(|i| i.applied != current.id)
                }
            })
            .collect()
    };
    if !stale.is_empty() {
        push_all(c, current, &stale, BTreeMap::new()).await;
    }
}

async fn push_all(
    c: &Arc<Cluster>,
    assignment: &Assignment,
    to: &[ServerId],
    mut handover: BTreeMap<ServerId, Handover>,
) {
    let mut set = JoinSet::new();
    for &id in to {
        let push = Push {
            assignment: assignment.clone(),
            handover: handover.remove(&id).unwrap_or_default(),
        };
        let c = c.clone();
        set.spawn(async move {
            let r = if id == c.me {
                c.apply_push(push).await.map_err(|e| e.to_string())
            } else {
                c.transport
                    .post::<_, serde_json::Value>(
                        id,
                        "/peer/v1/assignment",
                        &push,
                        c.timings.failure_timeout,
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = r {
                tracing::warn!("assignment push to server {id} failed: {e}");
            }
        });
    }
    while set.join_next().await.is_some() {}
}
