use async_memo::memoize;

#[memoize]
fn not_async(n: u32) -> u32 {
    n
}

fn main() {}
