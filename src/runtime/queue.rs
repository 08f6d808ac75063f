//! The production run queue: a lock-free injector plus sleeping-worker
//! bookkeeping.
//!
//! Rule Q1 (no lost wakeups): a worker announces it is going to sleep
//! (`prepare_sleep`), then re-checks the queue; a scheduler pushes, then
//! reads the announcement. With sequentially consistent ordering one of
//! them sees the other, and parkers keep an unpark token, so a task pushed
//! while every worker dozes off always gets a worker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

use crossbeam_queue::SegQueue;
use crossbeam_utils::sync::Unparker;

use super::core::Schedule;
use super::task_cell::TaskRef;

pub(crate) struct RunQueue {
    tasks: SegQueue<TaskRef>,
    /// One per worker; for the current-thread runtime, the `block_on` thread.
    unparkers: Vec<Unparker>,
    sleeping: Vec<AtomicBool>,
    sleepers: AtomicUsize,
    next_wake: AtomicUsize,
}

impl RunQueue {
    pub(crate) fn new(unparkers: Vec<Unparker>) -> Self {
        let sleeping = unparkers.iter().map(|_| AtomicBool::new(false)).collect();
        Self {
            tasks: SegQueue::new(),
            unparkers,
            sleeping,
            sleepers: AtomicUsize::new(0),
            next_wake: AtomicUsize::new(0),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Runs up to `max` queued tasks; returns how many ran.
    pub(crate) fn run_batch(&self, max: usize) -> usize {
        let mut ran = 0;
        while ran < max {
            match self.tasks.pop() {
                Some(task) => {
                    task.run();
                    ran += 1;
                }
                None => break,
            }
        }
        ran
    }

    /// Announces that worker `index` wants to sleep; returns false if work
    /// arrived meanwhile (rule Q1).
    pub(crate) fn prepare_sleep(&self, index: usize) -> bool {
        self.sleeping[index].store(true, Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.tasks.is_empty() {
            true
        } else {
            self.finish_sleep(index);
            false
        }
    }

    pub(crate) fn finish_sleep(&self, index: usize) {
        if self.sleeping[index].swap(false, Ordering::SeqCst) {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn unpark_all(&self) {
        for u in &self.unparkers {
            u.unpark();
        }
    }

    fn wake_one(&self) {
        let n = self.unparkers.len();
        if n == 1 {
            self.unparkers[0].unpark();
            return;
        }
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        let start = self.next_wake.fetch_add(1, Ordering::Relaxed);
        for offset in 0..n {
            let i = (start + offset) % n;
            if self.sleeping[i].load(Ordering::SeqCst) {
                self.unparkers[i].unpark();
                return;
            }
        }
        // Everyone woke up in the meantime; they will find the task.
    }
}

impl Schedule for RunQueue {
    fn schedule(&self, task: TaskRef) {
        self.tasks.push(task);
        fence(Ordering::SeqCst); // Rule Q1: pairs with the fence in `prepare_sleep`.
        self.wake_one();
    }
}
