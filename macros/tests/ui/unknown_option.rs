use async_memo::memoize;

#[memoize(capacity = 100)]
async fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
