//! The roster: Lockstep's own record of every tenant's users, groups and
//! memberships (what the customer's identity provider, "the directory",
//! pushed or the pull brought), on top of the storage port. All
//! single-table logic lives here, once, for both adapters;
//! docs/DATA_MODEL.md lists each operation's key operations.
//!
//! This file only names the parts:
//! - [`kernel`]: the [`Roster`], reading a resource, and the one versioned
//!   write every change of a user, group or membership goes through;
//! - [`changes`]: what the kernel reports of each change;
//! - [`types`]: limits, stored resources, pages, members;
//! - [`tenants`]: tenant records;
//! - [`claims`]: the index entries a resource claims (uniqueness, lookups);
//! - [`write`]: create, replace, patch, reindex;
//! - [`lifecycle`]: delete, deactivation's consequences, soft delete and
//!   restore, kept and unlinked groups, purge and sweep;
//! - [`members`]: group membership, both ways;
//! - [`pulled`]: users pulled from a directory (Microsoft Graph), linked by
//!   its object id;
//! - [`pull_state`]: the pull's own documents;
//! - [`search`]: lookups, filters, index and cursor paging.

mod changes;
mod claims;
mod kernel;
mod lifecycle;
mod members;
mod pull_state;
mod pulled;
mod search;
mod tenants;
mod types;
mod write;

pub use changes::{Change, ChangeKind, ChangeSink, changed_attributes};
pub use claims::MAX_WORK_EMAILS;
pub use kernel::Roster;
pub use lifecycle::{Due, MAX_REMEMBERED_GROUPS, Purged, Retired, Retirement};
pub use members::UnfinishedDeletes;
pub use pull_state::{PullDocument, RoundNote};
pub use pulled::{Link, LinkOrigin, Pulled};
pub use types::{GroupRef, Limits, Member, Reindexed, SearchPage, Stored};
