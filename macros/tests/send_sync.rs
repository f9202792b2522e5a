//! Auto traits of what the attribute generates: the memoized function's future and its
//! `f_entry` companion's are `Send` (they can be spawned) when the arguments are `Sync`/`Send`,
//! and the accessor's memo is `Send + Sync`.

use async_memo::{AsyncMemo, memoize};

fn assert_send<T: Send>(_: &T) {}
fn assert_send_sync<T: Send + Sync>(_: &T) {}

#[memoize]
async fn by_value(a: u64, b: String) -> Vec<u8> {
    format!("{a}{b}").into_bytes()
}

#[memoize]
async fn by_ref(text: &str) -> Result<usize, String> {
    Ok(text.len())
}

#[derive(Clone)]
struct Service {
    id: u32,
}

impl Service {
    #[memoize(key: (u32, u8) = (self.id, n))]
    async fn call(&self, n: u8) -> u32 {
        self.id + u32::from(n)
    }

    #[memoize(in_impl = true)]
    async fn count(n: u8) -> u8 {
        n
    }
}

#[test]
fn generated_futures_are_send_and_memos_send_sync() {
    assert_send(&by_value(1, "x".into()));
    let text = String::from("abc");
    assert_send(&by_ref(&text));
    let service = Service { id: 1 };
    assert_send(&service.call(2));
    assert_send(&by_value_entry(1, "x".into()));
    assert_send(&by_ref_entry(&text));
    assert_send(&service.call_entry(2));
    assert_send(&Service::count_entry(3));

    let memo: &'static AsyncMemo<(u64, String), Vec<u8>> = by_value_memo();
    assert_send_sync(&memo);
    assert_send_sync(&by_ref_memo());
    assert_send_sync(&Service::call_memo());
    assert_send_sync(&Service::count_memo());
}
