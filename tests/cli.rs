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
    assert!(
        err.contains("rejected ") && err.contains("bad.csv:52: pesel_checksum"),
        "{err}"
    );
    assert!(
        err.contains("imported 50, updated 0, unchanged 0, rejected 1"),
        "{err}"
    );
}

/// `registry import` into a real Redis: a generated file with a few bad rows,
/// the summary, the entries as the service sees them, a re-run from stdin
/// that changes nothing, and `purge --yes` (refused without it and without a
/// terminal).
#[test]
fn registry_import_into_redis_reports_counts_and_rejects_and_is_idempotent() {
    let redis = Redis::start();
    let env = |c: &mut Command| {
        c.env("CENSUS__STORE__BACKEND", "redis")
            .env(
                "CENSUS__STORE__REDIS_URL",
                format!("redis://127.0.0.1:{}", redis.1),
            )
            .env("CENSUS__SECRETS__PEPPER", "cli-test-pepper")
            .env("CENSUS__SECRETS__REDIS_PASSWORD", REDIS_PASSWORD)
            .env("CENSUS__OIDC__CLIENTS", "[]")
            .env("CENSUS__REGISTRY__SEED_FILE", "");
    };
    let out = census()
        .args(["registry", "generate", "--count", "3000", "--seed", "4"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    let good: Vec<&str> = csv.lines().skip(1).collect();
    // Lines 3002-3004: a bad checksum, no maiden name, a bad reserved flag.
    let first = good[0].split(',').next().unwrap();
    let mut broken = first.as_bytes().to_vec();
    broken[10] = b'0' + (broken[10] - b'0' + 1) % 10;
    let broken = String::from_utf8(broken).unwrap();
    let (reserved_bad, name_of_last) = {
        let mut f = good[1].split(',');
        (f.next().unwrap().to_owned(), f.next().unwrap().to_owned())
    };
    let file =
        format!("{csv}{broken},Nowak,false\n{first},,false\n{reserved_bad},{name_of_last},maybe\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.csv");
    std::fs::write(&path, &file).unwrap();
    let mut import = census();
    env(&mut import);
    let out = import
        .args(["registry", "import"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rejected rows exit non-zero: {err}");
    assert!(
        err.contains("imported 3000, updated 0, unchanged 0, rejected 3"),
        "{err}"
    );
    assert!(err.contains("registry.csv:3002: pesel_checksum"), "{err}");
    assert!(
        err.contains("registry.csv:3003: mother_maiden_name"),
        "{err}"
    );
    assert!(err.contains("registry.csv:3004: reserved must be"), "{err}");
    assert!(
        !err.contains(&name_of_last) && !err.contains(first),
        "{err}"
    );

    // Again, through stdin, with one more line that changes the maiden name
    // of the person on line 2: only that one is updated.
    let mut again = census();
    env(&mut again);
    let mut child = again
        .args(["registry", "import", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let changed = format!("{file}{first},Zmieniona,false\n");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(changed.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("imported 0, updated 1, unchanged 3000, rejected 3"),
        "{err}"
    );

    // The service finds the imported people, not the rejected ones.
    let (public, admin) = (free_port(), free_port());
    let mut cmd = census();
    env(&mut cmd);
    let mut server = cmd
        .env("CENSUS__SERVER__LISTEN", format!("127.0.0.1:{public}"))
        .env("CENSUS__SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
    let define = |pesel: &str, name: &str| {
        let body = format!(
            r#"{{"pesel":"{pesel}","motherMaidenName":"{name}","password":"Secret2021x","passwordRepeat":"Secret2021x"}}"#
        );
        http(
            "POST",
            &format!("http://127.0.0.1:{public}/api/v1/password"),
            Some(&body),
            None,
        )
    };
    let mut f = good[2999].split(',');
    let (pesel, name) = (f.next().unwrap(), f.next().unwrap());
    assert_eq!(define(pesel, name).0, 201);
    // Updated by the re-run: the new name holds, the old one does not.
    let old_name = good[0].split(',').nth(1).unwrap();
    let refused = define(first, old_name);
    assert_eq!(refused.0, 401);
    assert!(refused.1.contains("identity_not_verified"), "{}", refused.1);
    assert_eq!(define(first, "Zmieniona").0, 201);
    let _ = server.kill();
    let _ = server.wait();

    // purge: refused without a terminal and without --yes; with it, all gone.
    let mut refused = census();
    env(&mut refused);
    let out = refused.arg("purge").stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    let mut purge = census();
    env(&mut purge);
    let out = purge.args(["purge", "--yes"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("deleted "), "{err}");
    let out = Command::new("redis-cli")
        .env("REDISCLI_AUTH", REDIS_PASSWORD)
        .args(["-p", &redis.1.to_string(), "DBSIZE"])
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
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
