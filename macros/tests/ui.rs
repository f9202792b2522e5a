//! Compile errors of `#[memoize]`: each case's exact message is kept in its `.stderr` file, so a
//! worse message is a failing test. Regenerate after a deliberate change with
//! `TRYBUILD=overwrite cargo test -p async-memo-macros --test ui` and review the diff. The
//! messages are those of the toolchain CI pins (the machine's stable, see `.ci/run`).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
