//! Sessions: a 256-bit random token in the `census_session` cookie, stored
//! only as its hash under the person's keyed PESEL hash. The cookie value is
//! `<pesel key>.<token>`: the key (already a keyed hash) tells the store where
//! the session lives, which keeps all of a person's keys in one Redis Cluster slot.

use super::{AuthError, AuthService};
use crate::keys::{PeselKey, token_hash};
use crate::store::SessionRecord;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;

pub const COOKIE_NAME: &str = "census_session";

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A fresh session token (the cookie's secret; the store keeps only its hash).
pub(super) fn new_token() -> [u8; 32] {
    let mut token = [0u8; 32];
    rand::rng().fill_bytes(&mut token);
    token
}

pub(super) fn cookie_value(key: &PeselKey, token: &[u8; 32]) -> String {
    format!("{}.{}", key.to_hex(), URL_SAFE_NO_PAD.encode(token))
}

/// A cookie value that has the right shape; says nothing about validity.
pub struct SessionCookie {
    key: PeselKey,
    token_hash: [u8; 32],
}

impl SessionCookie {
    pub fn parse(value: &str) -> Option<Self> {
        let (key, token) = value.split_once('.')?;
        let key = PeselKey::from_hex(key)?;
        let token = URL_SAFE_NO_PAD.decode(token).ok()?;
        let token: [u8; 32] = token.try_into().ok()?;
        Some(Self {
            key,
            token_hash: token_hash(&token),
        })
    }
}

impl AuthService {
    /// `GET /api/v1/session`: the session, its idle expiry slid forward.
    pub async fn session(&self, cookie: Option<&str>) -> Result<SessionRecord, AuthError> {
        let cookie = cookie
            .and_then(SessionCookie::parse)
            .ok_or(AuthError::NotAuthenticated)?;
        self.store()
            .touch_session(&cookie.key, &cookie.token_hash, self.settings().idle)
            .await?
            .ok_or(AuthError::NotAuthenticated)
    }

    /// `POST /api/v1/logout`: deletes the session if the cookie has its shape.
    pub async fn logout(&self, cookie: Option<&str>) -> Result<(), AuthError> {
        let cookie = cookie
            .and_then(SessionCookie::parse)
            .ok_or(AuthError::NotAuthenticated)?;
        self.store()
            .delete_session(&cookie.key, &cookie.token_hash)
            .await?;
        tracing::info!(event = "logout", cid = %cookie.key.correlation_id(), "logged out");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_round_trip_and_reject_garbage() {
        let key = PeselKey::from_hex("00112233445566778899aabbccddeeff").unwrap();
        let token = [7u8; 32];
        let parsed = SessionCookie::parse(&cookie_value(&key, &token)).unwrap();
        assert_eq!(parsed.key, key);
        assert_eq!(parsed.token_hash, token_hash(&token));
        for bad in [
            "",
            "x",
            "zz.abc",
            "00112233445566778899aabbccddeeff.",
            "00112233445566778899aabbccddeeff.AAAA",
        ] {
            assert!(SessionCookie::parse(bad).is_none(), "{bad}");
        }
    }
}
