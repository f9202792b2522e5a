//! The crate's locks, atomics and thread identity, from one place, so that model checkers can
//! swap them.
//!
//! | build                          | locks                                  | atomics, thread ids |
//! | ------------------------------ | -------------------------------------- | ------------------- |
//! | normal                         | `parking_lot` `Mutex`, `ShardedLock`   | `std`               |
//! | `--cfg loom`                   | `loom` (see below)                     | `loom`              |
//! | `--cfg shuttle` (tests only)   | `shuttle`                              | `shuttle`           |
//! | Miri (`cfg(miri)`)             | `std::sync`                            | `std`               |
//!
//! The normal build re-exports `parking_lot`'s `Mutex` unchanged, and wraps crossbeam-utils'
//! [`ShardedLock`](crossbeam_utils::sync::ShardedLock) as the shards' `RwLock` (issue 14): a
//! read lock of it takes one of eight inner locks, picked by the reading thread, so readers on
//! different cores write different cache lines; a write lock takes all eight. The other
//! backends keep one plain read-write lock: what they check is the protocol built on the locks,
//! which is the same. Every wrapper gives the `parking_lot` API the crate uses (`lock`, `read`,
//! `write` returning guards, no poisoning: a poisoned lock is entered anyway, as `parking_lot`
//! would). Miri gets `std::sync` because
//! `parking_lot`'s futex-based parking is reported as undefined behaviour by current Miri under
//! contention (tokio's loom shim makes the same switch).
//!
//! What stays `std` under every backend, and why:
//!
//! - **`Arc`.** A flight is the init future's waker, through [`std::task::Wake`], which needs
//!   `std::sync::Arc`; a loom-tracked waker would need `unsafe` (`RawWaker`), and the crate
//!   forbids it. Reference counts are `std`'s business; what the models check is the protocol
//!   built on the locks, and every lock, atomic and wake-up of the protocol is modelled.
//! - **`OnceLock`** (a flight's outcome). It is written once, before `Done` is published under
//!   the flight lock, and read only after a caller saw `Done` under that lock: the lock is the
//!   modelled synchronisation. A read before the write would find `None` and panic, which the
//!   models report.
//! - **The epoch counter** ([`Epoch::next`](crate::Epoch)). A static cannot hold a loom or
//!   shuttle atomic (they exist only inside one execution), and neither model needs it to: both
//!   run every thread of an execution on one OS thread, so a `std` `fetch_add` still hands out
//!   unique, increasing epochs, and every epoch is drawn under a shard write lock, which is
//!   modelled.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU64};
#[cfg(all(shuttle, not(loom)))]
pub(crate) use shuttle::sync::atomic::{AtomicU8, AtomicU64};
#[cfg(not(any(loom, shuttle)))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU64};

pub(crate) use std::sync::atomic::Ordering;

#[cfg(not(any(loom, shuttle, miri)))]
pub(crate) use self::sharded::RwLock;
#[cfg(not(any(loom, shuttle, miri)))]
pub(crate) use parking_lot::Mutex;

/// The shards' read-write lock in a normal build: crossbeam-utils' reader-sharded lock, without
/// poisoning.
#[cfg(not(any(loom, shuttle, miri)))]
mod sharded {
    use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};
    use std::sync::PoisonError;

    pub(crate) struct RwLock<T>(ShardedLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            RwLock(ShardedLock::new(value))
        }

        #[inline]
        pub(crate) fn read(&self) -> ShardedLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        #[inline]
        pub(crate) fn write(&self) -> ShardedLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

#[cfg(all(shuttle, not(loom)))]
use shuttle::sync as backend;
#[cfg(all(miri, not(any(loom, shuttle))))]
use std::sync as backend;

#[cfg(loom)]
pub(crate) use self::modelled::{Mutex, RwLock};
#[cfg(all(any(shuttle, miri), not(loom)))]
pub(crate) use self::wrapped::{Mutex, RwLock};

/// `std`-style locks (`shuttle`, `std`) behind the `parking_lot` API.
#[cfg(all(any(shuttle, miri), not(loom)))]
mod wrapped {
    use super::backend;
    use std::sync::PoisonError;

    pub(crate) struct Mutex<T>(backend::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(backend::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> backend::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    pub(crate) struct RwLock<T>(backend::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            RwLock(backend::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> backend::RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn write(&self) -> backend::RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

/// Locks for loom, built from loom atomics and loom's `park`/`unpark` (the modelled part:
/// acquiring, blocking, releasing, with their happens-before edges) and a `std` lock that holds
/// the data and is never contended (the atomic admits one writer or several readers).
///
/// Why not `loom::sync::{Mutex, RwLock}`: loom runs all threads of an execution on one OS thread,
/// so when it switches away from a thread that is unwinding (a panicking init future whose abort
/// guard takes the shard lock), the next thread to release a loom lock sees
/// `std::thread::panicking()` and poisons the `std` lock inside it, and loom's next acquisition
/// fails with "loom::RwLock state corrupt". The crate's locks never poison (`parking_lot`), so
/// here poisoning is ignored. (Spinning with `yield_now` instead of parking makes loom give up:
/// "Model exceeded maximum number of branches".)
#[cfg(loom)]
mod modelled {
    use std::ops::{Deref, DerefMut};
    use std::sync::PoisonError;

    use loom::sync::atomic::AtomicUsize;
    use loom::sync::atomic::Ordering::{Acquire, Relaxed, Release};
    use loom::thread::{self, Thread};

    /// `state`: the number of readers, or `WRITER`; a mutex uses only `0` and `WRITER`.
    struct Lock {
        state: AtomicUsize,
        parked: std::sync::Mutex<Vec<Thread>>,
    }

    const WRITER: usize = usize::MAX;

    impl Lock {
        fn new() -> Self {
            Lock {
                state: AtomicUsize::new(0),
                parked: std::sync::Mutex::new(Vec::new()),
            }
        }

        /// Only read-modify-writes, which read the latest value: a plain load may return a stale
        /// one under loom, and a thread that parks on a stale "held" would never be unparked.
        fn try_acquire(&self, write: bool) -> bool {
            let mut state = 0;
            loop {
                let next = match (write, state) {
                    (true, 0) => WRITER,
                    (false, readers) if readers != WRITER => readers + 1,
                    _ => return false,
                };
                match self.state.compare_exchange(state, next, Acquire, Relaxed) {
                    Ok(_) => return true,
                    Err(actual) => state = actual,
                }
            }
        }

        fn acquire(&self, write: bool) {
            while !self.try_acquire(write) {
                // Registered before the second try: a release between the two tries unparks us
                // (a stale unpark only makes a later `park` return early, and we try again).
                self.parked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(thread::current());
                if self.try_acquire(write) {
                    break;
                }
                thread::park();
            }
        }

        fn release(&self, write: bool) {
            if write {
                self.state.store(0, Release);
            } else {
                self.state.fetch_sub(1, Release);
            }
            let parked =
                std::mem::take(&mut *self.parked.lock().unwrap_or_else(PoisonError::into_inner));
            for thread in parked {
                thread.unpark();
            }
        }
    }

    pub(crate) struct Mutex<T> {
        lock: Lock,
        data: std::sync::Mutex<T>,
    }

    pub(crate) struct MutexGuard<'a, T> {
        data: Option<std::sync::MutexGuard<'a, T>>,
        lock: &'a Lock,
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex {
                lock: Lock::new(),
                data: std::sync::Mutex::new(value),
            }
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.lock.acquire(true);
            MutexGuard {
                data: Some(self.data.lock().unwrap_or_else(PoisonError::into_inner)),
                lock: &self.lock,
            }
        }
    }

    pub(crate) struct RwLock<T> {
        lock: Lock,
        data: std::sync::RwLock<T>,
    }

    pub(crate) struct RwLockReadGuard<'a, T> {
        data: Option<std::sync::RwLockReadGuard<'a, T>>,
        lock: &'a Lock,
    }

    pub(crate) struct RwLockWriteGuard<'a, T> {
        data: Option<std::sync::RwLockWriteGuard<'a, T>>,
        lock: &'a Lock,
    }

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            RwLock {
                lock: Lock::new(),
                data: std::sync::RwLock::new(value),
            }
        }

        pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
            self.lock.acquire(false);
            RwLockReadGuard {
                data: Some(self.data.read().unwrap_or_else(PoisonError::into_inner)),
                lock: &self.lock,
            }
        }

        pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.lock.acquire(true);
            RwLockWriteGuard {
                data: Some(self.data.write().unwrap_or_else(PoisonError::into_inner)),
                lock: &self.lock,
            }
        }
    }

    /// Guards release the data first, then the modelled lock.
    macro_rules! guard {
        ($guard:ident, $write:expr) => {
            impl<T> Drop for $guard<'_, T> {
                fn drop(&mut self) {
                    self.data = None;
                    self.lock.release($write);
                }
            }

            impl<T> Deref for $guard<'_, T> {
                type Target = T;
                fn deref(&self) -> &T {
                    self.data.as_deref().expect("a live guard holds its data")
                }
            }
        };
    }

    guard!(MutexGuard, true);
    guard!(RwLockReadGuard, false);
    guard!(RwLockWriteGuard, true);

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.data
                .as_deref_mut()
                .expect("a live guard holds its data")
        }
    }

    impl<T> DerefMut for RwLockWriteGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.data
                .as_deref_mut()
                .expect("a live guard holds its data")
        }
    }
}

/// The identity of the running thread (a model's thread or task under loom and shuttle, which
/// run them all on one OS thread).
#[cfg(loom)]
pub(crate) use loom::thread::{ThreadId, current as current_thread};
#[cfg(all(shuttle, not(loom)))]
pub(crate) use shuttle::thread::{ThreadId, current as current_thread};
#[cfg(not(any(loom, shuttle)))]
pub(crate) use std::thread::{ThreadId, current as current_thread};
