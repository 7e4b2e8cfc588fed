//! A map with a hard size bound, for per-key detector state: when full, idle entries go first,
//! then the least recently touched. An attacker rotating keys cannot grow memory.

use std::collections::HashMap;

#[derive(Debug)]
struct Slot<V> {
    value: V,
    touched_ms: u64,
}

#[derive(Debug)]
pub struct BoundedMap<V> {
    slots: HashMap<u64, Slot<V>>,
    capacity: usize,
}

impl<V> BoundedMap<V> {
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            slots: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        self.slots.get(&key).map(|s| &s.value)
    }

    pub fn remove(&mut self, key: u64) -> Option<V> {
        self.slots.remove(&key).map(|s| s.value)
    }

    /// Empties the map, yielding the values.
    pub fn drain(&mut self) -> impl Iterator<Item = V> + '_ {
        self.slots.drain().map(|(_, s)| s.value)
    }

    /// The entry for `key`, created with `make` if missing. `idle` says which entries may be
    /// dropped when the map is full.
    pub fn entry(
        &mut self,
        key: u64,
        now_ms: u64,
        make: impl FnOnce() -> V,
        idle: impl Fn(&V) -> bool,
    ) -> &mut V {
        if !self.slots.contains_key(&key) && self.slots.len() >= self.capacity {
            self.evict(&idle);
        }
        let slot = self.slots.entry(key).or_insert_with(|| Slot {
            value: make(),
            touched_ms: now_ms,
        });
        slot.touched_ms = now_ms;
        &mut slot.value
    }

    /// Frees about an eighth of the map (so eviction is rare): idle entries first, then the
    /// least recently touched.
    fn evict(&mut self, idle: &impl Fn(&V) -> bool) {
        self.slots.retain(|_, s| !idle(&s.value));
        let target = self.capacity - self.capacity / 8 - 1;
        let excess = self.slots.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let mut ages: Vec<u64> = self.slots.values().map(|s| s.touched_ms).collect();
        ages.select_nth_unstable(excess - 1);
        let cutoff = ages[excess - 1];
        let mut to_remove = excess;
        self.slots.retain(|_, s| {
            if to_remove > 0 && s.touched_ms <= cutoff {
                to_remove -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_grows_past_capacity_and_drops_the_oldest() {
        let mut m: BoundedMap<u32> = BoundedMap::new(16);
        for k in 0..1_000u64 {
            *m.entry(k, k, || 0, |_| false) += 1;
            assert!(m.len() <= 16);
        }
        assert!(m.get(999).is_some());
        assert!(m.get(0).is_none());
    }

    #[test]
    fn idle_entries_go_first() {
        let mut m: BoundedMap<u32> = BoundedMap::new(4);
        for k in 0..4u64 {
            m.entry(k, 100 - k, || k as u32, |_| false);
        }
        // Entry 2 is idle; it goes although others are older.
        m.entry(10, 200, || 10, |v| *v == 2);
        assert!(m.get(2).is_none());
        assert!(m.get(0).is_some());
    }
}
