//! Tenant tokens for the local runner: one JSON file per tenant under the
//! data directory, holding hashes only, readable by the owner only.

use std::path::PathBuf;

use async_trait::async_trait;
use lockstep_core::store::StoreError;
use lockstep_core::tenant::TenantId;
use lockstep_core::tokens::{TokenSet, TokenStore};

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

#[async_trait]
impl TokenStore for FileTokens {
    async fn load(&self, tenant: &TenantId) -> Result<TokenSet, StoreError> {
        match tokio::fs::read(self.path(tenant)).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| unavailable(format!("tokens of {tenant}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenSet::default()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn save(&self, tenant: &TenantId, tokens: &TokenSet) -> Result<(), StoreError> {
        tokio::fs::create_dir_all(&self.dir).await.map_err(unavailable)?;
        let path = self.path(tenant);
        let staging = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(tokens).map_err(unavailable)?;
        tokio::fs::write(&staging, bytes).await.map_err(unavailable)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600)).await.map_err(unavailable)?;
        }
        // Rename is atomic: a crash leaves the old set or the new one.
        tokio::fs::rename(&staging, &path).await.map_err(unavailable)
    }
}
