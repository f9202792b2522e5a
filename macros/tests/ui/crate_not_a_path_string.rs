use async_memo::memoize;

// tokio's and serde's spelling is a string: `crate = "async_memo"`.
#[memoize(crate = async_memo)]
async fn bare(n: u32) -> u32 {
    n
}

#[memoize(crate = "async memo")]
async fn spaced(n: u32) -> u32 {
    n
}

fn main() {}
