//! The embedded store: everything in one process, behind one `std::sync::Mutex`.
//! A std mutex rather than a tokio one because no `.await` happens while it is
//! held and every critical section is a few map operations. It applies the pure
//! lockout model directly, so it is also the reference the Redis scripts are
//! tested against. Not shared between replicas: for development and tests.
//!
//! The registry is a map of its own from the 16-byte PESEL key to the 9-byte
//! [`RegistryEntry`] (~55 bytes per person at 2 M in a `HashMap`: 25 bytes of
//! slot + 1 control byte, at most 7/8 full, rounded up to a power of two),
//! apart from accounts, which exist only for people who have logged in.
//!
//! Its clock plays the part of Redis `TIME`: every lockout, session and
//! rate-limit time is read from it inside the critical section.

use super::layout::RegistryEntry;
use super::{
    AccountRecord, AccountStatus, Begin, Begun, GrantKind, GrantLookup, LockedUntil, NoPeselPage,
    NoPeselQuery, NodeSession, PasswordWrite, PurgeProgress, RateBalance, RatePolicy, RateTake,
    Reclaimed, RegistryCounts, RegistryRecord, SessionRecord, SessionSpec, Settle, Settled, Store,
    StoreError, StoredNoPeselRequest,
};
use crate::clock::Millis;
use crate::clock::{Clock, SystemClock};
use crate::domain::lockout::{LockState, LockoutPolicy};
use crate::domain::lockout::{Outcome, Reservation};
use crate::domain::rate_limit::Bucket;
use crate::domain::window::{session_expiry, window_end};
use crate::keys::PeselKey;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

/// A session, with its sealed facts: they are created, read and ended together.
struct MemSession {
    first_login: Millis,
    ends: Millis,
    expires: Millis,
    facts: String,
}

#[derive(Default)]
struct State {
    locks: HashMap<PeselKey, LockState>,
    registry: HashMap<PeselKey, RegistryEntry>,
    /// Password, first login, generation (registry fields unused here).
    accounts: HashMap<PeselKey, AccountRecord>,
    sessions: HashMap<(PeselKey, [u8; 32]), MemSession>,
    sessions_of: HashMap<PeselKey, HashSet<[u8; 32]>>,
    /// By arrival number, so the newest is last.
    no_pesel: BTreeMap<u64, StoredNoPeselRequest>,
    no_pesel_seq: u64,
    no_pesel_expire_at: Option<Millis>,
    rate: HashMap<[u8; 16], Bucket>,
    /// OIDC records (sealed by the caller), with their expiry.
    authz_requests: HashMap<[u8; 32], (String, Instant)>,
    grants: HashMap<(PeselKey, GrantKind, [u8; 32]), MemGrant>,
    /// login.gov.pl: requests sent, and assertion IDs seen.
    saml_requests: HashMap<[u8; 32], (String, Instant)>,
    saml_assertions: HashMap<[u8; 32], Instant>,
}

struct MemGrant {
    sealed: String,
    session_hash: [u8; 32],
    generation: u64,
    expires: Instant,
}

fn expiry(ttl: Millis) -> Instant {
    Instant::now() + Duration::from_millis(ttl.max(0) as u64)
}

/// Drops expired entries now and then, so that the maps stay bounded by what
/// is alive rather than by what was ever issued.
fn prune<K, V>(map: &mut HashMap<K, V>, expires: impl Fn(&V) -> Instant) {
    if map.len().is_multiple_of(1024) {
        let now = Instant::now();
        map.retain(|_, v| expires(v) > now);
    }
}

/// The account generation the OIDC grants are bound to (moved on by a reset).
fn generation(state: &State, key: &PeselKey) -> u64 {
    state.accounts.get(key).map_or(0, |a| a.generation)
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose time is `clock` (tests move a manual one).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::default(),
            clock,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied transition
        // (each section is applied to a local copy first), so poisoning is ignored.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn expire_no_pesel(&mut self, now: Millis) {
        if self.no_pesel_expire_at.is_some_and(|at| at <= now) {
            self.no_pesel.clear();
            self.no_pesel_expire_at = None;
        }
    }

    /// The account of `key` with its registry entry.
    fn account(&self, key: &PeselKey) -> AccountRecord {
        let mut account = self.accounts.get(key).cloned().unwrap_or_default();
        if let Some(entry) = self.registry.get(key) {
            account.maiden_tag = Some(entry.maiden);
            account.reserved = entry.reserved;
        }
        account
    }

    /// A new session of `key` in the window that `first_login` opened: the
    /// window's end, and the session unless the window has ended.
    fn open_session(
        &mut self,
        key: &PeselKey,
        spec: &SessionSpec,
        first_login: Millis,
        now: Millis,
    ) -> (Millis, Option<SessionRecord>) {
        let ends = window_end(first_login, spec.window, spec.closes_at);
        if ends <= now {
            return (ends, None);
        }
        let expires = session_expiry(now, spec.idle, ends);
        self.sessions.insert(
            (*key, spec.token_hash),
            MemSession {
                first_login,
                ends,
                expires,
                facts: spec.facts.clone(),
            },
        );
        self.sessions_of
            .entry(*key)
            .or_default()
            .insert(spec.token_hash);
        let record = SessionRecord {
            first_login_at: first_login,
            window_ends_at: ends,
            expires_at: expires,
        };
        (ends, Some(record))
    }

    fn put_lock(&mut self, key: PeselKey, lock: LockState) {
        if lock.is_clear() {
            self.locks.remove(&key);
        } else {
            self.locks.insert(key, lock);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn begin_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        policy: &LockoutPolicy,
    ) -> Result<Begun, StoreError> {
        let mut state = self.state();
        let now = self.clock.now();
        let mut lock = state.locks.get(key).cloned().unwrap_or_default();
        let reservation = lock.reserve(policy, now, ticket);
        state.put_lock(*key, lock);
        let outcome = match reservation {
            Reservation::Allowed => Begin::Allowed {
                account: state.account(key),
            },
            Reservation::Locked { until } => Begin::Locked { until },
            Reservation::Contended { retry_at } => Begin::Contended { retry_at },
        };
        Ok(Begun { now, outcome })
    }

    async fn locked_until(&self, key: &PeselKey) -> Result<Option<LockedUntil>, StoreError> {
        let state = self.state();
        let now = self.clock.now();
        Ok(state
            .locks
            .get(key)
            .filter(|lock| lock.is_locked(now))
            .map(|lock| LockedUntil {
                until: lock.locked_until,
                now,
            }))
    }

    async fn settle_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        policy: &LockoutPolicy,
        settle: Settle,
    ) -> Result<Settled, StoreError> {
        let mut state = self.state();
        let now = self.clock.now();
        let account = state.accounts.get(key);
        // The same order as settle.lua: a superseded attempt or a conflict is
        // no verdict on the secret, so it settles as neutral.
        let superseded = matches!(&settle, Settle::Success { generation, .. }
            if *generation != account.map_or(0, |a| a.generation));
        let already_defined = !superseded
            && matches!(
                &settle,
                Settle::Success {
                    password: PasswordWrite::Define(_),
                    ..
                }
            )
            && account.is_some_and(|a| a.password_phc.is_some());
        let outcome = match &settle {
            _ if superseded || already_defined => Outcome::Neutral,
            Settle::Success { .. } => Outcome::Success,
            Settle::Failure => Outcome::Failure,
            Settle::Neutral => Outcome::Neutral,
        };
        let mut lock = state.locks.get(key).cloned().unwrap_or_default();
        let mut settled = Settled {
            now,
            lock_started: lock.settle(policy, now, ticket, outcome),
            already_defined,
            superseded,
            ..Settled::default()
        };
        state.put_lock(*key, lock);
        let Settle::Success {
            password, session, ..
        } = settle
        else {
            return Ok(settled);
        };
        if superseded || already_defined {
            return Ok(settled);
        }
        let account = state.accounts.entry(*key).or_default();
        match password {
            PasswordWrite::Define(phc) | PasswordWrite::Rehash(phc) => {
                account.password_phc = Some(phc)
            }
            PasswordWrite::Keep => {}
        }
        let first_login = *account.first_login_at.get_or_insert(now);
        settled.first_login_at = Some(first_login);
        if let Some(spec) = session {
            let (ends, record) = state.open_session(key, &spec, first_login, now);
            settled.window_ends_at = Some(ends);
            settled.session = record;
        }
        Ok(settled)
    }

    async fn touch_session(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        idle: Millis,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut state = self.state();
        let now = self.clock.now();
        let id = (*key, *token_hash);
        let Some(session) = state.sessions.get_mut(&id) else {
            return Ok(None);
        };
        if session.expires <= now {
            state.sessions.remove(&id);
            return Ok(None);
        }
        // As touch_session.lua: the expiry moves in whole seconds.
        let expires = session_expiry(now, idle, session.ends);
        if !(0..super::session_step(idle)).contains(&(expires - session.expires)) {
            session.expires = expires;
        }
        Ok(Some(SessionRecord {
            first_login_at: session.first_login,
            window_ends_at: session.ends,
            expires_at: session.expires,
        }))
    }

    async fn delete_session(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        state.sessions.remove(&(*key, *token_hash));
        if let Some(set) = state.sessions_of.get_mut(key) {
            set.remove(token_hash);
        }
        Ok(())
    }

    async fn account_status(&self, key: &PeselKey) -> Result<AccountStatus, StoreError> {
        let state = self.state();
        Ok(AccountStatus {
            account: state.account(key),
            lock: state.locks.get(key).cloned().unwrap_or_default(),
            now: self.clock.now(),
        })
    }

    async fn unlock(&self, key: &PeselKey) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(lock) = state.locks.get_mut(key) {
            let pending = std::mem::take(&mut lock.pending);
            *lock = LockState {
                pending,
                ..LockState::default()
            };
        }
        Ok(())
    }

    async fn reset_account(&self, key: &PeselKey) -> Result<bool, StoreError> {
        let mut state = self.state();
        let account = state.accounts.entry(*key).or_default();
        account.generation += 1;
        let had = account.password_phc.take().is_some();
        for token in state.sessions_of.remove(key).unwrap_or_default() {
            state.sessions.remove(&(*key, token));
        }
        Ok(had)
    }

    async fn upsert_registry(&self, rows: &[RegistryRecord]) -> Result<RegistryCounts, StoreError> {
        let mut state = self.state();
        let mut counts = RegistryCounts::default();
        for row in rows {
            let entry = RegistryEntry {
                maiden: row.maiden_tag,
                reserved: row.reserved,
            };
            match state.registry.insert(row.key, entry) {
                None => counts.imported += 1,
                Some(old) if old == entry => counts.unchanged += 1,
                Some(_) => counts.updated += 1,
            }
        }
        Ok(counts)
    }

    async fn add_no_pesel_request(
        &self,
        request: &StoredNoPeselRequest,
        expire_at: Option<Millis>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        state.expire_no_pesel(self.clock.now());
        if state
            .no_pesel
            .values()
            .any(|r| r.reference == request.reference)
        {
            return Ok(false);
        }
        state.no_pesel_seq += 1;
        let seq = state.no_pesel_seq;
        state.no_pesel.insert(seq, request.clone());
        state.no_pesel_expire_at = expire_at;
        Ok(true)
    }

    async fn list_no_pesel_requests(
        &self,
        query: &NoPeselQuery,
    ) -> Result<NoPeselPage, StoreError> {
        let mut state = self.state();
        state.expire_no_pesel(self.clock.now());
        let mut page = NoPeselPage::default();
        let below = query.before.unwrap_or(u64::MAX);
        let mut last = None;
        for (seq, request) in state.no_pesel.range(..below).rev() {
            if !query.include_handled && request.handled {
                continue;
            }
            if page.requests.len() == query.limit {
                // More to come: continue below the last one listed.
                page.next = last;
                break;
            }
            page.requests.push(request.clone());
            last = Some(*seq);
        }
        Ok(page)
    }

    async fn mark_no_pesel_handled(&self, reference: &str) -> Result<bool, StoreError> {
        let mut state = self.state();
        state.expire_no_pesel(self.clock.now());
        Ok(state
            .no_pesel
            .values_mut()
            .find(|r| r.reference == reference)
            .map(|r| r.handled = true)
            .is_some())
    }

    async fn take_rate_tokens(
        &self,
        takes: &[RateTake],
        policy: &RatePolicy,
    ) -> Result<Vec<RateBalance>, StoreError> {
        let mut state = self.state();
        let now = self.clock.now();
        let balances = takes
            .iter()
            .map(|t| {
                let bucket = policy.take(state.rate.get(&t.client).copied(), t.taken, now);
                state.rate.insert(t.client, bucket);
                RateBalance {
                    milli_tokens: bucket.milli_tokens,
                    now,
                }
            })
            .collect();
        // Full buckets carry no information: forget them (as Redis expires
        // them), now and then rather than on every batch.
        if state.rate.len() > 10_000 {
            state
                .rate
                .retain(|_, b| policy.refill(*b, now) < policy.capacity());
        }
        Ok(balances)
    }

    async fn migrate(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn purge(&self, progress: &PurgeProgress<'_>) -> Result<u64, StoreError> {
        let mut state = self.state();
        let n = state.locks.len()
            + state.registry.len()
            + state.accounts.len()
            + state.sessions.len()
            + state.no_pesel.len();
        *state = State::default();
        progress(n as u64, n as u64);
        Ok(n as u64)
    }

    async fn session_facts(
        &self,
        key: &PeselKey,
        session_hash: &[u8; 32],
    ) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .state()
            .sessions
            .get(&(*key, *session_hash))
            .filter(|s| s.expires > now)
            .map(|s| s.facts.clone()))
    }

    async fn put_authorization_request(
        &self,
        id_hash: &[u8; 32],
        request: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        prune(&mut state.authz_requests, |v| v.1);
        state
            .authz_requests
            .insert(*id_hash, (request.to_owned(), expiry(ttl)));
        Ok(())
    }

    async fn authorization_request(
        &self,
        id_hash: &[u8; 32],
        take: bool,
    ) -> Result<Option<String>, StoreError> {
        let mut state = self.state();
        let found = if take {
            state.authz_requests.remove(id_hash)
        } else {
            state.authz_requests.get(id_hash).cloned()
        };
        Ok(found
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(v, _)| v))
    }

    async fn put_grant(
        &self,
        key: &PeselKey,
        kind: GrantKind,
        grant_hash: &[u8; 32],
        session_hash: &[u8; 32],
        sealed: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        prune(&mut state.grants, |g| g.expires);
        let grant = MemGrant {
            sealed: sealed.to_owned(),
            session_hash: *session_hash,
            generation: generation(&state, key),
            expires: expiry(ttl),
        };
        state.grants.insert((*key, kind, *grant_hash), grant);
        Ok(())
    }

    async fn use_grant(
        &self,
        key: &PeselKey,
        kind: GrantKind,
        grant_hash: &[u8; 32],
    ) -> Result<GrantLookup, StoreError> {
        let mut state = self.state();
        let id = (*key, kind, *grant_hash);
        let grant = match kind {
            GrantKind::Code => state.grants.remove(&id),
            GrantKind::AccessToken => state.grants.get(&id).map(|g| MemGrant {
                sealed: g.sealed.clone(),
                ..*g
            }),
        };
        let Some(grant) = grant.filter(|g| g.expires > Instant::now()) else {
            return Ok(GrantLookup::Unknown);
        };
        if grant.generation != generation(&state, key) {
            return Ok(GrantLookup::GenerationMoved);
        }
        let now = self.clock.now();
        let session_alive = state
            .sessions
            .get(&(*key, grant.session_hash))
            .is_some_and(|s| s.expires > now);
        if !session_alive {
            return Ok(GrantLookup::SessionEnded);
        }
        Ok(GrantLookup::Found(grant.sealed))
    }

    async fn put_saml_request(
        &self,
        id_hash: &[u8; 32],
        state: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        let mut st = self.state();
        prune(&mut st.saml_requests, |v| v.1);
        st.saml_requests
            .insert(*id_hash, (state.to_owned(), expiry(ttl)));
        Ok(())
    }

    async fn take_saml_request(&self, id_hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let mut st = self.state();
        Ok(st
            .saml_requests
            .remove(id_hash)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(v, _)| v))
    }

    async fn claim_saml_assertion(
        &self,
        id_hash: &[u8; 32],
        ttl: Millis,
    ) -> Result<bool, StoreError> {
        let mut st = self.state();
        prune(&mut st.saml_assertions, |v| *v);
        let now = Instant::now();
        if st
            .saml_assertions
            .get(id_hash)
            .is_some_and(|exp| *exp > now)
        {
            return Ok(false);
        }
        st.saml_assertions.insert(*id_hash, expiry(ttl));
        Ok(true)
    }

    async fn open_node_session(
        &self,
        key: &PeselKey,
        spec: &SessionSpec,
    ) -> Result<NodeSession, StoreError> {
        let mut state = self.state();
        let now = self.clock.now();
        // The registry is a map of its own (accounts hold no registry fields).
        if !state.registry.contains_key(key) {
            return Ok(NodeSession::Unregistered);
        }
        let account = state.accounts.entry(*key).or_default();
        let password_defined = account.password_phc.is_some();
        let first_login = *account.first_login_at.get_or_insert(now);
        let (_, session) = state.open_session(key, spec, first_login, now);
        Ok(NodeSession::Opened {
            now,
            password_defined,
            session,
        })
    }

    async fn reclaim_account(
        &self,
        key: &PeselKey,
        generation: u64,
        password_phc: &str,
        keep_session: &[u8; 32],
    ) -> Result<Reclaimed, StoreError> {
        let mut state = self.state();
        let account = state.accounts.entry(*key).or_default();
        if account.generation != generation {
            return Ok(Reclaimed::Superseded);
        }
        account.generation += 1;
        let had_password = account
            .password_phc
            .replace(password_phc.to_owned())
            .is_some();
        let others: Vec<[u8; 32]> = state
            .sessions_of
            .get(key)
            .map(|set| set.iter().filter(|t| *t != keep_session).copied().collect())
            .unwrap_or_default();
        for token in others {
            state.sessions.remove(&(*key, token));
            if let Some(set) = state.sessions_of.get_mut(key) {
                set.remove(&token);
            }
        }
        // Failures and locks go, as the helpline's unlock does; attempts in
        // flight keep their reservations (they settle as superseded).
        if let Some(lock) = state.locks.get_mut(key) {
            let pending = std::mem::take(&mut lock.pending);
            *lock = LockState {
                pending,
                ..LockState::default()
            };
        }
        Ok(Reclaimed::Done { had_password })
    }
}
