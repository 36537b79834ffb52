//! The Microsoft identity platform and Graph, over HTTPS: a client-
//! credentials token, cached until shortly before it expires, and the pages
//! of `GET /v1.0/users/delta`. Throttling and transient failures (429, 503,
//! 504, timeouts) are retried after `Retry-After`, a bounded number of
//! times; rejected credentials are told apart by the platform's error codes
//! so that the admin learns what to fix.

use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

/// Where the identity platform and Graph are: Microsoft's by default, a
/// local fake in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `https://login.microsoftonline.com`
    pub login: String,
    /// `https://graph.microsoft.com`
    pub graph: String,
    /// How long one HTTP request may take.
    pub timeout: Duration,
    /// The longest wait a `Retry-After` is honoured for.
    pub max_retry_wait: Duration,
}

impl Endpoints {
    /// Microsoft's, unless overridden (a test's fake server).
    pub fn with_overrides(login: Option<String>, graph: Option<String>) -> Self {
        let default = Self::default();
        Self { login: login.unwrap_or(default.login), graph: graph.unwrap_or(default.graph), ..default }
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            login: "https://login.microsoftonline.com".into(),
            graph: "https://graph.microsoft.com".into(),
            timeout: Duration::from_secs(30),
            max_retry_wait: Duration::from_secs(60),
        }
    }
}

/// An app registration's credentials. The secret is never logged:
/// `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The Directory (tenant) id.
    pub directory_id: String,
    /// The Application (client) id.
    pub client_id: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("directory_id", &self.directory_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why the identity platform or Graph refused the credentials, in terms of
/// what the customer's admin must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// AADSTS7000215: the secret is not the app's.
    WrongSecret,
    /// AADSTS7000222: the secret has expired.
    ExpiredSecret,
    /// AADSTS65001, or a token that carries no application permission: an
    /// admin has not granted consent.
    NoAdminConsent,
    /// Graph answers 403 with a token that has permissions, but not
    /// `User.Read.All`.
    PermissionMissing,
    /// AADSTS90002 / AADSTS90023: no such directory (tenant) id.
    UnknownDirectory,
    /// AADSTS700016: no such application (client) id in the directory.
    UnknownApplication,
    /// Another code, as the platform gave it.
    Other(String),
}

impl Refusal {
    /// What happened and what to do, in plain words.
    pub fn explain(&self) -> String {
        match self {
            Refusal::WrongSecret => "the client secret is wrong: copy the secret's Value (not its ID) from the app \
                                     registration's Certificates & secrets, and connect again"
                .into(),
            Refusal::ExpiredSecret => "the client secret has expired: create a new secret in the app registration's \
                                       Certificates & secrets, and connect again with it"
                .into(),
            Refusal::NoAdminConsent => "an admin has not granted consent: in the app registration's API permissions, \
                                        press \"Grant admin consent\""
                .into(),
            Refusal::PermissionMissing => "the app may not read users: add the Microsoft Graph application permission \
                                           User.Read.All in API permissions, and grant admin consent"
                .into(),
            Refusal::UnknownDirectory => {
                "no Microsoft Entra directory has this Directory (tenant) id: copy it from the app's Overview".into()
            }
            Refusal::UnknownApplication => "the directory has no app with this Application (client) id: copy it \
                                            from the app registration's Overview"
                .into(),
            Refusal::Other(code) => format!("Microsoft Entra ID refused the credentials ({code})"),
        }
    }

    fn from_codes(codes: &[u64], description: &str) -> Refusal {
        let has = |code: u64| codes.contains(&code) || description.contains(&format!("AADSTS{code}:"));
        if has(7_000_215) {
            Refusal::WrongSecret
        } else if has(7_000_222) {
            Refusal::ExpiredSecret
        } else if has(65_001) {
            Refusal::NoAdminConsent
        } else if has(90_002) || has(90_023) {
            Refusal::UnknownDirectory
        } else if has(700_016) {
            Refusal::UnknownApplication
        } else {
            let code = codes.first().map_or_else(|| "no error code".to_string(), |c| format!("AADSTS{c}"));
            Refusal::Other(code)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("credentials refused: {}", .0.explain())]
    Refused(Refusal),
    /// The delta state is gone or expired (410, or an invalid delta
    /// token): the round must start again from the beginning.
    #[error("Microsoft Graph asks for a full resynchronisation")]
    Resync,
    /// Still throttled or unavailable after the retries.
    #[error("Microsoft Graph is throttling or unavailable ({0}); the next run retries")]
    Unavailable(String),
    #[error("Microsoft Graph answered {status}: {detail}")]
    Http { status: u16, detail: String },
    #[error("a link from Microsoft Graph points elsewhere than {0}; it was not followed")]
    ForeignLink(String),
    #[error("unexpected answer from Microsoft Graph: {0}")]
    Invalid(String),
}

/// Users per delta page asked of Graph (`Prefer: odata.maxpagesize`), its
/// largest page.
pub const PAGE_SIZE: usize = 999;

/// One user of a delta page as Graph sent it. A delta object may carry only
/// the properties that changed: a property absent from `properties` is
/// unchanged, one present as `null` was cleared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeltaUser {
    pub id: String,
    /// `@removed` was present: the user left the directory (or the app's view).
    pub removed: bool,
    /// The user's properties as sent, without `id` and annotations.
    pub properties: serde_json::Map<String, Value>,
}

impl DeltaUser {
    fn from_object(mut object: serde_json::Map<String, Value>) -> Self {
        let id = match object.remove("id") {
            Some(Value::String(id)) => id,
            _ => String::new(),
        };
        let removed = object.remove("@removed").is_some();
        object.retain(|k, _| !k.starts_with('@'));
        Self { id, removed, properties: object }
    }
}

/// One page of a delta round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeltaPage {
    pub users: Vec<DeltaUser>,
    /// The next page of this round.
    pub next_link: Option<String>,
    /// On the round's last page: where the next round starts.
    pub delta_link: Option<String>,
    /// Requests answered 429, 503 or 504 (or timed out) and retried.
    pub throttled: u32,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize, Default)]
struct TokenRefusal {
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

#[derive(Deserialize)]
struct DeltaAnswer {
    #[serde(default)]
    value: Vec<serde_json::Map<String, Value>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

struct CachedToken {
    token: String,
    until: Instant,
}

/// How long before its expiry a token is replaced.
const TOKEN_EARLY: Duration = Duration::from_secs(300);
/// Tries of one request that is throttled, unavailable or times out.
const TRIES: u32 = 5;

/// A Graph client for one tenant's credentials, with its token cache.
pub struct GraphClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    credentials: Credentials,
    token: Mutex<Option<CachedToken>>,
}

/// TLS for the identity platform and Graph: the AWS SDK's crypto provider
/// (aws-lc-rs), the bundled web PKI roots, TLS 1.2 and 1.3.
fn tls_config() -> Result<rustls::ClientConfig, GraphError> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GraphError::Invalid(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl GraphClient {
    pub fn new(endpoints: Endpoints, credentials: Credentials) -> Result<Self, GraphError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config()?)
            .timeout(endpoints.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GraphError::Invalid(format!("HTTP client: {e}")))?;
        Ok(Self { http, endpoints, credentials, token: Mutex::new(None) })
    }

    /// A token, from the cache until shortly before it expires.
    pub async fn token(&self) -> Result<String, GraphError> {
        if !is_platform_id(&self.credentials.directory_id) {
            return Err(GraphError::Refused(Refusal::UnknownDirectory));
        }
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.until) {
            return Ok(t.token.clone());
        }
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.endpoints.login.trim_end_matches('/'),
            self.credentials.directory_id
        );
        let form = [
            ("client_id", self.credentials.client_id.as_str()),
            ("client_secret", self.credentials.secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ];
        let (response, _) = self.send(|| self.http.post(&url).form(&form)).await?;
        let status = response.status();
        let body = response.text().await.map_err(|e| GraphError::Invalid(e.to_string()))?;
        if !status.is_success() {
            let refusal: TokenRefusal = serde_json::from_str(&body).unwrap_or_default();
            if status.as_u16() == 400 || status.as_u16() == 401 {
                return Err(GraphError::Refused(Refusal::from_codes(&refusal.error_codes, &refusal.error_description)));
            }
            return Err(GraphError::Http { status: status.as_u16(), detail: first_line(&refusal.error_description) });
        }
        let answer: TokenAnswer = serde_json::from_str(&body).map_err(|e| GraphError::Invalid(e.to_string()))?;
        let lifetime = Duration::from_secs(answer.expires_in).saturating_sub(TOKEN_EARLY);
        *cached = Some(CachedToken { token: answer.access_token.clone(), until: Instant::now() + lifetime });
        Ok(answer.access_token)
    }

    /// The first page of a new round, selecting `select`.
    pub fn first_page_url(&self, select: &str) -> String {
        format!("{}/v1.0/users/delta?$select={select}", self.endpoints.graph.trim_end_matches('/'))
    }

    /// One page of a delta round: `url` is the round's first page, a next
    /// link, or a delta link. Links are followed only to the configured
    /// Graph host, so a tampered link cannot carry the token elsewhere.
    pub async fn delta_page(&self, url: &str) -> Result<DeltaPage, GraphError> {
        let graph = self.endpoints.graph.trim_end_matches('/');
        if !url.starts_with(&format!("{graph}/")) {
            return Err(GraphError::ForeignLink(graph.to_string()));
        }
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            // Graph pages 100 users unless asked for more; 999 is its most.
            let (response, throttled) = self
                .send(|| {
                    self.http.get(url).bearer_auth(&token).header("Prefer", format!("odata.maxpagesize={PAGE_SIZE}"))
                })
                .await?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(|e| GraphError::Invalid(e.to_string()))?;
            match status {
                200 => {
                    let answer: DeltaAnswer =
                        serde_json::from_str(&body).map_err(|e| GraphError::Invalid(e.to_string()))?;
                    return Ok(DeltaPage {
                        users: answer.value.into_iter().map(DeltaUser::from_object).collect(),
                        next_link: answer.next_link,
                        delta_link: answer.delta_link,
                        throttled,
                    });
                }
                // A token revoked or expired early: one fresh token.
                401 if !refreshed => {
                    refreshed = true;
                    *self.token.lock().await = None;
                }
                403 => return Err(GraphError::Refused(self.why_forbidden(&token))),
                410 => return Err(GraphError::Resync),
                400 if needs_resync(&body) => return Err(GraphError::Resync),
                _ => return Err(GraphError::Http { status, detail: graph_error(&body) }),
            }
        }
    }

    /// Send a request, retrying 429, 503, 504 and timeouts after
    /// `Retry-After` (or an exponential wait), at most [`TRIES`] times.
    /// Returns the response and how many tries were throttled.
    async fn send(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::Response, u32), GraphError> {
        let mut throttled = 0;
        loop {
            let why = match request().send().await {
                Ok(r) if matches!(r.status().as_u16(), 429 | 503 | 504) => {
                    let wait = retry_after(&r).unwrap_or_else(|| Duration::from_secs(1 << throttled.min(5)));
                    (format!("HTTP {}", r.status().as_u16()), wait)
                }
                Ok(r) => return Ok((r, throttled)),
                Err(e) if e.is_timeout() || e.is_connect() => {
                    (format!("no answer within {:?}", self.endpoints.timeout), Duration::from_secs(1))
                }
                Err(e) => return Err(GraphError::Unavailable(without_url(&e))),
            };
            throttled += 1;
            if throttled >= TRIES {
                return Err(GraphError::Unavailable(why.0));
            }
            tokio::time::sleep(why.1.min(self.endpoints.max_retry_wait)).await;
        }
    }

    /// A 403 from Graph: consent never granted (the token carries no
    /// application permission at all), or `User.Read.All` missing.
    fn why_forbidden(&self, token: &str) -> Refusal {
        let roles = token_roles(token);
        if roles.is_empty() { Refusal::NoAdminConsent } else { Refusal::PermissionMissing }
    }
}

/// Whether `id` can be a directory (tenant) or application (client) id:
/// a GUID, or for a directory a domain (`contoso.onmicrosoft.com`). The
/// directory id goes into the token URL's path, so nothing else may.
pub fn is_platform_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 100 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The `roles` claim of an access token (read for the message only; the
/// token is not verified here, Graph verifies it).
fn token_roles(token: &str) -> Vec<String> {
    let Some(payload) = token.split('.').nth(1) else { return Vec::new() };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')) else {
        return Vec::new();
    };
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|claims| claims.get("roles").cloned())
        .and_then(|roles| serde_json::from_value(roles).ok())
        .unwrap_or_default()
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Graph's answer when a delta token is no longer usable.
fn needs_resync(body: &str) -> bool {
    let code = graph_error_code(body).to_ascii_lowercase();
    ["syncstatenotfound", "syncstateinvalid", "resyncrequired", "invaliddeltatoken"].iter().any(|c| code.contains(c))
        || body.to_ascii_lowercase().contains("delta token")
}

fn graph_error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.get("code")?.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn graph_error(body: &str) -> String {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let message = parsed.as_ref().and_then(|v| v.get("error")?.get("message")?.as_str()).unwrap_or(body);
    first_line(message)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().chars().take(300).collect()
}

/// A transport error without its URL, which may carry a delta token.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

#[cfg(test)]
mod tests {

    #[test]
    fn tls_uses_the_aws_sdk_crypto_provider_and_bundled_roots() {
        let config = tls_config().unwrap_or_else(|e| panic!("{e}"));
        let aws_lc = rustls::crypto::aws_lc_rs::default_provider();
        let suites = |p: &rustls::crypto::CryptoProvider| p.cipher_suites.iter().map(|s| s.suite()).collect::<Vec<_>>();
        assert_eq!(suites(config.crypto_provider()), suites(&aws_lc));
        let endpoints = Endpoints::with_overrides(None, None);
        let credentials =
            Credentials { directory_id: "contoso.onmicrosoft.com".into(), client_id: "c".into(), secret: "s".into() };
        assert!(GraphClient::new(endpoints, credentials).is_ok());
    }

    use super::*;

    #[test]
    fn refusals_are_told_apart_by_code() {
        let table: [(&[u64], &str, Refusal); 7] = [
            (&[7_000_215], "", Refusal::WrongSecret),
            (&[7_000_222], "", Refusal::ExpiredSecret),
            (&[65_001], "", Refusal::NoAdminConsent),
            (&[90_002], "", Refusal::UnknownDirectory),
            (&[700_016], "", Refusal::UnknownApplication),
            (&[], "AADSTS7000222: The provided client secret keys are expired.", Refusal::ExpiredSecret),
            (&[50_000], "", Refusal::Other("AADSTS50000".into())),
        ];
        for (codes, description, expected) in table {
            assert_eq!(Refusal::from_codes(codes, description), expected, "{codes:?}");
        }
        assert!(Refusal::ExpiredSecret.explain().contains("expired"));
        assert!(Refusal::PermissionMissing.explain().contains("User.Read.All"));
    }

    #[test]
    fn credentials_never_show_their_secret() {
        let c = Credentials { directory_id: "d".into(), client_id: "c".into(), secret: "s3cr3t-value".into() };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn token_roles_are_read_from_the_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"roles":["User.Read.All"]}"#);
        assert_eq!(token_roles(&format!("h.{payload}.s")), vec!["User.Read.All".to_string()]);
        assert!(token_roles("not a jwt").is_empty());
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"aud":"x"}"#);
        assert!(token_roles(&format!("h.{none}.s")).is_empty());
    }

    #[test]
    fn expired_delta_tokens_ask_for_a_resync() {
        assert!(needs_resync(r#"{"error":{"code":"syncStateNotFound","message":"gone"}}"#));
        assert!(needs_resync(r#"{"error":{"code":"Request_BadRequest","message":"Invalid delta token."}}"#));
        assert!(!needs_resync(r#"{"error":{"code":"Request_BadRequest","message":"bad select"}}"#));
    }
}
