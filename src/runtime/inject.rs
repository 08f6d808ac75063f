//! The injector: the shared FIFO of tasks scheduled from outside any
//! worker (the `block_on` thread, plain threads, timers fired off-worker),
//! as tokio's `inject` is: a mutex around a ring buffer, plus an atomic
//! length so that the common "is there anything?" look takes no lock. Each
//! tier of the cancel lane is one too (rule Q2 in `queue`), so a storm of
//! cancellations allocates nothing and a worker takes a batch under one
//! lock.
//!
//! Rules:
//! - IJ1 (no allocation in steady state): the ring keeps its capacity, so
//!   once it has grown to the largest backlog seen, pushing allocates
//!   nothing (a lock-free segmented queue allocates a block every few
//!   dozen pushes, which showed up as allocations per spawn).
//! - IJ2 (length): `len` is written only under the lock, after the ring
//!   changed, and read without it; a reading may be stale, never ahead of
//!   the ring by a push: a pusher stores the new length before it releases
//!   the lock, so a popper that sees it finds the task. Rule Q1 (no lost
//!   wakeups, `queue`) holds as it did: the pusher's store precedes its
//!   SeqCst fence and the sleeper's fence precedes its read of `len`; the
//!   fences order them, so the store itself is a plain release store (a
//!   SeqCst store is a locked exchange on x86, one more per abort of a
//!   storm).
//! - IJ3 (FIFO): tasks leave in the order they came, one at a time or in
//!   batches that keep their order in the taker's deque.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_deque::Worker;

use crate::exec::runnable::TaskRef;

/// Most tasks a worker takes into its own deque in one batch (plus the one
/// it runs at once).
const BATCH: usize = 32;

pub(crate) struct Inject {
    ring: Mutex<VecDeque<TaskRef>>,
    /// IJ2: the ring's length as of the last change.
    len: AtomicUsize,
}

impl Inject {
    pub(crate) fn new() -> Self {
        Self {
            ring: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<TaskRef>> {
        // No user code runs under this lock (tasks are only moved).
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// IJ2: whether the injector looked empty at the last change.
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::SeqCst) == 0
    }

    /// Appends `task` (IJ1: no allocation once the ring has grown). IJ2:
    /// the caller issues Q1's SeqCst fence before it looks for sleepers.
    pub(crate) fn push(&self, task: TaskRef) {
        let mut ring = self.lock();
        ring.push_back(task);
        // IJ2: ordered before the sleepers' reading by the caller's fence.
        self.len.store(ring.len(), Ordering::Release);
    }

    /// The oldest task, if any.
    pub(crate) fn pop(&self) -> Option<TaskRef> {
        if self.is_empty() {
            return None;
        }
        let mut ring = self.lock();
        let task = ring.pop_front();
        self.len.store(ring.len(), Ordering::Release);
        task
    }

    /// The oldest task, with up to half of the rest (at most [`BATCH`])
    /// moved, in order, into `local` (IJ3).
    pub(crate) fn pop_batch(&self, local: &Worker<TaskRef>) -> Option<TaskRef> {
        if self.is_empty() {
            return None;
        }
        let mut ring = self.lock();
        let first = ring.pop_front()?;
        let take = (ring.len() / 2).min(BATCH);
        for task in ring.drain(..take) {
            local.push(task);
        }
        self.len.store(ring.len(), Ordering::Release);
        Some(first)
    }

    /// The oldest task, with up to `limit - 1` more moved, in order, to
    /// the back of `into` (IJ3): a whole batch for one lock.
    pub(crate) fn pop_up_to(&self, into: &mut VecDeque<TaskRef>, limit: usize) -> Option<TaskRef> {
        if self.is_empty() {
            return None;
        }
        let mut ring = self.lock();
        let first = ring.pop_front()?;
        let take = ring.len().min(limit.saturating_sub(1));
        into.extend(ring.drain(..take));
        self.len.store(ring.len(), Ordering::Release);
        Some(first)
    }

    /// Empties the injector, handing the tasks back to be dropped outside
    /// the lock.
    #[cfg(test)]
    fn drain(&self) -> Vec<TaskRef> {
        let mut ring = self.lock();
        let all = ring.drain(..).collect();
        self.len.store(0, Ordering::SeqCst);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::runnable::Runnable;
    use crate::types::TaskId;
    use std::sync::Arc;

    struct Probe(u64);

    impl Runnable for Probe {
        fn run(self: Arc<Self>) {}
        fn id(&self) -> TaskId {
            TaskId::from_parts(self.0 as u32, 0)
        }
    }

    fn id_of(task: &TaskRef) -> u64 {
        u64::from(task.id().index())
    }

    #[test]
    fn tasks_leave_in_the_order_they_came_alone_or_in_batches() {
        let inject = Inject::new();
        assert!(inject.is_empty() && inject.pop().is_none());
        for n in 0..10 {
            inject.push(Arc::new(Probe(n)));
        }
        assert!(!inject.is_empty());
        assert_eq!(inject.pop().map(|t| id_of(&t)), Some(0));
        let local = Worker::new_fifo();
        assert_eq!(inject.pop_batch(&local).map(|t| id_of(&t)), Some(1));
        // Half of the 8 left went to the local deque, in order.
        let mut moved = Vec::new();
        while let Some(t) = local.pop() {
            moved.push(id_of(&t));
        }
        assert_eq!(moved, vec![2, 3, 4, 5]);
        let rest: Vec<_> = inject.drain().iter().map(id_of).collect();
        assert_eq!(rest, vec![6, 7, 8, 9]);
        assert!(inject.is_empty());
    }

    #[test]
    fn a_batch_leaves_in_order_and_never_takes_more_than_asked() {
        let inject = Inject::new();
        for n in 0..10 {
            inject.push(Arc::new(Probe(n)));
        }
        let mut batch = VecDeque::new();
        let first = inject.pop_up_to(&mut batch, 4).map(|t| id_of(&t));
        assert_eq!(first, Some(0));
        assert_eq!(batch.iter().map(id_of).collect::<Vec<_>>(), vec![1, 2, 3]);
        batch.clear();
        // Fewer left than asked: all of them.
        assert_eq!(
            inject.pop_up_to(&mut batch, 100).map(|t| id_of(&t)),
            Some(4)
        );
        assert_eq!(
            batch.iter().map(id_of).collect::<Vec<_>>(),
            vec![5, 6, 7, 8, 9]
        );
        assert!(inject.is_empty());
        assert!(inject.pop_up_to(&mut batch, 4).is_none(), "empty: nothing");
        assert_eq!(batch.len(), 5, "and nothing added");
    }

    #[test]
    fn a_grown_ring_pushes_without_allocating_again() {
        let inject = Inject::new();
        for n in 0..64 {
            inject.push(Arc::new(Probe(n)));
        }
        let capacity = inject.lock().capacity();
        while inject.pop().is_some() {}
        for n in 0..64 {
            inject.push(Arc::new(Probe(n)));
        }
        assert_eq!(inject.lock().capacity(), capacity, "IJ1: kept, not regrown");
    }
}
