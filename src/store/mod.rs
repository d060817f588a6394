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
pub mod layout;
pub mod memory;
pub mod redis;

use crate::clock::Millis;
use crate::domain::lockout::{LockStarted, LockState, LockoutPolicy};
pub use crate::domain::rate_limit::RatePolicy;
use crate::keys::{MaidenTag, PeselKey};
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
    pub maiden_tag: Option<MaidenTag>,
    pub reserved: bool,
    pub password_phc: Option<String>,
    pub first_login_at: Option<Millis>,
    /// Incremented by every helpline reset (and reclaim): an attempt settles
    /// only if the generation it began with is still current (RULES.md,
    /// "Account recovery").
    pub generation: u64,
}

impl AccountRecord {
    pub fn registered(&self) -> bool {
        self.maiden_tag.is_some()
    }
}

/// What `begin_attempt` decided, and the store's time when it did: every
/// lockout time is the store's, so replicas with skewed clocks agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    pub now: Millis,
    pub outcome: Begin,
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

/// A lock in force, read by `locked_until`, with the store's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedUntil {
    pub until: Millis,
    pub now: Millis,
}

/// A session to create when an attempt succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    pub token_hash: [u8; 32],
    pub idle: Millis,
    pub window: Millis,
    pub closes_at: Option<Millis>,
    /// The session's facts, sealed by the caller (`crate::auth::handoff`), stored
    /// in the same step as the session and ending with it (idle expiry, logout,
    /// reset, reclaim): a session never exists without them, so an outage between
    /// two writes cannot leave a password stored behind a 503, and they never
    /// outlive it.
    pub facts: String,
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
    /// has ended. Only if the account is still at `generation` (the one the
    /// attempt began with); otherwise nothing is written and the reservation
    /// is released (`superseded`).
    Success {
        generation: u64,
        password: PasswordWrite,
        session: Option<SessionSpec>,
    },
    Failure,
    Neutral,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// The store's time of the settlement.
    pub now: Millis,
    pub lock_started: Option<LockStarted>,
    /// `Define` found a password already there; nothing was written and the
    /// streak is untouched (a conflict neither counts nor clears).
    pub already_defined: bool,
    /// A reset (or reclaim) happened since the attempt began: nothing was
    /// written, no session created.
    pub superseded: bool,
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
    /// As stored: not advanced to `now`.
    pub lock: LockState,
    /// The store's time of the read.
    pub now: Millis,
}

/// A registry row as stored: keyed hashes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRecord {
    pub key: PeselKey,
    pub maiden_tag: MaidenTag,
    pub reserved: bool,
}

/// What an upsert of registry rows did, compared with what was stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryCounts {
    /// Not in the registry before.
    pub imported: u64,
    /// There with another maiden name or reserved flag.
    pub updated: u64,
    /// There already, identical.
    pub unchanged: u64,
}

impl std::ops::AddAssign for RegistryCounts {
    fn add_assign(&mut self, o: Self) {
        self.imported += o.imported;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
    }
}

/// Told how far a purge is: keys deleted so far, and roughly how many there
/// are in all (0 = unknown).
pub type PurgeProgress<'a> = dyn Fn(u64, u64) + Send + Sync + 'a;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredNoPeselRequest {
    pub reference: String,
    #[schema(format = DateTime)]
    pub received_at: String,
    pub full_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Set by the helpline (`…/handled`); stored requests are written unhandled.
    #[serde(default)]
    pub handled: bool,
}

/// One page of the helpline's no-PESEL list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoPeselQuery {
    pub limit: usize,
    /// Continue after this position (the `next` of the previous page).
    pub before: Option<u64>,
    pub include_handled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoPeselPage {
    pub requests: Vec<StoredNoPeselRequest>,
    /// Position to continue from, when there may be more.
    pub next: Option<u64>,
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

/// What a node login (login.gov.pl) found and did: see [`Store::open_node_session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSession {
    /// The PESEL is not in the registry: nothing was written.
    Unregistered,
    /// The first login is set (if it was not), and the session created unless
    /// the window has ended (`session` is `None` then).
    Opened {
        now: Millis,
        password_defined: bool,
        session: Option<SessionRecord>,
    },
}

/// What a reclaim did: see [`Store::reclaim_account`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reclaimed {
    /// The password replaced; `had_password` tells whether there was one.
    Done { had_password: bool },
    /// The account moved on (a reset or another reclaim) since `generation`
    /// was read: nothing was written.
    Superseded,
}

/// At most this many no-PESEL requests are listed at once.
pub const NO_PESEL_LIST_LIMIT: usize = 1000;

/// A replica's batch of rate-limit tokens taken for one client network since
/// its last report. `client` is a keyed hash, never the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateTake {
    pub client: [u8; 16],
    pub taken: u32,
}

/// A bucket after a batch was taken: milli-tokens left (negative = in debt,
/// at most `burst` deep) at the store's time `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBalance {
    pub milli_tokens: i64,
    pub now: Millis,
}

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
        policy: &LockoutPolicy,
    ) -> Result<Begun, StoreError>;

    /// Whether `key` is locked now, and until when. A read: nothing is
    /// reserved or written. Lets a request that cannot be checked now
    /// (hashing pool full) still be told the truth about a lock.
    async fn locked_until(&self, key: &PeselKey) -> Result<Option<LockedUntil>, StoreError>;

    /// Settles the reservation `ticket` and applies the outcome atomically.
    async fn settle_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        policy: &LockoutPolicy,
        settle: Settle,
    ) -> Result<Settled, StoreError>;

    /// Looks a session up and slides its idle expiry (never past the window).
    async fn touch_session(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        idle: Millis,
    ) -> Result<Option<SessionRecord>, StoreError>;

    async fn delete_session(&self, key: &PeselKey, token_hash: &[u8; 32])
    -> Result<(), StoreError>;

    async fn account_status(&self, key: &PeselKey) -> Result<AccountStatus, StoreError>;

    /// Lifts a lock: failures, level and lock cleared.
    async fn unlock(&self, key: &PeselKey) -> Result<(), StoreError>;

    /// Removes the password and every session and increments the account's
    /// generation, so that no attempt begun before it can settle after it;
    /// first login and window stay. Returns whether there was a password.
    async fn reset_account(&self, key: &PeselKey) -> Result<bool, StoreError>;

    /// Inserts or updates registry rows (password and first login untouched),
    /// and counts them against what was stored. Idempotent.
    async fn upsert_registry(&self, rows: &[RegistryRecord]) -> Result<RegistryCounts, StoreError>;

    /// Stores a request; with `expire_at`, the requests expire then (the
    /// census's retention). `false` (nothing written) when its reference is
    /// already taken: the caller picks another.
    async fn add_no_pesel_request(
        &self,
        request: &StoredNoPeselRequest,
        expire_at: Option<Millis>,
    ) -> Result<bool, StoreError>;

    /// A page of requests, newest first.
    async fn list_no_pesel_requests(&self, query: &NoPeselQuery)
    -> Result<NoPeselPage, StoreError>;

    /// Marks a request handled; `false` when there is no such request.
    async fn mark_no_pesel_handled(&self, reference: &str) -> Result<bool, StoreError>;

    /// Takes each batch from its client's shared bucket, atomically per client,
    /// and returns the balances in the same order.
    async fn take_rate_tokens(
        &self,
        takes: &[RateTake],
        policy: &RatePolicy,
    ) -> Result<Vec<RateBalance>, StoreError>;

    /// Brings data written by an older version to the current layout (run at
    /// start-up; idempotent). Returns how many records moved.
    async fn migrate(&self) -> Result<u64, StoreError>;

    /// Deletes all census data, in batches that never block the store for
    /// long, telling `progress` as it goes. Returns how many keys or records went.
    async fn purge(&self, progress: &PurgeProgress<'_>) -> Result<u64, StoreError>;

    // ---- OpenID Connect hand-off (`crate::auth::handoff`). Values are sealed
    // by the caller; the store sees only ciphertext and hashes of secrets.
    // Every record expires by itself (`ttl`, milliseconds).

    /// Facts of a session that the session record does not hold (when and how
    /// the person authenticated), filed under the session's token hash when the
    /// session is created ([`SessionSpec::facts`]).
    async fn session_facts(
        &self,
        key: &PeselKey,
        session_hash: &[u8; 32],
    ) -> Result<Option<String>, StoreError>;

    /// [`Store::touch_session`] and [`Store::session_facts`] together: the session
    /// check of every page load, in one round trip where the store can.
    async fn touch_session_with_facts(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        idle: Millis,
    ) -> Result<Option<(SessionRecord, Option<String>)>, StoreError> {
        let Some(record) = self.touch_session(key, token_hash, idle).await? else {
            return Ok(None);
        };
        Ok(Some((record, self.session_facts(key, token_hash).await?)))
    }

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

    // ---- login.gov.pl (`crate::saml`, `crate::auth::node`). Single keys
    // each, so any of them works on Redis Cluster.

    /// Files an `AuthnRequest` this service sent (by the hash of its ID), with
    /// the sealed state the response will need; expires after `ttl`.
    async fn put_saml_request(
        &self,
        id_hash: &[u8; 32],
        state: &str,
        ttl: Millis,
    ) -> Result<(), StoreError>;

    /// Takes a filed request: found once, then gone (single-use on every replica).
    async fn take_saml_request(&self, id_hash: &[u8; 32]) -> Result<Option<String>, StoreError>;

    /// Claims an assertion ID for `ttl`: `false` when it was claimed before
    /// (a replay), on whichever replica.
    async fn claim_saml_assertion(
        &self,
        id_hash: &[u8; 32],
        ttl: Millis,
    ) -> Result<bool, StoreError>;

    /// A node login: a first login like any other (sets the first login if
    /// absent and creates the session unless the window has ended), with the
    /// lockout neither consulted nor changed. Refused for a PESEL that is not
    /// in the registry.
    async fn open_node_session(
        &self,
        key: &PeselKey,
        session: &SessionSpec,
    ) -> Result<NodeSession, StoreError>;

    /// Reclaim (RULES.md): only if the account is still at `generation`,
    /// replaces any password with `password_phc`, ends every session but
    /// `keep_session`, clears failures and locks, and moves the generation on
    /// (like a reset, so grants and attempts begun before it die). One step.
    async fn reclaim_account(
        &self,
        key: &PeselKey,
        generation: u64,
        password_phc: &str,
        keep_session: &[u8; 32],
    ) -> Result<Reclaimed, StoreError>;
}

/// How far a session's sliding expiry must move before it is written: a
/// second (the API's precision), or a 64th of a shorter idle timeout.
/// touch_session.lua computes the same.
pub fn session_step(idle: Millis) -> Millis {
    (idle / 64).min(1000)
}
