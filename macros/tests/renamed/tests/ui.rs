//! The failure `crate = "..."` exists to fix, pinned: under a renamed dependency the default
//! `::async_memo` paths do not resolve. (`tests/renamed.rs` is the passing twin.) Regenerate
//! with `TRYBUILD=overwrite cargo test -p async-memo-renamed-test --test ui` and review the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
