//! Runs one of the repository's external test suites (shell scripts driving
//! real tools: Chromium, Prometheus, k6, linters) as a cargo test, against
//! the binary cargo just built. Its output is shown when it fails. Also the
//! small helpers the binary-level suites share.

use std::path::Path;
use std::process::Command;

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
        "{script} failed ({}).\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
}
