//! The storage port: one trait shaped like a single DynamoDB table, so that
//! all single-table modelling (keys, uniqueness, membership, paging) is
//! shared code above it, and the two adapters (DynamoDB, embedded) are thin
//! and exercised by the same conformance suite.
//!
//! An item has a partition key and a sort key, an optional key in one
//! sparse secondary index (GSI1), a version, a counter, a last-modified
//! stamp, a TTL, and an opaque JSON body. Writes are conditional and can be
//! grouped in atomic transactions of at most [`MAX_TRANSACTION_WRITES`].

use async_trait::async_trait;

/// DynamoDB's limit on the actions of one transaction.
pub const MAX_TRANSACTION_WRITES: usize = 100;
/// DynamoDB's limit on the writes of one BatchWriteItem.
pub const MAX_BATCH_WRITES: usize = 25;
/// DynamoDB's limit on the keys of one BatchGetItem.
pub const MAX_BATCH_GETS: usize = 100;

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self { pk: pk.into(), sk: sk.into() }
    }
}

/// One item of the table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    pub pk: String,
    pub sk: String,
    /// Key in the sparse secondary index GSI1, if the item is indexed there.
    pub gsi1: Option<Key>,
    /// Optimistic-concurrency version; 1 when first written.
    pub version: u64,
    /// A counter maintained by [`Write::Add`].
    pub count: i64,
    /// Last modification time (RFC 3339), maintained by puts and [`Write::Touch`].
    pub modified: Option<String>,
    /// Expiry, seconds since the epoch: DynamoDB's TTL attribute. Expired
    /// items may linger (TTL deletion is lazy); readers that care filter.
    pub expires_at: Option<i64>,
    /// The item's body, JSON text.
    pub data: String,
}

impl Item {
    pub fn key(&self) -> Key {
        Key::new(self.pk.clone(), self.sk.clone())
    }
}

/// A write condition, checked atomically with the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Always,
    /// The item must not exist (create, uniqueness claims).
    NotExists,
    /// The item must exist with exactly this version.
    VersionIs(u64),
}

/// One write, alone or in a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Store the whole item.
    Put {
        item: Item,
        cond: Cond,
    },
    Delete {
        key: Key,
        cond: Cond,
    },
    /// Add `delta` to the item's `count`, creating the item if absent.
    Add {
        key: Key,
        delta: i64,
    },
    /// Bump the version of an existing item and set its `modified`; fails
    /// the condition if the item does not exist.
    Touch {
        key: Key,
        modified: String,
    },
}

impl Write {
    pub fn key(&self) -> Key {
        match self {
            Write::Put { item, .. } => item.key(),
            Write::Delete { key, .. } | Write::Add { key, .. } | Write::Touch { key, .. } => key.clone(),
        }
    }
}

/// Which index a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Table,
    Gsi1,
}

/// The sort-key condition of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    All,
    /// Inclusive on both ends.
    Between(String, String),
}

/// Where the previous page ended: the last key read, in the index read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageKey {
    pub key: Key,
    /// The GSI1 key of the last item, for GSI1 queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1: Option<Key>,
}

/// A key-range query in one partition, in ascending sort-key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    pub sk: SortKey,
    /// The most items to read.
    pub limit: usize,
    pub start_after: Option<PageKey>,
}

impl Query {
    pub fn table(pk: impl Into<String>, sk: SortKey, limit: usize) -> Self {
        Self { index: Index::Table, pk: pk.into(), sk, limit, start_after: None }
    }
}

/// A page of query results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// Set when more items may follow.
    pub next: Option<PageKey>,
}

/// The rules DynamoDB holds a transaction to, checked before it is sent
/// (by both adapters, so the embedded store refuses what DynamoDB would):
/// 1 to [`MAX_TRANSACTION_WRITES`] writes, each to a different item.
pub fn check_transaction(writes: &[Write]) -> Result<(), StoreError> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_WRITES {
        return Err(StoreError::Limit(format!(
            "{} writes in one transaction; 1 to {MAX_TRANSACTION_WRITES} are allowed",
            writes.len()
        )));
    }
    distinct_items(writes, "a transaction")
}

/// The rules of a batch write: at most [`MAX_BATCH_WRITES`] unconditional
/// puts and deletes, each to a different item.
pub fn check_batch(writes: &[Write]) -> Result<(), StoreError> {
    if writes.len() > MAX_BATCH_WRITES {
        return Err(StoreError::Limit(format!("{} writes in one batch; at most {MAX_BATCH_WRITES}", writes.len())));
    }
    let unconditional = writes
        .iter()
        .all(|w| matches!(w, Write::Put { cond: Cond::Always, .. } | Write::Delete { cond: Cond::Always, .. }));
    if !unconditional {
        return Err(StoreError::Limit("a batch holds only unconditional puts and deletes".into()));
    }
    distinct_items(writes, "a batch")
}

/// The rule of a batch read: at most [`MAX_BATCH_GETS`] keys.
pub fn check_batch_get(keys: &[Key]) -> Result<(), StoreError> {
    if keys.len() > MAX_BATCH_GETS {
        return Err(StoreError::Limit(format!("{} keys in one batch get; at most {MAX_BATCH_GETS}", keys.len())));
    }
    Ok(())
}

fn distinct_items(writes: &[Write], what: &str) -> Result<(), StoreError> {
    let mut keys = std::collections::HashSet::new();
    if writes.iter().all(|w| keys.insert(w.key())) {
        Ok(())
    } else {
        Err(StoreError::Limit(format!("{what} cannot write one item twice")))
    }
}

/// Storage failures. Only [`StoreError::ConditionFailed`] is a normal
/// outcome; the rest are infrastructure failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold. In a transaction, `index` says which write.
    #[error("condition failed (write {index:?})")]
    ConditionFailed { index: Option<usize> },
    /// Concurrent transactions touched the same item; retrying may succeed.
    #[error("transaction conflict")]
    Conflict,
    /// The store is throttling requests.
    #[error("throttled: {0}")]
    Throttled(String),
    /// A request broke a limit of the store (item size, transaction size).
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// Anything else: unreachable, corrupt, misconfigured.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// The table. Implementations: DynamoDB (`lockstep-aws`) and the embedded
/// store (`lockstep-embedded`).
#[async_trait]
pub trait Table: Send + Sync {
    /// A strongly consistent read of one item.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;

    /// Read up to [`MAX_BATCH_GETS`] items; missing ones are left out, order
    /// is not kept.
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError>;

    /// Apply one write.
    async fn write(&self, write: Write) -> Result<(), StoreError>;

    /// Apply up to [`MAX_TRANSACTION_WRITES`] writes atomically: all or none.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    /// Apply unconditional puts and deletes, up to [`MAX_BATCH_WRITES`], not
    /// atomically. Used where each write is idempotent on its own.
    async fn batch_write(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    /// A key-range query (strongly consistent on the table, eventually
    /// consistent on GSI1).
    async fn query(&self, query: &Query) -> Result<Page, StoreError>;

    /// Make deleted items unreadable from the store's medium, after a
    /// purge. DynamoDB: nothing to do (a deleted item is gone from every
    /// read; backups and point-in-time recovery keep it for their
    /// retention, docs/SECURITY.md). A local file must not keep old pages.
    async fn erase_deleted(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl<T: Table + ?Sized> Table for std::sync::Arc<T> {
    async fn erase_deleted(&self) -> Result<(), StoreError> {
        (**self).erase_deleted().await
    }
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        (**self).get(key).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        (**self).batch_get(keys).await
    }
    async fn write(&self, write: Write) -> Result<(), StoreError> {
        (**self).write(write).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        (**self).transact(writes).await
    }
    async fn batch_write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        (**self).batch_write(writes).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        (**self).query(query).await
    }
}

/// Items one page reads unless a caller asks for fewer.
pub const PAGE_ITEMS: usize = 1000;

/// The most item bytes one query page reads, as in DynamoDB: a page ends
/// after the item that reaches 1 MB, with a key to continue from, however
/// many items were asked for. Both adapters page alike, and a page of
/// large items costs no more memory than a page of small ones.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// The one "read until the last page" loop: a query's pages, in order.
pub struct Pages<'a> {
    table: &'a dyn Table,
    query: Query,
    done: bool,
}

impl<'a> Pages<'a> {
    /// The pages of `query` (its `limit` is set per page).
    pub fn new(table: &'a dyn Table, query: Query) -> Self {
        Self { table, query, done: false }
    }

    /// The next page of up to [`PAGE_ITEMS`] items, `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<Item>>, StoreError> {
        self.next_at_most(PAGE_ITEMS).await
    }

    /// The next page of up to `limit` items (a read budget's remainder).
    pub async fn next_at_most(&mut self, limit: usize) -> Result<Option<Vec<Item>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        self.query.limit = limit.min(PAGE_ITEMS);
        let page = self.table.query(&self.query).await?;
        match &page.next {
            Some(next) => self.query.start_after = Some(next.clone()),
            None => self.done = true,
        }
        Ok(Some(page.items))
    }
}
