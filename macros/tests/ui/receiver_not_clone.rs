use async_memo::memoize;

struct Users {
    tenant: u32,
}

impl Users {
    #[memoize(key: (u32, u64) = (self.tenant, id))]
    async fn name(&self, id: u64) -> String {
        format!("{}/{id}", self.tenant)
    }
}

fn main() {}
