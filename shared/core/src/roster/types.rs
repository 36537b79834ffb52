//! The roster's shared shapes: its limits, a resource as stored, a page of
//! a search, a member, a group as a user's `groups` shows it.

use scim_protocol::{Object, etag};

use crate::model::Kind;

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
    /// Stored bytes one request may read to serve a filter, a cursor page
    /// or a `startIndex` (beside the item budgets): resources of up to
    /// `max_resource_bytes` make the item budgets alone too large.
    pub read_budget_bytes: usize,
    /// Stored bytes of the resources one page carries; a page ends early
    /// (with at least one resource) rather than pass it, and says so by its
    /// `itemsPerPage` and cursor.
    pub max_page_bytes: usize,
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
            read_budget_bytes: 32 << 20,
            max_page_bytes: 2 << 20,
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
    pub kind: Kind,
    pub id: String,
    pub version: u64,
    pub resource: Object,
    /// Which of its index entries were written unique (their tags), as the
    /// item records it; `None` for items written before it did.
    pub(super) unique_entries: Option<Vec<String>>,
    /// The form its index entries were written in (`meta.keys`; 1 before
    /// items recorded it).
    pub(super) key_form: u64,
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

/// What [`super::Roster::reindex`] did.
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
