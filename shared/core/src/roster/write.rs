//! Writing users and groups: create, replace, patch and reindex (deletes
//! are in [`super::lifecycle`]).
//! Each write puts the resource, its index entries and its counter shard in
//! one transaction; concurrent writers are serialised by version, retried
//! with backoff, and only then answered 503.

use std::collections::BTreeSet;

use scim_protocol::patch::{MemberChanges, MemberRef};
use scim_protocol::{Object, PatchRequest, ScimError, apply_patch, etag};
use serde_json::{Value, json};

use super::claims::{self, Claim, claims, stored_claims, text};
use super::lifecycle::Retirement;
use super::{Reindexed, Roster, Stored, not_found, resources_query, too_busy};
use crate::error::{Error, Result};
use crate::model::{self, Kind};
use crate::retry;
use crate::store::{Cond, Item, Key, StoreError, Write};
use crate::tenant::{Deactivation, Tenant, TenantId};

/// How many times a read-modify-write is tried when other writers keep
/// getting there first (and the client did not ask for `If-Match`): the
/// server serialises concurrent changes itself, with jittered backoff
/// between tries (about a second in all), and only then answers 503.
pub(super) const UPDATE_ATTEMPTS: u32 = 16;

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

    /// Run a transaction, retrying the conflicts DynamoDB reports when
    /// concurrent transactions touch one item (the counter shards).
    pub(super) async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
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
        self.transact(writes).await.map_err(|e| claims::claim_conflict(&claims.iter().collect::<Vec<_>>(), 1, e))?;
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

    /// Read the item a write will be conditioned on, checking `If-Match`.
    pub(super) async fn read_for_write(&self, key: &Key, kind: Kind, id: &str, if_match: Option<&str>) -> Result<Item> {
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

    /// The read-modify-write shared by PUT and PATCH: conditioned on the
    /// version read, retried when another writer won, unless the client
    /// asked for a specific version with `If-Match`.
    pub(super) async fn update(
        &self,
        tenant: &Tenant,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        change: impl Fn(&Object) -> Result<(Object, MemberChanges)>,
    ) -> Result<Stored> {
        self.update_telling(tenant, kind, id, if_match, change).await.map(|(stored, _)| stored)
    }

    /// [`Roster::update`], also telling whether anything was written (a
    /// change that changes nothing writes nothing).
    pub(super) async fn update_telling(
        &self,
        tenant: &Tenant,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        change: impl Fn(&Object) -> Result<(Object, MemberChanges)>,
    ) -> Result<(Stored, bool)> {
        let t = &tenant.id;
        let key = model::resource(t.as_str(), kind, id);
        for attempt in 0..UPDATE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(retry::backoff(attempt)).await;
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
            let rewrite = after != before
                || !gone.is_empty()
                || !added.is_empty()
                || current.unique_entries.is_none()
                || current.key_form < model::KEY_FORM;
            if rewrite {
                let created = created.as_ref().and_then(Value::as_str).unwrap_or_default();
                let next = self.resource_item(t, kind, id, &after, &new_claims, created, item.version + 1)?;
                let mut writes = vec![Write::Put { item: next, cond: Cond::VersionIs(item.version) }];
                writes.extend(gone.iter().map(|c| Write::Delete { key: c.key(t.as_str(), id), cond: Cond::Always }));
                let first_added = writes.len();
                for c in &added {
                    let cond = if c.unique { Cond::NotExists } else { Cond::Always };
                    writes.push(Write::Put { item: c.item(t.as_str(), id), cond });
                }
                match self.transact(writes).await {
                    Ok(()) => {}
                    Err(StoreError::ConditionFailed { index: Some(0) }) if if_match.is_none() => continue,
                    Err(StoreError::ConditionFailed { index: Some(0) }) => {
                        return Err(Error::PreconditionFailed("the resource changed; read it again".into()));
                    }
                    Err(e) => return Err(claims::claim_conflict(&added, first_added, e)),
                }
            }
            if !member_changes.is_empty() {
                self.apply_member_changes(t, id, &member_changes, resolved).await?;
            }
            let deactivated =
                before.get("active") != Some(&Value::Bool(false)) && after.get("active") == Some(&Value::Bool(false));
            let wrote = rewrite || !member_changes.is_empty();
            let stored = if wrote { self.get(t, kind, id).await? } else { current };
            if kind == Kind::User && deactivated {
                match tenant.settings.deactivation {
                    Deactivation::Disable => {}
                    Deactivation::RemoveFromGroups => {
                        self.remove_from_all_groups(t, id).await?;
                    }
                    // The answer is the user as written; from now on it is
                    // not found, and its userName is free for a new user.
                    Deactivation::SoftDelete => self.retire(tenant, kind, id, None, Retirement::Deactivated).await?,
                }
            }
            return Ok((stored, wrote));
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
            let mut pages = self.pages(resources_query(&tenant.id, kind));
            while let Some(items) = pages.next().await? {
                for item in &items {
                    report.checked += 1;
                    let same = |current: &Object| Ok((current.clone(), MemberChanges::default()));
                    match self.update_telling(tenant, kind, &item.sk, None, same).await {
                        Ok((_, true)) => report.rewritten += 1,
                        Ok((_, false)) => {}
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
