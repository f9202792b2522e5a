//! The builder's memo name: a label for the `metrics` export and a field of `Debug`.

use std::sync::Arc;

use super::MemoBuilder;

impl<K, V, S> MemoBuilder<K, V, S> {
    /// Names the memo: the value of the `memo` label on everything
    /// [`record_metrics`](crate::AsyncMemo::record_metrics) exports (feature `metrics`), and a
    /// field of the memo's `Debug` output, so that a service's memos can be told apart on a
    /// dashboard and in logs. Read it back with [`AsyncMemo::name`](crate::AsyncMemo::name).
    ///
    /// Give each memo you export a name of its own: two memos that share one write the same
    /// series, and a scrape shows whichever was recorded last. The name is any text (the
    /// `metrics` exporters escape label values); an empty name is the same as none, because
    /// Prometheus reads an empty label value as a missing label. Unnamed memos export as
    /// `memo="unnamed"`.
    ///
    /// The name costs two words in the memo (an `Option<Arc<str>>`) and is never read on a
    /// hit, a miss or a write.
    ///
    /// # Examples
    ///
    /// ```
    /// let users: async_memo::AsyncMemo<u64, String> =
    ///     async_memo::AsyncMemo::builder().name("users").build();
    /// assert_eq!(users.name(), Some("users"));
    /// assert!(format!("{users:?}").contains(r#"name: Some("users")"#));
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        let name = name.into();
        self.name = (!name.is_empty()).then_some(name);
        self
    }
}
