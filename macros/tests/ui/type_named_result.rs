use async_memo::memoize;

/// A type of the user's own whose name is `Result`: the attribute, which sees only tokens, takes
/// it for `std::result::Result`; the error says how to store it as it is.
#[derive(Clone)]
struct Result<T>(T);

#[memoize]
async fn score(n: u32) -> Result<u64> {
    Result(u64::from(n))
}

fn main() {}
