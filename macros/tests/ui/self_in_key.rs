use async_memo::memoize;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Id(u64);

impl Id {
    #[memoize(key: Self = self.clone())]
    async fn next(&self) -> u64 {
        self.0 + 1
    }
}

fn main() {}
