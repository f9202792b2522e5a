use async_memo::memoize;

#[derive(Clone)]
struct Counter(u64);

impl Counter {
    #[memoize(key: u64 = n)]
    async fn bump(&mut self, n: u64) -> u64 {
        self.0 += n;
        self.0
    }
}

fn main() {}
