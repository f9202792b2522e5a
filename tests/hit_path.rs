//! The hit path does not allocate (semantics 10): `get` and a `get_or_init` hit, with owned and
//! borrowed keys, on unbounded, bounded and expiring memos. A counting global allocator (this
//! test binary's only) sees every allocation made on the test's thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use async_memo::{AsyncMemo, ManualClock};
use futures::executor::block_on;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to `System`, only counting. (The crate itself forbids `unsafe`; a global
// allocator cannot be written without it, and this one lives in a test binary.)
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn assert_hits_do_not_allocate(memo: &AsyncMemo<String, u64>) {
    block_on(memo.get_or_init("key".to_string(), || async { 7 }));
    let key = "key".to_string();
    assert_eq!(allocations(|| assert!(memo.get("key").is_some())), 0, "get");
    let hit = || {
        let entry = block_on(memo.get_or_init_by_ref("key", || async { unreachable!() }));
        assert_eq!(*entry.value(), 7);
    };
    assert_eq!(allocations(hit), 0, "get_or_init_by_ref hit");
    let owned = key.clone();
    let hit = || {
        block_on(memo.get_or_init(owned, || async { unreachable!() }));
    };
    assert_eq!(
        allocations(hit),
        0,
        "get_or_init hit (the key was cloned before)"
    );
}

#[test]
fn a_hit_does_not_allocate() {
    assert_hits_do_not_allocate(&AsyncMemo::new());
}

#[test]
fn a_hit_on_a_bounded_memo_does_not_allocate() {
    assert_hits_do_not_allocate(&AsyncMemo::builder().max_capacity(100).build());
}

#[test]
fn a_hit_on_an_expiring_memo_does_not_allocate() {
    let memo = AsyncMemo::builder()
        .time_to_live(Duration::from_secs(60))
        .time_to_idle(Duration::from_secs(10))
        .clock(ManualClock::new())
        .build();
    assert_hits_do_not_allocate(&memo);
}

/// The counter is not blind: a miss does allocate (the flight).
#[test]
fn a_miss_allocates_and_is_counted() {
    let memo: AsyncMemo<u64, u64> = AsyncMemo::new();
    let miss = || {
        block_on(memo.get_or_init(1, || async { 1 }));
    };
    assert!(allocations(miss) > 0);
}
