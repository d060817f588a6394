//! Records the git commit for `census_build_info` (CENSUS_GIT_COMMIT, when
//! not already set by the build environment, e.g. the container build).

fn main() {
    println!("cargo:rerun-if-env-changed=CENSUS_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    if std::env::var_os("CENSUS_GIT_COMMIT").is_some() {
        return;
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
