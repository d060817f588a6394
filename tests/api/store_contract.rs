//! The store contract, below HTTP: the memory store and the Redis scripts make
//! the same lockout decisions as the pure model in `domain::lockout`, for the
//! same random sequences of attempts and times.

use crate::helpers::*;
use census_login::clock::{Clock, ManualClock, SystemClock};
use census_login::domain::lockout::{LockState, LockoutPolicy, Outcome, Reservation};
use census_login::keys::PeselKey;
use census_login::store::memory::MemoryStore;
use census_login::store::redis::{RedisOptions, RedisStore};
use census_login::store::{
    Begin, LockedUntil, NoPeselQuery, NodeSession, PasswordWrite, RatePolicy, RateTake, Reclaimed,
    RegistryRecord, SessionSpec, Settle, Store, StoredNoPeselRequest,
};
use rand::{RngExt, SeedableRng};
use std::sync::Arc;
use std::time::Duration;

/// A Redis store whose scripts take their time from `clock` instead of `TIME`.
fn redis_with_clock(url: &str, clock: Arc<ManualClock>) -> Arc<RedisStore> {
    RedisStore::with_options(
        url,
        RedisOptions {
            timeout: Duration::from_secs(2),
            clock: Some(clock),
            ..RedisOptions::default()
        },
    )
    .unwrap()
}

/// The stores of one test, all reading one manual clock.
struct Stores {
    clock: Arc<ManualClock>,
    _redis: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
    store: Arc<dyn Store>,
}

impl Stores {
    fn new(backend: Backend) -> Self {
        let (redis, cluster) = match backend {
            Backend::Memory => (None, None),
            Backend::Redis => (Some(RedisServer::start()), None),
            Backend::Cluster => (None, Some(RedisCluster::start())),
        };
        // Real time as the start, once the servers are up: Redis expires
        // keys by its own clock.
        let clock = ManualClock::at_wall_time();
        let store: Arc<dyn Store> = match (&redis, &cluster) {
            (Some(r), _) => redis_with_clock(&r.url(), clock.clone()),
            (_, Some(c)) => redis_with_clock(&c.url(), clock.clone()),
            _ => Arc::new(MemoryStore::with_clock(clock.clone())),
        };
        Self {
            clock,
            _redis: redis,
            _cluster: cluster,
            store,
        }
    }
}

fn policy() -> LockoutPolicy {
    LockoutPolicy {
        max_failures: 3,
        base_block: 1_000,
        multiplier: 2,
        max_block: 5_000,
        forget_after: 4_000,
        reservation_ttl: 700,
    }
}

/// Two policies, so that no script constant hides behind the defaults.
fn policies() -> [LockoutPolicy; 2] {
    [
        policy(),
        LockoutPolicy {
            max_failures: 1,
            base_block: 700,
            multiplier: 3,
            max_block: 10_000,
            forget_after: 2_500,
            reservation_ttl: 300,
        },
    ]
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Begin(String),
    /// Lock started; for a success: superseded, first login, session created.
    Settle(Option<(u32, i64)>, Option<(bool, i64, bool)>),
    Unlock,
    Reset,
}

const WINDOW: i64 = 20_000;

/// Runs one random script of attempts, unlocks and resets against the model
/// and a store: every reservation, lock, success write (first login, session,
/// a reset winning over an attempt in flight) must agree.
async fn replay(stores: &Stores, p: &LockoutPolicy, seed: u64) -> (Vec<Seen>, Vec<Seen>) {
    let store = stores.store.as_ref();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let key = PeselKey::from_hex(&format!("{seed:016x}{:016x}", p.max_failures)).unwrap();
    let mut model = LockState::default();
    // The model's account: generation and first login.
    let (mut generation, mut first_login): (u64, Option<i64>) = (0, None);
    let (mut from_model, mut from_store) = (Vec::new(), Vec::new());
    let mut now = stores.clock.now();
    // Open tickets with the generation they began with.
    let mut open: Vec<(String, u64)> = Vec::new();
    for step in 0..150 {
        now += rng.random_range(0..600);
        stores.clock.set(now);
        let roll = rng.random_range(0..30);
        if roll == 0 {
            // The helpline lifts the lock: reservations in flight stay.
            let pending = std::mem::take(&mut model.pending);
            model = LockState {
                pending,
                ..LockState::default()
            };
            store.unlock(&key).await.unwrap();
            from_model.push(Seen::Unlock);
            from_store.push(Seen::Unlock);
        } else if roll == 1 {
            generation += 1;
            store.reset_account(&key).await.unwrap();
            from_model.push(Seen::Reset);
            from_store.push(Seen::Reset);
        } else if open.is_empty() || roll % 3 == 0 {
            let ticket = format!("t{step}");
            let m = match model.reserve(p, now, &ticket) {
                Reservation::Allowed => "allowed".to_owned(),
                Reservation::Locked { until } => format!("locked {until}"),
                Reservation::Contended { retry_at } => format!("contended {retry_at}"),
            };
            let (s, seen_generation) =
                match store.begin_attempt(&key, &ticket, p).await.unwrap().outcome {
                    Begin::Allowed { account } => ("allowed".to_owned(), account.generation),
                    Begin::Locked { until } => (format!("locked {until}"), 0),
                    Begin::Contended { retry_at } => (format!("contended {retry_at}"), 0),
                };
            if m == "allowed" {
                open.push((ticket, seen_generation));
            }
            from_model.push(Seen::Begin(m));
            from_store.push(Seen::Begin(s));
        } else {
            let (ticket, began_with) = open.swap_remove(rng.random_range(0..open.len()));
            let outcome = match rng.random_range(0..10) {
                0 | 1 => Outcome::Success,
                2 => Outcome::Neutral,
                _ => Outcome::Failure,
            };
            let superseded = outcome == Outcome::Success && began_with != generation;
            let effective = if superseded {
                Outcome::Neutral
            } else {
                outcome
            };
            let lock = model
                .settle(p, now, &ticket, effective)
                .map(|l| (l.level, l.until));
            let success = (outcome == Outcome::Success).then(|| {
                if superseded {
                    return (true, 0, false);
                }
                let first = *first_login.get_or_insert(now);
                (false, first, first + WINDOW > now)
            });
            let settle = match outcome {
                Outcome::Success => Settle::Success {
                    generation: began_with,
                    password: PasswordWrite::Keep,
                    session: Some(SessionSpec {
                        token_hash: [step as u8; 32],
                        idle: 5_000,
                        window: WINDOW,
                        closes_at: None,
                        facts: format!("facts of {step}"),
                    }),
                },
                Outcome::Failure => Settle::Failure,
                Outcome::Neutral => Settle::Neutral,
            };
            let s = store
                .settle_attempt(&key, &ticket, p, settle)
                .await
                .unwrap();
            let store_success = (outcome == Outcome::Success).then(|| {
                (
                    s.superseded,
                    s.first_login_at.unwrap_or(0),
                    s.session.is_some(),
                )
            });
            if s.session.is_some() {
                // Written in the same step as the session, never apart from it.
                let touched = store
                    .touch_session_with_facts(&key, &[step as u8; 32], 5_000)
                    .await
                    .unwrap();
                assert_eq!(
                    touched.and_then(|(_, facts)| facts),
                    Some(format!("facts of {step}")),
                    "seed {seed}, step {step}: a session without its facts"
                );
            }
            from_model.push(Seen::Settle(lock, success));
            from_store.push(Seen::Settle(
                s.lock_started.map(|l| (l.level, l.until)),
                store_success,
            ));
        }
    }
    let status = store.account_status(&key).await.unwrap();
    let mut stored = status.lock;
    stored.advance(p, now);
    model.advance(p, now);
    assert_eq!(
        (stored.failures, stored.level, stored.locked_until),
        (model.failures, model.level, model.locked_until)
    );
    assert_eq!(status.account.generation, generation);
    assert_eq!(status.account.first_login_at, first_login);
    (from_model, from_store)
}

async fn follows_the_model(backend: Backend) {
    let stores = Stores::new(backend);
    // On the cluster, the seeds spread the keys over all three masters' slots.
    for p in policies() {
        for seed in 0..30 {
            let (model, seen) = replay(&stores, &p, seed).await;
            assert_eq!(model, seen, "seed {seed}, {p:?}");
        }
    }
}

/// An attempt abandoned (its replica killed) counts as a failure at its
/// expiry whenever the next attempt comes, long after the reservation's own
/// time: the pending set is kept until such a failure would be forgotten.
async fn an_abandoned_attempt_counts_whenever_the_next_one_comes(backend: Backend) {
    let stores = Stores::new(backend);
    let (store, p) = (stores.store.as_ref(), policy());
    let key = PeselKey::from_hex(&format!("{:032x}", 0xab_u64)).unwrap();
    for i in 0..p.max_failures - 1 {
        let t = format!("f{i}");
        store.begin_attempt(&key, &t, &p).await.unwrap();
        store
            .settle_attempt(&key, &t, &p, Settle::Failure)
            .await
            .unwrap();
    }
    let lost = store.begin_attempt(&key, "lost", &p).await.unwrap();
    // Well after the reservation expired (and after the old 1 s grace), but
    // inside forget_after.
    stores
        .clock
        .advance(Duration::from_millis(p.reservation_ttl as u64 + 1_500));
    store.begin_attempt(&key, "next", &p).await.unwrap();
    let lock = store.account_status(&key).await.unwrap().lock;
    // The lost attempt was the last failure allowed: it locked, from the
    // moment its reservation expired.
    assert_eq!(lock.level, 1, "{lock:?}");
    assert_eq!(
        lock.locked_until,
        lost.now + p.reservation_ttl + p.base_block
    );
}

/// A success settles only on the generation it began with: a reset in
/// between wins (no session, no password, no cleared streak).
async fn a_reset_wins_over_an_attempt_in_flight(backend: Backend) {
    let stores = Stores::new(backend);
    let (store, p) = (stores.store.as_ref(), policy());
    let key = PeselKey::from_hex(&format!("{:032x}", 0xcd_u64)).unwrap();
    let spec = SessionSpec {
        token_hash: [9; 32],
        idle: 60_000,
        window: 3_600_000,
        closes_at: None,
        facts: "facts".into(),
    };
    let define = |generation| Settle::Success {
        generation,
        password: PasswordWrite::Define("old".into()),
        session: Some(spec.clone()),
    };
    store.begin_attempt(&key, "f", &p).await.unwrap();
    store
        .settle_attempt(&key, "f", &p, Settle::Failure)
        .await
        .unwrap();
    let Begin::Allowed { account } = store.begin_attempt(&key, "t", &p).await.unwrap().outcome
    else {
        panic!("allowed")
    };
    assert!(!store.reset_account(&key).await.unwrap(), "no password yet");
    let settled = store
        .settle_attempt(&key, "t", &p, define(account.generation))
        .await
        .unwrap();
    assert!(settled.superseded && settled.session.is_none());
    assert_eq!(
        store.session_facts(&key, &[9; 32]).await.unwrap(),
        None,
        "no facts without a session"
    );
    let status = store.account_status(&key).await.unwrap();
    assert_eq!(status.account.password_phc, None);
    assert_eq!(status.account.generation, account.generation + 1);
    assert_eq!(
        status.lock.failures, 1,
        "a superseded attempt neither counts nor clears"
    );
    assert!(
        status.lock.pending.is_empty(),
        "its reservation is released"
    );
    assert_eq!(
        store.touch_session(&key, &[9; 32], 60_000).await.unwrap(),
        None
    );
    // The next attempt, on the new generation, goes through.
    store.begin_attempt(&key, "u", &p).await.unwrap();
    let settled = store
        .settle_attempt(&key, "u", &p, define(account.generation + 1))
        .await
        .unwrap();
    assert!(!settled.superseded && settled.session.is_some());
}

/// Two definitions race: the second finds a password and must leave the
/// failures recorded in between alone.
async fn a_racing_definition_conflict_neither_counts_nor_clears(backend: Backend) {
    let stores = Stores::new(backend);
    let (store, p) = (stores.store.as_ref(), policy());
    let key = PeselKey::from_hex(&format!("{:032x}", 0xef_u64)).unwrap();
    let define = Settle::Success {
        generation: 0,
        password: PasswordWrite::Define("phc".into()),
        session: None,
    };
    store.begin_attempt(&key, "a", &p).await.unwrap();
    store.begin_attempt(&key, "b", &p).await.unwrap();
    let first = store
        .settle_attempt(&key, "a", &p, define.clone())
        .await
        .unwrap();
    assert!(!first.already_defined);
    store.begin_attempt(&key, "x", &p).await.unwrap();
    store
        .settle_attempt(&key, "x", &p, Settle::Failure)
        .await
        .unwrap();
    let second = store.settle_attempt(&key, "b", &p, define).await.unwrap();
    assert!(second.already_defined);
    let status = store.account_status(&key).await.unwrap();
    assert_eq!(status.lock.failures, 1, "the failure in between stays");
    assert!(status.lock.pending.is_empty());
}

/// `locked_until` reads the lock the scripts wrote, and reserves nothing.
async fn locked_until_reads_without_reserving(backend: Backend) {
    let stores = Stores::new(backend);
    let (store, p) = (stores.store.as_ref(), policy());
    let key = PeselKey::from_hex(&format!("{:032x}", 0xabcdef_u64)).unwrap();
    assert_eq!(store.locked_until(&key).await.unwrap(), None);
    let mut until = None;
    for i in 0..p.max_failures {
        let ticket = format!("lu{i}");
        assert!(matches!(
            store
                .begin_attempt(&key, &ticket, &p)
                .await
                .unwrap()
                .outcome,
            Begin::Allowed { .. }
        ));
        let settled = store
            .settle_attempt(&key, &ticket, &p, Settle::Failure)
            .await
            .unwrap();
        until = settled.lock_started.map(|l| l.until);
    }
    let until = until.expect("the last failure starts a lock");
    stores.clock.advance(Duration::from_millis(1));
    let now = stores.clock.now();
    for _ in 0..3 {
        assert_eq!(
            store.locked_until(&key).await.unwrap(),
            Some(LockedUntil { until, now })
        );
    }
    stores.clock.set(until);
    assert_eq!(store.locked_until(&key).await.unwrap(), None);
    let status = store.account_status(&key).await.unwrap().lock;
    assert!(status.pending.is_empty(), "a read must not reserve");
    assert_eq!(status.failures, p.max_failures);
}

fn no_pesel(reference: &str) -> StoredNoPeselRequest {
    StoredNoPeselRequest {
        reference: reference.into(),
        received_at: "2021-04-01T00:00:00Z".into(),
        full_name: "Jan Kowalski".into(),
        email: Some("jan@example.pl".into()),
        phone: None,
        message: None,
        handled: false,
    }
}

/// No-PESEL requests page newest first; handled ones leave the open list;
/// a reference is never overwritten; all of them expire at the retention.
async fn no_pesel_requests_page_newest_first(backend: Backend) {
    let stores = Stores::new(backend);
    let store = stores.store.as_ref();
    let expire_at = stores.clock.now() + 60_000;
    for i in 0..7 {
        assert!(
            store
                .add_no_pesel_request(&no_pesel(&format!("R{i}")), Some(expire_at))
                .await
                .unwrap()
        );
    }
    assert!(
        !store
            .add_no_pesel_request(&no_pesel("R3"), None)
            .await
            .unwrap()
    );
    assert!(store.mark_no_pesel_handled("R5").await.unwrap());
    assert!(!store.mark_no_pesel_handled("nope").await.unwrap());
    let refs = |page: &census_login::store::NoPeselPage| {
        page.requests
            .iter()
            .map(|r| r.reference.clone())
            .collect::<Vec<_>>()
    };
    let query = |before, include_handled| NoPeselQuery {
        limit: 3,
        before,
        include_handled,
    };
    let first = store
        .list_no_pesel_requests(&query(None, false))
        .await
        .unwrap();
    assert_eq!(refs(&first), ["R6", "R4", "R3"]);
    let second = store
        .list_no_pesel_requests(&query(first.next, false))
        .await
        .unwrap();
    assert_eq!(refs(&second), ["R2", "R1", "R0"]);
    assert_eq!(second.next, None, "nothing older is left");
    let all = store
        .list_no_pesel_requests(&query(None, true))
        .await
        .unwrap();
    assert_eq!(refs(&all), ["R6", "R5", "R4"]);
    assert!(all.requests[1].handled && !all.requests[0].handled);
    if backend == Backend::Memory {
        stores.clock.set(expire_at);
        let gone = store
            .list_no_pesel_requests(&query(None, true))
            .await
            .unwrap();
        assert!(gone.requests.is_empty());
    }
}

/// The shared token bucket, the same on every store.
async fn rate_tokens_are_shared_and_refill(backend: Backend) {
    let stores = Stores::new(backend);
    let store = stores.store.as_ref();
    let policy = RatePolicy {
        per_minute: 60,
        burst: 5,
    };
    let take = |client: u8, taken| RateTake {
        client: [client; 16],
        taken,
    };
    let b = store
        .take_rate_tokens(&[take(1, 2), take(2, 9)], &policy)
        .await
        .unwrap();
    assert_eq!(
        b.iter().map(|b| b.milli_tokens).collect::<Vec<_>>(),
        [3_000, -4_000]
    );
    let b = store
        .take_rate_tokens(&[take(1, 1)], &policy)
        .await
        .unwrap();
    assert_eq!(b[0].milli_tokens, 2_000);
    stores.clock.advance(Duration::from_millis(1_500));
    let b = store
        .take_rate_tokens(&[take(1, 0), take(2, 0)], &policy)
        .await
        .unwrap();
    assert_eq!(
        b.iter().map(|b| b.milli_tokens).collect::<Vec<_>>(),
        [3_500, -2_500]
    );
}

/// login.gov.pl: a filed request is taken once; an assertion ID is claimed once.
async fn saml_requests_and_assertions_are_single_use(backend: Backend) {
    let stores = Stores::new(backend);
    let store = stores.store.as_ref();
    store
        .put_saml_request(&[1; 32], "state", 60_000)
        .await
        .unwrap();
    assert_eq!(store.take_saml_request(&[2; 32]).await.unwrap(), None);
    assert_eq!(
        store.take_saml_request(&[1; 32]).await.unwrap().as_deref(),
        Some("state")
    );
    assert_eq!(store.take_saml_request(&[1; 32]).await.unwrap(), None);
    assert!(store.claim_saml_assertion(&[3; 32], 60_000).await.unwrap());
    assert!(!store.claim_saml_assertion(&[3; 32], 60_000).await.unwrap());
    assert!(store.claim_saml_assertion(&[4; 32], 60_000).await.unwrap());
}

/// A node login is a first login (window opens, session created) that leaves
/// the lockout alone; a reclaim replaces the password, keeps only the
/// reclaiming session, clears the lock and moves the generation on.
async fn node_sessions_and_reclaim(backend: Backend) {
    let stores = Stores::new(backend);
    let (store, p) = (stores.store.as_ref(), policy());
    let key = PeselKey::from_hex(&format!("{:032x}", 0x5a_u64)).unwrap();
    let spec = |t: u8| SessionSpec {
        token_hash: [t; 32],
        idle: 60_000,
        window: 3_600_000,
        closes_at: None,
        facts: format!("facts of {t}"),
    };
    // Not in the registry: nothing.
    assert_eq!(
        store.open_node_session(&key, &spec(1)).await.unwrap(),
        NodeSession::Unregistered
    );
    store
        .upsert_registry(&[RegistryRecord {
            key,
            maiden_tag: [7; 8],
            reserved: true,
        }])
        .await
        .unwrap();
    // An impostor defines a password (a session 2), then fails until locked.
    store.begin_attempt(&key, "d", &p).await.unwrap();
    store
        .settle_attempt(
            &key,
            "d",
            &p,
            Settle::Success {
                generation: 0,
                password: PasswordWrite::Define("impostor".into()),
                session: Some(spec(2)),
            },
        )
        .await
        .unwrap();
    for i in 0..p.max_failures {
        let t = format!("f{i}");
        store.begin_attempt(&key, &t, &p).await.unwrap();
        store
            .settle_attempt(&key, &t, &p, Settle::Failure)
            .await
            .unwrap();
    }
    let locked = store.account_status(&key).await.unwrap();
    assert!(locked.lock.locked_until > locked.now);
    let NodeSession::Opened {
        password_defined,
        session: Some(record),
        ..
    } = store.open_node_session(&key, &spec(3)).await.unwrap()
    else {
        panic!("a node session")
    };
    assert!(password_defined);
    let after = store.account_status(&key).await.unwrap();
    assert_eq!(after.lock, locked.lock, "the lockout is untouched");
    assert_eq!(Some(record.first_login_at), after.account.first_login_at);
    // A reclaim on a stale generation writes nothing.
    assert_eq!(
        store
            .reclaim_account(&key, after.account.generation + 1, "new", &[3; 32])
            .await
            .unwrap(),
        Reclaimed::Superseded
    );
    assert_eq!(
        store
            .account_status(&key)
            .await
            .unwrap()
            .account
            .password_phc
            .as_deref(),
        Some("impostor")
    );
    assert_eq!(
        store
            .reclaim_account(&key, after.account.generation, "new", &[3; 32])
            .await
            .unwrap(),
        Reclaimed::Done { had_password: true }
    );
    let done = store.account_status(&key).await.unwrap();
    assert_eq!(done.account.password_phc.as_deref(), Some("new"));
    assert_eq!(done.account.generation, after.account.generation + 1);
    assert_eq!(done.lock.failures, 0);
    assert!(done.lock.locked_until <= done.now);
    assert!(
        store
            .touch_session(&key, &[2; 32], 60_000)
            .await
            .unwrap()
            .is_none(),
        "the impostor's session ended"
    );
    assert_eq!(
        store
            .touch_session_with_facts(&key, &[3; 32], 60_000)
            .await
            .unwrap()
            .and_then(|(_, facts)| facts),
        Some("facts of 3".to_string()),
        "the reclaiming session stays, with the facts its node login wrote"
    );
    assert_eq!(
        store.session_facts(&key, &[2; 32]).await.unwrap(),
        None,
        "the impostor's session facts went with it"
    );
    store.delete_session(&key, &[3; 32]).await.unwrap();
    assert_eq!(
        store.session_facts(&key, &[3; 32]).await.unwrap(),
        None,
        "a logout takes the facts too"
    );
    // The window, once ended, gives no node session either.
    stores.clock.advance(Duration::from_secs(3_601));
    assert!(matches!(
        store.open_node_session(&key, &spec(4)).await.unwrap(),
        NodeSession::Opened { session: None, .. }
    ));
}

#[tokio::test]
async fn the_memory_store_follows_the_model() {
    follows_the_model(Backend::Memory).await;
}

fn record(key: PeselKey, maiden: u8, reserved: bool) -> RegistryRecord {
    RegistryRecord {
        key,
        maiden_tag: [maiden; 8],
        reserved,
    }
}

/// Keys that all share one hash tag (the first two bytes), as 38 M people
/// put ~580 in each: the tag's buckets must grow.
fn keys_of_one_tag(n: usize, seed: u64) -> Vec<PeselKey> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut b: [u8; 16] = rng.random();
            b[..2].copy_from_slice(&[0xbe, 0xef]);
            PeselKey::from_bytes(b)
        })
        .collect()
}

async fn registry_upserts_are_counted_and_looked_up(backend: Backend) {
    let stores = Stores::new(backend);
    let store = &stores.store;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let people: Vec<PeselKey> = (0..300)
        .map(|_| PeselKey::from_bytes(rng.random()))
        .collect();
    let rows: Vec<_> = people
        .iter()
        .enumerate()
        .map(|(i, k)| record(*k, i as u8, i % 7 == 0))
        .collect();
    let counts = store.upsert_registry(&rows).await.unwrap();
    assert_eq!(
        (counts.imported, counts.updated, counts.unchanged),
        (300, 0, 0)
    );
    let again = store.upsert_registry(&rows).await.unwrap();
    assert_eq!(
        (again.imported, again.updated, again.unchanged),
        (0, 0, 300)
    );
    let changed = [record(people[1], 99, false), record(people[2], 2, true)];
    let c = store.upsert_registry(&changed).await.unwrap();
    assert_eq!((c.imported, c.updated, c.unchanged), (0, 2, 0));
    let account = |k| async move { store.account_status(&k).await.unwrap().account };
    let a = account(people[0]).await;
    assert_eq!((a.maiden_tag, a.reserved), (Some([0; 8]), true));
    let a = account(people[1]).await;
    assert_eq!((a.maiden_tag, a.reserved), (Some([99; 8]), false));
    assert!(account(people[2]).await.reserved);
    assert!(!account(PeselKey::from_bytes([3; 16])).await.registered());
    // The login path reads the same entry.
    let Begin::Allowed { account } = store
        .begin_attempt(&people[8], "t", &policy())
        .await
        .unwrap()
        .outcome
    else {
        panic!("not allowed")
    };
    assert_eq!(account.maiden_tag, Some([8; 8]));
}

async fn a_crowded_tag_grows_its_buckets_and_keeps_everyone(backend: Backend) {
    let stores = Stores::new(backend);
    let store = &stores.store;
    let people = keys_of_one_tag(2000, 6);
    let rows: Vec<_> = people
        .iter()
        .enumerate()
        .map(|(i, k)| record(*k, (i % 251) as u8, i % 2 == 0))
        .collect();
    // In several calls, so buckets grow between and within them.
    let mut total = census_login::store::RegistryCounts::default();
    for chunk in rows.chunks(700) {
        total += store.upsert_registry(chunk).await.unwrap();
    }
    assert_eq!(total.imported, 2000);
    for (i, k) in people.iter().enumerate() {
        let a = store.account_status(k).await.unwrap().account;
        assert_eq!(a.maiden_tag, Some([(i % 251) as u8; 8]), "person {i}");
        assert_eq!(a.reserved, i % 2 == 0);
    }
    let again = store.upsert_registry(&rows).await.unwrap();
    assert_eq!(again.unchanged, 2000);
}

async fn the_import_streams_a_generated_file_with_bad_rows(backend: Backend) {
    let stores = Stores::new(backend);
    let mut csv = Vec::new();
    census_login::registry::generate(5000, 11, &mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let first = text.lines().nth(1).unwrap().to_owned();
    let pesel = first.split(',').next().unwrap();
    let file = format!("{text}{pesel},,false\n12345678901,Nowak,\n");
    let k = Arc::new(keys());
    let today = SystemClock.poland_today();
    let mut seen = 0;
    let report = census_login::registry::import(
        std::io::Cursor::new(file.clone().into_bytes()),
        today,
        k.clone(),
        stores.store.clone(),
        |p| seen = p.rows,
    )
    .await
    .unwrap();
    assert_eq!(seen, 5002);
    assert_eq!(
        (
            report.counts.imported,
            report.counts.updated,
            report.counts.unchanged
        ),
        (5000, 0, 0)
    );
    assert_eq!(report.rejected, 2);
    assert_eq!(
        report.bad.iter().map(|b| b.line).collect::<Vec<_>>(),
        [5002, 5003]
    );
    let key = k.pesel_key(&census_login::domain::Pesel::parse(pesel, today).unwrap());
    let name = first.split(',').nth(1).unwrap();
    let account = stores.store.account_status(&key).await.unwrap().account;
    assert_eq!(
        account.maiden_tag,
        Some(k.maiden_tag(&census_login::domain::MaidenName::parse(name).unwrap()))
    );
    let again = census_login::registry::import(
        std::io::Cursor::new(file.into_bytes()),
        today,
        k,
        stores.store.clone(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((again.counts.imported, again.counts.unchanged), (0, 5000));
}

crate::both_stores!(
    the_import_streams_a_generated_file_with_bad_rows,
    registry_upserts_are_counted_and_looked_up,
    a_crowded_tag_grows_its_buckets_and_keeps_everyone,
    an_abandoned_attempt_counts_whenever_the_next_one_comes,
    a_reset_wins_over_an_attempt_in_flight,
    a_racing_definition_conflict_neither_counts_nor_clears,
    locked_until_reads_without_reserving,
    no_pesel_requests_page_newest_first,
    rate_tokens_are_shared_and_refill,
    saml_requests_and_assertions_are_single_use,
    node_sessions_and_reclaim,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_scripts_follow_the_model() {
    follows_the_model(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripts_follow_the_model_on_redis_cluster() {
    follows_the_model(Backend::Cluster).await;
}

/// In production the scripts read Redis `TIME`: a reply carries the server's
/// time, whatever the caller's clock says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_test_clock_the_scripts_use_redis_time() {
    let redis = RedisServer::start();
    let store = RedisStore::new(&redis.url(), Duration::from_secs(2)).unwrap();
    let key = PeselKey::from_hex("0123456789abcdef0123456789abcdee").unwrap();
    let begun = store.begin_attempt(&key, "a", &policy()).await.unwrap();
    let wall = SystemClock.now();
    assert!((begun.now - wall).abs() < 5_000, "{} vs {wall}", begun.now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_expire_once_nothing_is_remembered() {
    let redis = RedisServer::start();
    let store = RedisStore::new(&redis.url(), Duration::from_secs(2)).unwrap();
    let key = PeselKey::from_hex("0123456789abcdef0123456789abcdef").unwrap();
    let p = policy();
    assert!(matches!(
        store.begin_attempt(&key, "a", &p).await.unwrap().outcome,
        Begin::Allowed { .. }
    ));
    store
        .settle_attempt(&key, "a", &p, Settle::Failure)
        .await
        .unwrap();
    let ttl = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "PTTL",
            &census_login::store::layout::person_key(&key, "lock"),
        ])
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    let ttl: i64 = String::from_utf8_lossy(&ttl.stdout).trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= p.forget_after + 1_000, "{ttl}");
}

/// A session's facts expire with the session (30 minutes idle), not with the
/// survey window (14 days): a login must not leave them behind for two weeks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_facts_expire_with_their_session_on_redis() {
    let redis = RedisServer::start();
    let store = RedisStore::new(&redis.url(), Duration::from_secs(2)).unwrap();
    let key = PeselKey::from_hex("0123456789abcdef0123456789abcd0f").unwrap();
    let (p, idle) = (policy(), 60_000);
    let token = [5; 32];
    store.begin_attempt(&key, "a", &p).await.unwrap();
    let settled = store
        .settle_attempt(
            &key,
            "a",
            &p,
            Settle::Success {
                generation: 0,
                password: PasswordWrite::Keep,
                session: Some(SessionSpec {
                    token_hash: token,
                    idle,
                    window: 14 * 86_400_000,
                    closes_at: None,
                    facts: "sealed".into(),
                }),
            },
        )
        .await
        .unwrap();
    assert!(settled.session.is_some());
    let facts_key =
        census_login::store::layout::person_key(&key, &format!("sf:{}", hex::encode(token)));
    let pttl = || {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "PTTL", &facts_key])
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let first = pttl();
    assert!(first > idle - 5_000 && first <= idle, "{first}");
    // Past one step of the sliding expiry, a session check moves both.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let touched = store
        .touch_session_with_facts(&key, &token, idle)
        .await
        .unwrap();
    assert_eq!(touched.and_then(|(_, f)| f).as_deref(), Some("sealed"));
    let slid = pttl();
    assert!(
        slid > first - 1_000,
        "{first} -> {slid}: the facts did not slide"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_empties_every_master_of_a_cluster() {
    let cluster = RedisCluster::start();
    let store = RedisStore::new(&cluster.url(), Duration::from_secs(2)).unwrap();
    let k = keys();
    let rows: Vec<_> = demo_people()
        .iter()
        .map(|p| census_login::store::RegistryRecord {
            key: k.pesel_key(
                &census_login::domain::Pesel::parse(&p.pesel, SystemClock.poland_today()).unwrap(),
            ),
            maiden_tag: [1; 8],
            reserved: false,
        })
        .collect();
    store.upsert_registry(&rows).await.unwrap();
    let count = |port: u16| {
        let out = std::process::Command::new("redis-cli")
            .env("REDISCLI_AUTH", CLUSTER_PASSWORD)
            .args(["-p", &port.to_string(), "dbsize"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let per_node: Vec<u64> = cluster.nodes.iter().map(|n| count(n.port)).collect();
    assert!(
        per_node.iter().all(|n| *n > 0),
        "keys on every master: {per_node:?}"
    );
    let before: u64 = per_node.iter().sum();
    let told = std::sync::Mutex::new(0);
    let purged = store
        .purge(&|done, _| *told.lock().unwrap() = done)
        .await
        .unwrap();
    assert_eq!(purged, before);
    assert_eq!(*told.lock().unwrap(), before, "progress reached the end");
    assert!(cluster.nodes.iter().all(|n| count(n.port) == 0));
}

/// Redis keeps every registry bucket in the listpack encoding, however
/// crowded a tag gets: 2,000 people in one tag (38 M people put ~580 in each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crowded_buckets_stay_listpacks() {
    let redis = RedisServer::start();
    let store = RedisStore::new(&redis.url(), Duration::from_secs(2)).unwrap();
    let rows: Vec<_> = keys_of_one_tag(2000, 7)
        .into_iter()
        .map(|k| record(k, 1, false))
        .collect();
    store.upsert_registry(&rows).await.unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let buckets: u32 = cli(&["HGET", "census:{beef}:r:0", "#"]).parse().unwrap();
    assert!((16..=64).contains(&buckets), "{buckets} buckets");
    let mut entries = 0;
    for i in 0..buckets {
        let key = format!("census:{{beef}}:r:{i}");
        assert_eq!(cli(&["OBJECT", "ENCODING", &key]), "listpack", "{key}");
        let len: usize = cli(&["HLEN", &key]).parse().unwrap();
        assert!(len <= 121, "{key}: {len}");
        entries += len;
    }
    assert_eq!(entries, 2000 + 1, "everyone once, and the count");
}

/// The layout before registry buckets moves on a Cluster too: old keys are on
/// every master, SCAN walks each, and each key lands in its new slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_layout_migrates_on_a_cluster() {
    let cluster = RedisCluster::start();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .env("REDISCLI_AUTH", CLUSTER_PASSWORD)
            .args(["-c", "-p", &cluster.nodes[0].port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    let people: Vec<PeselKey> = (0..40)
        .map(|_| PeselKey::from_bytes(rng.random()))
        .collect();
    for (i, k) in people.iter().enumerate() {
        let acct = format!("census:{{{}}}:acct", k.to_hex());
        let mn = hex::encode([i as u8; 32]);
        cli(&[
            "HSET",
            &acct,
            "mn",
            &mn,
            "rsv",
            "1",
            "pw",
            "$argon2id$x",
            "gen",
            "2",
        ]);
        let lock = format!("census:{{{}}}:lock", k.to_hex());
        cli(&["HSET", &lock, "f", "1", "l", "0", "u", "0", "lf", "1"]);
        cli(&["PEXPIRE", &lock, "600000"]);
    }
    let store = RedisStore::new(&cluster.url(), Duration::from_secs(2)).unwrap();
    assert_eq!(store.migrate().await.unwrap(), 80);
    for (i, k) in people.iter().enumerate() {
        let status = store.account_status(k).await.unwrap();
        assert_eq!(status.account.maiden_tag, Some([i as u8; 8]), "person {i}");
        assert!(status.account.reserved);
        assert_eq!(status.account.password_phc.as_deref(), Some("$argon2id$x"));
        assert_eq!(status.account.generation, 2);
        assert_eq!(status.lock.failures, 1);
    }
    for node in &cluster.nodes {
        let out = std::process::Command::new("redis-cli")
            .env("REDISCLI_AUTH", CLUSTER_PASSWORD)
            .args(["-p", &node.port.to_string(), "--scan", "--pattern"])
            .arg(census_login::store::layout::LEGACY_PERSON_PATTERN)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "",
            "old keys left"
        );
    }
    assert_eq!(store.migrate().await.unwrap(), 0);
}
