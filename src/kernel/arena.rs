//! A generational arena: the storage behind every kernel id.
//!
//! Rules:
//! 1. A slot's generation is bumped when its value is removed, so an id
//!    issued before the removal (a stale id) never resolves again, even after
//!    the slot is reused.
//! 2. Freed slots are reused last-in first-out, which is deterministic: the
//!    same sequence of inserts and removes yields the same ids.

pub(crate) struct Arena<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

impl<T> Arena<T> {
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Stores `value` and returns its `(index, generation)`.
    pub(crate) fn insert(&mut self, value: T) -> (u32, u32) {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            debug_assert!(slot.value.is_none(), "free list points at a live slot");
            slot.value = Some(value);
            return (index, slot.generation);
        }
        let index = u32::try_from(self.slots.len()).expect("arena holds at most u32::MAX entries");
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        (index, 0)
    }

    pub(crate) fn get(&self, index: u32, generation: u32) -> Option<&T> {
        let slot = self.slots.get(index as usize)?;
        if slot.generation == generation {
            slot.value.as_ref()
        } else {
            None
        }
    }

    pub(crate) fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        let slot = self.slots.get_mut(index as usize)?;
        if slot.generation == generation {
            slot.value.as_mut()
        } else {
            None
        }
    }

    pub(crate) fn remove(&mut self, index: u32, generation: u32) -> Option<T> {
        let slot = self.slots.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        let value = slot.value.take()?;
        // Rule 1: bump so every outstanding id for this slot goes stale.
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Live entries with their `(index, generation)`, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ((u32, u32), &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.value.as_ref().map(|v| ((i as u32, s.generation), v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_id_never_resolves_even_after_reuse() {
        let mut a = Arena::new();
        let (i, g) = a.insert("first");
        assert_eq!(a.remove(i, g), Some("first"));
        let (i2, g2) = a.insert("second");
        assert_eq!(i2, i, "the slot is reused");
        assert_ne!(g2, g);
        assert_eq!(a.get(i, g), None);
        assert_eq!(a.remove(i, g), None);
        assert_eq!(a.get(i2, g2), Some(&"second"));
    }

    #[test]
    fn a_removed_id_never_resolves_and_its_slot_is_reused() {
        let mut a = Arena::new();
        let (i, g) = a.insert(String::from("first"));
        assert_eq!(a.remove(i, g).as_deref(), Some("first"));
        assert_eq!(a.remove(i, g), None, "removing twice finds nothing");
        assert_eq!(a.get(i, g), None);
        assert_eq!(a.len(), 0);
        let (i2, g2) = a.insert(String::from("second"));
        assert_eq!(i2, i);
        assert_ne!(g2, g);
    }

    #[test]
    fn reuse_is_last_in_first_out() {
        let mut a = Arena::new();
        let x = a.insert(1);
        let y = a.insert(2);
        a.remove(x.0, x.1);
        a.remove(y.0, y.1);
        assert_eq!(a.insert(3).0, y.0);
        assert_eq!(a.insert(4).0, x.0);
        assert_eq!(a.len(), 2);
    }
}
