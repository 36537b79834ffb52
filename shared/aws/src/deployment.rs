//! A deployment's configuration, read from the environment once at start,
//! and the AWS clients built from it. Endpoint overrides
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, ...) are honoured by
//! the SDK's own configuration loading.

use std::sync::Arc;

use lockstep_core::cursor::CursorKey;
use lockstep_core::store::{Key, StoreError, Table};

use crate::dynamo::DynamoTable;
use crate::secrets::SecretsManagerTokens;

/// What the functions (and the operator CLI) need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// `TABLE_NAME`: the single DynamoDB table.
    pub table_name: String,
    /// `TOKEN_SECRET_PREFIX`: tenant token secrets are `<prefix><tenant>`.
    pub token_secret_prefix: String,
    /// `CURSOR_KEY_SECRET`: the secret holding the cursor signing key
    /// (needed by the functions that page, not by the operator CLI).
    pub cursor_key_secret: Option<String>,
    /// `PUBLIC_URL`: the URL clients use, when a custom domain fronts the API.
    pub public_url: Option<String>,
    /// `GRAPH_SECRET_PREFIX`: Microsoft Graph client secrets are
    /// `<prefix><tenant>/graph-client-secret`.
    pub graph_secret_prefix: String,
    /// `GRAPH_LOGIN_URL`, `GRAPH_API_URL`: the identity platform and Graph,
    /// when not Microsoft's (a test's fake).
    pub graph_login_url: Option<String>,
    pub graph_api_url: Option<String>,
    /// `STAGE`: the stack's stage (`production`, `sandbox`), a dimension of
    /// every metric.
    pub stage: String,
}

/// The AWS clients of a deployment, built once.
pub struct Clients {
    pub table: Arc<DynamoTable>,
    pub tokens: Arc<SecretsManagerTokens>,
    pub secrets: aws_sdk_secretsmanager::Client,
}

/// The clients and keys of a running function.
pub struct Connected {
    pub clients: Clients,
    pub cursor_key: CursorKey,
}

fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn require(names: &[&str]) -> Result<(), String> {
    let missing: Vec<String> = names
        .iter()
        .filter(|n| setting(n).is_none())
        .map(|n| format!("the environment variable {n} must be set"))
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(missing.join("; ")) }
}

impl Deployment {
    fn read() -> Self {
        Self {
            table_name: setting("TABLE_NAME").unwrap_or_default(),
            token_secret_prefix: setting("TOKEN_SECRET_PREFIX").unwrap_or_default(),
            cursor_key_secret: setting("CURSOR_KEY_SECRET"),
            public_url: setting("PUBLIC_URL"),
            graph_secret_prefix: setting("GRAPH_SECRET_PREFIX").unwrap_or_else(|| {
                format!("lockstep/{}/graph/", setting("STAGE").unwrap_or_else(|| "default".to_string()))
            }),
            graph_login_url: setting("GRAPH_LOGIN_URL"),
            graph_api_url: setting("GRAPH_API_URL"),
            stage: setting("STAGE").unwrap_or_else(|| "default".to_string()),
        }
    }

    /// A function's configuration; every missing setting is reported at once.
    pub fn for_function() -> Result<Self, String> {
        require(&["TABLE_NAME", "TOKEN_SECRET_PREFIX", "CURSOR_KEY_SECRET"])?;
        Ok(Self::read())
    }

    /// The scheduled job's configuration: the table (and where Graph
    /// secrets are, which has a default).
    pub fn for_job() -> Result<Self, String> {
        require(&["TABLE_NAME"])?;
        Ok(Self::read())
    }

    /// The operator CLI's configuration: the table and the token secrets.
    pub fn for_operator() -> Result<Self, String> {
        require(&["TABLE_NAME", "TOKEN_SECRET_PREFIX"])?;
        Ok(Self::read())
    }

    /// Build the SDK clients (no network call yet).
    pub async fn clients(&self) -> Clients {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        Clients {
            table: Arc::new(DynamoTable::new(dynamodb, &self.table_name)),
            tokens: Arc::new(SecretsManagerTokens::new(secrets.clone(), &self.token_secret_prefix)),
            secrets,
        }
    }

    /// Build the clients, read the cursor key and warm the DynamoDB
    /// connection (TLS, credentials), so the first request pays for none of it.
    pub async fn connect(&self) -> Result<Connected, String> {
        let clients = self.clients().await;
        let secret =
            self.cursor_key_secret.as_deref().ok_or("the environment variable CURSOR_KEY_SECRET must be set")?;
        let warm_table = {
            let table = Arc::clone(&clients.table);
            async move { table.get(&Key::new("WARMUP", "WARMUP")).await }
        };
        let (key, warmed) = tokio::join!(SecretsManagerTokens::read_string(&clients.secrets, secret), warm_table);
        warmed.map_err(|e: StoreError| format!("table {}: {e}", self.table_name))?;
        let key = key
            .map_err(|e| format!("secret {secret}: {e}"))?
            .ok_or_else(|| format!("the secret {secret} does not exist"))?
            .0;
        let cursor_key = CursorKey::new(key.into_bytes()).map_err(|e| format!("secret {secret}: {e}"))?;
        Ok(Connected { clients, cursor_key })
    }
}
