//! Time arithmetic never wraps and never reaches the "no deadline" sentinel (issue 9, kind 1).
//!
//! Pins: `ManualClock` saturates instead of wrapping (`advance(Duration::MAX)` then `advance(1s)`
//! used to go backwards); a reading 584 years out is not the "never" tick (an entry without a
//! deadline used to expire there); a custom clock that goes backwards cannot bring an expired
//! entry back (moka #52, #472); and every deadline (time to live, time to idle, `expire_after`)
//! is computed with saturating sums, checked against a model in `u128` by a property test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memo::{AsyncMemo, Clock, ManualClock};
use proptest::prelude::*;

const NS: Duration = Duration::from_nanos(1);
const EXTREMES: [Duration; 6] = [
    Duration::ZERO,
    NS,
    Duration::from_secs(1),
    Duration::from_secs(u64::MAX / 2),
    Duration::from_nanos(u64::MAX),
    Duration::MAX,
];

#[test]
fn time_arithmetic_manual_clock_saturates_instead_of_going_backwards() {
    for first in EXTREMES {
        for second in EXTREMES {
            let clock = ManualClock::new();
            let t0 = clock.now();
            clock.advance(first);
            let t1 = clock.now();
            clock.advance(second);
            let t2 = clock.now();
            assert!(
                t0 <= t1 && t1 <= t2,
                "advance({first:?}), advance({second:?}) went back"
            );
            let expected = first
                .saturating_add(second)
                .min(Duration::from_nanos(u64::MAX));
            assert_eq!(t2 - t0, expected, "advance({first:?}), advance({second:?})");
        }
    }
}

#[test]
fn time_arithmetic_an_expired_entry_stays_expired_after_advance_max() {
    let clock = ManualClock::new();
    let memo: AsyncMemo<u8, u8> = AsyncMemo::builder()
        .time_to_live(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    let _ = memo.insert(1, 1);
    clock.advance(Duration::MAX);
    clock.advance(Duration::from_secs(1));
    assert!(
        memo.get(&1).is_none(),
        "served again after the clock wrapped"
    );
    let _ = memo.insert(2, 2);
    clock.advance(Duration::from_secs(11));
    assert!(
        memo.get(&2).is_some(),
        "at the end of time, time stands still: a new entry never reaches its deadline"
    );
}

#[test]
fn time_arithmetic_a_reading_584_years_out_is_not_the_never_sentinel() {
    for rule in ["expire_after None", "tti MAX", "ttl MAX"] {
        let clock = ManualClock::new();
        let builder = AsyncMemo::<u8, u8>::builder().clock(clock.clone());
        let builder = match rule {
            "expire_after None" => builder.expire_after(|_, _| None),
            "tti MAX" => builder.time_to_idle(Duration::MAX),
            _ => builder.time_to_live(Duration::MAX),
        };
        let memo = builder.build();
        let _ = memo.insert(1, 1);
        clock.advance(Duration::MAX);
        assert!(memo.get(&1).is_some(), "{rule}: no deadline, yet expired");
        memo.purge_expired();
        assert_eq!(memo.len(), 1, "{rule}: purged");
    }
}

/// A clock the test sets, backwards if it likes.
#[derive(Clone)]
struct SetClock(Arc<Mutex<Instant>>);

impl Clock for SetClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

/// moka #52 / #472: a clock that goes backwards must not bring an expired entry back.
#[test]
fn time_arithmetic_a_clock_going_backwards_does_not_revive_an_expired_entry_moka_472() {
    let start = Instant::now();
    let time = Arc::new(Mutex::new(start));
    let set = |secs| *time.lock().unwrap() = start + Duration::from_secs(secs);
    let memo: AsyncMemo<u8, u8> = AsyncMemo::builder()
        .shards(1)
        .time_to_live(Duration::from_secs(10))
        .clock(SetClock(Arc::clone(&time)))
        .build();
    let _ = memo.insert(1, 1);
    set(15);
    assert!(memo.get(&2).is_none(), "a read at 15 s (of another key)");
    set(5);
    assert!(
        memo.get(&1).is_none(),
        "expired at 15 s: the clock going back revives nothing"
    );
    // And time stands still until the clock catches up: a new entry lives its full 10 s from 15.
    let _ = memo.insert(3, 3);
    set(24);
    assert!(memo.get(&3).is_some());
    set(25);
    assert!(memo.get(&3).is_none());
}

#[derive(Clone, Debug)]
enum Op {
    Advance(Duration),
    /// Insert key with this `expire_after` answer.
    Insert(u8, Option<Duration>),
    Get(u8),
    Purge,
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        proptest::sample::select(EXTREMES.to_vec()),
        (0u64..20).prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_nanos),
        (u64::MAX - 20..=u64::MAX).prop_map(Duration::from_nanos),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => duration().prop_map(Op::Advance),
        2 => (0u8..4, proptest::option::of(duration())).prop_map(|(k, d)| Op::Insert(k, d)),
        3 => (0u8..4).prop_map(Op::Get),
        1 => Just(Op::Purge),
    ]
}

/// The model: exact times in `u128` nanoseconds; the clock stops at `u64::MAX` ns and a reading
/// is at most one less (the memo's "never" is `u64::MAX`).
struct Model {
    elapsed: u128,
    ttl: Option<u128>,
    tti: Option<u128>,
    /// key -> (stored at, own deadline, last read)
    entries: HashMap<u8, (u128, Option<u128>, u128)>,
}

fn nanos(d: Duration) -> u128 {
    d.as_nanos()
}

impl Model {
    fn now(&self) -> u128 {
        self.elapsed.min(u128::from(u64::MAX - 1))
    }

    fn expired(&self, key: u8) -> bool {
        let Some(&(stored, own, read)) = self.entries.get(&key) else {
            return false;
        };
        let deadlines = [
            self.ttl.map(|t| stored + t),
            own.map(|d| stored + d),
            self.tti.map(|t| read + t),
        ];
        deadlines.into_iter().flatten().any(|at| at <= self.now())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn time_arithmetic_saturates_like_the_u128_model(
        ttl in proptest::option::of(duration()),
        tti in proptest::option::of(duration()),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let clock = ManualClock::new();
        let mut builder = AsyncMemo::<u8, Option<Duration>>::builder()
            .shards(1)
            .clock(clock.clone())
            .expire_after(|_, own: &Option<Duration>| *own);
        if let Some(ttl) = ttl {
            builder = builder.time_to_live(ttl);
        }
        if let Some(tti) = tti {
            builder = builder.time_to_idle(tti);
        }
        let memo = builder.build();
        let mut model = Model {
            elapsed: 0,
            ttl: ttl.map(nanos),
            tti: tti.map(nanos),
            entries: HashMap::new(),
        };
        for op in ops {
            match op {
                Op::Advance(by) => {
                    clock.advance(by);
                    model.elapsed = (model.elapsed + nanos(by)).min(u128::from(u64::MAX));
                }
                Op::Insert(key, own) => {
                    let _ = memo.insert(key, own);
                    let now = model.now();
                    model.entries.insert(key, (now, own.map(nanos), now));
                }
                Op::Get(key) => {
                    let expected = model.entries.contains_key(&key) && !model.expired(key);
                    if model.expired(key) {
                        model.entries.remove(&key);
                    }
                    if expected {
                        let now = model.now();
                        model.entries.get_mut(&key).unwrap().2 = now;
                    }
                    prop_assert_eq!(memo.get(&key).is_some(), expected, "get({}) at {}", key, model.now());
                }
                Op::Purge => {
                    let keys: Vec<u8> = model.entries.keys().copied().collect();
                    for key in keys {
                        if model.expired(key) {
                            model.entries.remove(&key);
                        }
                    }
                    memo.purge_expired();
                    prop_assert_eq!(memo.len(), model.entries.len(), "len after purge_expired");
                }
            }
        }
    }
}
