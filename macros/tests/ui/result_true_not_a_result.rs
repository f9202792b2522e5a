use async_memo::memoize;

// `result = true` on a type that is no `Result`, under any name.
#[memoize(result = true)]
async fn count(n: u32) -> u64 {
    u64::from(n)
}

fn main() {}
