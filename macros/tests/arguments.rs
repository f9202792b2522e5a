//! Each argument shape and how it becomes the key: none, one owned, one borrowed (`&str`,
//! `&[u8]`, `&T`), several, `&'static str`, `mut` bindings, an argument named `key`, and the
//! return types `Option` (stored as is) and `Result` spelled through an alias.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_memo::memoize;
use futures::executor::block_on;

static NO_ARGS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn no_args() -> String {
    NO_ARGS_RUNS.fetch_add(1, Ordering::SeqCst);
    "config".to_string()
}

#[test]
fn no_arguments_are_keyed_by_unit() {
    assert_eq!(block_on(no_args()), "config");
    assert_eq!(block_on(no_args()), "config");
    assert_eq!(NO_ARGS_RUNS.load(Ordering::SeqCst), 1);
    let memo: &'static async_memo::AsyncMemo<(), String> = no_args_memo();
    assert_eq!(
        memo.get(&()).map(|e| e.into_value()),
        Some("config".to_string())
    );
}

static SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn square(n: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, Ordering::SeqCst);
    n * n
}

#[test]
fn one_owned_argument_is_the_key() {
    assert_eq!(block_on(square(3)), 9);
    assert_eq!(block_on(square(3)), 9);
    assert_eq!(block_on(square(4)), 16);
    assert_eq!(SQUARE_RUNS.load(Ordering::SeqCst), 2);
    let memo: &'static async_memo::AsyncMemo<u64, u64> = square_memo();
    assert_eq!(memo.get(&3).map(|e| *e.value()), Some(9));
}

static SHOUT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn shout(text: &str) -> String {
    SHOUT_RUNS.fetch_add(1, Ordering::SeqCst);
    text.to_uppercase()
}

#[test]
fn a_str_argument_is_keyed_by_string_and_the_body_sees_str() {
    assert_eq!(block_on(shout("hi")), "HI");
    let owned = String::from("hi");
    assert_eq!(block_on(shout(&owned)), "HI");
    assert_eq!(SHOUT_RUNS.load(Ordering::SeqCst), 1);
    let memo: &'static async_memo::AsyncMemo<String, String> = shout_memo();
    assert!(
        memo.get("hi").is_some(),
        "looked up by &str, stored as String"
    );
}

#[memoize]
async fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().map(|&b| u32::from(b)).sum()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Point {
    x: i32,
    y: i32,
}

#[memoize]
async fn norm(p: &Point) -> i32 {
    p.x.abs() + p.y.abs()
}

#[test]
fn slices_and_references_to_clone_types_are_keyed_by_their_owned_form() {
    assert_eq!(block_on(checksum(&[1, 2, 3])), 6);
    let _: &'static async_memo::AsyncMemo<Vec<u8>, u32> = checksum_memo();
    assert!(checksum_memo().get(&[1u8, 2, 3][..]).is_some());

    assert_eq!(block_on(norm(&Point { x: -2, y: 3 })), 5);
    let _: &'static async_memo::AsyncMemo<Point, i32> = norm_memo();
    assert!(norm_memo().get(&Point { x: -2, y: 3 }).is_some());
}

static LABEL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn label(id: u32, name: &str, tags: &[&'static str], mut suffix: char) -> String {
    LABEL_RUNS.fetch_add(1, Ordering::SeqCst);
    suffix = suffix.to_ascii_uppercase();
    format!("{id}:{name}:{}{suffix}", tags.join(","))
}

#[test]
fn several_arguments_are_keyed_by_a_tuple_in_order() {
    assert_eq!(block_on(label(1, "a", &["x", "y"], 'z')), "1:a:x,yZ");
    assert_eq!(block_on(label(1, "a", &["x", "y"], 'z')), "1:a:x,yZ");
    assert_eq!(block_on(label(1, "b", &["x", "y"], 'z')), "1:b:x,yZ");
    assert_eq!(LABEL_RUNS.load(Ordering::SeqCst), 2);
    let memo: &'static async_memo::AsyncMemo<(u32, String, Vec<&'static str>, char), String> =
        label_memo();
    assert!(
        memo.get(&(1, "a".to_string(), vec!["x", "y"], 'z'))
            .is_some()
    );
}

#[memoize]
async fn greeting(lang: &'static str) -> &'static str {
    if lang == "fr" { "bonjour" } else { "hello" }
}

#[test]
fn a_static_reference_is_a_key_as_it_is() {
    assert_eq!(block_on(greeting("fr")), "bonjour");
    let memo: &'static async_memo::AsyncMemo<&'static str, &'static str> = greeting_memo();
    assert_eq!(memo.len(), 1);
}

/// The arguments are called like the expansion's own variables would be: hygiene keeps them
/// apart (cached #114, #230).
#[memoize]
async fn named_like_the_macro(key: u32, memo: u32, __memoize_key: u32, init: &str) -> String {
    format!("{key}{memo}{__memoize_key}{init}")
}

#[test]
fn arguments_may_be_named_key_or_like_any_generated_name() {
    assert_eq!(block_on(named_like_the_macro(1, 2, 3, "x")), "123x");
    assert!(
        named_like_the_macro_memo()
            .get(&(1, 2, 3, "x".to_string()))
            .is_some()
    );
}

/// Arguments named exactly like the generated functions the expansion calls: the body function
/// `__memoize_<fn>`, the accessor `<fn>_memo` and the companion `<fn>_entry`. Each call inside
/// the expansion still reaches the function, not the argument (once an E0308 for the body).
#[memoize]
async fn shadow(__memoize_shadow: u32, shadow_memo: u32, shadow_entry: &str) -> String {
    format!("{__memoize_shadow}{shadow_memo}{shadow_entry}")
}

#[memoize]
async fn shadow_one(__memoize_shadow_one: u32) -> u32 {
    __memoize_shadow_one + 1
}

#[test]
fn arguments_may_be_named_like_the_generated_functions() {
    assert_eq!(block_on(shadow(1, 2, "3")), "123");
    assert_eq!(block_on(shadow_entry(1, 2, "3")).into_value(), "123");
    assert!(shadow_memo().get(&(1, 2, "3".to_string())).is_some());
    assert_eq!(block_on(shadow_one(41)), 42);
    assert_eq!(shadow_one_memo().len(), 1);
}

static LOOKUP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn lookup(id: u32) -> Option<String> {
    LOOKUP_RUNS.fetch_add(1, Ordering::SeqCst);
    (id == 1).then(|| "one".to_string())
}

#[test]
fn option_is_stored_as_is_none_included() {
    assert_eq!(block_on(lookup(2)), None);
    assert_eq!(block_on(lookup(2)), None);
    assert_eq!(block_on(lookup(1)), Some("one".to_string()));
    assert_eq!(LOOKUP_RUNS.load(Ordering::SeqCst), 2, "None was memoized");
}

mod app {
    /// An alias whose last segment is `Result`, like `io::Result` or `anyhow::Result`.
    pub type Result<T> = std::result::Result<T, String>;
}

static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
async fn parse(text: &str) -> app::Result<i64> {
    PARSE_RUNS.fetch_add(1, Ordering::SeqCst);
    let n: i64 = text.parse().map_err(|e| format!("{text}: {e}"))?;
    if n < 0 {
        return Err("negative".into());
    }
    Ok(n)
}

#[test]
fn a_result_alias_memoizes_only_ok_and_the_body_keeps_question_mark_and_return() {
    assert_eq!(
        block_on(parse("x")),
        Err("x: invalid digit found in string".into())
    );
    assert_eq!(block_on(parse("-1")), Err("negative".into()));
    assert_eq!(block_on(parse("7")), Ok(7));
    assert_eq!(block_on(parse("7")), Ok(7));
    assert_eq!(block_on(parse("x")).map_err(|_| ()), Err(()));
    assert_eq!(
        PARSE_RUNS.load(Ordering::SeqCst),
        4,
        "errors rerun, the Ok is memoized"
    );
    let memo: &'static async_memo::AsyncMemo<String, i64> = parse_memo();
    assert_eq!(memo.len(), 1);
}

/// A clone per caller only when the error is shared: the lone caller takes it.
#[derive(Debug, PartialEq)]
struct CountedClone(usize);

impl Clone for CountedClone {
    fn clone(&self) -> Self {
        CountedClone(self.0 + 1)
    }
}

#[memoize]
async fn fails(n: u8) -> Result<u8, CountedClone> {
    Err(CountedClone(usize::from(n)))
}

#[test]
fn a_lone_caller_gets_the_error_without_a_clone() {
    assert_eq!(block_on(fails(0)), Err(CountedClone(0)));
}
