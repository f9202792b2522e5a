use async_memo::memoize;

struct Users;

impl Users {
    // Not supported: the generated function cannot tell it is in an `impl` without a
    // receiver. Write a free function instead.
    #[memoize]
    async fn count(tenant: u32) -> u64 {
        u64::from(tenant)
    }
}

fn main() {}
