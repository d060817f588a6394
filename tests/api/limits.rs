//! Protection against floods: the per-IP rate limit and the bounded hashing pool.

use crate::both_stores;
use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};

both_stores!(
    the_rate_limit_is_per_client_ip,
    forwarded_for_is_believed_only_from_trusted_proxies,
    a_full_hashing_pool_sheds_load_at_once,
    a_locked_account_is_told_so_while_the_pool_is_full,
);

async fn the_rate_limit_is_per_client_ip(b: Backend) {
    let app = spawn_app(
        b,
        &[
            ("rate_limit.per_ip_per_minute", json!(2)),
            ("rate_limit.burst", json!(2)),
        ],
    )
    .await;
    for _ in 0..2 {
        assert_eq!(app.login(UNKNOWN_PESEL, "Wrong2021x").await.status(), 401);
    }
    let r = app.login(UNKNOWN_PESEL, "Wrong2021x").await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let body = problem(r, 429, "rate_limited").await;
    assert_eq!(body["retryAfterSeconds"], retry);
    // The refused attempt was not counted against the PESEL.
    assert_eq!(app.account(UNKNOWN_PESEL).await["lockout"]["failures"], 2);
    // Other endpoints are not limited.
    assert_eq!(app.session().await.status(), 401);
    let m = app.metrics().await;
    assert!(
        m.contains("census_rate_limited_total{route=\"/api/v1/login\"} 1"),
        "{m}"
    );
}

async fn forwarded_for_is_believed_only_from_trusted_proxies(b: Backend) {
    let limits = [
        ("rate_limit.per_ip_per_minute", json!(1)),
        ("rate_limit.burst", json!(1)),
    ];
    let untrusted = spawn_app(b, &limits).await;
    let send = |app: &TestApp, ip: &str| {
        app.client
            .post(format!("{}/api/v1/login", app.address))
            .header("x-forwarded-for", ip)
            .json(&json!({"pesel": UNKNOWN_PESEL, "password": "Wrong2021x"}))
            .send()
    };
    assert_eq!(send(&untrusted, "10.0.0.1").await.unwrap().status(), 401);
    // A spoofed header from an untrusted peer changes nothing.
    assert_eq!(send(&untrusted, "10.0.0.2").await.unwrap().status(), 429);
    let mut with_proxy = limits.to_vec();
    with_proxy.push(("server.trusted_proxies", json!(["127.0.0.1/32"])));
    let proxied = spawn_app(b, &with_proxy).await;
    assert_eq!(send(&proxied, "10.0.0.1").await.unwrap().status(), 401);
    assert_eq!(send(&proxied, "10.0.0.2").await.unwrap().status(), 401);
    assert_eq!(send(&proxied, "10.0.0.1").await.unwrap().status(), 429);
}

async fn a_full_hashing_pool_sheds_load_at_once(b: Backend) {
    // One slot, no queue, and a deliberately slow hash.
    let app = spawn_app(
        b,
        &[
            ("password.max_concurrent_hashes", json!(1)),
            ("password.max_queued_hashes", json!(0)),
            ("password.argon2_memory_kib", json!(32768)),
            ("password.argon2_iterations", json!(3)),
        ],
    )
    .await;
    let people: Vec<Person> = (30..42).map(person).collect();
    let started = Instant::now();
    let responses = futures::future::join_all(people.iter().map(|p| {
        let client = new_client();
        let url = format!("{}/api/v1/login", app.address);
        let body = json!({"pesel": p.pesel, "password": "Wrong2021x"});
        async move {
            let t = Instant::now();
            let r = client.post(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.headers().get("retry-after").is_some(),
                t.elapsed(),
                r.text().await.unwrap(),
            )
        }
    }))
    .await;
    let shed: Vec<_> = responses.iter().filter(|r| r.0 == 503).collect();
    assert!(
        !shed.is_empty(),
        "some requests must be shed: {:?}",
        responses.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(responses.iter().any(|r| r.0 == 401), "some must be checked");
    for (_, has_retry, took, body) in &shed {
        assert!(*has_retry);
        assert!(body.contains("\"code\":\"overloaded\""), "{body}");
        assert!(
            *took < Duration::from_millis(500),
            "shedding must not wait: {took:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    // Shed attempts were released, not counted as failures.
    for p in &people {
        let failures = app.account(&p.pesel).await["lockout"]["failures"]
            .as_u64()
            .unwrap();
        assert!(failures <= 1);
    }
    let m = app.metrics().await;
    let rejected = app.metric_sum("census_hash_rejected_total").await;
    assert_eq!(rejected as usize, shed.len(), "{m}");
}

async fn a_locked_account_is_told_so_while_the_pool_is_full(b: Backend) {
    // One slot, no queue, a slow hash: one login in flight fills the pool.
    let app = spawn_app(
        b,
        &[
            ("password.max_concurrent_hashes", json!(1)),
            ("password.max_queued_hashes", json!(0)),
            ("password.argon2_memory_kib", json!(65536)),
            ("password.argon2_iterations", json!(6)),
        ],
    )
    .await;
    let (locked, free, busy) = (person(50), person(51), person(52));
    for _ in 0..5 {
        let r = app.login(&locked.pesel, "Wrong2021x").await;
        assert!([401, 423].contains(&r.status().as_u16()));
    }
    let hashes_before = app.hash_count().await;

    let slow = {
        let client = new_client();
        let url = format!("{}/api/v1/login", app.address);
        let body = json!({"pesel": busy.pesel, "password": "Wrong2021x"});
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.metric_sum("census_hash_slots_in_use").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the slow login never started hashing"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // The pool is full: the locked person learns about the lock, anyone else is shed.
    let r = app.login(&locked.pesel, "Wrong2021x").await;
    assert!(r.headers().get("retry-after").is_some());
    let body = problem(r, 423, "account_locked").await;
    assert!(body["retryAfterSeconds"].as_u64().unwrap() > 60, "{body}");
    problem(
        app.login(&free.pesel, "Wrong2021x").await,
        503,
        "overloaded",
    )
    .await;

    assert_eq!(slow.await.unwrap().as_u16(), 401);
    // Neither was hashed nor counted.
    assert_eq!(app.hash_count().await, hashes_before + 1.0);
    assert_eq!(app.account(&free.pesel).await["lockout"]["failures"], 0);
    assert_eq!(app.account(&locked.pesel).await["lockout"]["failures"], 5);
}
