//! Tenants and their token sets, cached for a bounded time, so that a
//! revoked token stops working within that time and most requests read
//! nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_core::tokens::{TokenSet, TokenStore};
use lockstep_core::{Roster, Tenant, TenantId};

use crate::error::ApiError;

/// A tenant and its tokens, as cached.
pub(crate) struct Entry {
    loaded: Instant,
    pub(crate) tenant: Option<Tenant>,
    pub(crate) tokens: TokenSet,
}

pub struct TenantCache {
    store: Arc<dyn TokenStore>,
    ttl: Duration,
    // A plain mutex: it is held for a map lookup or insert, never across an await.
    entries: Mutex<HashMap<TenantId, Arc<Entry>>>,
}

impl TenantCache {
    pub fn new(store: Arc<dyn TokenStore>, ttl: Duration) -> Self {
        Self { store, ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    /// The map, even if a thread panicked while holding it: every write
    /// is a single insert or retain, so it is never left half-changed.
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) async fn get(&self, roster: &Roster, id: &TenantId) -> Result<Arc<Entry>, ApiError> {
        let cached = self.entries().get(id).filter(|e| e.loaded.elapsed() < self.ttl).cloned();
        if let Some(e) = cached {
            return Ok(e);
        }
        let (tenant, tokens) = tokio::join!(roster.tenant(id), self.store.load(id));
        let entry = Arc::new(Entry {
            loaded: Instant::now(),
            tenant: tenant?,
            tokens: tokens.map_err(lockstep_core::Error::from)?,
        });
        let mut entries = self.entries();
        // Bounded: a flood of made-up tenant ids must not grow it forever.
        if entries.len() >= 10_000 {
            entries.retain(|_, e| e.loaded.elapsed() < self.ttl);
        }
        entries.insert(id.clone(), Arc::clone(&entry));
        Ok(entry)
    }
}
