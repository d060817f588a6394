//! The store contract, below HTTP: the memory store and the Redis scripts make
//! the same lockout decisions as the pure model in `domain::lockout`, for the
//! same random sequences of attempts and times.

use crate::helpers::*;
use census_login::domain::lockout::{LockState, LockoutPolicy, Outcome, Reservation};
use census_login::keys::PeselKey;
use census_login::store::memory::MemoryStore;
use census_login::store::redis::RedisStore;
use census_login::store::{Begin, PasswordWrite, Settle, Store};
use rand::{RngExt, SeedableRng};
use std::sync::Arc;
use std::time::Duration;

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

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Begin(String),
    Settle(Option<(u32, i64)>),
}

/// Runs one random script of attempts against the model and a store.
async fn replay(store: &dyn Store, seed: u64) -> (Vec<Seen>, Vec<Seen>) {
    let p = policy();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let key = PeselKey::from_hex(&format!("{seed:032x}")).unwrap();
    let mut model = LockState::default();
    let (mut from_model, mut from_store) = (Vec::new(), Vec::new());
    // Real time as the start: Redis expires keys by its own clock.
    let mut now: i64 = census_login::auth::now_millis();
    let mut open: Vec<String> = Vec::new();
    for step in 0..120 {
        now += rng.random_range(0..600);
        if open.is_empty() || rng.random_range(0..3) == 0 {
            let ticket = format!("t{step}");
            let m = match model.reserve(&p, now, &ticket) {
                Reservation::Allowed => "allowed".to_owned(),
                Reservation::Locked { until } => format!("locked {until}"),
                Reservation::Contended { retry_at } => format!("contended {retry_at}"),
            };
            let s = match store.begin_attempt(&key, &ticket, now, &p).await.unwrap() {
                Begin::Allowed { .. } => "allowed".to_owned(),
                Begin::Locked { until } => format!("locked {until}"),
                Begin::Contended { retry_at } => format!("contended {retry_at}"),
            };
            if m == "allowed" {
                open.push(ticket);
            }
            from_model.push(Seen::Begin(m));
            from_store.push(Seen::Begin(s));
        } else {
            let ticket = open.swap_remove(rng.random_range(0..open.len()));
            let outcome = match rng.random_range(0..10) {
                0 => Outcome::Success,
                1 => Outcome::Neutral,
                _ => Outcome::Failure,
            };
            let m = model
                .settle(&p, now, &ticket, outcome)
                .map(|l| (l.level, l.until));
            let settle = match outcome {
                Outcome::Success => Settle::Success {
                    password: PasswordWrite::Keep,
                    session: None,
                },
                Outcome::Failure => Settle::Failure,
                Outcome::Neutral => Settle::Neutral,
            };
            let s = store
                .settle_attempt(&key, &ticket, now, &p, settle)
                .await
                .unwrap();
            from_model.push(Seen::Settle(m));
            from_store.push(Seen::Settle(s.lock_started.map(|l| (l.level, l.until))));
        }
    }
    let mut stored = store.account_status(&key).await.unwrap().lock;
    stored.advance(&p, now);
    model.advance(&p, now);
    assert_eq!(
        (stored.failures, stored.level, stored.locked_until),
        (model.failures, model.level, model.locked_until)
    );
    (from_model, from_store)
}

#[tokio::test]
async fn the_memory_store_follows_the_model() {
    let store = MemoryStore::new();
    for seed in 0..40 {
        let (model, store) = replay(&store, seed).await;
        assert_eq!(model, store, "seed {seed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_scripts_follow_the_model() {
    let redis = RedisServer::start();
    let store: Arc<RedisStore> = RedisStore::new(&redis.url(), Duration::from_secs(2)).unwrap();
    for seed in 0..40 {
        let (model, seen) = replay(store.as_ref(), seed).await;
        assert_eq!(model, seen, "seed {seed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_expire_once_nothing_is_remembered() {
    let redis = RedisServer::start();
    let store = RedisStore::new(&redis.url(), Duration::from_secs(2)).unwrap();
    let key = PeselKey::from_hex("0123456789abcdef0123456789abcdef").unwrap();
    let p = policy();
    let now = census_login::auth::now_millis();
    assert!(matches!(
        store.begin_attempt(&key, "a", now, &p).await.unwrap(),
        Begin::Allowed { .. }
    ));
    store
        .settle_attempt(&key, "a", now, &p, Settle::Failure)
        .await
        .unwrap();
    let ttl = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "PTTL",
            &format!("census:{{{}}}:lock", key.to_hex()),
        ])
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    let ttl: i64 = String::from_utf8_lossy(&ttl.stdout).trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= p.forget_after + 1_000, "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripts_follow_the_model_on_redis_cluster() {
    let cluster = RedisCluster::start();
    let store = RedisStore::new(&cluster.url(), Duration::from_secs(2)).unwrap();
    // Seeds spread the keys over all three masters' slots.
    for seed in 100..130 {
        let (model, seen) = replay(store.as_ref(), seed).await;
        assert_eq!(model, seen, "seed {seed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_empties_every_master_of_a_cluster() {
    let cluster = RedisCluster::start();
    let store = RedisStore::new(&cluster.url(), Duration::from_secs(2)).unwrap();
    let k = keys();
    let rows: Vec<_> = demo_people()
        .iter()
        .map(|p| census_login::store::RegistryRecord {
            key: k.pesel_key(&census_login::auth::parse_pesel(&p.pesel).unwrap()),
            maiden_hash: [1; 32],
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
    assert_eq!(per_node.iter().sum::<u64>(), rows.len() as u64);
    assert_eq!(store.purge().await.unwrap(), rows.len() as u64);
    assert!(cluster.nodes.iter().all(|n| count(n.port) == 0));
}

/// `locked_until` reads the lock the scripts wrote, and reserves nothing.
async fn locked_until_reads_without_reserving(store: &dyn Store) {
    let p = policy();
    let key = PeselKey::from_hex(&format!("{:032x}", 0xabcdef_u64)).unwrap();
    let now = census_login::auth::now_millis();
    assert_eq!(store.locked_until(&key, now).await.unwrap(), None);
    let mut until = None;
    for i in 0..p.max_failures {
        let ticket = format!("lu{i}");
        assert!(matches!(
            store.begin_attempt(&key, &ticket, now, &p).await.unwrap(),
            Begin::Allowed { .. }
        ));
        let settled = store
            .settle_attempt(&key, &ticket, now, &p, Settle::Failure)
            .await
            .unwrap();
        until = settled.lock_started.map(|l| l.until);
    }
    let until = until.expect("the last failure starts a lock");
    for _ in 0..3 {
        assert_eq!(
            store.locked_until(&key, now + 1).await.unwrap(),
            Some(until)
        );
    }
    assert_eq!(store.locked_until(&key, until).await.unwrap(), None);
    let status = store.account_status(&key).await.unwrap().lock;
    assert!(status.pending.is_empty(), "a read must not reserve");
    assert_eq!(status.failures, p.max_failures);
}

#[tokio::test]
async fn locked_until_on_the_memory_store() {
    locked_until_reads_without_reserving(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_until_on_redis() {
    let redis = RedisServer::start();
    let store: Arc<RedisStore> = RedisStore::new(&redis.url(), Duration::from_secs(2)).unwrap();
    locked_until_reads_without_reserving(store.as_ref()).await;
}
