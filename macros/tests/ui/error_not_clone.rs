use async_memo::memoize;

#[derive(Debug)]
struct NotClone;

#[memoize]
async fn fetch(id: u32) -> Result<String, NotClone> {
    if id == 0 { Err(NotClone) } else { Ok(id.to_string()) }
}

fn main() {}
