//! Users pulled from a directory (Microsoft Graph): each is linked, by the
//! directory's object id, to the user it was pulled into, so that a pull
//! finds its users by key, matches existing users by work email, writes
//! only what changed, and never touches a user it did not pull.

use std::collections::HashMap;

use scim_protocol::Object;
use scim_protocol::filter::{IndexedAttr, IndexedEq};
use serde_json::{Value, json};

use super::claims::id_of_entry;
use super::lifecycle::Retirement;
use super::{Directory, Stored};
use crate::error::{Error, Result};
use crate::model::{self, Kind};
use crate::store::{Cond, Item, Key, Query, SortKey, Write};
use crate::tenant::{Tenant, TenantId};

/// What a pull did to one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pulled {
    Created,
    Updated,
    Unchanged,
}

fn link_item(t: &TenantId, graph_id: &str, user_id: &str) -> Item {
    let key = model::graph_link(t.as_str(), graph_id);
    Item { pk: key.pk, sk: key.sk, version: 1, data: json!({ "id": user_id }).to_string(), ..Item::default() }
}

impl Directory {
    /// The users that `graph_ids` are linked to, by Graph id.
    pub async fn linked_users(&self, t: &TenantId, graph_ids: &[String]) -> Result<HashMap<String, String>> {
        let keys: Vec<Key> =
            graph_ids.iter().filter(|g| model::is_possible_id(g)).map(|g| model::graph_link(t.as_str(), g)).collect();
        Ok(self.batch_get(&keys).await?.iter().filter_map(|i| Some((i.sk.clone(), id_of_entry(i)?))).collect())
    }

    /// Every link of the tenant: (Graph id, user id).
    pub async fn all_links(&self, t: &TenantId) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut pages = self.pages(Query::table(model::graph_links_pk(t.as_str()), SortKey::All, 0));
        while let Some(items) = pages.next().await? {
            out.extend(items.iter().filter_map(|i| Some((i.sk.clone(), id_of_entry(i)?))));
        }
        Ok(out)
    }

    /// Live users whose work email is `email` (case-insensitively; the
    /// index also finds look-alikes, which are not the same address).
    async fn users_with_work_email(&self, t: &TenantId, email: &str) -> Result<Vec<Stored>> {
        let eq = IndexedEq { attr: IndexedAttr::WorkEmail, value: email.to_string() };
        let mut users = self.lookup(t, Kind::User, &eq).await?;
        let wanted = scim_protocol::text::fold(email);
        users.retain(|u| super::claims::work_emails(&u.resource).any(|e| scim_protocol::text::fold(e) == wanted));
        Ok(users)
    }

    /// Pull a user into the tenant: update the user `graph_id` is linked
    /// to, or else link and update the one live user with that work email
    /// and no link of its own, or else create one, linked. `attrs` are the
    /// attributes the directory owns; the user's others are kept.
    pub async fn pull_user(
        &self,
        tenant: &Tenant,
        graph_id: &str,
        linked: Option<&str>,
        attrs: &Object,
    ) -> Result<Pulled> {
        let t = &tenant.id;
        if let Some(user_id) = linked {
            match self.update_pulled(tenant, user_id, attrs).await {
                Err(Error::NotFound(_)) => {} // linked to a user that is gone: pull it anew
                other => return other,
            }
        }
        if let Some(email) = work_email(attrs) {
            let candidates = self.users_with_work_email(t, email).await?;
            let free = self.without_link(t, candidates).await?;
            if let [only] = free.as_slice() {
                self.table.write(Write::Put { item: link_item(t, graph_id, &only.id), cond: Cond::Always }).await?;
                return self.update_pulled(tenant, &only.id, attrs).await;
            }
        }
        self.create_with(tenant, Kind::User, attrs.clone(), &[], |id| {
            vec![Write::Put { item: link_item(t, graph_id, id), cond: Cond::Always }]
        })
        .await
        .map(|_| Pulled::Created)
    }

    /// The users among `users` that no Graph user is linked to. A pulled
    /// user's externalId is its Graph id, linked to it; users pushed over
    /// SCIM or made in the application have no link, whatever their
    /// externalId.
    async fn without_link(&self, t: &TenantId, users: Vec<Stored>) -> Result<Vec<Stored>> {
        let external: Vec<String> = users
            .iter()
            .filter_map(|u| u.resource.get("externalId").and_then(Value::as_str).map(str::to_string))
            .collect();
        let links = self.linked_users(t, &external).await?;
        Ok(users
            .into_iter()
            .filter(|u| {
                let ext = u.resource.get("externalId").and_then(Value::as_str).unwrap_or_default();
                links.get(ext).is_none_or(|linked| *linked != u.id)
            })
            .collect())
    }

    async fn update_pulled(&self, tenant: &Tenant, user_id: &str, attrs: &Object) -> Result<Pulled> {
        let merged = |current: &Object| {
            let mut next = current.clone();
            for (k, v) in attrs {
                next.insert(k.clone(), v.clone());
            }
            Ok((next, Default::default()))
        };
        let (_, wrote) = self.update_telling(tenant, Kind::User, user_id, None, merged).await?;
        Ok(if wrote { Pulled::Updated } else { Pulled::Unchanged })
    }

    /// A user the directory removed: soft-deleted (as a `DELETE` would) and
    /// unlinked. A user already gone is only unlinked.
    pub async fn remove_pulled(&self, tenant: &Tenant, graph_id: &str, user_id: &str) -> Result<bool> {
        let retired = match self.retire(tenant, Kind::User, user_id, None, Retirement::RemovedFromGraph).await {
            Ok(()) => true,
            Err(Error::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        let link = model::graph_link(tenant.id.as_str(), graph_id);
        self.table.write(Write::Delete { key: link, cond: Cond::Always }).await?;
        Ok(retired)
    }
}

fn work_email(attrs: &Object) -> Option<&str> {
    attrs.get("emails")?.as_array()?.iter().find_map(|e| {
        let work = e.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("work"));
        e.get("value").and_then(Value::as_str).filter(|_| work)
    })
}
