//! `#[memoize(crate = "...")]` against a real renamed dependency: this package depends on
//! async-memo as `memo` (`memo = { package = "async-memo", ... }`), so no `async_memo` crate
//! exists here.
//!
//! Without the option, the expansion's `::async_memo` paths do not resolve (pinned by the
//! trybuild case `tests/ui/without_crate_option.rs`). With it, a function compiles and runs:
//!
//! ```
//! #[memo::memoize(crate = "memo")]
//! async fn double(n: u32) -> u32 {
//!     n * 2
//! }
//! # fn main() {
//! assert_eq!(futures::executor::block_on(double(21)), 42);
//! assert_eq!(double_memo().len(), 1);
//! # }
//! ```
//!
//! The public items below are documented by `cargo doc --workspace`, which checks the links in
//! the docs the attribute generates under a crate path of the user's. The behaviour is tested in
//! `tests/renamed.rs`.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

use memo::memoize;

/// Greets a user, once per name.
///
/// ```
/// # futures::executor::block_on(async {
/// let greeting = async_memo_renamed_test::greet("ann").await?;
/// assert_eq!(greeting, "hello, ann");
/// # Ok::<(), String>(())
/// # }).unwrap();
/// ```
#[memoize(crate = "memo", max_capacity = 100)]
pub async fn greet(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("no name".into());
    }
    Ok(format!("hello, {name}"))
}

/// A directory of users, memoized per tenant and id.
///
/// ```
/// use async_memo_renamed_test::Directory;
///
/// # futures::executor::block_on(async {
/// let directory = Directory { tenant: 1 };
/// assert_eq!(directory.name(7).await, "1/7");
/// assert_eq!(Directory::tenants(3).await, 3);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Directory {
    /// The tenant the directory serves.
    pub tenant: u32,
}

impl Directory {
    /// A user's name.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let directory = async_memo_renamed_test::Directory { tenant: 2 };
    /// assert_eq!(directory.name(1).await, "2/1");
    /// # });
    /// ```
    #[memoize(crate = "memo", key: (u32, u64) = (self.tenant, id))]
    pub async fn name(&self, id: u64) -> String {
        format!("{}/{id}", self.tenant)
    }

    /// The number of tenants in a region.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// assert_eq!(async_memo_renamed_test::Directory::tenants(5).await, 5);
    /// # });
    /// ```
    #[memoize(crate = "::memo", in_impl = true)]
    pub async fn tenants(region: u32) -> u32 {
        region
    }
}
