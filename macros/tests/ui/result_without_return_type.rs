use async_memo::memoize;

#[memoize(result = true)]
async fn warm_up(n: u32) {
    let _ = n;
}

fn main() {}
