use async_memo::memoize;

#[memoize]
async fn add((a, b): (u32, u32)) -> u32 {
    a + b
}

#[memoize]
async fn by_ref(ref text: String) -> usize {
    text.len()
}

fn main() {}
