//! The token endpoint (RFC 6749 4.1.3, PKCE RFC 7636, ID token OIDC Core
//! 3.1.3), userinfo (OIDC Core 5.3) and RP-initiated logout (RP-Initiated
//! Logout 1.0). Token errors are RFC 6749 5.2 JSON errors, mapped to HTTP in
//! [`crate::http::oidc`].

use super::authorize::CodeGrant;
use super::{Provider, SCOPE_CENSUS, seconds, single_valued, with_query};
use crate::auth::AuthError;
use crate::auth::handoff::GrantRefusal;
use crate::domain::lockout::Millis;
use crate::store::GrantKind;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// An RFC 6749 5.2 error of the token endpoint.
#[derive(Debug)]
pub struct TokenError {
    pub error: &'static str,
    pub description: &'static str,
    /// `invalid_client` after `client_secret_basic`: 401 with a challenge.
    pub basic_challenge: bool,
    /// `census_oidc_refused_total` reason.
    reason: &'static str,
}

impl TokenError {
    fn new(error: &'static str, reason: &'static str, description: &'static str) -> Self {
        Self {
            error,
            description,
            basic_challenge: false,
            reason,
        }
    }

    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_client" => 401,
            "server_error" => 500,
            "temporarily_unavailable" => 503,
            _ => 400,
        }
    }
}

fn invalid_request(description: &'static str) -> TokenError {
    TokenError::new("invalid_request", "invalid_request", description)
}

fn invalid_grant(reason: &'static str, description: &'static str) -> TokenError {
    TokenError::new("invalid_grant", reason, description)
}

impl From<AuthError> for TokenError {
    fn from(_: AuthError) -> Self {
        // The store failed: the code may or may not be spent; the client retries the login.
        TokenError::new(
            "temporarily_unavailable",
            "store_unavailable",
            "try again later",
        )
    }
}

/// What an access token carries (sealed in the store).
#[derive(Debug, Serialize, Deserialize)]
struct AccessGrant {
    client_id: String,
    sub: String,
    scope: Vec<String>,
    pesel: Option<String>,
    first_login_at: Millis,
    window_ends_at: Millis,
}

fn is_code_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `client_secret_basic` credentials: RFC 6749 2.3.1 form-encodes both parts.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(value.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

impl Provider {
    /// `POST /oidc/token`: `authorization` is the `Authorization` header,
    /// `form` the body if it was `application/x-www-form-urlencoded`.
    pub async fn token(
        &self,
        authorization: Option<&str>,
        form: Option<&[u8]>,
    ) -> Result<Value, TokenError> {
        let result = self.token_inner(authorization, form).await;
        match &result {
            Ok(_) => self.metrics().oidc_codes_redeemed.inc(),
            Err(e) => {
                self.refused(e.reason);
                tracing::warn!(
                    event = "oidc_token_refused",
                    error = e.error,
                    reason = e.reason,
                    "token request refused"
                );
            }
        }
        result
    }

    async fn token_inner(
        &self,
        authorization: Option<&str>,
        form: Option<&[u8]>,
    ) -> Result<Value, TokenError> {
        let form = form.ok_or(invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))?;
        let pairs = form_urlencoded::parse(form).into_owned().collect();
        let params =
            single_valued(pairs).map_err(|_| invalid_request("a parameter is repeated"))?;
        let get = |k: &str| params.get(k).map(String::as_str);

        // Client authentication: exactly one method.
        let basic = authorization.map(basic_credentials);
        let (client_id, secret, by_basic) = match (basic, get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(invalid_request("use one client authentication method"));
            }
            (Some(None), None) => {
                return Err(TokenError {
                    basic_challenge: true,
                    ..TokenError::new(
                        "invalid_client",
                        "invalid_client",
                        "malformed Authorization header",
                    )
                });
            }
            (Some(Some((id, secret))), None) => {
                if get("client_id").is_some_and(|c| c != id) {
                    return Err(invalid_request(
                        "client_id differs from the authenticated client",
                    ));
                }
                (id, secret, true)
            }
            (None, Some(secret)) => {
                let id = get("client_id").ok_or(invalid_request("client_id is missing"))?;
                (id.to_owned(), secret.to_owned(), false)
            }
            (None, None) => {
                return Err(TokenError::new(
                    "invalid_client",
                    "invalid_client",
                    "client authentication is required",
                ));
            }
        };
        let client = self
            .client(&client_id)
            .filter(|c| c.secret_matches(&secret));
        let Some(client) = client else {
            tracing::warn!(
                event = "oidc_client_authentication_failed",
                "client authentication failed"
            );
            return Err(TokenError {
                basic_challenge: by_basic,
                ..TokenError::new(
                    "invalid_client",
                    "invalid_client",
                    "client authentication failed",
                )
            });
        };

        match get("grant_type") {
            Some("authorization_code") => {}
            None => return Err(invalid_request("grant_type is missing")),
            Some(_) => {
                return Err(TokenError::new(
                    "unsupported_grant_type",
                    "unsupported_grant_type",
                    "only authorization_code",
                ));
            }
        }
        let code = get("code").ok_or(invalid_request("code is missing"))?;
        let redirect_uri = get("redirect_uri").ok_or(invalid_request("redirect_uri is missing"))?;
        let verifier = get("code_verifier")
            .filter(|v| is_code_verifier(v))
            .ok_or(invalid_request("code_verifier is missing or malformed"))?;

        // Spent from here on, whatever follows: a code is tried once.
        let (key, grant) = match self
            .auth()
            .use_grant::<CodeGrant>(GrantKind::Code, code)
            .await?
        {
            Ok(found) => found,
            Err(refusal) => {
                let description = match refusal {
                    GrantRefusal::Unknown => "the code is unknown, expired or already used",
                    GrantRefusal::SessionEnded => "the session of the code has ended",
                    GrantRefusal::AccountReset => "the account was reset since the code was issued",
                };
                return Err(invalid_grant(refusal.label(), description));
            }
        };
        if grant.client_id != client.id {
            tracing::warn!(event = "oidc_code_client_mismatch", client = %client.id, "a code was presented by another client");
            return Err(invalid_grant(
                "code_client",
                "the code was issued to another client",
            ));
        }
        if grant.redirect_uri != redirect_uri {
            return Err(invalid_grant(
                "redirect_uri_mismatch",
                "redirect_uri differs from the authorization request",
            ));
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if !bool::from(computed.as_bytes().ct_eq(grant.code_challenge.as_bytes())) {
            return Err(invalid_grant(
                "pkce",
                "code_verifier does not match the code_challenge",
            ));
        }
        let now = self.auth().now();
        if now >= grant.window_ends_at || self.auth().settings().period.check(now).is_err() {
            return Err(invalid_grant(
                "window_closed",
                "the survey window has ended",
            ));
        }
        let mut session_hash = [0u8; 32];
        hex::decode_to_slice(&grant.session_hash, &mut session_hash)
            .map_err(|_| invalid_grant("code_unknown", "the code is unknown"))?;

        let sub = self.auth().pairwise_sub(&client.id, &key);
        let census = grant.scope.iter().any(|s| s == SCOPE_CENSUS);
        let access = AccessGrant {
            client_id: client.id.clone(),
            sub: sub.clone(),
            scope: grant.scope.clone(),
            pesel: grant.pesel.clone().filter(|_| census),
            first_login_at: grant.first_login_at,
            window_ends_at: grant.window_ends_at,
        };
        let ttl = self.access_token_ttl.min(grant.window_ends_at - now).max(1);
        let access_token = self
            .auth()
            .issue_grant(GrantKind::AccessToken, &key, &session_hash, &access, ttl)
            .await?;

        // No token outlives the survey window.
        let exp = seconds((now + self.access_token_ttl).min(grant.window_ends_at));
        let mut claims = json!({
            "iss": self.issuer(),
            "aud": client.id,
            "sub": sub,
            "iat": seconds(now),
            "exp": exp,
            "auth_time": seconds(grant.auth_time),
            "nonce": grant.nonce,
            "acr": grant.acr,
            "sid": grant.sid,
        });
        if census {
            add_census_claims(&mut claims, &access);
        }
        tracing::info!(event = "oidc_code_redeemed", cid = %key.correlation_id(), client = %client.id, "code redeemed");
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": (ttl / 1000).max(1),
            "id_token": self.keys.sign(&claims),
            "scope": grant.scope.join(" "),
        }))
    }

    /// `GET`/`POST /oidc/userinfo` with `Authorization: Bearer`: the claims of
    /// the person, or `None` (401 `invalid_token`).
    pub async fn userinfo(&self, authorization: Option<&str>) -> Result<Option<Value>, AuthError> {
        let token = authorization
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let Some(token) = token else {
            self.refused("invalid_token");
            return Ok(None);
        };
        let access = match self
            .auth()
            .use_grant::<AccessGrant>(GrantKind::AccessToken, token)
            .await?
        {
            Ok((_, access)) if self.auth().now() < access.window_ends_at => access,
            _ => {
                self.refused("invalid_token");
                return Ok(None);
            }
        };
        let mut claims = json!({ "sub": access.sub });
        if access.scope.iter().any(|s| s == SCOPE_CENSUS) {
            add_census_claims(&mut claims, &access);
        }
        Ok(Some(claims))
    }

    /// `GET /oidc/logout` (RP-initiated logout): ends the session named by
    /// the `id_token_hint`'s `sid` if it is the browser's (`session_cookie`,
    /// the `census_op` cookie), then back to the client.
    pub async fn end_session(
        &self,
        pairs: Vec<(String, String)>,
        session_cookie: Option<&str>,
    ) -> Result<EndSession, AuthError> {
        let refuse = |why: &'static str| {
            self.refused("logout_request");
            tracing::warn!(
                event = "oidc_logout_refused",
                reason = why,
                "end session request refused"
            );
            Ok(EndSession::ErrorPage(why))
        };
        let Ok(params) = single_valued(pairs) else {
            return refuse("repeated_parameter");
        };
        // Expired hints are fine (the ID token is usually older than its lifetime).
        let Some(hint) = params
            .get("id_token_hint")
            .and_then(|t| self.keys.verify(t))
            .filter(|c| c["iss"] == self.issuer())
        else {
            return refuse("id_token_hint");
        };
        let Some(client) = hint["aud"].as_str().and_then(|aud| self.client(aud)) else {
            return refuse("unknown_client");
        };
        if params.get("client_id").is_some_and(|c| *c != client.id) {
            return refuse("unknown_client");
        }
        let redirect = match params.get("post_logout_redirect_uri") {
            None => None,
            Some(uri) if client.post_logout_redirect_uris.contains(uri) => Some(uri.clone()),
            Some(_) => return refuse("post_logout_redirect_uri"),
        };
        let sid = hint["sid"].as_str().unwrap_or_default();
        let ended = self.auth().end_handoff_session(session_cookie, sid).await?;
        Ok(match redirect {
            Some(uri) => {
                let mut query = vec![];
                if let Some(state) = params.get("state") {
                    query.push(("state", state.as_str()));
                }
                EndSession::Redirect {
                    to: if query.is_empty() {
                        uri
                    } else {
                        with_query(&uri, &query)
                    },
                    ended,
                }
            }
            None => EndSession::LoggedOut { ended },
        })
    }
}

/// What end session answers.
#[derive(Debug)]
pub enum EndSession {
    /// The request cannot be trusted (no redirect).
    ErrorPage(&'static str),
    /// Back to the client; `ended`: the browser's session was deleted.
    Redirect { to: String, ended: bool },
    /// No redirect asked for: a "logged out" page.
    LoggedOut { ended: bool },
}

fn add_census_claims(claims: &mut Value, access: &AccessGrant) {
    if let Some(pesel) = &access.pesel {
        claims["pesel"] = json!(pesel);
    }
    claims["census_window_ends_at"] = json!(seconds(access.window_ends_at));
    claims["first_login_at"] = json!(seconds(access.first_login_at));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%3Aclient:s%2Bcr+et"));
        assert_eq!(
            basic_credentials(&header),
            Some(("my:client".into(), "s+cr et".into()))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    #[test]
    fn code_verifiers_follow_rfc_7636() {
        assert!(is_code_verifier(&"a".repeat(43)));
        assert!(!is_code_verifier(&"a".repeat(42)));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
    }
}
