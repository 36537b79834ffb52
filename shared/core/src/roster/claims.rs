//! The index entries a resource claims: which attributes are looked up by
//! key, which of them are unique in a tenant (and under which setting),
//! and the limits an entry must fit.

use scim_protocol::{Object, ScimError};
use serde_json::{Value, json};

use super::types::{Limits, Stored};
use crate::error::{Error, Result};
use crate::model::{self, IndexAttr, Kind};
use crate::store::{Item, Key, StoreError};
use crate::tenant::TenantSettings;

/// An index entry a resource claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Claim {
    pub(super) attr: IndexAttr,
    pub(super) value: String,
    pub(super) unique: bool,
    /// The key form the entry is (to be) written in ([`model::KEY_FORM`]).
    pub(super) form: u64,
}

impl Claim {
    pub(super) fn key(&self, t: &str, id: &str) -> Key {
        model::index_entry_in(t, self.attr, &self.value, self.unique, id, self.form)
    }

    /// Same entry in the table: values that normalise alike are one claim.
    pub(super) fn same_entry(&self, other: &Claim) -> bool {
        self.attr == other.attr
            && self.unique == other.unique
            && self.attr.normalise_in(&self.value, self.form) == other.attr.normalise_in(&other.value, other.form)
    }
}

/// The most work emails one user may have: each is an index entry, and a
/// write's entries must fit one transaction.
pub const MAX_WORK_EMAILS: usize = 10;

pub(crate) fn text<'a>(attrs: &'a Object, name: &str) -> Option<&'a str> {
    attrs.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Whether one value of `emails` is of type `work`.
pub(super) fn is_work_email(email: &Value) -> bool {
    email.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("work"))
}

/// The values of a user's emails of type `work`.
pub(super) fn work_emails(attrs: &Object) -> impl Iterator<Item = &str> {
    attrs.get("emails").and_then(Value::as_array).into_iter().flatten().filter_map(|e| {
        let work = is_work_email(e);
        e.get("value").and_then(Value::as_str).filter(|v| work && !v.is_empty())
    })
}

/// The id a user's enterprise `manager.value` names, if it could be one.
fn manager_of(attrs: &Object) -> Option<&str> {
    let manager = attrs.get(scim_protocol::urn::ENTERPRISE_USER)?.get("manager")?;
    manager.get("value").and_then(Value::as_str).filter(|v| model::is_possible_id(v))
}

/// The index entries a resource's attributes call for under `settings`.
pub(super) fn claims(kind: Kind, attrs: &Object, settings: &TenantSettings) -> Vec<Claim> {
    let mut out = Vec::new();
    let mut claim = |attr, value: Option<&str>, unique| {
        if let Some(v) = value {
            out.push(Claim { attr, value: v.to_string(), unique, form: model::KEY_FORM });
        }
    };
    match kind {
        Kind::User => {
            claim(IndexAttr::UserName, text(attrs, "userName"), true);
            claim(IndexAttr::UserExternalId, text(attrs, "externalId"), settings.unique_external_ids);
            for email in work_emails(attrs) {
                claim(IndexAttr::UserWorkEmail, Some(email), settings.unique_work_emails);
            }
            claim(IndexAttr::UserManager, manager_of(attrs), false);
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
pub(super) fn stored_claims(kind: Kind, stored: &Stored, settings: &TenantSettings) -> Vec<Claim> {
    let mut out = claims(kind, &stored.resource, settings);
    if stored.unique_entries.is_none() {
        // Written before work emails were indexed: it has no such entries.
        out.retain(|c| c.attr != IndexAttr::UserWorkEmail);
    }
    if stored.key_form < 2 {
        // Written before the manager index.
        out.retain(|c| c.attr != IndexAttr::UserManager);
    }
    for c in &mut out {
        c.form = stored.key_form;
        c.unique = match &stored.unique_entries {
            Some(tags) => tags.iter().any(|t| t == c.attr.tag()),
            // Written before entries were recorded: by the rules of then.
            None => match c.attr {
                IndexAttr::UserName | IndexAttr::UserExternalId | IndexAttr::GroupExternalId => true,
                IndexAttr::GroupName => settings.unique_group_names,
                IndexAttr::UserWorkEmail | IndexAttr::UserManager => false,
            },
        };
    }
    out
}

impl Claim {
    /// The item that holds this entry for resource `id`.
    pub(super) fn item(&self, t: &str, id: &str) -> Item {
        let key = self.key(t, id);
        Item { pk: key.pk, sk: key.sk, version: 1, data: json!({ "id": id }).to_string(), ..Item::default() }
    }
}

/// The id an index entry points to.
pub(super) fn id_of_entry(item: &Item) -> Option<String> {
    serde_json::from_str::<Value>(&item.data).ok()?.get("id")?.as_str().map(str::to_string)
}

/// Check the entries a resource calls for against the index limits: a
/// value short enough for a key, and few enough work emails that a write's
/// entries fit one transaction.
pub(super) fn check_limits(claims: &[Claim], limits: &Limits) -> Result<()> {
    if let Some(c) = claims.iter().find(|c| c.value.len() > limits.max_indexed_value) {
        return Err(ScimError::invalid_value(format!(
            "'{}' is {} bytes long; at most {} are accepted",
            c.attr.scim_name(),
            c.value.len(),
            limits.max_indexed_value
        ))
        .into());
    }
    if claims.iter().filter(|c| c.attr == IndexAttr::UserWorkEmail).count() > MAX_WORK_EMAILS {
        return Err(ScimError::invalid_value(format!(
            "a user may have at most {MAX_WORK_EMAILS} emails of type \"work\""
        ))
        .into());
    }
    Ok(())
}

/// Map a failed claim in a transaction to a uniqueness error: `claims`
/// were written from transaction write `first_claim_write` on.
pub(super) fn claim_conflict(claims: &[&Claim], first_claim_write: usize, e: StoreError) -> Error {
    let taken =
        |c: &Claim| Error::Uniqueness(format!("{} '{}' is already in use in this tenant", c.attr.scim_name(), c.value));
    let some_taken = || Error::Uniqueness("a unique attribute is already in use in this tenant".into());
    match e {
        StoreError::ConditionFailed { index: Some(i) } if i >= first_claim_write => {
            claims.get(i - first_claim_write).map_or_else(some_taken, |c| taken(c))
        }
        StoreError::ConditionFailed { index: None } => some_taken(),
        other => other.into(),
    }
}
