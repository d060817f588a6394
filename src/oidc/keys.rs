//! ID token signing keys (ES256) and the JWKS that publishes them. Every
//! configured key is published and the first signs, so a key is rotated by
//! putting the new one first and dropping the old one once the tokens it signed
//! have expired. The `kid` is the key's RFC 7638 thumbprint: stable and the
//! same on every replica without configuration.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::DecodePrivateKey;
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

struct Key {
    kid: String,
    signing: SigningKey,
    jwk: Value,
}

pub struct SigningKeys {
    /// Never empty; the first signs.
    keys: Vec<Key>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        write!(f, "SigningKeys({kids:?})")
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Key {
    fn new(signing: SigningKey) -> Self {
        let point = signing.verifying_key().to_sec1_point(false);
        let x = b64(point.x().map(|x| x.as_slice()).unwrap_or_default());
        let y = b64(point.y().map(|y| y.as_slice()).unwrap_or_default());
        // RFC 7638: the required members in lexicographic order, no spaces.
        let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = b64(&Sha256::digest(thumbprint.as_bytes()));
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "use": "sig", "alg": "ES256", "kid": kid,
        });
        Self { kid, signing, jwk }
    }
}

impl SigningKeys {
    /// One or more PEM blocks (`EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`), P-256.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, block) in text.split("-----BEGIN ").skip(1).enumerate() {
            let pem = format!("-----BEGIN {block}");
            let signing = if block.starts_with("EC PRIVATE KEY-----") {
                p256::SecretKey::from_sec1_pem(&pem)
                    .map(SigningKey::from)
                    .map_err(|_| format!("key {}: not an EC P-256 private key", i + 1))?
            } else if block.starts_with("PRIVATE KEY-----") {
                SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|_| format!("key {}: not an EC P-256 private key", i + 1))?
            } else {
                return Err(format!("key {}: not a private key PEM block", i + 1));
            };
            keys.push(Key::new(signing));
        }
        if keys.is_empty() {
            return Err("no PEM private key found".into());
        }
        Ok(Self { keys })
    }

    /// A fresh key (memory store only: gone at restart, and not shared by replicas).
    pub fn random() -> Self {
        loop {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            // Fails only for 0 or a value ≥ the group order (probability ~2^-32).
            if let Ok(signing) = SigningKey::from_slice(&bytes) {
                return Self {
                    keys: vec![Key::new(signing)],
                };
            }
        }
    }

    /// `GET /oidc/jwks`: every key, the signing one first.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    pub fn signing_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// A compact JWS (ES256) of `claims`, by the first key.
    pub fn sign(&self, claims: &Value) -> String {
        let key = &self.keys[0];
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": key.kid });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature: Signature = key.signing.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    /// The claims of a JWS signed by one of these keys (any age: expiry is the
    /// caller's business, e.g. an `id_token_hint` may have expired).
    pub fn verify(&self, jws: &str) -> Option<Value> {
        verify_with(&self.jwks(), jws)
    }
}

/// Verifies a compact ES256 JWS against a JWKS document (`{"keys": [...]}`),
/// choosing the key by `kid`. Used for `id_token_hint` and by tests.
pub fn verify_with(jwks: &Value, jws: &str) -> Option<Value> {
    let mut parts = jws.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    if header["alg"] != "ES256" {
        return None;
    }
    let jwk = jwks["keys"]
        .as_array()?
        .iter()
        .find(|k| k["kid"] == header["kid"])?;
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str()?).ok();
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    let key = VerifyingKey::from_sec1_bytes(&sec1).ok()?;
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    key.verify(format!("{h}.{p}").as_bytes(), &signature).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A test key: `openssl ecparam -name prime256v1 -genkey -noout` (SEC1).
    const SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIDL6xSC3u63JLFbSY73tokTCHIBLBHP3uVnq5pPiTZDHoAoGCCqGSM49
AwEHoUQDQgAE32S+7EYl+XhuvWxLuqIwNK+PTMjLQ3yrWSWFhUgflnXywrEDy2um
PBOD7KetrW4sEJQ7ML3groCgF/24CnJ4ZQ==
-----END EC PRIVATE KEY-----
";

    #[test]
    fn signed_tokens_verify_and_tampering_is_detected() {
        let keys = SigningKeys::random();
        let jws = keys.sign(&json!({"sub": "a", "n": 1}));
        assert_eq!(keys.verify(&jws).unwrap()["sub"], "a");
        let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
        parts[1] = b64(json!({"sub": "b", "n": 1}).to_string().as_bytes());
        assert!(keys.verify(&parts.join(".")).is_none());
        assert!(SigningKeys::random().verify(&jws).is_none());
    }

    #[test]
    fn every_key_is_published_and_the_first_signs() {
        let random = SigningKeys::random();
        let old = SigningKeys::from_pem(SEC1).unwrap();
        let token_of_old_key = old.sign(&json!({"sub": "x"}));
        let rotated =
            SigningKeys::from_pem(&format!("{}{}", pem_of(&random.keys[0].signing), SEC1)).unwrap();
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);
        assert_eq!(rotated.signing_kid(), random.signing_kid());
        assert!(rotated.verify(&token_of_old_key).is_some());
        assert!(SigningKeys::from_pem("").is_err());
        assert!(
            SigningKeys::from_pem("-----BEGIN PUBLIC KEY-----\nAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }

    fn pem_of(key: &SigningKey) -> String {
        use p256::pkcs8::EncodePrivateKey;
        key.to_pkcs8_pem(Default::default()).unwrap().to_string()
    }
}
