//! The directory: users, groups and memberships of every tenant, on top of
//! the storage port. All single-table logic lives here, once, for both
//! adapters. docs/DATA_MODEL.md lists each operation's key operations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use scim_protocol::filter::{Filter, IndexedAttr, IndexedEq};
use scim_protocol::patch::{MemberChanges, MemberRef};
use scim_protocol::{Object, Paging, PatchRequest, ScimError, apply_patch, etag};
use serde_json::{Value, json};

use crate::clock::{Clock, rfc3339};
use crate::cursor::{self, CursorKey, CursorState};
use crate::error::{Error, Result};
use crate::model::{self, IndexAttr, Kind};
use crate::store::{
    Cond, Item, Key, MAX_BATCH_GETS, MAX_BATCH_WRITES, PageKey, Query, SortKey, StoreError, Table, Write,
};
use crate::tenant::{Deactivation, Tenant, TenantId, TenantSettings};

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
    pub id: String,
    pub version: u64,
    pub resource: Object,
    /// Which of its index entries were written unique (their tags), as the
    /// item records it; `None` for items written before it did.
    unique_entries: Option<Vec<String>>,
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

/// What [`Directory::reindex`] did.
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

/// How many times a read-modify-write is tried when other writers keep
/// getting there first (and the client did not ask for `If-Match`): the
/// server serialises concurrent changes itself, with jittered backoff
/// between tries (about a second in all), and only then answers 503.
const UPDATE_ATTEMPTS: u32 = 16;

pub struct Directory {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
    cursor_key: CursorKey,
    limits: Limits,
}

/// An index entry a resource claims.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    attr: IndexAttr,
    value: String,
    unique: bool,
}

impl Claim {
    fn key(&self, t: &str, id: &str) -> Key {
        model::index_entry(t, self.attr, &self.value, self.unique, id)
    }

    /// Same entry in the table: values that normalise alike are one claim.
    fn same_entry(&self, other: &Claim) -> bool {
        self.attr == other.attr
            && self.unique == other.unique
            && self.attr.normalise(&self.value) == other.attr.normalise(&other.value)
    }
}

/// The most work emails one user may have: each is an index entry, and a
/// write's entries must fit one transaction.
pub const MAX_WORK_EMAILS: usize = 10;

fn text<'a>(attrs: &'a Object, name: &str) -> Option<&'a str> {
    attrs.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The values of a user's emails of type `work`.
fn work_emails(attrs: &Object) -> impl Iterator<Item = &str> {
    attrs.get("emails").and_then(Value::as_array).into_iter().flatten().filter_map(|e| {
        let work = e.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("work"));
        e.get("value").and_then(Value::as_str).filter(|v| work && !v.is_empty())
    })
}

/// The index entries a resource's attributes call for under `settings`.
fn claims(kind: Kind, attrs: &Object, settings: &TenantSettings) -> Vec<Claim> {
    let mut out = Vec::new();
    let mut claim = |attr, value: Option<&str>, unique| {
        if let Some(v) = value {
            out.push(Claim { attr, value: v.to_string(), unique });
        }
    };
    match kind {
        Kind::User => {
            claim(IndexAttr::UserName, text(attrs, "userName"), true);
            claim(IndexAttr::UserExternalId, text(attrs, "externalId"), settings.unique_external_ids);
            for email in work_emails(attrs) {
                claim(IndexAttr::UserWorkEmail, Some(email), false);
            }
        }
        Kind::Group => {
            claim(IndexAttr::GroupExternalId, text(attrs, "externalId"), settings.unique_external_ids);
            claim(IndexAttr::GroupName, text(attrs, "displayName"), settings.unique_group_names);
        }
    }
    // Two work emails that normalise alike are one entry.
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert((c.attr, c.attr.normalise(&c.value))));
    out
}

/// The index entries a stored resource holds: as [`claims`], but unique
/// or not as each was written (the item records it), so that they are
/// removed from where they are even after the tenant changed a setting.
fn stored_claims(kind: Kind, stored: &Stored, settings: &TenantSettings) -> Vec<Claim> {
    let mut out = claims(kind, &stored.resource, settings);
    if stored.unique_entries.is_none() {
        // Written before work emails were indexed: it has no such entries.
        out.retain(|c| c.attr != IndexAttr::UserWorkEmail);
    }
    for c in &mut out {
        c.unique = match &stored.unique_entries {
            Some(tags) => tags.iter().any(|t| t == c.attr.tag()),
            // Written before entries were recorded: by the rules of then.
            None => match c.attr {
                IndexAttr::UserName | IndexAttr::UserExternalId | IndexAttr::GroupExternalId => true,
                IndexAttr::GroupName => settings.unique_group_names,
                IndexAttr::UserWorkEmail => false,
            },
        };
    }
    out
}

fn not_found(kind: Kind, id: &str) -> Error {
    let name = kind.resource_type().name;
    if model::is_possible_id(id) {
        Error::Scim(ScimError::not_found(format!("{name} '{id}' not found")))
    } else {
        Error::Scim(ScimError::not_found(format!("no {name} has that id")))
    }
}

/// The answer when concurrent writers kept winning: the client's request
/// was fine, so it is told to retry (503 with Retry-After), never 409.
fn too_busy(what: &str) -> Error {
    Error::Scim(ScimError::service_unavailable(format!(
        "the resource is changing too often to {what} now; retry the request"
    )))
}

/// A short stable digest, for keys and cursor scopes.
fn digest(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

fn id_of_entry(item: &Item) -> Option<String> {
    serde_json::from_str::<Value>(&item.data).ok()?.get("id")?.as_str().map(str::to_string)
}

fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

impl Directory {
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

    // -- tenants ------------------------------------------------------------

    pub async fn create_tenant(&self, id: &TenantId, name: &str, settings: TenantSettings) -> Result<Tenant> {
        let tenant = Tenant { id: id.clone(), name: name.to_string(), created: self.now(), settings };
        let item = Item {
            pk: model::tenant_settings(id.as_str()).pk,
            sk: model::tenant_settings(id.as_str()).sk,
            gsi1: Some(model::tenant_listing(id.as_str())),
            version: 1,
            modified: Some(tenant.created.clone()),
            data: serde_json::to_string(&tenant)
                .map_err(|e| Error::corrupt(&model::tenant_settings(id.as_str()), e))?,
            ..Item::default()
        };
        match self.table.write(Write::Put { item, cond: Cond::NotExists }).await {
            Err(StoreError::ConditionFailed { .. }) => {
                Err(ScimError::uniqueness(format!("tenant '{id}' already exists")).into())
            }
            other => other.map(|()| tenant).map_err(Error::from),
        }
    }

    pub async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        let key = model::tenant_settings(id.as_str());
        match self.table.get(&key).await? {
            None => Ok(None),
            Some(item) => serde_json::from_str(&item.data).map(Some).map_err(|e| Error::corrupt(&key, e)),
        }
    }

    pub async fn update_tenant_settings(&self, id: &TenantId, settings: TenantSettings) -> Result<Tenant> {
        let key = model::tenant_settings(id.as_str());
        let item = self.table.get(&key).await?.ok_or_else(|| ScimError::not_found(format!("no tenant '{id}'")))?;
        let mut tenant: Tenant = serde_json::from_str(&item.data).map_err(|e| Error::corrupt(&key, e))?;
        tenant.settings = settings;
        let next = Item {
            data: serde_json::to_string(&tenant).map_err(|e| Error::corrupt(&key, e))?,
            version: item.version + 1,
            modified: Some(self.now()),
            ..item.clone()
        };
        match self.table.write(Write::Put { item: next, cond: Cond::VersionIs(item.version) }).await {
            Err(StoreError::ConditionFailed { .. }) => {
                Err(ScimError::conflict("the tenant changed while being updated; retry").into())
            }
            other => other.map(|()| tenant).map_err(Error::from),
        }
    }

    /// Every tenant id, from the sparse index.
    pub async fn tenants(&self) -> Result<Vec<TenantId>> {
        let mut out = Vec::new();
        let mut query = Query {
            index: crate::store::Index::Gsi1,
            pk: model::TENANTS_GSI_PK.into(),
            sk: SortKey::All,
            limit: 1000,
            start_after: None,
        };
        loop {
            let page = self.table.query(&query).await?;
            out.extend(page.items.iter().filter_map(|i| i.gsi1.as_ref()).filter_map(|k| TenantId::parse(&k.sk).ok()));
            match page.next {
                Some(next) => query.start_after = Some(next),
                None => return Ok(out),
            }
        }
    }

    // -- reading ------------------------------------------------------------

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
                "resourceType": kind.resource_type().name,
                "created": created,
                "lastModified": item.modified.clone().unwrap_or_default(),
                "version": etag::etag(item.version),
            }),
        );
        Ok(Stored { id: id.to_string(), version: item.version, resource, unique_entries })
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

    // -- writing ------------------------------------------------------------

    /// The item of a resource, refused when it would exceed
    /// [`Limits::max_resource_bytes`]: checked here, before any write, so
    /// both stores refuse the same resources with the same answer.
    #[allow(clippy::too_many_arguments)]
    fn resource_item(
        &self,
        t: &TenantId,
        kind: Kind,
        id: &str,
        attrs: &Object,
        claims: &[Claim],
        created: &str,
        version: u64,
    ) -> Result<Item> {
        let mut data = attrs.clone();
        data.remove("id");
        let unique: Vec<&str> = claims.iter().filter(|c| c.unique).map(|c| c.attr.tag()).collect();
        data.insert("meta".into(), json!({ "created": created, "unique": unique }));
        let data = Value::Object(data).to_string();
        if data.len() > self.limits.max_resource_bytes {
            return Err(ScimError::invalid_value(format!(
                "the {} would take {} bytes stored; a resource may take at most {} bytes",
                kind.resource_type().name,
                data.len(),
                self.limits.max_resource_bytes
            ))
            .into());
        }
        Ok(Item {
            pk: model::resources_pk(t.as_str(), kind),
            sk: id.to_string(),
            version,
            modified: Some(self.now()),
            data,
            ..Item::default()
        })
    }

    fn claim_item(t: &TenantId, claim: &Claim, id: &str) -> Item {
        let key = claim.key(t.as_str(), id);
        Item { pk: key.pk, sk: key.sk, version: 1, data: json!({ "id": id }).to_string(), ..Item::default() }
    }

    /// Check a resource against the tenant's policy and the index limits;
    /// `claims` are the index entries its attributes call for.
    fn check_policy(
        &self,
        tenant: &Tenant,
        kind: Kind,
        attrs: &Object,
        claims: &[Claim],
        before: Option<&Object>,
    ) -> Result<()> {
        if let Some(c) = claims.iter().find(|c| c.value.len() > self.limits.max_indexed_value) {
            return Err(ScimError::invalid_value(format!(
                "'{}' is {} bytes long; at most {} are accepted",
                c.attr.scim_name(),
                c.value.len(),
                self.limits.max_indexed_value
            ))
            .into());
        }
        if claims.iter().filter(|c| c.attr == IndexAttr::UserWorkEmail).count() > MAX_WORK_EMAILS {
            return Err(ScimError::invalid_value(format!(
                "a user may have at most {MAX_WORK_EMAILS} emails of type \"work\""
            ))
            .into());
        }
        if kind != Kind::User {
            return Ok(());
        }
        let user_name = text(attrs, "userName").unwrap_or_default();
        if tenant.settings.user_name_must_be_email && !is_email(user_name) {
            return Err(ScimError::invalid_value(format!(
                "userName must be an email address in this tenant; '{user_name}' is not"
            ))
            .into());
        }
        if let Some(before) = before {
            let old = text(before, "userName").unwrap_or_default();
            if !tenant.settings.user_name_mutable && old.to_lowercase() != user_name.to_lowercase() {
                return Err(ScimError::mutability(format!(
                    "userName cannot change in this tenant ('{old}' to '{user_name}'); create a new user instead"
                ))
                .into());
            }
        }
        Ok(())
    }

    /// Run a transaction, retrying the conflicts DynamoDB reports when
    /// concurrent transactions touch one item (the counter shards).
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut attempt = 0u32;
        loop {
            match self.table.transact(writes.clone()).await {
                Err(StoreError::Conflict) if attempt < 8 => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Map a failed claim in a transaction to a uniqueness error.
    fn claim_conflict(claims: &[&Claim], first_claim_write: usize, e: StoreError) -> Error {
        match e {
            StoreError::ConditionFailed { index: Some(i) } if i >= first_claim_write => {
                match claims.get(i - first_claim_write) {
                    Some(c) => ScimError::uniqueness(format!(
                        "{} '{}' is already in use in this tenant",
                        c.attr.scim_name(),
                        c.value
                    ))
                    .into(),
                    None => ScimError::uniqueness("a unique attribute is already in use in this tenant").into(),
                }
            }
            StoreError::ConditionFailed { index: None } => {
                ScimError::uniqueness("a unique attribute is already in use in this tenant").into()
            }
            other => other.into(),
        }
    }

    /// Create a user or group from validated, canonical attributes. For a
    /// group, `members` are checked to exist before anything is written.
    pub async fn create(&self, tenant: &Tenant, kind: Kind, attrs: Object, members: &[MemberRef]) -> Result<Stored> {
        let claims = claims(kind, &attrs, &tenant.settings);
        self.check_policy(tenant, kind, &attrs, &claims, None)?;
        // The answer to a create carries the whole group: no more members
        // than one representation holds (add more with PATCH).
        if members.len() > self.limits.max_inline_members {
            return Err(ScimError::too_many(format!(
                "a group is created with at most {} members; add the other {} with PATCH",
                self.limits.max_inline_members,
                members.len() - self.limits.max_inline_members
            ))
            .into());
        }
        let t = &tenant.id;
        let id = uuid::Uuid::new_v4().to_string();
        let resolved = self.resolve_members(t, &id, members).await?;
        let now = self.now();
        let item = self.resource_item(t, kind, &id, &attrs, &claims, &now, 1)?;
        let stored = self.stored(kind, &id, &item)?;
        let mut writes = vec![Write::Put { item, cond: Cond::NotExists }];
        for c in &claims {
            let cond = if c.unique { Cond::NotExists } else { Cond::Always };
            writes.push(Write::Put { item: Self::claim_item(t, c, &id), cond });
        }
        writes.push(Write::Add { key: model::counter(t.as_str(), kind, model::shard_of(&id)), delta: 1 });
        self.transact(writes).await.map_err(|e| Self::claim_conflict(&claims.iter().collect::<Vec<_>>(), 1, e))?;
        if resolved.is_empty() {
            return Ok(stored);
        }
        self.write_members(t, &id, &resolved, &BTreeSet::new()).await?;
        self.get(t, kind, &id).await
    }

    /// Replace a resource (PUT). For a group, `members` replaces the
    /// membership when given.
    pub async fn replace(
        &self,
        tenant: &Tenant,
        kind: Kind,
        id: &str,
        attrs: Object,
        members: Option<Vec<MemberRef>>,
        if_match: Option<&str>,
    ) -> Result<Stored> {
        let rt = kind.resource_type();
        let changes = members.map(|add| MemberChanges { clear: true, add, remove: Vec::new() }).unwrap_or_default();
        self.update(tenant, kind, id, if_match, |current| {
            scim_protocol::resource::check_replace(rt, current, &attrs)?;
            Ok((attrs.clone(), changes.clone()))
        })
        .await
    }

    /// Apply a PATCH.
    pub async fn patch(
        &self,
        tenant: &Tenant,
        kind: Kind,
        id: &str,
        request: &PatchRequest,
        if_match: Option<&str>,
    ) -> Result<Stored> {
        let rt = kind.resource_type();
        self.update(tenant, kind, id, if_match, |current| {
            let out = apply_patch(rt, current, request)?;
            Ok((out.resource, out.members))
        })
        .await
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
            return Err(ScimError::precondition_failed(format!(
                "If-Match {expected} does not match the current version {}",
                etag::etag(item.version)
            ))
            .into());
        }
        Ok(item)
    }

    /// The read-modify-write shared by PUT and PATCH: conditioned on the
    /// version read, retried when another writer won, unless the client
    /// asked for a specific version with `If-Match`.
    async fn update(
        &self,
        tenant: &Tenant,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        change: impl Fn(&Object) -> Result<(Object, MemberChanges)>,
    ) -> Result<Stored> {
        let t = &tenant.id;
        let key = model::resource(t.as_str(), kind, id);
        for attempt in 0..UPDATE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let item = self.read_for_write(&key, kind, id, if_match).await?;
            let current = self.stored(kind, id, &item)?;
            let mut before = current.resource.clone();
            let created = before.remove("meta").and_then(|m| m.get("created").cloned());
            before.remove("id");
            let (after, member_changes) = change(&before)?;
            let new_claims = claims(kind, &after, &tenant.settings);
            self.check_policy(tenant, kind, &after, &new_claims, Some(&before))?;
            let resolved = self.resolve_members(t, id, &member_changes.add).await?;
            let old_claims = stored_claims(kind, &current, &tenant.settings);
            let gone: Vec<&Claim> = old_claims.iter().filter(|o| !new_claims.iter().any(|n| n.same_entry(o))).collect();
            let added: Vec<&Claim> =
                new_claims.iter().filter(|n| !old_claims.iter().any(|o| o.same_entry(n))).collect();
            // Index entries are rewritten with the attributes, and also when
            // only they are stale: written under another uniqueness setting,
            // or before the item recorded them (or had a work-email index).
            let rewrite = after != before || !gone.is_empty() || !added.is_empty() || current.unique_entries.is_none();
            if rewrite {
                let created = created.as_ref().and_then(Value::as_str).unwrap_or_default();
                let next = self.resource_item(t, kind, id, &after, &new_claims, created, item.version + 1)?;
                let mut writes = vec![Write::Put { item: next, cond: Cond::VersionIs(item.version) }];
                writes.extend(gone.iter().map(|c| Write::Delete { key: c.key(t.as_str(), id), cond: Cond::Always }));
                let first_added = writes.len();
                for c in &added {
                    let cond = if c.unique { Cond::NotExists } else { Cond::Always };
                    writes.push(Write::Put { item: Self::claim_item(t, c, id), cond });
                }
                match self.transact(writes).await {
                    Ok(()) => {}
                    Err(StoreError::ConditionFailed { index: Some(0) }) if if_match.is_none() => continue,
                    Err(StoreError::ConditionFailed { index: Some(0) }) => {
                        return Err(ScimError::precondition_failed("the resource changed; read it again").into());
                    }
                    Err(e) => return Err(Self::claim_conflict(&added, first_added, e)),
                }
            }
            if !member_changes.is_empty() {
                self.apply_member_changes(t, id, &member_changes, resolved).await?;
            }
            let deactivated =
                before.get("active") != Some(&Value::Bool(false)) && after.get("active") == Some(&Value::Bool(false));
            if kind == Kind::User && deactivated && tenant.settings.deactivation == Deactivation::RemoveFromGroups {
                self.remove_from_all_groups(t, id).await?;
            }
            if !rewrite && member_changes.is_empty() {
                return Ok(current);
            }
            return self.get(t, kind, id).await;
        }
        Err(too_busy("update"))
    }

    /// Bring every user's and group's index entries in line with its
    /// attributes and the tenant's current settings: after an upgrade that
    /// adds an index (the work email), or after a uniqueness setting
    /// changed. Idempotent; resources already in line are read, not
    /// written. Costs one partition query per 1,000 resources and, per
    /// resource rewritten, the reads and one transaction of an update.
    pub async fn reindex(&self, tenant: &Tenant) -> Result<Reindexed> {
        let mut report = Reindexed::default();
        for kind in [Kind::User, Kind::Group] {
            let mut after = None;
            loop {
                let page = self.table.query(&self.partition_query(&tenant.id, kind, 1000, after)).await?;
                for item in &page.items {
                    report.checked += 1;
                    let same = |current: &Object| Ok((current.clone(), MemberChanges::default()));
                    match self.update(tenant, kind, &item.sk, None, same).await {
                        Ok(s) if s.version != item.version => report.rewritten += 1,
                        Ok(_) => {}
                        Err(Error::Scim(e)) if e.status < 500 => report.refused.push((item.sk.clone(), e.detail)),
                        Err(e) => return Err(e),
                    }
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        Ok(report)
    }

    /// Delete a resource and everything that refers to it.
    pub async fn delete(&self, tenant: &Tenant, kind: Kind, id: &str, if_match: Option<&str>) -> Result<()> {
        let t = &tenant.id;
        let key = model::resource(t.as_str(), kind, id);
        for attempt in 0..UPDATE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let item = match self.read_for_write(&key, kind, id, if_match).await {
                Err(Error::Scim(e)) if e.status == 404 => {
                    // A delete that failed after removing the resource left
                    // its memberships: the identity provider's retry ends
                    // here. Unless the id is a resource of the other kind
                    // (a user's id sent to /Groups): those are its own.
                    let other = if kind == Kind::User { Kind::Group } else { Kind::User };
                    if model::is_possible_id(id)
                        && self.table.get(&model::resource(t.as_str(), other, id)).await?.is_none()
                    {
                        self.remove_memberships(t, kind, id).await?;
                    }
                    return Err(Error::Scim(e));
                }
                read => read?,
            };
            let current = self.stored(kind, id, &item)?;
            let mut writes = vec![Write::Delete { key: key.clone(), cond: Cond::VersionIs(item.version) }];
            for c in stored_claims(kind, &current, &tenant.settings) {
                writes.push(Write::Delete { key: c.key(t.as_str(), id), cond: Cond::Always });
            }
            writes.push(Write::Add { key: model::counter(t.as_str(), kind, model::shard_of(id)), delta: -1 });
            match self.transact(writes).await {
                Ok(()) => {}
                Err(StoreError::ConditionFailed { index: Some(0) }) if if_match.is_none() => continue,
                Err(StoreError::ConditionFailed { .. }) => {
                    return Err(ScimError::precondition_failed("the resource changed; read it again").into());
                }
                Err(e) => return Err(e.into()),
            }
            // Memberships go after the resource, so that a member add racing
            // this delete either is seen here or sees the resource gone (see
            // `write_members`).
            self.remove_memberships(t, kind, id).await?;
            return Ok(());
        }
        Err(too_busy("delete"))
    }

    // -- membership ---------------------------------------------------------

    /// Remove every membership of a resource: the groups it is in and, for
    /// a group, its members. Idempotent.
    async fn remove_memberships(&self, t: &TenantId, kind: Kind, id: &str) -> Result<()> {
        self.remove_from_all_groups(t, id).await?;
        if kind == Kind::Group {
            self.clear_members(t, id).await?;
        }
        Ok(())
    }

    /// Check that every member exists in the tenant, as a user or a group,
    /// before anything is written.
    async fn resolve_members(&self, t: &TenantId, group: &str, refs: &[MemberRef]) -> Result<Vec<Member>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        if refs.iter().any(|m| m.value == group) {
            return Err(ScimError::invalid_value("a group cannot be a member of itself").into());
        }
        let ids: Vec<String> = refs.iter().map(|m| m.value.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let mut found: BTreeMap<String, Kind> = BTreeMap::new();
        for kind in [Kind::User, Kind::Group] {
            let missing: Vec<Key> = ids
                .iter()
                .filter(|id| !found.contains_key(*id) && model::is_possible_id(id))
                .map(|id| model::resource(t.as_str(), kind, id))
                .collect();
            found.extend(self.batch_get(&missing).await?.into_iter().map(|item| (item.sk, kind)));
        }
        let unknown: Vec<&String> = ids.iter().filter(|id| !found.contains_key(*id)).collect();
        if !unknown.is_empty() {
            // Name the first few (ids that cannot exist, by their length only).
            let named: Vec<String> = unknown
                .iter()
                .take(10)
                .map(|id| if model::is_possible_id(id) { format!("'{id}'") } else { format!("<{} bytes>", id.len()) })
                .collect();
            let more = if unknown.len() > named.len() {
                format!(" and {} more", unknown.len() - named.len())
            } else {
                String::new()
            };
            return Err(ScimError::invalid_value(format!(
                "{} unknown member(s): {}{more}; every member must be a user or group of this tenant",
                unknown.len(),
                named.join(", ")
            ))
            .into());
        }
        Ok(found.into_iter().map(|(id, kind)| Member { id, kind }).collect())
    }

    fn member_writes(t: &TenantId, group: &str, add: &[Member], remove: &BTreeSet<String>) -> Vec<Write> {
        let mut writes = Vec::with_capacity(2 * (add.len() + remove.len()));
        for m in add {
            let kind = match m.kind {
                Kind::User => "User",
                Kind::Group => "Group",
            };
            let data = json!({ "type": kind }).to_string();
            let k = model::member(t.as_str(), group, &m.id);
            writes.push(Write::Put {
                item: Item { pk: k.pk, sk: k.sk, version: 1, data: data.clone(), ..Item::default() },
                cond: Cond::Always,
            });
            let r = model::member_of(t.as_str(), &m.id, group);
            writes.push(Write::Put {
                item: Item { pk: r.pk, sk: r.sk, version: 1, data, ..Item::default() },
                cond: Cond::Always,
            });
        }
        for id in remove {
            writes.push(Write::Delete { key: model::member(t.as_str(), group, id), cond: Cond::Always });
            writes.push(Write::Delete { key: model::member_of(t.as_str(), id, group), cond: Cond::Always });
        }
        writes
    }

    /// Write member adds and removes (each idempotent on its own) in
    /// batches, then bump the group's version once.
    ///
    /// A member or the group may be deleted while this runs. A delete
    /// removes the resource first and its memberships after, so entries
    /// written before that cleanup reads them are removed by it; entries
    /// written after are caught here, by checking the members and the group
    /// again once the entries are in place, and taken back. Either way no
    /// membership outlives its member or its group.
    async fn write_members(&self, t: &TenantId, group: &str, add: &[Member], remove: &BTreeSet<String>) -> Result<()> {
        self.batch_write(Self::member_writes(t, group, add, remove)).await?;
        let present = self.present(t, add).await?;
        let vanished: BTreeSet<String> =
            add.iter().filter(|m| !present.contains(&m.id)).map(|m| m.id.clone()).collect();
        if !vanished.is_empty() {
            self.batch_write(Self::member_writes(t, group, &[], &vanished)).await?;
        }
        let touch = Write::Touch { key: model::resource(t.as_str(), Kind::Group, group), modified: self.now() };
        match self.table.write(touch).await {
            Err(StoreError::ConditionFailed { .. }) => {
                self.batch_write(Self::member_writes(t, group, &[], &present)).await?;
                Err(not_found(Kind::Group, group))
            }
            other => other.map_err(Error::from),
        }
    }

    /// The ids of `members` that exist now.
    async fn present(&self, t: &TenantId, members: &[Member]) -> Result<BTreeSet<String>> {
        let keys: Vec<Key> = members.iter().map(|m| model::resource(t.as_str(), m.kind, &m.id)).collect();
        Ok(self.batch_get(&keys).await?.into_iter().map(|item| item.sk).collect())
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

    async fn apply_member_changes(
        &self,
        t: &TenantId,
        group: &str,
        changes: &MemberChanges,
        resolved: Vec<Member>,
    ) -> Result<()> {
        let mut add = resolved;
        // An id that cannot exist is no member: removing it is a no-op.
        let mut remove: BTreeSet<String> =
            changes.remove.iter().filter(|id| model::is_possible_id(id)).cloned().collect();
        if changes.clear {
            // Replacing the whole membership reads it: O(group size).
            let keep: BTreeSet<String> = add.iter().map(|m| m.id.clone()).collect();
            let current: BTreeSet<String> = self.all_members(t, group).await?.into_iter().map(|m| m.id).collect();
            remove.extend(current.iter().filter(|id| !keep.contains(*id)).cloned());
            add.retain(|m| !current.contains(&m.id));
        }
        self.write_members(t, group, &add, &remove).await
    }

    /// One page of a group's members, in id order.
    pub async fn members(
        &self,
        t: &TenantId,
        group: &str,
        after: Option<PageKey>,
        limit: usize,
    ) -> Result<(Vec<Member>, Option<PageKey>)> {
        let query = Query {
            index: crate::store::Index::Table,
            pk: model::members_pk(t.as_str(), group),
            sk: SortKey::All,
            limit,
            start_after: after,
        };
        let page = self.table.query(&query).await?;
        let members = page
            .items
            .iter()
            .map(|i| {
                let kind = serde_json::from_str::<Value>(&i.data)
                    .ok()
                    .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string));
                Member {
                    id: i.sk.clone(),
                    kind: if kind.as_deref() == Some("Group") { Kind::Group } else { Kind::User },
                }
            })
            .collect();
        Ok((members, page.next))
    }

    async fn all_members(&self, t: &TenantId, group: &str) -> Result<Vec<Member>> {
        self.members_up_to(t, group, usize::MAX).await.map(Option::unwrap_or_default)
    }

    /// A group's members for its representation: all of them, or `None`
    /// when it has more than [`Limits::max_inline_members`], which one
    /// response cannot carry. Reads at most that many and one more.
    pub async fn inline_members(&self, t: &TenantId, group: &str) -> Result<Option<Vec<Member>>> {
        self.members_up_to(t, group, self.limits.max_inline_members).await
    }

    /// Up to `cap` members, or `None` past it.
    async fn members_up_to(&self, t: &TenantId, group: &str, cap: usize) -> Result<Option<Vec<Member>>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self.members(t, group, after, 1000).await?;
            out.extend(page);
            if out.len() > cap {
                return Ok(None);
            }
            match next {
                Some(n) => after = Some(n),
                None => return Ok(Some(out)),
            }
        }
    }

    async fn clear_members(&self, t: &TenantId, group: &str) -> Result<()> {
        let mut after = None;
        loop {
            let (page, next) = self.members(t, group, after, 1000).await?;
            let remove: BTreeSet<String> = page.into_iter().map(|m| m.id).collect();
            self.batch_write(Self::member_writes(t, group, &[], &remove)).await?;
            match next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// The ids of the groups `member` belongs to, from the reverse index.
    pub async fn group_ids_of(&self, t: &TenantId, member: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if !model::is_possible_id(member) {
            return Ok(out);
        }
        let mut query = Query::table(model::member_of_pk(t.as_str(), member), SortKey::All, 1000);
        loop {
            let page = self.table.query(&query).await?;
            out.extend(page.items.into_iter().map(|i| i.sk));
            match page.next {
                Some(n) => query.start_after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// The groups a user (or group) belongs to, with display names: the
    /// `groups` attribute of a user.
    pub async fn groups_of(&self, t: &TenantId, member: &str) -> Result<Vec<GroupRef>> {
        let ids = self.group_ids_of(t, member).await?;
        let mut groups: Vec<GroupRef> = self
            .get_many(t, Kind::Group, &ids)
            .await?
            .into_iter()
            .map(|g| GroupRef {
                display: g.resource.get("displayName").and_then(Value::as_str).map(str::to_string),
                id: g.id,
            })
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(groups)
    }

    /// Remove a user (or group) from every group it belongs to; returns the
    /// groups it left. Cost: O(number of its groups).
    pub async fn remove_from_all_groups(&self, t: &TenantId, member: &str) -> Result<Vec<String>> {
        let groups = self.group_ids_of(t, member).await?;
        let one: BTreeSet<String> = std::iter::once(member.to_string()).collect();
        for g in &groups {
            match self.write_members(t, g, &[], &one).await {
                // The group itself is gone: its entries were still removed.
                Ok(()) | Err(Error::Scim(ScimError { status: 404, .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(groups)
    }

    // -- search -------------------------------------------------------------

    /// How many resources of a kind a tenant has (sum of counter shards).
    pub async fn count(&self, t: &TenantId, kind: Kind) -> Result<u64> {
        let keys: Vec<Key> = (0..model::COUNTER_SHARDS).map(|s| model::counter(t.as_str(), kind, s)).collect();
        let total: i64 = self.table.batch_get(&keys).await?.iter().map(|i| i.count).sum();
        Ok(total.max(0).unsigned_abs())
    }

    /// Resources matching an indexed equality, from the index.
    async fn lookup(&self, t: &TenantId, kind: Kind, eq: &IndexedEq) -> Result<Vec<Stored>> {
        let attr = match (kind, eq.attr) {
            (_, IndexedAttr::Id) => {
                return match self.get(t, kind, &eq.value).await {
                    Ok(s) => Ok(vec![s]),
                    Err(Error::Scim(ScimError { status: 404, .. })) => Ok(Vec::new()),
                    Err(e) => Err(e),
                };
            }
            (Kind::Group, IndexedAttr::MemberValue) => {
                let ids = self.group_ids_of(t, &eq.value).await?;
                return self.get_many(t, kind, &ids).await;
            }
            (Kind::User, IndexedAttr::UserName) => IndexAttr::UserName,
            (Kind::User, IndexedAttr::WorkEmail) => IndexAttr::UserWorkEmail,
            (Kind::User, IndexedAttr::ExternalId) => IndexAttr::UserExternalId,
            (Kind::Group, IndexedAttr::ExternalId) => IndexAttr::GroupExternalId,
            (Kind::Group, IndexedAttr::DisplayName) => IndexAttr::GroupName,
            _ => return Ok(Vec::new()),
        };
        if eq.value.len() > self.limits.max_indexed_value {
            return Ok(Vec::new());
        }
        let mut query = Query::table(model::index_pk(t.as_str(), attr, &eq.value), SortKey::All, 1000);
        let mut ids = Vec::new();
        loop {
            let page = self.table.query(&query).await?;
            ids.extend(page.items.iter().filter_map(id_of_entry));
            if ids.len() >= self.limits.scan_budget {
                return Err(ScimError::too_many("the filter matches more resources than one request reads").into());
            }
            match page.next {
                Some(n) => query.start_after = Some(n),
                None => break,
            }
        }
        self.get_many(t, kind, &ids).await
    }

    /// List or filter resources, with index or cursor paging.
    pub async fn search(
        &self,
        t: &TenantId,
        kind: Kind,
        filter: Option<&Filter>,
        paging: &Paging,
    ) -> Result<SearchPage> {
        let rt = kind.resource_type();
        if let Some(f) = filter {
            f.validate(rt)?;
        }
        let page_size = paging.page_size(self.limits.default_page_size, self.limits.max_page_size);
        let page_size = usize::try_from(page_size).unwrap_or(usize::MAX);
        if let Some(eq) = filter.and_then(|f| f.indexed_equality(rt)) {
            let mut found = self.lookup(t, kind, &eq).await?;
            if let Some(f) = filter {
                // Group members are not in the group item: a group found by
                // membership has that member for the rest of the filter.
                let with_member = |s: &Stored| {
                    let mut r = s.resource.clone();
                    if eq.attr == IndexedAttr::MemberValue {
                        r.insert("members".into(), json!([{ "value": eq.value }]));
                    }
                    f.matches(rt, &r)
                };
                found.retain(with_member);
            }
            found.sort_by(|a, b| a.id.cmp(&b.id));
            return self.page_of(t, kind, filter, found, paging, page_size);
        }
        match paging {
            Paging::Index { start_index, .. } => match filter {
                None => self.list_by_index(t, kind, *start_index, page_size).await,
                Some(f) => {
                    let found = self.scan_all(t, kind, f).await?;
                    self.page_of(t, kind, filter, found, paging, page_size)
                }
            },
            Paging::Cursor { cursor, .. } => self.scan_cursor(t, kind, filter, cursor.as_deref(), page_size).await,
        }
    }

    fn cursor_scope(t: &TenantId, kind: Kind, filter: Option<&Filter>) -> String {
        format!("{t}|{}|{}", kind.as_str(), digest(&filter.map(ToString::to_string).unwrap_or_default()))
    }

    /// Page through an in-memory result (indexed lookups, bounded scans).
    fn page_of(
        &self,
        t: &TenantId,
        kind: Kind,
        filter: Option<&Filter>,
        found: Vec<Stored>,
        paging: &Paging,
        page_size: usize,
    ) -> Result<SearchPage> {
        let total = found.len() as u64;
        let (offset, start_index) = match paging {
            Paging::Index { start_index, .. } => {
                (usize::try_from(start_index - 1).unwrap_or(usize::MAX), Some(*start_index))
            }
            Paging::Cursor { cursor: None, .. } => (0, None),
            Paging::Cursor { cursor: Some(c), .. } => {
                let scope = Self::cursor_scope(t, kind, filter);
                let state = cursor::decode(&self.cursor_key, c, &scope, self.clock.now().unix_timestamp())?;
                (usize::try_from(state.seen).unwrap_or(usize::MAX), None)
            }
        };
        let end = offset.saturating_add(page_size).min(found.len());
        let resources: Vec<Stored> = found.into_iter().skip(offset).take(page_size).collect();
        let next_cursor = (start_index.is_none() && (end as u64) < total).then(|| {
            cursor::encode(
                &self.cursor_key,
                &CursorState {
                    scope: Self::cursor_scope(t, kind, filter),
                    after: None,
                    seen: end as u64,
                    exp: self.clock.now().unix_timestamp() + self.limits.cursor_ttl_secs,
                },
            )
        });
        Ok(SearchPage { total, start_index, resources, next_cursor })
    }

    fn partition_query(&self, t: &TenantId, kind: Kind, limit: usize, after: Option<PageKey>) -> Query {
        Query {
            index: crate::store::Index::Table,
            pk: model::resources_pk(t.as_str(), kind),
            sk: SortKey::All,
            limit,
            start_after: after,
        }
    }

    /// Unfiltered index paging: exact total from the counters, and a
    /// bookmark left at the end of each page so that the next page starts
    /// with a key lookup instead of re-reading everything before it.
    async fn list_by_index(&self, t: &TenantId, kind: Kind, start_index: u64, page_size: usize) -> Result<SearchPage> {
        let total = self.count(t, kind).await?;
        let offset = start_index - 1;
        let now = self.clock.now().unix_timestamp();
        let mut after: Option<PageKey> = None;
        if offset > 0 && offset < total {
            let mark = self.table.get(&model::bookmark(t.as_str(), kind, &offset.to_string())).await?;
            after = mark
                .filter(|m| m.expires_at.is_none_or(|e| e > now))
                .and_then(|m| serde_json::from_str::<PageKey>(&m.data).ok());
            if after.is_none() {
                after = self.skip(t, kind, offset).await?;
            }
        }
        let mut resources = Vec::new();
        if offset < total && page_size > 0 {
            let page = self.table.query(&self.partition_query(t, kind, page_size, after)).await?;
            for item in &page.items {
                resources.push(self.stored(kind, &item.sk, item)?);
            }
            if let (Some(last), true) = (page.items.last(), offset + (resources.len() as u64) < total) {
                let next_offset = offset + resources.len() as u64;
                let key = model::bookmark(t.as_str(), kind, &next_offset.to_string());
                let mark = PageKey { key: last.key(), gsi1: None };
                let item = Item {
                    pk: key.pk,
                    sk: key.sk,
                    version: 1,
                    expires_at: Some(now + self.limits.cursor_ttl_secs),
                    data: serde_json::to_string(&mark).unwrap_or_default(),
                    ..Item::default()
                };
                self.table.write(Write::Put { item, cond: Cond::Always }).await?;
            }
        }
        Ok(SearchPage { total, start_index: Some(start_index), resources, next_cursor: None })
    }

    /// Read past `offset` items when no bookmark says where they end.
    async fn skip(&self, t: &TenantId, kind: Kind, offset: u64) -> Result<Option<PageKey>> {
        if offset > self.limits.scan_budget as u64 {
            return Err(ScimError::too_many(format!(
                "startIndex {} is further than one request reads ({}) without the page before it; \
                 page through the list in order, or use cursor paging",
                offset + 1,
                self.limits.scan_budget
            ))
            .into());
        }
        let mut left = usize::try_from(offset).unwrap_or(usize::MAX);
        let mut after = None;
        while left > 0 {
            let page = self.table.query(&self.partition_query(t, kind, left.min(1000), after.clone())).await?;
            left -= page.items.len().min(left);
            match (page.items.last(), page.next) {
                (Some(last), _) if left == 0 => return Ok(Some(PageKey { key: last.key(), gsi1: None })),
                (_, Some(next)) => after = Some(next),
                _ => return Ok(None),
            }
        }
        Ok(after)
    }

    /// Evaluate a non-indexed filter over a whole partition, within the scan
    /// budget: beyond it the filter needs an indexed attribute or cursors.
    async fn scan_all(&self, t: &TenantId, kind: Kind, f: &Filter) -> Result<Vec<Stored>> {
        let rt = kind.resource_type();
        let mut out = Vec::new();
        let mut read = 0usize;
        let mut after = None;
        loop {
            // One item past the budget tells "more than the budget" apart
            // from "exactly the budget".
            let limit = (self.limits.scan_budget + 1 - read).min(1000);
            let page = self.table.query(&self.partition_query(t, kind, limit, after)).await?;
            read += page.items.len();
            for item in &page.items {
                let s = self.stored(kind, &item.sk, item)?;
                if f.matches(rt, &s.resource) {
                    out.push(s);
                }
            }
            match page.next {
                _ if read > self.limits.scan_budget => {
                    return Err(ScimError::too_many(format!(
                        "this filter is evaluated by reading every {}, and there are more than {}; \
                         filter on an indexed attribute (id, externalId, userName, displayName) or use cursor paging",
                        rt.name, self.limits.scan_budget
                    ))
                    .into());
                }
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Cursor paging (RFC 9865) over a partition: each page reads at most
    /// the cursor read budget, so a sparse filter returns short pages with
    /// a cursor rather than long waits.
    async fn scan_cursor(
        &self,
        t: &TenantId,
        kind: Kind,
        filter: Option<&Filter>,
        cursor_text: Option<&str>,
        page_size: usize,
    ) -> Result<SearchPage> {
        let rt = kind.resource_type();
        let scope = Self::cursor_scope(t, kind, filter);
        let now = self.clock.now().unix_timestamp();
        let state = match cursor_text {
            Some(c) => Some(cursor::decode(&self.cursor_key, c, &scope, now)?),
            None => None,
        };
        let (mut after, seen) = state.map(|s| (s.after, s.seen)).unwrap_or((None, 0));
        let mut resources = Vec::new();
        let mut read = 0usize;
        let mut more = true;
        'pages: while resources.len() < page_size && read < self.limits.cursor_read_budget {
            let limit = (self.limits.cursor_read_budget - read).min(1000);
            let page = self.table.query(&self.partition_query(t, kind, limit, after.clone())).await?;
            for item in &page.items {
                read += 1;
                after = Some(PageKey { key: item.key(), gsi1: None });
                let s = self.stored(kind, &item.sk, item)?;
                if filter.is_none_or(|f| f.matches(rt, &s.resource)) {
                    resources.push(s);
                    if resources.len() == page_size {
                        // More may follow unless this was the partition's end.
                        more = page.next.is_some() || !std::ptr::eq(item, page.items.last().unwrap_or(item));
                        break 'pages;
                    }
                }
            }
            if page.next.is_none() {
                more = false;
                break;
            }
        }
        let returned = seen + resources.len() as u64;
        let total = match filter {
            None => self.count(t, kind).await?,
            // Known exactly once the scan reached the end; until then, the
            // matches so far (RFC 9865 lets totalResults be approximate).
            Some(_) => returned,
        };
        let next_cursor = more.then(|| {
            cursor::encode(
                &self.cursor_key,
                &CursorState { scope, after, seen: returned, exp: now + self.limits.cursor_ttl_secs },
            )
        });
        Ok(SearchPage { total, start_index: None, resources, next_cursor })
    }
}

/// A few milliseconds of jitter for retries, without a random-number crate.
/// A random number below `n` (uniform enough for jitter).
fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        return u64::from(nanos) % n.max(1);
    }
    u64::from_le_bytes(bytes) % n.max(1)
}

/// The wait before try `attempt` (1-based) of a contended write or
/// transaction: an
/// exponential step capped at 100 ms, with full jitter so that the writers
/// that collided spread out instead of colliding again.
fn backoff(attempt: u32) -> Duration {
    let step_ms = 2u64.saturating_mul(1u64 << attempt.min(10)).min(100);
    Duration::from_millis(step_ms / 2 + random_below(step_ms / 2 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rule() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b.c.", "a@.b", "a@b@c.d"] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
