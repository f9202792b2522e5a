//! A process's waiters for keys whose lease another process holds, woken by the log's reader.
//!
//! Invariants:
//!
//! 1. A waiter registers (and enables its `Notified`) *before* it asks Redis whether the lease
//!    is still held: a wake-up that comes between the answer and the wait is not lost.
//! 2. The map's lock is held only to find, insert or remove an entry; `notify_waiters` (which
//!    wakes tasks) runs after it is released.
//! 3. An entry lives while a waiter of its key does: each entry counts its `Waiter`s under the
//!    map's lock, and the last one to drop removes it (a count, not `Arc::strong_count`, which
//!    a concurrent `wake` raises for a moment).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Waiters by encoded key.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    map: Mutex<HashMap<Vec<u8>, Entry>>,
}

/// A key's notifier and how many `Waiter`s hold it.
#[derive(Debug, Default)]
struct Entry {
    notify: Arc<Notify>,
    waiters: usize,
}

/// One flight's registration; unregisters on drop.
#[derive(Debug)]
pub(crate) struct Waiter<'a> {
    waiters: &'a Waiters,
    key: Vec<u8>,
    notify: Arc<Notify>,
}

impl Waiters {
    pub(crate) fn register(&self, key: &[u8]) -> Waiter<'_> {
        let notify = {
            let mut map = self.lock();
            let entry = map.entry(key.to_vec()).or_default();
            entry.waiters += 1;
            Arc::clone(&entry.notify)
        };
        Waiter {
            waiters: self,
            key: key.to_vec(),
            notify,
        }
    }

    /// Wakes the waiters of `key` (invariant 2: outside the lock).
    pub(crate) fn wake(&self, key: &[u8]) {
        let notify = self.lock().get(key).map(|e| Arc::clone(&e.notify));
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiter: the whole memo was invalidated, or the log had a gap.
    pub(crate) fn wake_all(&self) {
        let all: Vec<Arc<Notify>> = self
            .lock()
            .values()
            .map(|e| Arc::clone(&e.notify))
            .collect();
        for notify in all {
            notify.notify_waiters();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Entry>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Waiter<'_> {
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        // Invariant 3.
        if let Some(entry) = map.get_mut(&self.key) {
            debug_assert!(entry.waiters > 0, "a registered waiter is counted");
            entry.waiters -= 1;
            if entry.waiters == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    #[test]
    fn a_wake_between_registering_and_waiting_is_not_lost() {
        let waiters = Waiters::default();
        let waiter = waiters.register(b"k");
        let mut notified = pin!(waiter.notify().notified());
        notified.as_mut().enable();
        waiters.wake(b"k");
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(notified.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_wake_of_another_key_does_not_wake() {
        let waiters = Waiters::default();
        let waiter = waiters.register(b"k");
        let mut notified = pin!(waiter.notify().notified());
        notified.as_mut().enable();
        waiters.wake(b"other");
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(notified.as_mut().poll(&mut cx), Poll::Pending);
        waiters.wake_all();
        assert_eq!(notified.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_waiter_dropped_during_a_wake_still_removes_its_entry() {
        let waiters = Waiters::default();
        let waiter = waiters.register(b"k");
        // What `wake` holds for a moment, outside the lock.
        let woken = waiters
            .lock()
            .get(b"k".as_slice())
            .map(|e| Arc::clone(&e.notify));
        drop(waiter);
        assert_eq!(waiters.len(), 0);
        drop(woken);
    }

    #[test]
    fn the_last_waiter_of_a_key_removes_its_entry() {
        let waiters = Waiters::default();
        let first = waiters.register(b"k");
        let second = waiters.register(b"k");
        drop(first);
        assert_eq!(waiters.len(), 1);
        drop(second);
        assert_eq!(waiters.len(), 0);
    }
}
