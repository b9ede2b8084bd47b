//! The least-recently-used set of nodes whose host file handles a
//! [`super::HostFs`] keeps for open guest handles; past its capacity the
//! oldest is named for eviction (its handle closed, reopened by path on its
//! next use).

use std::collections::HashMap;

pub(super) struct Lru {
    cap: usize,
    used: HashMap<u64, u64>,
    tick: u64,
}

impl Lru {
    pub(super) fn new(cap: usize) -> Lru {
        Lru {
            cap,
            used: HashMap::new(),
            tick: 0,
        }
    }

    /// Marks `id` as just used; returns the node to evict if that makes
    /// the set larger than its capacity (never `id` itself).
    pub(super) fn touch(&mut self, id: u64) -> Option<u64> {
        self.tick += 1;
        self.used.insert(id, self.tick);
        if self.used.len() <= self.cap {
            return None;
        }
        let victim = self
            .used
            .iter()
            .filter(|(v, _)| **v != id)
            .min_by_key(|(_, t)| **t)
            .map(|(v, _)| *v)?;
        self.used.remove(&victim);
        Some(victim)
    }

    /// Whether `id` holds a handle that can be evicted.
    pub(super) fn contains(&self, id: u64) -> bool {
        self.used.contains_key(&id)
    }

    /// Stops tracking `id` (closed, or pinned because it lost its name).
    pub(super) fn remove(&mut self, id: u64) {
        self.used.remove(&id);
    }

    /// How many handles are tracked.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.used.len()
    }
}
