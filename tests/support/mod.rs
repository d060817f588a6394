//! Runs one of the repository's external test suites (shell scripts driving
//! real tools: Chromium, Prometheus, k6, linters) as a cargo test, against
//! the binary cargo just built. Its output is shown when it fails. Also the
//! small helpers the binary-level suites share.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_census-login");

/// A port nothing listens on right now (the kernel's choice).
#[allow(dead_code)] // only the suites that start servers themselves
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `redis-server` on 127.0.0.1:`port` with its files in `dir`, no RDB
/// snapshots, plus `extra` arguments; returns once it listens.
#[allow(dead_code)] // only the suites that need Redis
pub fn redis_server(port: u16, dir: &Path, extra: &[&str]) -> Child {
    try_redis_server(port, dir, extra).unwrap_or_else(|e| panic!("{e}"))
}

/// [`redis_server`], or why it did not come up (a port taken meanwhile: the
/// caller may try another).
#[allow(dead_code)] // only the suites that need Redis
pub fn try_redis_server(port: u16, dir: &Path, extra: &[&str]) -> Result<Child, String> {
    let port_arg = port.to_string();
    let base = [
        "--port",
        &port_arg,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
    ];
    let args = base
        .iter()
        .map(OsStr::new)
        .chain([dir.as_os_str()])
        .chain(extra.iter().map(OsStr::new));
    try_start_redis(port, args)
}

/// `redis-server ARGS` (a server or, with `--sentinel`, a Sentinel) that will
/// listen on `port`; returns once it does.
#[allow(dead_code)] // only the suites that need Redis
pub fn start_redis<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(port: u16, args: I) -> Child {
    try_start_redis(port, args).unwrap_or_else(|e| panic!("{e}"))
}

/// [`start_redis`], or why not: it exited (e.g. its port, or a cluster's bus
/// port = port + 10000, was taken by another process since it was chosen) or
/// did not listen within 10 s.
#[allow(dead_code)] // only the suites that need Redis
pub fn try_start_redis<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(
    port: u16,
    args: I,
) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start redis-server ({e}): install it with `apt-get install redis-server`"
            )
        });
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server for port {port} exited ({status})"));
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("redis-server did not listen on {port} within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

#[allow(dead_code)] // the binary-level suites use only the helpers above
pub fn run_suite(script: &str, args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join(script);
    assert!(path.exists(), "{script} is missing");
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .current_dir(root)
        .env("CENSUS_BIN", BIN)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The suite's own summary line, for the cargo test log.
    if let Some(last) = stdout.lines().rev().find(|l| !l.trim().is_empty()) {
        eprintln!("{script}: {last}");
    }
    assert!(
        out.status.success(),
        "{script} failed ({}).\n--- failures ---\n{}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status,
        failures(&stdout, &stderr)
    );
}

/// The failing checks with the lines right after each (their details), so that a CI log
/// that keeps only the head and tail of a long output still names what failed.
fn failures(stdout: &str, stderr: &str) -> String {
    let mut picked = Vec::new();
    for text in [stdout, stderr] {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let l = line.trim_start();
            if l.starts_with("FAIL") || l.starts_with("not ok") {
                picked.extend(lines[i..lines.len().min(i + 8)].iter().copied());
            }
        }
    }
    if picked.is_empty() {
        "(no FAIL line; see the end of stdout and stderr)".to_string()
    } else {
        picked.join("\n")
    }
}
