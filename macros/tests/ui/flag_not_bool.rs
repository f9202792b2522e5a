use async_memo::memoize;

#[memoize(result = 1, in_impl = "yes")]
async fn parse(text: String) -> Result<u32, String> {
    text.parse().map_err(|_| text)
}

fn main() {}
