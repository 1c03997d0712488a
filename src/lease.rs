//! The right to act on owned elements: held while a majority of the pool keeps answering.
//!
//! Polls, alarm changes, traps and NETCONF notifications ask [`Lease::may_act`] at the moment
//! they act, on the monotonic clock. A server that was paused (SIGSTOP, a VM freeze) or cut off
//! therefore does nothing between waking up and its pool driver noticing: its timers fire
//! first, and the majority may have given its elements to others meanwhile.
//!
//! The lease runs from the instant a heartbeat was *sent* whose answer completed a majority:
//! whoever answered it heard from us at that instant or later, and keeps us alive for
//! `failure_timeout` from then. So nobody can have taken anything over before
//! `base + takeover` (`takeover` = failure_timeout minus a margin for clock rate and
//! scheduling), and the lease (`base + lease`, with lease < takeover) ends before that.
//! Once `takeover` has passed without a renewal the server is *disowned*: whatever it applied
//! before may belong to others now. It stays so, even if answers come back, until it applies
//! an assignment again (fence first, then rejoin).

use crate::config::{Config, takeover_after};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `base` of a lease that never ends (a pool of one: this server is its own majority).
const FOREVER: u64 = u64::MAX;

pub(crate) struct Lease {
    origin: Instant,
    /// Nanoseconds after `origin` the lease runs from, or [`FOREVER`].
    base: AtomicU64,
    lease: Duration,
    takeover: Duration,
    disowned: AtomicBool,
}

impl Lease {
    /// A lease that holds from now for `lease`, until renewed.
    pub(crate) fn new(lease: Duration, takeover: Duration) -> Lease {
        Lease {
            origin: Instant::now(),
            base: AtomicU64::new(0),
            lease,
            takeover: takeover.max(lease),
            disowned: AtomicBool::new(false),
        }
    }

    /// The lease of this server: bounded when a majority of its pool is others.
    pub(crate) fn for_config(config: &Config) -> Lease {
        match &config.pool {
            Some(p) if p.members.len() / 2 > 0 => {
                Lease::new(p.lease, takeover_after(p.failure_timeout))
            }
            _ => Lease::forever(),
        }
    }

    /// A lease that always holds (a server without a pool).
    pub(crate) fn forever() -> Lease {
        let l = Lease::new(Duration::ZERO, Duration::ZERO);
        l.base.store(FOREVER, Ordering::Relaxed);
        l
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(FOREVER - 1)
    }

    fn since_base(&self, now: Instant) -> Option<Duration> {
        let base = self.base.load(Ordering::Acquire);
        (base != FOREVER).then(|| Duration::from_nanos(self.nanos(now).saturating_sub(base)))
    }

    /// Whether this server may poll, raise or clear alarms now.
    pub(crate) fn may_act(&self) -> bool {
        self.may_act_at(Instant::now())
    }

    pub(crate) fn may_act_at(&self, now: Instant) -> bool {
        !self.disowned.load(Ordering::Acquire) && self.fresh_at(now)
    }

    /// Whether a majority answered within the lease, disowned or not (a master decides again
    /// only with a fresh lease; its own new assignment then restores it).
    pub(crate) fn fresh_at(&self, now: Instant) -> bool {
        self.since_base(now).is_none_or(|d| d < self.lease)
    }

    /// A majority answered heartbeats sent at `base` or later. A lease that had run past
    /// `takeover` before this renewal stays disowned (the driver's next tick fences).
    pub(crate) fn renew(&self, base: Instant, now: Instant) {
        self.overdue(now);
        let b = self.nanos(base);
        let _ = self
            .base
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                (old != FOREVER && b > old).then_some(b)
            });
    }

    /// Whether the majority may have taken over by now; if so the server is disowned.
    pub(crate) fn overdue(&self, now: Instant) -> bool {
        let over = self.since_base(now).is_some_and(|d| d >= self.takeover);
        if over {
            self.disowned.store(true, Ordering::Release);
        }
        over
    }

    pub(crate) fn disowned(&self) -> bool {
        self.disowned.load(Ordering::Acquire)
    }

    /// An assignment was applied after the fence: act by it.
    pub(crate) fn restore(&self) {
        self.disowned.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn holds_for_the_lease_from_the_send_instant_then_not() {
        let l = Lease::new(800 * MS, 900 * MS);
        let t0 = Instant::now();
        l.renew(t0, t0);
        assert!(!l.disowned());
        assert!(l.may_act_at(t0 + 799 * MS));
        assert!(!l.may_act_at(t0 + 800 * MS), "lease ended");
        assert!(!l.overdue(t0 + 899 * MS));
        assert!(!l.disowned(), "before takeover a late answer still renews");
        l.renew(t0 + 500 * MS, t0 + 899 * MS);
        assert!(!l.disowned());
        assert!(l.may_act_at(t0 + 1000 * MS));
    }

    #[test]
    fn a_renewal_after_takeover_leaves_it_disowned_until_restored() {
        let l = Lease::new(800 * MS, 900 * MS);
        let t0 = Instant::now();
        l.renew(t0, t0);
        // Paused for 3 s: the answers that come back must not re-open the old ownership.
        let woke = t0 + 3000 * MS;
        l.renew(woke, woke + 5 * MS);
        assert!(l.disowned(), "lapsed past takeover");
        assert!(!l.may_act_at(woke + 10 * MS));
        l.restore();
        assert!(l.may_act_at(woke + 10 * MS));
    }

    #[test]
    fn an_older_answer_never_moves_the_base_back() {
        let l = Lease::new(800 * MS, 900 * MS);
        let t0 = Instant::now();
        l.renew(t0 + 500 * MS, t0 + 500 * MS);
        l.renew(t0 + 100 * MS, t0 + 600 * MS);
        assert!(l.may_act_at(t0 + 1200 * MS));
    }

    #[test]
    fn forever_always_holds() {
        let l = Lease::forever();
        let t0 = Instant::now();
        assert!(!l.overdue(t0 + Duration::from_secs(3600)));
        assert!(l.may_act_at(t0 + Duration::from_secs(3600)));
    }
}
