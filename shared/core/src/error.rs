//! The domain layer's error type and its one mapping to SCIM errors.

use scim_protocol::ScimError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such resource (or none of the kind asked for): 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// The client's `If-Match` names another version than the stored one: 412.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// A value that another resource of the tenant holds under a
    /// uniqueness rule: 409 `uniqueness`.
    #[error("uniqueness: {0}")]
    Uniqueness(String),
    /// Concurrent writers kept winning; the request was fine and may be
    /// retried: 503 with Retry-After, never 409.
    #[error("busy: {0}")]
    Busy(String),
    /// Any other mistake of the client, already shaped as a SCIM error by
    /// the protocol engine or a tenant rule (4xx).
    #[error(transparent)]
    Invalid(#[from] ScimError),
    /// A storage failure that is not the client's doing.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Stored data that cannot be read back.
    #[error("corrupt item {key}: {why}")]
    Corrupt { key: String, why: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn corrupt(key: &crate::store::Key, why: impl std::fmt::Display) -> Self {
        Error::Corrupt { key: format!("{}/{}", key.pk, key.sk), why: why.to_string() }
    }

    /// Whether this is the service's failure (5xx), to be logged in full.
    pub fn is_server_error(&self) -> bool {
        match self {
            Error::NotFound(_) | Error::PreconditionFailed(_) | Error::Uniqueness(_) => false,
            Error::Invalid(e) => e.status >= 500,
            Error::Busy(_) | Error::Store(_) | Error::Corrupt { .. } => true,
        }
    }
}

/// The one place a domain error becomes a SCIM response. Server-side
/// details stay out of it: the caller logs `Error` itself.
impl From<Error> for ScimError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(detail) => ScimError::not_found(detail),
            Error::PreconditionFailed(detail) => ScimError::precondition_failed(detail),
            Error::Uniqueness(detail) => ScimError::uniqueness(detail),
            Error::Busy(detail) => ScimError::service_unavailable(detail),
            Error::Invalid(e) => e,
            Error::Store(StoreError::Throttled(_) | StoreError::Conflict) => {
                ScimError::service_unavailable("the service is busy; retry the request")
            }
            Error::Store(_) | Error::Corrupt { .. } => ScimError::internal(),
        }
    }
}
