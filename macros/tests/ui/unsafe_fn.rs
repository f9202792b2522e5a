use async_memo::memoize;

#[memoize]
async unsafe fn raw(n: u32) -> u32 {
    n
}

fn main() {}
