//! The provisioning domain over one storage port.
//!
//! - [`store`]: the port, shaped like a single DynamoDB table;
//! - [`model`]: the single-table key layout;
//! - [`roster`]: the roster, Lockstep's own copy of each tenant's users, groups and memberships (the customer's identity provider is "the directory"): uniqueness, paging, lifecycle;
//! - [`tenant`]: tenants and their policy;
//! - [`job`]: the scheduled job (sweep, purge) over every tenant;
//! - [`cursor`]: signed RFC 9865 cursors;
//! - [`retry`]: the backoff between tries of a contended write;
//! - [`secrets`]: where integration secrets live (never in the table);
//! - [`tokens`]: tenant bearer tokens (hashed), and where they are stored;
//! - `counting` (feature `test-support`): a call-counting wrapper for cost tests;
//! - [`error`]: the layer's error and its one mapping to SCIM errors.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod clock;
#[cfg(feature = "test-support")]
pub mod counting;
pub mod cursor;
pub mod error;
pub mod job;
pub mod model;
pub mod retry;
pub mod roster;
pub mod secrets;
pub mod store;
pub mod tenant;
pub mod tokens;

pub use error::{Error, Result};
pub use model::{Kind, is_possible_id};
pub use roster::{
    Change, ChangeKind, ChangeSink, Due, GroupRef, Limits, Link, LinkOrigin, Member, PullDocument, Pulled, Purged,
    Reindexed, Retired, Retirement, Roster, RoundNote, SearchPage, Stored, UnfinishedDeletes,
};
pub use store::Table;
pub use tenant::{Tenant, TenantId, TenantSettings};
