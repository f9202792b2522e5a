//! The wakers of a flight's callers, and a fixed-size list to wake them outside the lock.
//!
//! # Invariants
//!
//! 1. A [`WaiterId`] is owned by exactly one caller, from its first registration until it
//!    unregisters; its slot is `Taken` for that whole time (the waker inside may be `None` after
//!    a wake-up took it, until the caller registers again on its next poll).
//! 2. Nothing here wakes or drops a waker: replaced wakers are returned and woken ones are moved
//!    into a [`WakeList`], so the flight lock is never held across user code.

use std::task::Waker;

/// A caller's place in [`Waiters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaiterId(usize);

enum Slot {
    Taken(Option<Waker>),
    Free { next: Option<usize> },
}

/// A slab of registered wakers. It allocates only when a caller first has to wait.
pub(crate) struct Waiters {
    slots: Vec<Slot>,
    free: Option<usize>,
}

impl Waiters {
    pub(crate) const fn new() -> Self {
        Waiters {
            slots: Vec::new(),
            free: None,
        }
    }

    /// Registers (or refreshes) the waker of the caller holding `id`, taking a slot on first use.
    /// Returns the waker it replaced, if that one would not wake the same task.
    pub(crate) fn register(&mut self, id: &mut Option<WaiterId>, waker: &Waker) -> Option<Waker> {
        let index = match *id {
            Some(WaiterId(index)) => index,
            None => {
                let index = match self.free {
                    Some(index) => {
                        let Slot::Free { next } = self.slots[index] else {
                            unreachable!("invariant 1: the free list holds free slots")
                        };
                        self.free = next;
                        self.slots[index] = Slot::Taken(None);
                        index
                    }
                    None => {
                        self.slots.push(Slot::Taken(None));
                        self.slots.len() - 1
                    }
                };
                *id = Some(WaiterId(index));
                index
            }
        };
        let Slot::Taken(slot) = &mut self.slots[index] else {
            unreachable!("invariant 1: a registered caller owns its slot")
        };
        match slot {
            Some(current) if current.will_wake(waker) => None,
            _ => slot.replace(waker.clone()),
        }
    }

    /// Frees the slot of a departing caller; returns its waker, to be dropped after unlocking.
    pub(crate) fn unregister(&mut self, WaiterId(index): WaiterId) -> Option<Waker> {
        let slot = std::mem::replace(&mut self.slots[index], Slot::Free { next: self.free });
        self.free = Some(index);
        match slot {
            Slot::Taken(waker) => waker,
            Slot::Free { .. } => {
                debug_assert!(false, "invariant 1: a slot is freed once");
                None
            }
        }
    }

    /// Moves registered wakers into `list` until it is full. Returns whether any are left.
    pub(crate) fn drain_into(&mut self, list: &mut WakeList) -> bool {
        for slot in &mut self.slots {
            if let Slot::Taken(waker @ Some(_)) = slot {
                if list.is_full() {
                    return true;
                }
                list.push(waker.take());
            }
        }
        false
    }
}

const WAKE_LIST_LEN: usize = 32;

/// Wakers taken under a lock, to be woken after it is released. Fixed size: no allocation.
pub(crate) struct WakeList {
    wakers: [Option<Waker>; WAKE_LIST_LEN],
    len: usize,
}

impl WakeList {
    pub(crate) const fn new() -> Self {
        WakeList {
            wakers: [const { None }; WAKE_LIST_LEN],
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == WAKE_LIST_LEN
    }

    fn push(&mut self, waker: Option<Waker>) {
        debug_assert!(!self.is_full());
        self.wakers[self.len] = waker;
        self.len += 1;
    }

    /// Wakes and empties the list. Call with no lock held.
    pub(crate) fn wake_all(&mut self) {
        for waker in &mut self.wakers[..self.len] {
            if let Some(waker) = waker.take() {
                waker.wake();
            }
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn slots_are_reused_and_drained_in_batches() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut waiters = Waiters::new();
        let mut ids: Vec<Option<WaiterId>> = vec![None; 40];
        for id in &mut ids {
            assert!(waiters.register(id, &waker).is_none());
        }
        // Re-registering the same waker keeps it. (`will_wake` is best effort: Miri gives each
        // use of a vtable its own address, so there it says no and the waker is replaced.)
        let replaced = waiters.register(&mut ids[0], &waker);
        assert!(replaced.is_none() || cfg!(miri));
        let freed = ids[3].take().unwrap();
        waiters.unregister(freed);
        let mut again = None;
        waiters.register(&mut again, &waker);
        assert_eq!(again, Some(freed), "a freed slot is reused");

        let mut list = WakeList::new();
        assert!(
            waiters.drain_into(&mut list),
            "40 wakers do not fit in one batch"
        );
        list.wake_all();
        assert!(!waiters.drain_into(&mut list));
        list.wake_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 40);
        assert!(!waiters.drain_into(&mut list), "drained wakers are gone");
    }
}
