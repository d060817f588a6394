//! Storage behind one trait. [`Store`] owns everything that must be shared by
//! all replicas: lockout state, accounts (registry entry + password + first
//! login), sessions and no-PESEL requests. Each method is one atomic step of a
//! flow, so the Redis implementation is one round trip per call and a login
//! costs two (reserve, settle).
//!
//! Implementations: [`memory::MemoryStore`] (embedded, the default) and
//! [`redis::RedisStore`] (production, single node or Cluster). Both pass the
//! same test suite (`tests/api/store_contract.rs`); lockout transitions are the
//! pure model of [`crate::domain::lockout`].

pub mod instrumented;
pub mod memory;
pub mod redis;

use crate::domain::lockout::{LockStarted, LockState, LockoutPolicy, Millis};
use crate::keys::{MaidenHash, PeselKey};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer in time or the connection is down: callers fail closed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered something this code does not understand.
    #[error("store returned unexpected data: {0}")]
    Corrupt(String),
}

/// What the store knows about a person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountRecord {
    /// Present when the PESEL is in the registry.
    pub maiden_hash: Option<MaidenHash>,
    pub reserved: bool,
    pub password_phc: Option<String>,
    pub first_login_at: Option<Millis>,
}

impl AccountRecord {
    pub fn registered(&self) -> bool {
        self.maiden_hash.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Reserved: check the credentials, then settle.
    Allowed {
        account: AccountRecord,
    },
    Locked {
        until: Millis,
    },
    Contended {
        retry_at: Millis,
    },
}

/// A session to create when an attempt succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    pub token_hash: [u8; 32],
    pub idle: Millis,
    pub window: Millis,
    pub closes_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordWrite {
    Keep,
    /// Define a password; refused (`already_defined`) if one exists.
    Define(String),
    /// Replace the hash (re-hash with new parameters after a login).
    Rehash(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Credentials right: clear the lockout streak, set the first login if
    /// absent, write the password, and create the session unless the window
    /// has ended.
    Success {
        password: PasswordWrite,
        session: Option<SessionSpec>,
    },
    Failure,
    Neutral,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    pub lock_started: Option<LockStarted>,
    /// `Define` found a password already there; nothing was written.
    pub already_defined: bool,
    /// On success: the person's first login and window end.
    pub first_login_at: Option<Millis>,
    pub window_ends_at: Option<Millis>,
    /// On success with a session requested and the window still open.
    pub session: Option<SessionRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRecord {
    pub first_login_at: Millis,
    pub window_ends_at: Millis,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStatus {
    pub account: AccountRecord,
    pub lock: LockState,
}

/// A registry row as stored: keyed hashes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRecord {
    pub key: PeselKey,
    pub maiden_hash: MaidenHash,
    pub reserved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredNoPeselRequest {
    pub reference: String,
    pub received_at: String,
    pub full_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// OpenID Connect grants kept per person (see `crate::auth::handoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantKind {
    /// Authorization code: single-use, deleted by the lookup that finds it.
    Code,
    /// Access token for userinfo: read as often as needed until it expires.
    AccessToken,
}

/// What a grant lookup found. A grant dies with the session it came from and
/// with a reset of the account (its generation moved on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantLookup {
    /// The sealed grant.
    Found(String),
    /// Never issued, expired, or (a code) already used.
    Unknown,
    SessionEnded,
    GenerationMoved,
}

/// At most this many no-PESEL requests are listed at once.
pub const NO_PESEL_LIST_LIMIT: usize = 1000;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short name for logs and metrics.
    fn kind(&self) -> &'static str;

    async fn ping(&self) -> Result<(), StoreError>;

    /// Reserves a credential check for `key` under `ticket` (see the lockout
    /// model) and returns the account to check against.
    async fn begin_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        now: Millis,
        policy: &LockoutPolicy,
    ) -> Result<Begin, StoreError>;

    /// When `key` is locked at `now`, until when. A read: nothing is reserved.
    /// Lets a request that cannot be checked now (hashing pool full) still be
    /// told the truth about a lock.
    async fn locked_until(&self, key: &PeselKey, now: Millis)
    -> Result<Option<Millis>, StoreError>;

    /// Settles the reservation `ticket` and applies the outcome atomically.
    async fn settle_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        now: Millis,
        policy: &LockoutPolicy,
        settle: Settle,
    ) -> Result<Settled, StoreError>;

    /// Looks a session up and slides its idle expiry (never past the window).
    async fn touch_session(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        now: Millis,
        idle: Millis,
    ) -> Result<Option<SessionRecord>, StoreError>;

    async fn delete_session(&self, key: &PeselKey, token_hash: &[u8; 32])
    -> Result<(), StoreError>;

    async fn account_status(&self, key: &PeselKey) -> Result<AccountStatus, StoreError>;

    /// Lifts a lock: failures, level and lock cleared.
    async fn unlock(&self, key: &PeselKey) -> Result<(), StoreError>;

    /// Removes the password and every session; first login and window stay.
    /// Returns whether there was a password.
    async fn reset_account(&self, key: &PeselKey) -> Result<bool, StoreError>;

    /// Inserts or updates registry rows (password and first login untouched).
    async fn upsert_registry(&self, rows: &[RegistryRecord]) -> Result<(), StoreError>;

    async fn add_no_pesel_request(&self, request: &StoredNoPeselRequest) -> Result<(), StoreError>;

    /// The oldest [`NO_PESEL_LIST_LIMIT`] requests, in arrival order.
    async fn list_no_pesel_requests(&self) -> Result<Vec<StoredNoPeselRequest>, StoreError>;

    /// Deletes all census data. Returns how many keys or records went.
    async fn purge(&self) -> Result<u64, StoreError>;

    // ---- OpenID Connect hand-off (`crate::auth::handoff`). Values are sealed
    // by the caller; the store sees only ciphertext and hashes of secrets.
    // Every record expires by itself (`ttl`, milliseconds).

    /// Facts of a session that the session record does not hold (when and how
    /// the person authenticated), filed under the session's token hash.
    async fn put_session_facts(
        &self,
        key: &PeselKey,
        session_hash: &[u8; 32],
        sealed: &str,
        ttl: Millis,
    ) -> Result<(), StoreError>;

    async fn session_facts(
        &self,
        key: &PeselKey,
        session_hash: &[u8; 32],
    ) -> Result<Option<String>, StoreError>;

    /// An authorization request waiting for the person to log in (no person yet).
    async fn put_authorization_request(
        &self,
        id_hash: &[u8; 32],
        request: &str,
        ttl: Millis,
    ) -> Result<(), StoreError>;

    /// The waiting request; `take` deletes it in the same step.
    async fn authorization_request(
        &self,
        id_hash: &[u8; 32],
        take: bool,
    ) -> Result<Option<String>, StoreError>;

    /// Files a grant of the session `session_hash`, with the account's current generation.
    async fn put_grant(
        &self,
        key: &PeselKey,
        kind: GrantKind,
        grant_hash: &[u8; 32],
        session_hash: &[u8; 32],
        sealed: &str,
        ttl: Millis,
    ) -> Result<(), StoreError>;

    /// Looks a grant up, atomically: a code is deleted by the lookup that finds
    /// it, so of two redemptions racing on two replicas at most one gets it.
    async fn use_grant(
        &self,
        key: &PeselKey,
        kind: GrantKind,
        grant_hash: &[u8; 32],
    ) -> Result<GrantLookup, StoreError>;
}
