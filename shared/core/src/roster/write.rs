//! Writing users and groups: create, replace, patch and reindex (deletes,
//! and what a deactivation leads to, are in `lifecycle.rs`).
//! Each write puts the resource, its index entries and its counter shard in
//! one transaction, through the kernel's versioned write.

use std::collections::BTreeSet;

use scim_protocol::patch::{MemberChanges, MemberRef};
use scim_protocol::{Object, PatchRequest, ScimError, apply_patch};
use serde_json::{Value, json};

use super::changes::{Change, ChangeKind};
use super::claims::{self, Claim, claims, stored_claims, text};
use super::kernel::{Planned, Roster, resources_query};
use super::types::{Reindexed, Stored};
use crate::error::Result;
use crate::model::{self, Kind};
use crate::store::{Cond, Item, Write};
use crate::tenant::{Tenant, TenantId};

/// What an update did: the resource as it is now, whether anything was
/// written, and whether it deactivated a user.
pub(super) struct Updated {
    pub stored: Stored,
    pub wrote: bool,
    pub deactivated: bool,
}

impl Roster {
    /// The item of a resource, refused when it would exceed
    /// [`Limits::max_resource_bytes`]: checked here, before any write, so
    /// both stores refuse the same resources with the same answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn resource_item(
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
        data.insert("meta".into(), json!({ "created": created, "unique": unique, "keys": model::KEY_FORM }));
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

    /// Check a resource against the index limits and the tenant's policy;
    /// `claims` are the index entries its attributes call for, `before`
    /// the stored attributes when it is an update.
    pub(super) fn check_policy(
        &self,
        tenant: &Tenant,
        kind: Kind,
        attrs: &Object,
        claims: &[Claim],
        before: Option<&Object>,
    ) -> Result<()> {
        claims::check_limits(claims, &self.limits)?;
        if kind == Kind::User {
            let user_name = text(attrs, "userName").unwrap_or_default();
            let old = before.map(|b| text(b, "userName").unwrap_or_default());
            tenant.settings.check_user_name(user_name, old)?;
        }
        Ok(())
    }

    /// Create a user or group from validated, canonical attributes. For a
    /// group, `members` are checked to exist before anything is written.
    pub async fn create(&self, tenant: &Tenant, kind: Kind, attrs: Object, members: &[MemberRef]) -> Result<Stored> {
        self.create_with(tenant, kind, attrs, members, |_| Vec::new()).await
    }

    /// [`Roster::create`], with `extra(id)` written in the same
    /// transaction (a pulled user's link).
    pub(super) async fn create_with(
        &self,
        tenant: &Tenant,
        kind: Kind,
        attrs: Object,
        members: &[MemberRef],
        extra: impl FnOnce(&str) -> Vec<Write>,
    ) -> Result<Stored> {
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
            writes.push(Write::Put { item: c.item(t.as_str(), &id), cond });
        }
        writes.push(Write::Add { key: model::counter(t.as_str(), kind, model::shard_of(&id)), delta: 1 });
        writes.extend(extra(&id));
        let created = vec![Change::new(kind, &id, ChangeKind::Created)];
        self.commit(t, writes, created)
            .await
            .map_err(|e| claims::claim_conflict(&claims.iter().collect::<Vec<_>>(), 1, e))?;
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
            Ok((keep_server_owned(rt, current, attrs.clone()), changes.clone()))
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
            Ok((keep_server_owned(rt, current, out.resource), out.members))
        })
        .await
    }

    /// The read-modify-write shared by PUT and PATCH, with what a
    /// deactivation leads to in the tenant.
    pub(super) async fn update(
        &self,
        tenant: &Tenant,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        change: impl Fn(&Object) -> Result<(Object, MemberChanges)> + Sync,
    ) -> Result<Stored> {
        self.update_telling(tenant, kind, id, if_match, change).await.map(|u| u.stored)
    }

    /// [`Roster::update`], also telling whether anything was written (a
    /// change that changes nothing writes nothing). A user it deactivates
    /// is then dealt with as the tenant's deactivation setting says.
    pub(super) async fn update_telling(
        &self,
        tenant: &Tenant,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        change: impl Fn(&Object) -> Result<(Object, MemberChanges)> + Sync,
    ) -> Result<Updated> {
        let updated = self.apply_update(tenant, kind, id, if_match, change).await?;
        if updated.deactivated {
            self.follow_deactivation(tenant, kind, id).await?;
        }
        Ok(updated)
    }

    /// The update itself: attributes and index entries in one versioned
    /// write, then the member changes.
    async fn apply_update(
        &self,
        tenant: &Tenant,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        change: impl Fn(&Object) -> Result<(Object, MemberChanges)> + Sync,
    ) -> Result<Updated> {
        let (t, change) = (&tenant.id, &change);
        let (current, before, after, member_changes, resolved, rewrite) = self
            .versioned_write(t, kind, id, if_match, "update", |current: Stored| {
                Box::pin(async move {
                    let mut before = current.resource.clone();
                    let created = before.remove("meta").and_then(|m| m.get("created").cloned());
                    before.remove("id");
                    let (after, member_changes) = change(&before)?;
                    let new_claims = claims(kind, &after, &tenant.settings);
                    self.check_policy(tenant, kind, &after, &new_claims, Some(&before))?;
                    let resolved = self.resolve_members(t, id, &member_changes.add).await?;
                    let old_claims = stored_claims(kind, &current, &tenant.settings);
                    let gone: Vec<&Claim> =
                        old_claims.iter().filter(|o| !new_claims.iter().any(|n| n.same_entry(o))).collect();
                    let added: Vec<Claim> =
                        new_claims.iter().filter(|n| !old_claims.iter().any(|o| o.same_entry(n))).cloned().collect();
                    // Index entries are rewritten with the attributes, and also
                    // when only they are stale: written under another uniqueness
                    // setting, or before the item recorded them (or had a
                    // work-email index).
                    let rewrite = after != before
                        || !gone.is_empty()
                        || !added.is_empty()
                        || current.unique_entries.is_none()
                        || current.key_form < model::KEY_FORM;
                    if !rewrite {
                        return Ok(Planned::Keep((current, before, after, member_changes, resolved, false)));
                    }
                    let created = created.as_ref().and_then(Value::as_str).unwrap_or_default();
                    let next = self.resource_item(t, kind, id, &after, &new_claims, created, current.version + 1)?;
                    let mut writes = vec![Write::Put { item: next, cond: Cond::VersionIs(current.version) }];
                    writes
                        .extend(gone.iter().map(|c| Write::Delete { key: c.key(t.as_str(), id), cond: Cond::Always }));
                    let first_claim = writes.len();
                    for c in &added {
                        let cond = if c.unique { Cond::NotExists } else { Cond::Always };
                        writes.push(Write::Put { item: c.item(t.as_str(), id), cond });
                    }
                    let changes = Change::between(kind, id, &before, &after).into_iter().collect();
                    let then = (current, before, after, member_changes, resolved, true);
                    Ok(Planned::Write { writes, changes, claims: added, first_claim, then })
                })
            })
            .await?;
        if !member_changes.is_empty() {
            self.apply_member_changes(t, id, &member_changes, resolved).await?;
        }
        let deactivated = kind == Kind::User
            && before.get("active") != Some(&Value::Bool(false))
            && after.get("active") == Some(&Value::Bool(false));
        let wrote = rewrite || !member_changes.is_empty();
        let stored = if wrote { self.get(t, kind, id).await? } else { current };
        Ok(Updated { stored, wrote, deactivated })
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
            let mut pages = self.pages(resources_query(&tenant.id, kind));
            while let Some(items) = pages.next().await? {
                for item in &items {
                    report.checked += 1;
                    let same = |current: &Object| Ok((current.clone(), MemberChanges::default()));
                    match self.update_telling(tenant, kind, &item.sk, None, same).await {
                        Ok(Updated { wrote: true, .. }) => report.rewritten += 1,
                        Ok(_) => {}
                        Err(e) if !e.is_server_error() => {
                            report.refused.push((item.sk.clone(), ScimError::from(e).detail));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(report)
    }
}

/// A client's PUT or PATCH leaves what the service owns as it is: the
/// read-only attributes of extensions (the directory placement the Graph
/// pull writes), which a client's input never carries.
fn keep_server_owned(rt: &scim_protocol::ResourceType, current: &Object, mut next: Object) -> Object {
    for (ext, _) in &rt.extensions {
        let owned: Vec<&str> = ext.attributes.iter().filter(|a| a.is_read_only()).map(|a| a.name).collect();
        let Some(Value::Object(kept)) = current.get(ext.id) else { continue };
        let kept: Object =
            kept.iter().filter(|(k, _)| owned.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        if kept.is_empty() {
            continue;
        }
        if let Value::Object(into) = next.entry(ext.id.to_string()).or_insert_with(|| Value::Object(Object::new())) {
            into.extend(kept);
        }
    }
    next
}
