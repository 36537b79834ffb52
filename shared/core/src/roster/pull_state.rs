//! What a directory pull (Microsoft Graph) keeps between runs, as typed
//! documents of the tenant: the connection, the sync state, and the ids a
//! round noted page by page. The pull crate reads and writes them through
//! these operations only; their keys and items are this crate's.

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::kernel::Roster;
use crate::error::{Error, Result};
use crate::model;
use crate::store::{Cond, Item, Key, MAX_BATCH_WRITES, Query, SortKey, Write};
use crate::tenant::TenantId;

/// A document of a tenant's pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDocument {
    /// Names, ids, the mapping, the guard (never the secret).
    Connection,
    /// The round in progress, the delta link, what is held, the last run.
    State,
}

/// What a round notes of a page: the users it saw (a full round), or those
/// the directory said were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundNote {
    Seen,
    Gone,
}

impl RoundNote {
    fn tag(self) -> &'static str {
        match self {
            RoundNote::Seen => "SEEN",
            RoundNote::Gone => "GONE",
        }
    }
}

fn document_key(t: &TenantId, which: PullDocument) -> Key {
    match which {
        PullDocument::Connection => model::graph_connection(t.as_str()),
        PullDocument::State => model::graph_state(t.as_str()),
    }
}

impl Roster {
    /// A pull document, if stored.
    pub async fn pull_document<T: DeserializeOwned>(&self, t: &TenantId, which: PullDocument) -> Result<Option<T>> {
        let key = document_key(t, which);
        match self.table.get(&key).await? {
            Some(item) => serde_json::from_str(&item.data).map(Some).map_err(|e| Error::corrupt(&key, e)),
            None => Ok(None),
        }
    }

    /// Store a pull document (the last write wins: one pull runs per tenant).
    pub async fn save_pull_document<T: Serialize>(&self, t: &TenantId, which: PullDocument, value: &T) -> Result<()> {
        let key = document_key(t, which);
        let data = serde_json::to_string(value).map_err(|e| Error::corrupt(&key, e))?;
        let item = Item { pk: key.pk, sk: key.sk, version: 1, data, ..Item::default() };
        self.table.write(Write::Put { item, cond: Cond::Always }).await.map_err(Into::into)
    }

    /// Note the ids of one page of a round.
    pub async fn note_round_page(
        &self,
        t: &TenantId,
        round: &str,
        page: u64,
        note: RoundNote,
        ids: &[String],
    ) -> Result<()> {
        let key = Key::new(model::graph_round_pk(t.as_str(), round), format!("{}#{page:06}", note.tag()));
        let data = serde_json::to_string(ids).map_err(|e| Error::corrupt(&key, e))?;
        let item = Item { pk: key.pk, sk: key.sk, version: 1, data, ..Item::default() };
        self.table.write(Write::Put { item, cond: Cond::Always }).await.map_err(Into::into)
    }

    /// The ids a round noted: (seen, gone).
    pub async fn round_notes(&self, t: &TenantId, round: &str) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
        let (mut seen, mut gone) = (BTreeSet::new(), BTreeSet::new());
        let mut pages = self.pages(Query::table(model::graph_round_pk(t.as_str(), round), SortKey::All, 0));
        while let Some(items) = pages.next().await? {
            for item in &items {
                let ids: Vec<String> = serde_json::from_str(&item.data).map_err(|e| Error::corrupt(&item.key(), e))?;
                if item.sk.starts_with(RoundNote::Seen.tag()) { seen.extend(ids) } else { gone.extend(ids) }
            }
        }
        Ok((seen, gone))
    }

    /// Delete what a round noted.
    pub async fn forget_round(&self, t: &TenantId, round: &str) -> Result<()> {
        let mut pages = self.pages(Query::table(model::graph_round_pk(t.as_str(), round), SortKey::All, 0));
        while let Some(items) = pages.next().await? {
            for chunk in items.chunks(MAX_BATCH_WRITES) {
                let deletes = chunk.iter().map(|i| Write::Delete { key: i.key(), cond: Cond::Always }).collect();
                self.table.batch_write(deletes).await?;
            }
        }
        Ok(())
    }

    /// Make what a purge deleted unreadable from the store's medium too
    /// (the local store file; nothing to do on DynamoDB).
    pub async fn erase_deleted(&self) -> Result<()> {
        self.table.erase_deleted().await.map_err(Into::into)
    }
}
