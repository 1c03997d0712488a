//! Which pool member polled each agent, and when: emspool puts the polling server's id in
//! bits 24..30 of every request id, so the agent side can prove that an element is polled by
//! exactly one server. Opt-in: 512 bytes per agent, plus 16 bytes per poll kept.
//!
//! Besides the last request per server, each agent keeps its newest [`HISTORY`] polls (a
//! poll: requests of one server less than [`POLL_GAP`] apart), the independent record from
//! which a test proves that no element was polled by two servers at once.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const TAGS: usize = 64;
/// Polls kept per agent (grown as used: an agent polled every minute costs little).
pub const HISTORY: usize = 512;
/// Requests of one server closer than this belong to one poll (a get and its walk).
pub const POLL_GAP: Duration = Duration::from_millis(200);

/// Last request time per (agent, tag), in milliseconds since the simulator started, plus one.
pub struct Requesters {
    last: Vec<[AtomicU64; TAGS]>,
    history: Vec<Mutex<VecDeque<Poll>>>,
}

/// One poll of an agent: who, and when its first request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    pub tag: u8,
    pub at: Duration,
}

/// One server's polling of one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requester {
    /// The tag from the request id: the polling server's id (mod 64).
    pub tag: u8,
    /// When its last request arrived, since the simulator started.
    pub last: Duration,
}

pub fn tag_of(request_id: i32) -> u8 {
    ((request_id as u32 >> 24) & 0x3f) as u8
}

impl Requesters {
    pub fn new(agents: usize) -> Requesters {
        Requesters {
            last: (0..agents)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            history: (0..agents).map(|_| Mutex::default()).collect(),
        }
    }

    pub fn record(&self, agent: usize, request_id: i32, elapsed: Duration) {
        let (Some(slots), Some(history)) = (self.last.get(agent), self.history.get(agent)) else {
            return;
        };
        let tag = tag_of(request_id);
        let ms = elapsed.as_millis() as u64 + 1;
        let before = slots[usize::from(tag)].fetch_max(ms, Ordering::Relaxed);
        if before == 0 || ms.saturating_sub(before) >= POLL_GAP.as_millis() as u64 {
            let mut h = history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(Poll { tag, at: elapsed });
        }
    }

    /// The newest polls of `agent`, oldest first.
    pub fn polls(&self, agent: usize) -> Vec<Poll> {
        let Some(h) = self.history.get(agent) else {
            return Vec::new();
        };
        let mut v: Vec<Poll> = h
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        v.sort_by_key(|p| p.at);
        v
    }

    /// Every tag that ever polled `agent`, with its last request time.
    pub fn of(&self, agent: usize) -> Vec<Requester> {
        let Some(slots) = self.last.get(agent) else {
            return Vec::new();
        };
        slots
            .iter()
            .enumerate()
            .filter_map(|(tag, v)| {
                let ms = v.load(Ordering::Relaxed);
                (ms > 0).then(|| Requester {
                    tag: tag as u8,
                    last: Duration::from_millis(ms - 1),
                })
            })
            .collect()
    }
}

/// Polls of one agent (oldest first) after `since` by a server that had already polled it
/// before another server's poll and within `window` of its own previous one: both were
/// polling it. A hand-over switches servers once; two switches within a window do not happen
/// without two pollers.
pub fn double_polls(polls: &[Poll], since: Duration, window: Duration) -> Vec<Poll> {
    let mut found = Vec::new();
    for (i, p) in polls.iter().enumerate().filter(|(_, p)| p.at > since) {
        let earlier = &polls[..i];
        let Some(mine) = earlier.iter().rposition(|q| q.tag == p.tag) else {
            continue;
        };
        let between_other = earlier[mine + 1..].iter().any(|q| q.tag != p.tag);
        if between_other && p.at.saturating_sub(earlier[mine].at) <= window {
            found.push(*p);
        }
    }
    found
}

/// The longest time within `[from, to]` without a poll of the agent by anyone.
pub fn longest_gap(polls: &[Poll], from: Duration, to: Duration) -> Duration {
    let mut last = from;
    let mut gap = Duration::ZERO;
    for p in polls.iter().filter(|p| p.at > from && p.at <= to) {
        gap = gap.max(p.at.saturating_sub(last));
        last = p.at;
    }
    gap.max(to.saturating_sub(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(tag: u8, ms: u64) -> Poll {
        Poll {
            tag,
            at: Duration::from_millis(ms),
        }
    }

    #[test]
    fn a_hand_over_is_no_double_poll_but_interleaving_is() {
        let ms = Duration::from_millis;
        let handover = [poll(3, 0), poll(3, 1000), poll(1, 1400), poll(1, 2400)];
        assert!(double_polls(&handover, Duration::ZERO, ms(1500)).is_empty());
        // The paused server's overdue timer fired after the others had taken over.
        let resumed = [
            poll(3, 0),
            poll(1, 1500),
            poll(1, 2500),
            poll(3, 3010),
            poll(1, 3500),
        ];
        assert_eq!(
            double_polls(&resumed, Duration::ZERO, ms(1500)),
            vec![poll(1, 3500)]
        );
        assert_eq!(
            double_polls(&resumed, Duration::ZERO, ms(5000)),
            vec![poll(3, 3010), poll(1, 3500)]
        );
        assert!(double_polls(&resumed, ms(3500), ms(1500)).is_empty());
        assert_eq!(longest_gap(&resumed, ms(0), ms(4000)), ms(1500));
        assert_eq!(longest_gap(&[], ms(0), ms(4000)), ms(4000));
    }

    #[test]
    fn requests_of_one_poll_are_one_entry_and_history_is_bounded() {
        let r = Requesters::new(1);
        r.record(0, 3 << 24, Duration::from_millis(10));
        r.record(0, 3 << 24, Duration::from_millis(15));
        r.record(0, 4 << 24, Duration::from_millis(16));
        r.record(0, 3 << 24, Duration::from_millis(1010));
        assert_eq!(r.polls(0), vec![poll(3, 10), poll(4, 16), poll(3, 1010)]);
        for i in 0..HISTORY as u64 + 100 {
            r.record(0, 5 << 24, Duration::from_millis(2000 + i * 1000));
        }
        assert_eq!(r.polls(0).len(), HISTORY);
    }

    #[test]
    fn records_last_time_per_tag() {
        let r = Requesters::new(2);
        r.record(1, (3 << 24) | 17, Duration::from_millis(5));
        r.record(1, (3 << 24) | 18, Duration::from_millis(9));
        r.record(1, (4 << 24) | 1, Duration::from_millis(7));
        r.record(9, 1, Duration::ZERO);
        let got = r.of(1);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            Requester {
                tag: 3,
                last: Duration::from_millis(9)
            }
        );
        assert_eq!(got[1].tag, 4);
        assert!(r.of(0).is_empty());
    }
}
