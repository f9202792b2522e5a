//! The `#[memoize]` attribute of [async-memo](https://docs.rs/async-memo).
//!
//! Use it through the core crate, `use async_memo::memoize;` (feature `macros`, on by default):
//! the code it generates names `::async_memo` paths (another path with `crate = "..."`, for a
//! renamed dependency). See [`macro@memoize`] for what it generates and the rules it checks.
//!
//! The implementation follows `thiserror-impl`: the input is parsed into a typed model
//! (`ast.rs`), checked with spanned errors (`valid.rs`), and only then generated
//! (`expand.rs`, with the generated names and their hygiene in `names.rs`); nothing is emitted
//! from a half-checked input.

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
/// // `word_count_entry` is the same call, returning the value with its epoch...
/// let seen = word_count_entry("to be or not to be").await;
/// assert_eq!(*seen.value(), 6);
/// // ...so that compare-and-delete removes exactly the result this call saw.
/// assert!(word_count_memo().invalidate("to be or not to be", seen.epoch()));
/// # });
/// ```
///
/// # What it generates
///
/// For `#[memoize] pub async fn f(a: A, b: &X) -> T { body }`, with the function's visibility:
///
/// - `pub async fn f(a: A, b: &X) -> T`: the same signature and attributes. It looks the key up
///   in the memo and returns a clone of the value; on a miss the body runs as the memo's init
///   future.
/// - `pub async fn f_entry(a: A, b: &X) -> Entry<T>`: the same call, returning the [`Entry`]
///   it got: the value *and* the epoch it was committed under. Use it when you may invalidate
///   the result: `f_memo().invalidate(&key, entry.epoch())` removes exactly what this call saw.
///   Reading `f_memo().epoch(&key)` after a call of `f` instead is racy: the entry may have been
///   replaced in between, and that reads (and invalidates) the newer one.
/// - `pub fn f_memo() -> &'static AsyncMemo<K, T>`: the memo itself (a static, built on first
///   use), to [`get`], read an [`epoch`], [`invalidate`] one result by its epoch, or
///   [`invalidate_all`].
///
/// In an `impl` they are associated functions: `Type::f_memo()`, `value.f_entry(..)`. A free
/// function also gets a hidden unit constant, which turns a missing `in_impl = true` into a
/// readable error (see [Associated functions](#methods-and-associated-functions)).
///
/// The key `K` is made of the arguments: none → `()`, one → its type, several → a tuple in
/// order. A `&X` argument is keyed by `<X as ToOwned>::Owned` (`&str` → `String`, `&[u8]` →
/// `Vec<u8>`) and the body still sees `&X`. With a single argument a hit clones nothing (the
/// lookup borrows it); with several, the key tuple is built on every call.
///
/// Arguments may have any name, `key`, `__memoize_f`, `f_memo` and `f_entry` included: the
/// expansion's own locals are hygienic, and its calls of the generated functions never resolve
/// to an argument (cached #114, #230).
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
/// | `result = <bool>` | `true`: the return type is a `Result` whatever it is called, store only `Ok`; `false`: store the value as it is, `Err` included ([below](#errors-result-and-option)) |
/// | `in_impl = <bool>` | `true` on an associated function without a receiver ([below](#methods-and-associated-functions)) |
/// | `crate = "<path>"` | the path of async-memo in your crate, for a renamed dependency or a re-export ([below](#a-renamed-dependency)) |
///
/// The builder options' expressions are evaluated once, when the memo is built (the first call
/// of `f`, `f_entry` or `f_memo`), in the function's scope. `key`'s expression is evaluated on
/// every call, before the lookup, with the arguments in scope by value: clone what the body
/// still needs (`key: String = name.clone()`). `result` and `in_impl` take the literal `true`
/// or `false`, `crate` a string. An unknown or repeated option is an error on its name.
///
/// # Errors: `Result` and `Option`
///
/// A fallible function memoizes only `Ok` values: an `Err` is not stored, and the next call
/// runs the body again. Concurrent callers of one run share its error; each receives it as `E`,
/// so `E` must be `Clone` (the last caller to receive it takes it without a clone). `f_entry`
/// returns `Result<Entry<T>, E>`.
///
/// The attribute sees tokens, not types, so it recognises a `Result` by its spelling alone: the
/// return type is taken for one exactly when it is a path (not `<T as Trait>::Assoc`) whose
/// *last segment is the identifier `Result`*, whatever comes before it and whatever its
/// generic arguments: `Result<T, E>`, `std::result::Result<T, E>`, `io::Result<T>`,
/// `anyhow::Result<T>`, `crate::Result<T>`. Nothing else is: an alias with another name
/// (`type Fallible<T> = Result<T, String>`), a `Result` behind a reference, in a `Box` or in
/// parentheses. Such a type is stored as it is, `Err` included, unless you say otherwise:
///
/// - `result = true` gives any return type the `Result` behaviour; it must be a
///   `std::result::Result` under whatever name (an alias), or the compile error says so;
/// - `result = false` stores even a type spelled `Result` as it is, `Err` included (to memoize
///   a negative answer, or for a type of your own named `Result`, which the attribute would
///   otherwise take for the standard one).
///
/// `Option<T>` is always stored as it is, `None` included.
///
/// ```
/// use async_memo::memoize;
///
/// type Fallible<T> = Result<T, String>;
///
/// #[memoize(result = true)] // without it, `Fallible<u16>` would be stored `Err` and all
/// async fn parse_port(text: String) -> Fallible<u16> {
///     text.parse().map_err(|_| format!("not a port: {text}"))
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
/// # Methods and associated functions
///
/// On a method of an inherent `impl`, the memo is shared by every instance, so the key must say
/// what tells them apart: `key: Type = expr` is required, and `expr` may read `self`. The body
/// runs as a `'static` future, so it gets its own `self`: a clone of `Self` for `&self` (so
/// `Self: Clone + Send + Sync + 'static`, cheap when it is a handle around an `Arc`), or `self`
/// itself for `self` and `self: Arc<Self>`. `&mut self` is not supported.
///
/// An associated function *without* a receiver needs `in_impl = true`: nothing in its tokens
/// tells the attribute that it is inside an `impl`, where the generated functions must reach
/// each other through `Self::`. (Cached's `#[cached(in_impl = true)]` has the same reason.)
/// Forgetting it is reported as ``cannot find value `f__is_in_an_impl__write_memoize_in_impl_true` ``
/// on the attribute; `in_impl = true` on a free function, as ``cannot find `Self` ``.
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
///
///     #[memoize(in_impl = true)]
///     async fn region(tenant: u32) -> String {
///         Self::region_of(tenant) // the body may name `Self`
///     }
///
///     fn region_of(tenant: u32) -> String {
///         if tenant < 100 { "eu".into() } else { "us".into() }
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let users = Users { tenant: 7 };
/// assert_eq!(users.name(1).await, "user 1 of tenant 7");
/// assert!(Users::name_memo().get(&(7, 1)).is_some());
/// let region = Users::region_entry(7).await;
/// assert!(Users::region_memo().invalidate(&7, region.epoch()));
/// # });
/// ```
///
/// # A renamed dependency
///
/// The generated code names the core crate `::async_memo`. If your crate depends on it under
/// another name (`memo = { package = "async-memo", version = "..." }`), or reaches it through a
/// re-export of another crate, give that path as a string, as with tokio's and serde's
/// attributes:
///
/// ```
/// use async_memo as memo; // stands for a renamed dependency, or `pub use` in a framework
///
/// #[memo::memoize(crate = "memo")]
/// async fn double(n: u32) -> u32 {
///     n * 2
/// }
///
/// # futures::executor::block_on(async {
/// assert_eq!(double(21).await, 42);
/// # });
/// ```
///
/// Without it, under a renamed dependency, every generated path fails with ``cannot find
/// `async_memo` in the crate root``.
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
/// Every guarantee of [`AsyncMemo`] holds through the attribute, because `f_entry` *is* a
/// [`get_or_init_by_ref`] call (or [`get_or_try_init_by_ref`] for a `Result`), and `f` returns
/// its value:
///
/// - **Single-flight.** Concurrent calls with equal keys run the body once; no lock is held
///   across the body, and different keys never wait for each other.
/// - **Cancellation.** Dropping a call never cancels the body for the others; when the last
///   caller of a run is dropped, the body's future is dropped and the key is free.
/// - **Panics.** A panic in the body reaches the caller that was polling it; the others start
///   over; nothing is stored or poisoned.
/// - **Invalidation.** `f_memo().invalidate(&key, entry.epoch())`, with the entry `f_entry`
///   returned, removes exactly the result that call observed, and nothing newer; a run in
///   progress that it detaches never stores its value.
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
/// - a method receiver without `key`, `&mut self`, and `in_impl = false` on a method;
/// - patterns in argument position (`(a, b): (u32, u32)`): take a name and destructure in the
///   body;
/// - `&mut` arguments, and argument, key or value types that borrow (`Cow<'_, str>`, `&[&str]`;
///   a top-level `&X` argument is fine, `&'static X` too);
/// - `Self` in the key or value type (the memo is a static, which cannot name it);
/// - `result = true` without a return type, a `result` or `in_impl` that is not `true` or
///   `false`, a `crate` that is not a string holding a path;
/// - unknown or repeated options.
///
/// Methods of trait impls and of generic impls are not supported either: the errors say that
/// the accessor or the static cannot be placed there.
///
/// [`AsyncMemo`]: https://docs.rs/async-memo/latest/async_memo/struct.AsyncMemo.html
/// [`Entry`]: https://docs.rs/async-memo/latest/async_memo/struct.Entry.html
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
