//! The embedded adapter: the storage port on one local redb file. redb is
//! ACID with copy-on-write pages, so a crash leaves the last committed
//! transaction intact; every write here commits with immediate durability.
//!
//! The layout mirrors DynamoDB: a table keyed by `(pk, sk)` and a GSI1
//! table keyed by `(gsi1pk, gsi1sk, pk, sk)`, maintained in the same redb
//! transaction as the item. Conditions, transaction limits and paging
//! behave as DynamoDB's do, which the shared conformance suite checks.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod tokens;

pub use tokens::{FileSecrets, FileTokens};

use std::collections::HashSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use lockstep_core::store::{
    Cond, Index, Item, Key, MAX_PAGE_BYTES, Page, PageKey, Query, SortKey, StoreError, Table, Write, check_batch,
    check_batch_get, check_transaction,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi1");

/// What is stored for an item besides its key.
#[derive(Serialize, Deserialize, Default)]
struct Body {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1: Option<(String, String)>,
    #[serde(default)]
    ver: u64,
    #[serde(default)]
    n: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<i64>,
    #[serde(default)]
    data: String,
}

fn encode(item: &Item) -> Result<Vec<u8>, StoreError> {
    let body = Body {
        gsi1: item.gsi1.as_ref().map(|k| (k.pk.clone(), k.sk.clone())),
        ver: item.version,
        n: item.count,
        m: item.modified.clone(),
        ttl: item.expires_at,
        data: item.data.clone(),
    };
    serde_json::to_vec(&body).map_err(|e| StoreError::Unavailable(format!("encoding item: {e}")))
}

fn decode(pk: &str, sk: &str, bytes: &[u8]) -> Result<Item, StoreError> {
    let b: Body =
        serde_json::from_slice(bytes).map_err(|e| StoreError::Unavailable(format!("corrupt item {pk}/{sk}: {e}")))?;
    Ok(Item {
        pk: pk.to_string(),
        sk: sk.to_string(),
        gsi1: b.gsi1.map(|(p, s)| Key::new(p, s)),
        version: b.ver,
        count: b.n,
        modified: b.m,
        expires_at: b.ttl,
        data: b.data,
    })
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The embedded table.
#[derive(Clone)]
pub struct EmbeddedTable {
    /// The open database; replaced by a fresh copy when deleted items are
    /// erased ([`Table::erase_deleted`]).
    db: Arc<RwLock<Arc<Database>>>,
    /// Held shared by every write, exclusively while erasing, so that no
    /// write lands in the copy being replaced.
    writes: Arc<RwLock<()>>,
    path: Arc<PathBuf>,
    cache_bytes: Option<usize>,
    /// False only during a bulk load (see [`EmbeddedTable::bulk_load`]).
    durable: Arc<AtomicBool>,
}

/// Create `path` readable only by its owner, before anything is written
/// into it: it holds every tenant's users.
fn create_private(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| unavailable(format!("creating {}: {e}", path.display())))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| unavailable(format!("restricting {}: {e}", path.display())))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn open_database(path: &Path, cache_bytes: Option<usize>) -> Result<Database, StoreError> {
    create_private(path)?;
    let mut builder = redb::Builder::new();
    if let Some(bytes) = cache_bytes {
        builder.set_cache_size(bytes);
    }
    let db = builder.create(path).map_err(|e| unavailable(format!("opening {}: {e}", path.display())))?;
    let txn = db.begin_write().map_err(unavailable)?;
    txn.open_table(ITEMS).map_err(unavailable)?;
    txn.open_table(GSI1).map_err(unavailable)?;
    txn.commit().map_err(unavailable)?;
    Ok(db)
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EmbeddedTable {
    /// Open (or create) the store at `path`, with redb's default page
    /// cache (up to 1 GiB, grown as pages are read).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, None)
    }

    /// [`EmbeddedTable::open`] with a page cache of at most `cache_bytes`
    /// (benchmarks that measure memory of what runs above the store).
    pub fn open_with_cache(path: &Path, cache_bytes: Option<usize>) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| unavailable(format!("creating {}: {e}", dir.display())))?;
        }
        // A copy left by an erase that was cut off is incomplete: drop it.
        let _ = std::fs::remove_file(erasing_path(path));
        let db = open_database(path, cache_bytes)?;
        Ok(Self {
            db: Arc::new(RwLock::new(Arc::new(db))),
            writes: Arc::new(RwLock::new(())),
            path: Arc::new(path.to_path_buf()),
            cache_bytes,
            durable: Arc::new(AtomicBool::new(true)),
        })
    }

    fn current(&self) -> Arc<Database> {
        Arc::clone(&read_lock(&self.db))
    }

    /// Start a bulk load: commits stop waiting for the disk until
    /// [`EmbeddedTable::finish_bulk_load`], which makes them all durable at
    /// once. A crash in between loses the load, never earlier data.
    pub fn bulk_load(&self) {
        self.durable.store(false, Ordering::SeqCst);
    }

    /// End a bulk load with one durable commit.
    pub async fn finish_bulk_load(&self) -> Result<(), StoreError> {
        self.durable.store(true, Ordering::SeqCst);
        self.blocking(|db| db.begin_write().map_err(unavailable)?.commit().map_err(unavailable)).await
    }

    /// Reads run on the calling task: a read transaction over redb's page
    /// cache takes microseconds and never waits for a lock or an fsync, and
    /// handing it to the blocking pool would cost more than the read.
    fn read<T>(&self, f: impl FnOnce(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        f(&self.current())
    }

    /// Writes go to the blocking pool: a durable commit waits for the disk.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _writing = read_lock(&this.writes);
            f(&this.current())
        })
        .await
        .map_err(|e| unavailable(format!("store task failed: {e}")))?
    }

    /// Copy every live item into a new file and put it in the old one's
    /// place, so that pages which held deleted items are gone from the
    /// file. Writes wait meanwhile; reads go on from the old copy, which
    /// holds the same data. Costs a read and a write of the live data.
    fn rewrite(&self) -> Result<(), StoreError> {
        let _no_writes = write_lock(&self.writes);
        let old = self.current();
        let tmp = erasing_path(&self.path);
        let _ = std::fs::remove_file(&tmp);
        let fresh = open_database(&tmp, self.cache_bytes)?;
        {
            let from = old.begin_read().map_err(unavailable)?;
            let to = fresh.begin_write().map_err(unavailable)?;
            {
                let (src, mut dst) =
                    (from.open_table(ITEMS).map_err(unavailable)?, to.open_table(ITEMS).map_err(unavailable)?);
                for entry in src.iter().map_err(unavailable)? {
                    let (k, v) = entry.map_err(unavailable)?;
                    dst.insert(k.value(), v.value()).map_err(unavailable)?;
                }
                let (src, mut dst) =
                    (from.open_table(GSI1).map_err(unavailable)?, to.open_table(GSI1).map_err(unavailable)?);
                for entry in src.iter().map_err(unavailable)? {
                    let (k, _) = entry.map_err(unavailable)?;
                    dst.insert(k.value(), ()).map_err(unavailable)?;
                }
            }
            to.commit().map_err(unavailable)?;
        }
        std::fs::rename(&tmp, self.path.as_ref())
            .map_err(|e| unavailable(format!("replacing {}: {e}", self.path.display())))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename itself is made durable.
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(unavailable)?;
        }
        *write_lock(&self.db) = Arc::new(fresh);
        Ok(())
    }
}

/// Where the copy is written while deleted items are erased.
fn erasing_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".erasing");
    PathBuf::from(name)
}

type ItemsTable<'t> = redb::Table<'t, (&'static str, &'static str), &'static [u8]>;
type GsiTable<'t> = redb::Table<'t, (&'static str, &'static str, &'static str, &'static str), ()>;

fn read_item(items: &ItemsTable<'_>, key: &Key) -> Result<Option<Item>, StoreError> {
    match items.get((key.pk.as_str(), key.sk.as_str())).map_err(unavailable)? {
        Some(v) => decode(&key.pk, &key.sk, v.value()).map(Some),
        None => Ok(None),
    }
}

fn holds(cond: Cond, current: Option<&Item>) -> bool {
    match cond {
        Cond::Always => true,
        Cond::NotExists => current.is_none(),
        Cond::VersionIs(v) => current.is_some_and(|i| i.version == v),
    }
}

fn store(
    items: &mut ItemsTable<'_>,
    gsi: &mut GsiTable<'_>,
    old: Option<&Item>,
    item: &Item,
) -> Result<(), StoreError> {
    // DynamoDB's key limits (partition key 2,048 bytes, sort key 1,024), so
    // that what works here works there.
    for key in std::iter::once((&item.pk, &item.sk)).chain(item.gsi1.as_ref().map(|g| (&g.pk, &g.sk))) {
        if key.0.len() > 2048 || key.1.len() > 1024 {
            return Err(StoreError::Limit("a key longer than DynamoDB allows".into()));
        }
    }
    if let Some(g) = old.and_then(|o| o.gsi1.as_ref()) {
        gsi.remove((g.pk.as_str(), g.sk.as_str(), item.pk.as_str(), item.sk.as_str())).map_err(unavailable)?;
    }
    if let Some(g) = &item.gsi1 {
        gsi.insert((g.pk.as_str(), g.sk.as_str(), item.pk.as_str(), item.sk.as_str()), ()).map_err(unavailable)?;
    }
    let bytes = encode(item)?;
    // DynamoDB's item limit, so that what works here works there.
    if bytes.len() + item.pk.len() + item.sk.len() > 400 * 1024 {
        return Err(StoreError::Limit("item larger than 400 KB".into()));
    }
    items.insert((item.pk.as_str(), item.sk.as_str()), bytes.as_slice()).map_err(unavailable)?;
    Ok(())
}

fn remove(items: &mut ItemsTable<'_>, gsi: &mut GsiTable<'_>, old: &Item) -> Result<(), StoreError> {
    if let Some(g) = &old.gsi1 {
        gsi.remove((g.pk.as_str(), g.sk.as_str(), old.pk.as_str(), old.sk.as_str())).map_err(unavailable)?;
    }
    items.remove((old.pk.as_str(), old.sk.as_str())).map_err(unavailable)?;
    Ok(())
}

/// Apply one write inside an open transaction. `Err(None)` is a failed
/// condition.
fn apply(items: &mut ItemsTable<'_>, gsi: &mut GsiTable<'_>, write: &Write) -> Result<bool, StoreError> {
    let key = write.key();
    let current = read_item(items, &key)?;
    match write {
        Write::Put { item, cond } => {
            if !holds(*cond, current.as_ref()) {
                return Ok(false);
            }
            store(items, gsi, current.as_ref(), item)?;
        }
        Write::Delete { cond, .. } => {
            if !holds(*cond, current.as_ref()) {
                return Ok(false);
            }
            if let Some(old) = &current {
                remove(items, gsi, old)?;
            }
        }
        Write::Add { key, delta } => {
            let mut next =
                current.clone().unwrap_or_else(|| Item { pk: key.pk.clone(), sk: key.sk.clone(), ..Item::default() });
            next.count += delta;
            store(items, gsi, current.as_ref(), &next)?;
        }
        Write::Touch { modified, .. } => {
            let Some(mut next) = current.clone() else { return Ok(false) };
            next.version += 1;
            next.modified = Some(modified.clone());
            store(items, gsi, current.as_ref(), &next)?;
        }
    }
    Ok(true)
}

fn in_range(sk: &str, cond: &SortKey) -> bool {
    match cond {
        SortKey::All => true,
        SortKey::Between(a, b) => sk >= a.as_str() && sk <= b.as_str(),
    }
}

fn lower_bound(cond: &SortKey) -> &str {
    match cond {
        SortKey::All => "",
        SortKey::Between(a, _) => a,
    }
}

/// Whether iteration can stop: sort keys only grow past this point.
fn past_range(sk: &str, cond: &SortKey) -> bool {
    match cond {
        SortKey::All => false,
        SortKey::Between(_, b) => sk > b.as_str(),
    }
}

#[async_trait]
impl Table for EmbeddedTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.read(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let items = txn.open_table(ITEMS).map_err(unavailable)?;
            match items.get((key.pk.as_str(), key.sk.as_str())).map_err(unavailable)? {
                Some(v) => decode(&key.pk, &key.sk, v.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        check_batch_get(keys)?;
        self.read(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let items = txn.open_table(ITEMS).map_err(unavailable)?;
            let mut out = Vec::with_capacity(keys.len());
            let mut seen = HashSet::new();
            for key in keys.iter().filter(|k| seen.insert((*k).clone())) {
                if let Some(v) = items.get((key.pk.as_str(), key.sk.as_str())).map_err(unavailable)? {
                    out.push(decode(&key.pk, &key.sk, v.value())?);
                }
            }
            Ok(out)
        })
    }

    async fn write(&self, write: Write) -> Result<(), StoreError> {
        self.transact(vec![write]).await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transaction(&writes)?;
        let durability = if self.durable.load(Ordering::SeqCst) { Durability::Immediate } else { Durability::None };
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(unavailable)?;
            txn.set_durability(durability).map_err(unavailable)?;
            {
                let mut items = txn.open_table(ITEMS).map_err(unavailable)?;
                let mut gsi = txn.open_table(GSI1).map_err(unavailable)?;
                for (i, w) in writes.iter().enumerate() {
                    if !apply(&mut items, &mut gsi, w)? {
                        // Dropping the transaction uncommitted rolls it back.
                        return Err(StoreError::ConditionFailed { index: Some(i) });
                    }
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn batch_write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_batch(&writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        self.transact(writes).await
    }

    async fn erase_deleted(&self) -> Result<(), StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.rewrite())
            .await
            .map_err(|e| unavailable(format!("store task failed: {e}")))?
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.read(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            match query.index {
                Index::Table => {
                    let items = txn.open_table(ITEMS).map_err(unavailable)?;
                    let pk = query.pk.as_str();
                    let start = match &query.start_after {
                        Some(after) => Bound::Excluded((pk, after.key.sk.as_str())),
                        None => Bound::Included((pk, lower_bound(&query.sk))),
                    };
                    let mut out = Vec::new();
                    let mut more = false;
                    let mut bytes = 0usize;
                    for entry in items.range::<(&str, &str)>((start, Bound::Unbounded)).map_err(unavailable)? {
                        let (k, v) = entry.map_err(unavailable)?;
                        let (p, s) = k.value();
                        if p != pk || past_range(s, &query.sk) {
                            break;
                        }
                        if !in_range(s, &query.sk) {
                            continue;
                        }
                        if out.len() == query.limit || bytes >= MAX_PAGE_BYTES {
                            more = true;
                            break;
                        }
                        bytes += v.value().len();
                        out.push(decode(p, s, v.value())?);
                    }
                    let next = more.then(|| out.last().map(|i| PageKey { key: i.key(), gsi1: None })).flatten();
                    Ok(Page { items: out, next })
                }
                Index::Gsi1 => {
                    let gsi = txn.open_table(GSI1).map_err(unavailable)?;
                    let items = txn.open_table(ITEMS).map_err(unavailable)?;
                    let gpk = query.pk.as_str();
                    let start = match &query.start_after {
                        Some(PageKey { key, gsi1: Some(g) }) => {
                            Bound::Excluded((gpk, g.sk.as_str(), key.pk.as_str(), key.sk.as_str()))
                        }
                        _ => Bound::Included((gpk, lower_bound(&query.sk), "", "")),
                    };
                    let mut out = Vec::new();
                    let mut more = false;
                    let mut bytes = 0usize;
                    for entry in
                        gsi.range::<(&str, &str, &str, &str)>((start, Bound::Unbounded)).map_err(unavailable)?
                    {
                        let (k, _) = entry.map_err(unavailable)?;
                        let (gp, gs, p, s) = k.value();
                        if gp != gpk || past_range(gs, &query.sk) {
                            break;
                        }
                        if !in_range(gs, &query.sk) {
                            continue;
                        }
                        if out.len() == query.limit || bytes >= MAX_PAGE_BYTES {
                            more = true;
                            break;
                        }
                        if let Some(v) = items.get((p, s)).map_err(unavailable)? {
                            bytes += v.value().len();
                            out.push(decode(p, s, v.value())?);
                        }
                    }
                    let next =
                        more.then(|| out.last().map(|i| PageKey { key: i.key(), gsi1: i.gsi1.clone() })).flatten();
                    Ok(Page { items: out, next })
                }
            }
        })
    }
}
