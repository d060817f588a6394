//! login.gov.pl in the flows (RULES.md, "Reclaiming an account through
//! login.gov.pl"): the requests this service sent (single-use, bound to the
//! browser that started them), what follows a verified response (replay,
//! level of assurance, PESEL, the session of a first login), the reclaim, and
//! the session as the page sees it. The protocol is [`crate::saml`]'s.

use super::handoff::{ACR_NODE, ACR_PASSWORD};
use super::{AuthError, AuthService, SessionGrant, session};
use crate::clock::Millis;
use crate::domain::{Loa, NewPassword, Violation};
use crate::saml::{Refusal, Verified, pesel_of_person_identifier};
use crate::store::{NodeSession, Reclaimed, SessionRecord};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long after the node authentication a reclaim is allowed.
pub const RECLAIM_WINDOW: Millis = 5 * 60 * 1000;

/// What the store keeps of a request sent to the node, until its response.
#[derive(Serialize, Deserialize)]
struct RequestState {
    relay: String,
    /// SHA-256 (hex) of the `census_saml` cookie of the browser that started it.
    browser: String,
    return_to: String,
}

fn sha256(label: &str, value: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    h.finalize().into()
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Why a node login did not end in a session.
#[derive(Debug)]
pub enum NodeLoginError {
    /// The response (or its request) was refused.
    Refused(Refusal),
    /// A rule of every login (census period, window) or the store.
    Auth(AuthError),
}

impl From<AuthError> for NodeLoginError {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

impl From<crate::store::StoreError> for NodeLoginError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Auth(e.into())
    }
}

/// A node login that created a session.
pub struct NodeLoggedIn {
    pub grant: SessionGrant,
    pub return_to: String,
}

/// The session body's facts beyond the record (docs/national-node.md).
#[derive(Debug, Clone)]
pub struct SessionView {
    pub record: SessionRecord,
    pub acr: Option<String>,
    /// Node sessions only.
    pub password_defined: Option<bool>,
    pub reclaim_until: Option<Millis>,
}

impl AuthService {
    /// Files a request just built for the node; returns the value of the
    /// browser-binding cookie (`census_saml`) the response must come back with.
    pub async fn file_node_request(
        &self,
        request_id: &str,
        relay_state: &str,
        return_to: String,
    ) -> Result<String, AuthError> {
        let mut nonce = [0u8; 32];
        rand::rng().fill_bytes(&mut nonce);
        let browser = URL_SAFE_NO_PAD.encode(nonce);
        let state = RequestState {
            relay: relay_state.to_owned(),
            browser: hex::encode(sha256("browser", &browser)),
            return_to,
        };
        let state = serde_json::to_string(&state).map_err(|_| AuthError::StoreUnavailable)?;
        self.store()
            .put_saml_request(
                &sha256("request", request_id),
                &state,
                self.settings().node_request_ttl,
            )
            .await?;
        Ok(browser)
    }

    /// After [`crate::saml`] verified a response: the assertion is claimed
    /// (replays refused on every replica), the request it answers is taken
    /// (single-use) and must have been started by this browser, the level of
    /// assurance and the PESEL are checked, and the person gets the session
    /// of a first login. The lockout is neither consulted nor changed.
    ///
    /// `browser` is the `census_saml` cookie. Over HTTPS it is `SameSite=None;
    /// Secure` and must be there; on plain-HTTP development
    /// (`require_browser` false) a cross-site POST cannot carry any cookie, so
    /// an absent one is let through, but a wrong one never is.
    pub async fn node_login(
        &self,
        verified: Verified,
        relay_state: Option<&str>,
        browser: Option<&str>,
        require_browser: bool,
    ) -> Result<NodeLoggedIn, NodeLoginError> {
        let refused = |r: Refusal| Err(NodeLoginError::Refused(r));
        let wall_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let ttl = (verified.remember_until - wall_now).max(1000);
        if !self
            .store()
            .claim_saml_assertion(&sha256("assertion", &verified.assertion_key), ttl)
            .await?
        {
            return refused(Refusal::Replay);
        }
        let Some(state) = self
            .store()
            .take_saml_request(&sha256("request", &verified.request_id))
            .await?
        else {
            return refused(Refusal::UnknownRequest);
        };
        let Ok(state) = serde_json::from_str::<RequestState>(&state) else {
            return refused(Refusal::UnknownRequest);
        };
        let browser_ok = match browser {
            Some(b) => same(&hex::encode(sha256("browser", b)), &state.browser),
            None => !require_browser,
        };
        let relay_ok = relay_state.is_some_and(|r| same(r, &state.relay));
        if !(browser_ok && relay_ok) {
            return refused(Refusal::Browser);
        }
        let loa = verified.loa.as_deref().and_then(Loa::parse);
        if loa.is_none_or(|l| l < self.settings().node_min_loa) {
            return refused(Refusal::LoaTooLow);
        }
        let Some(raw) = verified.person_identifier.as_deref() else {
            return refused(Refusal::PeselMissing);
        };
        let Ok(pesel) = self.parse_pesel(pesel_of_person_identifier(raw)) else {
            return refused(Refusal::PeselInvalid);
        };
        self.check_period(self.now())?;
        let key = self.keys().pesel_key(&pesel);
        let (token, spec) = self.new_session(&pesel, ACR_NODE)?;
        let record = match self.store().open_node_session(&key, &spec).await? {
            NodeSession::Unregistered => return refused(Refusal::NotInRegistry),
            NodeSession::Opened { session: None, .. } => {
                tracing::info!(event = "login_window_closed", cid = %key.correlation_id(), via = "login.gov.pl", "survey window closed");
                return Err(AuthError::WindowClosed.into());
            }
            NodeSession::Opened {
                session: Some(record),
                ..
            } => record,
        };
        tracing::info!(event = "login_ok", via = "login.gov.pl", cid = %key.correlation_id(), "login through the national node");
        Ok(NodeLoggedIn {
            grant: SessionGrant {
                cookie_value: session::cookie_value(&key, &token),
                record,
            },
            return_to: state.return_to,
        })
    }

    /// `GET /api/v1/session` with the facts the page needs.
    pub async fn session_view(&self, cookie: Option<&str>) -> Result<SessionView, AuthError> {
        let Some(s) = self.handoff_session(cookie).await? else {
            // A session without facts (none are made so any more) still counts.
            let record = self.session(cookie).await?;
            return Ok(SessionView {
                record,
                acr: None,
                password_defined: None,
                reclaim_until: None,
            });
        };
        let mut view = SessionView {
            record: s.record,
            acr: Some(s.facts.acr.clone()),
            password_defined: None,
            reclaim_until: None,
        };
        if s.facts.acr == ACR_NODE {
            let status = self.store().account_status(&s.key).await?;
            view.password_defined = Some(status.account.password_phc.is_some());
            view.reclaim_until = Some(s.facts.auth_time + RECLAIM_WINDOW);
        }
        Ok(view)
    }

    /// `POST /api/v1/account/reclaim` (RULES.md): within 5 minutes of a node
    /// login, replaces any password, ends every other session, clears
    /// failures and locks. An audit event.
    pub async fn reclaim(
        &self,
        cookie: Option<&str>,
        password: &str,
        password_repeat: &str,
    ) -> Result<SessionView, AuthError> {
        let s = self
            .handoff_session(cookie)
            .await?
            .ok_or(AuthError::NotAuthenticated)?;
        let cid = s.key.correlation_id();
        if s.facts.acr != ACR_NODE || self.now() >= s.facts.auth_time + RECLAIM_WINDOW {
            tracing::info!(event = "reclaim_refused", cid = %cid, "reclaim outside a fresh node login");
            return Err(AuthError::ReclaimNotAllowed);
        }
        let pesel = self
            .parse_pesel(&s.facts.pesel)
            .map_err(|_| AuthError::NotAuthenticated)?;
        let password = NewPassword::parse(
            password,
            password_repeat,
            Some(&pesel),
            self.settings().min_password_length,
        )
        .map_err(|list| {
            AuthError::Validation(
                list.iter()
                    .map(|v| Violation::new(v.field(), v.code()))
                    .collect(),
            )
        })?;
        let generation = self
            .store()
            .account_status(&s.key)
            .await?
            .account
            .generation;
        let permit = self.hasher().try_admit().ok_or_else(|| self.overloaded())?;
        let phc = self.hash_new(permit, &password).await?;
        match self
            .store()
            .reclaim_account(&s.key, generation, &phc, &s.session_hash)
            .await?
        {
            Reclaimed::Superseded => {
                tracing::warn!(event = "reclaim_superseded", cid = %cid, "reclaim lost a race with a reset");
                Err(AuthError::ReclaimNotAllowed)
            }
            Reclaimed::Done { had_password } => {
                // The reclaim cleared the locks: this replica forgets them at once.
                self.locks.forget(&s.key);
                tracing::warn!(event = "account_reclaimed", audit = true, actor = "login.gov.pl", had_password, cid = %cid, "account reclaimed through login.gov.pl");
                Ok(SessionView {
                    record: s.record,
                    acr: Some(ACR_NODE.to_owned()),
                    password_defined: Some(true),
                    reclaim_until: Some(s.facts.auth_time + RECLAIM_WINDOW),
                })
            }
        }
    }
}

/// The `acr` of a password session, for the session body of login/define.
pub fn password_acr() -> &'static str {
    ACR_PASSWORD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_and_browser_hashes_are_labelled() {
        assert_ne!(sha256("request", "x"), sha256("assertion", "x"));
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
