//! Typed settings and their layering (API.md, "Configuration"): the compiled-in
//! `config/default.toml`, then `$CENSUS_CONFIG_DIR/<CENSUS_ENV>.toml` if present,
//! then `CENSUS__SECTION__KEY` environment variables. Unknown keys and bad values
//! stop start-up with the key's name. Secrets never print.

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub registry: RegistrySettings,
    pub census: CensusSettings,
    pub survey: SurveySettings,
    pub password: PasswordSettings,
    pub lockout: LockoutSettings,
    pub session: SessionSettings,
    pub rate_limit: RateLimitSettings,
    #[serde(default)]
    pub secrets: SecretSettings,
    pub web: WebSettings,
    pub log: LogSettings,
    pub oidc: OidcSettings,
    pub national_node: NationalNodeSettings,
}

/// login.gov.pl, the national node (API.md; docs/national-node.md). Needs a
/// build with the cargo feature `national-node` when enabled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalNodeSettings {
    pub enabled: bool,
    /// `None`: `server.public_origin` + `/saml/metadata`.
    pub sp_entity_id: Option<String>,
    pub idp_metadata_file: Option<PathBuf>,
    /// PEM; its key is `secrets.saml_sp_key`. Signs requests.
    pub sp_certificate_file: Option<PathBuf>,
    /// Extension: PEM of the key the node encrypts assertions to
    /// (`secrets.saml_sp_encryption_key`); unset = none published, and
    /// encrypted assertions are refused.
    pub sp_encryption_certificate_file: Option<PathBuf>,
    pub min_loa: String,
    /// Extension: tolerated clock difference with the node.
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// Extension: how long a sent request waits for its response.
    #[serde(with = "humantime_serde")]
    pub request_ttl: Duration,
    /// Extension: bound of the back-channel artifact resolution.
    #[serde(with = "humantime_serde")]
    pub artifact_timeout: Duration,
    /// Extension: PEM bundle of CAs trusted for the node's artifact
    /// resolution service besides the system's (e.g. the integration
    /// environment's).
    pub artifact_ca_file: Option<PathBuf>,
    /// Extension: PEM certificate (chain) this service presents to the
    /// node's artifact resolution service (mutual TLS); its key is
    /// `secrets.saml_artifact_client_key`.
    pub artifact_client_certificate_file: Option<PathBuf>,
}

impl NationalNodeSettings {
    pub fn sp_entity_id(&self, server: &ServerSettings) -> String {
        self.sp_entity_id.clone().unwrap_or_else(|| {
            format!(
                "{}/saml/metadata",
                server.public_origin.trim_end_matches('/')
            )
        })
    }

    fn check(&self, secrets: &SecretSettings) -> Result<(), (&'static str, String)> {
        if !self.enabled {
            return Ok(());
        }
        if !cfg!(feature = "national-node") {
            return Err((
                "national_node.enabled",
                "this build has no SAML support: build with `cargo build --release --features national-node` (needs Debian libxmlsec1-dev libxml2-dev libssl-dev pkg-config libclang-dev)".into(),
            ));
        }
        if self.idp_metadata_file.is_none() {
            return Err((
                "national_node.idp_metadata_file",
                "required when enabled".into(),
            ));
        }
        if self.sp_certificate_file.is_none() {
            return Err((
                "national_node.sp_certificate_file",
                "required when enabled".into(),
            ));
        }
        if secrets.saml_sp_key.is_none() {
            return Err((
                "secrets.saml_sp_key",
                "required when national_node.enabled (or CENSUS__SECRETS__SAML_SP_KEY_FILE)".into(),
            ));
        }
        if self.sp_encryption_certificate_file.is_some() != secrets.saml_sp_encryption_key.is_some()
        {
            return Err((
                "national_node.sp_encryption_certificate_file",
                "set together with secrets.saml_sp_encryption_key, or neither".into(),
            ));
        }
        if self.artifact_client_certificate_file.is_some()
            != secrets.saml_artifact_client_key.is_some()
        {
            return Err((
                "national_node.artifact_client_certificate_file",
                "set together with secrets.saml_artifact_client_key, or neither".into(),
            ));
        }
        if crate::domain::Loa::parse(&self.min_loa).is_none() {
            return Err((
                "national_node.min_loa",
                "one of http://eidas.europa.eu/LoA/low, …/substantial, …/high".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub public_origin: String,
    pub trusted_proxies: Vec<IpNet>,
    #[serde(with = "humantime_serde")]
    pub shutdown_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub backend: Backend,
    pub redis_url: String,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Replicas that must have each settlement before it is acknowledged.
    pub wait_replicas: u32,
    #[serde(with = "humantime_serde")]
    pub wait_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// `None`: the bundled demo registry; `Some("")`: none.
    pub seed_file: Option<String>,
    pub refuse_reserved: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CensusSettings {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub opens_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub closes_at: Option<OffsetDateTime>,
    pub helpline: String,
    /// After `closes_at` + this, no-PESEL requests and other census data expire.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveySettings {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    pub min_length: usize,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub max_concurrent_hashes: Option<usize>,
    pub max_queued_hashes: Option<usize>,
    /// Nice value of the hashing threads (Linux; 0 = the request workers' own).
    pub hash_thread_nice: i32,
    /// How long a login or definition shed with 503 `overloaded` is held
    /// before it is answered: a client retrying at once then costs little.
    #[serde(with = "humantime_serde")]
    pub shed_delay: Duration,
}

impl PasswordSettings {
    pub fn hash_slots(&self) -> usize {
        self.max_concurrent_hashes
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    pub fn hash_queue(&self) -> usize {
        self.max_queued_hashes.unwrap_or(4 * self.hash_slots())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutSettings {
    pub max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub base_block: Duration,
    pub multiplier: u32,
    #[serde(with = "humantime_serde")]
    pub max_block: Duration,
    #[serde(with = "humantime_serde")]
    pub forget_after: Duration,
    #[serde(with = "humantime_serde")]
    pub reservation_ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    pub cookie_secure: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub per_ip_per_minute: u32,
    pub burst: u32,
    /// Clients are counted per network of this prefix length (an IPv6 client
    /// owns a whole /64 and could otherwise rotate through it).
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    pub pepper: Option<SecretString>,
    pub pepper_file: Option<PathBuf>,
    pub admin_token: Option<SecretString>,
    pub admin_token_file: Option<PathBuf>,
    /// Per-operator tokens: lines `name:sha256-hex-of-token`; the name is the
    /// audit actor. Re-read when it changes ([`crate::admin_tokens`]).
    pub admin_tokens_file: Option<PathBuf>,
    /// `AUTH` password of the Redis data nodes (single, Cluster, Sentinel's
    /// master and replicas); a password in `store.redis_url` wins.
    pub redis_password: Option<SecretString>,
    pub redis_password_file: Option<PathBuf>,
    /// `AUTH` password of the Sentinels themselves (their `requirepass`).
    pub redis_sentinel_password: Option<SecretString>,
    pub redis_sentinel_password_file: Option<PathBuf>,
    /// PEM: one or more EC P-256 private keys; the first signs ID tokens.
    pub oidc_signing_keys: Option<SecretString>,
    pub oidc_signing_keys_file: Option<PathBuf>,
    /// PEM: the SAML SP's private key (signs AuthnRequest, ArtifactResolve).
    pub saml_sp_key: Option<SecretString>,
    pub saml_sp_key_file: Option<PathBuf>,
    /// PEM: the key assertions are encrypted to (EC for ECDH-ES, or RSA;
    /// with `national_node.sp_encryption_certificate_file`).
    pub saml_sp_encryption_key: Option<SecretString>,
    pub saml_sp_encryption_key_file: Option<PathBuf>,
    /// PEM: the TLS client key for the node's artifact resolution service
    /// (with `national_node.artifact_client_certificate_file`).
    pub saml_artifact_client_key: Option<SecretString>,
    pub saml_artifact_client_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    pub login_gov_url: String,
    pub form_url: String,
}

/// The OpenID Connect provider (API.md, "Hand-off to the census form").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// `None`: `server.public_origin`.
    pub issuer: Option<String>,
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    #[serde(default)]
    pub clients: Vec<OidcClientSettings>,
}

/// A relying party. Configuration holds only the SHA-256 of its secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcClientSettings {
    pub id: String,
    pub secret_sha256: String,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Extension: the service's name, shown to the person on the login page.
    pub name: Option<String>,
}

/// The demo client of `config/default.toml`: refused with the Redis backend.
pub const DEMO_CLIENT_ID: &str = "census-form-demo";

impl OidcSettings {
    pub fn issuer<'a>(&'a self, server: &'a ServerSettings) -> &'a str {
        self.issuer
            .as_deref()
            .unwrap_or(&server.public_origin)
            .trim_end_matches('/')
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for c in &self.clients {
            if c.id.is_empty() || !seen.insert(c.id.as_str()) {
                return Err(format!("client id `{}` is empty or repeated", c.id));
            }
            let mut digest = [0u8; 32];
            if hex::decode_to_slice(&c.secret_sha256, &mut digest).is_err() {
                return Err(format!(
                    "client `{}`: secret_sha256 must be 64 hex digits",
                    c.id
                ));
            }
            if c.redirect_uris.is_empty() {
                return Err(format!("client `{}`: redirect_uris is empty", c.id));
            }
            for uri in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
                let scheme_ok = uri.starts_with("https://") || uri.starts_with("http://");
                if !scheme_ok || uri.contains('#') {
                    return Err(format!(
                        "client `{}`: `{uri}` must be an absolute http(s) URI without a fragment",
                        c.id
                    ));
                }
            }
        }
        if self.code_ttl.is_zero() || self.access_token_ttl.is_zero() {
            return Err("code_ttl and access_token_ttl must be positive".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: Option<LogFormat>,
    pub level: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration: cannot read secret file for {key} ({path}): {source}")]
    SecretFile {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
}

impl Settings {
    /// Loads the layers from the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let dir = std::env::var_os("CENSUS_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let env = std::env::var("CENSUS_ENV").ok();
        Self::from_figment(Self::figment(&dir, env.as_deref()).merge(env_provider()))
    }

    /// Defaults plus the environment file, without environment variables.
    pub fn figment(dir: &Path, env: Option<&str>) -> Figment {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(env) = env.filter(|e| !e.is_empty()) {
            figment = figment.merge(Toml::file(dir.join(format!("{env}.toml"))));
        }
        figment
    }

    /// Extracts, resolves `*_FILE` secrets and checks cross-key rules.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let mut settings: Settings = figment.extract().map_err(|e| {
            ConfigError::Invalid(
                e.into_iter()
                    .map(|e| {
                        let key = e.path.join(".");
                        if key.is_empty() {
                            e.to_string()
                        } else {
                            format!("key `{key}`: {}", e.kind)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        settings.secrets.resolve_files()?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::Invalid(format!("key `{key}`: {why}")));
        if self.backend() == Backend::Redis && self.secrets.pepper.is_none() {
            return bad(
                "secrets.pepper",
                "required with the redis backend (set CENSUS__SECRETS__PEPPER or CENSUS__SECRETS__PEPPER_FILE)",
            );
        }
        if !(1..=128).contains(&self.password.min_length) {
            return bad("password.min_length", "must be between 1 and 128");
        }
        if self.password.argon2_memory_kib < 8 * self.password.argon2_parallelism.max(1) {
            return bad(
                "password.argon2_memory_kib",
                "too small for the parallelism",
            );
        }
        if self.password.argon2_iterations == 0 || self.password.argon2_parallelism == 0 {
            return bad(
                "password.argon2_iterations",
                "iterations and parallelism must be at least 1",
            );
        }
        if self.rate_limit.per_ip_per_minute == 0 || self.rate_limit.burst == 0 {
            return bad("rate_limit.per_ip_per_minute", "limits must be at least 1");
        }
        if self.rate_limit.ipv4_prefix > 32 {
            return bad("rate_limit.ipv4_prefix", "at most 32");
        }
        if self.rate_limit.ipv6_prefix > 128 {
            return bad("rate_limit.ipv6_prefix", "at most 128");
        }
        if self.lockout.max_failures == 0 {
            return bad("lockout.max_failures", "must be at least 1");
        }
        if let Some(path) = &self.secrets.admin_tokens_file
            && let Err(why) = crate::admin_tokens::load(path)
        {
            return bad("secrets.admin_tokens_file", &why);
        }
        if let Err(why) = self.oidc.check() {
            return bad("oidc.clients", &why);
        }
        if self.backend() == Backend::Redis && !self.oidc.clients.is_empty() {
            if self.oidc.clients.iter().any(|c| c.id == DEMO_CLIENT_ID) {
                return bad(
                    "oidc.clients",
                    "the demo client is for the memory backend only: configure the real clients (none in production)",
                );
            }
            if self.secrets.oidc_signing_keys.is_none() {
                return bad(
                    "secrets.oidc_signing_keys",
                    "required with the redis backend when a client is configured (or CENSUS__SECRETS__OIDC_SIGNING_KEYS_FILE)",
                );
            }
        }
        if let Err((key, why)) = self.national_node.check(&self.secrets) {
            return bad(key, &why);
        }
        if let (Some(open), Some(close)) = (self.census.opens_at, self.census.closes_at)
            && open >= close
        {
            return bad("census.closes_at", "must be after census.opens_at");
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.store.backend
    }
}

/// `CENSUS__SERVER__LISTEN` → `server.listen`. `CENSUS_ENV` and
/// `CENSUS_CONFIG_DIR` (one underscore) are not configuration keys.
pub fn env_provider() -> Env {
    Env::prefixed("CENSUS__").split("__")
}

impl SecretSettings {
    fn resolve_files(&mut self) -> Result<(), ConfigError> {
        fn read(key: &'static str, path: &Path) -> Result<SecretString, ConfigError> {
            std::fs::read_to_string(path)
                .map(|s| SecretString::from(s.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|source| ConfigError::SecretFile {
                    key,
                    path: path.display().to_string(),
                    source,
                })
        }
        if self.pepper.is_none()
            && let Some(path) = &self.pepper_file
        {
            self.pepper = Some(read("secrets.pepper_file", path)?);
        }
        if self.admin_token.is_none()
            && let Some(path) = &self.admin_token_file
        {
            self.admin_token = Some(read("secrets.admin_token_file", path)?);
        }
        if self.redis_password.is_none()
            && let Some(path) = &self.redis_password_file
        {
            self.redis_password = Some(read("secrets.redis_password_file", path)?);
        }
        if self.redis_sentinel_password.is_none()
            && let Some(path) = &self.redis_sentinel_password_file
        {
            self.redis_sentinel_password =
                Some(read("secrets.redis_sentinel_password_file", path)?);
        }
        if self.oidc_signing_keys.is_none()
            && let Some(path) = &self.oidc_signing_keys_file
        {
            self.oidc_signing_keys = Some(read("secrets.oidc_signing_keys_file", path)?);
        }
        if self.saml_sp_key.is_none()
            && let Some(path) = &self.saml_sp_key_file
        {
            self.saml_sp_key = Some(read("secrets.saml_sp_key_file", path)?);
        }
        if self.saml_sp_encryption_key.is_none()
            && let Some(path) = &self.saml_sp_encryption_key_file
        {
            self.saml_sp_encryption_key = Some(read("secrets.saml_sp_encryption_key_file", path)?);
        }
        if self.saml_artifact_client_key.is_none()
            && let Some(path) = &self.saml_artifact_client_key_file
        {
            self.saml_artifact_client_key =
                Some(read("secrets.saml_artifact_client_key_file", path)?);
        }
        Ok(())
    }
}

#[cfg(test)]
// figment's Jail closures return its large error type; fine in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail) -> Result<Settings, ConfigError> {
        let env = std::env::var("CENSUS_ENV").ok();
        Settings::from_figment(
            Settings::figment(jail.directory(), env.as_deref()).merge(env_provider()),
        )
    }

    #[test]
    fn defaults_match_the_spec() {
        Jail::expect_with(|jail| {
            let s = load_in(jail).unwrap();
            assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(s.server.admin_listen.to_string(), "127.0.0.1:9090");
            assert_eq!(s.backend(), Backend::Memory);
            assert_eq!(s.survey.window, Duration::from_secs(14 * 86400));
            assert_eq!(s.lockout.base_block, Duration::from_secs(3600));
            assert_eq!(s.lockout.max_failures, 5);
            assert_eq!(s.password.argon2_memory_kib, 19456);
            assert_eq!(s.password.hash_queue(), 4 * s.password.hash_slots());
            assert!(s.session.cookie_secure);
            assert!(s.registry.seed_file.is_none());
            Ok(())
        });
    }

    #[test]
    fn environment_variables_override_with_humantime() {
        Jail::expect_with(|jail| {
            jail.set_env("CENSUS__LOCKOUT__BASE_BLOCK", "2s");
            jail.set_env("CENSUS__SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]");
            let s = load_in(jail).unwrap();
            assert_eq!(s.lockout.base_block, Duration::from_secs(2));
            assert_eq!(s.server.trusted_proxies.len(), 1);
            Ok(())
        });
    }

    #[test]
    fn the_environment_file_is_layered_between() {
        Jail::expect_with(|jail| {
            jail.create_file("staging.toml", "[survey]\nwindow = \"3d\"\n")?;
            jail.set_env("CENSUS_ENV", "staging");
            let s = load_in(jail).unwrap();
            assert_eq!(s.survey.window, Duration::from_secs(3 * 86400));
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_named() {
        Jail::expect_with(|jail| {
            jail.set_env("CENSUS__LOCKOUT__MAX_FAILURE", "3");
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("max_failure"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_is_named() {
        Jail::expect_with(|jail| {
            jail.set_env("CENSUS__SESSION__IDLE_TIMEOUT", "soon");
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("session.idle_timeout"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn redis_requires_a_pepper_which_may_come_from_a_file() {
        Jail::expect_with(|jail| {
            jail.set_env("CENSUS__STORE__BACKEND", "redis");
            jail.set_env("CENSUS__OIDC__CLIENTS", "[]");
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("secrets.pepper"), "{err}");
            jail.create_file("pepper", "s3cret\n")?;
            jail.set_env(
                "CENSUS__SECRETS__PEPPER_FILE",
                jail.directory().join("pepper").display().to_string(),
            );
            let s = load_in(jail).unwrap();
            use secrecy::ExposeSecret;
            assert_eq!(s.secrets.pepper.unwrap().expose_secret(), "s3cret");
            Ok(())
        });
    }

    #[test]
    fn the_demo_client_is_refused_with_redis_and_clients_need_signing_keys() {
        Jail::expect_with(|jail| {
            let s = load_in(jail).unwrap();
            assert!(s.oidc.clients.iter().any(|c| c.id == DEMO_CLIENT_ID));
            assert_eq!(s.oidc.issuer(&s.server), "http://localhost:8080");
            jail.set_env("CENSUS__STORE__BACKEND", "redis");
            jail.set_env("CENSUS__SECRETS__PEPPER", "p");
            let err = load_in(jail).unwrap_err().to_string();
            assert!(
                err.contains("oidc.clients") && err.contains("demo"),
                "{err}"
            );
            jail.set_env(
                "CENSUS__OIDC__CLIENTS",
                format!(
                    "[{{id=\"form\",secret_sha256=\"{}\",redirect_uris=[\"https://form.test/cb\"]}}]",
                    "ab".repeat(32)
                ),
            );
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("secrets.oidc_signing_keys"), "{err}");
            jail.set_env("CENSUS__SECRETS__OIDC_SIGNING_KEYS", "pem");
            assert_eq!(load_in(jail).unwrap().oidc.clients[0].id, "form");
            jail.set_env("CENSUS__OIDC__CLIENTS", "[]");
            assert!(load_in(jail).unwrap().oidc.clients.is_empty());
            Ok(())
        });
    }

    #[test]
    fn a_client_with_a_fragment_in_its_redirect_uri_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "CENSUS__OIDC__CLIENTS",
                format!(
                    "[{{id=\"form\",secret_sha256=\"{}\",redirect_uris=[\"https://form.test/cb#x\"]}}]",
                    "ab".repeat(32)
                ),
            );
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("oidc.clients"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn secrets_do_not_print() {
        Jail::expect_with(|jail| {
            jail.set_env("CENSUS__SECRETS__ADMIN_TOKEN", "tok-en-value");
            let s = load_in(jail).unwrap();
            assert!(!format!("{s:?}").contains("tok-en-value"));
            Ok(())
        });
    }

    #[test]
    fn a_malformed_admin_tokens_file_is_refused_with_the_key_name() {
        Jail::expect_with(|jail| {
            jail.create_file("tokens", "alice:not-a-digest\n")?;
            let path = jail.directory().join("tokens").display().to_string();
            jail.set_env("CENSUS__SECRETS__ADMIN_TOKENS_FILE", &path);
            let err = load_in(jail).unwrap_err().to_string();
            assert!(
                err.contains("secrets.admin_tokens_file") && err.contains("line 1"),
                "{err}"
            );
            jail.create_file("tokens", &format!("alice:{}\n", "ab".repeat(32)))?;
            let s = load_in(jail).unwrap();
            assert_eq!(
                s.secrets.admin_tokens_file.unwrap().display().to_string(),
                path
            );
            jail.set_env("CENSUS__SECRETS__ADMIN_TOKENS_FILE", "/nonexistent/tokens");
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("secrets.admin_tokens_file"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn redis_passwords_come_from_files_and_do_not_print() {
        Jail::expect_with(|jail| {
            jail.create_file("redis-password", "r3dis-pw\n")?;
            jail.set_env(
                "CENSUS__SECRETS__REDIS_PASSWORD_FILE",
                jail.directory()
                    .join("redis-password")
                    .display()
                    .to_string(),
            );
            jail.set_env("CENSUS__SECRETS__REDIS_SENTINEL_PASSWORD", "s3ntinel-pw");
            let s = load_in(jail).unwrap();
            use secrecy::ExposeSecret;
            let data = s.secrets.redis_password.as_ref().unwrap();
            assert_eq!(data.expose_secret(), "r3dis-pw");
            let sentinel = s.secrets.redis_sentinel_password.as_ref().unwrap();
            assert_eq!(sentinel.expose_secret(), "s3ntinel-pw");
            let printed = format!("{s:?}");
            assert!(!printed.contains("r3dis-pw") && !printed.contains("s3ntinel-pw"));
            jail.set_env("CENSUS__SECRETS__REDIS_PASSWORD_FILE", "/nonexistent/pw");
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("secrets.redis_password_file"), "{err}");
            Ok(())
        });
    }

    #[cfg(not(feature = "national-node"))]
    #[test]
    fn enabling_the_national_node_without_the_feature_says_how_to_build() {
        Jail::expect_with(|jail| {
            jail.set_env("CENSUS__NATIONAL_NODE__ENABLED", "true");
            let err = load_in(jail).unwrap_err().to_string();
            assert!(
                err.contains("national_node.enabled") && err.contains("--features national-node"),
                "{err}"
            );
            Ok(())
        });
    }

    #[cfg(feature = "national-node")]
    #[test]
    fn the_national_node_needs_its_files_keys_and_a_known_loa() {
        Jail::expect_with(|jail| {
            assert!(!load_in(jail).unwrap().national_node.enabled);
            jail.set_env("CENSUS__NATIONAL_NODE__ENABLED", "true");
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("national_node.idp_metadata_file"), "{err}");
            jail.set_env("CENSUS__NATIONAL_NODE__IDP_METADATA_FILE", "/md.xml");
            jail.set_env("CENSUS__NATIONAL_NODE__SP_CERTIFICATE_FILE", "/sp.crt");
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("secrets.saml_sp_key"), "{err}");
            jail.set_env("CENSUS__SECRETS__SAML_SP_KEY", "pem");
            jail.set_env(
                "CENSUS__NATIONAL_NODE__SP_ENCRYPTION_CERTIFICATE_FILE",
                "/enc.crt",
            );
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("sp_encryption_certificate_file"), "{err}");
            jail.set_env("CENSUS__SECRETS__SAML_SP_ENCRYPTION_KEY", "pem");
            jail.set_env(
                "CENSUS__NATIONAL_NODE__ARTIFACT_CLIENT_CERTIFICATE_FILE",
                "/tls.crt",
            );
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("artifact_client_certificate_file"), "{err}");
            jail.set_env("CENSUS__SECRETS__SAML_ARTIFACT_CLIENT_KEY", "pem");
            jail.set_env("CENSUS__NATIONAL_NODE__MIN_LOA", "substantial");
            let err = load_in(jail).unwrap_err().to_string();
            assert!(err.contains("national_node.min_loa"), "{err}");
            jail.set_env(
                "CENSUS__NATIONAL_NODE__MIN_LOA",
                "http://eidas.europa.eu/LoA/high",
            );
            let s = load_in(jail).unwrap();
            assert_eq!(
                s.national_node.sp_entity_id(&s.server),
                "http://localhost:8080/saml/metadata"
            );
            assert!(!format!("{s:?}").contains("pem\""), "secrets do not print");
            Ok(())
        });
    }
}
