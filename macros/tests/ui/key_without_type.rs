use async_memo::memoize;

#[memoize(key = n)]
async fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
