//! The `tracing` feature: one event per flight outcome and per removal, by epoch.
#![cfg(feature = "tracing")]

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::{Arc, Mutex};

use async_memo::AsyncMemo;
use futures::executor::block_on;
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};

/// Records every event as one line: its message, then its other fields.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "async_memo"
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

fn recorded(body: impl FnOnce()) -> Vec<String> {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), body);
    recorder.0.lock().unwrap().clone()
}

#[test]
fn every_flight_outcome_and_removal_is_an_event() {
    let memo: AsyncMemo<u32, u32> = AsyncMemo::new();
    let mut epochs = Vec::new();
    let lines = recorded(|| {
        let entry = block_on(memo.get_or_init(1, || async { 1 }));
        epochs.push(entry.epoch().get());
        assert!(memo.invalidate(&1, entry.epoch()));
        let failed = block_on(memo.get_or_try_init(2, || async { Err::<u32, _>("no") }));
        assert!(failed.is_err());
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            block_on(memo.get_or_init(3, || async { panic!("boom") }))
        }));
        assert!(panicked.is_err());
        {
            let mut abandoned = pin!(memo.get_or_init(4, futures::future::pending));
            let _ = futures::FutureExt::poll_unpin(
                &mut abandoned,
                &mut std::task::Context::from_waker(std::task::Waker::noop()),
            );
        }
    });
    let e = epochs[0];
    let expected_prefixes = [
        format!("flight started epoch={e}"),
        format!("flight committed epoch={e}"),
        format!("entry removed epoch={e} cause=Invalidated"),
    ];
    for prefix in &expected_prefixes {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix.as_str())),
            "{prefix} in {lines:#?}"
        );
    }
    for outcome in ["flight failed", "flight panicked", "flight abandoned"] {
        assert!(
            lines.iter().any(|l| l.starts_with(outcome)),
            "{outcome} in {lines:#?}"
        );
    }
}
