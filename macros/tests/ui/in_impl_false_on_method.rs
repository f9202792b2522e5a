use async_memo::memoize;

#[derive(Clone)]
struct Users {
    tenant: u32,
}

impl Users {
    #[memoize(in_impl = false, key: u32 = self.tenant)]
    async fn count(&self) -> u64 {
        u64::from(self.tenant)
    }
}

fn main() {}
