//! Keyed hashing of personal data (RULES.md, "Privacy"). One server secret
//! (the pepper) yields separate keys for storage keys, maiden names, log
//! correlation and the Argon2 secret, so no derived value can stand in for another.

use crate::domain::{MaidenName, Pesel};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// The opaque storage identity of a PESEL: a keyed hash, never the number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeselKey([u8; 16]);

impl PeselKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }

    /// A short prefix for log lines: enough to correlate, too short to link across
    /// systems.
    pub fn correlation_id(&self) -> String {
        hex::encode(&self.0[..5])
    }
}

impl fmt::Debug for PeselKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeselKey({})", self.correlation_id())
    }
}

/// Keyed hash of a normalized maiden name.
pub type MaidenHash = [u8; 32];

/// What the registry stores of a maiden name: the first 8 bytes of its
/// [`MaidenHash`]. Why 8 are enough is in `crate::store::layout`.
pub type MaidenTag = [u8; 8];

pub struct Keys {
    pesel: SecretBox<[u8; 32]>,
    maiden: SecretBox<[u8; 32]>,
    argon2: SecretBox<[u8; 32]>,
    client: SecretBox<[u8; 32]>,
    oidc_sub: SecretBox<[u8; 32]>,
}

impl Keys {
    pub fn from_pepper(pepper: &SecretString) -> Self {
        let derive = |label: &str| {
            let mut mac = HmacSha256::new_from_slice(pepper.expose_secret().as_bytes())
                .expect("HMAC takes any key length");
            mac.update(label.as_bytes());
            SecretBox::new(Box::new(<[u8; 32]>::from(mac.finalize().into_bytes())))
        };
        Self {
            pesel: derive("census-login/pesel-key/v1"),
            maiden: derive("census-login/maiden-name/v1"),
            argon2: derive("census-login/argon2-secret/v1"),
            client: derive("census-login/client-network/v1"),
            oidc_sub: derive("census-login/oidc-pairwise-sub/v1"),
        }
    }

    fn mac(key: &SecretBox<[u8; 32]>, data: &[u8]) -> [u8; 32] {
        let mut mac =
            HmacSha256::new_from_slice(key.expose_secret()).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    pub fn pesel_key(&self, pesel: &Pesel) -> PeselKey {
        let full = Self::mac(&self.pesel, pesel.digits().as_bytes());
        let mut short = [0u8; 16];
        short.copy_from_slice(&full[..16]);
        PeselKey(short)
    }

    pub fn maiden_hash(&self, name: &MaidenName) -> MaidenHash {
        Self::mac(&self.maiden, name.normalized().as_bytes())
    }

    pub fn maiden_tag(&self, name: &MaidenName) -> MaidenTag {
        let full = self.maiden_hash(name);
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&full[..8]);
        tag
    }

    /// Keyed hash of a client network, so the store never holds addresses.
    pub fn client_key(&self, network: &ipnet::IpNet) -> [u8; 16] {
        let full = Self::mac(&self.client, network.to_string().as_bytes());
        let mut short = [0u8; 16];
        short.copy_from_slice(&full[..16]);
        short
    }

    /// The OpenID Connect `sub` of a person for one relying party: stable
    /// across logins, different for every client, so two clients cannot link
    /// their users, and never the PESEL (OIDC Core 8.1, pairwise).
    pub fn pairwise_sub(&self, client_id: &str, key: &PeselKey) -> String {
        use base64::Engine;
        let mut data = Vec::with_capacity(client_id.len() + 17);
        data.extend_from_slice(client_id.as_bytes());
        data.push(0);
        data.extend_from_slice(&key.0);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Self::mac(&self.oidc_sub, &data))
    }

    /// Argon2's secret input `K`: the pepper, so a stolen database alone
    /// cannot be attacked offline.
    pub fn argon2_secret(&self) -> &[u8] {
        self.argon2.expose_secret()
    }
}

/// SHA-256 of a session token: tokens are 256 random bits, so a plain hash
/// is enough to make a stolen store useless for hijacking.
pub fn token_hash(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Constant-time equality of two secrets of possibly different lengths:
/// compares their hashes, so neither content nor length leaks through timing.
pub fn ct_eq_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    ha.ct_eq(&hb).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn keys(p: &str) -> Keys {
        Keys::from_pepper(&SecretString::from(p.to_owned()))
    }

    #[test]
    fn pesel_keys_depend_on_the_pepper_and_hide_the_number() {
        let pesel = Pesel::parse("02070803628", date!(2026 - 01 - 01)).unwrap();
        let a = keys("one").pesel_key(&pesel);
        assert_ne!(a, keys("two").pesel_key(&pesel));
        assert_eq!(a, keys("one").pesel_key(&pesel));
        assert!(!a.to_hex().contains("02070803628"));
        assert_eq!(PeselKey::from_hex(&a.to_hex()), Some(a));
    }

    #[test]
    fn tolerant_names_hash_alike() {
        let k = keys("p");
        let h = |s: &str| k.maiden_hash(&MaidenName::parse(s).unwrap());
        assert_eq!(h("Łukasiewicz"), h("lukasiewicz"));
        assert_ne!(h("Nowak"), h("Kowalska"));
    }

    #[test]
    fn pairwise_subjects_are_stable_per_client_and_differ_between_clients() {
        let k = keys("p");
        let pesel = Pesel::parse("02070803628", date!(2026 - 01 - 01)).unwrap();
        let key = k.pesel_key(&pesel);
        assert_eq!(k.pairwise_sub("a", &key), k.pairwise_sub("a", &key));
        assert_ne!(k.pairwise_sub("a", &key), k.pairwise_sub("b", &key));
        assert_ne!(k.pairwise_sub("a", &key), keys("q").pairwise_sub("a", &key));
        assert!(!k.pairwise_sub("a", &key).contains("02070803628"));
    }

    #[test]
    fn constant_time_comparison_is_still_equality() {
        assert!(ct_eq_secret(b"token", b"token"));
        assert!(!ct_eq_secret(b"token", b"token2"));
    }
}
