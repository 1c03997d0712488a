//! Which server polls which network element (NE): a pure function of the inventory, the members
//! allowed to own NEs, and the previous assignment.
//!
//! - **Balanced.** Let `E` be the number of NEs and `w` the members' weights. A member whose pinned
//!   NEs alone exceed its proportional share holds exactly its pins; the others split the remaining
//!   `E'` NEs by weight, each holding `floor(s)` or `ceil(s)` of its share `s = E' * w / W'` (`W'`
//!   their total weight), so every member is within one NE of its share. With equal weights and
//!   no pins, loads differ by at most one.
//! - **Stable.** Among all balanced outcomes it picks one with the fewest moves of NEs whose owner is
//!   still live: an NE moves only if its pin says so or its owner is over its share, and the member
//!   that rounds up is preferably one that already holds the NE it would otherwise shed.
//! - **Deterministic.** Only ordered collections; the order of the inputs does not matter.
//!
//! Hysteresis is the driver's: it passes as `live` only the members [`HoldDown`] finds eligible,
//! so that a member flapping up and down is not handed NEs each time it reappears.

use crate::model::{Element, ServerId};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A member that may own NEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Member {
    pub(crate) id: ServerId,
    /// Relative capacity. 0 drains the member: it keeps only the NEs pinned to it.
    #[serde(default = "default_weight")]
    pub(crate) weight: u32,
}

fn default_weight() -> u32 {
    1
}

impl Member {
    #[cfg(test)]
    pub(crate) fn new(id: ServerId) -> Member {
        Member { id, weight: 1 }
    }

    pub(crate) fn weighted(id: ServerId, weight: u32) -> Member {
        Member { id, weight }
    }
}

/// One change of owner between two assignments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Move {
    pub(crate) element: String,
    /// `None` for an NE that had no owner (new in the inventory, or first assignment).
    pub(crate) from: Option<ServerId>,
    pub(crate) to: ServerId,
}

/// Owner of every NE in `elements`, given as `(name, pin)`.
///
/// Duplicates count once, whatever their order: a name keeps its highest pin (any pin beats
/// none), a member its largest weight. A pin to a member not in `live` is ignored until that member is back. If every
/// weight is 0 the members share equally: NEs must be polled by someone. Empty `live` gives an
/// empty map.
pub(crate) fn assign<'a>(
    elements: impl IntoIterator<Item = (&'a Arc<str>, Option<ServerId>)>,
    live: &[Member],
    previous: &BTreeMap<Arc<str>, ServerId>,
) -> BTreeMap<Arc<str>, ServerId> {
    let mut weight_of = BTreeMap::new();
    for m in live {
        let w = weight_of.entry(m.id).or_insert(m.weight);
        *w = (*w).max(m.weight);
    }
    if weight_of.is_empty() {
        return BTreeMap::new();
    }
    let ids: Vec<ServerId> = weight_of.keys().copied().collect();
    let mut weights: Vec<u32> = weight_of.into_values().collect();
    if weights.iter().all(|&w| w == 0) {
        weights.fill(1);
    }
    let index = |id: ServerId| ids.binary_search(&id).ok();

    let mut inventory = BTreeMap::new();
    for (name, pin) in elements {
        let p = inventory.entry(name).or_insert(pin);
        *p = (*p).max(pin);
    }

    let k = ids.len();
    let mut next = BTreeMap::new();
    let mut pinned = vec![0u64; k];
    // NEs free to go anywhere, by their live previous owner, in name order.
    let mut kept: Vec<Vec<&Arc<str>>> = vec![Vec::new(); k];
    let mut homeless = Vec::new();
    for (&name, &pin) in &inventory {
        if let Some(i) = pin.and_then(index) {
            pinned[i] += 1;
            next.insert(name.clone(), ids[i]);
        } else if let Some(i) = previous.get(&**name).and_then(|&owner| index(owner)) {
            kept[i].push(name);
        } else {
            homeless.push(name);
        }
    }
    let held: Vec<u64> = (0..k).map(|i| pinned[i] + kept[i].len() as u64).collect();
    let (quotas, round_ups) = quotas(inventory.len() as u64, &weights, &pinned);
    let targets = targets(&quotas, round_ups, &held);

    for i in 0..k {
        let room = (targets[i] - pinned[i]) as usize;
        if kept[i].len() > room {
            homeless.extend(kept[i].drain(room..));
        }
        for &name in &kept[i] {
            next.insert(name.clone(), ids[i]);
        }
    }
    homeless.sort_unstable();
    let mut homeless = homeless.into_iter();
    for i in 0..k {
        let deficit = (targets[i] - pinned[i]) as usize - kept[i].len();
        for name in homeless.by_ref().take(deficit) {
            next.insert(name.clone(), ids[i]);
        }
    }
    debug_assert!(homeless.next().is_none(), "targets add up to the inventory");
    next
}

/// [`assign`] over the inventory's own type.
pub(crate) fn assign_elements(
    elements: &[Element],
    live: &[Member],
    previous: &BTreeMap<Arc<str>, ServerId>,
) -> BTreeMap<Arc<str>, ServerId> {
    assign(elements.iter().map(|e| (&e.name, e.pin)), live, previous)
}

/// The NEs whose owner differs, in name order. NEs that left the inventory are not moves.
pub(crate) fn diff(
    previous: &BTreeMap<Arc<str>, ServerId>,
    next: &BTreeMap<Arc<str>, ServerId>,
) -> Vec<Move> {
    next.iter()
        .filter(|&(name, to)| previous.get(name) != Some(to))
        .map(|(name, &to)| Move {
            element: name.to_string(),
            from: previous.get(name).copied(),
            to,
        })
        .collect()
}

/// NEs per owner.
pub(crate) fn loads(assignment: &BTreeMap<Arc<str>, ServerId>) -> BTreeMap<ServerId, usize> {
    let mut loads = BTreeMap::new();
    for &owner in assignment.values() {
        *loads.entry(owner).or_default() += 1;
    }
    loads
}

/// What balance allows one member: `floor` NEs, or one more if `may_round_up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    floor: u64,
    may_round_up: bool,
    /// Fraction of the share above `floor`, over a denominator common to all members.
    remainder: u128,
}

/// Water-filling: members whose pins exceed their share are held to their pins, which shrinks
/// everyone else's share, until no one is over. Returns each member's quota and how many of the
/// members that may round up must do so for the quotas to add up to `total`.
fn quotas(total: u64, weights: &[u32], pinned: &[u64]) -> (Vec<Quota>, u64) {
    let k = weights.len();
    let mut capped = vec![false; k];
    let (rest, rest_weight) = loop {
        let rest = total
            - (0..k)
                .filter(|&i| capped[i])
                .map(|i| pinned[i])
                .sum::<u64>();
        let rest_weight: u128 = (0..k)
            .filter(|&i| !capped[i])
            .map(|i| u128::from(weights[i]))
            .sum();
        let over: Vec<usize> = (0..k)
            .filter(|&i| {
                !capped[i]
                    && u128::from(pinned[i]) * rest_weight
                        > u128::from(rest) * u128::from(weights[i])
            })
            .collect();
        if over.is_empty() {
            break (rest, rest_weight);
        }
        for i in over {
            capped[i] = true;
        }
    };
    // Capping can never take every positive weight (their pins would exceed what is left), so
    // the uncapped always have weight unless nothing is left to share.
    debug_assert!(rest_weight > 0 || rest == 0);
    let quotas: Vec<Quota> = (0..k)
        .map(|i| {
            if capped[i] || rest_weight == 0 {
                return Quota {
                    floor: pinned[i],
                    may_round_up: false,
                    remainder: 0,
                };
            }
            let share = u128::from(rest) * u128::from(weights[i]);
            let remainder = share % rest_weight;
            Quota {
                floor: (share / rest_weight) as u64,
                may_round_up: remainder != 0,
                remainder,
            }
        })
        .collect();
    let round_ups = total - quotas.iter().map(|q| q.floor).sum::<u64>();
    (quotas, round_ups)
}

/// Picks who rounds up. Rounding up a member that already holds more than its floor spares one
/// move; beyond that the largest remainder (the most deserving), then the lowest id, for
/// determinism.
fn targets(quotas: &[Quota], round_ups: u64, held: &[u64]) -> Vec<u64> {
    let mut candidates: Vec<usize> = (0..quotas.len())
        .filter(|&i| quotas[i].may_round_up)
        .collect();
    candidates.sort_by_key(|&i| {
        (
            Reverse(held[i] > quotas[i].floor),
            Reverse(quotas[i].remainder),
            i,
        )
    });
    debug_assert!(round_ups as usize <= candidates.len());
    let mut targets: Vec<u64> = quotas.iter().map(|q| q.floor).collect();
    for &i in candidates.iter().take(round_ups as usize) {
        targets[i] += 1;
    }
    targets
}

/// Hysteresis for members coming back: a member that was not alive must stay alive for `hold`
/// before it is handed NEs, so one that flaps is not loaded and unloaded on every flap.
///
/// Times are the driver's monotonic milliseconds (any origin). Members that own NEs in the
/// current assignment stay eligible while alive: a new master must not strip a healthy pool
/// just because it has not watched it for `hold` yet.
#[derive(Debug, Clone)]
pub(crate) struct HoldDown {
    hold: u64,
    alive_since: BTreeMap<ServerId, u64>,
}

impl HoldDown {
    pub(crate) fn new(hold_ms: u64) -> HoldDown {
        HoldDown {
            hold: hold_ms,
            alive_since: BTreeMap::new(),
        }
    }

    /// Records which members are alive at `now_ms`. Call it on every liveness change (or at
    /// least as often as liveness is sampled): a member missing from one call starts over.
    pub(crate) fn observe(&mut self, now_ms: u64, alive: &[ServerId]) {
        self.alive_since.retain(|id, _| alive.contains(id));
        for &id in alive {
            self.alive_since.entry(id).or_insert(now_ms);
        }
    }

    /// The alive members that may own NEs: owners in `current`, and those alive for `hold`.
    /// If that is nobody, every alive member, so that hysteresis never leaves NEs unpolled.
    pub(crate) fn eligible(
        &self,
        now_ms: u64,
        current: &BTreeMap<Arc<str>, ServerId>,
    ) -> Vec<ServerId> {
        let owners: BTreeSet<ServerId> = current.values().copied().collect();
        let eligible: Vec<ServerId> = self
            .alive_since
            .iter()
            .filter(|&(id, &since)| {
                owners.contains(id) || now_ms.saturating_sub(since) >= self.hold
            })
            .map(|(&id, _)| id)
            .collect();
        if eligible.is_empty() {
            self.alive_since.keys().copied().collect()
        } else {
            eligible
        }
    }

    #[cfg(test)]
    /// When the next alive member's hold ends, so that the driver re-runs [`assign`] then.
    pub(crate) fn next_change(&self, now_ms: u64) -> Option<u64> {
        self.alive_since
            .values()
            .map(|&since| since.saturating_add(self.hold))
            .filter(|&at| at > now_ms)
            .min()
    }
}

#[cfg(test)]
#[path = "assignment_tests.rs"]
mod tests;
