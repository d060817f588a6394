//! The findings of the outside security review (issue #10), one test each,
//! through the HTTP API of the spawned service: bounded metric labels, a
//! reset that wins every race, contract headers on every refusal, a rate limit
//! shared by replicas, paged no-PESEL requests, the store's clock, and an
//! abandoned attempt that counts after its replica was killed.

use crate::helpers::*;
use crate::support::BIN;
use census_login::clock::{Clock, ManualClock};
use census_login::startup::Clocks;
use reqwest::Method;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

crate::both_stores!(
    made_up_methods_do_not_create_series,
    a_reset_wins_over_a_login_in_flight,
    every_refusal_carries_the_contract_headers,
    no_pesel_requests_are_paged_and_handled,
);

/// Finding 1: every label value comes from a fixed set.
async fn made_up_methods_do_not_create_series(b: Backend) {
    let app = spawn_app(b, &[]).await;
    for i in 0..60 {
        let method = Method::from_bytes(format!("X{i}CUSTOM").as_bytes()).unwrap();
        let path = format!("/api/v1/made-up-{i}");
        app.client
            .request(method, format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
    }
    let metrics = app.metrics().await;
    assert!(!metrics.contains("CUSTOM"), "a method became a label value");
    assert!(!metrics.contains("made-up"), "a path became a label value");
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("census_http_requests_total{"))
        .collect::<Vec<_>>();
    assert!(
        series
            .iter()
            .any(|l| l.contains(r#"method="OTHER""#) && l.contains(r#"route="unmatched""#)),
        "{series:?}"
    );
    assert!(series.len() < 10, "{series:?}");
}

/// Finding 2: a login whose attempt began before a helpline reset and settles
/// after it creates no session and writes nothing. The hash is made slow (a
/// second or so) so that the reset certainly lands while the login hashes.
async fn a_reset_wins_over_a_login_in_flight(b: Backend) {
    let slow = [
        ("password.argon2_memory_kib", json!(8192)),
        ("password.argon2_iterations", json!(60)),
    ];
    let app = spawn_app(b, &slow).await;
    let p = person(60);
    assert_eq!(app.define(&p, GOOD_PASSWORD).await.status(), 201);
    let impostor = new_client();
    let login = tokio::spawn({
        let url = format!("{}/api/v1/login", app.address);
        let body = json!({"pesel": p.pesel, "password": GOOD_PASSWORD});
        async move { impostor.post(url).json(&body).send().await.unwrap() }
    });
    // The attempt is reserved and its password is being verified.
    let start = Instant::now();
    while app.metric_sum("census_hash_slots_in_use").await < 1.0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "login never hashed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reset = app
        .admin_post(&format!("/admin/v1/accounts/{}/reset", p.pesel))
        .await;
    assert_eq!(reset.status(), 204);
    let answer = login.await.unwrap();
    assert!(
        app.hash_count().await >= 2.0,
        "the login was still hashing at the reset"
    );
    problem(answer, 401, "invalid_credentials").await;
    let account = app.account(&p.pesel).await;
    assert_eq!(account["passwordDefined"], false, "{account}");
    assert_eq!(account["lockout"]["failures"], 0, "{account}");
    // The rightful person defines a new password: the old one is gone.
    assert_eq!(app.define(&p, "Nowe2021Haslo").await.status(), 201);
    problem(
        app.login(&p.pesel, GOOD_PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Finding 3: refusals made in middleware carry the same headers as any
/// answer, and are metered under their route.
async fn every_refusal_carries_the_contract_headers(b: Backend) {
    let app = spawn_app(b, &[("rate_limit.burst", json!(1))]).await;
    // An admin listener without a token answers 503.
    let mut no_token = settings(Backend::Memory, None, &[]);
    no_token.secrets.admin_token = None;
    let off = spawn_with(no_token).await;
    let c = &app.client;
    let login = format!("{}/api/v1/login", app.address);
    let body = json!({"pesel": UNKNOWN_PESEL, "password": "Wrong2021x"});
    let refusals: Vec<(u16, &str, reqwest::Response)> = vec![
        // The burst is one request: a wrong method takes it, the next is limited.
        (
            405,
            "method_not_allowed",
            c.get(&login).send().await.unwrap(),
        ),
        (
            429,
            "rate_limited",
            c.post(&login).json(&body).send().await.unwrap(),
        ),
        (
            403,
            "origin_not_allowed",
            c.post(format!("{}/api/v1/pesel/check", app.address))
                .header("origin", "https://evil.example")
                .json(&json!({"pesel": UNKNOWN_PESEL}))
                .send()
                .await
                .unwrap(),
        ),
        (
            401,
            "not_authenticated",
            c.get(format!("{}/admin/v1/no-pesel-requests", app.admin))
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap(),
        ),
        (
            503,
            "admin_disabled",
            c.get(format!("{}/admin/v1/no-pesel-requests", off.admin))
                .send()
                .await
                .unwrap(),
        ),
        (
            404,
            "not_found",
            c.get(format!("{}/nowhere", app.address))
                .send()
                .await
                .unwrap(),
        ),
        (
            415,
            "unsupported_media_type",
            c.post(format!("{}/api/v1/pesel/check", app.address))
                .body("pesel=1")
                .send()
                .await
                .unwrap(),
        ),
        (
            413,
            "payload_too_large",
            c.post(format!("{}/api/v1/pesel/check", app.address))
                .header("content-type", "application/json")
                .body(format!("{{\"pesel\":\"{}\"}}", "1".repeat(20_000)))
                .send()
                .await
                .unwrap(),
        ),
        (
            400,
            "malformed_request",
            c.get(format!(
                "{}/admin/v1/no-pesel-requests?limit=many",
                app.admin
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
        ),
    ];
    for (status, code, r) in refusals {
        for name in [
            "x-content-type-options",
            "content-security-policy",
            "referrer-policy",
            "strict-transport-security",
            "x-request-id",
        ] {
            assert!(header(&r, name).is_some(), "{status} {code}: no {name}");
        }
        assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        assert!(
            header(&r, "content-security-policy")
                .is_some_and(|v| v.contains("frame-ancestors 'none'")),
            "{code}"
        );
        problem(r, status, code).await;
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"census_http_requests_total{method="POST",route="/api/v1/login",status="429"} 1"#
        ),
        "the 429 is metered under its route"
    );
}

/// Finding 5: newest first, paged by cursor; handled requests leave the
/// default listing; a limit above 1000 is taken as 1000.
async fn no_pesel_requests_are_paged_and_handled(b: Backend) {
    let app = spawn_app(b, &[]).await;
    let mut references = Vec::new();
    for i in 0..5 {
        let r = app
            .post_json(
                "/api/v1/no-pesel-requests",
                &json!({"fullName": format!("Jan Kowalski {}", "a".repeat(i + 1)), "email": "jan@example.pl"}),
            )
            .await;
        assert_eq!(r.status(), 202);
        let body: Value = r.json().await.unwrap();
        references.push(body["reference"].as_str().unwrap().to_owned());
    }
    let list = |query: String| {
        let app = &app;
        async move {
            let r = app
                .admin_get(&format!("/admin/v1/no-pesel-requests{query}"))
                .await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let refs = |v: &Value| -> Vec<String> {
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reference"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = list("?limit=2".into()).await;
    assert_eq!(refs(&first), [references[4].clone(), references[3].clone()]);
    assert!(first["requests"][0]["receivedAt"].is_string());
    let cursor = first["next"].as_str().expect("a next cursor").to_owned();
    let second = list(format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(
        refs(&second),
        [references[2].clone(), references[1].clone()]
    );
    let handled = app
        .admin_post(&format!(
            "/admin/v1/no-pesel-requests/{}/handled",
            references[4]
        ))
        .await;
    assert_eq!(handled.status(), 204);
    let unknown = app
        .admin_post("/admin/v1/no-pesel-requests/NSP-NOPE/handled")
        .await;
    problem(unknown, 404, "not_found").await;
    let open = list("?limit=5000".into()).await;
    assert_eq!(refs(&open).len(), 4);
    assert!(!refs(&open).contains(&references[4]));
    assert_eq!(open["next"], Value::Null);
    let all = list("?state=all".into()).await;
    assert_eq!(refs(&all)[0], references[4]);
    assert_eq!(all["requests"][0]["handled"], true);
    let bad = app
        .admin_get("/admin/v1/no-pesel-requests?cursor=abc")
        .await;
    problem(bad, 422, "validation_failed").await;
}

/// Finding 4: one client reaching two replicas gets the limit once, not
/// twice; IPv6 clients are counted by their /64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_shared_by_replicas_on_one_redis() {
    let redis = RedisServer::start();
    let limits = [
        ("rate_limit.per_ip_per_minute", json!(60)),
        ("rate_limit.burst", json!(10)),
        ("server.trusted_proxies", json!(["127.0.0.1/32"])),
    ];
    let a = spawn_with(settings(Backend::Redis, Some(&redis.url()), &limits)).await;
    let b = spawn_with(settings(Backend::Redis, Some(&redis.url()), &limits)).await;
    // Every address of one /64, a new one for each request.
    let send = |app: &TestApp, i: usize| {
        app.client
            .post(format!("{}/api/v1/login", app.address))
            .header("x-forwarded-for", format!("2001:db8:7:7::{i:x}"))
            .header("content-type", "application/json")
            .body("{")
            .send()
    };
    let start = Instant::now();
    let mut admitted = 0;
    for i in 0..40 {
        let app = if i % 2 == 0 { &a } else { &b };
        let status = send(app, i).await.unwrap().status();
        if status != 429 {
            assert_eq!(status, 400);
            admitted += 1;
        }
        // Slower than a store round trip: each replica hears the other.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    // The burst plus what refilled meanwhile (1 a second), within 10 %.
    let refilled = start.elapsed().as_secs_f64();
    let limit = 10.0 + refilled;
    assert!(
        f64::from(admitted) <= (limit * 1.1).ceil() && f64::from(admitted) >= 10.0,
        "{admitted} admitted, limit {limit:.1} (each replica alone: 20)"
    );
}

/// Finding 6: lock ends are judged by Redis `TIME`: a replica whose clock is
/// two hours ahead still sees the one-hour lock another replica started.
async fn a_replica_with_a_skewed_clock_sees_the_lock(backend: Backend) {
    let redis = (backend == Backend::Redis).then(RedisServer::start);
    let cluster = (backend == Backend::Cluster).then(RedisCluster::start);
    let url = redis
        .as_ref()
        .map(|r| r.url())
        .or(cluster.as_ref().map(|c| c.url()))
        .unwrap();
    let a = spawn_with(settings(backend, Some(&url), &[])).await;
    let ahead = ManualClock::at_wall_time();
    ahead.advance(Duration::from_secs(2 * 3600));
    let skewed = Clocks {
        service: ahead.clone() as Arc<dyn Clock>,
        redis_follows_service: false,
    };
    let b = spawn_with_clocks(settings(backend, Some(&url), &[]), skewed).await;
    let p = person(61);
    for _ in 0..5 {
        a.login(&p.pesel, "Wrong2021x").await;
    }
    let locked = problem(b.login(&p.pesel, "Wrong2021x").await, 423, "account_locked").await;
    let retry = locked["retryAfterSeconds"].as_u64().unwrap();
    assert!((3500..=3600).contains(&retry), "retry after {retry} s");
    assert_eq!(b.account(&p.pesel).await["lockout"]["level"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_skewed_clock_sees_the_lock_on_redis() {
    a_replica_with_a_skewed_clock_sees_the_lock(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_skewed_clock_sees_the_lock_on_a_cluster() {
    a_replica_with_a_skewed_clock_sees_the_lock(Backend::Cluster).await;
}

/// Finding 7: a replica killed while it checks a password leaves a
/// reservation that counts as a failure whenever the next attempt comes,
/// here well after the old one-second grace of the pending set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_on_a_killed_replica_counts_as_a_failure() {
    let redis = RedisServer::start();
    let (public, admin) = (free_port(), free_port());
    let mut replica = Command::new(BIN)
        .env_clear()
        .env(
            "CENSUS_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("CENSUS__SERVER__LISTEN", format!("127.0.0.1:{public}"))
        .env("CENSUS__SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("CENSUS__STORE__BACKEND", "redis")
        .env("CENSUS__STORE__REDIS_URL", redis.url())
        .env("CENSUS__SECRETS__PEPPER", PEPPER)
        // The demo OpenID client is refused with Redis.
        .env("CENSUS__OIDC__CLIENTS", "[]")
        .env("CENSUS__LOCKOUT__RESERVATION_TTL", "1s")
        // A verification of a few seconds: the kill lands while it runs.
        .env("CENSUS__PASSWORD__ARGON2_MEMORY_KIB", "8192")
        .env("CENSUS__PASSWORD__ARGON2_ITERATIONS", "400")
        .env("CENSUS__LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = new_client();
    let start = Instant::now();
    while client
        .get(format!("http://127.0.0.1:{admin}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "replica not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let p = person(62);
    let doomed = tokio::spawn({
        let url = format!("http://127.0.0.1:{public}/api/v1/login");
        let body = json!({"pesel": p.pesel, "password": "Wrong2021x"});
        async move { new_client().post(url).json(&body).send().await }
    });
    // The attempt is reserved and hashing on the replica.
    let metrics = format!("http://127.0.0.1:{admin}/metrics");
    let start = Instant::now();
    loop {
        let text = client
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == "census_hash_slots_in_use 1") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never hashed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    replica.kill().unwrap();
    replica.wait().unwrap();
    assert!(
        doomed.await.unwrap().is_err(),
        "the killed replica answered"
    );
    // Past the reservation and the old one-second grace of its set.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let survivor = spawn_with(settings(Backend::Redis, Some(&redis.url()), &[])).await;
    problem(
        survivor.login(&p.pesel, "Wrong2021x").await,
        401,
        "invalid_credentials",
    )
    .await;
    let account = survivor.account(&p.pesel).await;
    assert_eq!(account["lockout"]["failures"], 2, "{account}");
}
