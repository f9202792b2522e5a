// async-memo is a dependency here only under the name `memo`: without `crate = "memo"`, the
// expansion's `::async_memo` paths name nothing.
use memo::memoize;

#[memoize]
async fn double(n: u32) -> u32 {
    n * 2
}

fn main() {}
