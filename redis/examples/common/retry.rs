//! Small helpers both Redis demos use (`near_cache`, `shared_tier`; included with `#[path]`):
//! retries with a backoff, a lock that survives poisoning, a tiny random number generator.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub(crate) fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A poisoned lock only means another task panicked while holding it; the data is plain
/// counters and ids, still meaningful.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The wait between retries of a failed call to Redis: 5 ms, doubling up to 200 ms, back to
/// 5 ms after a success. Short enough that a restart costs little, long enough that a server
/// that is down is not hammered.
#[derive(Debug)]
pub(crate) struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_millis(200);

    pub(crate) fn new() -> Backoff {
        Backoff(Self::FIRST)
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Self::MAX);
    }

    pub(crate) fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

/// Runs `attempt` until it succeeds, waiting a [`Backoff`] between failures, for at most
/// `patience`: then the last error.
pub(crate) async fn retry<T, E, Fut>(
    patience: Duration,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = Backoff::new();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => backoff.wait().await,
        }
    }
}
