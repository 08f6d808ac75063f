//! Placeholder timer store with the wheel's API (replaced by the hierarchical wheel).
#![allow(dead_code)]
use std::collections::BTreeMap;

use crate::types::Time;

/// Key of a pending timer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct TimerKey(u64);

/// Timer store.
pub(crate) struct TimerWheel<T> {
    entries: BTreeMap<(Time, u64), T>,
    keys: std::collections::HashMap<u64, Time>,
    seq: u64,
    elapsed: Time,
}

impl<T> TimerWheel<T> {
    pub(crate) fn new(start: Time) -> Self {
        Self {
            entries: BTreeMap::new(),
            keys: Default::default(),
            seq: 0,
            elapsed: start,
        }
    }
    pub(crate) fn insert(&mut self, deadline: Time, payload: T) -> TimerKey {
        self.seq += 1;
        self.entries.insert((deadline, self.seq), payload);
        self.keys.insert(self.seq, deadline);
        TimerKey(self.seq)
    }
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let d = self.keys.remove(&key.0)?;
        self.entries.remove(&(d, key.0))
    }
    pub(crate) fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        let d = *self.keys.get(&key.0)?;
        self.entries.get_mut(&(d, key.0))
    }
    pub(crate) fn deadline(&self, key: TimerKey) -> Option<Time> {
        self.keys.get(&key.0).copied()
    }
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        self.entries.keys().next().map(|k| k.0)
    }
    pub(crate) fn advance(&mut self, now: Time, fired: &mut Vec<(TimerKey, T)>) {
        self.elapsed = self.elapsed.max(now);
        while let Some(entry) = self.entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, seq), v) = entry.remove_entry();
            self.keys.remove(&seq);
            fired.push((TimerKey(seq), v));
        }
    }
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
