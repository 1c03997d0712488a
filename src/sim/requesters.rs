//! Which pool member polled each agent, and when: emspool puts the polling server's id in
//! bits 24..30 of every request id, so the agent side can prove that an element is polled by
//! exactly one server. Opt-in, since it costs 512 bytes per agent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const TAGS: usize = 64;

/// Last request time per (agent, tag), in milliseconds since the simulator started, plus one.
pub struct Requesters {
    last: Vec<[AtomicU64; TAGS]>,
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
        }
    }

    pub fn record(&self, agent: usize, request_id: i32, elapsed: Duration) {
        if let Some(slots) = self.last.get(agent) {
            let ms = elapsed.as_millis() as u64 + 1;
            slots[usize::from(tag_of(request_id))].fetch_max(ms, Ordering::Relaxed);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
