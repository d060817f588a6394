//! Test harness: `spawn_app` builds the service exactly as `main` does
//! (`Application::build`) on port 0; `RedisServer` runs a real `redis-server`
//! on a free port in a temporary directory and stops it on drop.

use crate::support::redis_server;
use census_login::clock::ManualClock;
use census_login::config::Settings;
use census_login::keys::Keys;
use census_login::startup::{Application, Clocks, ShutdownHandle};
use figment::Figment;
use reqwest::{Client, Response};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PEPPER: &str = "test-pepper-not-secret";
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const GOOD_PASSWORD: &str = "Spis2021Ok";

pub use crate::support::free_port;

/// Which store a test runs on: the cluster is three real masters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    Cluster,
}

/// The password of every cluster node in tests (in the cluster's URLs).
pub const CLUSTER_PASSWORD: &str = "cluster-test-password";

/// A real redis-server on a free loopback port, with its data in a temp dir.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    cluster: bool,
    /// `requirepass` (and `masterauth`), if any.
    password: Option<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(false, None)
    }

    /// A server that answers only after `AUTH password`.
    pub fn start_with_password(password: &str) -> Self {
        Self::start_with(false, Some(password))
    }

    fn start_with(cluster: bool, password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
            cluster,
            password: password.map(str::to_owned),
        };
        // A free port is only free when chosen: another test's connection (or, for a
        // cluster node, its bus port + 10000) may take it meanwhile. Try a few.
        let mut errors = Vec::new();
        for _ in 0..5 {
            if cluster && server.port > 55_535 {
                server.port = free_port();
                continue;
            }
            match crate::support::try_redis_server(server.port, server.dir.path(), &server.args()) {
                Ok(child) => {
                    server.child = Some(child);
                    return server;
                }
                Err(e) => errors.push(e),
            }
            server.port = free_port();
        }
        panic!("redis-server would not start: {}", errors.join("; "));
    }

    fn args(&self) -> Vec<&str> {
        let mut extra = vec!["--appendonly", "yes", "--appendfsync", "always"];
        if let Some(pw) = &self.password {
            extra.extend(["--requirepass", pw, "--masterauth", pw]);
        }
        if self.cluster {
            extra.extend([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]);
        }
        extra
    }

    /// (Re)starts on the same port and data directory (AOF on, so data survives).
    pub fn restart(&mut self) {
        self.child = Some(redis_server(self.port, self.dir.path(), &self.args()));
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of three masters (no replicas), slots spread by redis-cli.
/// Every node requires [`CLUSTER_PASSWORD`], written into the cluster's URLs.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(true, Some(CLUSTER_PASSWORD)))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .env("REDISCLI_AUTH", CLUSTER_PASSWORD)
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli not found: apt-get install redis-tools");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for n in &nodes {
            wait_for(
                || {
                    Command::new("redis-cli")
                        .env("REDISCLI_AUTH", CLUSTER_PASSWORD)
                        .args(["-p", &n.port.to_string(), "cluster", "info"])
                        .output()
                        .is_ok_and(|o| {
                            String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok")
                        })
                },
                "the cluster to be ok",
            );
        }
        Self { nodes }
    }

    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://:{CLUSTER_PASSWORD}@127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every line the service logs in this test binary (JSON, warnings and the
/// admin audit lines), kept for the audit tests; TEST_LOG=1 also shows them.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("TEST_LOG").is_some() {
            eprint!("{}", String::from_utf8_lossy(buf));
        }
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("warn,census_login::auth::admin=info")
            .with_writer(|| LogWriter)
            .try_init();
    });
}

/// The captured log lines (JSON objects) that contain every one of `needles`.
pub fn log_lines(needles: &[&str]) -> Vec<Value> {
    let logs = LOGS.lock().unwrap();
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The correlation id the logs give a PESEL.
pub fn cid(pesel: &str) -> String {
    keys()
        .pesel_key(
            &census_login::domain::Pesel::parse(
                pesel,
                census_login::clock::Clock::poland_today(&census_login::clock::SystemClock),
            )
            .unwrap(),
        )
        .correlation_id()
}

/// Settings for tests: defaults, fast Argon2, port 0, and the given overrides
/// as (key, value) pairs in the same syntax as config files.
pub fn settings(
    backend: Backend,
    store_url: Option<&str>,
    overrides: &[(&str, Value)],
) -> Settings {
    let mut f: Figment = Settings::figment(std::path::Path::new("config"), None)
        .merge(("server.listen", "127.0.0.1:0"))
        .merge(("server.admin_listen", "127.0.0.1:0"))
        .merge(("server.public_origin", "http://census.test"))
        .merge(("password.argon2_memory_kib", 256))
        .merge(("password.argon2_iterations", 1))
        .merge(("password.max_concurrent_hashes", 2))
        .merge(("secrets.pepper", PEPPER))
        .merge(("secrets.admin_token", ADMIN_TOKEN))
        .merge(("log.level", "warn"));
    f = match backend {
        Backend::Memory => f.merge(("store.backend", "memory")),
        // The demo OIDC client is refused with Redis; tests that need one
        // configure their own (with signing keys) through `overrides`.
        Backend::Redis | Backend::Cluster => f
            .merge(("store.backend", "redis"))
            .merge(("store.redis_url", store_url.expect("a redis url")))
            .merge(("oidc.clients", Value::Array(Vec::new()))),
    };
    for (k, v) in overrides {
        f = f.merge((*k, v.clone()));
    }
    Settings::from_figment(f).expect("valid test settings")
}

pub struct TestApp {
    pub address: String,
    pub admin: String,
    pub client: Client,
    pub shutdown: ShutdownHandle,
    /// The store's URL (Redis and Cluster), and the servers kept alive for the test.
    pub store_url: Option<String>,
    _redis: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
}

/// Spawns the app on `backend`; with Redis, a fresh server is started for it.
pub async fn spawn_app(backend: Backend, overrides: &[(&str, Value)]) -> TestApp {
    let redis = (backend == Backend::Redis).then(RedisServer::start);
    let cluster = (backend == Backend::Cluster).then(RedisCluster::start);
    let url = redis
        .as_ref()
        .map(|r| r.url())
        .or(cluster.as_ref().map(|c| c.url()));
    let mut app = spawn_with(settings(backend, url.as_deref(), overrides)).await;
    app.store_url = url;
    app._redis = redis;
    app._cluster = cluster;
    app
}

/// As [`spawn_app`], with time in the test's hands: the service, the memory
/// store and the Redis scripts all read the returned manual clock, so a test
/// moves it instead of sleeping.
pub async fn spawn_app_with_clock(
    backend: Backend,
    overrides: &[(&str, Value)],
) -> (TestApp, Arc<ManualClock>) {
    let redis = (backend == Backend::Redis).then(RedisServer::start);
    let cluster = (backend == Backend::Cluster).then(RedisCluster::start);
    let url = redis
        .as_ref()
        .map(|r| r.url())
        .or(cluster.as_ref().map(|c| c.url()));
    // Started once the servers are up: Redis expires keys by its own clock,
    // and a manual clock never behind it keeps keys at least as long.
    let clock = ManualClock::at_wall_time();
    let clocks = Clocks {
        service: clock.clone(),
        redis_follows_service: true,
    };
    let mut app = spawn_with_clocks(settings(backend, url.as_deref(), overrides), clocks).await;
    app.store_url = url;
    app._redis = redis;
    app._cluster = cluster;
    (app, clock)
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    let t = spawn_unready(settings).await;
    t.wait_ready().await;
    t
}

/// As [`spawn_with`], with the service's clock (and the memory store's) given.
pub async fn spawn_with_clocks(settings: Settings, clocks: Clocks) -> TestApp {
    let t = spawn_unready_with(settings, clocks).await;
    t.wait_ready().await;
    t
}

/// As [`spawn_with`], without waiting for readiness.
pub async fn spawn_unready(settings: Settings) -> TestApp {
    spawn_unready_with(settings, Clocks::default()).await
}

async fn spawn_unready_with(settings: Settings, clocks: Clocks) -> TestApp {
    init_logs();
    let app = Application::build_with_clocks(settings, clocks)
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.public_port());
    let admin = format!("http://127.0.0.1:{}", app.admin_port());
    let shutdown = app.shutdown_handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        admin,
        client: new_client(),
        shutdown,
        store_url: None,
        _redis: None,
        _cluster: None,
    }
}

pub fn new_client() -> Client {
    Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// One person from the bundled demo registry.
#[derive(Clone, Debug)]
pub struct Person {
    pub pesel: String,
    pub maiden_name: String,
    pub reserved: bool,
}

pub fn demo_people() -> Vec<Person> {
    include_str!("../../config/demo-registry.csv")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some(Person {
                pesel: f.next()?.to_owned(),
                maiden_name: f.next()?.to_owned(),
                reserved: f.next()? == "true",
            })
        })
        .collect()
}

/// The n-th non-reserved demo person.
pub fn person(n: usize) -> Person {
    demo_people()
        .into_iter()
        .filter(|p| !p.reserved)
        .nth(n)
        .expect("enough demo people")
}

pub fn reserved_person() -> Person {
    demo_people()
        .into_iter()
        .find(|p| p.reserved)
        .expect("a reserved demo person")
}

/// A valid PESEL that is not in the demo registry.
pub const UNKNOWN_PESEL: &str = "02070803628";

pub fn keys() -> Keys {
    Keys::from_pepper(&SecretString::from(PEPPER.to_owned()))
}

impl TestApp {
    pub async fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            if let Ok(r) = self
                .client
                .get(format!("{}/readyz", self.admin))
                .send()
                .await
                && r.status() == 200
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "app never became ready"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn define(&self, p: &Person, password: &str) -> Response {
        self.post_json(
            "/api/v1/password",
            &json!({"pesel": p.pesel, "motherMaidenName": p.maiden_name, "password": password, "passwordRepeat": password}),
        )
        .await
    }

    pub async fn login(&self, pesel: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/login",
            &json!({"pesel": pesel, "password": password}),
        )
        .await
    }

    pub async fn session(&self) -> Response {
        self.client
            .get(format!("{}/api/v1/session", self.address))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn logout(&self) -> Response {
        self.client
            .post(format!("{}/api/v1/logout", self.address))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn admin_get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn admin_post(&self, path: &str) -> Response {
        self.client
            .post(format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn account(&self, pesel: &str) -> Value {
        let r = self.admin_get(&format!("/admin/v1/accounts/{pesel}")).await;
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("text")
    }

    /// Sum of a metric's samples whose line starts with `prefix`.
    pub async fn metric_sum(&self, prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// How many Argon2 jobs (hash or verify) this instance has run.
    pub async fn hash_count(&self) -> f64 {
        self.metric_sum("census_hash_duration_seconds_count").await
    }
}

/// Asserts a problem+json response and returns its body.
pub async fn problem(r: Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status for {code}");
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
    );
    let body: Value = r.json().await.expect("problem body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}

/// Runs a test body once per store: memory, single Redis, Redis Cluster.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Memory).await })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Redis).await })*
        }
        mod cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Cluster).await })*
        }
    };
}
