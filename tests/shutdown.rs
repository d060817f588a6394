//! Graceful shutdown of the real binary: SIGTERM during a burst of logins.
//! Readiness turns 503 at once; every request the server accepted gets a
//! complete answer; the process exits 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{BIN, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_loses_no_accepted_request() {
    let (public, admin) = (free_port(), free_port());
    let mut server = Command::new(BIN)
        .env_clear()
        .env(
            "CENSUS_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("CENSUS__SERVER__LISTEN", format!("127.0.0.1:{public}"))
        .env("CENSUS__SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("CENSUS__SERVER__SHUTDOWN_DELAY", "1s")
        .env("CENSUS__SERVER__SHUTDOWN_GRACE", "20s")
        // Slow hashes, a deep queue: many logins are in flight when SIGTERM comes.
        .env("CENSUS__PASSWORD__ARGON2_MEMORY_KIB", "8192")
        .env("CENSUS__PASSWORD__ARGON2_ITERATIONS", "3")
        .env("CENSUS__PASSWORD__MAX_CONCURRENT_HASHES", "2")
        .env("CENSUS__PASSWORD__MAX_QUEUED_HASHES", "200")
        .env("CENSUS__RATE_LIMIT__PER_IP_PER_MINUTE", "100000")
        .env("CENSUS__RATE_LIMIT__BURST", "100000")
        .env("CENSUS__LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ready = format!("http://127.0.0.1:{admin}/readyz");
    let start = Instant::now();
    while client
        .get(&ready)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(start.elapsed() < Duration::from_secs(15), "not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let demo = include_str!("../config/demo-registry.csv");
    let pesels: Vec<String> = demo
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    let login = format!("http://127.0.0.1:{public}/api/v1/login");
    let burst: Vec<_> = (0..120)
        .map(|i| {
            let (client, url, pesel) = (
                reqwest::Client::new(),
                login.clone(),
                pesels[i % pesels.len()].clone(),
            );
            tokio::spawn(async move {
                // Spread over ~1.5 s: some before SIGTERM, some during the drain delay,
                // some after the listener closed.
                tokio::time::sleep(Duration::from_millis(12 * i as u64)).await;
                client
                    .post(url)
                    .json(&serde_json::json!({"pesel": pesel, "password": "Wrong2021x"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = client.get(&ready).send().await.map(|r| r.status().as_u16());
    assert_eq!(during.ok(), Some(503), "readiness turns 503 on SIGTERM");

    let (mut answered, mut refused) = (0, 0);
    for task in burst {
        match task.await.unwrap() {
            Ok(status) => {
                assert!(matches!(status, 401 | 423), "unexpected {status}");
                answered += 1;
            }
            // Never accepted: the listener had already closed. Anything else
            // (reset, incomplete answer) would be an accepted request lost.
            Err(e) if e.is_connect() => refused += 1,
            Err(e) => panic!("an accepted request was lost: {e:?}"),
        }
    }
    let status = server.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    eprintln!("answered {answered}, refused after close {refused}");
    assert!(answered > 40, "most of the burst was in flight: {answered}");
}
