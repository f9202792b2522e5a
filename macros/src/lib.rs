//! The `#[memoize]` attribute of [async-memo](https://docs.rs/async-memo).
//!
//! Use it through the core crate, `use async_memo::memoize;` (feature `macros`, on by default):
//! the code it generates names `::async_memo` paths. See [`macro@memoize`] for what it
//! generates and the rules it checks.
//!
//! The implementation follows `thiserror-impl`: the input is parsed into a typed model
//! (`ast.rs`), checked with spanned errors (`valid.rs`), and only then generated
//! (`expand.rs`); nothing is emitted from a half-checked input.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod ast;
mod expand;
mod names;
mod valid;

use proc_macro::TokenStream;

/// Memoizes an `async fn`: concurrent calls with the same arguments share one run of the body
/// (single-flight), and later calls get a clone of its value, until it is invalidated, expires
/// or is evicted.
///
/// ```
/// use async_memo::memoize;
///
/// #[memoize]
/// async fn word_count(text: &str) -> usize {
///     text.split_whitespace().count()
/// }
///
/// # futures::executor::block_on(async {
/// assert_eq!(word_count("to be or not to be").await, 6);
/// assert_eq!(word_count_memo().len(), 1);
/// // Compare-and-delete: invalidate exactly the result we observed, by its epoch.
/// let epoch = word_count_memo().epoch("to be or not to be").unwrap();
/// assert!(word_count_memo().invalidate("to be or not to be", epoch));
/// # });
/// ```
///
/// # What it generates
///
/// For `#[memoize] pub async fn f(a: A, b: &X) -> T { body }`:
///
/// - `pub async fn f(a: A, b: &X) -> T`: the same signature. It looks the key up in the memo
///   and returns a clone of the value; on a miss the body runs as the memo's init future.
/// - `pub fn f_memo() -> &'static AsyncMemo<K, T>`, with the function's visibility: the memo
///   itself (a static, built on first use), to [`get`], read an [`epoch`], [`invalidate`] one
///   result by its epoch, or [`invalidate_all`]. For a method it is an associated function,
///   `Type::f_memo()`.
///
/// The key `K` is made of the arguments: none → `()`, one → its type, several → a tuple in
/// order. A `&X` argument is keyed by `<X as ToOwned>::Owned` (`&str` → `String`, `&[u8]` →
/// `Vec<u8>`) and the body still sees `&X`. With a single argument a hit clones nothing (the
/// lookup borrows it); with several, the key tuple is built on every call. Arguments may have
/// any name, `key` included: the expansion's own names are hygienic.
///
/// # Options
///
/// `#[memoize(max_capacity = 10_000, time_to_live = Duration::from_secs(60))]`:
///
/// | option | meaning |
/// |---|---|
/// | `max_capacity = <u64>` | [`MemoBuilder::max_capacity`]: bound the ready entries (S3-FIFO eviction) |
/// | `time_to_live = <Duration>` | [`MemoBuilder::time_to_live`]: expire entries this long after they were stored |
/// | `time_to_idle = <Duration>` | [`MemoBuilder::time_to_idle`]: expire entries this long after their last read |
/// | `shards = <usize>` | [`MemoBuilder::shards`]: the shard count (at least 1) |
/// | `clock = <impl Clock>` | [`MemoBuilder::clock`]: the clock expiry reads (a `ManualClock` in tests) |
/// | `key: Type = <expr>` | the key: an expression over the arguments (and `self`), of type `Type` |
///
/// The expressions are evaluated once, when the memo is built (the first call of `f` or
/// `f_memo`), in the function's scope. `key`'s expression is evaluated on every call, before
/// the lookup, with the arguments in scope by value: clone what the body still needs
/// (`key: String = name.clone()`).
///
/// # Errors: `Result` and `Option`
///
/// A function whose return type's last path segment is `Result` (`Result<T, E>`,
/// `io::Result<T>`, `anyhow::Result<T>`) memoizes only `Ok` values: an `Err` is not stored, and
/// the next call runs the body again. Concurrent callers of one run share its error; each
/// receives it as `E`, so `E` must be `Clone` (the last caller to receive it takes it without a
/// clone). `Option<T>` and every other type are stored as they are, `None` included.
///
/// ```
/// use async_memo::memoize;
///
/// #[memoize]
/// async fn parse_port(text: String) -> Result<u16, std::num::ParseIntError> {
///     text.parse()
/// }
///
/// # futures::executor::block_on(async {
/// assert!(parse_port("eighty".into()).await.is_err());
/// assert_eq!(parse_port_memo().len(), 0, "errors are not stored");
/// assert_eq!(parse_port("80".into()).await, Ok(80));
/// assert_eq!(parse_port_memo().len(), 1);
/// # });
/// ```
///
/// # Methods
///
/// On a method of an inherent `impl`, the memo is shared by every instance, so the key must say
/// what tells them apart: `key: Type = expr` is required, and `expr` may read `self`. The body
/// runs as a `'static` future, so it gets its own `self`: a clone of `Self` for `&self` (so
/// `Self: Clone + Send + Sync + 'static`, cheap when it is a handle around an `Arc`), or `self`
/// itself for `self` and `self: Arc<Self>`. `&mut self` is not supported.
///
/// ```
/// use async_memo::memoize;
///
/// #[derive(Clone)]
/// struct Users { tenant: u32 }
///
/// impl Users {
///     #[memoize(key: (u32, u64) = (self.tenant, id))]
///     async fn name(&self, id: u64) -> String {
///         format!("user {id} of tenant {}", self.tenant)
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let users = Users { tenant: 7 };
/// assert_eq!(users.name(1).await, "user 1 of tenant 7");
/// assert!(Users::name_memo().get(&(7, 1)).is_some());
/// # });
/// ```
///
/// # Recursion
///
/// A memoized function may call itself on other keys, as memoized recursion does. rustc cannot
/// infer that a recursive future is `Send` (the question contains itself), so state it: call
/// through a function that returns a boxed `dyn Future + Send`. Calling itself on the *same* key
/// is a flight awaiting itself: the memo panics with a clear message instead of hanging.
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use async_memo::memoize;
///
/// #[memoize]
/// async fn fib(n: u64) -> u64 {
///     if n < 2 { n } else { fib_boxed(n - 1).await + fib_boxed(n - 2).await }
/// }
///
/// fn fib_boxed(n: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
///     Box::pin(fib(n))
/// }
///
/// # futures::executor::block_on(async {
/// assert_eq!(fib(90).await, 2_880_067_194_370_816_120); // 91 body runs, not 10^18
/// # });
/// ```
///
/// # Semantics
///
/// Every guarantee of [`AsyncMemo`] holds through the attribute, because the function *is* a
/// [`get_or_init_by_ref`] call (or [`get_or_try_init_by_ref`] for a `Result`):
///
/// - **Single-flight.** Concurrent calls with equal keys run the body once; no lock is held
///   across the body, and different keys never wait for each other.
/// - **Cancellation.** Dropping a call never cancels the body for the others; when the last
///   caller of a run is dropped, the body's future is dropped and the key is free.
/// - **Panics.** A panic in the body reaches the caller that was polling it; the others start
///   over; nothing is stored or poisoned.
/// - **Invalidation.** `f_memo().invalidate(&key, epoch)` removes exactly the result observed;
///   a run in progress that it detaches never stores its value.
///
/// The body runs as the memo's init future, which any caller may drive, on any thread: after
/// the arguments are moved in, it must be `Send + 'static`. The expansion gives it owned
/// arguments, so this holds unless the body itself holds something that is not `Send` (an
/// `Rc`, a `MutexGuard`) across an `.await`; the error then names
/// `memoized_body_must_be_send_and_static`. The key must be `Hash + Eq + Clone + Send + Sync +
/// 'static` and the value `Clone + Send + Sync + 'static`.
///
/// # Not supported (each a compile error on the offending token)
///
/// - a function that is not `async`, `unsafe`, or has an `extern` ABI;
/// - generic parameters (one static memo has one key and value type) and `impl Trait`
///   arguments or return types;
/// - a method receiver without `key`, and `&mut self`;
/// - patterns in argument position (`(a, b): (u32, u32)`): take a name and destructure in the
///   body;
/// - `&mut` arguments, and argument, key or value types that borrow (`Cow<'_, str>`, `&[&str]`;
///   a top-level `&X` argument is fine, `&'static X` too);
/// - `Self` in the key or value type (the memo is a static, which cannot name it);
/// - unknown or repeated options.
///
/// An associated function without a receiver, and methods of trait impls or generic impls, are
/// not supported either: the first one reports that `f_memo` is not found (write a free
/// function), the others that the accessor or the static cannot be placed there.
///
/// [`AsyncMemo`]: https://docs.rs/async-memo/latest/async_memo/struct.AsyncMemo.html
/// [`get`]: https://docs.rs/async-memo/latest/async_memo/struct.AsyncMemo.html#method.get
/// [`epoch`]: https://docs.rs/async-memo/latest/async_memo/struct.AsyncMemo.html#method.epoch
/// [`invalidate`]: https://docs.rs/async-memo/latest/async_memo/struct.AsyncMemo.html#method.invalidate
/// [`invalidate_all`]: https://docs.rs/async-memo/latest/async_memo/struct.AsyncMemo.html#method.invalidate_all
/// [`get_or_init_by_ref`]: https://docs.rs/async-memo/latest/async_memo/struct.AsyncMemo.html#method.get_or_init_by_ref
/// [`get_or_try_init_by_ref`]: https://docs.rs/async-memo/latest/async_memo/struct.AsyncMemo.html#method.get_or_try_init_by_ref
/// [`MemoBuilder::max_capacity`]: https://docs.rs/async-memo/latest/async_memo/struct.MemoBuilder.html#method.max_capacity
/// [`MemoBuilder::time_to_live`]: https://docs.rs/async-memo/latest/async_memo/struct.MemoBuilder.html#method.time_to_live
/// [`MemoBuilder::time_to_idle`]: https://docs.rs/async-memo/latest/async_memo/struct.MemoBuilder.html#method.time_to_idle
/// [`MemoBuilder::shards`]: https://docs.rs/async-memo/latest/async_memo/struct.MemoBuilder.html#method.shards
/// [`MemoBuilder::clock`]: https://docs.rs/async-memo/latest/async_memo/struct.MemoBuilder.html#method.clock
#[proc_macro_attribute]
pub fn memoize(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::memoize(args.into(), item.into()).into()
}
