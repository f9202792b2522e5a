//! Methods of an inherent impl: `&self`, `self: Arc<Self>` and `self`, each with `key`, one
//! memo shared by every instance, reached as `Type::f_memo()`; and associated functions without
//! a receiver, with `in_impl = true`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_memo::memoize;
use futures::executor::block_on;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug)]
struct Directory {
    tenant: u32,
}

impl Directory {
    fn new(tenant: u32) -> Self {
        Directory { tenant }
    }

    /// The instance's tenant is part of the key; `self` is cloned into the body's future.
    #[memoize(key: (u32, u64) = (self.tenant, id))]
    pub async fn name(&self, id: u64) -> String {
        RUNS.fetch_add(1, Ordering::SeqCst);
        format!("{}/{id}", self.tenant)
    }

    #[memoize(key: u64 = id)]
    async fn shared_by_tenants(self: Arc<Self>, id: u64) -> u32 {
        self.tenant + id as u32
    }

    #[memoize(key: u64 = id)]
    async fn consume(mut self, id: u64) -> u32 {
        self.tenant += 1;
        self.tenant + id as u32
    }
}

#[test]
fn a_ref_self_method_is_keyed_by_its_key_expression() {
    let a = Directory::new(1);
    let b = Directory::new(2);
    assert_eq!(block_on(a.name(7)), "1/7");
    assert_eq!(
        block_on(a.clone().name(7)),
        "1/7",
        "another instance of tenant 1 hits"
    );
    assert_eq!(block_on(b.name(7)), "2/7");
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    let memo: &'static async_memo::AsyncMemo<(u32, u64), String> = Directory::name_memo();
    assert_eq!(
        memo.get(&(2, 7)).map(|e| e.into_value()),
        Some("2/7".to_string())
    );
}

#[test]
fn without_the_instance_in_the_key_every_instance_shares_the_result() {
    assert_eq!(
        block_on(Arc::new(Directory::new(1)).shared_by_tenants(1)),
        2
    );
    assert_eq!(
        block_on(Arc::new(Directory::new(2)).shared_by_tenants(1)),
        2
    );
    assert_eq!(Directory::shared_by_tenants_memo().len(), 1);
}

#[test]
fn a_by_value_receiver_is_moved_into_the_body() {
    assert_eq!(block_on(Directory::new(1).consume(10)), 12);
    assert_eq!(
        block_on(Directory::new(5).consume(10)),
        12,
        "memoized by id"
    );
}

static COUNTS: AtomicUsize = AtomicUsize::new(0);

impl Directory {
    /// No receiver: `in_impl = true` says it is in an `impl`. The body may name `Self`.
    #[memoize(in_impl = true, max_capacity = 100)]
    pub async fn count(tenant: u32) -> u64 {
        COUNTS.fetch_add(1, Ordering::SeqCst);
        u64::from(Self::new(tenant).tenant) * 10
    }

    #[memoize(in_impl = true)]
    async fn lookup(tenant: u32, name: &str) -> Result<String, String> {
        if name.is_empty() {
            return Err("empty name".into());
        }
        Ok(format!("{name}@{tenant}"))
    }
}

#[test]
fn an_associated_function_with_in_impl_is_memoized() {
    assert_eq!(block_on(Directory::count(4)), 40);
    assert_eq!(block_on(Directory::count(4)), 40);
    assert_eq!(COUNTS.load(Ordering::SeqCst), 1);
    let memo: &'static async_memo::AsyncMemo<u32, u64> = Directory::count_memo();
    assert_eq!(memo.len(), 1);

    assert_eq!(block_on(Directory::lookup(1, "")), Err("empty name".into()));
    assert_eq!(block_on(Directory::lookup(1, "ann")), Ok("ann@1".into()));
    assert_eq!(Directory::lookup_memo().len(), 1, "only the Ok is stored");
}
