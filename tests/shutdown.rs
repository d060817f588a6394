//! Graceful shutdown of the real binary: SIGTERM while logins are queued.
//! Readiness turns 503 at once; after the drain delay the listener closes
//! (new connections are refused); every request sent before then gets a
//! complete answer, also those still hashing at the close; the process exits 0.
//!
//! Requests sent at the very instant of the close are not tested: the kernel
//! resets connections still in a closing listener's backlog, which is why the
//! drain delay exists (the load balancer stops sending before the close).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{BIN, free_port};

const DELAY: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_request_sent_before_the_close() {
    let (public, admin) = (free_port(), free_port());
    let mut server = Command::new(BIN)
        .env_clear()
        .env(
            "CENSUS_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("CENSUS__SERVER__LISTEN", format!("127.0.0.1:{public}"))
        .env("CENSUS__SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("CENSUS__SERVER__SHUTDOWN_DELAY", "1500ms")
        .env("CENSUS__SERVER__SHUTDOWN_GRACE", "60s")
        // Slow hashes on one thread, a deep queue: the burst takes seconds to
        // hash, so logins are still queued when the listener closes.
        .env("CENSUS__PASSWORD__ARGON2_MEMORY_KIB", "16384")
        .env("CENSUS__PASSWORD__ARGON2_ITERATIONS", "8")
        .env("CENSUS__PASSWORD__MAX_CONCURRENT_HASHES", "1")
        .env("CENSUS__PASSWORD__MAX_QUEUED_HASHES", "200")
        .env("CENSUS__RATE_LIMIT__PER_IP_PER_MINUTE", "100000")
        .env("CENSUS__RATE_LIMIT__BURST", "100000")
        .env("CENSUS__LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
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
    let send = |pesel: String, after: Duration| {
        let (client, url) = (
            reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap(),
            login.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let result = client
                .post(url)
                .json(&serde_json::json!({"pesel": pesel, "password": "Wrong2021x"}))
                .send()
                .await
                .map(|r| r.status().as_u16());
            (result, Instant::now())
        })
    };
    // 80 distinct people over 0.8 s; SIGTERM at 0.3 s; the listener closes at
    // 1.8 s, a second after the last request was sent.
    let burst: Vec<_> = (0..80)
        .map(|i| send(pesels[i].clone(), Duration::from_millis(10 * i as u64)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sigterm = Instant::now();
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = client.get(&ready).send().await.map(|r| r.status().as_u16());
    assert_eq!(during.ok(), Some(503), "readiness turns 503 on SIGTERM");

    // The close: a fresh connection is refused.
    let closed = loop {
        let probe = tokio::net::TcpStream::connect(("127.0.0.1", public)).await;
        if probe.is_err() {
            break Instant::now();
        }
        drop(probe);
        assert!(
            sigterm.elapsed() < DELAY + Duration::from_secs(10),
            "the listener never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        closed - sigterm >= DELAY,
        "the listener closed {:?} after SIGTERM, before the drain delay",
        closed - sigterm
    );
    let late: Vec<_> = (80..85)
        .map(|i| send(pesels[i].clone(), Duration::ZERO))
        .collect();
    for task in late {
        let (result, _) = task.await.unwrap();
        match result {
            Err(e) if e.is_connect() => {}
            other => panic!("a request after the close was not refused: {other:?}"),
        }
    }

    let mut after_close = 0;
    for task in burst {
        let (result, at) = task.await.unwrap();
        match result {
            Ok(status) => assert!(matches!(status, 401 | 423), "unexpected {status}"),
            Err(e) => panic!("a request sent before the close was lost: {e:?}"),
        }
        after_close += usize::from(at > closed);
    }
    let status = server.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    eprintln!("80 answered, {after_close} of them after the close");
    assert!(
        after_close > 0,
        "no login was still in flight at the close: the test proves nothing"
    );
}
