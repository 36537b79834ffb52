//! The domain layer's error type and its one mapping to SCIM errors.

use scim_protocol::ScimError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client's mistake, already shaped as a SCIM error (4xx).
    #[error(transparent)]
    Scim(#[from] ScimError),
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
        !matches!(self, Error::Scim(e) if e.status < 500)
    }
}

/// The one place a domain error becomes a SCIM response. Server-side
/// details stay out of it: the caller logs `Error` itself.
impl From<Error> for ScimError {
    fn from(e: Error) -> Self {
        match e {
            Error::Scim(e) => e,
            Error::Store(StoreError::Throttled(_) | StoreError::Conflict) => {
                ScimError::service_unavailable("the service is busy; retry the request")
            }
            Error::Store(_) | Error::Corrupt { .. } => ScimError::internal(),
        }
    }
}
