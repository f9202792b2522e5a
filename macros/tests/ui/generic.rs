use async_memo::memoize;

#[memoize]
async fn generic<T: Clone>(value: T) -> T {
    value
}

#[memoize]
async fn with_lifetime<'a>(text: &'a str) -> usize {
    text.len()
}

fn main() {}
