//! Logs a repeated refusal once per source per period instead of once per request: a hostile
//! or broken peer sending four requests a second must not fill the journal, but the first
//! refusal of each minute is still there to read. The counters count every one.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sources remembered at most; past that the oldest entries are forgotten (a spoofing flood of
/// source addresses must not grow memory without bound).
const MAX_SOURCES: usize = 4096;

pub(crate) struct RateLog<K> {
    period: Duration,
    last: Mutex<HashMap<K, (Instant, u64)>>,
}

impl<K: Hash + Eq + Clone> RateLog<K> {
    pub(crate) fn new(period: Duration) -> RateLog<K> {
        RateLog {
            period,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Some(n) when `key`'s refusal is to be logged now, with the n refusals of it that were
    /// not logged since the last time; None to stay silent.
    pub(crate) fn admit(&self, key: &K) -> Option<u64> {
        self.admit_at(key, Instant::now())
    }

    fn admit_at(&self, key: &K, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, skipped)) = last.get_mut(key) {
            if now.saturating_duration_since(*at) < self.period {
                *skipped = skipped.saturating_add(1);
                return None;
            }
            let n = *skipped;
            *at = now;
            *skipped = 0;
            return Some(n);
        }
        if last.len() >= MAX_SOURCES {
            let period = self.period;
            last.retain(|_, (at, _)| now.saturating_duration_since(*at) < period);
            if last.len() >= MAX_SOURCES {
                last.clear();
            }
        }
        last.insert(key.clone(), (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_key_per_period_with_the_count_of_the_silent_ones() {
        let log = RateLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(log.admit_at(&1, t0), Some(0));
        assert_eq!(log.admit_at(&1, t0 + Duration::from_secs(1)), None);
        assert_eq!(log.admit_at(&1, t0 + Duration::from_secs(2)), None);
        assert_eq!(log.admit_at(&2, t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(log.admit_at(&1, t0 + Duration::from_secs(61)), Some(2));
        assert_eq!(log.admit_at(&1, t0 + Duration::from_secs(62)), None);
    }

    #[test]
    fn memory_is_bounded() {
        let log = RateLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for k in 0..(MAX_SOURCES as u32 * 3) {
            log.admit_at(&k, t0);
        }
        assert!(log.last.lock().unwrap().len() <= MAX_SOURCES);
    }
}
