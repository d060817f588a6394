//! The embedded store: everything in one process, behind one `std::sync::Mutex`.
//! A std mutex rather than a tokio one because no `.await` happens while it is
//! held and every critical section is a few map operations. It applies the pure
//! lockout model directly, so it is also the reference the Redis scripts are
//! tested against. Not shared between replicas: for development and tests.

use super::*;
use crate::domain::lockout::{Outcome, Reservation};
use crate::domain::window::{session_expiry, window_end};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    locks: HashMap<PeselKey, LockState>,
    accounts: HashMap<PeselKey, AccountRecord>,
    sessions: HashMap<(PeselKey, [u8; 32]), (Millis, Millis, Millis)>,
    sessions_of: HashMap<PeselKey, HashSet<[u8; 32]>>,
    no_pesel: Vec<StoredNoPeselRequest>,
    /// OIDC records (sealed by the caller), with their expiry.
    session_facts: HashMap<(PeselKey, [u8; 32]), (String, Instant)>,
    authz_requests: HashMap<[u8; 32], (String, Instant)>,
    grants: HashMap<(PeselKey, GrantKind, [u8; 32]), MemGrant>,
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

/// The account generation the OIDC grants are bound to. The memory store has
/// no resets that move it yet: always 0 (the Redis scripts read field `gen`).
fn generation(_state: &State, _key: &PeselKey) -> u64 {
    0
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied transition
        // (each section is applied to a local copy first), so poisoning is ignored.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
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
        now: Millis,
        policy: &LockoutPolicy,
    ) -> Result<Begin, StoreError> {
        let mut state = self.state();
        let mut lock = state.locks.get(key).cloned().unwrap_or_default();
        let reservation = lock.reserve(policy, now, ticket);
        state.put_lock(*key, lock);
        Ok(match reservation {
            Reservation::Allowed => Begin::Allowed {
                account: state.accounts.get(key).cloned().unwrap_or_default(),
            },
            Reservation::Locked { until } => Begin::Locked { until },
            Reservation::Contended { retry_at } => Begin::Contended { retry_at },
        })
    }

    async fn locked_until(
        &self,
        key: &PeselKey,
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let state = self.state();
        Ok(state
            .locks
            .get(key)
            .filter(|lock| lock.is_locked(now))
            .map(|lock| lock.locked_until))
    }

    async fn settle_attempt(
        &self,
        key: &PeselKey,
        ticket: &str,
        now: Millis,
        policy: &LockoutPolicy,
        settle: Settle,
    ) -> Result<Settled, StoreError> {
        let mut state = self.state();
        let mut lock = state.locks.get(key).cloned().unwrap_or_default();
        let outcome = match &settle {
            Settle::Success { .. } => Outcome::Success,
            Settle::Failure => Outcome::Failure,
            Settle::Neutral => Outcome::Neutral,
        };
        let mut settled = Settled {
            lock_started: lock.settle(policy, now, ticket, outcome),
            ..Settled::default()
        };
        state.put_lock(*key, lock);
        let Settle::Success { password, session } = settle else {
            return Ok(settled);
        };
        let account = state.accounts.entry(*key).or_default();
        match password {
            PasswordWrite::Define(_) if account.password_phc.is_some() => {
                settled.already_defined = true;
                return Ok(settled);
            }
            PasswordWrite::Define(phc) | PasswordWrite::Rehash(phc) => {
                account.password_phc = Some(phc)
            }
            PasswordWrite::Keep => {}
        }
        let first_login = *account.first_login_at.get_or_insert(now);
        settled.first_login_at = Some(first_login);
        if let Some(spec) = session {
            let ends = window_end(first_login, spec.window, spec.closes_at);
            settled.window_ends_at = Some(ends);
            if ends > now {
                let expires = session_expiry(now, spec.idle, ends);
                state
                    .sessions
                    .insert((*key, spec.token_hash), (first_login, ends, expires));
                state
                    .sessions_of
                    .entry(*key)
                    .or_default()
                    .insert(spec.token_hash);
                settled.session = Some(SessionRecord {
                    first_login_at: first_login,
                    window_ends_at: ends,
                    expires_at: expires,
                });
            }
        }
        Ok(settled)
    }

    async fn touch_session(
        &self,
        key: &PeselKey,
        token_hash: &[u8; 32],
        now: Millis,
        idle: Millis,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut state = self.state();
        let id = (*key, *token_hash);
        let Some((first_login, ends, expires)) = state.sessions.get(&id).copied() else {
            return Ok(None);
        };
        if expires <= now {
            state.sessions.remove(&id);
            return Ok(None);
        }
        let expires = session_expiry(now, idle, ends);
        state.sessions.insert(id, (first_login, ends, expires));
        Ok(Some(SessionRecord {
            first_login_at: first_login,
            window_ends_at: ends,
            expires_at: expires,
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
            account: state.accounts.get(key).cloned().unwrap_or_default(),
            lock: state.locks.get(key).cloned().unwrap_or_default(),
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
        let had = state
            .accounts
            .get_mut(key)
            .and_then(|a| a.password_phc.take())
            .is_some();
        for token in state.sessions_of.remove(key).unwrap_or_default() {
            state.sessions.remove(&(*key, token));
        }
        Ok(had)
    }

    async fn upsert_registry(&self, rows: &[RegistryRecord]) -> Result<(), StoreError> {
        let mut state = self.state();
        for row in rows {
            let account = state.accounts.entry(row.key).or_default();
            account.maiden_hash = Some(row.maiden_hash);
            account.reserved = row.reserved;
        }
        Ok(())
    }

    async fn add_no_pesel_request(&self, request: &StoredNoPeselRequest) -> Result<(), StoreError> {
        self.state().no_pesel.push(request.clone());
        Ok(())
    }

    async fn list_no_pesel_requests(&self) -> Result<Vec<StoredNoPeselRequest>, StoreError> {
        Ok(self
            .state()
            .no_pesel
            .iter()
            .take(NO_PESEL_LIST_LIMIT)
            .cloned()
            .collect())
    }

    async fn purge(&self) -> Result<u64, StoreError> {
        let mut state = self.state();
        let n =
            state.locks.len() + state.accounts.len() + state.sessions.len() + state.no_pesel.len();
        *state = State::default();
        Ok(n as u64)
    }

    async fn put_session_facts(
        &self,
        key: &PeselKey,
        session_hash: &[u8; 32],
        sealed: &str,
        ttl: Millis,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        prune(&mut state.session_facts, |v| v.1);
        state
            .session_facts
            .insert((*key, *session_hash), (sealed.to_owned(), expiry(ttl)));
        Ok(())
    }

    async fn session_facts(
        &self,
        key: &PeselKey,
        session_hash: &[u8; 32],
    ) -> Result<Option<String>, StoreError> {
        let state = self.state();
        Ok(state
            .session_facts
            .get(&(*key, *session_hash))
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(v, _)| v.clone()))
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
        let now = crate::auth::now_millis();
        let session_alive = state
            .sessions
            .get(&(*key, grant.session_hash))
            .is_some_and(|&(_, _, expires)| expires > now);
        if !session_alive {
            return Ok(GrantLookup::SessionEnded);
        }
        Ok(GrantLookup::Found(grant.sealed))
    }
}
