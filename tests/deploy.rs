//! The container image and Kubernetes manifests: hadolint, kustomize overlays
//! through kubernetes-validate, cross-resource rules, the Redis Sentinel
//! scripts on loopback, and the binary with config/production.toml.

mod support;

#[test]
fn dockerfile_and_manifests_pass_linters_schemas_and_rules() {
    support::run_suite("tests/deploy/check.sh", &[]);
}
