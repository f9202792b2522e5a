//! The ops: what a call does ([`Kind`], [`Init`], [`Outcome`]), the [`Op`] enum, the
//! `invalidate_if` predicates, the memo [`Config`], and [`decode`] of a fuzzer's bytes.

/// Keys are `0..KEYS`.
pub const KEYS: u8 = 3;

/// Which method a call uses: `get_or_init_with_epoch`, `get_or_try_init_with_epoch`, `refresh`,
/// `try_refresh`, or `refresh_if` of the epoch the model says the key holds (or held last) when
/// the call starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Fallible,
    Refresh,
    TryRefresh,
    RefreshIf,
    /// Not a kind of [`Op::Call`]: the task an automatic refresh hands to the spawner, which
    /// the interpreter adds to the live calls (so `Poll` and `Drop` reach it). It counts as its
    /// refresh's creator, and ends (`()`) whatever the refresh's outcome.
    Task,
}

impl Kind {
    /// Whether the call receives its flight's error (`Arc<Failure>`); a task takes it and ends.
    pub(super) fn fallible(self) -> bool {
        matches!(self, Kind::Fallible | Kind::TryRefresh | Kind::Task)
    }

    /// Whether the call refreshes a ready entry (or, with none, is `get_or_init`).
    pub(super) fn refreshes(self) -> bool {
        matches!(self, Kind::Refresh | Kind::TryRefresh | Kind::RefreshIf)
    }
}

/// What a call's init does if it runs. `Error` in a `Plain` call produces a value instead (its
/// future cannot fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// The future is ready at its first poll with a value.
    Value,
    /// The future is ready at its first poll with an error.
    Error,
    /// The init closure itself panics (before making a future).
    PanicInClosure,
    /// The future panics at its first poll.
    PanicInFuture,
    /// The future is pending until an [`Op::Open`] opens its gate.
    Gated,
    /// The future wakes itself and returns `Pending` at its first poll (a `yield_now`), and
    /// gives a value at the next: if its driver is dropped in between, another caller must be
    /// woken to poll it (futures-rs #2706).
    Yield,
}

/// How an [`Op::Open`] completes a gated future (`Error` gives a value in a `Plain` flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Value,
    Error,
    Panic,
}

/// One step. Indices (`call`, `gate`, `back`) are taken modulo what exists, so every sequence is
/// valid and shrinks well.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Starts a call for `key` and polls it once.
    Call {
        key: u8,
        kind: Kind,
        init: Init,
    },
    /// Polls the `call`-th live call (in order of creation).
    Poll {
        call: u8,
    },
    /// Drops (cancels) the `call`-th live call.
    Drop {
        call: u8,
    },
    /// Opens the gate of the `gate`-th running gated flight.
    Open {
        gate: u8,
        outcome: Outcome,
    },
    Insert {
        key: u8,
    },
    /// `replace(key, e, v)`: with `back == 0`, `e` is the epoch the model says the key holds (or
    /// held last); otherwise the `back`-th most recent epoch seen, of any key (often stale).
    Replace {
        key: u8,
        back: u8,
    },
    /// `invalidate(key, e)` with `e` the epoch the model says the key holds (or held last).
    Invalidate {
        key: u8,
    },
    /// `invalidate(key, e)` with the `back`-th most recent epoch seen, of any key.
    InvalidateOld {
        key: u8,
        back: u8,
    },
    /// `invalidate(key, r)` with `r` the epoch of the key's refresh in flight, or of its last
    /// refresh (detached or finished: a stale one).
    InvalidateRefresh {
        key: u8,
    },
    Remove {
        key: u8,
    },
    InvalidateAll,
    Get {
        key: u8,
    },
    Epoch {
        key: u8,
    },
    /// `peek(key)` and `entry_info(key)`: what `get` would return, and the entry's deadlines
    /// and refresh due tick, with no side effect on the memo (the model is left as it is).
    Peek {
        key: u8,
    },
    Refreshing {
        key: u8,
    },
    /// Advances the manual clock by `secs` seconds.
    Advance {
        secs: u8,
    },
    PurgeExpired,
    /// `iter()`: the sorted snapshot must be exactly the model's ready, unexpired entries (the
    /// memo is quiet and has one shard), and iterating is not a read.
    Iter,
    /// `invalidate_if(predicate)`: the predicate must be shown exactly the model's ready,
    /// unexpired entries (`Some`) and the flights of keys with no entry (`None`), once each.
    InvalidateIf {
        pred: Pred,
    },
}

/// The predicates of [`Op::InvalidateIf`]: deterministic, by what they are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pred {
    /// Keys 0, 2, ...
    EvenKeys,
    /// Keys 1, 3, ...
    OddKeys,
    /// Flights only (shown `None`).
    Flights,
    /// Ready entries only (shown `Some`).
    Entries,
    All,
    /// Chooses everything, and for an odd key first inserts a replacement from inside the
    /// predicate (re-entrant): the replacement must survive (the entry judged is gone, so the
    /// compare-and-delete finds a newer epoch), the judged entry is reported `Replaced`.
    Reenter,
}

impl Pred {
    pub const ALL: [Pred; 6] = [
        Pred::EvenKeys,
        Pred::OddKeys,
        Pred::Flights,
        Pred::Entries,
        Pred::All,
        Pred::Reenter,
    ];

    pub(super) fn chooses(self, key: u8, entry: bool) -> bool {
        match self {
            Pred::EvenKeys => key % 2 == 0,
            Pred::OddKeys => key % 2 == 1,
            Pred::Flights => !entry,
            Pred::Entries => entry,
            Pred::All | Pred::Reenter => true,
        }
    }

    /// Whether the predicate inserts a replacement for `key` before answering.
    pub(super) fn replaces(self, key: u8) -> bool {
        self == Pred::Reenter && key % 2 == 1
    }
}

/// How the memo is built. Always one shard (so eviction is per memo) and a removal listener.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub capacity: Option<u8>,
    /// Time to live, in seconds.
    pub ttl: Option<u8>,
    /// Time to idle, in seconds.
    pub tti: Option<u8>,
    /// `refresh_after`, in seconds (0 included: every read of a committed entry is due), with
    /// a spawner that queues the task for the interpreter.
    pub refresh_after: Option<u8>,
    /// With `refresh_after`: also `refresh_after_entry`, by value id (see [`own_interval`]).
    pub per_entry: bool,
}

impl Config {
    pub const PLAIN: Config = Config {
        capacity: None,
        ttl: None,
        tti: None,
        refresh_after: None,
        per_entry: false,
    };
}

/// The `refresh_after_entry` interval of the value with this id, in seconds: `None` (the
/// memo-wide interval) for a third of the ids, 1 or 2 for the others.
pub(super) fn own_interval(id: u64) -> Option<u64> {
    Some(id % 3).filter(|&n| n != 0)
}

/// Decodes a fuzzer's bytes: two bytes of config (the second's high bit turns on
/// `refresh_after`, bits 4-5 its seconds, bit 6 `refresh_after_entry`), then two bytes per op:
/// the first byte's low nibble is the op code (its high nibble picks the inspect ops under code
/// 15), the second its operands.
pub fn decode(data: &[u8]) -> (Config, Vec<Op>) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let opt = |b: u8| (b % 5 != 0).then_some(b % 5);
    let config = Config {
        capacity: opt(byte(0)),
        ttl: opt(byte(0) / 5),
        tti: opt(byte(1)),
        // The high bits of the second byte, added later (the committed seeds leave them 0).
        refresh_after: (byte(1) & 0x80 != 0).then_some(byte(1) / 16 % 4),
        per_entry: byte(1) & 0x40 != 0,
    };
    let ops = data
        .get(2..)
        .unwrap_or_default()
        .chunks(2)
        .take(64)
        .map(|c| {
            let (a, b) = (c[0], c.get(1).copied().unwrap_or(0));
            let key = b % KEYS;
            let kind = match (b & 0x80 != 0, b & 0x40 != 0) {
                (false, false) => Kind::Plain,
                (true, false) => Kind::Fallible,
                (false, true) => Kind::Refresh,
                (true, true) => Kind::TryRefresh,
            };
            // Bit 6 also picks the refresh-era twin of an op.
            let twin = b & 0x40 != 0;
            let kind = match (a % 16, kind) {
                (2, Kind::Refresh) => Kind::RefreshIf,
                (_, kind) => kind,
            };
            match a % 16 {
                0..=2 => Op::Call {
                    key,
                    kind,
                    init: [
                        Init::Value,
                        Init::Error,
                        Init::PanicInClosure,
                        Init::PanicInFuture,
                        Init::Gated,
                        Init::Yield,
                    ][usize::from(b / 4 % 6)],
                },
                3 | 4 => Op::Poll { call: b },
                5 => Op::Drop { call: b },
                6 => Op::Open {
                    gate: b % 8,
                    outcome: [Outcome::Value, Outcome::Error, Outcome::Panic]
                        [usize::from(b / 8 % 3)],
                },
                7 if twin => Op::Replace {
                    key,
                    back: b / 4 % 4,
                },
                7 => Op::Insert { key },
                8 if twin => Op::InvalidateRefresh { key },
                8 => Op::Invalidate { key },
                9 => Op::InvalidateOld {
                    key,
                    back: b / 4 % 8,
                },
                10 => Op::Remove { key },
                11 => Op::InvalidateAll,
                12 => Op::Get { key },
                13 if twin => Op::Refreshing { key },
                13 => Op::Epoch { key },
                14 => Op::Advance { secs: b % 4 },
                // Code 15 with a high nibble 1 (mod 4) or 2-3 (mod 4): the inspect ops, added
                // later; a plain 15 (and the committed seeds' 0x0f) stays `PurgeExpired`.
                15 if a / 16 % 4 == 1 => Op::Iter,
                15 if a / 16 % 4 >= 2 => Op::InvalidateIf {
                    pred: Pred::ALL[usize::from(b % 6)],
                },
                _ => Op::PurgeExpired,
            }
        })
        .collect();
    (config, ops)
}
