use async_memo::memoize;

#[memoize]
async fn push(list: &mut Vec<u32>) -> usize {
    list.push(1);
    list.len()
}

fn main() {}
