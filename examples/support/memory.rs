//! Memory per entry, measured with a counting global allocator (the report's only allocator), and
//! the size of each library's get-or-compute future.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

use async_memo::AsyncMemo;

use crate::contenders::{Contender, Floor, Moka, Ours, Quick};

// A counting allocator: live bytes, counted only while `COUNTING` is on (memory section only, so
// the timed sections pay one relaxed load per allocation, the same for every library).

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes per entry of a cache built and filled with `n` `u64 -> u64` entries by `build`
/// (everything it allocates, fixed parts included), and the entries it holds.
fn bytes_per_entry<C: Contender>(n: usize, build: impl FnOnce() -> C) -> (f64, usize) {
    LIVE.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
    let cache = build();
    for key in 0..n as u64 {
        cache.insert(key, key);
    }
    cache.settle();
    COUNTING.store(false, Relaxed);
    let bytes = LIVE.load(Relaxed);
    let len = cache.len();
    drop(cache);
    (bytes as f64 / n as f64, len)
}

/// Entries in each memory measurement.
const N: usize = 100_000;

/// Bytes per entry (and entries held) of each library, unbounded and bounded.
pub struct Memory {
    pub rows: [(&'static str, (f64, usize)); 6],
}

impl Memory {
    /// Run first, before any runtime or thread exists.
    pub fn measure() -> Self {
        let rows = [
            (
                "async-memo (unbounded)",
                bytes_per_entry(N, || <Ours>::unbounded(N)),
            ),
            (
                "async-memo (max_capacity 100K)",
                bytes_per_entry(N, || <Ours>::bounded(N as u64).unwrap()),
            ),
            (
                "moka (unbounded)",
                bytes_per_entry(N, || Moka::unbounded(N)),
            ),
            (
                "moka (max_capacity 100K)",
                bytes_per_entry(N, || Moka::bounded(N as u64).unwrap()),
            ),
            (
                "quick_cache (capacity 100K)",
                bytes_per_entry(N, || Quick::bounded(N as u64).unwrap()),
            ),
            (
                "RwLock<HashMap>",
                bytes_per_entry(N, || <Floor>::unbounded(N)),
            ),
        ];
        Memory { rows }
    }

    pub fn unbounded(&self) -> f64 {
        self.rows[0].1.0
    }

    pub fn bounded(&self) -> f64 {
        self.rows[1].1.0
    }

    pub fn moka(&self) -> f64 {
        self.rows[2].1.0
    }

    pub fn print(&self) {
        println!("| memory, 100K `u64 -> u64` entries | bytes per entry | entries held |");
        println!("|---|---:|---:|");
        for (name, (bytes, len)) in &self.rows {
            println!("| {name} | {bytes:.1} | {len} |");
        }
        println!();
    }
}

/// `size_of_val` of the get-or-compute future of async-memo, moka and quick_cache, with an init
/// returning a `u64` at once.
pub fn future_sizes() -> [usize; 3] {
    let ours = {
        let memo: AsyncMemo<u64, u64> = AsyncMemo::new();
        std::mem::size_of_val(&memo.get_or_init(1, || async { 1 }))
    };
    let moka = {
        let cache: moka::future::Cache<u64, u64> = moka::future::Cache::new(16);
        std::mem::size_of_val(&cache.get_with(1, async { 1 }))
    };
    let quick = {
        let cache: quick_cache::sync::Cache<u64, u64> = quick_cache::sync::Cache::new(16);
        std::mem::size_of_val(&cache.get_or_insert_async(&1, async { Ok::<u64, ()>(1) }))
    };
    [ours, moka, quick]
}
