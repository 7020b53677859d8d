//! Which worker thread this is: the server names its threads, the
//! dispatcher keeps an instance with the worker that ran it.

use std::cell::Cell;

/// How many worker threads serve connections: one per core.
pub(crate) fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread as worker `index`.
pub(crate) fn become_worker(index: usize) {
    WORKER.set(index);
}

/// The index of the worker running the caller, below [`worker_count`];
/// 0 outside the workers.
pub(crate) fn current_worker() -> usize {
    WORKER.get()
}
