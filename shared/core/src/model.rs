//! The single-table layout: every key the service writes, in one place.
//! See docs/DATA_MODEL.md for the access patterns and their costs.
//!
//! Every partition key starts with `T#<tenant>#`, so no query can reach
//! across tenants. Within a tenant:
//!
//! | item | pk | sk |
//! | --- | --- | --- |
//! | tenant settings | `T#t#TENANT` | `SETTINGS` |
//! | user | `T#t#USERS` | `<id>` |
//! | group | `T#t#GROUPS` | `<id>` |
//! | member of a group | `T#t#MEMBERS#<group id>` | `<member id>` |
//! | group of a member (reverse) | `T#t#MEMBEROF#<member id>` | `<group id>` |
//! | index entry | `T#t#IX#<attr>#<value>` | `#` when unique, else `<id>` |
//! | counter shard | `T#t#COUNT` | `<kind>#<shard>` |
//! | paging bookmark | `T#t#BOOKMARK` | `<kind>#<hash>` |
//! | deleted user, kept or unlinked group | `T#t#RETIRED#<kind>` | `<id>` |
//! | unfinished membership cleanup | `T#t#SWEEP` | `<kind>#<id>` |
//! | the scheduled job's checkpoint | `JOB` | `CHECKPOINT` |
//! | Microsoft Graph connection, sync state | `T#t#GRAPH` | `CONNECTION`, `STATE` |
//! | link of a Graph user to its user | `T#t#GRAPHLINK` | `<graph object id>` |
//! | ids seen or removed in a Graph round | `T#t#GRAPHROUND#<round>` | `SEEN#<page>`, `GONE#<page>` |
//!
//! GSI1 (sparse) holds one entry per tenant (`TENANTS` / `<tenant>`), so
//! the scheduled job can list tenants without a scan, and one per retired
//! resource that has a purge date (`T#t#PURGE` / `<due>#<kind>#<id>`, the
//! due time as zero-padded Unix seconds), so it finds what is due with one
//! key-range query.

use crate::store::Key;

/// Counter shards per resource kind: spreads concurrent creates over
/// several items so transactions rarely conflict on the counter.
pub const COUNTER_SHARDS: u32 = 8;

/// The kinds of resource the table stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "USERS",
            Kind::Group => "GROUPS",
        }
    }

    /// The SCIM resource type name, as in `meta.resourceType` and a
    /// member's `type`.
    pub fn name(self) -> &'static str {
        self.resource_type().name
    }

    /// The kind whose key name ([`Kind::as_str`]) this is.
    pub fn from_key_name(name: &str) -> Option<Kind> {
        [Kind::User, Kind::Group].into_iter().find(|k| k.as_str() == name)
    }

    /// The kind a resource type name names (`"User"`, `"Group"`).
    pub fn from_name(name: &str) -> Option<Kind> {
        [Kind::User, Kind::Group].into_iter().find(|k| k.name() == name)
    }

    /// The kind an id of this kind might be confused with.
    pub fn other(self) -> Kind {
        match self {
            Kind::User => Kind::Group,
            Kind::Group => Kind::User,
        }
    }

    pub fn resource_type(self) -> &'static scim_protocol::ResourceType {
        match self {
            Kind::User => scim_protocol::schema::user(),
            Kind::Group => scim_protocol::schema::group(),
        }
    }
}

/// Indexed attributes, with how their values are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexAttr {
    /// userName, case-insensitive (RFC 7643 §4.1.1: caseExact false).
    UserName,
    UserExternalId,
    /// Each of a user's emails of type `work`, case-insensitive: what
    /// Microsoft Entra ID matches users on when the admin picks the work
    /// email as the matching attribute.
    UserWorkEmail,
    GroupExternalId,
    /// group displayName, case-insensitive.
    GroupName,
    /// The user an enterprise `manager.value` names: who refers to a user,
    /// so that a purge removes the references.
    UserManager,
}

/// How index keys are formed, recorded on each resource item (`meta.keys`)
/// so that `reindex` rewrites entries written in an older form:
/// 1. case-insensitive values in NFC, lower-cased;
/// 2. [`scim_protocol::text::uniqueness_key`] (look-alikes are one key),
///    and the manager index.
pub const KEY_FORM: u64 = 2;

impl IndexAttr {
    pub fn tag(self) -> &'static str {
        match self {
            IndexAttr::UserName => "UN",
            IndexAttr::UserExternalId => "UX",
            IndexAttr::UserWorkEmail => "UW",
            IndexAttr::GroupExternalId => "GX",
            IndexAttr::GroupName => "GN",
            IndexAttr::UserManager => "UM",
        }
    }

    /// The SCIM attribute, for messages.
    pub fn scim_name(self) -> &'static str {
        match self {
            IndexAttr::UserName => "userName",
            IndexAttr::UserExternalId | IndexAttr::GroupExternalId => "externalId",
            IndexAttr::UserWorkEmail => "emails[type eq \"work\"].value",
            IndexAttr::GroupName => "displayName",
            IndexAttr::UserManager => "manager.value",
        }
    }

    /// The value as stored in the key.
    pub fn normalise(self, value: &str) -> String {
        self.normalise_in(value, KEY_FORM)
    }

    /// The value as stored in a key of key form `form`.
    pub fn normalise_in(self, value: &str, form: u64) -> String {
        match self {
            IndexAttr::UserName | IndexAttr::GroupName | IndexAttr::UserWorkEmail if form < 2 => {
                scim_protocol::text::fold(value)
            }
            IndexAttr::UserName | IndexAttr::GroupName | IndexAttr::UserWorkEmail => {
                scim_protocol::text::uniqueness_key(value)
            }
            IndexAttr::UserExternalId | IndexAttr::GroupExternalId | IndexAttr::UserManager => value.to_string(),
        }
    }
}

/// The longest resource id, in bytes. Ids this service assigns are UUIDs;
/// a longer id cannot exist, and would break DynamoDB's key size limits.
pub const MAX_ID_BYTES: usize = 128;

/// Whether `id` could be the id of a stored resource. Anything else is
/// not found without a read.
pub fn is_possible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES && !id.chars().any(char::is_control)
}

fn tenant(t: &str) -> String {
    format!("T#{t}")
}

pub fn tenant_settings(t: &str) -> Key {
    Key::new(format!("{}#TENANT", tenant(t)), "SETTINGS")
}

/// GSI1 key of the tenant settings item: lists all tenants.
pub fn tenant_listing(t: &str) -> Key {
    Key::new(TENANTS_GSI_PK, t)
}

pub const TENANTS_GSI_PK: &str = "TENANTS";

/// The partition holding every resource of a kind.
pub fn resources_pk(t: &str, kind: Kind) -> String {
    format!("{}#{}", tenant(t), kind.as_str())
}

pub fn resource(t: &str, kind: Kind, id: &str) -> Key {
    Key::new(resources_pk(t, kind), id)
}

pub fn members_pk(t: &str, group: &str) -> String {
    format!("{}#MEMBERS#{group}", tenant(t))
}

pub fn member(t: &str, group: &str, member: &str) -> Key {
    Key::new(members_pk(t, group), member)
}

pub fn member_of_pk(t: &str, member: &str) -> String {
    format!("{}#MEMBEROF#{member}", tenant(t))
}

pub fn member_of(t: &str, member: &str, group: &str) -> Key {
    Key::new(member_of_pk(t, member), group)
}

pub fn index_pk(t: &str, attr: IndexAttr, value: &str) -> String {
    index_pk_in(t, attr, value, KEY_FORM)
}

pub fn index_pk_in(t: &str, attr: IndexAttr, value: &str, form: u64) -> String {
    format!("{}#IX#{}#{}", tenant(t), attr.tag(), attr.normalise_in(value, form))
}

/// The sort key of an index entry: a unique entry is the only item of its
/// partition, so a conditional put of it claims the value.
pub const UNIQUE_SK: &str = "#";

pub fn index_entry(t: &str, attr: IndexAttr, value: &str, unique: bool, id: &str) -> Key {
    index_entry_in(t, attr, value, unique, id, KEY_FORM)
}

/// An index entry's key in key form `form`.
pub fn index_entry_in(t: &str, attr: IndexAttr, value: &str, unique: bool, id: &str, form: u64) -> Key {
    Key::new(index_pk_in(t, attr, value, form), if unique { UNIQUE_SK } else { id })
}

pub fn counter(t: &str, kind: Kind, shard: u32) -> Key {
    Key::new(format!("{}#COUNT", tenant(t)), format!("{}#{shard}", kind.as_str()))
}

/// The counter shard an id's create and delete update.
pub fn shard_of(id: &str) -> u32 {
    (fnv1a(id) % u64::from(COUNTER_SHARDS)) as u32
}

/// FNV-1a, 64 bits: stable across builds and platforms, unlike std's
/// hasher, so it may decide keys.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A short stable digest of `text`, for keys and cursor scopes.
pub fn digest(text: &str) -> String {
    format!("{:016x}", fnv1a(text))
}

/// The partition of a kind's retired resources: soft-deleted users, groups
/// kept after the directory deleted them, unlinked groups.
pub fn retired_pk(t: &str, kind: Kind) -> String {
    format!("{}#RETIRED#{}", tenant(t), kind.as_str())
}

pub fn retired(t: &str, kind: Kind, id: &str) -> Key {
    Key::new(retired_pk(t, kind), id)
}

/// GSI1 partition of a tenant's purge schedule.
pub fn purge_pk(t: &str) -> String {
    format!("{}#PURGE", tenant(t))
}

/// GSI1 key of a retired resource due for purge at `due` (Unix seconds):
/// sort keys order by due time.
pub fn purge_entry(t: &str, due: i64, kind: Kind, id: &str) -> Key {
    Key::new(purge_pk(t), format!("{}#{}#{id}", purge_due_prefix(due), kind.as_str()))
}

/// The sort-key prefix of entries due at `due`; every entry due at or
/// before `due` sorts at or below `purge_due_prefix(due) + "#~"`.
pub fn purge_due_prefix(due: i64) -> String {
    format!("{:012}", due.max(0))
}

pub fn sweeps_pk(t: &str) -> String {
    format!("{}#SWEEP", tenant(t))
}

/// The marker of a delete whose membership cleanup has not finished.
pub fn sweep(t: &str, kind: Kind, id: &str) -> Key {
    Key::new(sweeps_pk(t), format!("{}#{id}", kind.as_str()))
}

pub fn graph_connection(t: &str) -> Key {
    Key::new(format!("{}#GRAPH", tenant(t)), "CONNECTION")
}

pub fn graph_state(t: &str) -> Key {
    Key::new(format!("{}#GRAPH", tenant(t)), "STATE")
}

pub fn graph_links_pk(t: &str) -> String {
    format!("{}#GRAPHLINK", tenant(t))
}

/// The link of a Graph user (by object id) to the user it was pulled into.
pub fn graph_link(t: &str, graph_id: &str) -> Key {
    Key::new(graph_links_pk(t), graph_id)
}

pub fn graph_round_pk(t: &str, round: &str) -> String {
    format!("{}#GRAPHROUND#{round}", tenant(t))
}

/// The scheduled job's checkpoint: the one item outside every tenant.
pub fn job_checkpoint() -> Key {
    Key::new("JOB", "CHECKPOINT")
}

pub fn bookmark(t: &str, kind: Kind, digest: &str) -> Key {
    Key::new(format!("{}#BOOKMARK", tenant(t)), format!("{}#{digest}", kind.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_scoped_by_tenant() {
        let keys = [
            tenant_settings("acme"),
            resource("acme", Kind::User, "u1"),
            member("acme", "g1", "u1"),
            member_of("acme", "u1", "g1"),
            index_entry("acme", IndexAttr::UserName, "A@B.C", true, "u1"),
            counter("acme", Kind::Group, 3),
            bookmark("acme", Kind::User, "x"),
            retired("acme", Kind::User, "u1"),
            purge_entry("acme", 1_700_000_000, Kind::User, "u1"),
            sweep("acme", Kind::Group, "g1"),
        ];
        for k in keys {
            assert!(k.pk.starts_with("T#acme#"), "{k:?}");
        }
    }

    #[test]
    fn user_names_index_case_insensitively_external_ids_exactly() {
        assert_eq!(index_pk("t", IndexAttr::UserName, "Bjensen@Example.COM"), "T#t#IX#UN#bjensen@example.com");
        assert_eq!(index_pk("t", IndexAttr::UserExternalId, "AbC"), "T#t#IX#UX#AbC");
    }

    #[test]
    fn purge_entries_sort_by_due_time() {
        let early = purge_entry("t", 999, Kind::User, "zz");
        let late = purge_entry("t", 1_000, Kind::Group, "aa");
        assert!(early.sk < late.sk);
        assert!(late.sk.as_str() <= format!("{}#~", purge_due_prefix(1_000)).as_str());
        assert!(late.sk.as_str() > format!("{}#~", purge_due_prefix(999)).as_str());
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("2819c223-7f76-453a-919d-413861904646"), shard_of("2819c223-7f76-453a-919d-413861904646"));
        let used: std::collections::BTreeSet<u32> = (0..200).map(|i| shard_of(&format!("id-{i}"))).collect();
        assert_eq!(used.len(), COUNTER_SHARDS as usize);
    }
}
