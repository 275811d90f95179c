//! What each worker thread reports about itself, for metrics: event-loop
//! iterations, sessions, pooled backend connections and buffers in use.
//! A worker writes its own slot once per loop iteration (relaxed stores to
//! a cache line no other worker writes); readers copy it at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

/// One worker's figures, written by that worker only.
#[derive(Debug, Default)]
pub struct WorkerStats {
    iterations: AtomicU64,
    sessions: AtomicU64,
    pooled: AtomicU64,
    buffers: AtomicU64,
}

/// A copy of one worker's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// Event-loop iterations since the worker started.
    pub iterations: u64,
    /// Client connections it holds now (active or parked).
    pub sessions: u64,
    /// Idle backend connections in its pools now.
    pub pooled: u64,
    /// Buffers of its pool lent out now.
    pub buffers: u64,
}

impl WorkerStats {
    /// Records one loop iteration and the worker's current figures.
    pub fn update(&self, sessions: usize, pooled: usize, buffers: usize) {
        let store = |a: &AtomicU64, v: usize| a.store(v as u64, Ordering::Relaxed);
        self.iterations.fetch_add(1, Ordering::Relaxed);
        store(&self.sessions, sessions);
        store(&self.pooled, pooled);
        store(&self.buffers, buffers);
    }

    /// A copy of the figures.
    pub fn snapshot(&self) -> WorkerSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerSnapshot {
            iterations: load(&self.iterations),
            sessions: load(&self.sessions),
            pooled: load(&self.pooled),
            buffers: load(&self.buffers),
        }
    }
}
