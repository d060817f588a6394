//! Redis Sentinel: a primary, a replica and three sentinels on loopback. The
//! primary is killed during a stream of logins; the service follows the
//! promotion by itself, and nothing acknowledged under `WAIT 1` is lost.
//! As in production, the data nodes and the sentinels require passwords
//! (different ones), which the service takes from `secrets.*`.

use crate::helpers::*;
use crate::support::{redis_server, start_redis};
use serde_json::json;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const DATA_PASSWORD: &str = "data-node-password";
const SENTINEL_PASSWORD: &str = "sentinel-password";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis(port: u16, dir: &std::path::Path, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--appendonly",
        "yes",
        "--requirepass",
        DATA_PASSWORD,
        "--masterauth",
        DATA_PASSWORD,
    ];
    args.extend(extra);
    Proc(redis_server(port, dir, &args))
}

fn sentinel(port: u16, primary: u16, dir: &std::path::Path) -> Proc {
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nsentinel monitor census 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds census 1000\nsentinel failover-timeout census 5000\n\
             sentinel parallel-syncs census 1\nsentinel auth-pass census {DATA_PASSWORD}\n\
             requirepass {SENTINEL_PASSWORD}\nsentinel sentinel-pass {SENTINEL_PASSWORD}\n"
        ),
    )
    .unwrap();
    Proc(start_redis(
        port,
        [conf.as_os_str(), std::ffi::OsStr::new("--sentinel")],
    ))
}

fn cli(port: u16, password: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .env("REDISCLI_AUTH", password)
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli not found: apt-get install redis-tools");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_follows_a_sentinel_failover_without_losing_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    // Two replicas, as in production: after a failover the new primary still
    // has one, so `WAIT 1` keeps succeeding.
    let p_port = free_port();
    let dir_of = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let mut primary = Some(redis(
        p_port,
        &dir_of("p"),
        &["--repl-diskless-sync-delay", "0"],
    ));
    let replica_of = [
        "--replicaof",
        "127.0.0.1",
        &p_port.to_string(),
        "--repl-diskless-sync-delay",
        "0",
    ];
    let _replicas: Vec<Proc> = ["r1", "r2"]
        .iter()
        .map(|n| redis(free_port(), &dir_of(n), &replica_of))
        .collect();
    wait_for(
        || {
            cli(p_port, DATA_PASSWORD, &["info", "replication"])
                .matches("state=online")
                .count()
                == 2
        },
        "both replicas to be in sync",
    );
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let _sentinels: Vec<Proc> = ports
        .iter()
        .map(|p| sentinel(*p, p_port, dir.path()))
        .collect();
    let url = format!(
        "redis+sentinel://{}/census",
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let app = spawn_with(settings(
        Backend::Redis,
        Some(&url),
        &[
            ("store.wait_replicas", json!(1)),
            ("store.wait_timeout", json!("500ms")),
            ("rate_limit.per_ip_per_minute", json!(100_000)),
            ("rate_limit.burst", json!(100_000)),
            ("secrets.redis_password", json!(DATA_PASSWORD)),
            ("secrets.redis_sentinel_password", json!(SENTINEL_PASSWORD)),
        ],
    ))
    .await;

    // Acknowledged writes before the failover: passwords, and a lock.
    let people: Vec<Person> = (50..60).map(person).collect();
    for p in &people {
        let r = app.define(p, GOOD_PASSWORD).await;
        let status = r.status().as_u16();
        assert_eq!(status, 201, "{}", r.text().await.unwrap_or_default());
    }
    let locked = person(60);
    for _ in 0..4 {
        assert_eq!(app.login(&locked.pesel, "Wrong2021x").await.status(), 401);
    }
    assert_eq!(app.login(&locked.pesel, "Wrong2021x").await.status(), 423);

    primary.take(); // killed
    let killed = Instant::now();
    let mut recovered = None;
    let mut statuses = Vec::new();
    while killed.elapsed() < Duration::from_secs(30) {
        let p = &people[statuses.len() % people.len()];
        let s = new_client()
            .post(format!("{}/api/v1/login", app.address))
            .json(&json!({"pesel": p.pesel, "password": GOOD_PASSWORD}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(
            s == 200 || s == 503,
            "only success or fail-closed during a failover: {s}"
        );
        statuses.push(s);
        let master = cli(
            ports[0],
            SENTINEL_PASSWORD,
            &["sentinel", "get-master-addr-by-name", "census"],
        );
        if s == 200 && !master.contains(&p_port.to_string()) {
            recovered = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took =
        recovered.unwrap_or_else(|| panic!("no recovery after the primary died: {statuses:?}"));
    eprintln!(
        "failover: logins again after {took:?} ({} attempts)",
        statuses.len()
    );
    // Every acknowledged password and the acknowledged lock are on the new primary.
    for p in &people {
        assert_eq!(
            app.login(&p.pesel, GOOD_PASSWORD).await.status(),
            200,
            "{}",
            p.pesel
        );
    }
    let body = problem(
        app.login(&locked.pesel, GOOD_PASSWORD).await,
        423,
        "account_locked",
    )
    .await;
    assert!(body["lockedUntil"].is_string());
}
