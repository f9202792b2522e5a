use async_memo::memoize;

#[derive(Clone)]
struct Users;

impl Users {
    #[memoize]
    async fn name(&self, id: u64) -> String {
        id.to_string()
    }
}

fn main() {}
