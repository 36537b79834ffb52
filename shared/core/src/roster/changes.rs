//! What the roster reports of each change it commits: which resource, and
//! what happened to it. The kernel ([`super::kernel`]) reports every change
//! to a user, a group or a membership once, after it is written; a write
//! that changes nothing reports nothing.

use std::collections::BTreeSet;

use scim_protocol::Object;
use serde_json::Value;

use crate::model::Kind;
use crate::tenant::TenantId;

/// What happened to a user or group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    /// Attributes changed (named), `active` staying as it was.
    Updated,
    /// `active` went from true (or absent) to false, maybe with others.
    Deactivated,
    /// `active` went from false to true, maybe with others.
    Reactivated,
    /// Taken out of SCIM's view: soft-deleted, or deleted for good when a
    /// group is not kept.
    Deleted,
    /// A soft-deleted user brought back.
    Restored,
    /// A retired user or group removed for good after retention.
    Purged,
    /// A member joined the group (`member` is its id).
    MemberAdded {
        member: String,
    },
    /// A member left the group.
    MemberRemoved {
        member: String,
    },
    /// An operator unlinked the group from the directory.
    Unlinked,
}

/// One change to one resource of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    pub id: String,
    pub what: ChangeKind,
    /// The attributes that changed, for updates (top-level names, and an
    /// extension's attributes as `urn:…:name`), in name order.
    pub attributes: Vec<String>,
}

impl Change {
    pub fn new(kind: Kind, id: &str, what: ChangeKind) -> Self {
        Self { kind, id: id.to_string(), what, attributes: Vec::new() }
    }

    /// The change from `before` to `after`, or `None` when they are equal.
    pub fn between(kind: Kind, id: &str, before: &Object, after: &Object) -> Option<Self> {
        let attributes = changed_attributes(before, after);
        if attributes.is_empty() {
            return None;
        }
        let active = |o: &Object| o.get("active") != Some(&Value::Bool(false));
        let what = match (active(before), active(after)) {
            (true, false) => ChangeKind::Deactivated,
            (false, true) => ChangeKind::Reactivated,
            _ => ChangeKind::Updated,
        };
        Some(Self { kind, id: id.to_string(), what, attributes })
    }
}

/// The names of the attributes that differ between two representations;
/// an extension (an object keyed by its URN) is compared attribute by
/// attribute.
pub fn changed_attributes(before: &Object, after: &Object) -> Vec<String> {
    let mut names = BTreeSet::new();
    for key in before.keys().chain(after.keys()) {
        let (b, a) = (before.get(key), after.get(key));
        if b == a {
            continue;
        }
        match (b, a) {
            (Some(Value::Object(b)), Some(Value::Object(a))) if key.starts_with("urn:") => {
                names.extend(changed_attributes(b, a).into_iter().map(|n| format!("{key}:{n}")));
            }
            _ => {
                names.insert(key.clone());
            }
        }
    }
    names.into_iter().collect()
}

/// Where the roster reports the changes it commits.
pub trait ChangeSink: Send + Sync {
    fn changed(&self, tenant: &TenantId, changes: &[Change]);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Object {
        match v {
            Value::Object(o) => o,
            _ => Object::new(),
        }
    }

    #[test]
    fn names_what_differs_and_nothing_else() {
        let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let before = obj(json!({ "userName": "a", "title": "x", ext: { "department": "d", "costCenter": "1" } }));
        let after = obj(json!({ "userName": "a", "nickName": "n", ext: { "department": "e", "costCenter": "1" } }));
        assert_eq!(
            changed_attributes(&before, &after),
            vec!["nickName".to_string(), "title".to_string(), format!("{ext}:department"),]
        );
        assert!(Change::between(Kind::User, "1", &before, &before).is_none());
    }

    #[test]
    fn active_flips_are_named() {
        let on = obj(json!({ "userName": "a", "active": true }));
        let off = obj(json!({ "userName": "a", "active": false }));
        let unset = obj(json!({ "userName": "a" }));
        let what = |b: &Object, a: &Object| Change::between(Kind::User, "1", b, a).map(|c| c.what);
        assert_eq!(what(&on, &off), Some(ChangeKind::Deactivated));
        assert_eq!(what(&unset, &off), Some(ChangeKind::Deactivated));
        assert_eq!(what(&off, &on), Some(ChangeKind::Reactivated));
        assert_eq!(what(&on, &unset), Some(ChangeKind::Updated));
    }
}
