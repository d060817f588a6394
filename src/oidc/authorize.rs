//! The authorization endpoint (OIDC Core 3.1.2) and the login page's
//! continuation of a request that had to wait for a login.
//!
//! Order matters: until the client and its `redirect_uri` are known good,
//! nothing is redirected (an error page instead: no open redirector); after
//! that, every error goes back to the client as RFC 6749 4.1.2.1 says.

use super::{Client, Provider, SCOPE_CENSUS, SCOPE_OPENID, with_query};
use crate::auth::AuthError;
use crate::auth::handoff::HandoffSession;
use crate::clock::Clock;
use crate::domain::lockout::Millis;
use crate::store::GrantKind;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// A request waits this long for the person to log in (or define a password).
const WAITING_TTL: Millis = 30 * 60 * 1000;
/// Bound of `state` and `nonce`: they are echoed and stored.
const MAX_ECHO: usize = 1024;

/// What the authorization endpoint answers.
#[derive(Debug)]
pub enum Authorize {
    /// Client or redirect URI not trusted: an error page, never a redirect.
    ErrorPage(&'static str),
    /// Back to the client: a code or an error.
    Redirect(String),
    /// The login page, carrying the waiting request's id.
    Login(String),
}

/// A validated authorization request (stored while it waits for a login).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthzRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: String,
    pub nonce: String,
    pub code_challenge: String,
    pub max_age: Option<u64>,
    /// `prompt=login`: only a login after `created_at` will do.
    pub prompt_login: bool,
    pub created_at: Millis,
}

/// What an authorization code carries (sealed in the store).
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: String,
    pub scope: Vec<String>,
    pub session_hash: String,
    pub sid: String,
    pub auth_time: Millis,
    pub acr: String,
    pub pesel: Option<String>,
    pub first_login_at: Millis,
    pub window_ends_at: Millis,
}

/// The page's continuation of a waiting request.
#[derive(Debug)]
pub enum Continue {
    /// No such request (expired, used, or never made).
    Unknown,
    /// The person must (again) log in first.
    LoginRequired,
    Redirect(String),
}

fn is_code_challenge(s: &str) -> bool {
    // BASE64URL(SHA-256(verifier)) is exactly 43 characters.
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hash_id(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl AuthzRequest {
    fn error(&self, provider: &Provider, code: &str, description: &str) -> String {
        error_redirect(
            provider,
            &self.redirect_uri,
            Some(&self.state),
            code,
            description,
        )
    }

    /// Whether `session` satisfies the request's `prompt=login` and `max_age`.
    /// A login made after the request always does (so `max_age=0` works).
    fn satisfied_by(&self, session: &HandoffSession, now: Millis) -> bool {
        if session.facts.auth_time >= self.created_at {
            return true;
        }
        let max_age_ms = |max: u64| i64::try_from(max.saturating_mul(1000)).unwrap_or(i64::MAX);
        !self.prompt_login
            && self
                .max_age
                .is_none_or(|max| now - session.facts.auth_time <= max_age_ms(max))
    }
}

fn error_redirect(
    provider: &Provider,
    redirect_uri: &str,
    state: Option<&str>,
    code: &str,
    description: &str,
) -> String {
    let mut params = vec![("error", code), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", provider.issuer()));
    with_query(redirect_uri, &params)
}

impl Provider {
    /// `GET /oidc/authorize`. `session_cookie` is the `census_op` cookie.
    pub async fn authorize(
        &self,
        pairs: Vec<(String, String)>,
        session_cookie: Option<&str>,
    ) -> Result<Authorize, AuthError> {
        let (params, repeated) = super::first_values(pairs);
        if matches!(repeated.as_deref(), Some("client_id" | "redirect_uri")) {
            self.refused("invalid_request");
            return Ok(Authorize::ErrorPage("repeated_parameter"));
        }
        let Some(client) = params.get("client_id").and_then(|id| self.client(id)) else {
            self.refused("unknown_client");
            tracing::warn!(
                event = "oidc_unknown_client",
                "authorization request from an unknown client"
            );
            return Ok(Authorize::ErrorPage("unknown_client"));
        };
        let Some(redirect_uri) = params
            .get("redirect_uri")
            .filter(|uri| client.redirect_uris.iter().any(|r| r == *uri))
        else {
            self.refused("redirect_uri");
            tracing::warn!(event = "oidc_redirect_uri_refused", client = %client.id, "unregistered redirect_uri");
            return Ok(Authorize::ErrorPage("redirect_uri"));
        };
        // From here on, errors go back to the client.
        let state = params.get("state").map(String::as_str);
        let fail = |code: &'static str, description: &'static str| {
            self.refused(code_reason(code));
            tracing::info!(event = "oidc_authorization_refused", client = %client.id, error = code, "{description}");
            Ok(Authorize::Redirect(error_redirect(
                self,
                redirect_uri,
                state,
                code,
                description,
            )))
        };
        if repeated.is_some() {
            return fail("invalid_request", "a parameter is repeated");
        }
        let request = match parse_request(client, redirect_uri, &params) {
            Ok(r) => r,
            Err((code, description)) => return fail(code, description),
        };
        let now = self.auth().now();
        if self.auth().settings().period.check(now).is_err() {
            return fail("access_denied", "the census is not open");
        }
        let session = self.auth().handoff_session(session_cookie).await?;
        let prompt_none = params
            .get("prompt")
            .is_some_and(|p| p.split(' ').any(|v| v == "none"));
        match session {
            Some(s) if request.satisfied_by(&s, now) => self
                .code_redirect(client, &request, &s, now)
                .await
                .map(Authorize::Redirect),
            _ if prompt_none => fail("login_required", "the person is not logged in"),
            _ => {
                let id = self.wait_for_login(&request).await?;
                Ok(Authorize::Login(format!("/?authz={id}")))
            }
        }
    }

    /// Stores a request that waits for the login; returns its opaque id.
    async fn wait_for_login(&self, request: &AuthzRequest) -> Result<String, AuthError> {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let id = URL_SAFE_NO_PAD.encode(raw);
        let json = serde_json::to_string(request).map_err(|_| AuthError::StoreUnavailable)?;
        self.auth()
            .store_authorization_request(&hash_id(&id), &json, WAITING_TTL)
            .await?;
        Ok(id)
    }

    async fn waiting(&self, id: &str, take: bool) -> Result<Option<AuthzRequest>, AuthError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        let json = self
            .auth()
            .authorization_request(&hash_id(id), take)
            .await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// The name of the service that asked for the login, for the page.
    pub async fn waiting_client_name(&self, id: &str) -> Result<Option<String>, AuthError> {
        Ok(self
            .waiting(id, false)
            .await?
            .and_then(|r| self.client(&r.client_id))
            .map(|c| c.name.clone()))
    }

    /// `POST /api/v1/authorization-requests/{id}/continue`: after the login on
    /// the page (`census_session`), back to the client with a code.
    pub async fn continue_request(
        &self,
        id: &str,
        session_cookie: Option<&str>,
    ) -> Result<Continue, AuthError> {
        let Some(request) = self.waiting(id, false).await? else {
            return Ok(Continue::Unknown);
        };
        let Some(client) = self.client(&request.client_id) else {
            return Ok(Continue::Unknown);
        };
        let now = self.auth().now();
        if self.auth().settings().period.check(now).is_err() {
            self.refused("access_denied");
            return Ok(Continue::Redirect(request.error(
                self,
                "access_denied",
                "the census is not open",
            )));
        }
        let Some(session) = self.auth().handoff_session(session_cookie).await? else {
            return Ok(Continue::LoginRequired);
        };
        if !request.satisfied_by(&session, now) {
            return Ok(Continue::LoginRequired);
        }
        // Taken only now, and atomically: one request, one code.
        if self.waiting(id, true).await?.is_none() {
            return Ok(Continue::Unknown);
        }
        self.code_redirect(client, &request, &session, now)
            .await
            .map(Continue::Redirect)
    }

    /// `POST /api/v1/authorization-requests/{id}/cancel`: the person cannot or
    /// will not log in (e.g. the survey window has closed): back to the client
    /// with `access_denied`. `None` if there is no such request.
    pub async fn cancel_request(&self, id: &str) -> Result<Option<String>, AuthError> {
        let Some(request) = self.waiting(id, true).await? else {
            return Ok(None);
        };
        self.refused("access_denied");
        tracing::info!(event = "oidc_authorization_refused", client = %request.client_id, error = "access_denied", "the login was not completed");
        Ok(Some(request.error(
            self,
            "access_denied",
            "the login was not completed",
        )))
    }

    /// Issues a code for `session` and the redirect that carries it.
    async fn code_redirect(
        &self,
        client: &Client,
        request: &AuthzRequest,
        session: &HandoffSession,
        now: Millis,
    ) -> Result<String, AuthError> {
        let record = &session.record;
        let census = request.scope.iter().any(|s| s == SCOPE_CENSUS);
        let grant = CodeGrant {
            client_id: client.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            scope: request.scope.clone(),
            session_hash: hex::encode(session.session_hash),
            sid: session.sid(),
            auth_time: session.facts.auth_time,
            acr: session.facts.acr.clone(),
            pesel: census.then(|| session.facts.pesel.clone()),
            first_login_at: record.first_login_at,
            window_ends_at: record.window_ends_at,
        };
        // Nothing outlives the survey window, a code included.
        let ttl = self.code_ttl.min(record.window_ends_at - now).max(1);
        let code = self
            .auth()
            .issue_grant(
                GrantKind::Code,
                &session.key,
                &session.session_hash,
                &grant,
                ttl,
            )
            .await?;
        self.metrics().oidc_codes_issued.inc();
        tracing::info!(event = "oidc_code_issued", cid = %session.key.correlation_id(), client = %client.id, "authorization code issued");
        Ok(with_query(
            &request.redirect_uri,
            &[
                ("code", &code),
                ("state", &request.state),
                ("iss", self.issuer()),
            ],
        ))
    }
}

/// The `census_oidc_refused_total` reason of an authorization error code.
fn code_reason(code: &str) -> &'static str {
    match code {
        "login_required" => "login_required",
        "access_denied" => "access_denied",
        _ => "invalid_request",
    }
}

/// Checks the parameters of a request from a known client to a registered URI.
fn parse_request(
    client: &Client,
    redirect_uri: &str,
    params: &HashMap<String, String>,
) -> Result<AuthzRequest, (&'static str, &'static str)> {
    let get = |k: &str| params.get(k).map(String::as_str);
    if get("request").is_some() {
        return Err(("request_not_supported", "request objects are not supported"));
    }
    if get("request_uri").is_some() {
        return Err(("request_uri_not_supported", "request_uri is not supported"));
    }
    match get("response_type") {
        Some("code") => {}
        None => return Err(("invalid_request", "response_type is missing")),
        Some(_) => return Err(("unsupported_response_type", "only response_type=code")),
    }
    let scope: Vec<String> = get("scope")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| *s == SCOPE_OPENID || *s == SCOPE_CENSUS)
        .map(str::to_owned)
        .collect();
    if !scope.iter().any(|s| s == SCOPE_OPENID) {
        return Err(("invalid_scope", "scope must include openid"));
    }
    let state = get("state").filter(|s| !s.is_empty() && s.len() <= MAX_ECHO);
    let Some(state) = state else {
        return Err((
            "invalid_request",
            "state is required (at most 1024 characters)",
        ));
    };
    let nonce = get("nonce").filter(|s| !s.is_empty() && s.len() <= MAX_ECHO);
    let Some(nonce) = nonce else {
        return Err((
            "invalid_request",
            "nonce is required (at most 1024 characters)",
        ));
    };
    match get("code_challenge_method") {
        Some("S256") => {}
        Some("plain") => {
            return Err((
                "invalid_request",
                "code_challenge_method plain is not allowed: use S256",
            ));
        }
        Some(_) => return Err(("invalid_request", "code_challenge_method must be S256")),
        None => {
            return Err((
                "invalid_request",
                "PKCE is required: code_challenge_method=S256",
            ));
        }
    }
    let Some(challenge) = get("code_challenge").filter(|c| is_code_challenge(c)) else {
        return Err((
            "invalid_request",
            "code_challenge is missing or not an S256 challenge",
        ));
    };
    let mut prompt_login = false;
    if let Some(prompt) = get("prompt") {
        let values: Vec<&str> = prompt.split(' ').filter(|v| !v.is_empty()).collect();
        if values
            .iter()
            .any(|v| !["none", "login", "consent", "select_account"].contains(v))
        {
            return Err(("invalid_request", "unknown prompt value"));
        }
        if values.contains(&"none") && values.len() > 1 {
            return Err(("invalid_request", "prompt=none must stand alone"));
        }
        prompt_login = values.contains(&"login");
    }
    let max_age = match get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ("invalid_request", "max_age must be a number of seconds"))?,
        ),
    };
    Ok(AuthzRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: state.to_owned(),
        nonce: nonce.to_owned(),
        code_challenge: challenge.to_owned(),
        max_age,
        prompt_login,
        created_at: crate::clock::SystemClock.now(),
    })
}
