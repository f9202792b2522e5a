//! The gap check: can a read prove that the reader saw every record after its cursor?
//!
//! A Redis stream cannot say "you missed something"; it only describes itself. This file turns
//! that description, read atomically with the records (one Lua script, see `read.lua`), into
//! a verdict. The rules, each pinned by a unit test below:
//!
//! 1. The server's `run_id` differs from the cursor's incarnation: the server restarted (a
//!    server without persistence lost the log; one with persistence may have lost its tail) or
//!    a replica was promoted (possibly without the tail). Gap, whatever the stream says —
//!    a failover costs one flush, never a stale value.
//! 2. The stream is missing but the cursor had counted records: deleted. Gap.
//! 3. The stream has counted fewer records than the cursor, or ends before the cursor's id, or
//!    has counted exactly as many but ends elsewhere: it is another stream. Gap.
//! 4. More records were removed from the head (`entries-added - length`) than the cursor had
//!    counted: a record after the cursor was trimmed before we read it. Gap.
//! 5. Fewer removed than counted, yet the cursor's own record is absent: the history does not
//!    contain the cursor (recreated). Gap.
//! 6. When the read reached the stream's end, it must have returned exactly
//!    `entries-added - cursor.added` records; fewer means some were deleted from the middle.
//!    Gap.
//!
//! What none of this can see: a stream deleted and recreated between two reads that, by
//! coincidence, has the cursor's count removed from its head and ids above the cursor. Only a
//! hand-made `DEL` can do it; the docs say so.

use crate::{Cursor, GapCause, LogId};

/// The stream as the read script saw it, atomically with the records it returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamState {
    /// `last-generated-id`.
    pub(crate) last: LogId,
    /// `entries-added`: every record ever appended.
    pub(crate) added: u64,
    /// `length`: records present now.
    pub(crate) length: u64,
    /// Whether the cursor's own record is still present.
    pub(crate) cursor_present: bool,
}

/// What one read returned, for the check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batch {
    pub(crate) len: usize,
    pub(crate) last: Option<LogId>,
    /// The read asked for at most this many records.
    pub(crate) max: usize,
}

/// Whether the read that saw `state` (None: no stream) and returned `batch` proves that no
/// record after `from` was lost.
pub(crate) fn check(
    from: &Cursor,
    incarnation: u64,
    state: Option<&StreamState>,
    batch: Batch,
) -> Result<(), GapCause> {
    if incarnation != from.incarnation() {
        return Err(GapCause::Restarted); // rule 1
    }
    let Some(state) = state else {
        return if from.added() == 0 {
            Ok(())
        } else {
            Err(GapCause::Deleted)
        }; // rule 2
    };
    if state.added < from.added()
        || state.last < from.id()
        || (state.added == from.added() && state.last != from.id())
    {
        return Err(GapCause::Recreated); // rule 3
    }
    // Rule 3 gives added >= from.added(); a stream never holds more than it was given.
    let removed = state.added.saturating_sub(state.length);
    if removed > from.added() {
        return Err(GapCause::Trimmed); // rule 4
    }
    if from.added() > 0 && removed < from.added() && !state.cursor_present {
        return Err(GapCause::Recreated); // rule 5
    }
    let complete = batch.len < batch.max || batch.last == Some(state.last) || batch.max == 0;
    if complete && batch.max > 0 && batch.len as u64 != state.added - from.added() {
        return Err(GapCause::Missing); // rule 6
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: u64 = 7;

    fn at(ms: u64, added: u64) -> Cursor {
        Cursor::new(LogId::new(ms, 0), added, RUN)
    }

    fn stream(last_ms: u64, added: u64, length: u64, cursor_present: bool) -> StreamState {
        StreamState {
            last: LogId::new(last_ms, 0),
            added,
            length,
            cursor_present,
        }
    }

    fn read(len: usize, last_ms: Option<u64>) -> Batch {
        Batch {
            len,
            last: last_ms.map(|ms| LogId::new(ms, 0)),
            max: 100,
        }
    }

    #[test]
    fn a_complete_read_of_an_untrimmed_stream_is_no_gap() {
        // Cursor at record 3 (id 30); the stream has 5 records, ids 10..50.
        let s = stream(50, 5, 5, true);
        assert_eq!(check(&at(30, 3), RUN, Some(&s), read(2, Some(50))), Ok(()));
        assert_eq!(check(&at(50, 5), RUN, Some(&s), read(0, None)), Ok(()));
    }

    #[test]
    fn rule_1_another_server_incarnation_is_a_gap() {
        let s = stream(50, 5, 5, true);
        assert_eq!(
            check(&at(50, 5), RUN + 1, Some(&s), read(0, None)),
            Err(GapCause::Restarted)
        );
    }

    #[test]
    fn rule_2_a_missing_stream_is_a_gap_only_if_records_were_seen() {
        assert_eq!(check(&at(0, 0), RUN, None, read(0, None)), Ok(()));
        assert_eq!(
            check(&at(30, 3), RUN, None, read(0, None)),
            Err(GapCause::Deleted)
        );
    }

    #[test]
    fn rule_3_a_stream_behind_the_cursor_is_another_stream() {
        let c = at(30, 3);
        let fewer = stream(20, 2, 2, false);
        assert_eq!(
            check(&c, RUN, Some(&fewer), read(0, None)),
            Err(GapCause::Recreated)
        );
        let same_count_elsewhere = stream(90, 3, 3, false);
        assert_eq!(
            check(&c, RUN, Some(&same_count_elsewhere), read(3, Some(90))),
            Err(GapCause::Recreated)
        );
        let ends_before = stream(20, 9, 9, false);
        assert_eq!(
            check(&c, RUN, Some(&ends_before), read(0, None)),
            Err(GapCause::Recreated)
        );
    }

    #[test]
    fn rule_4_trimmed_past_the_cursor_is_a_gap() {
        // Cursor at record 3; 10 added, 5 kept: records 4 and 5 were trimmed unseen.
        let s = stream(100, 10, 5, false);
        assert_eq!(
            check(&at(30, 3), RUN, Some(&s), read(5, Some(100))),
            Err(GapCause::Trimmed)
        );
    }

    #[test]
    fn rule_4_the_cursors_own_record_trimmed_is_no_gap() {
        // Cursor at record 5; 10 added, 5 kept: exactly records 1..=5 were trimmed.
        let s = stream(100, 10, 5, false);
        assert_eq!(check(&at(50, 5), RUN, Some(&s), read(5, Some(100))), Ok(()));
    }

    #[test]
    fn rule_5_a_history_without_the_cursor_is_another_stream() {
        // Server-side DEL and new records after it: 4 added, none trimmed, ids above ours.
        let s = stream(90, 4, 4, false);
        assert_eq!(
            check(&at(30, 3), RUN, Some(&s), read(4, Some(90))),
            Err(GapCause::Recreated)
        );
    }

    #[test]
    fn rule_6_a_record_deleted_from_the_middle_is_a_gap() {
        // Cursor at record 3 of 6; record 5 deleted with XDEL: 2 returned, 3 expected.
        let s = stream(60, 6, 5, true);
        assert_eq!(
            check(&at(30, 3), RUN, Some(&s), read(2, Some(60))),
            Err(GapCause::Missing)
        );
    }

    #[test]
    fn a_read_cut_by_its_maximum_is_not_counted() {
        let s = stream(60, 6, 6, true);
        let cut = Batch {
            len: 2,
            last: Some(LogId::new(50, 0)),
            max: 2,
        };
        assert_eq!(check(&at(30, 3), RUN, Some(&s), cut), Ok(()));
    }
}
