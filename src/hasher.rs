//! `DefaultHashBuilder`: the memo's default hasher, foldhash behind a type of our own.
//!
//! Why a newtype: the hasher is named in every memo's type (`AsyncMemo<K, V>` means
//! `AsyncMemo<K, V, DefaultHashBuilder>`), so if it were `foldhash::fast::RandomState` itself, a
//! change of algorithm — or a foldhash major version — would break every user who names the
//! type. Behind our own `DefaultHashBuilder` and `DefaultHasher` it is a detail we may change in
//! a minor release (hashbrown and quick_cache wrap theirs for the same reason).
//!
//! Why `foldhash::fast` rather than `foldhash::quality`: see [`DefaultHashBuilder`].

use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// The algorithm behind [`DefaultHashBuilder`]; nothing outside this file names it.
type Inner = foldhash::fast::RandomState;

/// The default hasher of [`AsyncMemo`](crate::AsyncMemo) and [`MemoBuilder`](crate::MemoBuilder):
/// fast, seeded, and **not** designed to resist hash flooding by an attacker who chooses keys.
///
/// Today it is [foldhash](https://crates.io/crates/foldhash)'s `fast` variant (the default of
/// hashbrown; quick_cache uses foldhash too). Each `DefaultHashBuilder::default()` — so each
/// memo, which builds one — draws its own 64-bit seed, mixed with a seed shared by the whole
/// process; clones of one memo handle share its hasher. Both seeds come from cheap sources of
/// variation (addresses under address-space randomization, the clock, a per-thread counter),
/// not from the operating system's random source. The algorithm may change in any release; only
/// the properties stated here are promised (in particular, hashes are not stable across
/// processes or versions, so never persist them).
///
/// # Hash flooding
///
/// A hash table slows down when many keys land in one bucket. Someone who can choose your keys
/// (request paths, user names, header values) and learn enough about the hash can craft such
/// keys on purpose and make every operation on that shard slow. foldhash calls itself
/// "minimally DoS-resistant": its seeds make that hard to do blindly, but it is not designed
/// to withstand a determined attacker. For keys an attacker controls, use std's SipHash-1-3,
/// keyed from the operating system's random source, with one builder call:
///
/// ```
/// use std::hash::RandomState;
/// use async_memo::AsyncMemo;
///
/// let by_path: AsyncMemo<String, u32, RandomState> =
///     AsyncMemo::builder().hasher(RandomState::new()).build();
/// by_path.insert("/index.html".to_string(), 200).unwrap();
/// assert_eq!(by_path.get("/index.html").map(|e| *e.value()), Some(200));
/// ```
///
/// # Why `fast`, not `quality`
///
/// foldhash's `quality` variant adds one more folded multiply to `finish`, for algorithms
/// that rely on the statistics of every output bit (HyperLogLog, MinHash). A memo only uses the
/// hash to pick a shard (bits 32 and up) and a slot in hashbrown (its low bits and top seven),
/// which the `fast` variant serves as well; hashbrown, whose table we use, chose `fast` for its
/// own default (quick_cache chose `quality`). The extra multiply is on the hit's critical path
/// (the hash picks the shard whose lock is read next): hashing a `u64` took about 2.5–4.7 ns
/// with `fast`, 9 ns with `quality` and 24–25 ns with SipHash-1-3 when each hash waited for the
/// previous one, on the 2-core machine the benchmarks run on. On a whole `get` hit on 10K
/// `u64` keys the bench report measured 17.9–18.3 ns with `fast` and 19.9–22.6 ns with
/// `quality` (its diagnostic row; three of four runs, the fourth an outlier) on that shared,
/// noisy machine, against 33–58 ns with SipHash.
///
/// # Examples
///
/// ```
/// use async_memo::{AsyncMemo, DefaultHashBuilder};
///
/// // `AsyncMemo<K, V>` is `AsyncMemo<K, V, DefaultHashBuilder>`.
/// let memo: AsyncMemo<u64, u64, DefaultHashBuilder> = AsyncMemo::new();
/// memo.insert(1, 10).unwrap();
/// let same: AsyncMemo<u64, u64> = memo.clone();
/// assert_eq!(same.get(&1).map(|e| *e.value()), Some(10));
/// ```
#[derive(Clone, Default)]
pub struct DefaultHashBuilder(Inner);

impl BuildHasher for DefaultHashBuilder {
    type Hasher = DefaultHasher;

    #[inline(always)]
    fn build_hasher(&self) -> DefaultHasher {
        DefaultHasher(self.0.build_hasher())
    }
}

impl fmt::Debug for DefaultHashBuilder {
    /// Prints no seed: it is the one secret the hasher has.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultHashBuilder").finish_non_exhaustive()
    }
}

/// The [`Hasher`] a [`DefaultHashBuilder`] builds (foldhash's `fast` hasher, today); see
/// [`DefaultHashBuilder`] for its properties.
///
/// # Examples
///
/// ```
/// use std::hash::{BuildHasher, Hasher};
/// use async_memo::DefaultHashBuilder;
///
/// let builder = DefaultHashBuilder::default();
/// let mut hasher = builder.build_hasher();
/// hasher.write_u64(7);
/// // One builder hashes a value the same way every time.
/// assert_eq!(hasher.finish(), builder.hash_one(7_u64));
/// ```
#[derive(Clone)]
pub struct DefaultHasher(<Inner as BuildHasher>::Hasher);

/// Forwards each `write_*` so that the inner hasher's specialised ones run (the trait's
/// defaults would turn every integer into a byte slice first).
macro_rules! forward_writes {
    ($($write:ident($ty:ty)),* $(,)?) => {$(
        #[inline(always)]
        fn $write(&mut self, value: $ty) {
            self.0.$write(value);
        }
    )*};
}

impl Hasher for DefaultHasher {
    forward_writes! {
        write(&[u8]),
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_usize(usize),
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
        write_isize(isize),
    }

    #[inline(always)]
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

impl fmt::Debug for DefaultHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultHasher").finish_non_exhaustive()
    }
}
