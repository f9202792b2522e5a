//! The hasher (issue 14): the default is `DefaultHashBuilder` (foldhash), seeded per memo, and
//! std's SipHash is one builder call away for keys an attacker chooses.

use std::hash::{BuildHasher, Hasher, RandomState};

use async_memo::{AsyncMemo, DefaultHashBuilder, DefaultHasher, MemoBuilder, WeakMemo};
use futures::executor::block_on;

#[test]
fn the_default_hasher_is_default_hash_builder() {
    // Each binding compiles only if the default `S` of the type is `DefaultHashBuilder`.
    let builder: MemoBuilder<u64, u64, DefaultHashBuilder> = AsyncMemo::builder();
    let built: AsyncMemo<u64, u64, DefaultHashBuilder> = builder.build();
    let new: AsyncMemo<u64, u64, DefaultHashBuilder> = AsyncMemo::new();
    let default: AsyncMemo<u64, u64, DefaultHashBuilder> = AsyncMemo::default();
    let weak: WeakMemo<u64, u64, DefaultHashBuilder> = new.downgrade();
    for memo in [&built, &new, &default] {
        memo.insert(1, 10).unwrap();
        assert_eq!(memo.get(&1).map(|e| *e.value()), Some(10));
    }
    assert!(weak.upgrade().is_some());
}

#[test]
fn siphash_is_one_builder_call_away() {
    let memo: AsyncMemo<String, usize, RandomState> =
        AsyncMemo::builder().hasher(RandomState::new()).build();
    block_on(async {
        for i in 0..1_000 {
            let key = format!("/user/{i}");
            let entry = memo.get_or_init(key, || async move { i }).await;
            assert_eq!(*entry.value(), i);
        }
        assert_eq!(memo.len(), 1_000);
        let seen = memo.get("/user/7").expect("stored");
        assert_eq!(*seen.value(), 7);
        assert!(memo.invalidate("/user/7", seen.epoch()));
        assert!(memo.get("/user/7").is_none());
        assert_eq!(memo.len(), 999);
    });
}

#[test]
fn siphash_memos_keep_the_builder_settings() {
    // The hasher call keeps what was set before it (here: the shard count and the bound).
    let memo: AsyncMemo<u64, u64, RandomState> = AsyncMemo::builder()
        .shards(2)
        .max_capacity(100)
        .hasher(RandomState::new())
        .build();
    assert!(format!("{memo:?}").contains("shards: 2"));
    for k in 0..1_000 {
        memo.insert(k, k).unwrap();
    }
    assert!(memo.len() <= 100);
}

#[test]
fn each_default_hash_builder_draws_its_own_seed() {
    let a = DefaultHashBuilder::default();
    let b = DefaultHashBuilder::default();
    // Different seeds give different hashes (equal ones would be a 2^-64 coincidence, for both
    // keys at once far less).
    assert!(a.hash_one(42_u64) != b.hash_one(42_u64) || a.hash_one("k") != b.hash_one("k"));
    // A clone (what every handle of one memo shares) hashes exactly like its original.
    let a2 = a.clone();
    for key in [0_u64, 1, 42, u64::MAX] {
        assert_eq!(a.hash_one(key), a2.hash_one(key));
    }
}

#[test]
fn default_hasher_forwards_every_write() {
    // The forwarding `write_*` methods must agree with the hasher a `Hash` impl drives: a key
    // hashed through `hash_one` and one fed by hand give the same result.
    let builder = DefaultHashBuilder::default();
    let mut by_hand: DefaultHasher = builder.build_hasher();
    by_hand.write_u64(7);
    assert_eq!(by_hand.finish(), builder.hash_one(7_u64));

    let mut by_hand = builder.build_hasher();
    by_hand.write_u32(7);
    by_hand.write_i16(-1);
    by_hand.write_u8(3);
    assert_eq!(by_hand.finish(), builder.hash_one((7_u32, -1_i16, 3_u8)));

    // Different keys of one builder almost never share a hash: the hasher is not a constant.
    let hashes: std::collections::HashSet<u64> =
        (0..10_000_u64).map(|k| builder.hash_one(k)).collect();
    assert_eq!(hashes.len(), 10_000);
}

#[test]
fn debug_shows_no_seed() {
    let builder = DefaultHashBuilder::default();
    assert_eq!(format!("{builder:?}"), "DefaultHashBuilder { .. }");
    assert_eq!(
        format!("{:?}", builder.build_hasher()),
        "DefaultHasher { .. }"
    );
}
