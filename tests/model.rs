//! Model-based property test: random sequences of memo operations — `get_or_init` /
//! `get_or_try_init` and `refresh` / `try_refresh` / `refresh_if` calls whose init is ready at once, pending
//! behind a gate, failing or panicking, polled by hand and cancelled at any poll; `insert`;
//! `replace` with the current and older epochs; `invalidate` with the current and older epochs
//! and with a refresh's; `remove`; `invalidate_all`; `get`; `epoch`; `refreshing`; `iter`;
//! `invalidate_if` with predicates by key parity, flights only, entries only, all, and one that
//! re-enters the memo to insert a replacement for what it judges; clock advances
//! with a time to live and a time to idle; capacity pressure; automatic refresh
//! (`refresh_after`, `refresh_after_entry`), whose spawned tasks are live calls polled and
//! dropped like the others — checked step by step against a
//! sequential model of the contract. The interpreter and the model are in `model_ops/`, shared with the
//! cargo-fuzz target (`fuzz/`), which drives the same ops from raw bytes.
//!
//! Cases: `PROPTEST_CASES` (proptest's default, 256, in the gate). A failure shrinks to a short
//! op list and prints the run's trace: each op and what the memo answered.

mod model_ops;

use model_ops::{Config, Init, KEYS, Kind, Op, Outcome, Pred};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = u8> {
    0..KEYS
}

fn call() -> impl Strategy<Value = Op> {
    let init = prop_oneof![
        3 => Just(Init::Value),
        3 => Just(Init::Gated),
        2 => Just(Init::Yield),
        1 => Just(Init::Error),
        1 => Just(Init::PanicInFuture),
        1 => Just(Init::PanicInClosure),
    ];
    let kind = prop_oneof![
        Just(Kind::Plain),
        Just(Kind::Fallible),
        Just(Kind::Refresh),
        Just(Kind::TryRefresh),
        Just(Kind::RefreshIf),
    ];
    (key(), kind, init).prop_map(|(key, kind, init)| Op::Call { key, kind, init })
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        3 => Just(Outcome::Value),
        1 => Just(Outcome::Error),
        1 => Just(Outcome::Panic),
    ];
    prop_oneof![
        6 => call(),
        5 => (0..4u8).prop_map(|call| Op::Poll { call }),
        2 => (0..4u8).prop_map(|call| Op::Drop { call }),
        3 => (0..3u8, outcome).prop_map(|(gate, outcome)| Op::Open { gate, outcome }),
        3 => key().prop_map(|key| Op::Insert { key }),
        2 => (key(), 0..4u8).prop_map(|(key, back)| Op::Replace { key, back }),
        2 => key().prop_map(|key| Op::Invalidate { key }),
        2 => (key(), 0..4u8).prop_map(|(key, back)| Op::InvalidateOld { key, back }),
        1 => key().prop_map(|key| Op::InvalidateRefresh { key }),
        1 => key().prop_map(|key| Op::Remove { key }),
        1 => Just(Op::InvalidateAll),
        2 => key().prop_map(|key| Op::Get { key }),
        1 => key().prop_map(|key| Op::Epoch { key }),
        2 => key().prop_map(|key| Op::Peek { key }),
        1 => key().prop_map(|key| Op::Refreshing { key }),
        2 => (1..3u8).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::PurgeExpired),
        1 => Just(Op::Iter),
        2 => prop::sample::select(&Pred::ALL[..]).prop_map(|pred| Op::InvalidateIf { pred }),
    ]
}

/// A memo with `refresh_after` (0 to 3 s) whose spawner queues each refresh's task as a live
/// call, polled and dropped like the others.
fn refreshing_config() -> impl Strategy<Value = Config> {
    (config(), 0..4u8).prop_map(|(config, after)| Config {
        refresh_after: Some(after),
        ..config
    })
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop::option::weighted(0.5, 1..4u8),
        prop::option::weighted(0.4, 1..5u8),
        prop::option::weighted(0.2, 1..5u8),
        prop::option::weighted(0.4, 0..4u8),
        any::<bool>(),
    )
        .prop_map(|(capacity, ttl, tti, refresh_after, per_entry)| Config {
            capacity,
            ttl,
            tti,
            refresh_after,
            per_entry,
        })
}

proptest! {
    #[test]
    fn memo_follows_the_model(config in config(), ops in prop::collection::vec(op(), 1..48)) {
        model_ops::quiet_injected_panics(false);
        if let Err(violation) = model_ops::run(config, &ops) {
            prop_assert!(false, "{}", violation);
        }
    }
}

proptest! {
    // Automatic refresh, always on: a read of a due entry returns it at once and starts exactly
    // one refresh, which commits only onto the entry it refreshes; a failure throttles the next
    // attempt. 64 cases here; `memo_follows_the_model` covers it in some of its 256 too.
    #![proptest_config(ProptestConfig {
        cases: ProptestConfig::default().cases / 4,
        ..ProptestConfig::default()
    })]
    #[test]
    fn memo_with_refresh_after_follows_the_model(
        config in refreshing_config(),
        ops in prop::collection::vec(op(), 1..48),
    ) {
        model_ops::quiet_injected_panics(false);
        if let Err(violation) = model_ops::run(config, &ops) {
            prop_assert!(false, "{}", violation);
        }
    }
}

/// The interpreter's own sanity: a run that exercises a join, a gate and a detach passes.
#[test]
fn a_known_sequence_passes() {
    model_ops::quiet_injected_panics(false);
    let ops = [
        Op::Call {
            key: 0,
            kind: Kind::Plain,
            init: Init::Gated,
        },
        Op::Call {
            key: 0,
            kind: Kind::Fallible,
            init: Init::Value,
        },
        Op::Invalidate { key: 0 },
        Op::Call {
            key: 0,
            kind: Kind::Plain,
            init: Init::Value,
        },
        Op::Open {
            gate: 0,
            outcome: Outcome::Value,
        },
        Op::Poll { call: 0 },
        Op::Poll { call: 0 },
        Op::Get { key: 0 },
        Op::Insert { key: 1 },
        Op::Advance { secs: 2 },
        Op::Get { key: 1 },
    ];
    let config = Config {
        capacity: Some(2),
        ttl: Some(2),
        tti: None,
        ..Config::PLAIN
    };
    model_ops::run(config, &ops).unwrap_or_else(|e| panic!("{e}"));
    model_ops::run(Config::PLAIN, &ops).unwrap_or_else(|e| panic!("{e}"));
}

/// The fuzzer's decoder reaches every op (so the fuzz target explores what proptest does).
#[test]
fn the_fuzz_decoder_runs() {
    model_ops::quiet_injected_panics(false);
    let bytes: Vec<u8> = (0..=255u8).flat_map(|b| [b, b.wrapping_mul(37)]).collect();
    let (config, ops) = model_ops::decode(&bytes);
    model_ops::run(config, &ops).unwrap_or_else(|e| panic!("{e}"));
}

/// The fuzzer's committed seeds (`fuzz/seeds/ops/`) replay cleanly, so the corpus stays valid.
#[test]
fn the_fuzz_seeds_replay() {
    model_ops::quiet_injected_panics(false);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/ops");
    let mut replayed = 0;
    for file in std::fs::read_dir(&dir).expect("fuzz/seeds/ops") {
        let path = file.unwrap().path();
        let (config, ops) = model_ops::decode(&std::fs::read(&path).unwrap());
        model_ops::run(config, &ops).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        replayed += 1;
    }
    assert!(replayed >= 5, "only {replayed} seeds in {}", dir.display());
}

/// The interpreter's refresh side: a refresh joined by a `try_refresh` while readers keep the
/// entry, detached by `invalidate(k, refreshing(k))`; a refresh that commits; `replace` with the
/// current and a stale epoch; refreshes detached by `insert` and by `invalidate` of their entry;
/// a failing `try_refresh` that leaves the entry; `refresh_if` of the current generation (joined
/// by a second one) and of a gone one.
#[test]
fn a_known_refresh_sequence_passes() {
    model_ops::quiet_injected_panics(false);
    let call = |kind, init| Op::Call { key: 0, kind, init };
    let open = |outcome| Op::Open { gate: 0, outcome };
    let ops = [
        call(Kind::Plain, Init::Value),
        call(Kind::Refresh, Init::Gated),
        call(Kind::TryRefresh, Init::Value),
        Op::Get { key: 0 },
        Op::Refreshing { key: 0 },
        Op::InvalidateRefresh { key: 0 },
        open(Outcome::Value),
        Op::Poll { call: 0 },
        Op::Poll { call: 1 },
        call(Kind::Refresh, Init::Value),
        Op::Replace { key: 0, back: 0 },
        Op::Replace { key: 0, back: 1 },
        call(Kind::Refresh, Init::Gated),
        Op::Insert { key: 0 },
        open(Outcome::Value),
        Op::Poll { call: 0 },
        call(Kind::Refresh, Init::Gated),
        Op::Invalidate { key: 0 },
        open(Outcome::Value),
        Op::Poll { call: 0 },
        Op::Insert { key: 0 },
        call(Kind::TryRefresh, Init::Gated),
        open(Outcome::Error),
        Op::Poll { call: 0 },
        Op::Get { key: 0 },
        call(Kind::RefreshIf, Init::Gated),
        call(Kind::RefreshIf, Init::Value),
        open(Outcome::Value),
        Op::Poll { call: 0 },
        Op::Poll { call: 0 },
        Op::Invalidate { key: 0 },
        call(Kind::RefreshIf, Init::Value),
    ];
    model_ops::run(Config::PLAIN, &ops).unwrap_or_else(|e| panic!("{e}"));
    let config = Config {
        capacity: Some(1),
        ttl: Some(2),
        tti: None,
        ..Config::PLAIN
    };
    model_ops::run(config, &ops).unwrap_or_else(|e| panic!("{e}"));
}

/// The interpreter's inspect side: `iter` beside a flight and a refresh; `invalidate_if` of
/// flights only (the flight detached: it never commits, its caller still gets its value), of
/// entries only (the refresh detached with its entry), by key parity, and re-entrant (the
/// replacement inserted from the predicate survives, the judged entry is reported `Replaced`);
/// then `iter` again, and an expired entry neither listed nor shown.
#[test]
fn a_known_inspect_sequence_passes() {
    model_ops::quiet_injected_panics(false);
    let call = |key, kind, init| Op::Call { key, kind, init };
    let sweep = |pred| Op::InvalidateIf { pred };
    let ops = [
        Op::Insert { key: 0 },
        Op::Insert { key: 1 },
        call(2, Kind::Plain, Init::Gated),
        call(0, Kind::Refresh, Init::Gated),
        Op::Iter,
        sweep(Pred::Flights),
        Op::Open {
            gate: 0,
            outcome: Outcome::Value,
        },
        Op::Open {
            gate: 0,
            outcome: Outcome::Value,
        },
        Op::Poll { call: 0 },
        Op::Poll { call: 0 },
        Op::Iter,
        call(0, Kind::Refresh, Init::Gated),
        sweep(Pred::Entries),
        Op::Open {
            gate: 0,
            outcome: Outcome::Value,
        },
        Op::Poll { call: 0 },
        Op::Insert { key: 0 },
        Op::Insert { key: 1 },
        call(2, Kind::Plain, Init::Gated),
        sweep(Pred::Reenter),
        Op::Iter,
        Op::Insert { key: 2 },
        sweep(Pred::OddKeys),
        sweep(Pred::EvenKeys),
        Op::Insert { key: 0 },
        Op::Advance { secs: 2 },
        Op::Insert { key: 1 },
        Op::Iter,
        sweep(Pred::All),
        Op::Iter,
    ];
    model_ops::run(Config::PLAIN, &ops).unwrap_or_else(|e| panic!("{e}"));
    for config in [
        Config {
            capacity: Some(2),
            ttl: Some(2),
            tti: None,
            ..Config::PLAIN
        },
        Config {
            capacity: Some(1),
            ttl: None,
            tti: Some(1),
            ..Config::PLAIN
        },
    ] {
        model_ops::run(config, &ops).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The interpreter's automatic-refresh side (`refresh_after` 2 s, on one key): a due read is
/// served and spawns one task, a second due read joins nothing and spawns nothing; the task
/// commits; a refresh whose entry is invalidated, replaced, or expired meanwhile never commits
/// (Caffeine #193); a failed automatic refresh holds off the next attempt for 2 s from its
/// failure (Caffeine #286); a dropped task abandons its refresh; a panicking init closure fails
/// it; a manual refresh joins an automatic one.
#[test]
fn a_known_refresh_after_sequence_passes() {
    model_ops::quiet_injected_panics(false);
    let read = |kind, init| Op::Call { key: 0, kind, init };
    let open = |outcome| Op::Open { gate: 0, outcome };
    let poll = Op::Poll { call: 0 };
    let wait = Op::Advance { secs: 2 };
    let ops = [
        read(Kind::Plain, Init::Value),
        Op::Advance { secs: 1 },
        read(Kind::Plain, Init::Value), // not due yet
        Op::Advance { secs: 1 },
        read(Kind::Plain, Init::Gated),    // due: served, one task
        read(Kind::Fallible, Init::Value), // served, no second refresh
        Op::Refreshing { key: 0 },
        open(Outcome::Value),
        poll, // the task commits
        Op::Get { key: 0 },
        wait,
        read(Kind::Plain, Init::Gated),
        Op::Invalidate { key: 0 }, // detaches the refresh with its entry
        open(Outcome::Value),
        poll,
        Op::Get { key: 0 },
        Op::Insert { key: 0 },
        wait,
        read(Kind::Fallible, Init::Gated),
        Op::Replace { key: 0, back: 0 },
        open(Outcome::Value),
        poll,
        wait,
        read(Kind::Fallible, Init::Error),
        Op::Advance { secs: 1 },
        poll, // fails: the next attempt waits 2 s from now
        wait,
        read(Kind::Plain, Init::Value), // 1 s after its start: still throttled
        Op::Advance { secs: 1 },
        read(Kind::Plain, Init::Value),   // 2 s after the failure: due
        read(Kind::Refresh, Init::Value), // a manual refresh joins it
        poll,
        wait,
        read(Kind::Plain, Init::Value),
        Op::Drop { call: 0 }, // the spawner's task dropped: abandoned
        read(Kind::Plain, Init::PanicInClosure), // throttled since the abandoned start
        wait,
        read(Kind::Plain, Init::PanicInClosure),
        wait,
        read(Kind::Plain, Init::Gated),
        Op::Advance { secs: 3 },
        open(Outcome::Value),
        poll,
    ];
    let refreshing = Config {
        refresh_after: Some(2),
        ..Config::PLAIN
    };
    model_ops::run(refreshing, &ops).unwrap_or_else(|e| panic!("{e}"));
    for config in [
        Config {
            ttl: Some(3),
            ..refreshing
        },
        Config {
            capacity: Some(1),
            per_entry: true,
            ..refreshing
        },
        Config {
            refresh_after: Some(0),
            ..Config::PLAIN
        },
    ] {
        model_ops::run(config, &ops).unwrap_or_else(|e| panic!("{e}"));
    }
}
