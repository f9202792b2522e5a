use async_memo::memoize;

#[memoize]
async fn total(items: impl IntoIterator<Item = u32>) -> u32 {
    items.into_iter().sum()
}

#[memoize]
async fn make(n: u32) -> impl Clone {
    n
}

fn main() {}
