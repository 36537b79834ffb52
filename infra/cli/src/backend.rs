//! The two places a command can act on: the local store, or a deployment
//! on AWS.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use lockstep_aws::{Deployment, SecretsManagerSecrets};
use lockstep_core::clock::SystemClock;
use lockstep_core::cursor::CursorKey;
use lockstep_core::secrets::SecretStore;
use lockstep_core::tokens::TokenStore;
use lockstep_core::{Limits, Roster, Tenant, TenantId, TenantSettings};
use lockstep_embedded::{EmbeddedTable, FileSecrets, FileTokens};
use lockstep_graph::Endpoints;

use crate::BackendKind;

pub struct Backend {
    pub kind: BackendKind,
    pub roster: Roster,
    pub tokens: Arc<dyn TokenStore>,
    /// The embedded table, when local (the runner serves it; seeding bulk-loads it).
    pub embedded: Option<EmbeddedTable>,
    pub cursor_key: CursorKey,
    pub public_url: Option<String>,
    /// Where the local store lives, for messages.
    pub location: String,
    /// Integration secrets (the Microsoft Graph client secret).
    pub secrets: Arc<dyn SecretStore>,
    /// The identity platform and Graph (`GRAPH_LOGIN_URL`, `GRAPH_API_URL`
    /// override Microsoft's).
    pub graph: Endpoints,
}

fn graph_endpoints() -> Endpoints {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.trim().is_empty());
    Endpoints::with_overrides(var("GRAPH_LOGIN_URL"), var("GRAPH_API_URL"))
}

fn random_key() -> anyhow::Result<Vec<u8>> {
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness available: {e}"))?;
    Ok(key)
}

/// The local cursor signing key: made once, kept beside the store, so
/// cursors stay valid across restarts.
fn local_cursor_key(path: &Path) -> anyhow::Result<CursorKey> {
    let key = match std::fs::read(path) {
        Ok(k) => k,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_key()?;
            write_private(path, &key)?;
            key
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    CursorKey::new(key).map_err(|e| anyhow!("{}: {e}", path.display()))
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    Ok(())
}

impl Backend {
    pub async fn open(kind: BackendKind, data_dir: &Path, public_url: Option<String>) -> anyhow::Result<Self> {
        let public_url = public_url
            .filter(|u| !u.trim().is_empty())
            .map(|u| lockstep_http::public_origin(&u))
            .transpose()
            .map_err(|e| anyhow!("{e}"))?;
        match kind {
            BackendKind::Local => Self::open_local(data_dir, public_url),
            BackendKind::Aws => Self::open_aws(public_url).await,
        }
    }

    fn open_local(data_dir: &Path, public_url: Option<String>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", data_dir.display()))?;
        }
        let store = data_dir.join("store.redb");
        let table = EmbeddedTable::open(&store).map_err(|e| {
            let text = e.to_string();
            if text.contains("already open") || text.contains("lock") {
                anyhow!(
                    "the local store {} is in use, most likely by a running `lockstep serve`; stop it, run this \
                     command, then start it again",
                    store.display()
                )
            } else {
                anyhow!("opening the local store: {text}")
            }
        })?;
        let cursor_key = local_cursor_key(&data_dir.join("cursor.key"))?;
        let roster = Roster::new(Arc::new(table.clone()), Arc::new(SystemClock), cursor_key.clone(), Limits::default());
        Ok(Self {
            kind: BackendKind::Local,
            roster,
            tokens: Arc::new(FileTokens::new(data_dir.join("tokens"))),
            embedded: Some(table),
            cursor_key,
            public_url,
            location: data_dir.display().to_string(),
            secrets: Arc::new(FileSecrets::new(data_dir.join("secrets"))),
            graph: graph_endpoints(),
        })
    }

    async fn open_aws(public_url: Option<String>) -> anyhow::Result<Self> {
        let deployment = Deployment::for_operator().map_err(|e| anyhow!("{e} (the stack's outputs name them)"))?;
        let clients = deployment.clients().await;
        // The CLI never pages through lists, so it signs no cursor a
        // function must read back: a throwaway key will do.
        let cursor_key = CursorKey::new(random_key()?).map_err(|e| anyhow!("{e}"))?;
        let roster = Roster::new(clients.table, Arc::new(SystemClock), cursor_key.clone(), Limits::default());
        Ok(Self {
            kind: BackendKind::Aws,
            roster,
            tokens: clients.tokens,
            embedded: None,
            cursor_key,
            public_url: public_url.or(deployment.public_url.clone()),
            location: format!("table {}", deployment.table_name),
            secrets: Arc::new(SecretsManagerSecrets::new(clients.secrets, &deployment.graph_secret_prefix)),
            graph: graph_endpoints(),
        })
    }

    pub fn local_only(&self, what: &str) -> anyhow::Result<&EmbeddedTable> {
        match &self.embedded {
            Some(t) => Ok(t),
            None => bail!("{what} works on the local store only (--backend local)"),
        }
    }

    /// The tenant's SCIM base URL, when the public URL is known.
    pub fn base_url(&self, tenant: &TenantId) -> Option<String> {
        self.public_url.as_ref().map(|u| format!("{u}/{tenant}/scim/v2"))
    }

    pub async fn existing_tenant(&self, id: &str) -> anyhow::Result<Tenant> {
        let tid = parse_tenant(id)?;
        self.roster
            .tenant(&tid)
            .await
            .map_err(|e| anyhow!("{e}"))?
            .ok_or_else(|| anyhow!("there is no tenant '{id}' in {}", self.location))
    }
}

impl Backend {
    /// The tenant, created with default settings if it does not exist yet;
    /// says whether it was created.
    pub async fn tenant_or_create(&self, id: &TenantId) -> anyhow::Result<(Tenant, bool)> {
        if let Some(t) = self.roster.tenant(id).await.map_err(|e| anyhow!("{e}"))? {
            return Ok((t, false));
        }
        let created = self.roster.create_tenant(id, id.as_str(), TenantSettings::default()).await;
        Ok((created.map_err(|e| anyhow!("{e}"))?, true))
    }
}

pub fn parse_tenant(id: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(id).map_err(|_| {
        anyhow!("'{id}' is not a valid tenant id: use 1 to 63 lowercase letters, digits and '-', not starting with '-'")
    })
}
