//! What happens to users and groups after the directory lets go of them.
//!
//! - A `DELETE` of a user soft-deletes it: the user leaves SCIM's view at
//!   once (404, in no list, filter or group, its userName and externalId
//!   free again) and is kept, *retired*, for the tenant's `retention_days`
//!   with when and why, so that the application can show it as deactivated
//!   and an operator can restore it. The scheduled job purges it after.
//! - A `DELETE` of a group keeps it, unlinked with its members, when the
//!   tenant keeps groups the directory deletes (purged after retention like
//!   a user); otherwise the group and its memberships are deleted.
//! - An operator may unlink any group: it becomes the application's own,
//!   never purged, and a later push of the same name creates a new group.
//!
//! Retired resources live in their own partition, so every SCIM read path
//! sees only live ones without filtering. A delete writes a sweep marker in
//! the same transaction as the resource, and removes it once memberships
//! are cleaned up; a marker left behind (a delete that failed half-way) is
//! finished by the identity provider's retry or by the scheduled job.

use std::collections::BTreeSet;

use scim_protocol::{MemberChanges, Object};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::changes::{Change, ChangeKind};
use super::claims::{self, claims, stored_claims};
use super::kernel::{Planned, Roster};
use super::types::{Member, Stored};
use crate::error::{Error, Result};
use crate::model::{self, Kind};
use crate::store::{Cond, Index, Item, Query, SortKey, StoreError, Write};
use crate::tenant::{Deactivation, Tenant, TenantId};

/// Why a user or group left the directory's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retirement {
    /// The identity provider sent `DELETE`.
    Deleted,
    /// The identity provider deactivated the user, in a tenant whose
    /// deactivation soft-deletes.
    Deactivated,
    /// The Microsoft Graph pull found the user removed from the directory.
    RemovedFromGraph,
    /// An operator unlinked the group from the directory.
    Unlinked,
}

impl Retirement {
    pub fn describe(self) -> &'static str {
        match self {
            Retirement::Deleted => "deleted by the directory",
            Retirement::Deactivated => "deactivated by the directory (soft delete)",
            Retirement::RemovedFromGraph => "removed from Microsoft Entra ID (Graph pull)",
            Retirement::Unlinked => "unlinked by an operator",
        }
    }
}

/// The most groups a soft-deleted user's record remembers for a restore:
/// the record is one item, and an item has a size limit.
pub const MAX_REMEMBERED_GROUPS: usize = 1000;

/// A retired user or group, as the operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Retired {
    pub kind: Kind,
    pub id: String,
    /// Its representation when it was retired (with `id` and `meta`).
    pub resource: Object,
    pub retired_at: String,
    pub why: Retirement,
    /// When the scheduled job purges it; `None` for a group an operator
    /// unlinked, which is the application's own from then on.
    pub purge_after: Option<String>,
    /// A user's groups when it was deleted: a restore puts it back in those
    /// that still exist.
    pub groups: Vec<String>,
    /// The retired item's version, and the live item's when retired.
    item_version: u64,
    live_version: u64,
}

/// The body of a retired item.
#[derive(Serialize, Deserialize)]
struct RetiredRecord {
    resource: Object,
    retired_at: String,
    why: Retirement,
    #[serde(default)]
    purge_after: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    /// The live item's version when it was retired: a restored user
    /// continues from it, so that no ETag is ever reused.
    version: u64,
}

/// The body of a sweep marker: when the delete started, and whether the
/// resource's own members go too (a deleted group) or only the groups it
/// is in (a user, a kept group).
#[derive(Serialize, Deserialize)]
struct SweepRecord {
    at: i64,
    clear_members: bool,
}

/// A retired resource whose purge date has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub kind: Kind,
    pub id: String,
}

/// How long DynamoDB's TTL waits past a purge date before deleting a
/// retired item itself: a backstop for a job that has stopped running. It
/// cannot remove related items, so the job does the purging.
const TTL_BACKSTOP_SECS: i64 = 7 * 86_400;

/// What [`Roster::purge`] did for a tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub users: u64,
    pub groups: u64,
    /// Whether every due resource was purged (false when `stop` said so).
    pub complete: bool,
}

impl Roster {
    /// `DELETE` from the identity provider. A user is soft-deleted; a group
    /// is kept, unlinked, when the tenant keeps groups the directory
    /// deletes, and deleted with its memberships otherwise.
    pub async fn delete(&self, tenant: &Tenant, kind: Kind, id: &str, if_match: Option<&str>) -> Result<()> {
        let keep = kind == Kind::User || tenant.settings.keep_groups_deleted_by_directory;
        self.remove(tenant, kind, id, if_match, keep.then_some(Retirement::Deleted)).await
    }

    /// Take a live resource out of SCIM's view and keep it, retired.
    pub async fn retire(
        &self,
        tenant: &Tenant,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        why: Retirement,
    ) -> Result<()> {
        self.remove(tenant, kind, id, if_match, Some(why)).await
    }

    /// An operator unlinks a group: kept with its members, no longer the
    /// directory's, never purged.
    pub async fn unlink_group(&self, tenant: &Tenant, id: &str) -> Result<()> {
        self.retire(tenant, Kind::Group, id, None, Retirement::Unlinked).await
    }

    /// Remove a live resource, keeping it retired when `retirement` says
    /// why. The resource, its index entries, its counter and a sweep marker
    /// change in one transaction; memberships go after (so that a member
    /// add racing this delete either is seen by the cleanup or sees the
    /// resource gone, see `write_members`), and then the marker.
    async fn remove(
        &self,
        tenant: &Tenant,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        retirement: Option<Retirement>,
    ) -> Result<()> {
        let t = &tenant.id;
        // A kept group keeps its members; a deleted group loses them.
        let clear_members = kind == Kind::Group && retirement.is_none();
        let what = if retirement == Some(Retirement::Unlinked) { ChangeKind::Unlinked } else { ChangeKind::Deleted };
        let what = &what;
        let removed = self
            .versioned_write(t, kind, id, if_match, "delete", |current: Stored| {
                Box::pin(async move {
                    let key = model::resource(t.as_str(), kind, id);
                    let mut writes = vec![Write::Delete { key, cond: Cond::VersionIs(current.version) }];
                    for c in stored_claims(kind, &current, &tenant.settings) {
                        writes.push(Write::Delete { key: c.key(t.as_str(), id), cond: Cond::Always });
                    }
                    writes.push(Write::Add { key: model::counter(t.as_str(), kind, model::shard_of(id)), delta: -1 });
                    if let Some(why) = retirement {
                        let mut groups = if kind == Kind::User { self.group_ids_of(t, id).await? } else { Vec::new() };
                        groups.truncate(MAX_REMEMBERED_GROUPS);
                        let retired = self.retired_item(tenant, &current, why, groups)?;
                        writes.push(Write::Put { item: retired, cond: Cond::Always });
                    }
                    writes.push(Write::Put { item: self.sweep_item(t, kind, id, clear_members)?, cond: Cond::Always });
                    let changes = vec![Change::new(kind, id, what.clone())];
                    Ok(Planned::Write { writes, changes, claims: Vec::new(), first_claim: 0, then: () })
                })
            })
            .await;
        match removed {
            // A delete that failed after removing the resource left its
            // cleanup unfinished: the identity provider's retry of the
            // delete finishes it.
            Err(not_found @ Error::NotFound(_)) => {
                self.finish_sweep(t, kind, id).await?;
                Err(not_found)
            }
            removed => {
                removed?;
                self.finish_cleanup(t, kind, id, clear_members).await
            }
        }
    }

    /// What a user's deactivation leads to, as the tenant's setting says:
    /// nothing more, leaving its groups, or a soft delete (the answer to
    /// the update is the user as written; from then on it is not found,
    /// and its userName is free for a new user).
    pub(super) async fn follow_deactivation(&self, tenant: &Tenant, kind: Kind, id: &str) -> Result<()> {
        match tenant.settings.deactivation {
            Deactivation::Disable => Ok(()),
            Deactivation::RemoveFromGroups => self.remove_from_all_groups(&tenant.id, id).await.map(|_| ()),
            Deactivation::SoftDelete => self.retire(tenant, kind, id, None, Retirement::Deactivated).await,
        }
    }

    fn retired_item(&self, tenant: &Tenant, current: &Stored, why: Retirement, groups: Vec<String>) -> Result<Item> {
        let t = tenant.id.as_str();
        let now = self.clock.now();
        let due = (why != Retirement::Unlinked)
            .then(|| now.unix_timestamp() + i64::from(tenant.settings.retention_days) * 86_400);
        let key = model::retired(t, current.kind, &current.id);
        let record = RetiredRecord {
            resource: current.resource.clone(),
            retired_at: crate::clock::rfc3339(now),
            why,
            purge_after: due.and_then(|d| time::OffsetDateTime::from_unix_timestamp(d).ok()).map(crate::clock::rfc3339),
            groups,
            version: current.version,
        };
        Ok(Item {
            gsi1: due.map(|d| model::purge_entry(t, d, current.kind, &current.id)),
            version: 1,
            modified: Some(record.retired_at.clone()),
            expires_at: due.map(|d| d + TTL_BACKSTOP_SECS),
            data: serde_json::to_string(&record).map_err(|e| Error::corrupt(&key, e))?,
            pk: key.pk,
            sk: key.sk,
            ..Item::default()
        })
    }

    fn sweep_item(&self, t: &TenantId, kind: Kind, id: &str, clear_members: bool) -> Result<Item> {
        let key = model::sweep(t.as_str(), kind, id);
        let record = SweepRecord { at: self.clock.now().unix_timestamp(), clear_members };
        Ok(Item {
            version: 1,
            data: serde_json::to_string(&record).map_err(|e| Error::corrupt(&key, e))?,
            pk: key.pk,
            sk: key.sk,
            ..Item::default()
        })
    }

    /// Remove the memberships of a resource that is gone: the groups it is
    /// in and, with `clear_members`, its own members; for a user,
    /// `clear_members` means it is purged, and other users' references to
    /// it (their manager) go too. Idempotent.
    async fn sweep_memberships(&self, t: &TenantId, kind: Kind, id: &str, clear_members: bool) -> Result<()> {
        self.remove_from_all_groups(t, id).await?;
        match kind {
            Kind::Group if clear_members => self.clear_members(t, id).await?,
            Kind::User if clear_members => self.clear_references_to(t, id).await?,
            _ => {}
        }
        Ok(())
    }

    /// Remove `manager` from every user whose manager is the purged user
    /// `id`, through the write path (a new version each). Found by the
    /// manager index: O(users it managed).
    async fn clear_references_to(&self, t: &TenantId, id: &str) -> Result<()> {
        let Some(tenant) = self.tenant(t).await? else { return Ok(()) };
        let mut pages =
            self.pages(Query::table(model::index_pk(t.as_str(), model::IndexAttr::UserManager, id), SortKey::All, 0));
        let mut reports = Vec::new();
        while let Some(items) = pages.next().await? {
            reports.extend(items.iter().filter_map(claims::id_of_entry));
        }
        for user in reports {
            let without_manager = |current: &Object| {
                let mut next = current.clone();
                if let Some(Value::Object(ext)) = next.get_mut(scim_protocol::urn::ENTERPRISE_USER)
                    && ext.get("manager").and_then(|m| m.get("value")).and_then(Value::as_str) == Some(id)
                {
                    ext.remove("manager");
                    if ext.is_empty() {
                        next.remove(scim_protocol::urn::ENTERPRISE_USER);
                    }
                }
                Ok((next, MemberChanges::default()))
            };
            // Boxed: an update can retire a user, whose cleanup comes back here.
            match Box::pin(self.update_telling(&tenant, Kind::User, &user, None, without_manager)).await {
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The cleanup a sweep marker stands for, then the marker.
    async fn finish_cleanup(&self, t: &TenantId, kind: Kind, id: &str, clear_members: bool) -> Result<()> {
        self.sweep_memberships(t, kind, id, clear_members).await?;
        self.table.write(Write::Delete { key: model::sweep(t.as_str(), kind, id), cond: Cond::Always }).await?;
        Ok(())
    }

    /// Finish the cleanup a sweep marker records, if there is one; says
    /// whether there was.
    async fn finish_sweep(&self, t: &TenantId, kind: Kind, id: &str) -> Result<bool> {
        if !model::is_possible_id(id) {
            return Ok(false);
        }
        let key = model::sweep(t.as_str(), kind, id);
        let Some(item) = self.table.get(&key).await? else { return Ok(false) };
        let record: SweepRecord = serde_json::from_str(&item.data).map_err(|e| Error::corrupt(&key, e))?;
        self.finish_cleanup(t, kind, id, record.clear_members).await?;
        Ok(true)
    }

    /// Finish every cleanup that deletes left unfinished and that started
    /// more than `grace_secs` ago (a younger one may still be running).
    /// Returns how many were finished.
    pub async fn sweep(&self, t: &TenantId, grace_secs: i64) -> Result<u64> {
        let cutoff = self.clock.now().unix_timestamp() - grace_secs;
        let mut finished = 0;
        let mut pages = self.pages(Query::table(model::sweeps_pk(t.as_str()), SortKey::All, 0));
        while let Some(items) = pages.next().await? {
            for item in items {
                let record: SweepRecord =
                    serde_json::from_str(&item.data).map_err(|e| Error::corrupt(&item.key(), e))?;
                let Some((kind, id)) = item.sk.split_once('#') else { continue };
                let Some(kind) = Kind::from_key_name(kind) else { continue };
                // The marker was just read: its cleanup needs no second read.
                if record.at <= cutoff {
                    self.finish_cleanup(t, kind, id, record.clear_members).await?;
                    finished += 1;
                }
            }
        }
        Ok(finished)
    }

    /// A retired resource, if there is one with this id.
    pub async fn retired_one(&self, t: &TenantId, kind: Kind, id: &str) -> Result<Option<Retired>> {
        if !model::is_possible_id(id) {
            return Ok(None);
        }
        match self.table.get(&model::retired(t.as_str(), kind, id)).await? {
            Some(item) => retired_of(kind, &item).map(Some),
            None => Ok(None),
        }
    }

    /// Every retired resource of a kind, in id order.
    pub async fn retired(&self, t: &TenantId, kind: Kind) -> Result<Vec<Retired>> {
        let mut out = Vec::new();
        let mut pages = self.pages(Query::table(model::retired_pk(t.as_str(), kind), SortKey::All, 0));
        while let Some(items) = pages.next().await? {
            for item in &items {
                out.push(retired_of(kind, item)?);
            }
        }
        Ok(out)
    }

    /// Bring a soft-deleted user back as it was: same id, deactivated, in
    /// the groups it was in that still exist. Refused when its userName (or
    /// a unique externalId) has been taken meanwhile.
    pub async fn restore_user(&self, tenant: &Tenant, id: &str) -> Result<Stored> {
        let t = &tenant.id;
        let key = model::retired(t.as_str(), Kind::User, id);
        let item = match model::is_possible_id(id) {
            true => self.table.get(&key).await?,
            false => None,
        };
        let Some(item) = item else { return Err(Error::NotFound(format!("no deleted user '{id}'"))) };
        let retired = retired_of(Kind::User, &item)?;
        let mut attrs = retired.resource.clone();
        let created = attrs.remove("meta").and_then(|m| m.get("created").cloned());
        attrs.remove("id");
        attrs.insert("active".into(), Value::Bool(false));
        let claims = claims(Kind::User, &attrs, &tenant.settings);
        claims::check_limits(&claims, &self.limits)?;
        let created = created.as_ref().and_then(Value::as_str).unwrap_or_default();
        let live = self.resource_item(t, Kind::User, id, &attrs, &claims, created, retired.live_version + 1)?;
        let mut writes = vec![Write::Put { item: live, cond: Cond::NotExists }];
        for c in &claims {
            let cond = if c.unique { Cond::NotExists } else { Cond::Always };
            writes.push(Write::Put { item: c.item(t.as_str(), id), cond });
        }
        writes.push(Write::Add { key: model::counter(t.as_str(), Kind::User, model::shard_of(id)), delta: 1 });
        let retired_write = writes.len();
        writes.push(Write::Delete { key, cond: Cond::VersionIs(item.version) });
        writes.push(Write::Delete { key: model::sweep(t.as_str(), Kind::User, id), cond: Cond::Always });
        match self.commit(t, writes, vec![Change::new(Kind::User, id, ChangeKind::Restored)]).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed { index: Some(i) }) if i == retired_write => {
                return Err(Error::Busy("the deleted user changed while being restored; retry".into()));
            }
            Err(StoreError::ConditionFailed { index: Some(0) }) => {
                return Err(Error::Uniqueness(format!("a live user with id '{id}' exists")));
            }
            Err(e) => {
                return Err(match claims::claim_conflict(&claims.iter().collect::<Vec<_>>(), 1, e) {
                    Error::Uniqueness(why) => Error::Uniqueness(format!(
                        "the user cannot be restored: {why}; rename or delete the user that holds it first"
                    )),
                    other => other,
                });
            }
        }
        let me = [Member { id: id.to_string(), kind: Kind::User }];
        for group in &retired.groups {
            match self.write_members(t, group, &me, &BTreeSet::new()).await {
                // The group itself is gone (or no longer the directory's).
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.get(t, Kind::User, id).await
    }

    /// Delete a kept or unlinked group for good, with its memberships.
    pub async fn delete_retired_group(&self, t: &TenantId, id: &str) -> Result<()> {
        match self.retired_one(t, Kind::Group, id).await? {
            Some(group) => self.purge_one(t, &group).await.map(|_| ()),
            None => Err(Error::NotFound(format!("no kept or unlinked group '{id}'"))),
        }
    }

    /// The retired resources of a tenant whose purge date has come, up to
    /// `limit`, oldest first.
    pub async fn due(&self, t: &TenantId, limit: usize) -> Result<Vec<Due>> {
        let now = self.clock.now().unix_timestamp();
        let upto = format!("{}#~", model::purge_due_prefix(now));
        let query = Query {
            index: Index::Gsi1,
            pk: model::purge_pk(t.as_str()),
            sk: SortKey::Between(model::purge_due_prefix(0), upto),
            limit,
            start_after: None,
        };
        let page = self.table.query(&query).await?;
        Ok(page
            .items
            .iter()
            .filter_map(|item| {
                let sk = &item.gsi1.as_ref()?.sk;
                let mut parts = sk.splitn(3, '#');
                let (_, kind, id) = (parts.next()?, parts.next()?, parts.next()?);
                Some(Due { kind: Kind::from_key_name(kind)?, id: id.to_string() })
            })
            .collect())
    }

    /// Purge what is due in a tenant, one resource at a time, until done or
    /// until `stop` says the time is up. Safe to run twice at once: each
    /// resource is purged, and counted, by one run only.
    pub async fn purge(&self, t: &TenantId, stop: &(dyn Fn() -> bool + Sync)) -> Result<Purged> {
        let mut purged = Purged::default();
        loop {
            let due = self.due(t, 100).await?;
            if due.is_empty() {
                purged.complete = true;
                return Ok(purged);
            }
            let mut progressed = false;
            for d in &due {
                if stop() {
                    return Ok(purged);
                }
                // The index is eventually consistent: the item decides.
                let Some(retired) = self.retired_one(t, d.kind, &d.id).await? else { continue };
                if self.purge_one(t, &retired).await? {
                    progressed = true;
                    match d.kind {
                        Kind::User => purged.users += 1,
                        Kind::Group => purged.groups += 1,
                    }
                }
            }
            if !progressed {
                // What the index still lists is gone already (another run,
                // or the index lagging): the rest waits for the next run.
                purged.complete = true;
                return Ok(purged);
            }
        }
    }

    /// Remove a retired resource and everything that still belongs to it;
    /// false when another purge or a restore got there first. The item goes
    /// first, with a sweep marker, so that a purge cut off half-way is
    /// finished by the sweep and never races a restore.
    async fn purge_one(&self, t: &TenantId, retired: &Retired) -> Result<bool> {
        let (kind, id) = (retired.kind, retired.id.as_str());
        let writes = vec![
            Write::Delete { key: model::retired(t.as_str(), kind, id), cond: Cond::VersionIs(retired.item_version) },
            Write::Put { item: self.sweep_item(t, kind, id, true)?, cond: Cond::Always },
        ];
        match self.commit(t, writes, vec![Change::new(kind, id, ChangeKind::Purged)]).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.finish_cleanup(t, kind, id, true).await?;
        Ok(true)
    }
}

/// A retired item as the operator sees it.
fn retired_of(kind: Kind, item: &Item) -> Result<Retired> {
    let record: RetiredRecord = serde_json::from_str(&item.data).map_err(|e| Error::corrupt(&item.key(), e))?;
    Ok(Retired {
        kind,
        id: item.sk.clone(),
        resource: record.resource,
        retired_at: record.retired_at,
        why: record.why,
        purge_after: record.purge_after,
        groups: record.groups,
        item_version: item.version,
        live_version: record.version,
    })
}
