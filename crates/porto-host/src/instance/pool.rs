//! One service's kept instances between requests: a pool that knows
//! nothing of what it keeps (a wasmtime store, for the server) but which
//! component generation each item belongs to, which worker thread last ran
//! it and since when it has waited.
//!
//! A request takes the most recently kept item of its own worker first:
//! its memory and host state are still in that core's caches, and what the
//! last request allocated is freed on the thread that allocated it. Only
//! then another worker's, in turn from the next one. An item of an older
//! generation (its service was reloaded since) is never handed out.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) struct Pool<T> {
    by_worker: Box<[Mutex<Vec<Entry<T>>>]>,
}

struct Entry<T> {
    item: T,
    generation: u64,
    kept_at: Instant,
}

/// What [`Pool::take`] found.
pub(crate) struct Taken<T> {
    pub item: Option<T>,
    /// Items of an older generation dropped on the way.
    pub stale: usize,
}

impl<T> Pool<T> {
    /// A pool for `workers` worker threads (at least one).
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            by_worker: (0..workers.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    fn list(&self, worker: usize) -> MutexGuard<'_, Vec<Entry<T>>> {
        self.by_worker[worker % self.by_worker.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently kept item of `generation` for a request on
    /// `worker`: that worker's own first, then the others' in turn.
    pub(crate) fn take(&self, worker: usize, generation: u64) -> Taken<T> {
        let mut stale = Vec::new();
        let workers = self.by_worker.len();
        let item = (0..workers).find_map(|offset| {
            let mut kept = self.list(worker + offset);
            loop {
                match kept.pop() {
                    Some(entry) if entry.generation == generation => break Some(entry.item),
                    Some(entry) => stale.push(entry),
                    None => break None,
                }
            }
        });
        // Dropped outside the lock: dropping an instance resets its pool
        // slot, which is not free.
        Taken {
            item,
            stale: stale.len(),
        }
    }

    /// Keeps `item` of `generation`, last run on `worker`, from `now`.
    pub(crate) fn put(&self, worker: usize, generation: u64, item: T, now: Instant) {
        self.list(worker).push(Entry {
            item,
            generation,
            kept_at: now,
        });
    }

    /// Drops the items for which `expired` (given how long each has waited
    /// at `now`) holds; how many.
    pub(crate) fn expire(&self, now: Instant, expired: impl Fn(Duration) -> bool) -> usize {
        let gone: Vec<Entry<T>> = (0..self.by_worker.len())
            .flat_map(|worker| {
                let mut kept = self.list(worker);
                // Oldest first: the expired ones are a prefix.
                let fresh = kept
                    .iter()
                    .position(|e| !expired(now.saturating_duration_since(e.kept_at)))
                    .unwrap_or(kept.len());
                kept.drain(..fresh).collect::<Vec<_>>()
            })
            .collect();
        gone.len()
    }

    /// Drops every item (a full instance pool, a reload); how many.
    pub(crate) fn clear(&self) -> usize {
        let all: Vec<Vec<Entry<T>>> = (0..self.by_worker.len())
            .map(|worker| std::mem::take(&mut *self.list(worker)))
            .collect();
        all.iter().map(Vec::len).sum()
    }

    /// Items kept now, across workers.
    #[cfg(test)]
    fn len(&self) -> usize {
        (0..self.by_worker.len()).map(|w| self.list(w).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GEN: u64 = 1;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn the_most_recently_kept_item_comes_first() {
        let pool = Pool::new(1);
        let now = Instant::now();
        for item in ["a", "b", "c"] {
            pool.put(0, GEN, item, now);
        }
        let order: Vec<_> = (0..4).map(|_| pool.take(0, GEN).item).collect();
        assert_eq!(order, [Some("c"), Some("b"), Some("a"), None]);
    }

    #[test]
    fn a_worker_gets_its_own_item_before_another_workers() {
        let pool = Pool::new(3);
        let now = Instant::now();
        pool.put(0, GEN, "zero", now);
        pool.put(1, GEN, "one", now);
        pool.put(2, GEN, "two", now);
        assert_eq!(pool.take(1, GEN).item, Some("one"));
        // Worker 1 has none left: the next worker's, then the one after.
        assert_eq!(pool.take(1, GEN).item, Some("two"));
        assert_eq!(pool.take(1, GEN).item, Some("zero"));
        assert_eq!(pool.take(1, GEN).item, None);
    }

    #[test]
    fn worker_indices_wrap_around_the_pool() {
        let pool = Pool::new(2);
        pool.put(5, GEN, "five", Instant::now());
        // Worker 5 of a pool of two is worker 1.
        assert_eq!(pool.take(3, GEN).item, Some("five"));
    }

    #[test]
    fn an_item_of_an_older_generation_is_dropped_not_given() {
        let pool = Pool::new(2);
        let now = Instant::now();
        pool.put(0, GEN, "old", now);
        pool.put(1, GEN, "old too", now);
        pool.put(1, GEN + 1, "new", now);
        let taken = pool.take(0, GEN + 1);
        assert_eq!(taken.item, Some("new"));
        assert_eq!(taken.stale, 1, "worker 0's old item, met on the way");
        let taken = pool.take(0, GEN + 1);
        assert_eq!((taken.item, taken.stale), (None, 1));
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn idle_items_expire_oldest_first_and_fresh_ones_stay() {
        let pool = Pool::new(2);
        let start = Instant::now();
        pool.put(0, GEN, "old", at(start, 0));
        pool.put(0, GEN, "newer", at(start, 50));
        pool.put(1, GEN, "other worker's old", at(start, 10));
        let timeout = |idle: Duration| idle >= Duration::from_millis(100);
        assert_eq!(pool.expire(at(start, 99), timeout), 0);
        assert_eq!(pool.expire(at(start, 110), timeout), 2);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.take(0, GEN).item, Some("newer"));
    }

    #[test]
    fn clearing_drops_everything_and_counts_it() {
        let pool = Pool::new(2);
        let now = Instant::now();
        pool.put(0, GEN, 1, now);
        pool.put(1, GEN, 2, now);
        pool.put(1, GEN + 1, 3, now);
        assert_eq!(pool.clear(), 3);
        assert_eq!(pool.len(), 0);
        assert_eq!(pool.clear(), 0);
    }
}
