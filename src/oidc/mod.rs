//! The OpenID Connect provider for the census form (API.md, "Hand-off to the
//! census form"): discovery, the authorization endpoint and the login page's
//! continuation of a waiting request, the token, userinfo and end-session
//! endpoints, and the signing keys. It owns the protocol: which client, which
//! redirect, which claims. It reads sessions and keeps codes and access tokens
//! only through the flows ([`crate::auth::handoff`]), never through the store.
//!
//! HTTP is in [`crate::http::oidc`]; the handlers there call [`Provider`].

pub mod authorize;
pub mod keys;
pub mod token;

use crate::auth::AuthService;
use crate::clock::{Millis, duration_millis as millis};
use crate::config::Settings;
use crate::metrics::Metrics;
use keys::SigningKeys;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Scopes this provider knows; others are ignored (RFC 6749 3.3).
pub const SCOPE_OPENID: &str = "openid";
/// Adds `pesel`, `census_window_ends_at` and `first_login_at`.
pub const SCOPE_CENSUS: &str = "census";

/// Paths of the endpoints (found by relying parties through discovery).
pub const AUTHORIZE_PATH: &str = "/oidc/authorize";
pub const TOKEN_PATH: &str = "/oidc/token";
pub const JWKS_PATH: &str = "/oidc/jwks";
pub const USERINFO_PATH: &str = "/oidc/userinfo";
pub const END_SESSION_PATH: &str = "/oidc/logout";
/// Where the `census_op` cookie is sent: the provider's paths only.
pub const COOKIE_PATH: &str = "/oidc";
/// The second cookie (see README): the session reference, `SameSite=Lax`, so
/// that it survives the form's cross-site navigation to the provider.
pub const OP_COOKIE_NAME: &str = "census_op";

/// A configured relying party.
#[derive(Debug)]
pub struct Client {
    pub id: String,
    /// Shown to the person on the login page.
    pub name: String,
    secret_sha256: [u8; 32],
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
}

impl Client {
    /// Constant time: compares SHA-256 digests of equal length.
    fn secret_matches(&self, secret: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        digest.ct_eq(&self.secret_sha256).into()
    }
}

/// The provider: its clients, keys and lifetimes, over the flows.
pub struct Provider {
    issuer: String,
    clients: HashMap<String, Client>,
    keys: SigningKeys,
    code_ttl: Millis,
    access_token_ttl: Millis,
    auth: AuthService,
    metrics: Arc<Metrics>,
}

impl Provider {
    /// From settings; without `secrets.oidc_signing_keys` a random key is
    /// made (config refuses that with Redis when clients exist).
    pub fn new(
        settings: &Settings,
        auth: AuthService,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        use secrecy::ExposeSecret;
        let keys = match &settings.secrets.oidc_signing_keys {
            Some(pem) => SigningKeys::from_pem(pem.expose_secret())
                .map_err(|e| format!("secrets.oidc_signing_keys: {e}"))?,
            None => {
                if !settings.oidc.clients.is_empty() {
                    tracing::warn!(
                        "secrets.oidc_signing_keys is not set: signing ID tokens with a random key (memory store only)"
                    );
                }
                SigningKeys::random()
            }
        };
        let clients = settings
            .oidc
            .clients
            .iter()
            .map(|c| {
                let mut secret_sha256 = [0u8; 32];
                // Shape checked at configuration load.
                let _ = hex::decode_to_slice(&c.secret_sha256, &mut secret_sha256);
                let client = Client {
                    id: c.id.clone(),
                    name: c.name.clone().unwrap_or_else(|| c.id.clone()),
                    secret_sha256,
                    redirect_uris: c.redirect_uris.clone(),
                    post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
                };
                (c.id.clone(), client)
            })
            .collect();
        Ok(Self {
            issuer: settings.oidc.issuer(&settings.server).to_owned(),
            clients,
            keys,
            code_ttl: millis(settings.oidc.code_ttl),
            access_token_ttl: millis(settings.oidc.access_token_ttl),
            auth,
            metrics,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.get(id)
    }

    pub fn auth(&self) -> &AuthService {
        &self.auth
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn refused(&self, reason: &'static str) {
        self.metrics.oidc_refused(reason);
    }

    /// `GET /.well-known/openid-configuration`.
    pub fn discovery(&self) -> Value {
        let at = |path: &str| format!("{}{path}", self.issuer);
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": at(AUTHORIZE_PATH),
            "token_endpoint": at(TOKEN_PATH),
            "jwks_uri": at(JWKS_PATH),
            "userinfo_endpoint": at(USERINFO_PATH),
            "end_session_endpoint": at(END_SESSION_PATH),
            "scopes_supported": [SCOPE_OPENID, SCOPE_CENSUS],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login"],
            "acr_values_supported": [crate::auth::handoff::ACR_PASSWORD, "urn:census:acr:login.gov.pl"],
            "claims_supported": ["iss", "aud", "sub", "exp", "iat", "auth_time", "nonce", "acr", "sid",
                "pesel", "census_window_ends_at", "first_login_at"],
            "ui_locales_supported": ["pl", "en"],
            "authorization_response_iss_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "claims_parameter_supported": false,
        })
    }

    /// `GET /oidc/jwks`.
    pub fn jwks(&self) -> Value {
        self.keys.jwks()
    }
}

/// `uri` with `params` added to its query (a registered URI may have one).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

/// Form or query pairs into a map of first values, and the name of a repeated
/// parameter if there is one (RFC 6749 3.1: parameters must not be repeated).
pub fn first_values(pairs: Vec<(String, String)>) -> (HashMap<String, String>, Option<String>) {
    let mut map = HashMap::with_capacity(pairs.len());
    let mut repeated = None;
    for (k, v) in pairs {
        match map.entry(k) {
            Entry::Occupied(e) => {
                repeated.get_or_insert_with(|| e.key().clone());
            }
            Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }
    (map, repeated)
}

/// As [`first_values`], refusing any repetition (`Err(name)`).
pub fn single_valued(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>, String> {
    match first_values(pairs) {
        (map, None) => Ok(map),
        (_, Some(name)) => Err(name),
    }
}

/// Seconds since the epoch, for JWT claims.
fn seconds(ms: Millis) -> i64 {
    ms.div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_appended_and_encoded() {
        assert_eq!(
            with_query("https://rp.test/cb", &[("code", "a.b"), ("state", "x y&z")]),
            "https://rp.test/cb?code=a.b&state=x+y%26z"
        );
        assert_eq!(
            with_query("https://rp.test/cb?tenant=1", &[("error", "access_denied")]),
            "https://rp.test/cb?tenant=1&error=access_denied"
        );
    }

    #[test]
    fn repeated_parameters_are_named() {
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            single_valued(pairs(&[("a", "1"), ("a", "2")])).unwrap_err(),
            "a"
        );
        assert_eq!(single_valued(pairs(&[("a", "1")])).unwrap()["a"], "1");
    }
}
