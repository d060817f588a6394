//! Provenance for `census_build_info` and `--version`: the git commit
//! (CENSUS_GIT_COMMIT) and the version (CENSUS_VERSION). The container build
//! passes both (build arguments VERSION and GIT_COMMIT: .git is not in its
//! context); elsewhere the commit comes from git and the version from Cargo.toml.

fn main() {
    println!("cargo:rerun-if-env-changed=CENSUS_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=CENSUS_VERSION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    let version = std::env::var("CENSUS_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| std::env::var("CARGO_PKG_VERSION").unwrap_or_default());
    println!("cargo:rustc-env=CENSUS_VERSION={version}");
    if std::env::var("CENSUS_GIT_COMMIT").is_ok_and(|c| !c.is_empty()) {
        return; // already in rustc's environment
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CENSUS_GIT_COMMIT={commit}");
}
