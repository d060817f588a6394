//! The binary as operators run it: start-up configuration errors, the
//! registry commands, `unlock`, and what the process writes to its logs.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{BIN, free_port};

fn census() -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "CENSUS_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("CENSUS__PASSWORD__ARGON2_MEMORY_KIB", "256")
        .env("CENSUS__PASSWORD__ARGON2_ITERATIONS", "1");
    c
}

#[test]
fn an_unknown_key_stops_start_up_and_is_named() {
    let out = census()
        .env("CENSUS__LOCKOUT__MAX_FAILURE", "3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_failure"), "{err}");
}

#[test]
fn a_bad_value_stops_start_up_and_is_named() {
    let out = census()
        .env("CENSUS__SURVEY__WINDOW", "fortnight")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("survey.window"));
}

#[test]
fn registry_generate_writes_valid_csv_and_import_reports_bad_lines() {
    let out = census()
        .args(["registry", "generate", "--count", "50", "--seed", "9"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(csv.lines().count(), 51);
    assert!(csv.starts_with("pesel,mother_maiden_name,reserved\n"));
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, &csv).unwrap();
    let out = census()
        .args(["registry", "import"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("{csv}04051401458,Nowak,false\n")).unwrap();
    let out = census()
        .args(["registry", "import"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:52: pesel_checksum"), "{err}");
    assert!(err.contains("imported 50 rows, 1 bad"), "{err}");
}

#[test]
fn purge_asks_for_confirmation() {
    let mut child = census()
        .arg("purge")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing deleted"));
}

/// The `requirepass` of the test Redis, which must never be logged either.
const REDIS_PASSWORD: &str = "cli-redis-password";

/// A real redis-server (requiring [`REDIS_PASSWORD`]) for the commands that
/// need shared state. The temp dir is held so that it outlives the server.
struct Redis(
    std::process::Child,
    u16,
    #[allow(dead_code)] tempfile::TempDir,
);

impl Redis {
    fn start() -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = support::redis_server(port, dir.path(), &["--requirepass", REDIS_PASSWORD]);
        Redis(child, port, dir)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(method: &str, url: &str, body: Option<&str>, token: Option<&str>) -> (u16, String) {
    let mut args = vec![
        "-s".to_owned(),
        "-o".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "-X".into(),
        method.into(),
        url.into(),
    ];
    if let Some(b) = body {
        args.extend([
            "-H".into(),
            "content-type: application/json".into(),
            "-d".into(),
            b.into(),
        ]);
    }
    if let Some(t) = token {
        args.extend(["-H".into(), format!("authorization: Bearer {t}")]);
    }
    let out = Command::new("curl")
        .args(&args)
        .output()
        .expect("curl not found: apt-get install curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.parse().unwrap_or(0), body.to_owned())
}

/// Runs the service against Redis, drives every flow with one PESEL, locks
/// it, unlocks it with the `unlock` command, and checks that neither the
/// PESEL, the maiden name, the passwords nor the secrets appear anywhere in
/// the logs.
#[test]
fn the_logs_never_contain_personal_data_and_unlock_works_from_the_command_line() {
    let redis = Redis::start();
    let (public, admin) = (free_port(), free_port());
    let demo = include_str!("../config/demo-registry.csv");
    let row = demo.lines().nth(3).unwrap();
    let mut f = row.split(',');
    let (pesel, name) = (f.next().unwrap().to_owned(), f.next().unwrap().to_owned());
    let env = |c: &mut Command| {
        c.env("CENSUS__STORE__BACKEND", "redis")
            .env(
                "CENSUS__STORE__REDIS_URL",
                format!("redis://127.0.0.1:{}", redis.1),
            )
            .env("CENSUS__SECRETS__PEPPER", "cli-test-pepper")
            .env("CENSUS__OIDC__CLIENTS", "[]")
            .env("CENSUS__SECRETS__REDIS_PASSWORD", REDIS_PASSWORD)
            .env("CENSUS__SECRETS__ADMIN_TOKEN", "cli-token")
            .env("CENSUS__LOG__LEVEL", "debug")
            .env("CENSUS__SERVER__LISTEN", format!("127.0.0.1:{public}"))
            .env("CENSUS__SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"));
    };
    let mut cmd = census();
    env(&mut cmd);
    let mut server = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while http(
        "GET",
        &format!("http://127.0.0.1:{admin}/readyz"),
        None,
        None,
    )
    .0 != 200
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "service not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let api = format!("http://127.0.0.1:{public}/api/v1");
    let define = format!(
        r#"{{"pesel":"{pesel}","motherMaidenName":"{name}","password":"Secret2021x","passwordRepeat":"Secret2021x"}}"#
    );
    assert_eq!(
        http("POST", &format!("{api}/password"), Some(&define), None).0,
        201
    );
    let wrong = format!(r#"{{"pesel":"{pesel}","password":"Guess2021yy"}}"#);
    for _ in 0..4 {
        assert_eq!(
            http("POST", &format!("{api}/login"), Some(&wrong), None).0,
            401
        );
    }
    assert_eq!(
        http("POST", &format!("{api}/login"), Some(&wrong), None).0,
        423
    );
    let status = http(
        "GET",
        &format!("http://127.0.0.1:{admin}/admin/v1/accounts/{pesel}"),
        None,
        Some("cli-token"),
    );
    assert!(status.1.contains("\"level\":1"), "{}", status.1);
    let mut unlock = census();
    env(&mut unlock);
    let out = unlock.args(["unlock", &pesel]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The service remembers a lock for up to 1 s (src/auth/lock_cache.rs) and
    // an unlock from another process cannot tell it.
    std::thread::sleep(Duration::from_millis(1100));
    let good = format!(r#"{{"pesel":"{pesel}","password":"Secret2021x"}}"#);
    assert_eq!(
        http("POST", &format!("{api}/login"), Some(&good), None).0,
        200
    );
    assert_eq!(
        http(
            "POST",
            &format!("http://127.0.0.1:{admin}/admin/v1/accounts/{pesel}/reset"),
            None,
            Some("cli-token")
        )
        .0,
        204
    );

    // SIGTERM: a graceful stop with exit code 0.
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let status = server.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let unlock_logs =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("\"event\":\"lock_started\""),
        "security events are logged: {logs}"
    );
    assert!(logs.contains("\"event\":\"admin_reset\""));
    assert!(unlock_logs.contains("admin_unlock"), "{unlock_logs}");
    for secret in [
        &pesel[..],
        &pesel[2..],
        &name,
        "Secret2021x",
        "Guess2021yy",
        REDIS_PASSWORD,
        "cli-test-pepper",
        "cli-token",
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
        assert!(
            !unlock_logs.contains(secret),
            "{secret} leaked into the unlock logs"
        );
    }
}
