//! A [`Table`] wrapper that counts calls per operation: the tests that hold
//! docs/DATA_MODEL.md's cost table to account use it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::store::{Item, Key, Page, Query, StoreError, Table, Write};

/// Calls made, per operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub get: u64,
    pub batch_get: u64,
    pub write: u64,
    pub transact: u64,
    pub batch_write: u64,
    pub query: u64,
}

impl Calls {
    /// Calls that read (get, batch_get, query).
    pub fn reads(&self) -> u64 {
        self.get + self.batch_get + self.query
    }

    /// Calls that write (write, transact, batch_write).
    pub fn writes(&self) -> u64 {
        self.write + self.transact + self.batch_write
    }
}

#[derive(Default)]
struct Counters {
    get: AtomicU64,
    batch_get: AtomicU64,
    write: AtomicU64,
    transact: AtomicU64,
    batch_write: AtomicU64,
    query: AtomicU64,
}

pub struct CountingTable {
    inner: Arc<dyn Table>,
    counters: Counters,
    /// Write calls that succeeded (a refused conditional write changes nothing).
    applied: AtomicU64,
}

impl CountingTable {
    pub fn new(inner: Arc<dyn Table>) -> Self {
        Self { inner, counters: Counters::default(), applied: AtomicU64::new(0) }
    }

    /// Write calls that changed the store since the last call, and start
    /// counting again from zero.
    pub fn take_applied_writes(&self) -> u64 {
        self.applied.swap(0, Ordering::SeqCst)
    }

    fn applied<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_ok() {
            bump(&self.applied);
        }
        result
    }

    /// The calls so far, and start counting again from zero.
    pub fn take(&self) -> Calls {
        let c = &self.counters;
        Calls {
            get: c.get.swap(0, Ordering::SeqCst),
            batch_get: c.batch_get.swap(0, Ordering::SeqCst),
            write: c.write.swap(0, Ordering::SeqCst),
            transact: c.transact.swap(0, Ordering::SeqCst),
            batch_write: c.batch_write.swap(0, Ordering::SeqCst),
            query: c.query.swap(0, Ordering::SeqCst),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::SeqCst);
}

#[async_trait]
impl Table for CountingTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        bump(&self.counters.get);
        self.inner.get(key).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        bump(&self.counters.batch_get);
        self.inner.batch_get(keys).await
    }
    async fn write(&self, write: Write) -> Result<(), StoreError> {
        bump(&self.counters.write);
        self.applied(self.inner.write(write).await)
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        bump(&self.counters.transact);
        self.applied(self.inner.transact(writes).await)
    }
    async fn batch_write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        bump(&self.counters.batch_write);
        self.applied(self.inner.batch_write(writes).await)
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        bump(&self.counters.query);
        self.inner.query(query).await
    }
    async fn erase_deleted(&self) -> Result<(), StoreError> {
        self.inner.erase_deleted().await
    }
}
