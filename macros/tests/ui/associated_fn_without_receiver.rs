use async_memo::memoize;

struct Users;

impl Users {
    // An associated function without a receiver: the attribute cannot see that it is in an
    // `impl`, so it must be told with `#[memoize(in_impl = true)]`. Without it, the first error
    // says so.
    #[memoize]
    async fn count(tenant: u32) -> u64 {
        u64::from(tenant)
    }
}

fn main() {}
