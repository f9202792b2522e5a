use async_memo::memoize;

// `in_impl = true` outside an `impl`: the generated functions reach each other through `Self`.
#[memoize(in_impl = true)]
async fn count(tenant: u32) -> u64 {
    u64::from(tenant)
}

fn main() {}
