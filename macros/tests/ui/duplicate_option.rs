use async_memo::memoize;

#[memoize(shards = 4, shards = 8)]
async fn square(n: u64) -> u64 {
    n * n
}

#[memoize(crate = "async_memo", result = true, crate = "async_memo")]
async fn cube(n: u64) -> Result<u64, String> {
    Ok(n * n * n)
}

fn main() {}
