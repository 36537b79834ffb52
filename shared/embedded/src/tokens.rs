//! Tenant tokens for the local runner: one JSON file per tenant under the
//! data directory, holding hashes only, readable by the owner only.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lockstep_core::store::StoreError;
use lockstep_core::tenant::TenantId;
use lockstep_core::tokens::{self, Revision, TokenSet, TokenStore};

#[derive(Clone, Debug)]
pub struct FileTokens {
    dir: PathBuf,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl FileTokens {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, tenant: &TenantId) -> PathBuf {
        self.dir.join(format!("{tenant}.json"))
    }
}

/// A file's revision: the hash of its bytes.
fn revision_of(bytes: &[u8]) -> Revision {
    Revision(Some(tokens::hash(&String::from_utf8_lossy(bytes))))
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

#[async_trait]
impl TokenStore for FileTokens {
    async fn read(&self, tenant: &TenantId) -> Result<(TokenSet, Revision), StoreError> {
        let path = self.path(tenant);
        match tokio::task::spawn_blocking(move || read_file(&path)).await.map_err(unavailable)?? {
            Some(bytes) => {
                let set =
                    serde_json::from_slice(&bytes).map_err(|e| unavailable(format!("tokens of {tenant}: {e}")))?;
                Ok((set, revision_of(&bytes)))
            }
            None => Ok((TokenSet::default(), Revision(None))),
        }
    }

    async fn save_if(&self, tenant: &TenantId, tokens: &TokenSet, read: &Revision) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(tokens).map_err(unavailable)?;
        let (dir, path, read) = (self.dir.clone(), self.path(tenant), read.clone());
        let lock_path = self.dir.join(format!("{tenant}.lock"));
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(unavailable)?;
            // An exclusive lock (released when the file closes, also on a
            // crash) makes the compare and the replace one step for every
            // process sharing the folder.
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(unavailable)?;
            lock.lock().map_err(unavailable)?;
            let current = read_file(&path)?.map_or(Revision(None), |b| revision_of(&b));
            if current != read {
                return Err(StoreError::ConditionFailed { index: None });
            }
            let staging = path.with_extension("json.tmp");
            std::fs::write(&staging, bytes).map_err(unavailable)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600)).map_err(unavailable)?;
            }
            // Rename is atomic: a crash leaves the old set or the new one.
            std::fs::rename(&staging, &path).map_err(unavailable)
        })
        .await
        .map_err(unavailable)?
    }
}

/// Integration secrets of the local runner: one private file (mode 0600)
/// per tenant and name under the data folder, replaced atomically.
#[derive(Clone, Debug)]
pub struct FileSecrets {
    dir: PathBuf,
}

impl FileSecrets {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, tenant: &TenantId, name: &str) -> Result<PathBuf, StoreError> {
        // Names are the service's own (`graph-client-secret`), never input.
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(StoreError::Unavailable(format!("'{name}' is not a secret name")));
        }
        Ok(self.dir.join(tenant.as_str()).join(name))
    }
}

#[async_trait]
impl lockstep_core::secrets::SecretStore for FileSecrets {
    async fn get(&self, tenant: &TenantId, name: &str) -> Result<Option<String>, StoreError> {
        let path = self.path(tenant, name)?;
        Ok(read_file(&path)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    async fn put(&self, tenant: &TenantId, name: &str, value: &str) -> Result<(), StoreError> {
        let path = self.path(tenant, name)?;
        let value = value.to_string();
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(unavailable)?;
            }
            let staging = path.with_extension("tmp");
            std::fs::write(&staging, b"").map_err(unavailable)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600)).map_err(unavailable)?;
            }
            std::fs::write(&staging, value.as_bytes()).map_err(unavailable)?;
            std::fs::rename(&staging, &path).map_err(unavailable)
        })
        .await
        .map_err(unavailable)?
    }
}
