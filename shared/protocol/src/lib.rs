//! The SCIM 2.0 protocol engine (RFC 7643, RFC 7644, RFC 9865 cursors).
//!
//! Pure: no I/O, no AWS, no HTTP framework. Every request of the service
//! goes through it:
//!
//! - [`schema`]: the schema registry (core User, EnterpriseUser, the
//!   product's directory extension, Group) and attribute-path resolution;
//! - [`resource`]: validation of bodies into canonical form, and output
//!   with `attributes` / `excludedAttributes` and the `returned` rules;
//! - [`filter`]: the whole filter grammar, evaluation, and detection of the
//!   equality lookups storage serves by key;
//! - [`patch`]: PATCH with the dialects of Microsoft Entra ID and Okta,
//!   group membership changes as a separate, O(k) change set;
//! - [`text`]: what characters names and identifiers may hold;
//! - [`messages`], [`discovery`], [`etag`], [`error`].
//!
//! Resources are JSON objects in canonical form: attribute names as the
//! schema spells them, values of the schema's types, extension attributes
//! under their schema URN. Keeping them as JSON (not one struct per
//! resource type) lets one engine serve every schema and extension.
//!
//! # Fuzzing
//!
//! `fuzz/` holds cargo-fuzz targets for the filter parser, the PATCH
//! parser + applier and resource validation. With cargo-fuzz installed
//! (`cargo install cargo-fuzz`), from `shared/protocol`:
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run filter -- -max_total_time=60
//! RUSTC_BOOTSTRAP=1 cargo fuzz run patch -- -max_total_time=60
//! RUSTC_BOOTSTRAP=1 cargo fuzz run resource -- -max_total_time=60
//! ```
//!
//! (`RUSTC_BOOTSTRAP=1` lets a stable toolchain accept the sanitizer flags
//! cargo-fuzz passes.) The property tests in `tests/properties.rs` run the
//! same never-panics checks on every `cargo test`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod discovery;
pub mod error;
pub mod etag;
pub mod filter;
pub mod json;
pub mod messages;
pub mod patch;
pub mod path;
pub mod resource;
pub mod schema;
pub mod text;
pub mod urn;
pub mod value_path;

/// A JSON object: the form of every resource.
pub use error::{Result, ScimError, ScimType};
pub use filter::{Filter, IndexedAttr, IndexedEq};
pub use json::Object;
pub use messages::{ListResponse, Paging, SearchRequest};
pub use patch::{MemberChanges, MemberRef, PatchOutcome, PatchRequest, apply_patch};
pub use path::AttrPath;
pub use resource::{
    MAX_PROJECTION_NAMES, Projection, Selection, parse_resource, parse_service_resource, render, render_selected,
};
pub use schema::ResourceType;
