//! One shared copy of values that repeat across thousands of elements and every poll
//! (interface names, sysDescr). A router's 24 interface names are the same on every router of
//! its model, so at 10,000 elements interning turns ~500,000 small allocations into a few
//! hundred, and a poll that sees unchanged names allocates nothing to keep them.
//!
//! Values nobody holds any more are dropped when the table has doubled since the last sweep,
//! so names of removed elements or renamed interfaces do not accumulate.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

const MIN_SWEEP: usize = 1024;

pub struct Interner<T: ?Sized> {
    inner: Mutex<Table<T>>,
}

struct Table<T: ?Sized> {
    by_hash: HashMap<u64, Vec<Arc<T>>>,
    len: usize,
    sweep_at: usize,
}

impl<T: ?Sized + Eq + Hash> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            inner: Mutex::new(Table {
                by_hash: HashMap::new(),
                len: 0,
                sweep_at: MIN_SWEEP,
            }),
        }
    }
}

impl<T: ?Sized + Eq + Hash> Interner<T> {
    /// The shared copy equal to `value`; `make` builds it when there is none yet.
    pub fn intern(&self, value: &T, make: impl FnOnce(&T) -> Arc<T>) -> Arc<T> {
        let mut h = DefaultHasher::new();
        value.hash(&mut h);
        let hash = h.finish();
        // Plain data inside: a panic elsewhere cannot leave it inconsistent.
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = t
            .by_hash
            .get(&hash)
            .and_then(|v| v.iter().find(|a| ***a == *value))
        {
            return found.clone();
        }
        let shared = make(value);
        t.by_hash.entry(hash).or_default().push(shared.clone());
        t.len += 1;
        if t.len >= t.sweep_at {
            t.sweep();
        }
        shared
    }

    /// Distinct values held (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Interner<str> {
    pub fn string(&self, s: &str) -> Arc<str> {
        self.intern(s, |v| Arc::from(v))
    }
}

impl<T: ?Sized> Table<T> {
    fn sweep(&mut self) {
        self.by_hash.retain(|_, v| {
            v.retain(|a| Arc::strong_count(a) > 1);
            !v.is_empty()
        });
        self.len = self.by_hash.values().map(Vec::len).sum();
        self.sweep_at = (self.len * 2).max(MIN_SWEEP);
    }
}

/// Shared strings (sysDescr and the like).
pub fn shared_str(s: &str) -> Arc<str> {
    static STRINGS: std::sync::LazyLock<Interner<str>> =
        std::sync::LazyLock::new(Interner::default);
    STRINGS.string(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_allocation() {
        let i: Interner<str> = Interner::default();
        let a = i.string("GigabitEthernet0/1");
        let b = i.string("GigabitEthernet0/1");
        let c = i.string("GigabitEthernet0/2");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn values_nobody_holds_are_swept() {
        let i: Interner<str> = Interner::default();
        let kept = i.string("kept");
        for n in 0..5 * MIN_SWEEP {
            drop(i.string(&format!("gone{n}")));
        }
        // Bounded by the sweep, not by the number of distinct values ever seen.
        assert!(i.len() <= MIN_SWEEP, "{} values held", i.len());
        assert!(Arc::ptr_eq(&kept, &i.string("kept")));
    }
}
