//! The roster: Lockstep's own record of every tenant's users, groups and
//! memberships (what the customer's identity provider, "the directory",
//! pushed or the pull brought), on top of
//! the storage port. All single-table logic lives here, once, for both
//! adapters; docs/DATA_MODEL.md lists each operation's key operations.
//!
//! - this module: the roster, its limits, and reading resources;
//! - [`tenants`]: tenant records;
//! - [`claims`]: the index entries a resource claims (uniqueness, lookups);
//! - [`write`]: create, replace, patch, reindex;
//! - [`lifecycle`]: delete, soft delete and restore, kept and unlinked
//!   groups, purge and sweep;
//! - [`members`]: group membership, both ways;
//! - [`pulled`]: users pulled from a directory (Microsoft Graph), linked by
//!   its object id;
//! - [`search`]: lookups, filters, index and cursor paging.

mod claims;
mod lifecycle;
mod members;
mod pull_state;
mod pulled;
mod search;
mod tenants;
mod write;

use std::sync::Arc;

use scim_protocol::{Object, etag};
use serde_json::{Value, json};

use crate::clock::{Clock, rfc3339};
use crate::cursor::CursorKey;
use crate::error::{Error, Result};
use crate::model::{self, Kind};
use crate::store::{Item, Key, MAX_BATCH_GETS, MAX_BATCH_WRITES, PAGE_ITEMS, Pages, Query, SortKey, Table, Write};
use crate::tenant::TenantId;

pub use claims::MAX_WORK_EMAILS;
pub use lifecycle::{Due, MAX_REMEMBERED_GROUPS, Purged, Retired, Retirement};
pub use members::UnfinishedDeletes;
pub use pull_state::{PullDocument, RoundNote};
pub use pulled::{Link, LinkOrigin, Pulled};

/// Bounds on the work one request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub default_page_size: u64,
    pub max_page_size: u64,
    /// Items a request may read to serve a filter that is not an indexed
    /// equality, or to skip to a `startIndex` it has no bookmark for.
    pub scan_budget: usize,
    /// Items one cursor page may read.
    pub cursor_read_budget: usize,
    /// Stored bytes one request may read to serve a filter, a cursor page
    /// or a `startIndex` (beside the item budgets): resources of up to
    /// `max_resource_bytes` make the item budgets alone too large.
    pub read_budget_bytes: usize,
    /// Stored bytes of the resources one page carries; a page ends early
    /// (with at least one resource) rather than pass it, and says so by its
    /// `itemsPerPage` and cursor.
    pub max_page_bytes: usize,
    pub cursor_ttl_secs: i64,
    /// The longest indexed value (userName, externalId, displayName), bytes.
    pub max_indexed_value: usize,
    /// The most members one group representation carries: a response has
    /// to fit Lambda's 6 MB limit. Larger groups are read with
    /// `excludedAttributes=members` and `filter=members[value eq "..."]`,
    /// and cannot be created with more members than this at once.
    pub max_inline_members: usize,
    /// The most bytes one stored user or group may take (its attributes as
    /// JSON; a group's members are stored apart and do not count). Well
    /// under DynamoDB's 400 KB item limit, and the same on both stores.
    pub max_resource_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default_page_size: 100,
            max_page_size: 1000,
            scan_budget: 10_000,
            cursor_read_budget: 2_000,
            read_budget_bytes: 32 << 20,
            max_page_bytes: 2 << 20,
            cursor_ttl_secs: 3600,
            max_indexed_value: 1024,
            max_resource_bytes: 100 * 1024,
            max_inline_members: 10_000,
        }
    }
}

/// A resource as stored, with its id, version and canonical attributes
/// (including `id` and `meta` without `location`, which depends on the URL
/// the client used).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub kind: Kind,
    pub id: String,
    pub version: u64,
    pub resource: Object,
    /// Which of its index entries were written unique (their tags), as the
    /// item records it; `None` for items written before it did.
    unique_entries: Option<Vec<String>>,
    /// The form its index entries were written in (`meta.keys`; 1 before
    /// items recorded it).
    key_form: u64,
}

impl Stored {
    pub fn etag(&self) -> String {
        etag::etag(self.version)
    }
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub total: u64,
    pub start_index: Option<u64>,
    pub resources: Vec<Stored>,
    pub next_cursor: Option<String>,
}

/// What [`Roster::reindex`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reindexed {
    pub checked: u64,
    pub rewritten: u64,
    /// Resources whose entries could not be written, with why (a value
    /// another resource holds under a uniqueness setting, or one the
    /// current rules refuse).
    pub refused: Vec<(String, String)>,
}

/// A member of a group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub kind: Kind,
}

/// A group a user belongs to, for the user's `groups` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub display: Option<String>,
}

pub struct Roster {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
    cursor_key: CursorKey,
    limits: Limits,
}

impl Roster {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>, cursor_key: CursorKey, limits: Limits) -> Self {
        Self { table, clock, cursor_key, limits }
    }

    pub fn table(&self) -> &Arc<dyn Table> {
        &self.table
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn now(&self) -> String {
        rfc3339(self.clock.now())
    }

    fn stored(&self, kind: Kind, id: &str, item: &Item) -> Result<Stored> {
        let key = item.key();
        let mut resource: Object = match serde_json::from_str(&item.data) {
            Ok(Value::Object(o)) => o,
            Ok(_) => return Err(Error::corrupt(&key, "body is not an object")),
            Err(e) => return Err(Error::corrupt(&key, e)),
        };
        let meta = resource.remove("meta");
        let created =
            meta.as_ref().and_then(|m| m.get("created").cloned()).unwrap_or_else(|| Value::String(String::new()));
        let unique_entries = meta
            .as_ref()
            .and_then(|m| m.get("unique"))
            .and_then(Value::as_array)
            .map(|tags| tags.iter().filter_map(Value::as_str).map(str::to_string).collect());
        // Never-returned attributes (a password stored before they were
        // dropped on input) never leave the store.
        for attr in kind.resource_type().core.attributes.iter().filter(|a| a.is_never_returned()) {
            resource.remove(attr.name);
        }
        resource.insert("id".into(), json!(id));
        resource.insert(
            "meta".into(),
            json!({
                "resourceType": kind.name(),
                "created": created,
                "lastModified": item.modified.clone().unwrap_or_default(),
                "version": etag::etag(item.version),
            }),
        );
        let key_form = meta.as_ref().and_then(|m| m.get("keys")).and_then(Value::as_u64).unwrap_or(1);
        Ok(Stored { kind, id: id.to_string(), version: item.version, resource, unique_entries, key_form })
    }

    pub async fn get(&self, t: &TenantId, kind: Kind, id: &str) -> Result<Stored> {
        if !model::is_possible_id(id) {
            return Err(not_found(kind, id));
        }
        let item = self.table.get(&model::resource(t.as_str(), kind, id)).await?.ok_or_else(|| not_found(kind, id))?;
        self.stored(kind, id, &item)
    }

    /// Read many resources by id (any order; missing ids are left out).
    async fn get_many(&self, t: &TenantId, kind: Kind, ids: &[String]) -> Result<Vec<Stored>> {
        let keys: Vec<Key> = ids.iter().map(|id| model::resource(t.as_str(), kind, id)).collect();
        self.batch_get(&keys).await?.iter().map(|item| self.stored(kind, &item.sk, item)).collect()
    }

    /// Read many items, in batches the store accepts (missing ones are left
    /// out, order is not kept).
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_BATCH_GETS) {
            items.extend(self.table.batch_get(chunk).await?);
        }
        Ok(items)
    }

    /// Idempotent puts and deletes, in batches the store accepts.
    async fn batch_write(&self, writes: Vec<Write>) -> Result<()> {
        for chunk in writes.chunks(MAX_BATCH_WRITES) {
            self.table.batch_write(chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// The pages of a query, read one at a time.
    fn pages(&self, query: Query) -> Pages<'_> {
        Pages::new(self.table.as_ref(), query)
    }
}

/// The query for every resource of a kind, in id order.
fn resources_query(t: &TenantId, kind: Kind) -> Query {
    Query::table(model::resources_pk(t.as_str(), kind), SortKey::All, PAGE_ITEMS)
}

/// The answer for an id that names no resource of `kind`.
fn not_found(kind: Kind, id: &str) -> Error {
    let name = kind.name();
    if model::is_possible_id(id) {
        Error::NotFound(format!("{name} '{id}' not found"))
    } else {
        Error::NotFound(format!("no {name} has that id"))
    }
}

/// The answer when concurrent writers kept winning: the client's request
/// was fine, so it is told to retry (503 with Retry-After), never 409.
fn too_busy(what: &str) -> Error {
    Error::Busy(format!("the resource is changing too often to {what} now; retry the request"))
}
