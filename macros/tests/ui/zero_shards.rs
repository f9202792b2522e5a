use async_memo::memoize;

#[memoize(shards = 0)]
async fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
