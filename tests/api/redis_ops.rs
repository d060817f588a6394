//! What only the shared Redis store can show: many replicas at once, restarts
//! of the app and of Redis, an outage, and re-hashing across a config change.

use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn redis_settings(
    redis: &RedisServer,
    overrides: &[(&str, serde_json::Value)],
) -> census_login::config::Settings {
    settings(Backend::Redis, Some(&redis.url()), overrides)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_wrong_logins_on_two_replicas_check_at_most_five() {
    let redis = RedisServer::start();
    fifty_concurrent_wrong_logins(Backend::Redis, &redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_wrong_logins_on_a_cluster_check_at_most_five() {
    let cluster = RedisCluster::start();
    fifty_concurrent_wrong_logins(Backend::Cluster, &cluster.url()).await;
}

async fn fifty_concurrent_wrong_logins(backend: Backend, url: &str) {
    // One client sends all fifty: the shared rate limit must not be what stops it.
    let generous = [("rate_limit.burst", json!(1000))];
    let a = spawn_with(settings(backend, Some(url), &generous)).await;
    let b = spawn_with(settings(backend, Some(url), &generous)).await;
    let p = person(40);
    let before = a.hash_count().await + b.hash_count().await;
    let responses = futures::future::join_all((0..50).map(|i| {
        let base = if i % 2 == 0 {
            a.address.clone()
        } else {
            b.address.clone()
        };
        let pesel = p.pesel.clone();
        async move {
            new_client()
                .post(format!("{base}/api/v1/login"))
                .json(&json!({"pesel": pesel, "password": "Wrong2021x"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    }))
    .await;
    let checked = a.hash_count().await + b.hash_count().await - before;
    assert!(
        (1.0..=5.0).contains(&checked),
        "{checked} credential checks"
    );
    assert!(
        responses.iter().all(|s| *s == 401 || *s == 423),
        "{responses:?}"
    );
    assert!(responses.iter().filter(|s| **s == 401).count() <= 4);
    let account = a.account(&p.pesel).await;
    assert_eq!(account["lockout"]["level"], 1, "{account}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_survive_an_app_restart() {
    let redis = RedisServer::start();
    let p = person(41);
    let first = spawn_with(redis_settings(&redis, &[])).await;
    assert_eq!(first.define(&p, GOOD_PASSWORD).await.status(), 201);
    first.login(&p.pesel, "Wrong2021x").await;
    first.shutdown.shutdown().await;
    let second = spawn_with(redis_settings(&redis, &[])).await;
    assert_eq!(second.account(&p.pesel).await["lockout"]["failures"], 1);
    assert_eq!(second.login(&p.pesel, GOOD_PASSWORD).await.status(), 200);
    // A different pepper cannot read the data: PESEL keys are keyed hashes.
    let mut other = redis_settings(&redis, &[]);
    other.secrets.pepper = Some(secrecy::SecretString::from("another-pepper".to_owned()));
    let third = spawn_with(other).await;
    assert_eq!(third.account(&p.pesel).await["passwordDefined"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_redis_is_used_only_with_its_password() {
    let redis = RedisServer::start_with_password("redis-test-password");
    let ready = |app: &TestApp| {
        let (client, url) = (app.client.clone(), format!("{}/readyz", app.admin));
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    // Without the password, or with a wrong one: never ready, and fails closed.
    for password in [None, Some("wrong-password")] {
        let mut overrides = vec![];
        if let Some(pw) = password {
            overrides.push(("secrets.redis_password", json!(pw)));
        }
        let app = spawn_unready(redis_settings(&redis, &overrides)).await;
        // Long enough for the seed to load, were the store usable.
        for _ in 0..10 {
            assert_eq!(ready(&app).await, 503, "ready with password {password:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let p = person(43);
        problem(
            app.define(&p, GOOD_PASSWORD).await,
            503,
            "store_unavailable",
        )
        .await;
    }
    // With it (from the secrets, not the URL): the flows work.
    let app = spawn_with(redis_settings(
        &redis,
        &[("secrets.redis_password", json!("redis-test-password"))],
    ))
    .await;
    let p = person(43);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    assert_eq!(app.login(&p.pesel, GOOD_PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_closed_and_heals_by_itself() {
    let mut redis = RedisServer::start();
    let app = spawn_with(redis_settings(&redis, &[])).await;
    let p = person(42);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    redis.stop();
    let t = Instant::now();
    let r = app.login(&p.pesel, GOOD_PASSWORD).await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "fails within 2 s, took {:?}",
        t.elapsed()
    );
    let body = problem(r, 503, "store_unavailable").await;
    assert!(body["retryAfterSeconds"].is_number());
    problem(app.session().await, 503, "store_unavailable").await;
    let ready = app
        .client
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(app.metrics().await.contains("census_store_up 0"));
    // Redis comes back with its data (AOF); the app reconnects without a restart.
    redis.restart();
    app.wait_ready().await;
    let start = Instant::now();
    loop {
        let r = app.login(&p.pesel, GOOD_PASSWORD).await;
        if r.status() == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no recovery: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.session().await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_starts_unready_while_redis_is_down() {
    let mut redis = RedisServer::start();
    redis.stop();
    let app = census_login::startup::Application::build(redis_settings(&redis, &[]))
        .await
        .expect("builds without Redis");
    let admin = format!("http://127.0.0.1:{}", app.admin_port());
    tokio::spawn(app.run_until_stopped());
    let r = new_client()
        .get(format!("{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    redis.restart();
    wait_for_status(&format!("{admin}/readyz"), 200).await;
}

async fn wait_for_status(url: &str, status: u16) {
    let start = Instant::now();
    loop {
        if let Ok(r) = new_client().get(url).send().await
            && r.status().as_u16() == status
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{url} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_rehashes_a_password_made_with_older_parameters() {
    let redis = RedisServer::start();
    let p = person(43);
    let old = spawn_with(redis_settings(&redis, &[])).await;
    assert_eq!(old.define(&p, GOOD_PASSWORD).await.status(), 201);
    let stored = |redis: &RedisServer| {
        let key = keys().pesel_key(
            &census_login::domain::Pesel::parse(
                &p.pesel,
                census_login::clock::Clock::poland_today(&census_login::clock::SystemClock),
            )
            .unwrap(),
        );
        let out = std::process::Command::new("redis-cli")
            .args([
                "-p",
                &redis.port.to_string(),
                "HGET",
                &census_login::store::layout::person_key(&key, "acct"),
                "pw",
            ])
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let before = stored(&redis);
    assert!(before.contains("m=256,t=1,p=1"), "{before}");
    let new = spawn_with(redis_settings(
        &redis,
        &[("password.argon2_iterations", json!(2))],
    ))
    .await;
    assert_eq!(new.login(&p.pesel, GOOD_PASSWORD).await.status(), 200);
    let after = stored(&redis);
    assert!(after.contains("m=256,t=2,p=1"), "{after}");
    assert_eq!(new.login(&p.pesel, GOOD_PASSWORD).await.status(), 200);
    // Nothing in Redis names the person: keys are keyed hashes, the name a keyed hash.
    let dump = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "--scan"])
        .output()
        .unwrap();
    let keys_listed = String::from_utf8_lossy(&dump.stdout);
    assert!(keys_listed.contains("census:{"));
    assert!(!keys_listed.contains(&p.pesel));
    let aof = std::fs::read_dir(redis.dir())
        .unwrap()
        .flatten()
        .flat_map(|e| walk(&e.path()))
        .collect::<Vec<u8>>();
    let aof = String::from_utf8_lossy(&aof);
    assert!(
        !aof.contains(&p.pesel) && !aof.contains(&p.maiden_name) && !aof.contains(GOOD_PASSWORD)
    );
}

fn walk(path: &std::path::Path) -> Vec<u8> {
    if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .flatten()
            .flat_map(|e| walk(&e.path()))
            .collect()
    } else {
        std::fs::read(path).unwrap_or_default()
    }
}

/// The layout before registry buckets, written by hand, is moved at start-up:
/// a person with a password logs in with it, their lock state and its expiry
/// come along, a registry-only person can define a password, and no key of the
/// old layout is left. Migrating again moves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layout_before_buckets_is_migrated_at_start_up() {
    let redis = RedisServer::start();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let (p, q) = (person(45), person(46));
    let key_of = |pesel: &str| {
        keys().pesel_key(
            &census_login::domain::Pesel::parse(pesel, time::OffsetDateTime::now_utc().date())
                .unwrap(),
        )
    };
    let maiden_hex = |name: &str| {
        hex::encode(keys().maiden_hash(&census_login::domain::MaidenName::parse(name).unwrap()))
    };
    // A real password hash of this configuration, made by the current code.
    let phc = {
        let a = spawn_with(redis_settings(&redis, &[])).await;
        assert_eq!(a.define(&p, GOOD_PASSWORD).await.status(), 201);
        cli(&[
            "HGET",
            &census_login::store::layout::person_key(&key_of(&p.pesel), "acct"),
            "pw",
        ])
    };
    assert!(phc.starts_with("$argon2"), "{phc}");
    cli(&["FLUSHALL"]);
    let first_login = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let old = |pesel: &str, suffix: &str| format!("census:{{{}}}:{suffix}", key_of(pesel).to_hex());
    cli(&[
        "HSET",
        &old(&p.pesel, "acct"),
        "mn",
        &maiden_hex(&p.maiden_name),
        "rsv",
        "0",
        "pw",
        &phc,
        "fl",
        &first_login,
        "gen",
        "0",
    ]);
    cli(&[
        "HSET",
        &old(&p.pesel, "lock"),
        "f",
        "2",
        "l",
        "0",
        "u",
        "0",
        "lf",
        "1",
    ]);
    cli(&["PEXPIRE", &old(&p.pesel, "lock"), "600000"]);
    cli(&[
        "HSET",
        &old(&q.pesel, "acct"),
        "mn",
        &maiden_hex(&q.maiden_name),
        "rsv",
        "0",
    ]);

    // No seed: what the registry knows afterwards came from the migration.
    let app = spawn_with(redis_settings(&redis, &[("registry.seed_file", json!(""))])).await;
    assert_eq!(
        cli(&[
            "--scan",
            "--pattern",
            census_login::store::layout::LEGACY_PERSON_PATTERN
        ]),
        "",
        "old keys left"
    );
    let new_acct = census_login::store::layout::person_key(&key_of(&p.pesel), "acct");
    assert_eq!(cli(&["HEXISTS", &new_acct, "mn"]), "0");
    assert_eq!(cli(&["HGET", &new_acct, "fl"]), first_login);
    let ttl: i64 = cli(&[
        "PTTL",
        &census_login::store::layout::person_key(&key_of(&p.pesel), "lock"),
    ])
    .parse()
    .unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
    assert_eq!(app.login(&p.pesel, "Wrong2021x").await.status(), 401);
    assert_eq!(app.login(&p.pesel, GOOD_PASSWORD).await.status(), 200);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 409);
    assert_eq!(app.define(&q, GOOD_PASSWORD).await.status(), 201);
    assert_eq!(app.define(&person(47), GOOD_PASSWORD).await.status(), 401);

    let store =
        census_login::store::redis::RedisStore::new(&redis.url(), Duration::from_secs(2)).unwrap();
    use census_login::store::Store;
    assert_eq!(store.migrate().await.unwrap(), 0);
}
