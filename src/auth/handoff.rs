//! The flows' side of the hand-off to the census form (the OpenID Connect
//! provider, [`crate::oidc`], speaks the protocol): what a session knows beyond
//! its cookie (when and how the person authenticated, and their PESEL, which
//! the form may ask for), authorization codes and access tokens.
//!
//! The store never holds a PESEL or a bearer secret. A code and an access token
//! are `<pesel key>.<256 random bits>` like the session cookie, so everything
//! of one person stays in one Redis Cluster slot; the store files each record
//! under the SHA-256 of the secret and keeps it sealed (ChaCha20-Poly1305)
//! under a key derived from that secret, which only its holder presents.
//! Grants die with their session and with a reset of the account.

use super::session::{self, cookie_value};
use super::{AuthError, AuthService};
use crate::domain::Pesel;
use crate::domain::lockout::Millis;
use crate::keys::{PeselKey, token_hash};
use crate::store::{GrantKind, GrantLookup, SessionRecord, SessionSpec};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `acr` of a login with PESEL and password.
pub const ACR_PASSWORD: &str = "urn:census:acr:password";

/// `acr` of a login through login.gov.pl (the national node).
pub const ACR_NODE: &str = "urn:census:acr:login.gov.pl";

/// What a session knows beyond the session record, sealed under its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionFacts {
    /// When the person authenticated (ms since the epoch).
    pub auth_time: Millis,
    pub acr: String,
    pub pesel: String,
}

/// A valid session, as the provider sees it.
#[derive(Debug, Clone)]
pub struct HandoffSession {
    pub key: PeselKey,
    pub session_hash: [u8; 32],
    pub record: SessionRecord,
    pub facts: SessionFacts,
}

impl HandoffSession {
    /// The session's id for relying parties (`sid`): derived from the token
    /// hash, so it reveals nothing that finds the session.
    pub fn sid(&self) -> String {
        sid_of(&self.session_hash)
    }
}

fn sid_of(session_hash: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"census-login/oidc-sid/v1");
    h.update(session_hash);
    URL_SAFE_NO_PAD.encode(&h.finalize()[..16])
}

/// Why a code or access token was not honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantRefusal {
    /// Malformed, never issued, expired or (a code) already used.
    Unknown,
    SessionEnded,
    AccountReset,
}

impl GrantRefusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::Unknown => "code_unknown",
            Self::SessionEnded => "session_ended",
            Self::AccountReset => "account_reset",
        }
    }
}

/// `<pesel key hex>.<32 bytes b64url>`, the shape of every bearer secret here.
fn split_secret(value: &str) -> Option<(PeselKey, [u8; 32])> {
    let (key, secret) = value.split_once('.')?;
    let key = PeselKey::from_hex(key)?;
    let secret = URL_SAFE_NO_PAD.decode(secret).ok()?;
    Some((key, secret.try_into().ok()?))
}

fn cipher(secret: &[u8; 32], label: &str) -> ChaCha20Poly1305 {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    let key: [u8; 32] = mac.finalize().into_bytes().into();
    ChaCha20Poly1305::new(&Key::from(key))
}

/// Seals `value` under a key only the holder of `secret` can derive.
fn seal<T: Serialize>(secret: &[u8; 32], label: &str, value: &T) -> Result<String, AuthError> {
    let plain = serde_json::to_vec(value).map_err(|_| AuthError::StoreUnavailable)?;
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher(secret, label)
        .encrypt(&Nonce::from(nonce), plain.as_slice())
        .map_err(|_| AuthError::StoreUnavailable)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

fn open<T: DeserializeOwned>(secret: &[u8; 32], label: &str, sealed: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, body) = bytes.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let plain = cipher(secret, label)
        .decrypt(&Nonce::from(nonce), body)
        .ok()?;
    serde_json::from_slice(&plain).ok()
}

const FACTS: &str = "census-login/oidc-session-facts/v1";

fn label(kind: GrantKind) -> &'static str {
    match kind {
        GrantKind::Code => "census-login/oidc-code/v1",
        GrantKind::AccessToken => "census-login/oidc-access-token/v1",
    }
}

impl AuthService {
    /// A new session's token and what the store needs to create it, with the
    /// facts of how the person authenticated sealed under the token: the store
    /// writes them in the same step as the session (see [`SessionSpec::facts`]).
    pub(super) fn new_session(
        &self,
        pesel: &Pesel,
        acr: &str,
    ) -> Result<([u8; 32], SessionSpec), AuthError> {
        let token = session::new_token();
        let facts = SessionFacts {
            auth_time: self.now(),
            acr: acr.to_owned(),
            pesel: pesel.digits().to_owned(),
        };
        let s = self.settings();
        let spec = SessionSpec {
            token_hash: token_hash(&token),
            idle: s.idle,
            window: s.window,
            closes_at: s.period.closes_at,
            facts: seal(&token, FACTS, &facts)?,
        };
        Ok((token, spec))
    }

    /// The session of a cookie value (`census_session` or `census_op`), its
    /// idle expiry slid forward; `None` if there is none or it predates the
    /// hand-off (no facts recorded).
    pub async fn handoff_session(
        &self,
        cookie: Option<&str>,
    ) -> Result<Option<HandoffSession>, AuthError> {
        let Some((key, token)) = cookie.and_then(split_secret) else {
            return Ok(None);
        };
        let session_hash = token_hash(&token);
        let Some((record, Some(sealed))) = self
            .store()
            .touch_session_with_facts(&key, &session_hash, self.settings().idle)
            .await?
        else {
            return Ok(None);
        };
        let Some(facts) = open::<SessionFacts>(&token, FACTS, &sealed) else {
            return Ok(None);
        };
        Ok(Some(HandoffSession {
            key,
            session_hash,
            record,
            facts,
        }))
    }

    /// Ends the session of a cookie value whose `sid` is `sid` (RP-initiated
    /// logout). Returns whether it matched.
    pub async fn end_handoff_session(
        &self,
        cookie: Option<&str>,
        sid: &str,
    ) -> Result<bool, AuthError> {
        let Some((key, token)) = cookie.and_then(split_secret) else {
            return Ok(false);
        };
        let session_hash = token_hash(&token);
        if sid_of(&session_hash) != sid {
            return Ok(false);
        }
        self.store().delete_session(&key, &session_hash).await?;
        tracing::info!(event = "logout", cid = %key.correlation_id(), via = "oidc_end_session", "logged out");
        Ok(true)
    }

    /// Issues a code or access token bound to the session `session_hash` of
    /// `key`, carrying `grant` sealed.
    pub async fn issue_grant<T: Serialize>(
        &self,
        kind: GrantKind,
        key: &PeselKey,
        session_hash: &[u8; 32],
        grant: &T,
        ttl: Millis,
    ) -> Result<String, AuthError> {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let sealed = seal(&secret, label(kind), grant)?;
        self.store()
            .put_grant(key, kind, &token_hash(&secret), session_hash, &sealed, ttl)
            .await?;
        Ok(cookie_value(key, &secret))
    }

    /// Redeems a code (single-use: found once, then gone) or reads an access
    /// token. The outer error is the store's; the inner one a refusal.
    pub async fn use_grant<T: DeserializeOwned>(
        &self,
        kind: GrantKind,
        value: &str,
    ) -> Result<Result<(PeselKey, T), GrantRefusal>, AuthError> {
        let Some((key, secret)) = split_secret(value) else {
            return Ok(Err(GrantRefusal::Unknown));
        };
        let lookup = self
            .store()
            .use_grant(&key, kind, &token_hash(&secret))
            .await?;
        Ok(match lookup {
            GrantLookup::Found(sealed) => open::<T>(&secret, label(kind), &sealed)
                .map(|g| (key, g))
                .ok_or(GrantRefusal::Unknown),
            GrantLookup::Unknown => Err(GrantRefusal::Unknown),
            GrantLookup::SessionEnded => Err(GrantRefusal::SessionEnded),
            GrantLookup::GenerationMoved => Err(GrantRefusal::AccountReset),
        })
    }

    /// Keeps an authorization request while the person logs in (no person yet).
    pub async fn store_authorization_request(
        &self,
        id_hash: &[u8; 32],
        request: &str,
        ttl: Millis,
    ) -> Result<(), AuthError> {
        Ok(self
            .store()
            .put_authorization_request(id_hash, request, ttl)
            .await?)
    }

    /// A waiting authorization request; `take` removes it in the same step.
    pub async fn authorization_request(
        &self,
        id_hash: &[u8; 32],
        take: bool,
    ) -> Result<Option<String>, AuthError> {
        Ok(self.store().authorization_request(id_hash, take).await?)
    }

    /// The person's `sub` for one relying party (pairwise).
    pub fn pairwise_sub(&self, client_id: &str, key: &PeselKey) -> String {
        self.keys().pairwise_sub(client_id, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_secret_and_label() {
        let secret = [3u8; 32];
        let sealed = seal(&secret, "a", &"02070803628").unwrap();
        assert!(!sealed.contains("02070803628"));
        assert_eq!(
            open::<String>(&secret, "a", &sealed).as_deref(),
            Some("02070803628")
        );
        assert_eq!(open::<String>(&[4u8; 32], "a", &sealed), None);
        assert_eq!(open::<String>(&secret, "b", &sealed), None);
        let mut tampered = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(tampered);
        assert_eq!(open::<String>(&secret, "a", &tampered), None);
    }

    #[test]
    fn secrets_have_the_cookie_shape() {
        let key = PeselKey::from_hex("00112233445566778899aabbccddeeff").unwrap();
        let value = cookie_value(&key, &[9u8; 32]);
        assert_eq!(split_secret(&value), Some((key, [9u8; 32])));
        for bad in ["", "x.y", "00112233445566778899aabbccddeeff.AAAA"] {
            assert_eq!(split_secret(bad), None, "{bad}");
        }
    }

    #[test]
    fn sids_differ_per_session_and_hide_the_token_hash() {
        let a = sid_of(&[1u8; 32]);
        assert_ne!(a, sid_of(&[2u8; 32]));
        assert!(!a.contains(&hex::encode([1u8; 32])));
    }
}
