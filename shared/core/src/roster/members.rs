//! Group membership, stored both ways: a group's members under the group,
//! and each member's groups under the member, so that either side is one
//! query. Member writes are idempotent and batched; a delete racing a
//! member add never leaves a membership behind (see `write_members`).

use std::collections::{BTreeMap, BTreeSet};

use scim_protocol::ScimError;
use scim_protocol::patch::{MemberChanges, MemberRef};
use serde_json::{Value, json};

use super::changes::{Change, ChangeKind};
use super::kernel::{Roster, not_found};
use super::types::{GroupRef, Member, Stored};
use crate::error::{Error, Result};
use crate::model::{self, Kind};
use crate::store::{Cond, Item, Key, MAX_BATCH_GETS, PageKey, Query, SortKey, StoreError, Write};
use crate::tenant::TenantId;

/// The resources whose delete has not finished removing their memberships,
/// read once per response when a group's members are first shown.
#[derive(Debug, Default)]
pub struct UnfinishedDeletes(Option<BTreeSet<(Kind, String)>>);

/// A group as a user's `groups` shows it.
fn group_ref(g: Stored) -> GroupRef {
    GroupRef { display: g.resource.get("displayName").and_then(Value::as_str).map(str::to_string), id: g.id }
}

/// The query for a group's member entries.
fn members_query(t: &TenantId, group: &str) -> Query {
    Query::table(model::members_pk(t.as_str(), group), SortKey::All, 0)
}

/// A member entry as a member: its id, and its kind as the entry records it.
fn member_of_entry(item: &crate::store::Item) -> Member {
    let kind = serde_json::from_str::<Value>(&item.data)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).and_then(Kind::from_name))
        .unwrap_or(Kind::User);
    Member { id: item.sk.clone(), kind }
}

impl Roster {
    /// Check that every member exists in the tenant, as a user or a group,
    /// before anything is written.
    pub(super) async fn resolve_members(&self, t: &TenantId, group: &str, refs: &[MemberRef]) -> Result<Vec<Member>> {
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

    pub(super) fn member_writes(t: &TenantId, group: &str, add: &[Member], remove: &BTreeSet<String>) -> Vec<Write> {
        let mut writes = Vec::with_capacity(2 * (add.len() + remove.len()));
        for m in add {
            let data = json!({ "type": m.kind.name() }).to_string();
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
    pub(super) async fn write_members(
        &self,
        t: &TenantId,
        group: &str,
        add: &[Member],
        remove: &BTreeSet<String>,
    ) -> Result<()> {
        self.commit_batches(t, Self::member_writes(t, group, add, remove), Vec::new()).await?;
        let present = self.present(t, add).await?;
        let vanished: BTreeSet<String> =
            add.iter().filter(|m| !present.contains(&m.id)).map(|m| m.id.clone()).collect();
        if !vanished.is_empty() {
            self.commit_batches(t, Self::member_writes(t, group, &[], &vanished), Vec::new()).await?;
        }
        // The group's new version is the change: reported with it, once
        // the entries stand.
        let member = |id: &str, what: fn(String) -> ChangeKind| Change::new(Kind::Group, group, what(id.to_string()));
        let changes = add
            .iter()
            .filter(|m| present.contains(&m.id))
            .map(|m| member(&m.id, |member| ChangeKind::MemberAdded { member }))
            .chain(remove.iter().map(|id| member(id, |member| ChangeKind::MemberRemoved { member })))
            .collect();
        let touch = Write::Touch { key: model::resource(t.as_str(), Kind::Group, group), modified: self.now() };
        match self.commit(t, vec![touch], changes).await {
            Err(StoreError::ConditionFailed { .. }) => {
                self.commit_batches(t, Self::member_writes(t, group, &[], &present), Vec::new()).await?;
                Err(not_found(Kind::Group, group))
            }
            other => other.map_err(Error::from),
        }
    }

    /// The ids of `members` that exist now.
    pub(super) async fn present(&self, t: &TenantId, members: &[Member]) -> Result<BTreeSet<String>> {
        let keys: Vec<Key> = members.iter().map(|m| model::resource(t.as_str(), m.kind, &m.id)).collect();
        Ok(self.batch_get(&keys).await?.into_iter().map(|item| item.sk).collect())
    }

    pub(super) async fn apply_member_changes(
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
        let mut query = members_query(t, group);
        query.limit = limit;
        query.start_after = after;
        let page = self.table.query(&query).await?;
        Ok((page.items.iter().map(member_of_entry).collect(), page.next))
    }

    pub(super) async fn all_members(&self, t: &TenantId, group: &str) -> Result<Vec<Member>> {
        self.member_entries_up_to(t, group, usize::MAX).await.map(Option::unwrap_or_default)
    }

    /// A group's members for its representation: up to `cap` of them, or
    /// `None` past it. Reads at most `cap` entries and one more. A member
    /// whose delete has not finished removing its memberships (a sweep
    /// marker stands for it) is gone already and is not shown.
    pub async fn members_up_to(&self, t: &TenantId, group: &str, cap: usize) -> Result<Option<Vec<Member>>> {
        self.members_up_to_with(t, group, cap, &mut UnfinishedDeletes::default()).await
    }

    /// [`Self::members_up_to`] for one of many groups of a response: the
    /// unfinished deletes are read once, for the first group with members.
    pub async fn members_up_to_with(
        &self,
        t: &TenantId,
        group: &str,
        cap: usize,
        leaving: &mut UnfinishedDeletes,
    ) -> Result<Option<Vec<Member>>> {
        let Some(mut members) = self.member_entries_up_to(t, group, cap).await? else { return Ok(None) };
        if !members.is_empty() {
            if leaving.0.is_none() {
                leaving.0 = Some(self.unfinished_deletes(t).await?);
            }
            if let Some(gone) = leaving.0.as_ref().filter(|g| !g.is_empty()) {
                members.retain(|m| !gone.contains(&(m.kind, m.id.clone())));
            }
        }
        Ok(Some(members))
    }

    /// Up to `cap` member entries, or `None` past it.
    pub(super) async fn member_entries_up_to(
        &self,
        t: &TenantId,
        group: &str,
        cap: usize,
    ) -> Result<Option<Vec<Member>>> {
        let mut out = Vec::new();
        let mut pages = self.pages(members_query(t, group));
        while let Some(items) = pages.next_at_most(cap.saturating_add(1).saturating_sub(out.len())).await? {
            out.extend(items.iter().map(member_of_entry));
            if out.len() > cap {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    pub(super) async fn clear_members(&self, t: &TenantId, group: &str) -> Result<()> {
        let mut pages = self.pages(members_query(t, group));
        while let Some(items) = pages.next().await? {
            let remove: BTreeSet<String> = items.into_iter().map(|i| i.sk).collect();
            // Part of the group's delete, reported with it.
            self.commit_batches(t, Self::member_writes(t, group, &[], &remove), Vec::new()).await?;
        }
        Ok(())
    }

    /// The ids of the groups `member` belongs to, from the reverse index.
    pub async fn group_ids_of(&self, t: &TenantId, member: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if !model::is_possible_id(member) {
            return Ok(out);
        }
        let mut pages = self.pages(Query::table(model::member_of_pk(t.as_str(), member), SortKey::All, 0));
        while let Some(items) = pages.next().await? {
            out.extend(items.into_iter().map(|i| i.sk));
        }
        Ok(out)
    }

    /// The groups a user (or group) belongs to, with display names: the
    /// `groups` attribute of a user. At most `cap` groups, and at most the
    /// read budget's bytes of group items; `None` past either.
    pub async fn groups_up_to(&self, t: &TenantId, member: &str, cap: usize) -> Result<Option<Vec<GroupRef>>> {
        let mut ids = Vec::new();
        if model::is_possible_id(member) {
            let mut pages = self.pages(Query::table(model::member_of_pk(t.as_str(), member), SortKey::All, 0));
            while let Some(items) = pages.next_at_most(cap.saturating_add(1).saturating_sub(ids.len())).await? {
                ids.extend(items.into_iter().map(|i| i.sk));
                if ids.len() > cap {
                    return Ok(None);
                }
            }
        }
        let mut groups = Vec::with_capacity(ids.len());
        let mut bytes = 0usize;
        for chunk in ids.chunks(MAX_BATCH_GETS) {
            let keys: Vec<Key> = chunk.iter().map(|id| model::resource(t.as_str(), Kind::Group, id)).collect();
            for item in self.table.batch_get(&keys).await? {
                bytes += item.data.len();
                if bytes > self.limits.read_budget_bytes {
                    return Ok(None);
                }
                groups.push(group_ref(self.stored(Kind::Group, &item.sk, &item)?));
            }
        }
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Some(groups))
    }

    /// Every group a user (or group) belongs to, with display names, however
    /// many (operator tools and tests; responses use [`Self::groups_up_to`]).
    pub async fn groups_of(&self, t: &TenantId, member: &str) -> Result<Vec<GroupRef>> {
        let ids = self.group_ids_of(t, member).await?;
        let mut groups: Vec<GroupRef> = self.get_many(t, Kind::Group, &ids).await?.into_iter().map(group_ref).collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(groups)
    }

    /// The resources whose delete has not finished removing their
    /// memberships: a sweep marker stands for each (one query, almost
    /// always empty).
    pub(super) async fn unfinished_deletes(&self, t: &TenantId) -> Result<BTreeSet<(Kind, String)>> {
        let mut out = BTreeSet::new();
        let mut pages = self.pages(Query::table(model::sweeps_pk(t.as_str()), SortKey::All, 0));
        while let Some(items) = pages.next().await? {
            out.extend(items.iter().filter_map(|i| {
                let (kind, id) = i.sk.split_once('#')?;
                Some((Kind::from_key_name(kind)?, id.to_string()))
            }));
        }
        Ok(out)
    }

    /// Remove a user (or group) from every group it belongs to; returns the
    /// groups it left. Cost: O(number of its groups).
    pub async fn remove_from_all_groups(&self, t: &TenantId, member: &str) -> Result<Vec<String>> {
        let groups = self.group_ids_of(t, member).await?;
        let one: BTreeSet<String> = std::iter::once(member.to_string()).collect();
        for g in &groups {
            match self.write_members(t, g, &[], &one).await {
                // The group itself is gone: its entries were still removed.
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(groups)
    }
}
