use async_memo::memoize;

// A path that names no crate: the error is rustc's, on the string.
#[memoize(crate = "memo")]
async fn double(n: u32) -> u32 {
    n * 2
}

fn main() {}
