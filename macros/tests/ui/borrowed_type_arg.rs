use std::borrow::Cow;

use async_memo::memoize;

#[memoize]
async fn shout(text: Cow<'_, str>) -> String {
    text.to_uppercase()
}

#[memoize]
async fn first(words: &[&str]) -> String {
    words.concat()
}

fn main() {}
