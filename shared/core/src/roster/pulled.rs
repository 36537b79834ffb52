//! Users pulled from a directory (Microsoft Graph): each is linked, by the
//! directory's object id, to the user it was pulled into, so that a pull
//! finds its users by key, matches existing users by work email, writes
//! only what changed, and never touches a user it did not pull.

use std::collections::HashMap;

use scim_protocol::Object;
use scim_protocol::filter::{IndexedAttr, IndexedEq};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::claims::{is_work_email, work_emails};
use super::kernel::Roster;
use super::lifecycle::Retirement;
use super::types::Stored;
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
    /// A user the directory had removed came back (same object id): the
    /// soft-deleted user is restored, with its id and history.
    Restored,
}

/// How a pulled user came to be linked to its directory user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkOrigin {
    /// The pull created the user: it owns everything it maps.
    #[default]
    Created,
    /// The user existed (made in the application or pushed over SCIM) and
    /// was matched by work email: the pull owns only the names, the work
    /// email, `active` and the placement; the user keeps its own userName,
    /// displayName, externalId and the rest.
    Matched,
}

/// A directory user's link to the user it was pulled into.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Link {
    #[serde(rename = "id")]
    pub user: String,
    #[serde(default)]
    pub origin: LinkOrigin,
    /// The directory removed the user: it is soft-deleted here, and comes
    /// back restored if the directory restores it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// The directory's properties of the user as last pulled: delta pages
    /// may carry only what changed, and the rest comes from here.
    #[serde(default, skip_serializing_if = "Object::is_empty")]
    pub known: Object,
}

/// The attributes a pull owns of a user: what the directory says of them
/// replaces what is there, "none" included, so that a value cleared in the
/// directory is cleared here. The placement and the work email always; the
/// names and `active` always; userName, externalId and displayName only of
/// users the pull created.
const OWNED_ALWAYS: [&str; 1] = ["active"];
/// Of the placement, the one unit membership the pull maps and its types;
/// the memberships the application keeps beside it (`otherUnits`) stay.
const OWNED_PLACEMENT: [&str; 2] = ["unit", "userTypes"];
const OWNED_IF_CREATED: [&str; 3] = ["userName", "externalId", "displayName"];

/// `current` with what the pull owns replaced by `pulled`.
fn with_owned(current: &Object, pulled: &Object, origin: LinkOrigin) -> Object {
    let mut next = current.clone();
    let set = |next: &mut Object, name: &str| match pulled.get(name) {
        Some(v) => {
            next.insert(name.to_string(), v.clone());
        }
        None => {
            next.remove(name);
        }
    };
    for name in OWNED_ALWAYS {
        set(&mut next, name);
    }
    if origin == LinkOrigin::Created {
        for name in OWNED_IF_CREATED {
            set(&mut next, name);
        }
    }
    replace_parts(&mut next, scim_protocol::urn::DIRECTORY_USER, &OWNED_PLACEMENT, pulled);
    // First and last name; other parts of the name are the user's own.
    replace_parts(&mut next, "name", &["givenName", "familyName"], pulled);
    // The work email; other emails are the user's own.
    let is_work = is_work_email;
    let mut emails: Vec<Value> =
        next.get("emails").and_then(Value::as_array).into_iter().flatten().filter(|e| !is_work(e)).cloned().collect();
    emails.extend(pulled.get("emails").and_then(Value::as_array).into_iter().flatten().filter(|e| is_work(e)).cloned());
    if emails.is_empty() {
        next.remove("emails");
    } else {
        if emails.iter().filter(|e| e.get("primary") == Some(&Value::Bool(true))).count() > 1 {
            // The directory's work email is primary; another one stops being.
            for e in emails.iter_mut().filter(|e| !is_work(e)) {
                if let Some(o) = e.as_object_mut() {
                    o.remove("primary");
                }
            }
        }
        next.insert("emails".into(), Value::Array(emails));
    }
    next
}

/// Replace `parts` of the object attribute `name` of `next` with those of
/// `from` (removing those `from` lacks), keeping its other parts; an
/// object left empty goes.
fn replace_parts(next: &mut Object, name: &str, parts: &[&str], from: &Object) {
    let mut object = next.get(name).and_then(Value::as_object).cloned().unwrap_or_default();
    for part in parts {
        match from.get(name).and_then(|o| o.get(*part)) {
            Some(v) => object.insert((*part).to_string(), v.clone()),
            None => object.remove(*part),
        };
    }
    if object.is_empty() {
        next.remove(name);
    } else {
        next.insert(name.to_string(), Value::Object(object));
    }
}

fn link_item(t: &TenantId, graph_id: &str, link: &Link) -> Result<Item> {
    let key = model::graph_link(t.as_str(), graph_id);
    let data = serde_json::to_string(link).map_err(|e| Error::corrupt(&key, e))?;
    Ok(Item { pk: key.pk, sk: key.sk, version: 1, data, ..Item::default() })
}

fn link_of(item: &Item) -> Option<Link> {
    serde_json::from_str(&item.data).ok()
}

impl Roster {
    /// The links of `graph_ids`, by Graph id.
    pub async fn links(&self, t: &TenantId, graph_ids: &[String]) -> Result<HashMap<String, Link>> {
        let keys: Vec<Key> =
            graph_ids.iter().filter(|g| model::is_possible_id(g)).map(|g| model::graph_link(t.as_str(), g)).collect();
        Ok(self.batch_get(&keys).await?.iter().filter_map(|i| Some((i.sk.clone(), link_of(i)?))).collect())
    }

    /// The live users that `graph_ids` are linked to, by Graph id.
    pub async fn linked_users(&self, t: &TenantId, graph_ids: &[String]) -> Result<HashMap<String, String>> {
        let links = self.links(t, graph_ids).await?;
        Ok(links.into_iter().filter(|(_, l)| !l.retired).map(|(g, l)| (g, l.user)).collect())
    }

    /// Every link of the tenant to a live user: (Graph id, user id).
    pub async fn all_links(&self, t: &TenantId) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut pages = self.pages(Query::table(model::graph_links_pk(t.as_str()), SortKey::All, 0));
        while let Some(items) = pages.next().await? {
            out.extend(items.iter().filter_map(|i| {
                let link = link_of(i)?;
                (!link.retired).then(|| (i.sk.clone(), link.user))
            }));
        }
        Ok(out)
    }

    /// Live users whose work email is `email` (case-insensitively; the
    /// index also finds look-alikes, which are not the same address).
    async fn users_with_work_email(&self, t: &TenantId, email: &str) -> Result<Vec<Stored>> {
        let eq = IndexedEq { attr: IndexedAttr::WorkEmail, value: email.to_string() };
        let mut users = self.lookup(t, Kind::User, &eq).await?;
        let wanted = scim_protocol::text::fold(email);
        users.retain(|u| work_emails(&u.resource).any(|e| scim_protocol::text::fold(e) == wanted));
        Ok(users)
    }

    /// Pull a user into the tenant: update the user `graph_id` is linked
    /// to (restoring it if the directory had removed it), or else link and
    /// update the one live user with that work email and no link of its
    /// own, or else create one, linked. `attrs` are what the directory says
    /// of the attributes the pull owns ([`LinkOrigin`]); `known` the
    /// directory's properties, kept with the link.
    pub async fn pull_user(
        &self,
        tenant: &Tenant,
        graph_id: &str,
        link: Option<&Link>,
        attrs: &Object,
        known: &Object,
    ) -> Result<Pulled> {
        let t = &tenant.id;
        if let Some(link) = link {
            let mut outcome = None;
            if link.retired {
                match self.restore_user(tenant, &link.user).await {
                    Ok(_) => outcome = Some(Pulled::Restored),
                    // Purged, or its name taken meanwhile: pulled anew.
                    Err(Error::NotFound(_) | Error::Uniqueness(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if !link.retired || outcome.is_some() {
                let updated = Link { retired: false, known: known.clone(), ..link.clone() };
                match self.update_pulled(tenant, graph_id, &updated, attrs, link).await {
                    Ok(p) => return Ok(outcome.unwrap_or(p)),
                    Err(Error::NotFound(_)) => {} // linked to a user that is gone: pull it anew
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some(email) = work_emails(attrs).next() {
            let candidates = self.users_with_work_email(t, email).await?;
            let free = self.without_link(t, candidates).await?;
            if let [only] = free.as_slice() {
                let link =
                    Link { user: only.id.clone(), origin: LinkOrigin::Matched, retired: false, known: known.clone() };
                self.table.write(Write::Put { item: link_item(t, graph_id, &link)?, cond: Cond::Always }).await?;
                return self.update_pulled(tenant, graph_id, &link, attrs, &link).await;
            }
        }
        let known = known.clone();
        let mut link_write = None;
        let created = self
            .create_with(tenant, Kind::User, attrs.clone(), &[], |id| {
                let link = Link { user: id.to_string(), origin: LinkOrigin::Created, retired: false, known };
                match link_item(t, graph_id, &link) {
                    Ok(item) => vec![Write::Put { item, cond: Cond::Always }],
                    Err(e) => {
                        link_write = Some(e);
                        Vec::new()
                    }
                }
            })
            .await;
        if let Some(e) = link_write {
            return Err(e);
        }
        created.map(|_| Pulled::Created)
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

    /// Write what the pull owns of a linked user (through the write path:
    /// only a change writes), and the link when what is known of the
    /// directory's user changed.
    async fn update_pulled(
        &self,
        tenant: &Tenant,
        graph_id: &str,
        link: &Link,
        attrs: &Object,
        before: &Link,
    ) -> Result<Pulled> {
        let owned = |current: &Object| Ok((with_owned(current, attrs, link.origin), Default::default()));
        let wrote = self.update_telling(tenant, Kind::User, &link.user, None, owned).await?.wrote;
        if link != before {
            self.table.write(Write::Put { item: link_item(&tenant.id, graph_id, link)?, cond: Cond::Always }).await?;
        }
        Ok(if wrote { Pulled::Updated } else { Pulled::Unchanged })
    }

    /// Set the unit memberships the application keeps beside the one the
    /// directory gives (`otherUnits` of the placement: `[{"unit": …,
    /// "userTypes": […]}]`; an empty list clears them). The pull never
    /// writes them; SCIM clients cannot.
    pub async fn set_other_units(&self, tenant: &Tenant, user_id: &str, other_units: Value) -> Result<Stored> {
        let ext = scim_protocol::urn::DIRECTORY_USER;
        let body = serde_json::json!({ "userName": "x", ext: { "otherUnits": other_units } });
        let parsed = scim_protocol::parse_service_resource(scim_protocol::schema::user(), &body)?;
        let change = |current: &Object| {
            let mut next = current.clone();
            replace_parts(&mut next, ext, &["otherUnits"], &parsed);
            Ok((next, Default::default()))
        };
        self.update(tenant, Kind::User, user_id, None, change).await
    }

    /// A user the directory removed: soft-deleted (as a `DELETE` would),
    /// its link kept and marked, so that the directory restoring the user
    /// (same object id) restores it here. A user already gone is only
    /// marked.
    pub async fn remove_pulled(&self, tenant: &Tenant, graph_id: &str, user_id: &str) -> Result<bool> {
        let retired = match self.retire(tenant, Kind::User, user_id, None, Retirement::RemovedFromGraph).await {
            Ok(()) => true,
            Err(Error::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        let mut link = self.links(&tenant.id, &[graph_id.to_string()]).await?.remove(graph_id).unwrap_or_default();
        link.user = user_id.to_string();
        link.retired = true;
        self.table.write(Write::Put { item: link_item(&tenant.id, graph_id, &link)?, cond: Cond::Always }).await?;
        Ok(retired)
    }
}
