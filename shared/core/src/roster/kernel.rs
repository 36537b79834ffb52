//! The roster itself, how it reads a resource, and the one place it writes
//! users, groups and memberships: [`Roster::versioned_write`] reads a
//! resource, lets the caller plan the change, writes it conditioned on the
//! version read, and retries when another writer won; [`Roster::commit`]
//! runs every write that changes a user, a group or a membership and
//! reports what changed ([`super::changes`]). A write that changes nothing
//! reports nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use scim_protocol::{Object, etag};
use serde_json::{Value, json};

use super::changes::{Change, ChangeSink};
use super::claims::{Claim, claim_conflict};
use super::types::{Limits, Stored};
use crate::clock::{Clock, rfc3339};
use crate::cursor::CursorKey;
use crate::error::{Error, Result};
use crate::model::{self, Kind};
use crate::retry;
use crate::store::{
    Item, Key, MAX_BATCH_GETS, MAX_BATCH_WRITES, PAGE_ITEMS, Pages, Query, SortKey, StoreError, Table, Write,
};
use crate::tenant::TenantId;

/// How many times a read-modify-write is tried when other writers keep
/// getting there first (and the client did not ask for `If-Match`): the
/// server serialises concurrent changes itself, with jittered backoff
/// between tries (about a second in all), and only then answers 503.
const UPDATE_ATTEMPTS: u32 = 16;

/// A [`Roster::versioned_write`] plan at work (it may read first).
pub(super) type Plan<'a, T> = Pin<Box<dyn Future<Output = Result<Planned<T>>> + Send + 'a>>;

/// What a [`Roster::versioned_write`] plan decided for the resource it was
/// shown.
pub(super) enum Planned<T> {
    /// Nothing to write; the answer is `T`.
    Keep(T),
    /// Write `writes`, whose first is conditioned on the version shown;
    /// `claims` are the unique index entries among them, from index
    /// `first_claim`, to name the value another resource holds.
    Write { writes: Vec<Write>, changes: Vec<Change>, claims: Vec<Claim>, first_claim: usize, then: T },
}

/// Lockstep's record of every tenant's users, groups and memberships.
pub struct Roster {
    pub(super) table: Arc<dyn Table>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) cursor_key: CursorKey,
    pub(super) limits: Limits,
    changes: Option<Arc<dyn ChangeSink>>,
}

impl Roster {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>, cursor_key: CursorKey, limits: Limits) -> Self {
        Self { table, clock, cursor_key, limits, changes: None }
    }

    /// The roster, telling `sink` of every change it commits.
    pub fn with_change_sink(mut self, sink: Arc<dyn ChangeSink>) -> Self {
        self.changes = Some(sink);
        self
    }

    pub fn table(&self) -> &Arc<dyn Table> {
        &self.table
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(super) fn now(&self) -> String {
        rfc3339(self.clock.now())
    }

    pub(super) fn stored(&self, kind: Kind, id: &str, item: &Item) -> Result<Stored> {
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
    pub(super) async fn get_many(&self, t: &TenantId, kind: Kind, ids: &[String]) -> Result<Vec<Stored>> {
        let keys: Vec<Key> = ids.iter().map(|id| model::resource(t.as_str(), kind, id)).collect();
        self.batch_get(&keys).await?.iter().map(|item| self.stored(kind, &item.sk, item)).collect()
    }

    /// Read many items, in batches the store accepts (missing ones are left
    /// out, order is not kept).
    pub(super) async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>> {
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
    pub(super) fn pages(&self, query: Query) -> Pages<'_> {
        Pages::new(self.table.as_ref(), query)
    }

    /// Run a transaction, retrying the conflicts DynamoDB reports when
    /// concurrent transactions touch one item (the counter shards).
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut attempt = 0u32;
        loop {
            match self.table.transact(writes.clone()).await {
                Err(StoreError::Conflict) if attempt < 8 => {
                    attempt += 1;
                    tokio::time::sleep(retry::backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Write a change to users, groups or memberships at once (one write,
    /// or one transaction), then report `changes`.
    pub(super) async fn commit(
        &self,
        t: &TenantId,
        mut writes: Vec<Write>,
        changes: Vec<Change>,
    ) -> Result<(), StoreError> {
        match writes.len() {
            0 => {}
            1 => self.table.write(writes.remove(0)).await?,
            _ => self.transact(writes).await?,
        }
        self.report(t, changes);
        Ok(())
    }

    /// Idempotent puts and deletes of memberships, in batches the store
    /// accepts, then report `changes`.
    pub(super) async fn commit_batches(&self, t: &TenantId, writes: Vec<Write>, changes: Vec<Change>) -> Result<()> {
        self.batch_write(writes).await?;
        self.report(t, changes);
        Ok(())
    }

    fn report(&self, t: &TenantId, changes: Vec<Change>) {
        if let Some(sink) = &self.changes
            && !changes.is_empty()
        {
            sink.changed(t, &changes);
        }
    }

    /// Read the item a write will be conditioned on, checking `If-Match`.
    async fn read_for_write(&self, key: &Key, kind: Kind, id: &str, if_match: Option<&str>) -> Result<Item> {
        if !model::is_possible_id(id) {
            return Err(not_found(kind, id));
        }
        let item = self.table.get(key).await?.ok_or_else(|| not_found(kind, id))?;
        if let Some(expected) = if_match
            && !etag::header_matches(expected, item.version)
        {
            return Err(Error::PreconditionFailed(format!(
                "If-Match {expected} does not match the current version {}",
                etag::etag(item.version)
            )));
        }
        Ok(item)
    }

    /// The versioned write: read the live resource, let `plan` decide what
    /// to write from it, and write that conditioned on the version read.
    /// When another writer got there first, try again from the read (with
    /// backoff), unless the client asked for one version with `If-Match`
    /// (412). Every update and delete of a live user or group runs here.
    pub(super) async fn versioned_write<'a, T>(
        &self,
        t: &TenantId,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        purpose: &str,
        plan: impl Fn(Stored) -> Plan<'a, T>,
    ) -> Result<T> {
        let key = model::resource(t.as_str(), kind, id);
        for attempt in 0..UPDATE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(retry::backoff(attempt)).await;
            }
            let item = self.read_for_write(&key, kind, id, if_match).await?;
            let current = self.stored(kind, id, &item)?;
            let (writes, changes, claims, first_claim, then) = match plan(current).await? {
                Planned::Keep(then) => return Ok(then),
                Planned::Write { writes, changes, claims, first_claim, then } => {
                    (writes, changes, claims, first_claim, then)
                }
            };
            match self.commit(t, writes, changes).await {
                Ok(()) => return Ok(then),
                Err(StoreError::ConditionFailed { index: Some(0) }) if if_match.is_none() => continue,
                Err(StoreError::ConditionFailed { index: Some(0) }) => {
                    return Err(Error::PreconditionFailed("the resource changed; read it again".into()));
                }
                Err(e) => return Err(claim_conflict(&claims.iter().collect::<Vec<_>>(), first_claim, e)),
            }
        }
        Err(too_busy(purpose))
    }
}

/// The query for every resource of a kind, in id order.
pub(super) fn resources_query(t: &TenantId, kind: Kind) -> Query {
    Query::table(model::resources_pk(t.as_str(), kind), SortKey::All, PAGE_ITEMS)
}

/// The answer for an id that names no resource of `kind`.
pub(super) fn not_found(kind: Kind, id: &str) -> Error {
    let name = kind.name();
    if model::is_possible_id(id) {
        Error::NotFound(format!("{name} '{id}' not found"))
    } else {
        Error::NotFound(format!("no {name} has that id"))
    }
}

/// The answer when concurrent writers kept winning: the client's request
/// was fine, so it is told to retry (503 with Retry-After), never 409.
pub(super) fn too_busy(what: &str) -> Error {
    Error::Busy(format!("the resource is changing too often to {what} now; retry the request"))
}
