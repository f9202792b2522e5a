use std::rc::Rc;

use async_memo::memoize;

async fn yield_now() {}

#[memoize]
async fn render(id: u32) -> String {
    let shared = Rc::new(id);
    yield_now().await;
    shared.to_string()
}

fn main() {}
