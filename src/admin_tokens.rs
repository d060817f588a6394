//! Who may use the admin API, and the name the audit log gives them
//! (API.md, `secrets.admin_tokens_file`, `secrets.admin_token`).
//!
//! Each operator has a token of their own: `secrets.admin_tokens_file` holds
//! lines `name:sha256-hex-of-token` (blank lines and `#` comments allowed),
//! and the name is the `actor` of every audit line that token's requests
//! write. The file is re-read when it changes: at most once a second a
//! request looks at its modification time, size and inode, and a change
//! loads it again, so a line removed stops working within a second or two,
//! without a restart (a Kubernetes Secret update swaps the file atomically).
//! A file that turns malformed or unreadable after start-up fails closed:
//! no file token works until it is fixed (an error is logged each second
//! it stays so), since a revocation must never be silently undone.
//!
//! The one shared `secrets.admin_token` keeps working beside it; its actor
//! is [`SHARED_TOKEN_ACTOR`]. Digests are compared in constant time, against
//! every entry, so the time taken tells nothing about which one matched.

use crate::file_watch::FileWatch;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The audit actor of requests made with `secrets.admin_token`.
pub const SHARED_TOKEN_ACTOR: &str = "admin-token";

/// How often at most the tokens file is looked at for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// An operator: the audit name and the SHA-256 of their token.
#[derive(Clone)]
pub struct Operator {
    pub name: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Operator({})", self.name)
    }
}

/// Parses a tokens file: `name:sha256-hex` lines; names of letters, digits
/// and `._@-`, unique; digests 64 hex digits, unique. Errors name the line.
pub fn parse(text: &str) -> Result<Vec<Operator>, String> {
    let mut operators: Vec<Operator> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let Some((name, hex_digest)) = line.split_once(':') else {
            return Err(format!("line {n}: expected `name:sha256-hex-of-token`"));
        };
        let (name, hex_digest) = (name.trim(), hex_digest.trim());
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
        if !name_ok {
            return Err(format!(
                "line {n}: the name must be 1 to 64 letters, digits or `._@-`"
            ));
        }
        if name == SHARED_TOKEN_ACTOR {
            return Err(format!(
                "line {n}: `{SHARED_TOKEN_ACTOR}` is the shared token's actor"
            ));
        }
        let mut digest = [0u8; 32];
        if hex_digest.len() != 64 || hex::decode_to_slice(hex_digest, &mut digest).is_err() {
            return Err(format!(
                "line {n}: `{name}`: the SHA-256 must be 64 hex digits"
            ));
        }
        if operators.iter().any(|o| o.name == name) {
            return Err(format!("line {n}: `{name}` is repeated"));
        }
        if operators.iter().any(|o| o.digest == digest) {
            return Err(format!("line {n}: `{name}` has another operator's token"));
        }
        operators.push(Operator {
            name: name.to_owned(),
            digest,
        });
    }
    Ok(operators)
}

/// Reads and parses a tokens file.
pub fn load(path: &Path) -> Result<Vec<Operator>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text)
}

struct FileState {
    operators: Vec<Operator>,
    watch: FileWatch,
}

struct TokensFile {
    state: Mutex<FileState>,
}

impl TokensFile {
    /// The operators now, after a reload if the file changed.
    fn operators(&self) -> Vec<Operator> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(change) = st.watch.changed() {
            st.watch.accept(change);
            match load(st.watch.path()) {
                Ok(ops) => {
                    tracing::info!(
                        event = "admin_tokens_reloaded",
                        operators = ops.len(),
                        "admin tokens file reloaded"
                    );
                    st.operators = ops;
                }
                Err(why) => {
                    tracing::error!(
                        event = "admin_tokens_invalid",
                        "secrets.admin_tokens_file: {why}; no operator token works until it is fixed"
                    );
                    st.operators.clear();
                }
            }
        }
        st.operators.clone()
    }
}

/// The admin API's credentials: the operators' file and the shared token.
pub struct AdminTokens {
    shared: Option<[u8; 32]>,
    file: Option<TokensFile>,
}

impl AdminTokens {
    /// From the resolved settings; the file is read (and must parse) now.
    pub fn new(shared: Option<&str>, file: Option<&Path>) -> Result<Self, String> {
        let file = match file {
            None => None,
            Some(path) => {
                let operators = load(path)?;
                Some(TokensFile {
                    state: Mutex::new(FileState {
                        operators,
                        watch: FileWatch::new(path, RELOAD_EVERY),
                    }),
                })
            }
        };
        Ok(Self {
            shared: shared.map(|s| Sha256::digest(s.as_bytes()).into()),
            file,
        })
    }

    /// Whether any credential is configured (else the admin API is off).
    pub fn configured(&self) -> bool {
        self.shared.is_some() || self.file.is_some()
    }

    /// The actor a bearer token authenticates, if any.
    pub fn actor(&self, token: &str) -> Option<String> {
        if token.is_empty() {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        if let Some(file) = &self.file {
            for op in file.operators() {
                if bool::from(op.digest.ct_eq(&digest)) {
                    found = Some(op.name);
                }
            }
        }
        if let Some(shared) = &self.shared
            && bool::from(shared.ct_eq(&digest))
        {
            found = Some(SHARED_TOKEN_ACTOR.to_owned());
        }
        found
    }
}

/// The hex SHA-256 of a token, as a tokens file line wants it.
pub fn token_digest_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_operators_and_errors_name_the_line() {
        let text = format!(
            "# helpline\n\nalice:{}\n bob.k@example : {} \n",
            token_digest_hex("a-token"),
            token_digest_hex("b-token").to_uppercase()
        );
        let ops = parse(&text).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1].name, "bob.k@example");
        for (bad, why) in [
            ("alice", "line 1"),
            (":00", "name"),
            ("al ice:00", "name"),
            ("alice:xyz", "64 hex"),
            ("admin-token:00", "shared"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let dup = format!("a:{0}\nb:{0}\n", token_digest_hex("t"));
        assert!(parse(&dup).unwrap_err().contains("line 2"));
        let dup = format!("a:{}\na:{}\n", token_digest_hex("t"), token_digest_hex("u"));
        assert!(parse(&dup).unwrap_err().contains("repeated"));
    }

    #[test]
    fn each_token_is_its_operator_and_the_shared_one_is_admin_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            format!(
                "alice:{}\nbob:{}\n",
                token_digest_hex("a-token"),
                token_digest_hex("b-token")
            ),
        )
        .unwrap();
        let t = AdminTokens::new(Some("shared"), Some(&path)).unwrap();
        assert_eq!(t.actor("a-token").as_deref(), Some("alice"));
        assert_eq!(t.actor("b-token").as_deref(), Some("bob"));
        assert_eq!(t.actor("shared").as_deref(), Some(SHARED_TOKEN_ACTOR));
        assert_eq!(t.actor("nope"), None);
        assert_eq!(t.actor(""), None);
        assert!(!AdminTokens::new(None, None).unwrap().configured());
    }
}
